//! Live sources: what the reader thread of a running logger reads — Apache's
//! pipe (stdin, in `pipe`), nginx's syslog datagrams ([`listen`]), log files
//! followed across rotation ([`follow`]) — behind one interface ([`Source`]),
//! so that every one of them drives the same reader loop and the same
//! database owner (`pipe`: group commit within a second, the bounded queue,
//! retries with backoff, SIGTERM commits), and the same page service and
//! spool drain ([`run_live`]).
//!
//! Invariants:
//! - a source gives whole lines only, each once per reading (`Item::Line`);
//! - a mark (`Item::Mark`: a followed file's checkpoint) is given only after
//!   every line it covers, so the owner, which commits batches in order and
//!   a batch's mark in the same transaction as its lines, never records a
//!   position ahead of the counts it covers;
//! - the origin of the lines (`Item::Origin`) is given before them; a batch
//!   holds lines of one origin only.

pub mod follow;
pub mod listen;

use crate::config::Settings;
use crate::pipe::PageTrigger;
use crate::store::Origin;
use crate::tally::BatchMark;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a source gives the reader loop.
pub enum Item<'a> {
    /// A line (without its newline) and its number within the source.
    Line(&'a [u8], u64),
    /// A line longer than `tally::MAX_LINE`, dropped as it arrived.
    TooLong(u64),
    /// A datagram that is not one of nginx's syslog lines: counted as rejected.
    NotSyslog(u64),
    /// The lines from here on come from this origin (a followed file's).
    Origin(Origin),
    /// Every line given so far from the current origin is covered by this
    /// position: it is committed with them, never before them.
    Mark(BatchMark),
}

/// What the reader may do when the queue of counted lines is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Apache's pipe: wait for room while the database is known to be
    /// healthy (a flood, Apache is paced); otherwise hold up to
    /// `--max-pending` and drop past it (Apache must never block).
    WhileHealthy,
    /// nginx's datagrams: never wait (nginx drops what the socket cannot
    /// queue); hold up to `--max-pending` and drop past it.
    Never,
    /// A followed file: always wait (the file keeps the lines; nothing is
    /// lost by reading later), until the logger is told to stop.
    Always,
}

/// A live input (see the module header).
pub trait Source: Send {
    /// Waits until there may be input, or `timeout` has passed (`None`: no
    /// limit). False on timeout.
    fn wait(&mut self, timeout: Option<Duration>) -> bool;

    /// Reads what there is now (at least some of it), giving each item to
    /// `sink`. `Ok(false)` once the input has ended (EOF, or told to stop
    /// and drained).
    fn read(&mut self, sink: &mut dyn FnMut(Item<'_>)) -> std::io::Result<bool>;

    fn backpressure(&self) -> Backpressure;

    /// What SIGTERM and SIGINT trigger to end the reading (`None`: they do
    /// not: Apache's pipe is read to EOF).
    fn stop(&self) -> Option<Arc<Stop>>;

    /// For messages: "stdin", "the socket", "the followed files".
    fn name(&self) -> &'static str;

    /// What to do about counted lines that could not be saved at the end.
    fn recovery(&self) -> &'static str;

    /// Whether what one `read()` gave is handed over at once rather than
    /// collected for [`crate::pipe`]'s hand-over delay: a source that reads
    /// everything there is in one go, a few times a second (a followed file).
    fn hand_over_each_read(&self) -> bool {
        false
    }
}

/// A stop request that wakes a reader waiting in `poll()`: a flag and a
/// pipe whose read end becomes readable once it is set.
pub struct Stop {
    flag: AtomicBool,
    read_end: OwnedFd,
    write_end: OwnedFd,
}

impl Stop {
    pub fn new() -> std::io::Result<Arc<Stop>> {
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(Arc::new(Stop {
            flag: AtomicBool::new(false),
            read_end,
            write_end,
        }))
    }

    /// Asks the reader to stop (from the signal thread).
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Release);
        let _ = nix::unistd::write(&self.write_end, b"x");
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Readable once the stop is requested (for `poll()`).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read_end.as_fd()
    }

    /// Sleeps up to `timeout` (`None`: no limit), less if the stop is
    /// requested; true if it is.
    pub fn sleep(&self, timeout: Option<Duration>) -> bool {
        if !self.is_set() {
            let _ = poll_fds(&[self.fd()], timeout);
        }
        self.is_set()
    }
}

/// `poll()` for readability; returns which of `fds` are readable (or
/// closed). EINTR and errors count as "nothing yet".
pub fn poll_fds(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> Vec<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfds: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let t = match timeout {
        None => PollTimeout::NONE,
        Some(d) => PollTimeout::from(u16::try_from(d.as_millis().max(1)).unwrap_or(u16::MAX)),
    };
    match poll(&mut pfds, t) {
        Ok(n) if n > 0 => pfds
            .iter()
            .map(|p| {
                p.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            })
            .collect(),
        _ => vec![false; fds.len()],
    }
}

/// Runs a live logger on `source` until it ends: the page service (when
/// the root is a directory), the drain of what an earlier logger spooled
/// while its configuration was unusable, and the reader and database owner
/// (`pipe::run_source`). Returns the exit code.
pub fn run_live(settings: &Settings, source: Box<dyn Source>) -> i32 {
    let service = if settings.root.is_dir() {
        Some(crate::pages::PageService::spawn(settings))
    } else {
        eprintln!(
            "dlcount: warning: --root {} is not a directory; counting without rendering pages",
            settings.root.display()
        );
        None
    };
    // Lines an earlier logger kept while the configuration was unusable.
    let drainer = crate::spool::spawn_drainer(
        settings.clone(),
        match &service {
            Some(s) => s.counts_changed_notifier(),
            None => Box::new(|| {}),
        },
    );
    let code = crate::pipe::run_source(
        settings,
        service.as_ref().map(|s| s as &dyn PageTrigger),
        source,
    );
    if let Some(left) = drainer.and_then(|d| d.finish(crate::spool::DRAIN_AT_EXIT)) {
        eprintln!("{left}");
    }
    drop(service);
    code
}
