//! Tells the pipe when the ISO tree changed, without rescanning it per line.
//!
//! Invariants: `on_change` runs on the watcher's own thread, never more than
//! one call at a time, once per burst (a change starts a quiet-period timer
//! that every further change restarts, capped so a never-ending stream of
//! events still yields a call). Only changes that can alter the public page
//! count: an image, a per-image checksum/signature or a folder-level checksum
//! list added, removed, renamed or rewritten, or a folder appearing or going.
//! Hidden paths (ROOT/.stats, our own `.dlcount-*` temp files, rsync temp
//! files) and ROOT/index.html are ignored, so our own writes never trigger a
//! render loop. Apache opening an image (an inotify OPEN on every download) is
//! ignored as well.
//!
//! With inotify unavailable (no support, watch limit reached) it falls back to
//! polling a fingerprint every few seconds. Dropping the handle stops it.

use super::scan::{is_sidecar_name, is_sums_name};
use crate::classify::Classifier;
use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Quiet period after the last change before `on_change` runs.
const DEBOUNCE: Duration = Duration::from_secs(1);
/// Longest delay of a call while changes keep coming (e.g. a slow upload).
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Fingerprint interval of the polling fallback.
const POLL_INTERVAL: Duration = Duration::from_secs(3);

enum Msg {
    Changed,
    Stop,
}

/// How changes are detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// inotify (via `notify`), polling if that cannot be set up.
    Auto,
    /// Polling only, at the given interval.
    Poll(Duration),
}

/// Handle of a running watcher; dropping it stops the watcher thread.
pub struct TreeWatcher {
    // Dropped first: stops inotify, whose callback holds a sender.
    notify: Option<notify::RecommendedWatcher>,
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    polling: bool,
}

impl TreeWatcher {
    /// Watches `root` recursively and calls `on_change` (debounced, coalesced)
    /// when images or their checksum/signature files change.
    pub fn spawn(
        root: &Path,
        exts: Vec<String>,
        on_change: Box<dyn Fn() + Send>,
    ) -> Result<TreeWatcher> {
        Self::spawn_with(root, exts, on_change, Backend::Auto)
    }

    /// [`TreeWatcher::spawn`] with an explicit backend (tests use polling).
    pub fn spawn_with(
        root: &Path,
        exts: Vec<String>,
        on_change: Box<dyn Fn() + Send>,
        backend: Backend,
    ) -> Result<TreeWatcher> {
        let root =
            fs::canonicalize(root).with_context(|| format!("cannot resolve {}", root.display()))?;
        let filter = Filter {
            root: root.clone(),
            classifier: Classifier::new(&exts),
        };
        let (tx, rx) = mpsc::channel();
        let notify = match backend {
            Backend::Auto => match start_inotify(&root, filter.clone(), tx.clone()) {
                Ok(w) => Some(w),
                Err(e) => {
                    eprintln!(
                        "dlcount: cannot watch {} with inotify ({e:#}); polling it every {}s instead",
                        root.display(),
                        POLL_INTERVAL.as_secs()
                    );
                    None
                }
            },
            Backend::Poll(_) => None,
        };
        let polling = notify.is_none();
        let interval = match backend {
            Backend::Poll(d) => d,
            Backend::Auto => POLL_INTERVAL,
        };
        let thread = std::thread::Builder::new()
            .name("dlcount-watch".into())
            .spawn(move || {
                if polling {
                    poll_loop(&rx, Poller::new(filter), interval, on_change.as_ref())
                } else {
                    debounce_loop(&rx, on_change.as_ref())
                }
            })
            .context("cannot start the tree watcher thread")?;
        Ok(TreeWatcher {
            notify,
            tx,
            thread: Some(thread),
            polling,
        })
    }

    /// Whether the polling fallback is in use.
    pub fn is_polling(&self) -> bool {
        self.polling
    }
}

