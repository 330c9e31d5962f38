//! The record format, the file's life (spill, replay, torn and damaged
//! records, another secret), and replay's idempotency against SQLite.

use super::*;
use crate::classify::Classifier;
use crate::logformat::LogFormat;
use crate::tally::LineProcessor;
use std::os::unix::fs::PermissionsExt;

/// `n` combined lines: client `i % clients` (IPv4, every 7th IPv6), on 5
/// and 6 Nov 2026, over two files, 10 bytes each, the UA varying.
fn lines(n: u32, clients: u32) -> Vec<String> {
    (0..n)
        .map(|i| {
            let c = i % clients;
            let ip = if c % 7 == 3 {
                format!("2001:db8::{c:x}")
            } else {
                format!("10.1.{}.{}", c >> 8, c & 255)
            };
            format!(
                r#"{ip} - - [0{}/Nov/2026:10:{:02}:{:02} +0100] "GET /isos/{}.iso HTTP/1.1" 206 10 "-" "UA {}""#,
                5 + i % 2,
                i / 60 % 60,
                i % 60,
                ["a", "b"][(i % 3 == 0) as usize],
                i % 5
            )
        })
        .collect()
}

fn raw_batch(lines: &[String], hasher: Option<&KeyHasher>) -> Batch {
    let slot = Arc::new(std::sync::OnceLock::new());
    if let Some(h) = hasher {
        let _ = slot.set(h.clone());
    }
    let mut p = LineProcessor::new(
        LogFormat::compile("combined").unwrap(),
        Classifier::new(&[".iso"]),
    )
    .with_server("mirror-a")
    .with_hasher(slot);
    let mut b = Batch::new();
    for (i, l) in lines.iter().enumerate() {
        p.process_line(l.as_bytes(), i as u64 + 1, &mut b);
    }
    assert_eq!(b.hits().len(), lines.len());
    b
}

fn hashed_batch(lines: &[String], hasher: &KeyHasher) -> Batch {
    let mut b = raw_batch(lines, None);
    b.hash_all(hasher, &mut Scratch::default());
    b
}

fn same_hits(a: &Batch, b: &Batch) {
    assert_eq!(a.hits().len(), b.hits().len());
    assert_eq!(a.format_identity, b.format_identity);
    assert_eq!(a.server, b.server);
    assert_eq!(a.keyed_with(), b.keyed_with());
    for (i, (x, y)) in a.hits().iter().zip(b.hits()).enumerate() {
        assert_eq!(
            (x.day, x.method, x.status, x.bytes, x.identity, x.facts),
            (y.day, y.method, y.status, y.bytes, y.identity, y.facts)
        );
        assert_eq!(a.path(x), b.path(y));
        assert_eq!(a.referer_host(x), b.referer_host(y));
        assert_eq!(a.hashed_keys(i), b.hashed_keys(i));
    }
}

#[test]
fn a_payload_decodes_to_the_batch_it_was_made_of() {
    let hasher = KeyHasher::new([5; 32]);
    let b = hashed_batch(&lines(300, 40), &hasher);
    let payloads = encode_batch(&b);
    assert_eq!(payloads.len(), 1);
    // The server, two paths, then 300 hits of HIT_BYTES.
    let paths = 2 * 4 + "/isos/a.iso".len() * 2;
    let server = 4 + "mirror-a".len();
    assert_eq!(
        payloads[0].len(),
        1 + server + 4 + paths + 4 + 300 * HIT_BYTES
    );
    let back = decode_batch(&payloads[0], hasher.id()).unwrap();
    assert!(back.is_hashed());
    same_hits(&b, &back);
    // An empty batch makes no record.
    assert!(encode_batch(&Batch::hashed(15, Arc::from("a"), hasher.id())).is_empty());
}

