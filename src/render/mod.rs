//! Renders the static pages — the public listing `ROOT/index.html`, the
//! private statistics `ROOT/.stats/index.html` (with `counts.json`) and a
//! page per month `ROOT/.stats/YYYY-MM.html` — and watches the ISO tree so
//! the pipe can re-render when it changes.
//!
//! Invariants: both pages are rendered to strings before anything is written,
//! so a template error leaves the previous pages in place; every file is
//! replaced atomically (temp file in the same folder, then rename, mode 0644),
//! so Apache never serves half a page; nothing is ever written through a
//! symbolic link (see `write`: a `.stats` that is a link is refused, the
//! public page is still written, and the summary says why the statistics were
//! not); every string from file names or logs is HTML-escaped by the template
//! engine (autoescape for `.html`, nothing from data is marked safe).
//!
//! Templates are minijinja files embedded from `templates/`; a `--templates
//! DIR` override is consulted first by the loader, file by file, so an
//! override directory only needs the templates it changes.
//!
//! The public page lists only complete files: one written within the settle
//! time is left out (see `scan`), and the summary says when to render again.
//!
//! A month page ends with a stamp of everything it is made of
//! ([`month_stamp`]); a month whose page on disk ends with the same stamp is
//! neither rendered nor written again, so a render costs the months that
//! changed, not all of them.

pub mod detail;
mod format;
mod natsort;
mod scan;
mod view;
mod watch;
mod write;

pub use crate::store::PageFacts;
pub use format::human_size;
pub use watch::TreeWatcher;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Local};
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Settings for rendering (validated config; built from the CLI/config file).
#[derive(Debug, Clone)]
pub struct PageSettings {
    /// The download root that Apache serves.
    pub root: PathBuf,
    /// `--templates DIR`: templates found here replace the embedded defaults.
    pub templates_dir: Option<PathBuf>,
    /// Shown in the header and the `<title>` (default "Downloads").
    pub site_title: String,
    pub logo_url: Option<String>,
    pub home_url: Option<String>,
    /// `--public-counts`: show each image's downloads on the public page.
    pub public_counts: bool,
    /// Counted extensions, e.g. `[".iso"]` (ASCII case-insensitive).
    pub exts: Vec<String>,
    /// `--settle`: a file modified less than this long ago is still being
    /// written and not listed yet.
    pub settle: Duration,
}

/// Default settle time: longer than any pause of a healthy `scp` or browser
/// upload between two writes, short enough that an admin who just copied an
/// image sees it listed within the minute.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(60);

impl PageSettings {
    /// The defaults: title "Downloads", no logo or home link, counts private, `.iso` images.
    pub fn new(root: PathBuf) -> PageSettings {
        PageSettings {
            root,
            templates_dir: None,
            site_title: "Downloads".into(),
            logo_url: None,
            home_url: None,
            public_counts: false,
            exts: vec![".iso".into()],
            settle: DEFAULT_SETTLE,
        }
    }
}

/// One file × month of the statistics (downloads already merged with legacy figures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMonth {
    /// Report key, e.g. `/isos/linuxvillage-24.04-amd64.iso`.
    pub path: String,
    /// `YYYY-MM`.
    pub month: String,
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
    /// See `store::MonthRow::completed`: `None` is "not known", never 0.
    pub completed: Option<u64>,
}

/// One server's figures over the whole period (see `store::ServerMonthRow`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerTotal {
    pub server: String,
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
}

/// What the store knows, as the pages need it.
#[derive(Debug, Clone)]
pub struct StatsSnapshot {
    /// Any order; several rows for the same file and month are added up.
    pub rows: Vec<FileMonth>,
    /// Exactly what `report --json` prints; written byte-identical to `ROOT/.stats/counts.json`.
    pub counts_json: String,
    /// Per server, sorted by name; the page shows them when there are several.
    pub servers: Vec<ServerTotal>,
    /// The store's per month sums of facts and per day totals: the
    /// overview's sections beyond the file × month table, and the month
    /// pages (empty: only the monthly figures are shown).
    pub facts: PageFacts,
}