impl Drop for TreeWatcher {
    fn drop(&mut self) {
        self.notify.take();
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start_inotify(
    root: &Path,
    filter: Filter,
    tx: mpsc::Sender<Msg>,
) -> Result<notify::RecommendedWatcher> {
    let mut w = notify::recommended_watcher(move |res: notify::Result<Event>| {
        // An error (e.g. the event queue overflowed) may hide a change: render.
        let changed = res.map(|ev| filter.relevant(&ev)).unwrap_or(true);
        if changed {
            let _ = tx.send(Msg::Changed);
        }
    })?;
    w.watch(root, RecursiveMode::Recursive)?;
    Ok(w)
}

/// Waits for a change, then for a quiet period, then calls `on_change`.
fn debounce_loop(rx: &mpsc::Receiver<Msg>, on_change: &dyn Fn()) {
    loop {
        match rx.recv() {
            Ok(Msg::Changed) => {}
            Ok(Msg::Stop) | Err(_) => return,
        }
        let first = Instant::now();
        loop {
            let wait = DEBOUNCE.min(MAX_DELAY.saturating_sub(first.elapsed()));
            match rx.recv_timeout(wait) {
                Ok(Msg::Changed) if first.elapsed() < MAX_DELAY => continue,
                Ok(Msg::Changed) | Err(RecvTimeoutError::Timeout) => break,
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        on_change();
    }
}

fn poll_loop(
    rx: &mpsc::Receiver<Msg>,
    mut poller: Poller,
    interval: Duration,
    on_change: &dyn Fn(),
) {
    let mut last = poller.fingerprint();
    loop {
        match rx.recv_timeout(interval) {
            Ok(Msg::Changed) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = poller.fingerprint();
        if now != last {
            last = now;
            on_change();
        }
    }
}

/// Decides which events matter for the public page.
#[derive(Clone)]
struct Filter {
    root: PathBuf,
    classifier: Classifier,
}

impl Filter {
    fn tracked_name(&self, name: &[u8]) -> bool {
        self.classifier.has_counted_ext(name) || is_sidecar_name(name) || is_sums_name(name)
    }

    fn relevant(&self, ev: &Event) -> bool {
        if ev.need_rescan() {
            return true;
        }
        match ev.kind {
            // Reads (Apache serving a download) change nothing; a finished write does.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return false,
            _ => {}
        }
        ev.paths.iter().any(|p| self.path_relevant(p, &ev.kind))
    }

    fn path_relevant(&self, path: &Path, kind: &EventKind) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        let Some(name) = rel.file_name() else {
            // ROOT itself: only its disappearance matters.
            return matches!(kind, EventKind::Remove(_));
        };
        if rel.iter().any(|c| c.as_bytes().first() == Some(&b'.')) || rel == Path::new("index.html")
        {
            return false;
        }
        if self.tracked_name(name.as_bytes()) {
            return true;
        }
        // A folder moved or deleted takes its images with it; a renamed
        // path that no longer exists may have been one.
        match kind {
            EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => true,
            EventKind::Modify(ModifyKind::Name(_)) => path.is_dir() || !path.exists(),
            _ => false,
        }
    }
}

/// Cheap fingerprint of the tracked part of the tree. A folder is re-listed
/// only when its mtime changed (adds, removes, renames); otherwise only its
/// tracked files are stat'ed again (in-place rewrites). ROOT's own mtime
/// changes on every render (we rename index.html into it), which merely
/// re-lists ROOT: the fingerprint itself stays the same.
struct Poller {
    filter: Filter,
    dirs: HashMap<PathBuf, DirCache>,
}

struct DirCache {
    mtime: Option<SystemTime>,
    files: Vec<PathBuf>,
    subdirs: Vec<PathBuf>,
}

impl Poller {
    fn new(filter: Filter) -> Poller {
        Poller {
            filter,
            dirs: HashMap::new(),
        }
    }

    fn list(&self, dir: &Path, mtime: Option<SystemTime>) -> DirCache {
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.as_bytes();
                if name.first() == Some(&b'.') {
                    continue;
                }
                match e.file_type() {
                    // Symlinked folders are not followed here (no loops).
                    Ok(ft) if ft.is_dir() => subdirs.push(e.path()),
                    Ok(_) if self.filter.tracked_name(name) => files.push(e.path()),
                    _ => {}
                }
            }
        }
        files.sort();
        subdirs.sort();
        DirCache {
            mtime,
            files,
            subdirs,
        }
    }

    fn fingerprint(&mut self) -> u64 {
        let mut h = DefaultHasher::new();
        let mut seen = HashSet::new();
        let mut stack = vec![self.filter.root.clone()];
        while let Some(dir) = stack.pop() {
            let mtime = fs::metadata(&dir).and_then(|m| m.modified()).ok();
            let fresh = self
                .dirs
                .get(&dir)
                .is_some_and(|c| c.mtime == mtime && mtime.is_some());
            if !fresh {
                let listing = self.list(&dir, mtime);
                self.dirs.insert(dir.clone(), listing);
            }
            let cache = &self.dirs[&dir];
            dir.hash(&mut h);
            for f in &cache.files {
                f.hash(&mut h);
                if let Ok(m) = fs::metadata(f) {
                    (m.len(), m.modified().ok()).hash(&mut h);
                }
            }
            stack.extend(cache.subdirs.iter().cloned());
            seen.insert(dir);
        }
        self.dirs.retain(|d, _| seen.contains(d));
        h.finish()
    }
}
