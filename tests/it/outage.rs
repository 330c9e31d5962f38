//! The database unavailable for longer than `--max-pending` lasts (another
//! process holding SQLite's write lock; PostgreSQL behind a connection that
//! is cut): lines past the bound, and at
//! SIGTERM and EOF all that is held, go to the outage queue on local disk —
//! hashed, no address in any form — across logger restarts, and are counted
//! exactly once when the database can be written again; a torn last record
//! is dropped and reported, a queue of another database's secret is never
//! counted.

use super::{line, wait_until, Pipe, Site};
use nix::sys::signal::Signal;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Client `v`: every fifth an IPv6 address.
fn addr(v: u32) -> String {
    if v.is_multiple_of(5) {
        format!("2001:db8::{v:x}")
    } else {
        format!("10.{}.{}.{}", v >> 16 & 255, v >> 8 & 255, v & 255)
    }
}

/// Lines `range` of /a.iso on 5 Nov 2026, 7 bytes each, by `visitors` clients.
fn lines(range: std::ops::Range<u32>, visitors: u32) -> String {
    range
        .map(|i| line(&addr(i % visitors), 5, i % 3600, "/a.iso", 206, 7))
        .collect()
}

fn figures(downloads: u64, requests: u64) -> serde_json::Value {
    json!({"/a.iso": {"2026-11": {"downloads": downloads, "requests": requests, "bytes": 7 * requests}}})
}

/// Holds SQLite's write lock on `db` until dropped.
struct Locked(rusqlite::Connection);

impl Locked {
    fn take(db: &Path) -> Locked {
        let c = rusqlite::Connection::open(db).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        Locked(c)
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("COMMIT");
    }
}

fn queue_dir(site: &Site) -> PathBuf {
    site.dir.path().join("queue")
}

/// The queue files waiting to be counted.
fn queue_files(site: &Site) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(queue_dir(site)) {
        Ok(d) => d
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "dlq"))
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// The number before the last `what` in `text` ("…, 123 written to the
/// outage queue" of the exit summary).
fn figure_before(text: &str, what: &str) -> u64 {
    let at = text
        .rfind(what)
        .unwrap_or_else(|| panic!("no {what:?} in: {text}"));
    text[..at]
        .rsplit([' ', '('])
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure before {what:?} in: {text}"))
}

/// Every byte under the queue directory holds none of the addresses of
/// `visitors` clients: not as text, not as its 16 raw bytes (IPv6), and its
/// 4 raw bytes (IPv4) no more often than chance puts them there.
///
/// The queue holds hashes and encrypted bytes, which look random: any given
/// 4 bytes occur in N random bytes with a probability of about N / 2^32, so
/// 2,000 IPv4 addresses over the ~600 KB a test queues meet about 0.3 chance
/// matches a run (more than 5: about one run in two million), while a
/// leak of the raw form would show nearly all of them.
fn assert_no_address(site: &Site, visitors: u32) {
    let mut files = 0;
    let mut chance = Vec::new();
    let mut bytes_seen = 0;
    for e in std::fs::read_dir(queue_dir(site)).unwrap() {
        let path = e.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        bytes_seen += bytes.len();
        files += 1;
        let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        for v in 0..visitors {
            let a = addr(v);
            assert!(!holds(a.as_bytes()), "{} holds {a}", path.display());
            match a.parse::<std::net::IpAddr>().unwrap() {
                std::net::IpAddr::V4(ip) => {
                    if holds(&ip.octets()) {
                        chance.push(a);
                    }
                }
                std::net::IpAddr::V6(ip) => assert!(
                    !holds(&ip.octets()),
                    "{} holds {a} as 16 bytes",
                    path.display()
                ),
            }
        }
    }
    assert!(files > 1, "no queue file to look at");
    assert!(
        chance.len() <= 5,
        "{} of {visitors} addresses as 4 raw bytes in {bytes_seen} bytes: {chance:?}",
        chance.len()
    );
}

