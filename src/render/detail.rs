//! The statistics pages' figures beyond the file × month table (issue 14):
//! what happened in a range of months — the whole period for the overview,
//! one month for a month page — from the store's per file and month rows
//! (`monthly`) and the per month sums of its facts (`PageFacts`), never from
//! one row per file and day: a render of ten years of 200 files reads and
//! adds up thousands of rows, not millions.
//!
//! Invariants:
//! - **Unknown is never zero.** A fact is known only for downloads counted
//!   after dlcount kept it; the rest of a range's downloads (requests, for
//!   referring sites) is shown as `unknown`, so every table adds up to the
//!   downloads (requests) of its range. Completed downloads are shown only
//!   where the store knows them (`MonthRow::completed`), with the
//!   downloads they are a share of; "—" where it does not, never 0.
//! - **Bots apart.** Classes are listed with bots in their own row, the
//!   daily chart stacks bot downloads in their own colour, the headline says
//!   their share, the file tables have a bots column; countries and
//!   referring sites are not per class, so those tables say how many of
//!   their range's downloads are bots'.
//!
//! All arithmetic saturates, like the monthly figures (see `view`).

use super::format::grouped;
use super::FileMonth;
use crate::store::{date_of, month_of, DayTotalRow, MonthFactRow, PageFacts};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Classes in the order the pages list them: people first, bots last.
pub const CLASSES: [&str; 4] = ["browser", "downloader", "other", "bot"];

/// One value of a fact and its count, with its share of the range.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ValueView {
    pub value: String,
    pub n: u64,
    /// Percent of the range's downloads (requests), one decimal.
    pub share: f64,
}

/// A 32 × 32 map of the IPv4 /10 networks (network `n` at row `n / 32`,
/// column `n % 32`: each row is eight first octets).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct CoverageView {
    /// Networks that downloaded, of 1,024.
    pub networks: u32,
    pub share: f64,
    /// Downloads over IPv6, counted apart.
    pub ipv6_downloads: u64,
    /// The set cells: (x, y) in units of one cell.
    pub cells: Vec<(u32, u32)>,
}

/// One bar of the daily chart; the bot part is stacked on the rest.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct DayBar {
    pub date: String,
    pub downloads: u64,
    pub bots: u64,
    pub x: f64,
    pub w: f64,
    /// Top and height of the whole bar and of its bot part.
    pub y: f64,
    pub h: f64,
    pub bot_y: f64,
    pub bot_h: f64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct DailyChart {
    pub width: u32,
    pub height: u32,
    pub first: String,
    pub last: String,
    /// The value of the top of the chart.
    pub max: u64,
    pub max_label: String,
    pub bars: Vec<DayBar>,
    pub summary: String,
}

/// One file in a range.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct FileRow {
    pub key: String,
    pub name: String,
    pub folder: String,
    pub downloads: u64,
    pub bots: u64,
    /// Completed downloads over the months where they are known; `None`
    /// when they are known for none of them.
    pub completed: Option<u64>,
    /// The downloads of those months (what `completed` is a share of).
    pub completed_of: u64,
    pub requests: u64,
    pub bytes: u64,
    /// Percent of the range's downloads, one decimal.
    pub share: f64,
    /// Downloads relative to the range's most downloaded file (bar length).
    pub bar: f64,
    /// The overview's small trend (the last 12 months), else none.
    pub trend: Option<Trend>,
}

/// A file's downloads in each of the last 12 months, as a row of small
/// bars (oldest on the left) and as words for screen readers.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Trend {
    pub bars: Vec<TrendBar>,
    pub label: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct TrendBar {
    pub x: u32,
    pub y: f64,
    pub h: f64,
}

/// Width and height of a trend, in SVG units.
pub const TREND_W: u32 = 60;
pub const TREND_H: u32 = 16;