/// A record of version 1 (before line facts) still replays: the same
/// lines, with the batch marked as carrying no facts.
#[test]
fn a_version_1_payload_decodes_without_facts() {
    let hasher = KeyHasher::new([5; 32]);
    let b = hashed_batch(&lines(3, 3), &hasher);
    let p = encode_batch(&b).remove(0);
    // Version 1's payload: each hit without its trailing facts.
    let head = p.len() - 3 * HIT_BYTES;
    let mut v1 = p[..head].to_vec();
    for i in 0..3 {
        let at = head + i * HIT_BYTES;
        v1.extend_from_slice(&p[at..at + HIT_BYTES_V1]);
    }
    assert!(decode_batch(&v1, hasher.id()).is_err());
    let back = decode_batch_of(&v1, hasher.id(), VERSION_NO_FACTS).unwrap();
    assert!(back.facts_missing && !b.facts_missing);
    assert_eq!(back.hits().len(), 3);
    for (i, (x, y)) in b.hits().iter().zip(back.hits()).enumerate() {
        assert_eq!((x.day, x.bytes, x.identity), (y.day, y.bytes, y.identity));
        assert_eq!(b.hashed_keys(i), back.hashed_keys(i));
        assert_eq!(y.facts, crate::tally::LineFacts::default());
    }
    // And the facts of the current version are the line's own.
    let now = decode_batch(&p, hasher.id()).unwrap();
    assert_eq!(now.hits()[0].facts.class, crate::agent::ClientClass::Other);
    assert_eq!(now.hits()[0].facts.network, b.hits()[0].facts.network);
}

#[test]
fn a_big_batch_is_cut_into_records_of_whole_lines() {
    let hasher = KeyHasher::new([5; 32]);
    let long: Vec<String> = (0..10_000u32)
        .map(|i| {
            format!(
                r#"10.0.{}.{} - - [05/Nov/2026:10:00:00 +0100] "GET /{:0>1000}.iso HTTP/1.1" 200 1 "-" "-""#,
                i >> 8,
                i & 255,
                i
            )
        })
        .collect();
    let b = hashed_batch(&long, &hasher);
    let payloads = encode_batch(&b);
    assert_eq!(payloads.len(), 3);
    let mut all = Batch::hashed(b.format_identity, b.server.clone(), hasher.id());
    for p in &payloads {
        assert!(p.len() <= RECORD_TARGET, "{}", p.len());
        let part = decode_batch(p, hasher.id()).unwrap();
        for (i, h) in part.hits().iter().enumerate() {
            all.push_hashed(
                h.day,
                h.method,
                h.status,
                h.bytes,
                h.identity,
                h.facts,
                part.path(h),
                part.referer_host(h),
                *part.hashed_keys(i).unwrap(),
            );
        }
    }
    same_hits(&b, &all);
}

#[test]
fn a_damaged_payload_is_an_error_never_a_panic_or_a_batch() {
    let hasher = KeyHasher::new([5; 32]);
    let p = encode_batch(&hashed_batch(&lines(3, 3), &hasher)).remove(0);
    for cut in 0..p.len() {
        assert!(decode_batch(&p[..cut], 1).is_err(), "cut at {cut}");
    }
    let mut longer = p.clone();
    longer.push(0);
    assert!(decode_batch(&longer, 1).is_err());
    // A path index out of range, a bad method, bad identity bits.
    let first_hit = p.len() - 3 * HIT_BYTES;
    for (at, value) in [
        (first_hit + 16, 9u8),
        (first_hit + 4, b'P'),
        (first_hit + 15, 16),
    ] {
        let mut bad = p.clone();
        bad[at] = value;
        assert!(decode_batch(&bad, 1).is_err(), "byte {at} = {value}");
    }
    let mut s = 0x1234_5678_u32;
    for _ in 0..2000 {
        let mut junk = p.clone();
        for _ in 0..4 {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let at = (s >> 8) as usize % junk.len();
            junk[at] = (s >> 3) as u8;
        }
        let _ = decode_batch(&junk, 1);
    }
}

fn private(dir: &Path) -> PrivateDir {
    PrivateDir::open(dir, true).unwrap().unwrap()
}

/// Writes `batches` as records of one file; returns its name.
fn write_file(dir: &PrivateDir, hasher: &KeyHasher, batches: &[Batch]) -> String {
    let mut w = Writer::create(dir, hasher.id()).unwrap();
    for b in batches {
        w.append(encode_batch(b)).unwrap();
    }
    w.sync();
    w.name.clone()
}