/// A month page, as the overview and the other month pages link it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MonthLink {
    pub month: String,
    pub href: String,
    pub downloads: u64,
}

/// "Mean downloads per day this month" (DeleGate's means): the month so
/// far, over the days of it that were counted.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MeanView {
    pub month: String,
    pub days: i32,
    pub mean: String,
}

/// The overview's sections beyond the file × month table (see `detail`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OverviewDetail {
    /// The whole period; its files carry their trend of the last 12 months.
    pub all: detail::RangeView,
    /// The last 90 days (from the first counted day when that is later).
    pub daily: Option<detail::DailyChart>,
    /// The first day with per day figures.
    pub began: Option<String>,
    pub this_month: Option<MeanView>,
    /// Newest first.
    pub months: Vec<MonthLink>,
}

/// What a month page shows (`ROOT/.stats/YYYY-MM.html`).
#[derive(serde::Serialize)]
struct MonthPage<'a> {
    site: view::SiteView,
    generated: view::GeneratedView,
    month: &'a str,
    prev: Option<&'a MonthLink>,
    next: Option<&'a MonthLink>,
    range: detail::RangeView,
    daily: Option<detail::DailyChart>,
    /// The month's days with figures.
    days: Vec<detail::DayView>,
    mean: MeanView,
}

/// What one [`render_all`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSummary {
    /// Images listed on the public page.
    pub isos: usize,
    /// Files with statistics on the statistics page.
    pub files: usize,
    /// Images, checksums and signatures left out because they are still being written.
    pub unsettled: usize,
    /// When the first of them may be listed (from the render's `now`): render again then.
    pub next_settle: Option<Duration>,
    pub elapsed: Duration,
    /// Why the statistics page and `counts.json` were not written (one line,
    /// without the `dlcount: ` prefix); the public page was.
    pub stats_refused: Option<String>,
}

/// The default templates, embedded at build time. `base.html` is the shared
/// layout, `style.css` is included inline (pages load nothing external).
const DEFAULT_TEMPLATES: [(&str, &str); 6] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("month.html", include_str!("../../templates/month.html")),
    (
        "sections.html",
        include_str!("../../templates/sections.html"),
    ),
    ("public.html", include_str!("../../templates/public.html")),
    ("stats.html", include_str!("../../templates/stats.html")),
    ("style.css", include_str!("../../templates/style.css")),
];

/// Name of the hidden folder under ROOT for the statistics.
pub const STATS_DIR: &str = ".stats";