/// Everything the pages show about a range of months.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RangeView {
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
    /// Completed downloads where known (see [`FileRow::completed`]).
    pub completed: Option<u64>,
    pub completed_of: u64,
    /// Percent of `completed_of` that completed, one decimal.
    pub completion: Option<f64>,
    /// browser, downloader, other, bot, then `unknown` when there is a rest.
    pub classes: Vec<ValueView>,
    pub bots: u64,
    /// Percent of the downloads that are bots' (of all, unknown included).
    pub bot_share: f64,
    /// Downloads whose class is not known (counted before dlcount kept it).
    pub unknown_class: u64,
    /// Top 20 by downloads, then `unknown`; empty when no country is known.
    pub countries: Vec<ValueView>,
    /// Countries left out of the top 20, and their downloads.
    pub other_countries: (usize, u64),
    /// Top 20 by requests (`direct`, `this site`, hosts), then `unknown`.
    pub referers: Vec<ValueView>,
    pub other_referers: (usize, u64),
    pub coverage: CoverageView,
    /// Sorted by downloads, most first (ties by path).
    pub files: Vec<FileRow>,
}

fn pct(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 * 1000.0 / of as f64).round() / 10.0
    }
}

fn add(a: &mut u64, b: u64) {
    *a = a.saturating_add(b);
}

/// The values of one kind of fact in a range, most first (ties by value),
/// the first `top` kept, the rest of `total` as `unknown`.
fn ranked(counts: HashMap<&str, u64>, total: u64, top: usize) -> (Vec<ValueView>, (usize, u64)) {
    let mut v: Vec<(&str, u64)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let known = v.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n));
    let rest: Vec<(&str, u64)> = v.split_off(v.len().min(top));
    let rest_n = rest.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n));
    let mut out: Vec<ValueView> = v
        .into_iter()
        .map(|(value, n)| ValueView {
            value: value.to_string(),
            n,
            share: pct(n, total),
        })
        .collect();
    let unknown = total.saturating_sub(known);
    if unknown > 0 {
        out.push(ValueView {
            value: "unknown".into(),
            n: unknown,
            share: pct(unknown, total),
        });
    }
    (out, (rest.len(), rest_n))
}

/// The rows of one month, by reference.
#[derive(Default)]
pub struct Month<'a> {
    pub rows: Vec<&'a FileMonth>,
    pub facts: Vec<&'a MonthFactRow>,
    /// Bot downloads per file.
    pub bots: HashMap<&'a str, u64>,
    pub networks: Option<&'a [u64; crate::store::facts::NETWORK_WORDS]>,
    /// The month's days with per day figures, in day order.
    pub days: Vec<&'a DayTotalRow>,
}

/// The snapshot's rows split by month (`YYYY-MM`), in one pass, so each
/// page adds up its own rows only.
pub fn by_month<'a>(rows: &'a [FileMonth], facts: &'a PageFacts) -> BTreeMap<&'a str, Month<'a>> {
    let mut out: BTreeMap<&'a str, Month<'a>> = BTreeMap::new();
    for r in rows {
        out.entry(&r.month).or_default().rows.push(r);
    }
    for f in &facts.months {
        out.entry(&f.month).or_default().facts.push(f);
    }
    for b in &facts.bots {
        let m = out.entry(&b.month).or_default();
        add(m.bots.entry(&b.path).or_default(), b.n);
    }
    for n in &facts.networks {
        out.entry(&n.month).or_default().networks = Some(&n.bits);
    }
    // Days come sorted: a month's run of them is found by its name once.
    let mut i = 0;
    while i < facts.days.len() {
        let name = month_of(facts.days[i].day);
        let mut j = i;
        let first = facts.days[i].day;
        let (_, last) = month_days(&name).unwrap_or((first, first));
        while j < facts.days.len() && facts.days[j].day <= last {
            j += 1;
        }
        let m = match out.get_mut(name.as_str()) {
            Some(m) => m,
            // Day figures of a month without a monthly row cannot happen
            // (both are sums of `daily`); skip rather than invent one.
            None => {
                i = j;
                continue;
            }
        };
        m.days.extend(&facts.days[i..j]);
        i = j;
    }
    out
}