fn read_all(dir: &PrivateDir, name: &str) -> (Vec<Vec<u8>>, Next) {
    let file = dir.open_file(name, OFlag::O_RDONLY, Mode::empty()).unwrap();
    let len = file.metadata().unwrap().len();
    let mut head = [0u8; HEADER_BYTES as usize];
    file.read_exact_at(&mut head, 0).unwrap();
    let (_, key, _) = parse_header(&head).unwrap();
    let mut r = RecordReader {
        file: &file,
        key: key.unwrap(),
        offset: HEADER_BYTES,
        len,
    };
    let mut out = Vec::new();
    loop {
        match r.next().unwrap() {
            Next::Record(p, _) => out.push(p),
            other => return (out, other),
        }
    }
}

#[test]
fn a_file_is_private_and_holds_no_address_path_or_key_in_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = private(&dir_for(tmp.path()));
    let hasher = KeyHasher::new([5; 32]);
    let text = lines(50, 50);
    let b = hashed_batch(&text, &hasher);
    let name = write_file(&dir, &hasher, std::slice::from_ref(&b));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path), 0o700);
    assert_eq!(mode(&dir.path.join(&name)), 0o600);
    assert_eq!(parse_name(&name).unwrap().0, hasher.id());
    let bytes = std::fs::read(dir.path.join(&name)).unwrap();
    let plain = encode_batch(&b).remove(0);
    // (4 raw bytes of an IPv4 address occur by chance in ~5 KB of random
    // bytes once in about 20,000 runs for these 43 addresses; twice, never.)
    let mut chance = 0;
    for l in &text {
        let ip = l.split(' ').next().unwrap();
        assert!(!contains(&bytes, ip.as_bytes()), "{ip}");
        match ip.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(a) => chance += usize::from(contains(&bytes, &a.octets())),
            std::net::IpAddr::V6(a) => assert!(!contains(&bytes, &a.octets()), "{ip} as bytes"),
        }
    }
    assert!(chance <= 1, "{chance} addresses as raw bytes");
    assert!(!contains(&bytes, b"/isos/"));
    // The keys are stored encrypted: no 16-byte run of the plaintext.
    for w in plain[20..].chunks(16).filter(|c| c.len() == 16) {
        assert!(!contains(&bytes, w));
    }
    let (records, end) = read_all(&dir, &name);
    assert!(matches!(end, Next::End));
    assert_eq!(records, vec![plain]);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_cut_or_damaged_last_record_is_torn_and_one_in_the_middle_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = private(&dir_for(tmp.path()));
    let hasher = KeyHasher::new([5; 32]);
    let (a, b) = (
        hashed_batch(&lines(10, 10), &hasher),
        hashed_batch(&lines(20, 20), &hasher),
    );
    let name = write_file(&dir, &hasher, &[a.clone(), b.clone()]);
    let path = dir.path.join(&name);
    let whole = std::fs::read(&path).unwrap();
    let first_len = RECORD_HEAD as usize + encode_batch(&a)[0].len();
    let second_at = HEADER_BYTES as usize + first_len;
    for cut in [1, 5, RECORD_HEAD as usize, whole.len() - second_at - 1] {
        std::fs::write(&path, &whole[..whole.len() - cut]).unwrap();
        let (records, end) = read_all(&dir, &name);
        assert_eq!(records.len(), 1, "cut {cut}");
        match end {
            Next::Torn(bytes) => assert_eq!(bytes as usize, whole.len() - cut - second_at),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
    // A flipped byte: in the last record, torn; in the first, damage.
    let mut flipped = whole.clone();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(read_all(&dir, &name), (r, Next::Torn(_)) if r.len() == 1));
    let mut flipped = whole.clone();
    flipped[HEADER_BYTES as usize + 20] ^= 1;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(read_all(&dir, &name), (r, Next::Corrupt(_)) if r.is_empty()));
}

