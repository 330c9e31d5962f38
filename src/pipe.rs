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
//!   at most every 100 ms (group commit: a line read is committed well within
//!   a second, and a busy site costs a few transactions a second), at once on
//!   SIGTERM, in transactions of at most [`FLUSH_HITS`] counted lines, and
//!   keeps what it could not write in a bounded queue, retrying.
//!
//! The queue bound (`--max-pending` counted lines, in the channel and held
//! by the owner together) is enforced by the reader. The reader stops
//! reading only while the database is known to be healthy (no failure, no
//! connection waiting for another writer's lock, no call of the owner's
//! running longer than [`STUCK`]) and merely slower than the input (a flood
//! far beyond any real download server, such as `cat` of a big log): it
//! waits for room under [`HEALTHY_IN_FLIGHT`], so memory stays flat and
//! nothing is lost. Otherwise — locked by another writer, read-only, disk
//! full, a server down — it keeps reading and holds up to the bound; the
//! counted lines of batches past the bound go to the outage queue's spill
//! thread (`queue`), which hashes them and writes them to local disk (the
//! reader waits for it only while it makes progress, as many lines again
//! on their way there at most), and are dropped only when that cannot keep
//! them (no secret known, the queue full or failing: counted and reported;
//! `import` of the access log recovers them). Apache is never blocked by
//! an outage.
//!
//! The owner keeps what it holds on disk too when SIGTERM or EOF comes
//! while the database fails (the logger may be killed soon after, and Apache
//! waits for nobody), and replays the queue — this logger's and earlier
//! ones' — whenever the database answers: at the start, when it is
//! writable again, and now and then; one group commit at a time between
//! the live ones, and at EOF for at most [`REPLAY_AT_EXIT`].
//!
//! Invariants of the owner:
//! - **Only what is in the database at the path counts.** It remembers the
//!   (device, inode) of the file it opened and looks at the path after every
//!   commit and twice a second: if the file was deleted or replaced, it says
//!   so once, lets go of the old file (leaving the `-wal`/`-shm` names to
//!   the new one), and counts the lines committed since its last look again
//!   into the database now at the path (a new one if none). Lines are
//!   acknowledged (the exit summary, the `--max-pending` room) only once
//!   seen there.
//! - **Everything that fits is saved.** When the disk is full, a piece that
//!   does not fit is halved (down to one line) and tried again at once, the
//!   WAL is checkpointed and truncated around each piece, and pieces grow
//!   back as they fit, so a backlog is saved as far as space allows rather
//!   than retried whole forever.
//!
//! Apache sends SIGTERM on every graceful restart and then keeps writing the
//! lines of requests still in flight until it closes the pipe, so SIGTERM
//! means "commit now", and only EOF means "exit". SIGINT (a person at a
//! terminal) means commit and exit.
//!
//! The reader's input is a [`Source`]: stdin here ([`StdinSource`]); nginx's
//! datagrams and followed files (`source::listen`, `source::follow`) drive
//! the same reader loop and owner. For those, SIGTERM also ends the reading
//! (what is queued is read first), and the owner commits and exits. Their
//! batches may carry an origin (a followed file's, counted as an import of
//! that file) and a mark (its checkpoint): a transaction holds batches of
//! one origin, and records the newest mark among them with their lines.

use crate::classify::Classifier;
use crate::config::DbTarget;
use crate::config::Settings;
use crate::logformat::Reject;
use crate::queue::{Queue, SpillSender};
use crate::source::{Backpressure, Item, Source, Stop};
use crate::store::{ApplyStats, Mark, Origin, Store};
use crate::tally::{Batch, LineProcessor, LineSplitter, Piece};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes asked of each `read()`.
const READ_CHUNK: usize = 256 * 1024;
/// At most one message per kind of trouble in this interval (Apache's error log is shared).
const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// After EOF, how long to keep retrying a database that cannot be written,
/// for the held lines the outage queue cannot keep (no secret known, the
/// queue failing, the disk full) and those committed to a file not yet
/// seen at the path; all others go to the queue at once.
const EOF_RETRY: Duration = Duration::from_secs(30);
/// After EOF, how long the replay of the outage queue may go on.
const REPLAY_AT_EXIT: Duration = Duration::from_secs(30);
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
/// two transactions' worth, so that in a flood the reader fills the next
/// [`FLUSH_HITS`] while the owner commits the last (with less, each waited
/// for the other most of the time); minutes of a busy server's ISO
/// traffic, about 8 MiB of memory.
const HEALTHY_IN_FLIGHT: usize = 2 * FLUSH_HITS;
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
/// A database call running longer than this without waiting for a lock (a
/// hung disk) also means the database is not known to be healthy. Commits of
/// a healthy database, even a flood's, take a fraction of it (at most
/// [`FLUSH_HITS`] lines each).
const STUCK: Duration = Duration::from_secs(2);
/// Space a transaction of counted lines takes at most in the WAL and the
/// database together: a few pages for any piece (`days`, `daily`,
/// `day_keys`, B-tree splits)…
const PIECE_BYTES: u64 = 64 * 1024;
/// …and about two pages a line (its `seen_lines` and `visitors` leaves sit
/// anywhere in their tables), counted twice: in the WAL, then in the database.
const LINE_BYTES: u64 = 16 * 1024;
/// How often, at least, the owner makes sure the database path still names
/// the file it writes (it also looks after every commit).
const LOOK: Duration = Duration::from_millis(500);

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
/// their way to the database, and whether it is healthy.
struct Flow {
    /// Admitted and not yet known to be in the database at its path.
    in_flight: AtomicUsize,
    failing: AtomicBool,
    /// When the owner's current database call began (milliseconds since
    /// `epoch`, plus one); 0 while none runs.
    busy_since: AtomicU64,
    epoch: Instant,
    /// While the database is healthy: room for bursts, small enough to keep memory flat.
    healthy_limit: usize,
    /// Otherwise: `--max-pending`.
    limit: usize,
    /// The reader hands a batch over at this many counted lines, well under both limits.
    handover_hits: usize,
    /// Where lines past `limit` go while the database is not healthy.
    spill: Option<SpillSender>,
    /// What the reader may do when the queue is full (see [`Flow::admit`]).
    backpressure: Backpressure,
    /// Set when the logger is told to stop (a source that waits for room stops waiting).
    stop: Option<Arc<Stop>>,
}