/// The figures of some months together.
pub fn range<'a, 'b: 'a>(months: impl IntoIterator<Item = &'a Month<'b>>) -> RangeView {
    let (mut downloads, mut requests, mut bytes) = (0u64, 0u64, 0u64);
    let (mut completed, mut completed_of) = (None::<u64>, 0u64);
    let mut files: BTreeMap<&str, FileRow> = BTreeMap::new();
    let mut classes: HashMap<&str, u64> = HashMap::new();
    let mut countries: HashMap<&str, u64> = HashMap::new();
    let mut referers: HashMap<&str, u64> = HashMap::new();
    let mut ipv6 = 0u64;
    let mut bits = [0u64; crate::store::facts::NETWORK_WORDS];
    for m in months {
        for r in &m.rows {
            add(&mut downloads, r.downloads);
            add(&mut requests, r.requests);
            add(&mut bytes, r.bytes);
            let f = files.entry(&r.path).or_insert_with(|| {
                let (folder, name) = r.path.rsplit_once('/').unwrap_or(("", &r.path));
                FileRow {
                    key: r.path.clone(),
                    name: name.to_string(),
                    folder: format!("{folder}/"),
                    downloads: 0,
                    bots: 0,
                    completed: None,
                    completed_of: 0,
                    requests: 0,
                    bytes: 0,
                    share: 0.0,
                    bar: 0.0,
                    trend: None,
                }
            });
            add(&mut f.downloads, r.downloads);
            add(&mut f.requests, r.requests);
            add(&mut f.bytes, r.bytes);
            if let Some(c) = r.completed {
                f.completed = Some(f.completed.unwrap_or(0).saturating_add(c));
                add(&mut f.completed_of, r.downloads);
                completed = Some(completed.unwrap_or(0).saturating_add(c));
                add(&mut completed_of, r.downloads);
            }
        }
        for (path, n) in &m.bots {
            if let Some(f) = files.get_mut(path) {
                add(&mut f.bots, *n);
            }
        }
        for f in &m.facts {
            let into = match f.kind.as_str() {
                "class" => &mut classes,
                "country" => &mut countries,
                "referer" => &mut referers,
                "network" if f.value == "v6" => {
                    add(&mut ipv6, f.n);
                    continue;
                }
                _ => continue,
            };
            // "unknown" is worked out as the rest; a stored one is part of it.
            if f.value != "unknown" {
                add(into.entry(f.value.as_str()).or_default(), f.n);
            }
        }
        if let Some(b) = m.networks {
            for (a, b) in bits.iter_mut().zip(b) {
                *a |= b;
            }
        }
    }
    let class_list: Vec<ValueView> = CLASSES
        .iter()
        .map(|c| {
            let n = classes.get(c).copied().unwrap_or(0);
            ValueView {
                value: c.to_string(),
                n,
                share: pct(n, downloads),
            }
        })
        .collect();
    let known = class_list.iter().fold(0u64, |a, c| a.saturating_add(c.n));
    let unknown_class = downloads.saturating_sub(known);
    let mut class_list = class_list;
    if unknown_class > 0 {
        class_list.push(ValueView {
            value: "unknown".into(),
            n: unknown_class,
            share: pct(unknown_class, downloads),
        });
    }
    let bots = classes.get("bot").copied().unwrap_or(0);
    let (countries, other_countries) = if countries.values().any(|n| *n > 0) {
        ranked(countries, downloads, 20)
    } else {
        (Vec::new(), (0, 0))
    };
    let (referers, other_referers) = ranked(referers, requests, 20);
    let cells: Vec<(u32, u32)> = (0..1024u32)
        .filter(|n| bits[(n / 64) as usize] >> (n % 64) & 1 == 1)
        .map(|n| (n % 32, n / 32))
        .collect();
    let networks = cells.len() as u32;
    let mut files: Vec<FileRow> = files.into_values().collect();
    files.sort_by(|a, b| b.downloads.cmp(&a.downloads).then(a.key.cmp(&b.key)));
    let top = files.first().map_or(0, |f| f.downloads);
    for f in &mut files {
        f.share = pct(f.downloads, downloads);
        f.bar = pct(f.downloads, top);
    }
    RangeView {
        downloads,
        requests,
        bytes,
        completed,
        completed_of,
        completion: completed.map(|c| pct(c, completed_of)),
        classes: class_list,
        bots,
        bot_share: pct(bots, downloads),
        unknown_class,
        countries,
        other_countries,
        referers,
        other_referers,
        coverage: CoverageView {
            networks,
            share: pct(networks as u64, 1024),
            ipv6_downloads: ipv6,
            cells,
        },
        files,
    }
}