/// A fresh SQLite database and a copy of it (the same secret).
fn two_databases(tmp: &Path) -> (DbTarget, DbTarget) {
    let a = tmp.join("a/d.sqlite");
    let b = tmp.join("b/d.sqlite");
    std::fs::create_dir_all(a.parent().unwrap()).unwrap();
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    drop(Store::open(&DbTarget::Sqlite(a.clone())).unwrap());
    rusqlite::Connection::open(&a)
        .unwrap()
        .execute("VACUUM INTO ?1", [b.to_str().unwrap()])
        .unwrap();
    (DbTarget::Sqlite(a), DbTarget::Sqlite(b))
}

fn replay_all(q: &mut Queue, store: &mut Store) -> u64 {
    q.replay_soon();
    let mut steps = 0;
    while q.replay_step(store, 1000).unwrap().is_some() {
        steps += 1;
        assert!(steps < 10_000);
    }
    steps
}

fn queue_files(db: &DbTarget) -> Vec<String> {
    let dir = dir_for(db.local_dir());
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("q-") && n.ends_with(SUFFIX))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The spill thread's file, replayed in group commits, counts exactly what
/// the raw lines count; replaying it again — the file put back as a crash
/// before its deletion would leave it — changes no figure.
#[test]
fn a_replayed_file_counts_as_its_raw_lines_and_a_copy_put_back_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_databases(tmp.path());
    let text = lines(5000, 700);
    // The raw lines into A, the queued ones into B.
    let mut sa = Store::open(&a).unwrap();
    let hasher = sa.hasher();
    sa.apply(&[raw_batch(&text, Some(&hasher))], Origin::Live)
        .unwrap();
    let expected = sa.monthly().unwrap();
    let mut sb = Store::open(&b).unwrap();
    assert_eq!(sb.hasher().id(), hasher.id());
    let mut q = Queue::start(&b, 35, 1000);
    q.learned_secret(&sb.hasher());
    // The secret's copy is there, private, and gives the same secret.
    let copy = dir_for(b.local_dir()).join(secret_file(&b));
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(cached_secret(b.local_dir(), &b).unwrap().id(), hasher.id());
    for chunk in text.chunks(700) {
        q.spill(raw_batch(chunk, None));
    }
    assert_eq!(
        q.finish(),
        SpillTotals {
            spilled: 5000,
            dropped: 0
        }
    );
    let files = queue_files(&b);
    assert_eq!(files.len(), 1);
    let file = dir_for(b.local_dir()).join(&files[0]);
    let copy = tmp.path().join("copy");
    rusqlite::Connection::open(b.sqlite().unwrap())
        .unwrap()
        .execute(
            "VACUUM INTO ?1",
            [tmp.path().join("b-before.sqlite").to_str().unwrap()],
        )
        .unwrap();
    std::fs::copy(&file, &copy).unwrap();
    // 5000 lines in records of 700 and groups of at least 1000: 1400,
    // 1400, 1400, 800.
    assert_eq!(replay_all(&mut q, &mut sb), 4);
    assert_eq!(sb.monthly().unwrap(), expected);
    assert!(queue_files(&b).is_empty());
    assert_eq!(q.replayed.lines, 5000);
    assert_eq!(q.replayed.applied.counted_lines, 5000);
    let mark = format!("queue:{}", files[0]);
    assert!(sb.mark(&mark).unwrap().unwrap().starts_with("done "));
    // Put back twice (a fresh logger's queue too): nothing changes.
    for _ in 0..2 {
        std::fs::copy(&copy, &file).unwrap();
        let mut q2 = Queue::start(&b, 35, 1000);
        replay_all(&mut q2, &mut sb);
        assert_eq!(q2.replayed.applied, ApplyStats::default());
        assert_eq!(sb.monthly().unwrap(), expected);
        assert!(queue_files(&b).is_empty());
        q2.finish();
    }
    // Killed after the first transaction: the next replay goes on from its
    // mark. (Into the database as it was before any replay, beside it.)
    let before = b.local_dir().join("before.sqlite");
    std::fs::copy(tmp.path().join("b-before.sqlite"), &before).unwrap();
    let before = DbTarget::Sqlite(before);
    let mut s0 = Store::open(&before).unwrap();
    std::fs::copy(&copy, &file).unwrap();
    let mut q3 = Queue::start(&before, 35, 1000);
    q3.replay_soon();
    let first = q3.replay_step(&mut s0, 1000).unwrap().unwrap();
    assert_eq!(first.counted_lines, 1400);
    let offset: u64 = s0.mark(&mark).unwrap().unwrap().parse().unwrap();
    assert!(offset > HEADER_BYTES);
    drop(q3);
    let mut q4 = Queue::start(&before, 35, 1000);
    replay_all(&mut q4, &mut s0);
    assert_eq!(q4.replayed.lines, 5000 - 1400);
    assert_eq!(s0.monthly().unwrap(), expected);
    assert!(queue_files(&b).is_empty());
}

