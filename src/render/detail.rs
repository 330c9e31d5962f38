//! The per day figures of the statistics pages (issue 14): what happened in a
//! range of days — the whole period for the overview, one month for a month
//! page — from the store's per file and day rows and facts.
//!
//! Invariants:
//! - **Unknown is never zero.** A fact is known only for downloads counted
//!   after dlcount kept it; per file and day the rest of the downloads
//!   (requests, for referring sites) is shown as `unknown`, so every table
//!   adds up to the downloads (requests) of its range.
//! - **Bots apart.** Classes are listed with bots in their own row, the
//!   daily chart stacks bot downloads in their own colour, the headline says
//!   their share; countries and referring sites are per file and day, not
//!   per class, so those tables say how many of their downloads are bots'.
//! - Completed downloads are not a fact of the store yet: nothing here shows
//!   completion. When the store reads them (a `completed` fact per file and
//!   day), they are one more field of [`RangeView`] and [`FileRow`]
//!   summed in [`range`], and one more column or figure in the templates.
//!
//! All arithmetic saturates, like the monthly figures (see `view`).

use super::format::grouped;
use crate::store::{date_of, month_of, FactDayRow, FileDayRow, NetworkDayRow};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// What the store holds per day, as the pages read it (see `pages::snapshot`).
#[derive(Debug, Clone, Default)]
pub struct DayRows {
    /// `Backend::daily`.
    pub days: Vec<FileDayRow>,
    /// `Backend::facts` of kinds `class`, `country`, `referer` and `network`.
    pub facts: Vec<FactDayRow>,
    /// `Backend::networks`.
    pub networks: Vec<NetworkDayRow>,
}

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
    pub requests: u64,
    pub bytes: u64,
}

/// Everything the pages show about a range of days.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct RangeView {
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
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
    /// Sorted by downloads, most first.
    pub files: Vec<FileRow>,
    /// Days with figures in the range.
    pub first_day: Option<String>,
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

/// Some of the rows of [`DayRows`], by reference: one month's, or all.
#[derive(Default)]
pub struct Slice<'a> {
    pub days: Vec<&'a FileDayRow>,
    pub facts: Vec<&'a FactDayRow>,
    pub networks: Vec<&'a NetworkDayRow>,
}

impl<'a> Slice<'a> {
    pub fn all(rows: &'a DayRows) -> Slice<'a> {
        Slice {
            days: rows.days.iter().collect(),
            facts: rows.facts.iter().collect(),
            networks: rows.networks.iter().collect(),
        }
    }

    /// The rows of each month (`YYYY-MM`), split in one pass so a page per
    /// month costs its own rows, not all of them.
    pub fn by_month(rows: &'a DayRows) -> BTreeMap<String, Slice<'a>> {
        let days = rows
            .days
            .iter()
            .map(|r| r.day)
            .chain(rows.facts.iter().map(|f| f.day))
            .chain(rows.networks.iter().map(|n| n.day));
        let (lo, hi) = days.fold((i32::MAX, i32::MIN), |(lo, hi), d| (lo.min(d), hi.max(d)));
        if lo > hi {
            return BTreeMap::new();
        }
        // One slot per month, found by day through a table of the span's
        // days: formatting a month for each of millions of rows would cost
        // more than the rest of the split.
        let mut names: Vec<String> = Vec::new();
        let mut slot_of_day: Vec<usize> = Vec::with_capacity((hi - lo + 1) as usize);
        for d in lo..=hi {
            let m = month_of(d);
            if names.last() != Some(&m) {
                names.push(m);
            }
            slot_of_day.push(names.len() - 1);
        }
        let mut slots: Vec<Slice<'a>> = names.iter().map(|_| Slice::default()).collect();
        let slot = |day: i32| slot_of_day[(day - lo) as usize];
        for r in &rows.days {
            slots[slot(r.day)].days.push(r);
        }
        for f in &rows.facts {
            slots[slot(f.day)].facts.push(f);
        }
        for n in &rows.networks {
            slots[slot(n.day)].networks.push(n);
        }
        names
            .into_iter()
            .zip(slots)
            .filter(|(_, s)| !s.days.is_empty() || !s.facts.is_empty() || !s.networks.is_empty())
            .collect()
    }
}

/// The figures of the days `from..=to` (day numbers).
pub fn range(rows: &Slice<'_>, from: i32, to: i32) -> RangeView {
    let inside = |d: i32| d >= from && d <= to;
    let (mut downloads, mut requests, mut bytes) = (0u64, 0u64, 0u64);
    let mut files: BTreeMap<&str, FileRow> = BTreeMap::new();
    let mut first_day = None;
    for r in rows.days.iter().filter(|r| inside(r.day)) {
        add(&mut downloads, r.downloads);
        add(&mut requests, r.requests);
        add(&mut bytes, r.bytes);
        first_day = first_day.min(Some(r.day)).or(Some(r.day));
        let f = files.entry(&r.path).or_insert_with(|| {
            let (folder, name) = r.path.rsplit_once('/').unwrap_or(("", &r.path));
            FileRow {
                key: r.path.clone(),
                name: name.to_string(),
                folder: format!("{folder}/"),
                downloads: 0,
                bots: 0,
                requests: 0,
                bytes: 0,
            }
        });
        add(&mut f.downloads, r.downloads);
        add(&mut f.requests, r.requests);
        add(&mut f.bytes, r.bytes);
    }
    let mut classes: HashMap<&str, u64> = HashMap::new();
    let mut countries: HashMap<&str, u64> = HashMap::new();
    let mut referers: HashMap<&str, u64> = HashMap::new();
    let mut ipv6 = 0u64;
    for f in rows.facts.iter().filter(|f| inside(f.day)) {
        let into = match f.kind.as_str() {
            "class" => {
                if f.value == "bot" {
                    if let Some(row) = files.get_mut(f.path.as_str()) {
                        add(&mut row.bots, f.n);
                    }
                }
                &mut classes
            }
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
    let mut bits = [0u64; crate::store::facts::NETWORK_WORDS];
    for d in rows.networks.iter().filter(|d| inside(d.day)) {
        for (a, b) in bits.iter_mut().zip(d.bits) {
            *a |= b;
        }
    }
    let cells: Vec<(u32, u32)> = (0..1024u32)
        .filter(|n| bits[(n / 64) as usize] >> (n % 64) & 1 == 1)
        .map(|n| (n % 32, n / 32))
        .collect();
    let networks = cells.len() as u32;
    let mut files: Vec<FileRow> = files.into_values().collect();
    files.sort_by(|a, b| b.downloads.cmp(&a.downloads).then(a.key.cmp(&b.key)));
    RangeView {
        downloads,
        requests,
        bytes,
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
        first_day: first_day.map(date_of),
    }
}

/// Bar chart of the downloads of each day `from..=to`, the bots' part on
/// top in its own colour. Days without a row are days without downloads.
pub fn daily_chart(rows: &Slice<'_>, from: i32, to: i32) -> Option<DailyChart> {
    if to < from {
        return None;
    }
    let n = (to - from + 1) as usize;
    let mut dl = vec![0u64; n];
    let mut bots = vec![0u64; n];
    for r in rows.days.iter().filter(|r| r.day >= from && r.day <= to) {
        add(&mut dl[(r.day - from) as usize], r.downloads);
    }
    for f in rows
        .facts
        .iter()
        .filter(|f| f.day >= from && f.day <= to && f.kind == "class" && f.value == "bot")
    {
        add(&mut bots[(f.day - from) as usize], f.n);
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