/// Closes stdin during the outage; the logger exits at once (at most one
/// busy timeout of 10 s spent in the database call under way), exit code 0.
/// One that has not exited within `bound` is killed and the test fails (a
/// logger stuck for good must fail the test, not hang it).
fn finish_within(mut p: Pipe, bound: Duration) -> String {
    let start = Instant::now();
    drop(p.child.stdin.take());
    while p.is_running() {
        if start.elapsed() > bound {
            let _ = p.child.kill();
            panic!("the logger did not exit within {bound:?}: {}", p.stderr());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, err) = p.finish();
    let took = start.elapsed();
    assert_eq!(code, 0, "{err}");
    assert!(took < bound, "the logger took {took:?} to exit: {err}");
    err
}

/// Issue 13, item 5 on SQLite: a logger holding a full memory bound gets
/// SIGTERM (a graceful restart) during the outage, goes on reading the
/// lines of requests in flight, and ends with EOF; the new logger starts
/// while the database is still locked (it knows the secret only from its
/// local copy) and ends too. Nothing is lost: the next logger, once the
/// database is free, counts everything exactly; the queue put back twice
/// changes nothing.
#[test]
fn an_outage_across_a_graceful_restart_loses_nothing_and_counts_once() {
    const VISITORS: u32 = 2500;
    let site = Site::new();
    let bound = ["--max-pending", "1000"];
    let mut old = site.spawn_pipe(&bound);
    old.write(lines(0..1, VISITORS).as_bytes());
    wait_until("the first line is committed", || {
        site.try_total("requests") == Some(1)
    });
    let lock = Locked::take(&site.db);
    old.write(lines(1..3000, VISITORS).as_bytes());
    wait_until("lines past the bound go to the outage queue", || {
        old.stderr().contains("to the outage queue")
    });
    // The graceful restart: SIGTERM, then the lines of requests in flight.
    old.signal(Signal::SIGTERM);
    let mut new = site.spawn_pipe(&bound);
    old.write(lines(3000..3500, VISITORS).as_bytes());
    new.write(lines(3500..6000, VISITORS).as_bytes());
    let old_err = finish_within(old, Duration::from_secs(25));
    assert!(
        old_err.contains("end of input after SIGTERM: 3500 lines, 1 counted"),
        "{old_err}"
    );
    wait_until("the new logger queues too", || {
        new.stderr().contains("to the outage queue")
    });
    let new_err = finish_within(new, Duration::from_secs(25));
    assert!(
        new_err.contains("end of input: 2500 lines, 0 counted"),
        "{new_err}"
    );
    // Every counted line but the first is on disk, none dropped.
    let queued = figure_before(&old_err, " written to the outage queue")
        + figure_before(&new_err, " written to the outage queue");
    assert_eq!(queued, 5999, "{old_err}\n{new_err}");
    for err in [&old_err, &new_err] {
        assert!(!err.contains("DROPPED"), "{err}");
        assert!(err.contains("outage queue file(s) in"), "{err}");
    }
    assert!(queue_files(&site).len() >= 2);
    assert_no_address(&site, VISITORS);
    let copies = tempfile::tempdir().unwrap();
    for f in queue_files(&site) {
        std::fs::copy(&f, copies.path().join(f.file_name().unwrap())).unwrap();
    }
    drop(lock);
    let expected = figures(u64::from(VISITORS), 6000);
    let (code, err) = site.pipe_all(b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(site.report(), expected);
    assert!(
        err.contains("0 lines, 0 counted, 0 already counted, 0 new downloads, 0 rejected, 5999 from the outage queue (5999 counted, 2499 new downloads)"),
        "{err}"
    );
    assert!(queue_files(&site).is_empty(), "{err}");
    // A queue file put back (as a crash before its deletion leaves it), twice.
    for _ in 0..2 {
        for f in std::fs::read_dir(copies.path()).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, queue_dir(&site).join(f.file_name().unwrap())).unwrap();
        }
        let (code, err) = site.pipe_all(b"", &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(site.report(), expected);
        assert!(!err.contains("from the outage queue"), "{err}");
        assert!(queue_files(&site).is_empty(), "{err}");
    }
}

/// The records of a queue file of the server `test-a` with the one path
/// `/a.iso`: (offset, lines) each, from the framing the format documents
/// (`src/queue.rs`).
fn records(path: &Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 64;
    // Day, method, status, bytes, identity, path; visitor, 16 line keys,
    // schema 1's; the facts (version 2): class, country, network, referer host.
    let hit = 4 + 1 + 2 + 8 + 1 + 4 + 8 * (1 + 16 + 1) + 1 + 4 + 2 + 4;
    while at + 12 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        // Format identity, the server, one path, the count of hits, then the hits.
        let fixed = 1 + 4 + "test-a".len() + 4 + 4 + "/a.iso".len() + 4;
        assert_eq!((len - fixed) % hit, 0, "record at {at}");
        out.push((at, (len - fixed) / hit));
        at += 12 + len;
    }
    assert_eq!(at, bytes.len());
    out
}