/// Clears [`Flow::busy_since`] when the database call it marks returns.
struct Busy<'a>(&'a Flow);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy_since.store(0, Ordering::Release);
    }
}

impl Flow {
    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Marks a database call of the owner's until the guard drops.
    fn busy(&self) -> Busy<'_> {
        self.busy_since.store(self.millis(), Ordering::Release);
        Busy(self)
    }

    /// Known to be healthy: not failing, not waiting for another writer's
    /// lock (see `store::lock_wait`), and no call stuck for [`STUCK`].
    fn healthy(&self) -> bool {
        if self.failing.load(Ordering::Acquire) || crate::store::lock_wait::waiting_for_lock() {
            return false;
        }
        let since = self.busy_since.load(Ordering::Acquire);
        since == 0 || self.millis().saturating_sub(since) < STUCK.as_millis() as u64
    }

    /// Called by the reader before sending a batch; see the module header
    /// and [`Backpressure`].
    fn admit(&self, batch: &mut Batch) {
        let hits = batch.hits().len();
        if hits == 0 {
            return;
        }
        loop {
            let cur = self.in_flight.load(Ordering::Acquire);
            let healthy = self.healthy();
            let fits = match (self.backpressure, healthy) {
                // An empty queue takes any batch, so a big one cannot wait forever.
                (Backpressure::WhileHealthy | Backpressure::Always, true) => {
                    cur == 0 || cur + hits <= self.healthy_limit
                }
                (Backpressure::Always, false) => cur == 0 || cur + hits <= self.limit,
                (Backpressure::WhileHealthy | Backpressure::Never, _) => cur + hits <= self.limit,
            };
            let stopping = self.stop.as_ref().is_some_and(|s| s.is_set());
            if fits || (self.backpressure == Backpressure::Always && stopping) {
                self.in_flight.fetch_add(hits, Ordering::AcqRel);
                return;
            }
            let wait = match self.backpressure {
                Backpressure::WhileHealthy => healthy,
                Backpressure::Never => false,
                Backpressure::Always => true,
            };
            if !wait {
                // Never wait on a database not known to be healthy: Apache
                // would block on the full pipe (nginx drops what its socket
                // cannot queue). Past the bound the counted lines go to the
                // outage queue, or, when even the way there is full, are
                // dropped (counted, reported, recoverable by import).
                if !self.spill.as_ref().is_some_and(|s| s.try_send(batch)) {
                    batch.drop_hits();
                }
                return;
            }
            // Healthy and merely slower than a flood (or a file, which
            // keeps its lines): wait, memory stays flat.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

// A batch moves by value a few times a second: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Batch(Batch),
    Eof {
        read_error: Option<String>,
    },
    /// A source that reads all it has in one go (a followed file) has read
    /// it: what came is committed now, not after [`COMMIT_DELAY`] (such a
    /// source reads a few times a second at most, so this costs no more
    /// transactions than the delay would).
    CaughtUp,
    Term,
    Interrupt,
}

/// Runs the pipe until stdin's EOF (or SIGINT). Returns the exit code.
pub fn run(settings: &Settings, pages: Option<&dyn PageTrigger>) -> i32 {
    run_source(settings, pages, Box::new(StdinSource::new()))
}

/// Runs the reader on `source` and the database owner until the source
/// ends (or SIGINT). Returns the exit code.
pub fn run_source(
    settings: &Settings,
    pages: Option<&dyn PageTrigger>,
    source: Box<dyn Source>,
) -> i32 {
    let (tx, rx) = mpsc::channel::<Msg>();
    let stop = source.stop();
    if let Err(e) = spawn_signal_thread(tx.clone(), stop.clone()) {
        eprintln!("dlcount: cannot install signal handlers: {e}; SIGTERM will end the logger");
    }
    let info = SourceInfo {
        name: source.name(),
        recovery: source.recovery(),
    };
    let hasher_slot = Arc::new(std::sync::OnceLock::new());
    let queue = Queue::start(&settings.db, settings.retention_days, settings.max_pending);
    // Made on the reader thread: compiling the User-Agent patterns then
    // overlaps with the owner opening the database.
    let make_processor = {
        let (format, exts, server) = (
            settings.format.clone(),
            settings.exts.clone(),
            settings.server.clone(),
        );
        let (geoip, size_root) = (settings.geoip.clone(), settings.size_root.clone());
        let slot = Arc::clone(&hasher_slot);
        move || {
            LineProcessor::new(format, Classifier::new(&exts))
                .with_server(&server)
                .with_geoip(geoip)
                .with_root(size_root)
                .with_hasher(slot)
        }
    };
    let flow = Arc::new(Flow {
        in_flight: AtomicUsize::new(0),
        failing: AtomicBool::new(false),
        busy_since: AtomicU64::new(0),
        epoch: Instant::now(),
        healthy_limit: HEALTHY_IN_FLIGHT.min(settings.max_pending),
        limit: settings.max_pending,
        handover_hits: HANDOVER_HITS.min(settings.max_pending / 4).max(1),
        spill: Some(queue.sender()),
        backpressure: source.backpressure(),
        stop,
    });
    let reader_flow = Arc::clone(&flow);
    let reader = std::thread::Builder::new()
        .name("reader".into())
        .spawn(move || read_input(source, make_processor(), tx, &reader_flow))
        .expect("spawn reader thread");
    let mut owner = Owner::new(settings, pages, flow, hasher_slot, queue, info);
    let code = owner.run(rx);
    drop(reader);
    code
}

/// What the owner says about its source.
struct SourceInfo {
    name: &'static str,
    recovery: &'static str,
}

/// SIGTERM and SIGINT become messages to the owner and, for a source that
/// ends on them, trigger its `stop`.
fn spawn_signal_thread(tx: Sender<Msg>, stop: Option<Arc<Stop>>) -> std::io::Result<()> {
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
                let sent = tx.send(msg).is_ok();
                if let Some(stop) = &stop {
                    stop.trigger();
                }
                if !sent {
                    break;
                }
            }
        })?;
    Ok(())
}

