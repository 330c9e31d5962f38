//! Keeps the two pages current: the bridge between the counting side (store,
//! pipe triggers) and the renderer (`render`).
//!
//! Invariant: at most one render runs at a time, on its own thread, and a
//! burst of triggers (a new day plus a directory change, say) gives one
//! render — triggers only set a flag that the render thread takes whole.
//! Nothing here can block the pipe's reader or its database owner.
//!
//! When to render: at once for a start, a new day or a changed ISO tree; for
//! committed counts, at most once per `--refresh` interval (the first change
//! after a quiet spell renders at once, a stream of changes once per
//! interval, no change never); and when a file left off the public page as
//! still being written has settled, so a new ISO appears by itself.
//!
//! A shared database (PostgreSQL) is read at most once per
//! [`SHARED_READ_INTERVAL`], whatever triggers renders: a mirror sync that
//! lands a file a second re-renders the public listing of this server's
//! ROOT each time, from the figures last read.

use crate::config::Settings;
use crate::pipe::{PageTrigger, RenderReason};
use crate::render::{self, FileMonth, PageSettings, StatsSnapshot, TreeWatcher};
use crate::store::Store;
use anyhow::Result;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Builds the renderer's settings from ours.
pub fn page_settings(s: &Settings) -> PageSettings {
    PageSettings {
        root: s.root.clone(),
        templates_dir: s.templates.clone(),
        site_title: s.site_title.clone(),
        logo_url: s.logo_url.clone(),
        home_url: s.home_url.clone(),
        public_counts: s.public_counts,
        exts: s.exts.clone(),
        settle: s.settle,
    }
}

/// Reads the statistics the pages show. A database that does not exist yet
/// gives empty statistics (the public page is still worth rendering).
pub fn snapshot(db: &crate::config::DbTarget) -> Result<StatsSnapshot> {
    // Only a database that is really absent means "empty"; an unreadable one is an error.
    let absent = db
        .sqlite()
        .is_some_and(|p| matches!(p.try_exists(), Ok(false)));
    let (rows, server_rows, facts) = if absent {
        (Vec::new(), Vec::new(), render::PageFacts::default())
    } else {
        match Store::open_read(db) {
            // Sums per month and per day, never a row per file and day:
            // the pages' read stays small however long the history.
            Ok(store) => (store.monthly()?, store.by_server()?, store.page_facts()?),
            // A PostgreSQL database whose tables the first logger has not
            // made yet is as empty as an SQLite file not created yet.
            Err(e) if e.is::<crate::store::postgres::NoSchema>() => {
                (Vec::new(), Vec::new(), render::PageFacts::default())
            }
            Err(e) => return Err(e),
        }
    };
    let mut servers: std::collections::BTreeMap<String, render::ServerTotal> = Default::default();
    for r in server_rows {
        let t = servers
            .entry(r.server.clone())
            .or_insert_with(|| render::ServerTotal {
                server: r.server,
                downloads: 0,
                requests: 0,
                bytes: 0,
            });
        t.downloads = t.downloads.saturating_add(r.downloads);
        t.requests = t.requests.saturating_add(r.requests);
        t.bytes = t.bytes.saturating_add(r.bytes);
    }
    let counts_json = crate::report::to_json(&rows, false);
    Ok(StatsSnapshot {
        rows: rows
            .into_iter()
            .map(|r| FileMonth {
                path: r.path,
                month: r.month,
                downloads: r.downloads,
                requests: r.requests,
                bytes: r.bytes,
                completed: r.completed,
            })
            .collect(),
        counts_json,
        servers: servers.into_values().collect(),
        facts,
    })
}

/// `dlcount-pipe render`: both pages, now.
pub fn render_now(s: &Settings) -> Result<render::RenderSummary> {
    let stats = snapshot(&s.db)?;
    render::render_all(&page_settings(s), &stats, chrono::Local::now())
}

/// How often a logger reads a shared database for its pages, at most: a
/// read is one connection and six statements, so this keeps every server
/// at a few queries a minute however short `--refresh` is and however often
/// its ISO tree changes.
pub const SHARED_READ_INTERVAL: Duration = Duration::from_secs(30);

/// The statistics a render shows: read afresh, or on a shared database the
/// last figures read, when they are younger than [`SHARED_READ_INTERVAL`]
/// and the render is for the tree (a new or settled file), not for counts
/// or a new day.
struct SnapshotCache {
    shared: bool,
    last: Option<(Instant, StatsSnapshot)>,
}

