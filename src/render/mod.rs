//! Renders the two static pages — the public listing `ROOT/index.html` and
//! the private statistics `ROOT/.stats/index.html` (with `counts.json`) — and
//! watches the ISO tree so the pipe can re-render when it changes.
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

pub mod detail;
mod format;
mod natsort;
mod scan;
mod view;
mod watch;
mod write;

pub use detail::DayRows;
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
    /// Per file and day figures and facts: the overview's per day sections
    /// and the month pages (none: only the monthly figures are shown).
    pub day_rows: DayRows,
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

/// The overview's per day sections (see `detail`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OverviewDetail {
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
    let by_month = detail::Slice::by_month(&stats.day_rows);
    let links: Vec<MonthLink> = by_month
        .iter()
        .map(|(m, slice)| MonthLink {
            month: m.clone(),
            href: format!("{m}.html"),
            downloads: slice
                .days
                .iter()
                .fold(0u64, |a, r| a.saturating_add(r.downloads)),
        })
        .collect();
    stats_view.detail = overview_detail(&stats.day_rows, &by_month, &links, today);
    let mut month_pages = Vec::with_capacity(links.len());
    for (i, link) in links.iter().enumerate() {
        let Some((from, to)) = detail::month_days(&link.month) else {
            continue;
        };
        let slice = &by_month[&link.month];
        let range = detail::range(slice, from, to);
        let page = MonthPage {
            site: view::site(settings),
            generated: view::generated(&now),
            month: &link.month,
            prev: i.checked_sub(1).map(|p| &links[p]),
            next: links.get(i + 1),
            daily: detail::daily_chart(slice, from, to.min(today.max(from))),
            mean: mean(
                &link.month,
                range.downloads,
                range.first_day.as_deref(),
                from,
                to,
                today,
            ),
            range,
        };
        let html = render(&env, "month.html", Value::from(Serde(&page)))?;
        month_pages.push((
            format!("{}.html", link.month),
            stamped(html, &page.generated),
        ));
    }
    let public_html = render(&env, "public.html", Value::from(Serde(&public_view)))?;
    let stats_html = render(&env, "stats.html", Value::from(Serde(&stats_view)))?;

    let root = write::Dir::open(&settings.root)?;
    let stats_refused = match root.subdir(STATS_DIR)? {
        Ok(stats_dir) => {
            stats_dir.write_atomic("counts.json", stats.counts_json.as_bytes())?;
            for (name, (html, stamp)) in &month_pages {
                // A month whose page would say the same (time of rendering
                // aside) is not written again: past months stay untouched.
                let same = stats_dir
                    .read(name)?
                    .is_some_and(|old| old.ends_with(stamp.as_bytes()));
                if !same {
                    stats_dir.write_atomic(name, html.as_bytes())?;
                }
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

/// The overview's per day sections, when any day was counted.
fn overview_detail(
    rows: &DayRows,
    by_month: &std::collections::BTreeMap<String, detail::Slice<'_>>,
    links: &[MonthLink],
    today: i32,
) -> Option<OverviewDetail> {
    if rows.days.is_empty() {
        return None;
    }
    let all = detail::Slice::all(rows);
    let whole = detail::range(&all, i32::MIN, i32::MAX);
    let first = rows.days.iter().map(|r| r.day).min()?;
    let last = rows.days.iter().map(|r| r.day).max()?.max(today);
    let from = first.max(last - 89);
    // The chart and this month's mean read only their months' rows.
    let mut recent = detail::Slice::default();
    for (_, s) in by_month.range(crate::store::month_of(from)..) {
        recent.days.extend(&s.days);
        recent.facts.extend(&s.facts);
    }
    let this_month = crate::store::month_of(today);
    let this_month = detail::month_days(&this_month).map(|(from, to)| {
        let r = by_month
            .get(&this_month)
            .map(|s| detail::range(s, from, to));
        let (downloads, first) = r.map_or((0, None), |r| (r.downloads, r.first_day));
        mean(&this_month, downloads, first.as_deref(), from, to, today)
    });
    Some(OverviewDetail {
        daily: detail::daily_chart(&recent, from, last),
        began: Some(crate::store::date_of(first)),
        this_month,
        months: links.iter().rev().cloned().collect(),
        all: whole,
    })
}

/// Mean downloads per day of a month: over its days up to `today` (the
/// whole month once it is over), from the first counted day when counting
/// began inside it, so days before counting are not zeros.
fn mean(
    month: &str,
    downloads: u64,
    first: Option<&str>,
    from: i32,
    to: i32,
    today: i32,
) -> MeanView {
    let start = first
        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .map_or(from, |d| crate::store::day_of(d).max(from));
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

/// `html` with a last line that identifies its content: a hash of the page
/// without the time it was rendered, so a month page whose figures (or
/// templates) did not change is recognised on disk and left alone.
fn stamped(mut html: String, generated: &view::GeneratedView) -> (String, String) {
    let content = html
        .replace(&generated.iso, "")
        .replace(&generated.text, "");
    let stamp = format!(
        "<!-- dlcount content {} -->\n",
        &blake3::hash(content.as_bytes()).to_hex()[..32]
    );
    html.push_str(&stamp);
    (html, stamp)
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