/// Apache's pipe: stdin, read unbuffered (a buffer between `poll()` and
/// `read()` could hide waiting lines), split into lines.
///
/// Apache writes one line per `write()`, so at thousands of requests a second
/// each `read()` returns a line or two; after such a small read the source
/// naps ([`NAP`]) so that the next lines collect in the pipe.
pub struct StdinSource {
    stdin: Option<std::fs::File>,
    open_error: Option<std::io::Error>,
    buf: Vec<u8>,
    splitter: LineSplitter,
}

impl StdinSource {
    pub fn new() -> StdinSource {
        use std::os::fd::AsFd;
        let (stdin, open_error) = match std::io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => {
                let f = std::fs::File::from(fd);
                enlarge_pipe(&f);
                (Some(f), None)
            }
            Err(e) => (None, Some(e)),
        };
        StdinSource {
            stdin,
            open_error,
            buf: vec![0u8; READ_CHUNK],
            splitter: LineSplitter::new(),
        }
    }
}

impl Default for StdinSource {
    fn default() -> StdinSource {
        StdinSource::new()
    }
}

fn deliver(piece: Piece<'_>, sink: &mut dyn FnMut(Item<'_>)) {
    match piece {
        Piece::Line(line, no) => sink(Item::Line(line, no)),
        Piece::TooLong(no) => sink(Item::TooLong(no)),
    }
}

impl Source for StdinSource {
    fn wait(&mut self, timeout: Option<Duration>) -> bool {
        use std::os::fd::AsFd;
        match (&self.stdin, timeout) {
            // No deadline: the next read() blocks, which is the wait.
            (_, None) | (None, _) => true,
            (Some(f), Some(t)) => crate::source::poll_fds(&[f.as_fd()], Some(t))[0],
        }
    }

    fn read(&mut self, sink: &mut dyn FnMut(Item<'_>)) -> std::io::Result<bool> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self
                .open_error
                .take()
                .unwrap_or_else(|| std::io::Error::other("stdin is not readable")));
        };
        let n = match stdin.read(&mut self.buf) {
            Ok(0) => {
                self.splitter.finish(|p| deliver(p, sink));
                return Ok(false);
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => {
                self.splitter.finish(|p| deliver(p, sink));
                return Err(e);
            }
        };
        self.splitter.feed(&self.buf[..n], |p| deliver(p, sink));
        if n < NAP_BELOW {
            // A trickle (not a full pipe): let lines collect rather than wake per line.
            std::thread::sleep(NAP);
        }
        Ok(true)
    }

    fn backpressure(&self) -> Backpressure {
        Backpressure::WhileHealthy
    }

    fn stop(&self) -> Option<Arc<Stop>> {
        None
    }

    fn name(&self) -> &'static str {
        "stdin"
    }

    fn recovery(&self) -> &'static str {
        "recover them with `dlcount-pipe import` of the access log"
    }
}

