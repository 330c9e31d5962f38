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
//! render loop.
//!
//! We drive inotify ourselves rather than through a general watcher crate:
//! those subscribe to OPEN, and Apache opens a file on every request, so the
//! watcher thread would wake for every download and cost the server a
//! measurable share of its requests per second. We ask only for what changes
//! the page (create, delete, rename, finished write, attributes), and watch
//! only folders that are not hidden.
//!
//! A folder that cannot be watched by itself (a path longer than PATH_MAX,
//! no permission, gone meanwhile) is skipped with one short line in the error
//! log and the rest stays watched; Apache cannot serve such a path either.
//! Only when inotify as a whole is unusable (no support, watch limit reached)
//! does it fall back to polling a fingerprint every few seconds. Error lines
//! name paths shortened in the middle, so none is longer than about 200
//! characters. Dropping the handle stops it.

use super::scan::{is_sidecar_name, is_sums_name};
use crate::classify::Classifier;
use anyhow::{Context, Result};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
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
    /// inotify, polling if that cannot be set up.
    Auto,
    /// Polling only, at the given interval.
    Poll(Duration),
}

/// Handle of a running watcher; dropping it stops the watcher thread.
pub struct TreeWatcher {
    /// The inotify reader thread, stopped first on drop.
    notify: Option<InotifyThread>,
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
                        "dlcount: cannot watch {} with inotify ({}); polling it every {}s instead",
                        short_path(&root),
                        short_text(&format!("{e:#}")),
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

/// The thread reading inotify events; dropping it stops and joins it.
struct InotifyThread {
    /// Closing this socket wakes the thread at once (no polling timeout to wait
    /// out, so an exiting pipe instance never lingers).
    stop: Option<std::os::unix::net::UnixStream>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for InotifyThread {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What we ask inotify for: everything that can change the listing, and not
/// OPEN, ACCESS or MODIFY (every download, every chunk of an upload).
fn watch_mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// Folders one walk left unwatched: how many, and the first with its reason.
#[derive(Debug, Default)]
struct Skipped {
    count: usize,
    first: Option<(PathBuf, std::io::Error)>,
}

impl Skipped {
    /// The one error-log line for them, or `None` if every folder is watched.
    fn line(&self) -> Option<String> {
        let (path, err) = self.first.as_ref()?;
        let more = match self.count {
            0 | 1 => String::new(),
            n => format!(" and {} more folders", n - 1),
        };
        Some(format!(
            "dlcount: not watching {} ({}){more}; changes there show at the next render",
            short_path(path),
            short_text(&err.to_string())
        ))
    }
}

/// Errors of `inotify_add_watch` that concern inotify as a whole rather than
/// one folder: the watch limit, memory, a broken instance.
fn inotify_unusable(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENOSPC | Errno::ENOMEM | Errno::EBADF | Errno::EINVAL)
    )
}

/// Adds watches on `dir` and every non-hidden folder below it (symlinks are
/// not followed, so there are no loops and nothing outside ROOT). A folder
/// that cannot be watched by itself is skipped with what lies below it; an
/// error is returned only if `dir` itself or inotify as a whole fails.
fn watch_tree(
    inotify: &mut Inotify,
    dir: &Path,
    wds: &mut HashMap<WatchDescriptor, PathBuf>,
) -> Result<Skipped> {
    let mut skipped = Skipped::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let wd = match inotify.watches().add(&d, watch_mask()) {
            Ok(wd) => wd,
            Err(e) if d != dir && !inotify_unusable(&e) => {
                skipped.count += 1;
                skipped.first.get_or_insert((d, e));
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot watch {}", short_path(&d)));
            }
        };
        wds.insert(wd, d.clone());
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                let hidden = e.file_name().as_bytes().first() == Some(&b'.');
                if !hidden && e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
    }
    Ok(skipped)
}

/// Most characters of a path or message in an error-log line.
const SHORT: usize = 80;

/// `path` for an error-log line: at most [`SHORT`] characters, the middle
/// replaced by `…` when longer (the start and the name at the end are what
/// identify it).
fn short_path(path: &Path) -> String {
    short_text(&path.to_string_lossy())
}