/// A logger killed while it wrote its last record leaves it cut short: the
/// record is dropped and said, every line before it counted, once.
#[test]
fn a_torn_last_record_is_dropped_and_reported() {
    const LINES: u32 = 4000;
    let site = Site::new();
    let mut p = site.spawn_pipe(&["--max-pending", "1000", "--server", "test-a"]);
    p.write(lines(0..1, LINES).as_bytes());
    wait_until("the first line is committed", || {
        site.try_total("requests") == Some(1)
    });
    let lock = Locked::take(&site.db);
    p.write(lines(1..LINES, LINES).as_bytes());
    finish_within(p, Duration::from_secs(25));
    let files = queue_files(&site);
    assert_eq!(files.len(), 1);
    let recs = records(&files[0]);
    let (last_at, last_lines) = *recs.last().unwrap();
    assert_eq!(recs.iter().map(|r| r.1).sum::<usize>(), LINES as usize - 1);
    // Cut into the last record's payload.
    let cut = last_at as u64 + 12 + 30;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_len(cut)
        .unwrap();
    drop(lock);
    let (code, err) = site.pipe_all(b"", &["--server", "test-a"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("ends in an incomplete record (42 bytes"),
        "{err}"
    );
    let kept = u64::from(LINES) - last_lines as u64;
    assert_eq!(site.report(), figures(kept, kept));
    assert!(
        err.contains(&format!(
            ", {} from the outage queue ({0} counted, {0} new downloads)",
            kept - 1
        )),
        "{err}"
    );
    assert!(queue_files(&site).is_empty());
}

/// The database recreated while the queue waits: the secret's local copy is
/// replaced (said), and the queue, hashed with the old secret, is reported
/// with its exact count of lines and never counted into the new database.
#[test]
fn a_queue_of_another_secret_is_reported_and_never_counted() {
    let site = Site::new();
    let mut p = site.spawn_pipe(&["--max-pending", "1000"]);
    p.write(lines(0..1, 5000).as_bytes());
    wait_until("the first line is committed", || {
        site.try_total("requests") == Some(1)
    });
    let lock = Locked::take(&site.db);
    p.write(lines(1..3000, 5000).as_bytes());
    let err = finish_within(p, Duration::from_secs(25));
    let queued = figure_before(&err, " written to the outage queue");
    assert_eq!(queued, 2999, "{err}");
    drop(lock);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = site.db.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let (code, err) = site.pipe_all(lines(3000..3010, 5000).as_bytes(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(site.report(), figures(10, 10));
    assert!(err.contains("is not the secret of the database"), "{err}");
    assert!(
        err.contains(&format!(
            "dlcount: {queued} counted line(s) in the outage queue file"
        )),
        "{err}"
    );
    assert!(
        err.contains("were hashed with another database's secret"),
        "{err}"
    );
    assert_eq!(queue_files(&site).len(), 1);
    // A later logger says so again and still counts nothing of it.
    let (code, err) = site.pipe_all(b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("dlcount: {queued} counted line(s)")),
        "{err}"
    );
    assert_eq!(site.report(), figures(10, 10));
}

/// A logger that starts while the database is locked and has no copy of
/// the secret cannot keep lines on disk without addresses: past the bound
/// they are dropped — counted, reported, exit code 1 — as before the queue,
/// and what it holds in memory waits for the database.
#[test]
fn without_the_secret_lines_past_the_bound_are_dropped_and_counted() {
    let site = Site::new();
    let (code, err) = site.pipe_all(lines(0..1, 3000).as_bytes(), &[]);
    assert_eq!(code, 0, "{err}");
    for e in std::fs::read_dir(queue_dir(&site)).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let lock = Locked::take(&site.db);
    let mut p = site.spawn_pipe(&["--max-pending", "1000"]);
    p.write(lines(1..3000, 3000).as_bytes());
    wait_until("lines are dropped", || {
        p.stderr().contains("dropped so far")
    });
    drop(lock);
    let (code, err) = p.finish();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("its hash secret is not known here"), "{err}");
    assert!(!err.contains("written to the outage queue"), "{err}");
    let dropped = figure_before(&err, " DROPPED (over --max-pending)");
    let counted = site.report()["/a.iso"]["2026-11"]["requests"]
        .as_u64()
        .unwrap();
    assert!(dropped > 0, "{err}");
    assert_eq!(counted - 1 + dropped, 2999, "{err}");
    assert_eq!(site.report(), figures(counted, counted));
}

/// A TCP forwarder between the logger and PostgreSQL that can be cut: then
/// every connection through it is shut down and new ones are closed at once,
/// as a server that went away (and is not even listening) looks. Or frozen:
/// it goes on accepting and reading (so the logger's kernel sees every byte
/// acknowledged, and keepalives answered) but passes nothing on, either
/// way, until thawed: a server that stopped answering without closing.
struct Proxy {
    port: u16,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Default)]