/// Renders `ROOT/index.html`, `ROOT/.stats/index.html` and
/// `ROOT/.stats/counts.json`, each replaced atomically. On a template error
/// nothing is written and the error names the template and line. A
/// `ROOT/.stats` that is a symbolic link or not a directory gets nothing: the
/// public page is written and [`RenderSummary::stats_refused`] says why.
pub fn render_all(
    settings: &PageSettings,
    stats: &StatsSnapshot,
    now: DateTime<Local>,
) -> Result<RenderSummary> {
    let start = Instant::now();
    let classifier = crate::classify::Classifier::new(&settings.exts);
    let settle = scan::Settle {
        now: now.into(),
        time: settings.settle,
    };
    let found = scan::scan(&settings.root, &classifier, settle)?;
    let public_view = view::public(settings, &found.folders, &stats.rows, &now);
    let mut stats_view = view::stats(settings, &stats.rows, &now);
    if stats.servers.len() > 1 {
        stats_view.servers = stats.servers.clone();
    }
    let summary_counts = (public_view.iso_count, stats_view.files.len());

    let env = environment(settings.templates_dir.clone());
    let today = crate::store::day_of(now.date_naive());
    let by_month = detail::by_month(&stats.rows, &stats.facts);
    let began = stats.facts.days.first().map(|d| d.day);
    // A page per month with figures counted per day (a month known only
    // from the old script's counts.json has nothing more to show).
    let links: Vec<MonthLink> = by_month
        .iter()
        .filter(|(_, m)| !m.days.is_empty())
        .map(|(name, m)| MonthLink {
            month: name.to_string(),
            href: format!("{name}.html"),
            downloads: m
                .rows
                .iter()
                .fold(0u64, |a, r| a.saturating_add(r.downloads)),
        })
        .collect();
    stats_view.detail = overview_detail(stats, &by_month, &links, began, today);
    // The folder is opened (made if missing) before anything is rendered,
    // so a month page's stamp can be read; nothing is written until every
    // page is rendered.
    let root = write::Dir::open(&settings.root)?;
    let stats_dir = root.subdir(STATS_DIR)?;
    let sources = month_sources(&env)?;
    let mut month_pages = Vec::with_capacity(links.len());
    for (i, link) in links.iter().enumerate() {
        let Some((from, to)) = detail::month_days(&link.month) else {
            continue;
        };
        let m = &by_month[link.month.as_str()];
        let prev = i.checked_sub(1).map(|p| &links[p]);
        let next = links.get(i + 1);
        let name = format!("{}.html", link.month);
        // A month whose inputs did not change is neither rendered nor
        // written again: past months stay untouched, and cost a hash.
        let end = to.min(today.max(from));
        let stamp = month_stamp(&sources, settings, m, prev, next, began, end);
        if let Ok(dir) = &stats_dir {
            if dir
                .tail(&name, stamp.len() as u64)?
                .is_some_and(|old| old == stamp.as_bytes())
            {
                continue;
            }
        }
        let page = MonthPage {
            site: view::site(settings),
            generated: view::generated(&now),
            month: &link.month,
            prev,
            next,
            daily: detail::daily_chart(&m.days, from, end),
            days: detail::day_table(&m.days),
            mean: mean(&link.month, day_downloads(&m.days), began, from, to, today),
            range: detail::range([m]),
        };
        let mut html = render(&env, "month.html", Value::from(Serde(&page)))?;
        html.push_str(&stamp);
        month_pages.push((name, html));
    }
    let public_html = render(&env, "public.html", Value::from(Serde(&public_view)))?;
    let stats_html = render(&env, "stats.html", Value::from(Serde(&stats_view)))?;

    let stats_refused = match stats_dir {
        Ok(stats_dir) => {
            stats_dir.write_atomic("counts.json", stats.counts_json.as_bytes())?;
            for (name, html) in &month_pages {
                stats_dir.write_atomic(name, html.as_bytes())?;
            }
            stats_dir.write_atomic("index.html", stats_html.as_bytes())?;
            None
        }
        Err(why) => {
            let at = settings.root.join(STATS_DIR);
            Some(match why {
                write::Refused::Symlink => format!(
                    "{} is a symbolic link; not writing the statistics through it",
                    at.display()
                ),
                write::Refused::NotADirectory => format!(
                    "{} is not a directory; not writing the statistics there",
                    at.display()
                ),
            })
        }
    };
    root.write_atomic("index.html", public_html.as_bytes())?;
    Ok(RenderSummary {
        isos: summary_counts.0,
        files: summary_counts.1,
        unsettled: found.unsettled,
        next_settle: found.next_settle,
        elapsed: start.elapsed(),
        stats_refused,
    })
}

/// The overview's sections, once anything was counted.
fn overview_detail(
    stats: &StatsSnapshot,
    by_month: &std::collections::BTreeMap<&str, detail::Month<'_>>,
    links: &[MonthLink],
    began: Option<i32>,
    today: i32,
) -> Option<OverviewDetail> {
    if by_month.is_empty() {
        return None;
    }
    let mut all = detail::range(by_month.values());
    let this_month = crate::store::month_of(today);
    detail::add_trends(&mut all.files, &stats.rows, &this_month);
    let days = &stats.facts.days;
    let daily = match (days.first(), days.last()) {
        (Some(first), Some(last)) => {
            let last = last.day.max(today);
            let from = first.day.max(last - 89);
            // Days are sorted: the chart reads only its own.
            let at = days.partition_point(|d| d.day < from);
            let recent: Vec<&crate::store::DayTotalRow> = days[at..].iter().collect();
            detail::daily_chart(&recent, from, last)
        }
        _ => None,
    };
    let this_month = began.and_then(|_| {
        let (from, to) = detail::month_days(&this_month)?;
        let downloads = by_month
            .get(this_month.as_str())
            .map_or(0, |m| day_downloads(&m.days));
        Some(mean(&this_month, downloads, began, from, to, today))
    });
    Some(OverviewDetail {
        daily,
        began: began.map(crate::store::date_of),
        this_month,
        months: links.iter().rev().cloned().collect(),
        all,
    })
}

