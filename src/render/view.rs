//! Builds the data the templates see: the public listing from a tree scan and
//! the statistics (matrix, totals, chart geometry) from the store's rows.
//!
//! Invariant: all arithmetic and ordering happen here, in Rust, so templates
//! only lay out values; the totals shown are sums of exactly the cells shown
//! (per-file totals = column sums, per-month totals = row sums, grand total =
//! sum of either).

use super::format::{grouped, href_for, human_size};
use super::natsort::{folder_cmp, release_cmp};
use super::scan::Folder;
use super::{FileMonth, PageSettings};
use crate::classify::path_key;
use chrono::{DateTime, Local};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

#[derive(Serialize)]
pub struct SiteView {
    pub title: String,
    pub logo_url: Option<String>,
    pub home_url: Option<String>,
}

#[derive(Serialize)]
pub struct GeneratedView {
    /// `2026-11-22 03:15 +01:00`, local time.
    pub text: String,
    /// RFC 3339, for `<time datetime>`.
    pub iso: String,
}

#[derive(Serialize)]
pub struct LinkView {
    pub label: String,
    pub name: String,
    pub href: String,
}

#[derive(Serialize)]
pub struct IsoView {
    pub name: String,
    pub href: String,
    pub size: u64,
    pub size_human: String,
    pub size_exact: String,
    /// Upload date (mtime), `YYYY-MM-DD` local time.
    pub date: String,
    /// Downloads over all months; only filled with `--public-counts`.
    pub downloads: Option<u64>,
    /// Its own checksum and signature files (label: the extension), then the
    /// folder's checksum lists that name it (label: the list's name).
    pub links: Vec<LinkView>,
}

#[derive(Serialize)]
pub struct GroupView {
    /// URL path of the folder, `/` for ROOT.
    pub path: String,
    pub checksums: Vec<LinkView>,
    pub isos: Vec<IsoView>,
}

#[derive(Serialize)]
pub struct PublicView {
    pub site: SiteView,
    pub generated: GeneratedView,
    pub public_counts: bool,
    pub iso_count: usize,
    pub groups: Vec<GroupView>,
}

#[derive(Serialize)]
pub struct FileView {
    pub key: String,
    pub name: String,
    pub folder: String,
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
    /// Share of all downloads, percent with one decimal.
    pub share: f64,
    /// Downloads relative to the most downloaded file, percent (bar length).
    pub bar: f64,
    /// Downloads per month in [`StatsView::months`] order (newest first),
    /// pre-formatted like [`MonthView::cells`]: a row of the file × month table.
    pub cells: Vec<String>,
}

#[derive(Serialize)]
pub struct MonthView {
    pub month: String,
    /// Downloads per file in [`StatsView::files`] order, pre-formatted
    /// (`1,234`; empty when there were none) to keep big tables fast. The
    /// default page shows the same figures by file ([`FileView::cells`]);
    /// these stay for override templates laid out month by month.
    pub cells: Vec<String>,
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
}

#[derive(Serialize)]
pub struct TotalsView {
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
}

#[derive(Serialize)]
pub struct PeriodView {
    pub first: String,
    pub last: String,
    pub months: usize,
}

#[derive(Serialize)]
pub struct BarView {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub month: String,
    pub downloads: u64,
}

