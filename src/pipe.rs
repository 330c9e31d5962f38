//! Pipe mode: Apache's piped logger.
//!
//! Three threads joined by one channel, so that Apache never waits for us:
//! - the **reader** reads stdin, parses and classifies lines into batches and
//!   hands them over about ten times a second; it never touches SQLite, so a
//!   locked or read-only database cannot stall Apache's workers (whose
//!   `write()` blocks once the pipe is full: 64 KiB by default, 1 MiB asked
//!   for); when lines trickle in it naps a millisecond between reads so that
//!   Apache's writes wake nobody;
//! - the **signal thread** turns SIGTERM and SIGINT into messages (handlers
//!   restart interrupted reads, so a flag checked by the reader would never be
//!   seen while Apache is idle);
//! - the **database owner** (the calling thread) commits what it has received
//!   in one transaction at most every 100 ms (group commit: a line read is
//!   committed well within a second, and a busy site costs a few transactions
//!   a second), at once on SIGTERM, and keeps what it could not write in a
//!   bounded queue, retrying.
//!
//! The queue bound (`--max-pending` counted lines, in the channel and held
//! by the owner together) is enforced by the reader. While the database is
//! failing, batches past the bound lose their counted lines (counted and
//! reported; `import` of the access log recovers them) — Apache is never
//! blocked by an outage. While the database is healthy and only slower than
//! the input (a flood far beyond any real download server, such as `cat`
//! of a big log), the reader waits for room instead, so memory stays flat
//! and nothing is lost.
//!
//! Apache sends SIGTERM on every graceful restart and then keeps writing the
//! lines of requests still in flight until it closes the pipe, so SIGTERM
//! means "commit now", and only EOF means "exit". SIGINT (a person at a
//! terminal) means commit and exit.

use crate::classify::Classifier;
use crate::config::Settings;
use crate::store::{ApplyStats, Origin, Store};
use crate::tally::{Batch, LineProcessor, LineSplitter, Piece};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes asked of each `read()`.
const READ_CHUNK: usize = 256 * 1024;
/// At most one message per kind of trouble in this interval (Apache's error log is shared).
const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// After EOF, how long to keep retrying a database that cannot be written.
const EOF_RETRY: Duration = Duration::from_secs(30);
/// The reader hands lines over at most this long after the first of them arrived…
const HANDOVER_DELAY: Duration = Duration::from_millis(100);
/// …or as soon as this many counted lines (or lines at all) have collected.
const HANDOVER_HITS: usize = 4096;
const HANDOVER_LINES: u64 = 65_536;
/// Group commit: counted lines wait at most this long for company, so a busy
/// site costs a few transactions a second, not one per request.
const COMMIT_DELAY: Duration = Duration::from_millis(100);
/// Lines that count nothing only update the line accounting, this often.
const STATS_DELAY: Duration = Duration::from_secs(5);
/// Commit at once when this many counted lines are waiting. Large enough that
/// a flood of new downloads costs few commits (each rewrites the B-tree pages
/// it touched into the WAL), small enough to keep memory flat.
const FLUSH_HITS: usize = 24_576;
/// Counted lines on their way to a healthy database before the reader waits:
/// minutes of a busy server's ISO traffic, about 5 MiB of memory.
const HEALTHY_IN_FLIGHT: usize = 32_768;
/// After a small read (a trickle, see [`NAP_BELOW`]), the reader naps this long
/// so the next lines collect in the pipe: Apache's `write()` then lands in a buffer with
/// nobody to wake (no context switch per request on the cores it needs), and
/// one `read()` takes many lines. Even the default 64 KiB pipe absorbs tens
/// of MB/s for that long; see [`PIPE_BYTES`].
const NAP: Duration = Duration::from_millis(1);
/// …after a `read()` of fewer bytes than this. Bigger reads mean a fast
/// stream, whose wake-ups are already shared by many lines.
const NAP_BELOW: usize = 16 * 1024;
/// Pipe capacity asked for (Linux's unprivileged maximum by default), so a
/// burst during a nap or a slow moment never fills the pipe and blocks Apache.
const PIPE_BYTES: i32 = 1024 * 1024;
/// Housekeeping cadence (date change, purge, checkpoint).
const TICK: Duration = Duration::from_secs(1);