fn day_downloads(days: &[&crate::store::DayTotalRow]) -> u64 {
    days.iter().fold(0u64, |a, d| a.saturating_add(d.downloads))
}

/// Mean downloads per day of a month: over its days up to `today` (the
/// whole month once it is over), from the day counting began when that is
/// inside it, so days before counting are not zeros.
fn mean(
    month: &str,
    downloads: u64,
    began: Option<i32>,
    from: i32,
    to: i32,
    today: i32,
) -> MeanView {
    let start = began.map_or(from, |d| d.max(from));
    let end = to.min(today.max(start));
    let days = (end - start + 1).max(1);
    let m = downloads as f64 / days as f64;
    MeanView {
        month: month.to_string(),
        days,
        mean: if m >= 100.0 {
            grouped_f(m.round())
        } else {
            format!("{m:.1}")
        },
    }
}

fn grouped_f(x: f64) -> String {
    format::grouped(x as u64)
}

/// Raised when the Rust side of a month page changes (what its figures are,
/// how they are laid out for the templates), so pages stamped by an older
/// dlcount are rendered again.
const MONTH_PAGE_FORMAT: u32 = 1;

/// The sources of the templates a month page is made of, as the loader
/// finds them (an override or the default), for [`month_stamp`].
fn month_sources(env: &Environment<'static>) -> Result<Vec<String>> {
    ["month.html", "sections.html", "base.html", "style.css"]
        .iter()
        .map(|name| {
            env.get_template(name)
                .map(|t| t.source().to_string())
                .map_err(|e| template_error(name, &e))
        })
        .collect()
}

/// The last line of a month page: a hash of everything the page is made
/// of — its rows, facts and days, its neighbours, the site's settings, the
/// templates, dlcount's version and [`MONTH_PAGE_FORMAT`] — but not the time
/// of rendering. A page on disk ending with the same line would be rendered
/// the same (time aside), so it is left alone.
fn month_stamp(
    sources: &[String],
    settings: &PageSettings,
    m: &detail::Month<'_>,
    prev: Option<&MonthLink>,
    next: Option<&MonthLink>,
    began: Option<i32>,
    end: i32,
) -> String {
    let mut h = blake3::Hasher::new();
    let mut s = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    s(env!("CARGO_PKG_VERSION").as_bytes());
    s(&MONTH_PAGE_FORMAT.to_le_bytes());
    for t in sources {
        s(t.as_bytes());
    }
    s(settings.site_title.as_bytes());
    s(settings.logo_url.as_deref().unwrap_or("\0").as_bytes());
    s(settings.home_url.as_deref().unwrap_or("\0").as_bytes());
    let n = |v: u64| v.to_le_bytes();
    for r in &m.rows {
        s(r.path.as_bytes());
        for v in [r.downloads, r.requests, r.bytes] {
            s(&n(v));
        }
        s(&r.completed.map_or([0xff; 9], |c| {
            let mut b = [0u8; 9];
            b[1..].copy_from_slice(&n(c));
            b
        }));
    }
    for f in &m.facts {
        s(f.kind.as_bytes());
        s(f.value.as_bytes());
        s(&n(f.n));
    }
    let mut bots: Vec<(&&str, &u64)> = m.bots.iter().collect();
    bots.sort();
    for (path, b) in bots {
        s(path.as_bytes());
        s(&n(*b));
    }
    for w in m.networks.iter().flat_map(|b| b.iter()) {
        s(&n(*w));
    }
    for d in &m.days {
        s(&d.day.to_le_bytes());
        for v in [d.downloads, d.requests, d.bytes, d.bots] {
            s(&n(v));
        }
    }
    for link in [prev, next] {
        match link {
            Some(l) => {
                s(l.month.as_bytes());
                s(&n(l.downloads));
            }
            None => s(b"-"),
        }
    }
    s(&began.unwrap_or(0).to_le_bytes());
    s(&end.to_le_bytes());
    format!(
        "<!-- dlcount content {} -->\n",
        &h.finalize().to_hex()[..32]
    )
}