fn short_text(s: &str) -> String {
    let n = s.chars().count();
    if n <= SHORT {
        return s.to_owned();
    }
    let head = (SHORT - 1) / 2;
    let tail = SHORT - 1 - head;
    let mut out: String = s.chars().take(head).collect();
    out.push('…');
    out.extend(s.chars().skip(n - tail));
    out
}

fn start_inotify(root: &Path, filter: Filter, tx: mpsc::Sender<Msg>) -> Result<InotifyThread> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut inotify = Inotify::init().context("inotify_init")?;
    let mut wds = HashMap::new();
    if let Some(line) = watch_tree(&mut inotify, root, &mut wds)?.line() {
        eprintln!("{line}");
    }
    let (stop_rx, stop) = std::os::unix::net::UnixStream::pair()
        .context("cannot create the watcher's stop socket")?;
    let thread = std::thread::Builder::new()
        .name("dlcount-inotify".into())
        .spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                let mut fds = [
                    PollFd::new(inotify.as_fd(), PollFlags::POLLIN),
                    PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return,
                }
                if fds[1].any().unwrap_or(true) {
                    return; // the stop socket closed
                }
                if !fds[0].any().unwrap_or(false) {
                    continue;
                }
                let mut changed = false;
                let mut new_dirs = Vec::new();
                match inotify.read_events(&mut buf) {
                    Ok(events) => {
                        for ev in events {
                            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                                changed = true; // events were lost: render to be sure
                                continue;
                            }
                            if ev.mask.contains(EventMask::IGNORED) {
                                wds.remove(&ev.wd);
                                continue;
                            }
                            let Some(dir) = wds.get(&ev.wd) else { continue };
                            let path = match ev.name {
                                Some(name) => dir.join(name),
                                None => dir.clone(),
                            };
                            let is_dir = ev.mask.contains(EventMask::ISDIR);
                            if is_dir && ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO)
                            {
                                new_dirs.push(path.clone());
                            }
                            changed |= filter.path_relevant(&path, ev.mask);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => changed = true,
                }
                for d in new_dirs {
                    if filter.path_relevant(&d, EventMask::CREATE | EventMask::ISDIR) {
                        // Files may have landed before the watch: a render covers them.
                        match watch_tree(&mut inotify, &d, &mut wds) {
                            Ok(skipped) => {
                                if let Some(line) = skipped.line() {
                                    eprintln!("{line}");
                                }
                            }
                            // A folder gone again needs no watch; anything
                            // else (the watch limit) is said, once per folder.
                            Err(e) => {
                                let gone = e
                                    .downcast_ref::<std::io::Error>()
                                    .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound);
                                if !gone {
                                    eprintln!(
                                        "dlcount: {}; changes there show at the next render",
                                        short_text(&format!("{e:#}"))
                                    );
                                }
                            }
                        }
                    }
                }
                if changed && tx.send(Msg::Changed).is_err() {
                    return;
                }
            }
        })
        .context("cannot start the inotify thread")?;
    Ok(InotifyThread {
        stop: Some(stop),
        thread: Some(thread),
    })
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

    fn path_relevant(&self, path: &Path, mask: EventMask) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        let Some(name) = rel.file_name() else {
            // ROOT itself: only its disappearance matters.
            return mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF);
        };
        if rel.iter().any(|c| c.as_bytes().first() == Some(&b'.')) || rel == Path::new("index.html")
        {
            return false;
        }
        if self.tracked_name(name.as_bytes()) {
            return true;
        }
        // A folder created, moved or deleted brings or takes images with it.
        mask.contains(EventMask::ISDIR)
            && mask.intersects(
                EventMask::CREATE | EventMask::DELETE | EventMask::MOVED_FROM | EventMask::MOVED_TO,
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_folder_is_one_short_line() {
        let long = PathBuf::from(format!("/srv/isos/{}/deep.d", "d".repeat(6000)));
        let skipped = Skipped {
            count: 3,
            first: Some((long, std::io::Error::from_raw_os_error(36))),
        };
        let line = skipped.line().unwrap();
        assert_eq!(
            line,
            format!(
                "dlcount: not watching /srv/isos/{}…{}/deep.d (File name too long (os error 36)) \
                 and 2 more folders; changes there show at the next render",
                "d".repeat(29),
                "d".repeat(33)
            )
        );
        assert!(line.chars().count() <= 200, "{}", line.chars().count());
        assert_eq!(Skipped::default().line(), None);
    }
}