/// The reader thread: a source → batches. Never blocks on anything but its
/// input (and, as its [`Backpressure`] allows, on room in the queue).
///
/// Lines collect here and are handed over when [`HANDOVER_DELAY`] has passed
/// since the first of them (a `poll()` deadline, so a quiet input still
/// hands over on time), or when the batch is big: handing each line to the
/// owner would wake a second thread per request on cores the web server needs.
fn read_input(
    mut source: Box<dyn Source>,
    mut processor: LineProcessor,
    tx: Sender<Msg>,
    flow: &Flow,
) {
    let mut batch = Batch::new();
    let mut handover_at: Option<Instant> = None;
    let send = |batch: &mut Batch| -> bool {
        let mut full = std::mem::take(batch);
        batch.origin = full.origin;
        batch.reserve_like(&full);
        flow.admit(&mut full);
        tx.send(Msg::Batch(full)).is_ok()
    };
    let read_error = loop {
        let ready = match handover_at {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                !left.is_zero() && source.wait(Some(left))
            }
            None => source.wait(None),
        };
        if !ready {
            if handover_at.take().is_some() && !send(&mut batch) {
                return;
            }
            continue;
        }
        // Hand over inside a read too: one read can hold thousands of lines,
        // and no batch may exceed the hand-over size (the queue bound counts on it).
        let mut receiver_gone = false;
        let more = source.read(&mut |item| {
            if receiver_gone {
                return;
            }
            let is_mark = matches!(item, Item::Mark(_));
            match item {
                Item::Line(line, no) => processor.process_line(line, no, &mut batch),
                Item::TooLong(no) => processor.too_long(no, &mut batch),
                Item::NotSyslog(no) => processor.rejected(no, Reject::NotSyslog, &mut batch),
                Item::Origin(origin) => {
                    if batch.origin != Some(origin) {
                        if !batch.is_empty() {
                            handover_at = None;
                            receiver_gone = !send(&mut batch);
                        }
                        batch.origin = Some(origin);
                    }
                    return;
                }
                Item::Mark(mark) => batch.mark = Some(mark),
            }
            // A batch with an origin (a followed file's) is handed over only
            // right after a mark, so it carries the position after its last line.
            let at_boundary = batch.origin.is_none() || is_mark;
            let big =
                batch.hits().len() >= flow.handover_hits || batch.stats.lines >= HANDOVER_LINES;
            if at_boundary && big {
                handover_at = None;
                receiver_gone = !send(&mut batch);
            }
        });
        if receiver_gone {
            return;
        }
        match more {
            Ok(true) => {}
            Ok(false) => break None,
            Err(e) => break Some(e.to_string()),
        }
        if !batch.is_empty() && source.hand_over_each_read() {
            handover_at = None;
            if !send(&mut batch) || tx.send(Msg::CaughtUp).is_err() {
                return;
            }
        } else if !batch.is_empty() && handover_at.is_none() {
            handover_at = Some(Instant::now() + HANDOVER_DELAY);
        }
    };
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
pub(crate) struct Throttle {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub(crate) fn new() -> Throttle {
        Throttle {
            last: None,
            suppressed: 0,
        }
    }

    pub(crate) fn say(&mut self, msg: &str) {
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

/// A file's identity: (device, inode).
type FileId = (u64, u64);

fn file_id(path: &Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// The database's identity as [`file_id`] sees it: the SQLite file's; a
/// server database cannot be deleted or replaced under us, so it is always
/// the same.
fn db_id(db: &DbTarget) -> std::io::Result<FileId> {
    match db.sqlite() {
        Some(path) => file_id(path),
        None => Ok((0, 0)),
    }
}

/// What the database path names, against the file the owner writes.
enum AtPath {
    Same,
    /// Nothing: the file was deleted.
    Gone,
    /// Another file.
    Other,
    /// Cannot tell (the directory cannot be searched, …).
    Unknown(std::io::Error),
}

/// Whether a failed commit ran out of space: a smaller piece may still fit.
fn disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
            == Some(rusqlite::ErrorCode::DiskFull)
    })
}

/// How many leading batches make a piece of at most `cap` counted lines (at
/// least one batch), all of one origin and with marks of one name at most:
/// a transaction records one origin's lines and one mark.
fn piece_len(batches: &[Batch], cap: usize) -> usize {
    let mut hits = 0;
    let mut n = 0;
    let mut mark: Option<&str> = None;
    for b in batches {
        hits += b.hits().len();
        let other_mark = b
            .mark
            .as_ref()
            .is_some_and(|m| mark.is_some_and(|name| name != m.name));
        if n > 0 && (hits > cap || b.origin != batches[0].origin || other_mark) {
            break;
        }
        if let Some(m) = &b.mark {
            mark = Some(&m.name);
        }
        n += 1;
    }
    n
}

/// How many counted lines a piece may hold on a full disk: what the space
/// left can take, at [`PIECE_BYTES`] plus [`LINE_BYTES`] a line.
fn fitting_hits(db: &DbTarget) -> usize {
    match nix::sys::statvfs::statvfs(db.local_dir()) {
        Ok(st) => {
            let free = st.blocks_available().saturating_mul(st.fragment_size());
            usize::try_from(free.saturating_sub(PIECE_BYTES) / LINE_BYTES)
                .unwrap_or(usize::MAX)
                .max(1)
        }
        Err(_) => usize::MAX,
    }
}

fn hits_of(batches: &[Batch]) -> usize {
    batches.iter().map(|b| b.hits().len()).sum()
}