/// `dlcount-pipe templates --dump DIR`: writes the default templates into
/// `DIR` (created if missing) as a starting point for `--templates DIR`.
/// Existing files are never overwritten: identical ones are left alone, and
/// if any differs nothing is written and the error lists them. Returns the
/// files written.
pub fn dump_templates(dir: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut differing = Vec::new();
    let mut to_write = Vec::new();
    for (name, text) in DEFAULT_TEMPLATES {
        let path = dir.join(name);
        match fs::read(&path) {
            Ok(existing) if existing == text.as_bytes() => {}
            Ok(_) => differing.push(path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => to_write.push((name, path, text)),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    if !differing.is_empty() {
        bail!(
            "refusing to overwrite templates that differ from the defaults: {}",
            differing.join(", ")
        );
    }
    let target = write::Dir::open(dir)?;
    let mut written = Vec::new();
    for (name, path, text) in to_write {
        target.write_atomic(name, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// The template environment: override directory first, embedded default second.
fn environment(override_dir: Option<PathBuf>) -> Environment<'static> {
    let mut env = Environment::new();
    // Every template ends up inside an HTML page (style.css is included
    // inline), so every template escapes what it prints as HTML.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_formatter(format::html_formatter);
    // Catches typos in override templates (printing or looping over an
    // unknown variable is an error) while `{% if x %}` on optional ones works.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.add_filter("grouped", format::grouped_filter);
    env.add_filter("human_size", format::human_size_filter);
    env.set_loader(move |name| {
        if !is_plain_relative(name) {
            return Ok(None);
        }
        if let Some(dir) = &override_dir {
            let path = dir.join(name);
            match fs::read_to_string(&path) {
                Ok(text) => return Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!("cannot read template {}: {e}", path.display()),
                    ))
                }
            }
        }
        Ok(DEFAULT_TEMPLATES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| (*t).to_owned()))
    });
    env
}

/// Template names are relative paths without `..`, so an override cannot
/// make the loader read outside its directory.
fn is_plain_relative(name: &str) -> bool {
    !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn render(env: &Environment<'static>, name: &str, ctx: Value) -> Result<String> {
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| template_error(name, &e))
}

/// "template public.html line 12: syntax error: unexpected end of input …".
/// An error inside an included or parent template is reported where it is
/// (the innermost template), followed by the chain that led there.
fn template_error(rendering: &str, e: &minijinja::Error) -> anyhow::Error {
    let mut chain: Vec<&minijinja::Error> = vec![e];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(inner) = s.downcast_ref::<minijinja::Error>() {
            chain.push(inner);
        }
        source = s.source();
    }
    let describe = |err: &minijinja::Error| {
        let mut d = format!("template {}", err.name().unwrap_or(rendering));
        if let Some(line) = err.line() {
            d.push_str(&format!(" line {line}"));
        }
        d
    };
    let inner = chain[chain.len() - 1];
    let mut msg = format!("{}: {}", describe(inner), inner.kind());
    if let Some(detail) = inner.detail() {
        msg.push_str(&format!(": {detail}"));
    }
    for outer in chain[..chain.len() - 1].iter().rev() {
        msg.push_str(&format!(", from {}", describe(outer)));
    }
    if inner.name().is_some_and(|n| n != rendering) && chain.len() == 1 {
        msg.push_str(&format!(", while rendering {rendering}"));
    }
    anyhow::anyhow!(msg)
}

#[cfg(test)]
mod tests;