impl SnapshotCache {
    fn reusable(&self, reason: RenderReason, now: Instant) -> Option<&StatsSnapshot> {
        let tree_only = matches!(reason, RenderReason::TreeChanged | RenderReason::Settled);
        match &self.last {
            Some((at, stats))
                if self.shared && tree_only && now.duration_since(*at) < SHARED_READ_INTERVAL =>
            {
                Some(stats)
            }
            _ => None,
        }
    }

    fn get(
        &mut self,
        reason: RenderReason,
        now: Instant,
        read: impl FnOnce() -> Result<StatsSnapshot>,
    ) -> Result<StatsSnapshot> {
        if let Some(stats) = self.reusable(reason, now) {
            return Ok(stats.clone());
        }
        let stats = read()?;
        if self.shared {
            self.last = Some((now, stats.clone()));
        }
        Ok(stats)
    }
}

#[derive(Default)]
struct Wanted {
    /// A render wanted as soon as possible.
    pending: Option<RenderReason>,
    /// Counts were committed since the last render began.
    counts_changed: bool,
    stop: bool,
}

/// When the next render is due; kept apart from the thread so the rule is
/// tested without clocks or threads.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// `--refresh`; `None`: committed counts alone never render.
    refresh: Option<Duration>,
    last_render: Option<Instant>,
    /// When a file left off the last render as still being written settles.
    settle_at: Option<Instant>,
    /// The database is shared with other servers (PostgreSQL), whose
    /// commits this one does not see: their counts are read every `refresh`
    /// (never more often than [`SHARED_READ_INTERVAL`]), whether or not
    /// ours changed.
    shared: bool,
}

impl Schedule {
    /// The earliest time anything wanted is due, if anything is.
    fn due(&self, wanted: &Wanted, now: Instant) -> Option<Instant> {
        let asap = wanted.pending.map(|_| now);
        let counts = match (wanted.counts_changed || self.shared, self.refresh) {
            (true, Some(every)) => {
                let every = if self.shared {
                    every.max(SHARED_READ_INTERVAL)
                } else {
                    every
                };
                Some(self.last_render.map_or(now, |t| t + every))
            }
            _ => None,
        };
        [asap, counts, self.settle_at].into_iter().flatten().min()
    }

    fn rendered(&mut self, at: Instant, summary: Option<&render::RenderSummary>) {
        self.last_render = Some(at);
        // Past the settle time plus a little, as the file system's clock is coarser than ours.
        self.settle_at = summary
            .and_then(|s| s.next_settle)
            .map(|d| at + d + Duration::from_millis(200));
    }
}

/// The render thread of pipe mode plus the ISO-tree watcher.
pub struct PageService {
    state: Arc<(Mutex<Wanted>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    _watcher: Option<TreeWatcher>,
}

impl PageService {
    pub fn spawn(settings: &Settings) -> PageService {
        let state: Arc<(Mutex<Wanted>, Condvar)> = Arc::default();
        let s = settings.clone();
        let st = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("render".into())
            .spawn(move || render_loop(&s, &st))
            .expect("spawn render thread");
        let st = Arc::clone(&state);
        let watcher = match TreeWatcher::spawn(
            &settings.root,
            settings.exts.clone(),
            Box::new(move || request(&st, RenderReason::TreeChanged)),
        ) {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!(
                    "dlcount: cannot watch {} for new ISOs ({e:#}); the public page updates on the next day or count refresh",
                    settings.root.display()
                );
                None
            }
        };
        PageService {
            state,
            thread: Some(thread),
            _watcher: watcher,
        }
    }
}

fn request(state: &(Mutex<Wanted>, Condvar), reason: RenderReason) {
    let (lock, cv) = state;
    let mut w = lock.lock().unwrap_or_else(|e| e.into_inner());
    if reason == RenderReason::CountsChanged {
        w.counts_changed = true;
    } else {
        w.pending.get_or_insert(reason);
    }
    cv.notify_one();
}

impl PageService {
    /// A callback for other threads (the spool drainer) that committed counts.
    pub fn counts_changed_notifier(&self) -> Box<dyn Fn() + Send> {
        let state = Arc::clone(&self.state);
        Box::new(move || request(&state, RenderReason::CountsChanged))
    }
}