/// Why the marks: live lines applied twice count twice (two loggers' copies
/// of one line are two requests), so only the mark keeps a replay once.
#[test]
fn live_lines_applied_twice_count_twice_which_is_why_replay_keeps_marks() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, b) = two_databases(tmp.path());
    let mut sb = Store::open(&b).unwrap();
    let batch = hashed_batch(&lines(10, 10), &sb.hasher());
    sb.apply(std::slice::from_ref(&batch), Origin::Live)
        .unwrap();
    sb.apply(std::slice::from_ref(&batch), Origin::Live)
        .unwrap();
    let rows = sb.monthly().unwrap();
    let (downloads, requests): (u64, u64) = rows
        .iter()
        .fold((0, 0), |(d, r), m| (d + m.downloads, r + m.requests));
    assert_eq!((downloads, requests), (10, 20));
}

#[test]
fn a_torn_last_record_is_dropped_and_the_rest_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_databases(tmp.path());
    let text = lines(300, 300);
    let mut sa = Store::open(&a).unwrap();
    let hasher = sa.hasher();
    sa.apply(&[raw_batch(&text[..200], Some(&hasher))], Origin::Live)
        .unwrap();
    let mut sb = Store::open(&b).unwrap();
    let dir = private(&dir_for(b.local_dir()));
    let name = write_file(
        &dir,
        &hasher,
        &[
            hashed_batch(&text[..100], &hasher),
            hashed_batch(&text[100..200], &hasher),
            hashed_batch(&text[200..], &hasher),
        ],
    );
    let path = dir.path.join(&name);
    let len = std::fs::metadata(&path).unwrap().len();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let mut q = Queue::start(&b, 35, 1000);
    replay_all(&mut q, &mut sb);
    assert_eq!(q.replayed.lines, 200);
    assert_eq!(sb.monthly().unwrap(), sa.monthly().unwrap());
    assert!(queue_files(&b).is_empty());
}

#[test]
fn a_file_of_another_secret_is_left_alone_and_a_damaged_one_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, b) = two_databases(tmp.path());
    let mut sb = Store::open(&b).unwrap();
    let other = KeyHasher::new([9; 32]);
    let dir = private(&dir_for(b.local_dir()));
    let foreign = write_file(&dir, &other, &[hashed_batch(&lines(30, 30), &other)]);
    assert_eq!(count_lines(&dir, &foreign).unwrap(), 30);
    let own = sb.hasher();
    let damaged = write_file(
        &dir,
        &own,
        &[
            hashed_batch(&lines(10, 10), &own),
            hashed_batch(&lines(20, 20), &own),
        ],
    );
    let p = dir.path.join(&damaged);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[HEADER_BYTES as usize + 3] ^= 0x40;
    std::fs::write(&p, bytes).unwrap();
    let mut q = Queue::start(&b, 35, 1000);
    replay_all(&mut q, &mut sb);
    assert_eq!(q.replayed, ReplayStats::default());
    assert!(sb.monthly().unwrap().is_empty());
    assert_eq!(queue_files(&b), vec![foreign.clone()]);
    assert!(dir.path.join(format!("{damaged}.bad")).exists());
    // Reported once per logger, never counted, however often it looks.
    replay_all(&mut q, &mut sb);
    assert_eq!(queue_files(&b), vec![foreign]);
}