#[derive(Serialize)]
pub struct TickView {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

#[derive(Serialize)]
pub struct ChartView {
    pub width: u32,
    pub height: u32,
    pub left: u32,
    pub right: u32,
    pub top: u32,
    pub bottom: u32,
    pub summary: String,
    pub bars: Vec<BarView>,
    pub y_ticks: Vec<TickView>,
    pub x_labels: Vec<TickView>,
}

#[derive(Serialize)]
pub struct StatsView {
    pub site: SiteView,
    pub generated: GeneratedView,
    pub period: Option<PeriodView>,
    pub files: Vec<FileView>,
    /// Newest month first, every month of the period (gaps filled with zeros).
    pub months: Vec<MonthView>,
    pub totals: TotalsView,
    pub chart: Option<ChartView>,
    /// The same chart laid out for phones.
    pub chart_narrow: Option<ChartView>,
    /// Per server, only when more than one counted.
    pub servers: Vec<super::ServerTotal>,
    /// The per day figures, once any day was counted (see `detail`).
    pub detail: Option<super::OverviewDetail>,
}

pub fn site(settings: &PageSettings) -> SiteView {
    SiteView {
        title: settings.site_title.clone(),
        logo_url: settings.logo_url.clone().filter(|s| !s.is_empty()),
        home_url: settings.home_url.clone().filter(|s| !s.is_empty()),
    }
}

pub fn generated(now: &DateTime<Local>) -> GeneratedView {
    GeneratedView {
        text: now.format("%Y-%m-%d %H:%M %:z").to_string(),
        iso: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The public listing. `rows` are only consulted with `public_counts`.
pub fn public(
    settings: &PageSettings,
    folders: &[Folder],
    rows: &[FileMonth],
    now: &DateTime<Local>,
) -> PublicView {
    let downloads: HashMap<&str, u64> = if settings.public_counts {
        let mut m = HashMap::new();
        for r in rows {
            let e = m.entry(r.path.as_str()).or_insert(0u64);
            *e = e.saturating_add(r.downloads);
        }
        m
    } else {
        HashMap::new()
    };
    let link = |folder_rel: &[u8], label: &str, name: &[u8]| {
        let mut rel = folder_rel.to_vec();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name);
        LinkView {
            label: label.to_owned(),
            name: lossy(name),
            href: href_for(&rel),
        }
    };
    let groups: Vec<GroupView> = folders
        .iter()
        .map(|f| GroupView {
            path: format!("/{}", lossy(&f.rel)),
            checksums: f.sums.iter().map(|n| link(&f.rel, &lossy(n), n)).collect(),
            isos: f
                .isos
                .iter()
                .map(|iso| {
                    let mut key = Vec::with_capacity(iso.rel.len() + 1);
                    key.push(b'/');
                    key.extend_from_slice(&iso.rel);
                    IsoView {
                        name: lossy(&iso.name),
                        href: href_for(&iso.rel),
                        size: iso.size,
                        size_human: human_size(iso.size),
                        size_exact: grouped(iso.size),
                        date: DateTime::<Local>::from(iso.mtime)
                            .format("%Y-%m-%d")
                            .to_string(),
                        downloads: settings
                            .public_counts
                            .then(|| downloads.get(path_key(&key).as_str()).copied().unwrap_or(0)),
                        links: iso
                            .sidecars
                            .iter()
                            .map(|(ext, n)| link(&f.rel, ext, n))
                            .chain(iso.lists.iter().map(|n| link(&f.rel, &lossy(n), n)))
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect();
    PublicView {
        site: site(settings),
        generated: generated(now),
        public_counts: settings.public_counts,
        iso_count: folders.iter().map(|f| f.isos.len()).sum(),
        groups,
    }
}

/// Order of files on the statistics page: like the public page, folders in
/// [`folder_cmp`] order (ROOT first, newest release first), newest release
/// first inside a folder.
fn file_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (da, na) = a.rsplit_once('/').unwrap_or(("", a));
    let (db, nb) = b.rsplit_once('/').unwrap_or(("", b));
    fn folder(d: &str) -> &[u8] {
        d.strip_prefix('/').unwrap_or(d).as_bytes()
    }
    folder_cmp(folder(da), folder(db)).then_with(|| release_cmp(na.as_bytes(), nb.as_bytes()))
}

fn parse_month(m: &str) -> Option<(i32, u32)> {
    let (y, mo) = m.split_once('-')?;
    if y.len() != 4 || mo.len() != 2 {
        return None;
    }
    let (y, mo) = (y.parse::<i32>().ok()?, mo.parse::<u32>().ok()?);
    (1..=12).contains(&mo).then_some((y, mo))
}

/// Every distinct month of the rows plus the months missing between the
/// first and the last well-formed one, newest first.
fn month_axis(rows: &[FileMonth]) -> Vec<String> {
    let mut set: BTreeSet<String> = rows.iter().map(|r| r.month.clone()).collect();
    let valid: Vec<(i32, u32)> = set.iter().filter_map(|m| parse_month(m)).collect();
    if let (Some(&first), Some(&last)) = (valid.first(), valid.last()) {
        let (mut y, mut m) = first;
        while (y, m) < last {
            set.insert(format!("{y:04}-{m:02}"));
            (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        }
    }
    set.into_iter().rev().collect()
}

pub fn stats(settings: &PageSettings, rows: &[FileMonth], now: &DateTime<Local>) -> StatsView {
    let months = month_axis(rows);
    let month_idx: HashMap<&str, usize> = months
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut keys: Vec<&str> = rows
        .iter()
        .map(|r| r.path.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort_by(|a, b| file_order(a, b));
    let file_idx: HashMap<&str, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();

    let mut cells = vec![0u64; months.len() * keys.len()];
    let mut files: Vec<FileView> = keys
        .iter()
        .map(|k| {
            let (folder, name) = k.rsplit_once('/').unwrap_or(("", k));
            FileView {
                key: (*k).to_owned(),
                name: name.to_owned(),
                folder: format!("{folder}/"),
                downloads: 0,
                requests: 0,
                bytes: 0,
                share: 0.0,
                bar: 0.0,
                cells: Vec::new(),
            }
        })
        .collect();
    let mut month_views: Vec<MonthView> = months
        .iter()
        .map(|m| MonthView {
            month: m.clone(),
            cells: Vec::new(),
            downloads: 0,
            requests: 0,
            bytes: 0,
        })
        .collect();
    let mut totals = TotalsView {
        downloads: 0,
        requests: 0,
        bytes: 0,
    };
    // Saturating: a damaged database's figures read as i64::MAX (see store),
    // and three of them must not wrap a total into a small number.
    for r in rows {
        let (mi, fi) = (month_idx[r.month.as_str()], file_idx[r.path.as_str()]);
        let cell = &mut cells[mi * keys.len() + fi];
        *cell = cell.saturating_add(r.downloads);
        for t in [
            &mut month_views[mi].downloads,
            &mut files[fi].downloads,
            &mut totals.downloads,
        ] {
            *t = t.saturating_add(r.downloads);
        }
        for t in [
            &mut month_views[mi].requests,
            &mut files[fi].requests,
            &mut totals.requests,
        ] {
            *t = t.saturating_add(r.requests);
        }
        for t in [
            &mut month_views[mi].bytes,
            &mut files[fi].bytes,
            &mut totals.bytes,
        ] {
            *t = t.saturating_add(r.bytes);
        }
    }
    let cell = |n: u64| if n == 0 { String::new() } else { grouped(n) };
    for (mi, mv) in month_views.iter_mut().enumerate() {
        mv.cells = cells[mi * keys.len()..(mi + 1) * keys.len()]
            .iter()
            .map(|&n| cell(n))
            .collect();
    }
    for (fi, f) in files.iter_mut().enumerate() {
        f.cells = (0..months.len())
            .map(|mi| cell(cells[mi * keys.len() + fi]))
            .collect();
    }
    let top = files.iter().map(|f| f.downloads).max().unwrap_or(0);
    for f in &mut files {
        if totals.downloads > 0 {
            f.share = round1(f.downloads as f64 * 100.0 / totals.downloads as f64);
            f.bar = round1(f.downloads as f64 * 100.0 / top as f64);
        }
    }
    let period = (!months.is_empty()).then(|| PeriodView {
        first: months[months.len() - 1].clone(),
        last: months[0].clone(),
        months: months.len(),
    });
    let (chart, chart_narrow) = if months.is_empty() {
        (None, None)
    } else {
        let (wide, narrow) = charts(&month_views);
        (Some(wide), Some(narrow))
    };
    StatsView {
        site: site(settings),
        generated: generated(now),
        period,
        files,
        months: month_views,
        totals,
        chart,
        chart_narrow,
        servers: Vec::new(),
        detail: None,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The smallest "nice" number (1, 2, 2.5 or 5 × 10ⁿ) ≥ `x`, for the y axis;
/// 2.5 only from 25 up, so small counts keep whole-number ticks.
pub(super) fn nice_ceil(x: f64) -> f64 {
    if x <= 1.0 {
        return 1.0;
    }
    let mag = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .filter(|f| mag >= 10.0 || **f != 2.5)
        .map(|f| f * mag)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * mag)
}

/// `40,000` → `40k`, `2,500,000` → `2.5M`: y labels of the narrow chart.
fn compact(n: u64) -> String {
    let short = |v: f64, unit: &str| {
        let t = format!("{:.1}", v);
        format!("{}{unit}", t.strip_suffix(".0").unwrap_or(&t))
    };
    match n {
        0..=9_999 => grouped(n),
        10_000..=999_999 => short(n as f64 / 1e3, "k"),
        _ => short(n as f64 / 1e6, "M"),
    }
}

/// Size and margins of a chart, in SVG user units (≈ CSS pixels when shown
/// at its natural width, so 12-unit text stays readable).
struct Geometry {
    width: u32,
    height: u32,
    left: u32,
    right: u32,
    top: u32,
    bottom: u32,
    compact_labels: bool,
}

/// Desktop chart, and a narrow one for phones (the page shows one of them).
const WIDE: Geometry = Geometry {
    width: 960,
    height: 280,
    left: 64,
    right: 948,
    top: 16,
    bottom: 248,
    compact_labels: false,
};
const NARROW: Geometry = Geometry {
    width: 360,
    height: 240,
    left: 40,
    right: 352,
    top: 12,
    bottom: 208,
    compact_labels: true,
};

pub fn charts(months_newest_first: &[MonthView]) -> (ChartView, ChartView) {
    (
        chart(months_newest_first, &WIDE),
        chart(months_newest_first, &NARROW),
    )
}

/// Bar chart of monthly downloads, oldest month on the left.
fn chart(months_newest_first: &[MonthView], g: &Geometry) -> ChartView {
    let (left, right, top, bottom) = (g.left as f64, g.right as f64, g.top as f64, g.bottom as f64);
    let n = months_newest_first.len() as f64;
    let max = months_newest_first
        .iter()
        .map(|m| m.downloads)
        .max()
        .unwrap_or(0);
    // Four equal steps of a nice size.
    let step = nice_ceil(max as f64 / 4.0);
    let y_max = step * 4.0;
    let slot = (right - left) / n;
    let bar_w = (slot * 0.72).max(0.8);
    let y_of = |v: f64| bottom - (bottom - top) * v / y_max;
    let bars = months_newest_first
        .iter()
        .rev()
        .enumerate()
        .map(|(i, m)| {
            let y = y_of(m.downloads as f64);
            BarView {
                x: round1(left + slot * i as f64 + (slot - bar_w) / 2.0),
                y: round1(y),
                w: round1(bar_w),
                h: round1(bottom - y),
                month: m.month.clone(),
                downloads: m.downloads,
            }
        })
        .collect::<Vec<_>>();
    let y_ticks = (0..=4)
        .map(|i| {
            let v = (step * i as f64) as u64;
            let label = if g.compact_labels {
                compact(v)
            } else {
                grouped(v)
            };
            TickView {
                x: left,
                y: round1(y_of(v as f64)),
                label,
            }
        })
        .collect();
    // Every month when they fit, otherwise Januaries with the year; then
    // every k-th candidate so labels never overlap (≈ 7 units per glyph).
    let few = months_newest_first.len() <= 14;
    let candidates: Vec<&BarView> = bars
        .iter()
        .filter(|b| few || b.month.ends_with("-01"))
        .collect();
    let label_of = |b: &BarView| {
        if few {
            b.month.clone()
        } else {
            b.month.get(..4).unwrap_or(&b.month).to_owned()
        }
    };
    let needed = candidates
        .iter()
        .map(|b| label_of(b).chars().count())
        .max()
        .unwrap_or(0) as f64
        * 7.0
        + 12.0;
    let gap = if candidates.len() > 1 {
        candidates[1].x - candidates[0].x
    } else {
        needed
    };
    let every = (needed / gap).ceil().max(1.0) as usize;
    let x_labels = candidates
        .iter()
        .step_by(every)
        .map(|b| TickView {
            x: round1(b.x + b.w / 2.0),
            y: bottom + 20.0,
            label: label_of(b),
        })
        .collect();
    let first = &months_newest_first[months_newest_first.len() - 1];
    let peak = months_newest_first
        .iter()
        .max_by_key(|m| (m.downloads, std::cmp::Reverse(m.month.clone())))
        .unwrap_or(first);
    let summary = format!(
        "Downloads per month from {} to {}; highest: {} download{} in {}.",
        first.month,
        months_newest_first[0].month,
        grouped(peak.downloads),
        if peak.downloads == 1 { "" } else { "s" },
        peak.month
    );
    ChartView {
        width: g.width,
        height: g.height,
        left: g.left,
        right: g.right,
        top: g.top,
        bottom: g.bottom,
        summary,
        bars,
        y_ticks,
        x_labels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_steps_are_nice_and_whole() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(0.75), 1.0);
        assert_eq!(nice_ceil(2.2), 5.0);
        assert_eq!(nice_ceil(3.75), 5.0);
        assert_eq!(nice_ceil(21.0), 25.0);
        assert_eq!(nice_ceil(24.0), 25.0);
        assert_eq!(nice_ceil(8349.0), 10000.0);
        assert_eq!(compact(9_999), "9,999");
        assert_eq!(compact(40_000), "40k");
        assert_eq!(compact(12_500), "12.5k");
        assert_eq!(compact(2_500_000), "2.5M");
    }
}
