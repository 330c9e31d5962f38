//! Keeps the two pages current: the bridge between the counting side (store,
//! pipe triggers) and the renderer (`render`).
//!
//! Invariant: at most one render runs at a time, on its own thread, and a
//! burst of triggers (a new day plus a directory change, say) gives one
//! render — triggers only set a flag that the render thread takes whole.
//! Nothing here can block the pipe's reader or its database owner.

use crate::config::Settings;
use crate::pipe::{PageTrigger, RenderReason};
use crate::render::{self, FileMonth, PageSettings, StatsSnapshot, TreeWatcher};
use crate::store::Store;
use anyhow::Result;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

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
    }
}

/// Reads the statistics the pages show. A database that does not exist yet
/// gives empty statistics (the public page is still worth rendering).
pub fn snapshot(db: &std::path::Path) -> Result<StatsSnapshot> {
    // Only a database that is really absent means "empty"; an unreadable one is an error.
    let absent = matches!(db.try_exists(), Ok(false));
    let rows = if absent {
        Vec::new()
    } else {
        Store::open_read(db)?.monthly()?
    };
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
            })
            .collect(),
        counts_json,
    })
}

/// `dlcount-pipe render`: both pages, now.
pub fn render_now(s: &Settings) -> Result<render::RenderSummary> {
    let stats = snapshot(&s.db)?;
    render::render_all(&page_settings(s), &stats, chrono::Local::now())
}

#[derive(Default)]
struct Wanted {
    pending: Option<RenderReason>,
    stop: bool,
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
    w.pending.get_or_insert(reason);
    cv.notify_one();
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
    loop {
        let reason = {
            let mut w = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if w.stop {
                    return;
                }
                if let Some(r) = w.pending.take() {
                    break r;
                }
                w = cv
                    .wait_timeout(w, Duration::from_secs(60))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        };
        match render_now(settings) {
            Ok(_) => {
                if last_error.take().is_some() {
                    eprintln!("dlcount: pages rendered again ({reason:?})");
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