#[test]
fn past_the_limit_or_without_a_secret_lines_are_dropped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let db = DbTarget::Sqlite(tmp.path().join("d.sqlite"));
    // No secret known: nothing can be written.
    let q = Queue::start(&db, 35, 1000);
    q.spill(raw_batch(&lines(10, 10), None));
    assert_eq!(
        q.finish(),
        SpillTotals {
            spilled: 0,
            dropped: 10
        }
    );
    assert!(queue_files(&db).is_empty());
    // A limit that takes the header and two records of 10 lines.
    let record = RECORD_HEAD
        + encode_batch(&hashed_batch(&lines(10, 10), &KeyHasher::new([1; 32])))[0].len() as u64;
    // (The secret's copy is in the directory too.)
    let limit = SECRET_BYTES as u64 + HEADER_BYTES + 2 * record;
    let mut q = Queue::start_with_limit(&db, 35, 1000, limit);
    q.learned_secret(&KeyHasher::new([1; 32]));
    for _ in 0..3 {
        q.spill(raw_batch(&lines(10, 10), None));
    }
    assert_eq!(
        q.finish(),
        SpillTotals {
            spilled: 20,
            dropped: 10
        }
    );
}

/// Past the bound on the way to the spill thread, the reader waits while
/// it makes progress, and gives up on one stuck for [`SPILL_STUCK`].
#[test]
fn try_send_keeps_at_most_the_bound_on_its_way() {
    let tmp = tempfile::tempdir().unwrap();
    let db = DbTarget::Sqlite(tmp.path().join("d.sqlite"));
    let q = Queue::start(&db, 35, 15);
    let s = q.sender();
    let mut b = raw_batch(&lines(10, 10), None);
    b.stats.lines = 12;
    // Pretend 10 are on their way already, and nothing moves from now on:
    // the clock of progress restarts after our own clock starts (starting
    // the queue on a busy machine may take longer than SPILL_STUCK). The
    // queue's clock counts whole milliseconds, so its two seconds may be
    // up to a millisecond short of ours.
    let start = Instant::now();
    s.shared.in_flight.fetch_add(10, Ordering::AcqRel);
    s.shared
        .progress
        .store(s.shared.millis(), Ordering::Release);
    assert!(!s.try_send(&mut b));
    assert!(start.elapsed() >= SPILL_STUCK - Duration::from_millis(1));
    assert_eq!((b.hits().len(), b.stats.lines), (10, 12));
    s.shared.in_flight.fetch_sub(10, Ordering::AcqRel);
    assert!(s.try_send(&mut b));
    assert_eq!((b.hits().len(), b.stats.lines), (0, 12));
    assert_eq!(q.finish().dropped, 10);
}

/// A done mark outlives its file by the retention window (plus two days),
/// then goes; so does the mark of a file gone without being counted whole,
/// by the age in its name. A mark whose file waits stays.
#[test]
fn marks_are_forgotten_once_every_day_they_touched_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, b) = two_databases(tmp.path());
    let mut sb = Store::open(&b).unwrap();
    let now = chrono::Utc::now().timestamp();
    let day = 86_400;
    let waiting = write_file(&private(&dir_for(b.local_dir())), &sb.hasher(), &[]);
    let marks = [
        (
            "q-1-20200101-000000-1.dlq",
            format!("done {}", now - 38 * day),
        ),
        (
            "q-1-20200101-000000-2.dlq",
            format!("done {}", now - 36 * day),
        ),
        ("q-1-20200101-000000-3.dlq", "640".to_string()),
        (waiting.as_str(), "64".to_string()),
    ];
    for (name, value) in &marks {
        sb.apply_marked(
            &[],
            Origin::Live,
            Some(Mark {
                name: &format!("{MARK}{name}"),
                value,
            }),
        )
        .unwrap();
    }
    // The file that waits is taken (and counted: it has no record).
    let mut q = Queue::start(&b, 35, 1000);
    replay_all(&mut q, &mut sb);
    let mut left = sb.mark_names(MARK).unwrap();
    left.sort();
    let mut expected = vec![
        format!("{MARK}q-1-20200101-000000-2.dlq"),
        format!("{MARK}{waiting}"),
    ];
    expected.sort();
    assert_eq!(left, expected);
    assert!(sb
        .mark(&format!("{MARK}{waiting}"))
        .unwrap()
        .unwrap()
        .starts_with("done "));
}