struct ProxyState {
    down: bool,
    open: Vec<std::net::TcpStream>,
}

impl Proxy {
    fn start(target: std::net::SocketAddr) -> Proxy {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: std::sync::Arc<std::sync::Mutex<ProxyState>> = Default::default();
        let frozen: std::sync::Arc<std::sync::atomic::AtomicBool> = Default::default();
        let shared = state.clone();
        let cold = frozen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let mut st = shared.lock().unwrap();
                let server = if st.down {
                    None
                } else {
                    TcpStream::connect(target).ok()
                };
                let Some(server) = server else {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    let cold = cold.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        use std::sync::atomic::Ordering;
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            while cold.load(Ordering::Acquire) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                st.open.extend([client, server]);
            }
        });
        Proxy {
            port,
            state,
            frozen,
        }
    }

    fn freeze(&self) {
        self.frozen
            .store(true, std::sync::atomic::Ordering::Release);
    }

    fn thaw(&self) {
        self.frozen
            .store(false, std::sync::atomic::Ordering::Release);
    }

    fn cut(&self) {
        let mut st = self.state.lock().unwrap();
        st.down = true;
        for s in st.open.drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.state.lock().unwrap().down = false;
    }
}

/// `url` (`…@HOST:PORT/…`) through the proxy on `port`, and the address it named.
fn through(url: &str, port: u16) -> (String, std::net::SocketAddr) {
    let at = url.rfind('@').unwrap() + 1;
    let end = at + url[at..].find('/').unwrap();
    let target: std::net::SocketAddr = url[at..end].parse().unwrap();
    (
        format!("{}127.0.0.1:{port}{}", &url[..at], &url[end..]),
        target,
    )
}