/// Why the pages should be rendered again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderReason {
    Start,
    NewDay,
    DateChanged,
    /// Counts were committed; the page service renders them at most once per `--refresh`.
    CountsChanged,
    TreeChanged,
    /// A file left off the public page while it was being written has settled.
    Settled,
}

/// Something that renders the pages off this thread (see `pages`).
pub trait PageTrigger {
    /// Must return at once; a burst of calls may give one render.
    fn trigger(&self, reason: RenderReason);
}

/// Shared between the reader and the owner: how many counted lines are on
/// their way to the database, and whether it is failing.
struct Flow {
    in_flight: AtomicUsize,
    failing: AtomicBool,
    /// While the database is healthy: room for bursts, small enough to keep memory flat.
    healthy_limit: usize,
    /// While it is failing: `--max-pending`.
    limit: usize,
    /// The reader hands a batch over at this many counted lines, well under both limits.
    handover_hits: usize,
}

impl Flow {
    /// Called by the reader before sending a batch; see the module header.
    fn admit(&self, batch: &mut Batch) {
        let hits = batch.hits().len();
        if hits == 0 {
            return;
        }
        loop {
            let cur = self.in_flight.load(Ordering::Acquire);
            let failing = self.failing.load(Ordering::Acquire);
            let fits = if failing {
                cur + hits <= self.limit
            } else {
                // An empty queue takes any batch, so a big one cannot wait forever.
                cur == 0 || cur + hits <= self.healthy_limit
            };
            if fits {
                self.in_flight.fetch_add(hits, Ordering::AcqRel);
                return;
            }
            if failing {
                batch.drop_hits();
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

enum Msg {
    Batch(Batch),
    Eof { read_error: Option<String> },
    Term,
    Interrupt,
}

/// Runs the pipe until stdin's EOF (or SIGINT). Returns the exit code.
pub fn run(settings: &Settings, pages: Option<&dyn PageTrigger>) -> i32 {
    let (tx, rx) = mpsc::channel::<Msg>();
    if let Err(e) = spawn_signal_thread(tx.clone()) {
        eprintln!("dlcount: cannot install signal handlers: {e}; SIGTERM will end the logger");
    }
    let hasher_slot = Arc::new(std::sync::OnceLock::new());
    let processor = LineProcessor::new(settings.format.clone(), Classifier::new(&settings.exts))
        .with_hasher(Arc::clone(&hasher_slot));
    let flow = Arc::new(Flow {
        in_flight: AtomicUsize::new(0),
        failing: AtomicBool::new(false),
        healthy_limit: HEALTHY_IN_FLIGHT.min(settings.max_pending),
        limit: settings.max_pending,
        handover_hits: HANDOVER_HITS.min(settings.max_pending / 4).max(1),
    });
    let reader_flow = Arc::clone(&flow);
    let reader = std::thread::Builder::new()
        .name("reader".into())
        .spawn(move || read_stdin(processor, tx, &reader_flow))
        .expect("spawn reader thread");
    let mut owner = Owner::new(settings, pages, flow, hasher_slot);
    let code = owner.run(rx);
    drop(reader);
    code
}

fn spawn_signal_thread(tx: Sender<Msg>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let msg = if sig == SIGTERM {
                    Msg::Term
                } else {
                    Msg::Interrupt
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}

/// The reader thread: stdin → batches. Never blocks on anything but its input
/// (and, while the database is healthy but flooded, on room in the queue).
///
/// Apache writes one line per `write()`, so at thousands of requests a second
/// each `read()` returns a line or two. Handing each to the owner would wake
/// a second thread per request on cores Apache needs; instead lines collect
/// here and are handed over when [`HANDOVER_DELAY`] has passed since the first
/// of them (a `poll()` deadline, so a quiet pipe still hands over on time),
/// or when the batch is big.
fn read_stdin(mut processor: LineProcessor, tx: Sender<Msg>, flow: &Flow) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    // Unbuffered: a buffer between poll() and read() could hide waiting lines.
    let mut stdin = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            let _ = tx.send(Msg::Eof {
                read_error: Some(e.to_string()),
            });
            return;
        }
    };
    enlarge_pipe(&stdin);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut splitter = LineSplitter::new();
    let mut batch = Batch::new();
    let mut handover_at: Option<Instant> = None;
    let send = |batch: &mut Batch| -> bool {
        let mut full = std::mem::take(batch);
        flow.admit(&mut full);
        tx.send(Msg::Batch(full)).is_ok()
    };
    let read_error = loop {
        if let Some(at) = handover_at {
            let left = at.saturating_duration_since(Instant::now());
            let ready = if left.is_zero() {
                false
            } else {
                let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
                let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
                // EINTR (a signal) just means "look again".
                !matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(0))
            };
            if !ready {
                handover_at = None;
                if !send(&mut batch) {
                    return;
                }
                continue;
            }
        }
        let n = match stdin.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e.to_string()),
        };
        // Hand over inside a read too: one read can hold thousands of lines,
        // and no batch may exceed the hand-over size (the queue bound counts on it).
        let mut receiver_gone = false;
        splitter.feed(&buf[..n], |piece| {
            if receiver_gone {
                return;
            }
            match piece {
                Piece::Line(line, no) => processor.process_line(line, no, &mut batch),
                Piece::TooLong(no) => processor.too_long(no, &mut batch),
            }
            if batch.hits().len() >= flow.handover_hits || batch.stats.lines >= HANDOVER_LINES {
                handover_at = None;
                receiver_gone = !send(&mut batch);
            }
        });
        if receiver_gone {
            return;
        }
        if n < NAP_BELOW {
            // A trickle (not a full pipe): let lines collect rather than wake per line.
            std::thread::sleep(NAP);
        }
        if !batch.is_empty() && handover_at.is_none() {
            handover_at = Some(Instant::now() + HANDOVER_DELAY);
        }
    };
    splitter.finish(|piece| match piece {
        Piece::Line(line, no) => processor.process_line(line, no, &mut batch),
        Piece::TooLong(no) => processor.too_long(no, &mut batch),
    });
    if !batch.is_empty() && !send(&mut batch) {
        return;
    }
    let _ = tx.send(Msg::Eof { read_error });
}