impl PageTrigger for PageService {
    fn trigger(&self, reason: RenderReason) {
        request(&self.state, reason);
    }
}

impl Drop for PageService {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.state;
            let mut w = lock.lock().unwrap_or_else(|e| e.into_inner());
            w.stop = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn render_loop(settings: &Settings, state: &(Mutex<Wanted>, Condvar)) {
    let (lock, cv) = state;
    let mut last_error: Option<String> = None;
    let mut last_refused: Option<String> = None;
    let mut schedule = Schedule {
        refresh: settings.refresh,
        last_render: None,
        settle_at: None,
        shared: settings.db.sqlite().is_none(),
    };
    let mut stats_cache = SnapshotCache {
        shared: schedule.shared,
        last: None,
    };
    loop {
        let (reason, stopping) = {
            let mut w = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let now = Instant::now();
                if w.stop {
                    // Counts committed since the last render are shown before we go.
                    if w.counts_changed && settings.refresh.is_some() {
                        break (RenderReason::CountsChanged, true);
                    }
                    return;
                }
                let due = schedule.due(&w, now);
                if due.is_some_and(|d| d <= now) {
                    let reason =
                        w.pending
                            .take()
                            .unwrap_or(if w.counts_changed || schedule.shared {
                                RenderReason::CountsChanged
                            } else {
                                RenderReason::Settled
                            });
                    // Cleared before the snapshot is read: a commit racing the render marks it again.
                    w.counts_changed = false;
                    break (reason, false);
                }
                let wait = due.map_or(Duration::from_secs(60), |d| d - now);
                w = cv
                    .wait_timeout(w, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        let started = Instant::now();
        let result = stats_cache
            .get(reason, started, || snapshot(&settings.db))
            .and_then(|stats| {
                render::render_all(&page_settings(settings), &stats, chrono::Local::now())
            });
        if stopping {
            // Best effort after the pipe's last word: a lasting problem was
            // already reported, and the next instance renders at its start.
            return;
        }
        schedule.rendered(started, result.as_ref().ok());
        match result {
            Ok(summary) => {
                if last_error.take().is_some() {
                    eprintln!("dlcount: pages rendered again ({reason:?})");
                }
                // Said when it starts and when it changes, not at every render.
                if summary.stats_refused != last_refused {
                    if let Some(why) = &summary.stats_refused {
                        eprintln!("dlcount: {why}");
                    }
                    last_refused = summary.stats_refused;
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                // The same failure every day need not fill Apache's error log.
                if last_error.as_deref() != Some(msg.as_str()) {
                    eprintln!("dlcount: cannot render the pages ({msg}); the previous pages stay in place");
                    last_error = Some(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn wanted(pending: Option<RenderReason>, counts_changed: bool) -> Wanted {
        Wanted {
            pending,
            counts_changed,
            stop: false,
        }
    }

    #[test]
    fn counts_render_at_most_once_per_refresh_and_only_when_changed() {
        let t0 = Instant::now();
        let mut s = Schedule {
            refresh: Some(MINUTE),
            last_render: None,
            settle_at: None,
            shared: false,
        };
        // Nothing wanted: no render, ever.
        assert_eq!(s.due(&wanted(None, false), t0), None);
        s.rendered(t0, None);
        assert_eq!(s.due(&wanted(None, false), t0 + 10 * MINUTE), None);
        // Counts committed 5 s after a render: due a minute after that render.
        let t5 = t0 + Duration::from_secs(5);
        assert_eq!(s.due(&wanted(None, true), t5), Some(t0 + MINUTE));
        // After a quiet spell the first change is due at once (the time is past).
        let later = t0 + 10 * MINUTE;
        assert_eq!(s.due(&wanted(None, true), later), Some(t0 + MINUTE));
        // A start, a new day or a changed tree does not wait for the interval.
        assert_eq!(
            s.due(&wanted(Some(RenderReason::TreeChanged), true), t5),
            Some(t5)
        );
        // Refresh off: committed counts alone never render.
        s.refresh = None;
        assert_eq!(s.due(&wanted(None, true), later), None);
    }

    #[test]
    fn a_shared_database_is_read_again_every_refresh_even_without_our_counts() {
        let t0 = Instant::now();
        let mut s = Schedule {
            refresh: Some(MINUTE),
            last_render: None,
            settle_at: None,
            shared: true,
        };
        s.rendered(t0, None);
        assert_eq!(s.due(&wanted(None, false), t0), Some(t0 + MINUTE));
        s.refresh = None;
        assert_eq!(s.due(&wanted(None, false), t0), None);
    }

    #[test]
    fn a_shared_database_is_read_at_most_every_shared_read_interval() {
        let t0 = Instant::now();
        let mut s = Schedule {
            refresh: Some(Duration::from_secs(1)),
            last_render: None,
            settle_at: None,
            shared: true,
        };
        s.rendered(t0, None);
        // `--refresh 1s` on PostgreSQL still waits the shared interval.
        assert_eq!(
            s.due(&wanted(None, true), t0),
            Some(t0 + SHARED_READ_INTERVAL)
        );
        // Not shared: the refresh as given.
        s.shared = false;
        assert_eq!(
            s.due(&wanted(None, true), t0),
            Some(t0 + Duration::from_secs(1))
        );
    }

    fn empty_stats(counts_json: &str) -> StatsSnapshot {
        StatsSnapshot {
            rows: Vec::new(),
            counts_json: counts_json.to_string(),
            servers: Vec::new(),
            facts: Default::default(),
        }
    }

    #[test]
    fn tree_renders_reuse_a_recent_read_of_a_shared_database() {
        let t0 = Instant::now();
        let mut cache = SnapshotCache {
            shared: true,
            last: None,
        };
        let mut reads = 0;
        let mut read = |tag: &str| {
            reads += 1;
            let tag = format!("{tag}{reads}");
            move || Ok(empty_stats(&tag))
        };
        // The start reads; a burst of tree changes within the interval does not.
        let got = cache.get(RenderReason::Start, t0, read("start")).unwrap();
        assert_eq!(got.counts_json, "start1");
        for second in 1..30 {
            let at = t0 + Duration::from_secs(second);
            let reason = if second % 2 == 0 {
                RenderReason::TreeChanged
            } else {
                RenderReason::Settled
            };
            let got = cache
                .get(reason, at, || panic!("read at {second} s"))
                .unwrap();
            assert_eq!(got.counts_json, "start1");
        }
        // Past the interval a tree change reads again.
        let at = t0 + SHARED_READ_INTERVAL;
        let got = cache
            .get(RenderReason::TreeChanged, at, read("tree"))
            .unwrap();
        assert_eq!(got.counts_json, "tree2");
        // Counts and a new day always read.
        let soon = at + Duration::from_secs(1);
        let got = cache
            .get(RenderReason::CountsChanged, soon, read("counts"))
            .unwrap();
        assert_eq!(got.counts_json, "counts3");
        let got = cache.get(RenderReason::NewDay, soon, read("day")).unwrap();
        assert_eq!(got.counts_json, "day4");
        assert_eq!(reads, 4);
    }

    #[test]
    fn a_local_database_is_read_for_every_render() {
        let t0 = Instant::now();
        let mut cache = SnapshotCache {
            shared: false,
            last: None,
        };
        for (n, reason) in [
            RenderReason::Start,
            RenderReason::TreeChanged,
            RenderReason::Settled,
        ]
        .into_iter()
        .enumerate()
        {
            let tag = format!("read{n}");
            let got = cache.get(reason, t0, || Ok(empty_stats(&tag))).unwrap();
            assert_eq!(got.counts_json, tag);
        }
        assert!(cache.last.is_none());
    }

    #[test]
    fn a_file_being_written_is_rendered_again_once_it_settles() {
        let t0 = Instant::now();
        let mut s = Schedule {
            refresh: Some(MINUTE),
            last_render: None,
            settle_at: None,
            shared: false,
        };
        let summary = render::RenderSummary {
            isos: 1,
            files: 0,
            unsettled: 1,
            next_settle: Some(Duration::from_secs(42)),
            elapsed: Duration::from_millis(18),
            stats_refused: None,
        };
        s.rendered(t0, Some(&summary));
        let settled = t0 + Duration::from_secs(42) + Duration::from_millis(200);
        assert_eq!(s.due(&wanted(None, false), t0), Some(settled));
        // Counts due earlier come first; the settle time stays.
        s.refresh = Some(Duration::from_secs(10));
        assert_eq!(
            s.due(&wanted(None, true), t0),
            Some(t0 + Duration::from_secs(10))
        );
        // A render with nothing left to settle schedules nothing more.
        s.rendered(settled, None);
        assert_eq!(s.due(&wanted(None, false), settled), None);
    }
}