/// The database owner's state.
struct Owner<'a> {
    settings: &'a Settings,
    flow: Arc<Flow>,
    hasher_slot: Arc<std::sync::OnceLock<crate::keys::KeyHasher>>,
    /// Lines kept on disk while the database fails, and their replay.
    queue: Queue,
    pages: Option<&'a dyn PageTrigger>,
    store: Option<Store>,
    /// The database file the lines go into (kept while the store is closed
    /// after an error), and its `-wal`/`-shm` files when last seen at the path.
    db_file: Option<FileId>,
    side_files: [Option<FileId>; 2],
    last_look: Instant,
    pending: Vec<Batch>,
    pending_hits: usize,
    /// Committed, but not yet seen to be in the database at the path (the
    /// path is looked at right after each commit): counted again into the
    /// new database if the file turns out deleted or replaced.
    unverified: Vec<Batch>,
    unverified_hits: usize,
    unverified_stats: ApplyStats,
    /// Counted lines per transaction: [`FLUSH_HITS`], halved (down to one)
    /// when the disk cannot take a piece, doubled after each that fits.
    piece_hits: usize,
    /// A commit ran out of space: truncate the WAL before each piece until the backlog is saved.
    disk_was_full: bool,
    /// When the oldest uncommitted line arrived.
    first_pending: Option<Instant>,
    dropped_lines: u64,
    failing_since: Option<Instant>,
    next_retry: Instant,
    backoff: Duration,
    db_trouble: Throttle,
    drop_trouble: Throttle,
    /// What is counted in the database now at the path (since the start, or since it was replaced).
    totals: ApplyStats,
    lines: u64,
    rejected: u64,
    max_day: i32,
    today: chrono::NaiveDate,
    last_checkpoint: Instant,
    info: SourceInfo,
}