/// Each file's downloads in the 12 months up to `last` (`YYYY-MM`), as
/// small bars scaled to the file's own busiest month: the trend's shape.
pub fn add_trends(files: &mut [FileRow], rows: &[FileMonth], last: &str) {
    let months = last_months(last, 12);
    let slot: HashMap<&str, usize> = months
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut per_file: HashMap<&str, [u64; 12]> = HashMap::new();
    for r in rows {
        if let Some(&i) = slot.get(r.month.as_str()) {
            add(&mut per_file.entry(&r.path).or_default()[i], r.downloads);
        }
    }
    for f in files {
        let v = per_file.get(f.key.as_str()).copied().unwrap_or_default();
        let peak = v.iter().copied().max().unwrap_or(0).max(1);
        let bars = v
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                // A month with any download shows at least a sliver.
                let h = if n == 0 {
                    0.0
                } else {
                    round1((TREND_H as f64 * n as f64 / peak as f64).max(1.0))
                };
                TrendBar {
                    x: i as u32 * (TREND_W / 12),
                    y: round1(TREND_H as f64 - h),
                    h,
                }
            })
            .collect();
        let label = format!(
            "Downloads from {} to {}: {}",
            months[0],
            months[11],
            v.iter().map(|n| grouped(*n)).collect::<Vec<_>>().join(", ")
        );
        f.trend = Some(Trend { bars, label });
    }
}

/// The `n` months up to `last` (`YYYY-MM`), oldest first.
fn last_months(last: &str, n: usize) -> Vec<String> {
    let (y, m) = last
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<i32>().ok()?)))
        .unwrap_or((0, 1));
    let end = y * 12 + (m - 1);
    (0..n as i32)
        .rev()
        .map(|k| {
            let i = end - k;
            format!("{:04}-{:02}", i.div_euclid(12), i.rem_euclid(12) + 1)
        })
        .collect()
}

/// Bar chart of the downloads of each day `from..=to`, the bots' part on
/// top in its own colour. Days without a row are days without downloads.
pub fn daily_chart(days: &[&DayTotalRow], from: i32, to: i32) -> Option<DailyChart> {
    if to < from {
        return None;
    }
    let n = (to - from + 1) as usize;
    let mut dl = vec![0u64; n];
    let mut bots = vec![0u64; n];
    for r in days.iter().filter(|r| r.day >= from && r.day <= to) {
        add(&mut dl[(r.day - from) as usize], r.downloads);
        add(&mut bots[(r.day - from) as usize], r.bots);
    }
    let peak = dl.iter().copied().max().unwrap_or(0);
    let max = super::view::nice_ceil(peak as f64) as u64;
    let (width, height) = (900u32, 160u32);
    let slot = width as f64 / n as f64;
    let w = round1((slot * 0.8).max(0.5));
    let scale = |v: u64| height as f64 * v as f64 / max.max(1) as f64;
    let bars = (0..n)
        .map(|i| {
            let h = scale(dl[i]);
            let bh = scale(bots[i].min(dl[i]));
            DayBar {
                date: date_of(from + i as i32),
                downloads: dl[i],
                bots: bots[i],
                x: round1(slot * i as f64 + (slot - w) / 2.0),
                w,
                y: round1(height as f64 - h),
                h: round1(h),
                bot_y: round1(height as f64 - h),
                bot_h: round1(bh),
            }
        })
        .collect::<Vec<_>>();
    let peak_day = (0..n)
        .max_by_key(|&i| (dl[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    let summary = format!(
        "Downloads per day from {} to {}; highest: {} on {}; bots' share stacked on top in red.",
        date_of(from),
        date_of(to),
        grouped(dl[peak_day]),
        date_of(from + peak_day as i32)
    );
    Some(DailyChart {
        width,
        height,
        first: date_of(from),
        last: date_of(to),
        max,
        max_label: grouped(max),
        bars,
        summary,
    })
}

/// One day of a month page's table.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct DayView {
    pub date: String,
    pub downloads: u64,
    pub bots: u64,
    pub requests: u64,
    pub bytes: u64,
}

/// A month page's days with figures, in order.
pub fn day_table(days: &[&DayTotalRow]) -> Vec<DayView> {
    days.iter()
        .map(|d| DayView {
            date: date_of(d.day),
            downloads: d.downloads,
            bots: d.bots,
            requests: d.requests,
            bytes: d.bytes,
        })
        .collect()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The first and last day numbers of a `YYYY-MM` month.
pub fn month_days(month: &str) -> Option<(i32, i32)> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    let first = chrono::NaiveDate::from_ymd_opt(y, m, 1)?;
    let next = if m == 12 {
        chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)?
    } else {
        chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)?
    };
    Some((crate::store::day_of(first), crate::store::day_of(next) - 1))
}