/// Issue 13, item 5 on PostgreSQL (needs `DLCOUNT_TEST_PG`, see `store`):
/// the server unreachable while a logger holds a full memory bound, gets
/// SIGTERM and then EOF, and while the next logger starts (it has never
/// reached the server: the secret comes from the copy in the state
/// directory) and ends; once the server answers, the next logger counts
/// everything exactly once. Nothing in the state directory holds an address.
#[test]
fn postgres_unreachable_across_a_graceful_restart_loses_nothing() {
    use super::store::{Backend, Db};
    const VISITORS: u32 = 2500;
    let Some(mut db) = Db::new(Backend::Postgres) else {
        return;
    };
    let (_, target) = through(&db.arg, 0);
    let proxy = Proxy::start(target);
    db.arg = through(&db.arg, proxy.port).0;
    let report = |db: &Db| -> serde_json::Value {
        let out = db.cmd(&["report", "--json", "--detail"]).output().unwrap();
        super::assert_succeeded(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let args = ["--max-pending", "1000", "--server", "a"];
    let mut old = db.spawn_pipe(&args);
    old.write(lines(0..1, VISITORS).as_bytes());
    wait_until("the first line is committed", || {
        // (`report` fails until the logger has made the schema.)
        let out = db.cmd(&["report", "--json", "--detail"]).output().unwrap();
        out.status.success()
            && super::total(&serde_json::from_slice(&out.stdout).unwrap(), "requests") == 1
    });
    proxy.cut();
    old.write(lines(1..3000, VISITORS).as_bytes());
    wait_until("lines past the bound go to the outage queue", || {
        old.stderr().contains("to the outage queue")
    });
    old.signal(Signal::SIGTERM);
    let mut new = db.spawn_pipe(&args);
    old.write(lines(3000..3500, VISITORS).as_bytes());
    new.write(lines(3500..6000, VISITORS).as_bytes());
    let old_err = finish_within(old, Duration::from_secs(40));
    wait_until("the new logger queues too", || {
        new.stderr().contains("to the outage queue")
    });
    let new_err = finish_within(new, Duration::from_secs(40));
    let queued = figure_before(&old_err, " written to the outage queue")
        + figure_before(&new_err, " written to the outage queue");
    assert_eq!(queued, 5999, "{old_err}\n{new_err}");
    let site = &db.site;
    assert_no_address(site, VISITORS);
    proxy.restore();
    let (code, err) = db.pipe_all(b"", &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(", 5999 from the outage queue (5999 counted, 2499 new downloads)"),
        "{err}"
    );
    assert_eq!(report(&db), figures(u64::from(VISITORS), 6000));
    assert!(queue_files(site).is_empty(), "{err}");
}

/// Writes `text` to the logger in pieces of 200 lines, as Apache's workers
/// do, and returns the longest any write took: a worker blocks on a full
/// pipe, so the reader must take every piece at once. The lines are more
/// than the 1 MiB the logger asks for its pipe, so a reader that stopped
/// would block a write for good.
fn write_timed(p: &mut Pipe, text: &str) -> Duration {
    assert!(text.len() > 1024 * 1024, "{} bytes only", text.len());
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut slowest = Duration::ZERO;
    for piece in lines.chunks(200) {
        let start = Instant::now();
        p.write(piece.concat().as_bytes());
        slowest = slowest.max(start.elapsed());
    }
    slowest
}

/// `report --json --detail` of the PostgreSQL database at `url`.
fn report_at(url: &str) -> serde_json::Value {
    let out = super::cmd()
        .args(["report", "--json", "--detail", "--db", url])
        .output()
        .unwrap();
    super::assert_succeeded(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Lines of the black-hole tests: more than the logger's 1 MiB pipe holds.
const HOLE_LINES: u32 = 12_000;
const HOLE_VISITORS: u32 = 2500;

/// PostgreSQL black-holed when a logger starts (a restart during the
/// outage): the connection is accepted and nothing ever answers (the
/// forwarder frozen), which the client library alone would wait for
/// forever. The logger keeps reading (no write to it takes more than 5 s),
/// gives each connection attempt up at its deadline, keeps the lines past
/// the bound in the outage queue and, at EOF, all it holds; exits; and the
/// next logger, pointed at the server itself, counts every line exactly once.
#[test]
fn a_black_holed_server_at_start_never_blocks_the_pipe_and_its_lines_count_once() {
    use super::store::{Backend, Db};
    let Some(mut db) = Db::new(Backend::Postgres) else {
        return;
    };
    let real = db.arg.clone();
    let (_, target) = through(&real, 0);
    let proxy = Proxy::start(target);
    let sep = if real.contains('?') { '&' } else { '?' };
    db.arg = format!("{}{sep}connect_timeout=2", through(&real, proxy.port).0);
    let args = ["--max-pending", "1000", "--server", "a"];
    // The schema, and the copy of the secret in the state directory (for
    // this URL: the next logger must hash without reaching the server).
    let (code, err) = db.pipe_all(lines(0..1, HOLE_VISITORS).as_bytes(), &args);
    assert_eq!(code, 0, "{err}");
    proxy.freeze();
    let mut p = db.spawn_pipe(&args);
    let slowest = write_timed(&mut p, &lines(1..HOLE_LINES, HOLE_VISITORS));
    assert!(
        slowest < Duration::from_secs(5),
        "a write took {slowest:?}: {}",
        p.stderr()
    );
    wait_until("lines past the bound go to the outage queue", || {
        p.stderr().contains("to the outage queue")
    });
    let err = finish_within(p, Duration::from_secs(30));
    // connect_timeout=2, one host: the handshake is given up after 2 × 2 s.
    assert!(err.contains("no answer within 4 s"), "{err}");
    assert!(
        err.contains(&format!(
            "end of input: {} lines, 0 counted",
            HOLE_LINES - 1
        )),
        "{err}"
    );
    assert_eq!(
        figure_before(&err, " written to the outage queue"),
        u64::from(HOLE_LINES - 1),
        "{err}"
    );
    assert!(!err.contains("DROPPED"), "{err}");
    db.arg = real;
    let (code, err) = db.pipe_all(b"", &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            ", {n} from the outage queue ({n} counted, {} new downloads)",
            HOLE_VISITORS - 1,
            n = HOLE_LINES - 1
        )),
        "{err}"
    );
    assert_eq!(
        report_at(&db.arg),
        figures(u64::from(HOLE_VISITORS), u64::from(HOLE_LINES))
    );
    assert!(queue_files(&db.site).is_empty(), "{err}");
}

/// PostgreSQL stops answering in the middle of a logger's work, the TCP
/// connection healthy (a forwarder that stops forwarding without closing;
/// no TCP timeout can see it, see `connect.rs`): the logger's call waits,
/// but its reader keeps reading (no write takes more than 5 s) and keeps
/// the lines past the bound in the outage queue; once the server answers
/// again, the logger commits what it held and the next one the queue:
/// every line exactly once.
#[test]
fn a_server_that_stops_answering_mid_call_never_blocks_the_pipe_and_loses_nothing() {
    use super::store::{Backend, Db};
    let Some(mut db) = Db::new(Backend::Postgres) else {
        return;
    };
    let real = db.arg.clone();
    let (_, target) = through(&real, 0);
    let proxy = Proxy::start(target);
    db.arg = through(&real, proxy.port).0;
    let args = ["--max-pending", "1000", "--server", "a"];
    let mut p = db.spawn_pipe(&args);
    p.write(lines(0..1, HOLE_VISITORS).as_bytes());
    wait_until("the first line is committed", || {
        let out = super::cmd()
            .args(["report", "--json", "--detail", "--db", &real])
            .output()
            .unwrap();
        out.status.success()
            && super::total(&serde_json::from_slice(&out.stdout).unwrap(), "requests") == 1
    });
    proxy.freeze();
    let slowest = write_timed(&mut p, &lines(1..HOLE_LINES, HOLE_VISITORS));
    assert!(
        slowest < Duration::from_secs(5),
        "a write took {slowest:?}: {}",
        p.stderr()
    );
    wait_until("lines past the bound go to the outage queue", || {
        p.stderr().contains("to the outage queue")
    });
    assert_eq!(report_at(&real), figures(1, 1));
    proxy.thaw();
    // The call that waited ends, what the logger held is committed; what
    // went to the queue is left to the next logger (a logger does not
    // replay the queue file it is writing).
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    let counted = figure_before(&err, " counted, 0 already counted");
    let spilled = figure_before(&err, " written to the outage queue");
    assert!(spilled > 0, "{err}");
    assert_eq!(counted + spilled, u64::from(HOLE_LINES), "{err}");
    assert!(!err.contains("DROPPED"), "{err}");
    assert_eq!(report_at(&real), figures(counted, counted));
    // The next logger, pointed at the server itself; then one more.
    db.arg = real.clone();
    let (code, err) = db.pipe_all(b"", &args);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            ", {spilled} from the outage queue ({spilled} counted, "
        )),
        "{err}"
    );
    assert_eq!(
        report_at(&real),
        figures(u64::from(HOLE_VISITORS), u64::from(HOLE_LINES))
    );
    assert!(queue_files(&db.site).is_empty(), "{err}");
    let (code, err) = db.pipe_all(b"", &args);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("from the outage queue"), "{err}");
    assert_eq!(
        report_at(&real),
        figures(u64::from(HOLE_VISITORS), u64::from(HOLE_LINES))
    );
}