/// An error and its causes on one line, without SQLite's habit of repeating
/// itself ("database is locked: Error code 5: database is locked").
pub(crate) fn describe(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts
            .last()
            .is_some_and(|prev| text.ends_with(prev.as_str()))
        {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Asks for a [`PIPE_BYTES`] pipe buffer when stdin is a pipe; a failure
/// (a file, a lower `fs.pipe-max-size`) just keeps the default.
fn enlarge_pipe(stdin: &std::fs::File) {
    use nix::fcntl::{fcntl, FcntlArg};
    if let Ok(current) = fcntl(stdin, FcntlArg::F_GETPIPE_SZ) {
        if current < PIPE_BYTES {
            let _ = fcntl(stdin, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
        }
    }
}

/// Rate limiter for stderr messages.
struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    fn new() -> Throttle {
        Throttle {
            last: None,
            suppressed: 0,
        }
    }

    fn say(&mut self, msg: &str) {
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= LOG_INTERVAL)
        {
            if self.suppressed > 0 {
                eprintln!(
                    "dlcount: {msg} ({} similar messages suppressed)",
                    self.suppressed
                );
            } else {
                eprintln!("dlcount: {msg}");
            }
            self.last = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
    }
}

/// The database owner's state.
struct Owner<'a> {
    settings: &'a Settings,
    flow: Arc<Flow>,
    hasher_slot: Arc<std::sync::OnceLock<crate::keys::KeyHasher>>,
    pages: Option<&'a dyn PageTrigger>,
    store: Option<Store>,
    pending: Vec<Batch>,
    pending_hits: usize,
    /// When the oldest uncommitted line arrived.
    first_pending: Option<Instant>,
    dropped_lines: u64,
    failing_since: Option<Instant>,
    next_retry: Instant,
    backoff: Duration,
    db_trouble: Throttle,
    drop_trouble: Throttle,
    totals: ApplyStats,
    lines: u64,
    rejected: u64,
    max_day: i32,
    today: chrono::NaiveDate,
    last_checkpoint: Instant,
}

impl<'a> Owner<'a> {
    fn new(
        settings: &'a Settings,
        pages: Option<&'a dyn PageTrigger>,
        flow: Arc<Flow>,
        hasher_slot: Arc<std::sync::OnceLock<crate::keys::KeyHasher>>,
    ) -> Owner<'a> {
        let today = chrono::Local::now().date_naive();
        Owner {
            settings,
            flow,
            hasher_slot,
            pages,
            store: None,
            pending: Vec::new(),
            pending_hits: 0,
            first_pending: None,
            dropped_lines: 0,
            failing_since: None,
            next_retry: Instant::now(),
            backoff: Duration::from_millis(250),
            db_trouble: Throttle::new(),
            drop_trouble: Throttle::new(),
            totals: ApplyStats::default(),
            lines: 0,
            rejected: 0,
            max_day: crate::store::day_of(today),
            today,
            last_checkpoint: Instant::now(),
        }
    }

    fn run(&mut self, rx: Receiver<Msg>) -> i32 {
        self.ensure_store();
        if let Some(store) = self.store.as_mut() {
            purge(store, self.settings, self.today);
        }
        if let Some(p) = self.pages {
            p.trigger(RenderReason::Start);
        }
        let mut eof_at: Option<Instant> = None;
        let mut terminating = false;
        loop {
            let wait = match self.commit_due() {
                Some(due) => due.saturating_duration_since(Instant::now()).min(TICK),
                None => TICK,
            };
            let mut interrupted = false;
            let mut commit_now = false;
            let first = if eof_at.is_some() {
                std::thread::sleep(wait);
                None
            } else {
                match rx.recv_timeout(wait) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        eof_at.get_or_insert_with(Instant::now);
                        None
                    }
                }
            };
            // Take everything that is already waiting: one transaction for all of it.
            for msg in first
                .into_iter()
                .chain(std::iter::from_fn(|| rx.try_recv().ok()))
            {
                match msg {
                    Msg::Batch(b) => self.enqueue(b),
                    Msg::Eof { read_error } => {
                        if let Some(e) = read_error {
                            eprintln!(
                                "dlcount: reading stdin failed ({e}); treating it as end of input"
                            );
                        }
                        eof_at = Some(Instant::now());
                    }
                    Msg::Term => {
                        terminating = true;
                        commit_now = true;
                    }
                    Msg::Interrupt => interrupted = true,
                }
            }
            let now = Instant::now();
            let due = commit_now
                || eof_at.is_some()
                || self.pending_hits >= FLUSH_HITS
                || self.commit_due().is_some_and(|d| now >= d);
            if !self.pending.is_empty() && due && now >= self.next_retry {
                self.flush();
            }
            self.housekeeping();
            if interrupted {
                if !self.pending.is_empty() {
                    self.flush();
                }
                return self.finish("interrupted (SIGINT)");
            }
            if let Some(at) = eof_at {
                if self.pending.is_empty() {
                    return self.finish(if terminating {
                        "end of input after SIGTERM"
                    } else {
                        "end of input"
                    });
                }
                if at.elapsed() >= EOF_RETRY {
                    let lost: usize = self.pending_hits;
                    let dropped = if self.dropped_lines > 0 {
                        format!(
                            " (and {} dropped earlier over --max-pending)",
                            self.dropped_lines
                        )
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "dlcount: end of input, but the database is still unwritable after {}s: {lost} counted lines \
                         were not saved{dropped}; recover them with `dlcount-pipe import` of the access log",
                        EOF_RETRY.as_secs()
                    );
                    return 1;
                }
            }
        }
    }

    fn finish(&mut self, why: &str) -> i32 {
        let t = &self.totals;
        eprintln!(
            "dlcount: {why}: {} lines, {} counted, {} already counted, {} new downloads, {} rejected{}; exiting",
            self.lines,
            t.counted_lines,
            t.already_counted_lines,
            t.new_downloads,
            self.rejected,
            if self.dropped_lines > 0 {
                format!(", {} DROPPED (over --max-pending)", self.dropped_lines)
            } else {
                String::new()
            }
        );
        if self.dropped_lines > 0 {
            1
        } else {
            0
        }
    }

    /// When the pending lines must be committed: counted lines within
    /// [`COMMIT_DELAY`] (well inside the promised second), line accounting
    /// alone within [`STATS_DELAY`]; never before the retry time of a failing database.
    fn commit_due(&self) -> Option<Instant> {
        let first = self.first_pending?;
        let delay = if self.pending_hits > 0 {
            COMMIT_DELAY
        } else {
            STATS_DELAY
        };
        Some((first + delay).max(self.next_retry))
    }

    fn enqueue(&mut self, b: Batch) {
        self.first_pending.get_or_insert_with(Instant::now);
        self.lines += b.stats.lines;
        self.rejected += b.stats.rejected_total();
        if b.stats.dropped > 0 {
            self.dropped_lines += b.stats.dropped;
            self.drop_trouble.say(&format!(
                "{} counted lines dropped so far: the database has been unwritable and --max-pending ({}) is full; \
                 recover them later with `dlcount-pipe import` of the access log",
                self.dropped_lines, self.settings.max_pending
            ));
        }
        self.pending_hits += b.hits().len();
        // Lines without counted hits (most of a site's traffic) only add to
        // the accounting: fold them into the last batch instead of queueing.
        match self.pending.last_mut() {
            Some(last) if b.hits().is_empty() => last.stats.merge(&b.stats),
            _ => self.pending.push(b),
        }
    }

    fn ensure_store(&mut self) -> bool {
        if self.store.is_some() {
            return true;
        }
        match Store::open(&self.settings.db) {
            Ok(s) => {
                // From now on the reader hashes (the store re-hashes anything
                // keyed with another secret, e.g. a replaced database file).
                let _ = self.hasher_slot.set(s.hasher());
                self.store = Some(s);
                true
            }
            Err(e) => {
                self.trouble(&describe(&e));
                false
            }
        }
    }

    fn trouble(&mut self, what: &str) {
        self.flow.failing.store(true, Ordering::Release);
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        self.db_trouble.say(&format!(
            "cannot write the database ({what}); still reading Apache's lines, {} counted lines held in memory \
             (failing for {}s, retrying)",
            self.pending_hits,
            since.elapsed().as_secs()
        ));
        self.next_retry = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
    }

    fn flush(&mut self) {
        if !self.ensure_store() {
            return;
        }
        let store = self.store.as_mut().expect("store just opened");
        match store.apply(&self.pending, Origin::Live) {
            Ok(stats) => {
                self.pending.clear();
                self.first_pending = None;
                self.flow
                    .in_flight
                    .fetch_sub(self.pending_hits, Ordering::AcqRel);
                self.flow.failing.store(false, Ordering::Release);
                self.pending_hits = 0;
                if stats.counted_lines > 0 {
                    if let Some(p) = self.pages {
                        p.trigger(RenderReason::CountsChanged);
                    }
                }
                if let Some(d) = stats.max_day {
                    if d > self.max_day {
                        self.max_day = d;
                        if let Some(p) = self.pages {
                            p.trigger(RenderReason::NewDay);
                        }
                    }
                }
                self.totals.merge(&stats);
                if let Some(since) = self.failing_since.take() {
                    eprintln!(
                        "dlcount: database writable again after {}s; all held lines are saved",
                        since.elapsed().as_secs()
                    );
                }
                self.backoff = Duration::from_millis(250);
            }
            Err(e) => {
                // Reopen next time: a replaced or re-permissioned file needs a new handle.
                self.store = None;
                self.trouble(&describe(&e));
            }
        }
    }

    fn housekeeping(&mut self) {
        let today = chrono::Local::now().date_naive();
        if today != self.today {
            self.today = today;
            if let Some(store) = self.store.as_mut() {
                purge(store, self.settings, today);
            }
            if let Some(p) = self.pages {
                p.trigger(RenderReason::DateChanged);
            }
        }
        if self.last_checkpoint.elapsed() >= Duration::from_secs(60) {
            self.last_checkpoint = Instant::now();
            if let Some(store) = self.store.as_ref() {
                let _ = store.checkpoint();
            }
        }
    }
}

fn purge(store: &mut Store, settings: &Settings, today: chrono::NaiveDate) {
    match store.purge(crate::store::day_of(today), settings.retention_days) {
        Ok(days) if !days.is_empty() => eprintln!(
            "dlcount: closed {} day(s) older than {} days (per-client keys deleted; their counts are final)",
            days.len(),
            settings.retention_days
        ),
        Ok(_) => {}
        Err(e) => eprintln!("dlcount: purge of old keys failed, will retry tomorrow: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn describe_drops_a_cause_that_repeats_the_message() {
        let e = anyhow::Error::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(5),
            Some("database is locked".into()),
        ));
        assert_eq!(super::describe(&e), "database is locked");
        let e = e.context("cannot open database /x");
        assert_eq!(
            super::describe(&e),
            "cannot open database /x: database is locked"
        );
    }
}