impl<'a> Owner<'a> {
    fn new(
        settings: &'a Settings,
        pages: Option<&'a dyn PageTrigger>,
        flow: Arc<Flow>,
        hasher_slot: Arc<std::sync::OnceLock<crate::keys::KeyHasher>>,
        queue: Queue,
        info: SourceInfo,
    ) -> Owner<'a> {
        let today = chrono::Local::now().date_naive();
        Owner {
            settings,
            flow,
            hasher_slot,
            queue,
            pages,
            store: None,
            db_file: None,
            side_files: [None, None],
            last_look: Instant::now(),
            pending: Vec::new(),
            pending_hits: 0,
            unverified: Vec::new(),
            unverified_hits: 0,
            unverified_stats: ApplyStats::default(),
            piece_hits: FLUSH_HITS,
            disk_was_full: false,
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
            info,
        }
    }

    /// Nothing left to save.
    fn idle(&self) -> bool {
        self.pending.is_empty() && self.unverified.is_empty()
    }

    fn run(&mut self, rx: Receiver<Msg>) -> i32 {
        self.ensure_store();
        if let Some(store) = self.store.as_mut() {
            let _busy = self.flow.busy();
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
            }
            .min(LOOK);
            // A replay under way goes on as soon as nothing else is to do.
            let wait = if self.replay_ready() {
                Duration::ZERO
            } else {
                wait
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
                                "dlcount: reading {} failed ({e}); treating it as end of input",
                                self.info.name
                            );
                        }
                        eof_at = Some(Instant::now());
                    }
                    Msg::Term => {
                        terminating = true;
                        commit_now = true;
                    }
                    Msg::CaughtUp => commit_now = true,
                    Msg::Interrupt => interrupted = true,
                }
            }
            // The end is near and the database fails: what is held goes to
            // disk at once (under systemd the logger may be killed right
            // after Apache exits), not after another wait for the database.
            let ending = terminating || eof_at.is_some() || interrupted;
            if ending && self.flow.failing.load(Ordering::Acquire) {
                self.spill_pending();
            }
            let now = Instant::now();
            let due = commit_now
                || eof_at.is_some()
                || self.pending_hits >= FLUSH_HITS
                || !self.unverified.is_empty()
                || self.commit_due().is_some_and(|d| now >= d);
            if !self.idle() && due && now >= self.next_retry {
                self.flush();
                if ending && self.flow.failing.load(Ordering::Acquire) {
                    self.spill_pending();
                }
            }
            // Not once input has ended with the database failing: then the
            // logger exits now, and the next one replays.
            let gave_up = eof_at.is_some() && self.flow.failing.load(Ordering::Acquire);
            if self.replay_ready() && !interrupted && !gave_up {
                self.replay_step();
            }
            self.housekeeping();
            if interrupted {
                if !self.idle() {
                    self.flush();
                    if self.flow.failing.load(Ordering::Acquire) {
                        self.spill_pending();
                    }
                }
                return self.finish("interrupted (SIGINT)");
            }
            if let Some(at) = eof_at {
                // The replay goes on a while after EOF; what it leaves, the next logger does.
                let replaying = self.queue.replaying()
                    && !self.flow.failing.load(Ordering::Acquire)
                    && at.elapsed() < REPLAY_AT_EXIT;
                if self.idle() && !replaying {
                    let stopped = self.flow.stop.as_ref().is_some_and(|s| s.is_set());
                    return self.finish(if terminating {
                        "end of input after SIGTERM"
                    } else if stopped {
                        "stopped (SIGTERM or SIGINT)"
                    } else {
                        "end of input"
                    });
                }
                if !self.idle() && at.elapsed() >= EOF_RETRY {
                    let lost = self.pending_hits + self.unverified_hits;
                    // What the spill thread still holds reaches the disk first.
                    let dropped_earlier = self.dropped_lines + self.queue.finish().dropped;
                    let dropped = if dropped_earlier > 0 {
                        format!(" (and {dropped_earlier} dropped earlier over --max-pending)")
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "dlcount: end of input, but the database is still unwritable after {}s: {lost} counted lines \
                         were not saved{dropped}; {}",
                        EOF_RETRY.as_secs(),
                        self.info.recovery
                    );
                    return 1;
                }
            }
        }
    }

    fn finish(&mut self, why: &str) -> i32 {
        let spill = self.queue.finish();
        let dropped = self.dropped_lines + spill.dropped;
        let t = &self.totals;
        let r = &self.queue.replayed;
        eprintln!(
            "dlcount: {why}: {} lines, {} counted, {} already counted, {} new downloads, {} rejected{}{}{}; exiting",
            self.lines,
            t.counted_lines,
            t.already_counted_lines,
            t.new_downloads,
            self.rejected,
            if spill.spilled > 0 {
                format!(", {} written to the outage queue", spill.spilled)
            } else {
                String::new()
            },
            if r.lines > 0 {
                format!(
                    ", {} from the outage queue ({} counted, {} new downloads)",
                    r.lines, r.applied.counted_lines, r.applied.new_downloads
                )
            } else {
                String::new()
            },
            if dropped > 0 {
                format!(", {dropped} DROPPED (over --max-pending)")
            } else {
                String::new()
            }
        );
        let left = self.queue.files_left();
        if left > 0 {
            eprintln!(
                "dlcount: exiting with {left} outage queue file(s) in {} not counted yet: the next logger \
                 counts them once the database can be written",
                self.queue.dir().display()
            );
        }
        if dropped > 0 {
            1
        } else {
            0
        }
    }

    /// Whether the outage queue may be replayed now: the database is open
    /// (or may be tried again), nothing live waits, and a replay is due.
    fn replay_ready(&self) -> bool {
        let failing = self.flow.failing.load(Ordering::Acquire);
        self.idle()
            && (!failing || Instant::now() >= self.next_retry)
            && (self.store.is_some() || failing)
            && self.queue.replay_due()
    }

    /// One transaction of the outage queue's replay.
    fn replay_step(&mut self) {
        if !self.ensure_store() {
            return;
        }
        let flow = Arc::clone(&self.flow);
        let store = self.store.as_mut().expect("store just opened");
        let result = {
            let _busy = flow.busy();
            self.queue.replay_step(store, FLUSH_HITS)
        };
        match result {
            Ok(None) => {}
            Ok(Some(stats)) => {
                if let Some(store) = self.store.as_ref() {
                    self.queue.learned_secret(&store.hasher());
                }
                self.counted(&stats);
                self.recovered();
            }
            Err(e) => {
                self.close_store();
                self.trouble(&describe(&e));
            }
        }
    }

    /// Sends the held lines to the outage queue (the database fails and the
    /// end is near), if it can keep them; else they wait for the database
    /// (for at most [`EOF_RETRY`] after EOF). Not on a full disk: the queue
    /// beside an SQLite database would be on it too, so the held lines wait
    /// for space to be freed as before.
    fn spill_pending(&mut self) {
        if self.pending.is_empty() || !self.queue.can_spill() || self.disk_was_full {
            return;
        }
        for mut b in self.pending.drain(..) {
            if !b.hits().is_empty() {
                self.queue.spill(b.take_hits());
            }
        }
        self.flow
            .in_flight
            .fetch_sub(self.pending_hits, Ordering::AcqRel);
        self.pending_hits = 0;
        self.first_pending = None;
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
                "{} counted lines dropped so far: the database has been unwritable, --max-pending ({}) is full \
                 and as many are on their way to the outage queue; recover them later with `dlcount-pipe import` \
                 of the access log",
                self.dropped_lines, self.settings.max_pending
            ));
        }
        self.pending_hits += b.hits().len();
        // Lines without counted hits (most of a site's traffic) only add to
        // the accounting: fold them into the last batch instead of queueing
        // (with their mark, which then covers the last batch's lines too).
        match self.pending.last_mut() {
            Some(last)
                if b.hits().is_empty()
                    && b.origin == last.origin
                    && b.mark
                        .as_ref()
                        .is_none_or(|m| last.mark.as_ref().is_none_or(|l| l.name == m.name)) =>
            {
                last.stats.merge(&b.stats);
                if b.mark.is_some() {
                    last.mark = b.mark;
                }
            }
            _ => self.pending.push(b),
        }
    }

    fn ensure_store(&mut self) -> bool {
        if self.store.is_some() {
            return true;
        }
        let path = &self.settings.db;
        let opened = {
            let _busy = self.flow.busy();
            // The file opened is the one at the path before and after the
            // open (if it existed before); else it changed meanwhile: again.
            let mut tries = 0;
            loop {
                let before = db_id(path).ok();
                let opened = Store::open(path).and_then(|s| {
                    let id = db_id(path).map_err(|e| {
                        anyhow::anyhow!("cannot look at the database {}: {e}", path.display())
                    })?;
                    Ok((s, id))
                });
                match opened {
                    Ok((s, id)) if before.is_some_and(|b| b != id) && tries < 3 => {
                        s.close_detached();
                        tries += 1;
                    }
                    other => break other,
                }
            }
        };
        match opened {
            Ok((s, id)) => {
                if self.db_file.is_some_and(|old| old != id) {
                    // Replaced while closed after an error: nothing of ours to count again.
                    self.announce_replaced("deleted or replaced");
                    self.totals = ApplyStats::default();
                }
                self.db_file = Some(id);
                self.last_look = Instant::now();
                // From now on the reader hashes (the store re-hashes anything
                // keyed with another secret, e.g. a replaced database file),
                // and so does the outage queue.
                let hasher = s.hasher();
                self.queue.learned_secret(&hasher);
                let _ = self.hasher_slot.set(hasher);
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
        let spilled = self.queue.spilled();
        self.db_trouble.say(&format!(
            "cannot write the database ({what}); still reading Apache's lines, {} counted lines held in memory{} \
             (failing for {}s, retrying)",
            self.pending_hits + self.unverified_hits,
            if spilled > 0 {
                format!(", {spilled} written to the outage queue {}", self.queue.dir().display())
            } else {
                String::new()
            },
            since.elapsed().as_secs()
        ));
        self.next_retry = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
    }

    /// Commits the pending batches in pieces of at most `piece_hits` counted
    /// lines, making sure after each that it went into the database at the path.
    fn flush(&mut self) {
        loop {
            if !self.unverified.is_empty() && !self.settle() {
                return;
            }
            if self.pending.is_empty() {
                break;
            }
            if !self.ensure_store() {
                return;
            }
            let piece = if self.disk_was_full {
                self.piece_hits.min(fitting_hits(&self.settings.db))
            } else {
                self.piece_hits
            };
            if self.pending[0].hits().len() > piece {
                let tail = self.pending[0].split_off(piece);
                self.pending.insert(1, tail);
            }
            let n = piece_len(&self.pending, piece);
            let flow = Arc::clone(&self.flow);
            let store = self.store.as_mut().expect("store just opened");
            let _busy = flow.busy();
            // While the disk is full, the WAL is checkpointed and cut to zero
            // bytes around each piece: a piece that does not fit then leaves
            // only its own frames, which the next checkpoint drops without
            // growing the database, and the database grows only by what fits.
            if self.disk_was_full {
                if let Err(e) = store.checkpoint_truncate() {
                    self.trouble(&describe(&e));
                    return;
                }
            }
            let piece_batches = &self.pending[..n];
            let origin = piece_batches[0].origin.unwrap_or(Origin::Live);
            let mark = piece_batches.iter().rev().find_map(|b| b.mark.as_ref());
            let result = store.apply_marked(
                piece_batches,
                origin,
                mark.map(|m| Mark {
                    name: &m.name,
                    value: &m.value,
                }),
            );
            // Only a WAL really cut back (no reader holding it) has given space back.
            let checkpointed =
                !self.disk_was_full || store.checkpoint_truncate().is_ok_and(|cut| cut);
            drop(_busy);
            let hits = hits_of(&self.pending[..n]);
            match result {
                Ok(stats) => {
                    // A migrate may have given the database another secret.
                    self.queue.learned_secret(&store.hasher());
                    self.unverified.extend(self.pending.drain(..n));
                    self.pending_hits -= hits;
                    self.unverified_hits += hits;
                    self.unverified_stats.merge(&stats);
                    self.piece_hits = if checkpointed {
                        (piece * 2).min(FLUSH_HITS)
                    } else {
                        // Saved, but too big to move out of the WAL yet.
                        (piece / 2).max(1)
                    };
                }
                Err(e) => {
                    // Reopen next time: a replaced or re-permissioned file needs a new handle.
                    self.close_store();
                    if disk_full(&e) {
                        self.disk_was_full = true;
                        if hits > 1 {
                            // Half of it may fit: try at once.
                            self.piece_hits = hits / 2;
                            continue;
                        }
                    }
                    self.trouble(&describe(&e));
                    return;
                }
            }
        }
        // Healthy again only with the backlog saved: the reader must not
        // wait for room while pieces of it are still being committed.
        self.first_pending = None;
        self.recovered();
    }

    /// The database took what it was given: healthy again, and the outage
    /// queue is replayed now if it failed before.
    fn recovered(&mut self) {
        self.flow.failing.store(false, Ordering::Release);
        self.disk_was_full = false;
        self.backoff = Duration::from_millis(250);
        if let Some(since) = self.failing_since.take() {
            eprintln!(
                "dlcount: database writable again after {}s; all held lines are saved",
                since.elapsed().as_secs()
            );
            self.queue.replay_soon();
        }
    }

    /// What the database path names now.
    fn at_path(&self) -> AtPath {
        match db_id(&self.settings.db) {
            Ok(id) if Some(id) == self.db_file => AtPath::Same,
            Ok(_) => AtPath::Other,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => AtPath::Gone,
            Err(e) => AtPath::Unknown(e),
        }
    }

    /// Looks whether the database path still names the file written to:
    /// then the lines committed since the last look are counted for good;
    /// if not, they go again into the database at the path. False when it
    /// cannot be told yet (they are held until it can).
    fn settle(&mut self) -> bool {
        self.last_look = Instant::now();
        match self.at_path() {
            AtPath::Same => {
                self.side_files = match self.settings.db.sqlite() {
                    Some(db) => {
                        ["-wal", "-shm"].map(|s| file_id(&crate::config::db_side_file(db, s)).ok())
                    }
                    None => [None, None],
                };
                self.release();
                true
            }
            AtPath::Gone => {
                self.detach("deleted");
                true
            }
            AtPath::Other => {
                self.detach("replaced by another file");
                true
            }
            AtPath::Unknown(e) => {
                if !self.unverified.is_empty() {
                    self.trouble(&format!(
                        "cannot tell whether {} is still the database written to: {e}",
                        self.settings.db.display()
                    ));
                }
                false
            }
        }
    }

    /// The committed lines are in the database at the path.
    fn release(&mut self) {
        if self.unverified.is_empty() {
            return;
        }
        self.unverified.clear();
        self.flow
            .in_flight
            .fetch_sub(self.unverified_hits, Ordering::AcqRel);
        self.unverified_hits = 0;
        let stats = std::mem::take(&mut self.unverified_stats);
        self.counted(&stats);
        self.totals.merge(&stats);
    }

    /// Lines were counted: the pages follow.
    fn counted(&mut self, stats: &ApplyStats) {
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
    }

    /// One line in the error log: what happened, and what it cost.
    fn announce_replaced(&self, what: &str) {
        eprintln!(
            "dlcount: the database {} was {what} while in use; counting into the database at that path \
             from now on ({} counted lines stay in the old file; the last {} are counted again)",
            self.settings.db.display(),
            self.totals.counted_lines,
            self.unverified_hits
        );
    }

    /// The path no longer names the file written to: says so, lets go of
    /// that file, and puts the lines committed since the last look back in
    /// front of the pending ones, for the database at the path.
    fn detach(&mut self, what: &str) {
        self.announce_replaced(what);
        // The old file's -wal/-shm still at the path would be read as the new file's.
        if let Some(db) = self.settings.db.sqlite() {
            for (suffix, id) in ["-wal", "-shm"].iter().zip(self.side_files) {
                let p = crate::config::db_side_file(db, suffix);
                if id.is_some() && file_id(&p).ok() == id {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        if let Some(store) = self.store.take() {
            store.close_detached();
        }
        self.db_file = None;
        self.side_files = [None, None];
        self.totals = ApplyStats::default();
        self.unverified_stats = ApplyStats::default();
        let mut again = std::mem::take(&mut self.unverified);
        again.append(&mut self.pending);
        self.pending = again;
        self.pending_hits += self.unverified_hits;
        self.unverified_hits = 0;
        if !self.pending.is_empty() {
            self.first_pending.get_or_insert_with(Instant::now);
        }
    }

    /// Closes the store after an error; a file no longer at the path is let go of as such.
    fn close_store(&mut self) {
        match self.at_path() {
            AtPath::Gone => self.detach("deleted"),
            AtPath::Other => self.detach("replaced by another file"),
            _ => self.store = None,
        }
    }

    fn housekeeping(&mut self) {
        if self.store.is_some() && self.last_look.elapsed() >= LOOK {
            // A deleted or replaced database is noticed within a second even
            // while no line arrives.
            self.settle();
            if self.store.is_none() {
                self.ensure_store();
            }
        }
        let today = chrono::Local::now().date_naive();
        if today != self.today {
            self.today = today;
            if let Some(store) = self.store.as_mut() {
                let _busy = self.flow.busy();
                purge(store, self.settings, today);
            }
            if let Some(p) = self.pages {
                p.trigger(RenderReason::DateChanged);
            }
        }
        if self.last_checkpoint.elapsed() >= Duration::from_secs(60) {
            self.last_checkpoint = Instant::now();
            if let Some(store) = self.store.as_ref() {
                let _busy = self.flow.busy();
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

    #[test]
    fn a_batch_split_into_pieces_keeps_every_hit_with_its_fields_and_keys() {
        use crate::classify::Classifier;
        use crate::keys::KeyHasher;
        use crate::logformat::LogFormat;
        use crate::tally::{Batch, LineProcessor};
        let hasher = KeyHasher::new([7; 32]);
        let slot = std::sync::Arc::new(std::sync::OnceLock::new());
        let _ = slot.set(hasher.clone());
        let mut p = LineProcessor::new(
            LogFormat::compile("combined").unwrap(),
            Classifier::new(&[".iso"]),
        )
        .with_hasher(slot);
        let mut b = Batch::new();
        for i in 0..5u64 {
            let line = format!(
                r#"192.0.2.{i} - - [05/Nov/2026:10:00:0{i} +0100] "GET /{i}.iso HTTP/1.1" 200 {i} "https://r.example/{i}" "UA {i}""#
            );
            p.process_line(line.as_bytes(), i + 1, &mut b);
        }
        let keys: Vec<_> = (0..5).map(|i| b.keys(i, hasher.id()).unwrap()).collect();
        let tail = b.split_off(2);
        assert_eq!((b.hits().len(), tail.hits().len()), (2, 3));
        assert_eq!((b.stats.lines, tail.stats.lines), (5, 0));
        for (batch, first) in [(&b, 0), (&tail, 2)] {
            for (j, h) in batch.hits().iter().enumerate() {
                let i = first + j;
                assert_eq!(batch.client(h), format!("192.0.2.{i}").as_bytes());
                assert_eq!(batch.path(h), format!("/{i}.iso").as_bytes());
                assert_eq!(
                    batch.time(h),
                    format!("05/Nov/2026:10:00:0{i} +0100").as_bytes()
                );
                let f = batch.line_fields(h);
                assert_eq!(f.request_line, format!("GET /{i}.iso HTTP/1.1").as_bytes());
                assert_eq!(f.referer, format!("https://r.example/{i}").as_bytes());
                assert_eq!(f.user_agent, format!("UA {i}").as_bytes());
                assert_eq!(batch.keys(j, hasher.id()), Some(keys[i]));
            }
        }
        let batches = [b, tail];
        assert_eq!(super::piece_len(&batches, 2), 1);
        assert_eq!(super::piece_len(&batches, 1), 1);
        assert_eq!(super::piece_len(&batches, 5), 2);
    }
}
