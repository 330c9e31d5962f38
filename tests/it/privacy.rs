//! What the database files keep of a closed day: nothing that the secret and
//! the old log could match (store.rs, "No raw addresses on disk"); and the
//! one documented limit of importing a log split into parts (README, "Rotated
//! parts of one log").

use super::{total, Site};
use dlcount::classify::Classifier;
use dlcount::keys::KeyHasher;
use dlcount::logformat::LogFormat;
use dlcount::tally::{Batch, LineProcessor};
use rusqlite::Connection;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

/// Lines of three days well past a two-day retention: per day 300 clients,
/// each fetching one of two ISOs in two requests, plus a segmented
/// downloader's two byte-identical lines.
fn old_log() -> (String, u64) {
    let today = chrono::Local::now().date_naive();
    let mut log = String::new();
    let mut requests = 0;
    for back in [12u64, 11, 10] {
        let date = today - chrono::Days::new(back);
        let t = date.format("%d/%b/%Y").to_string();
        for c in 0..300u32 {
            let ip = format!("198.51.{}.{}", c / 200, c % 200 + 1);
            let file = ["/isos/a.iso", "/isos/b.iso"][(c % 2) as usize];
            for (sec, status, bytes) in [(c % 60, 206, 1000 + c), (c % 60 + 1, 200, 50_000)] {
                log.push_str(&format!(
                    "{ip} - - [{t}:10:{:02}:{sec:02} +0100] \"GET {file} HTTP/1.1\" {status} {bytes} \"-\" \"Wget/1.21\"\n",
                    c / 60
                ));
                requests += 1;
            }
        }
        for _ in 0..2 {
            log.push_str(&format!(
                "2001:db8::7 - - [{t}:23:00:00 +0100] \"GET /isos/a.iso HTTP/1.1\" 206 4096 \"https://example.org/\" \"aria2/1.37\"\n"
            ));
            requests += 1;
        }
    }
    (log, requests)
}

/// The hashes the reading thread makes of `log` with `secret`: what the old
/// log and the secret (kept in the same file) can recompute.
fn intermediates(log: &str, secret: [u8; 32]) -> Vec<i64> {
    let hasher = KeyHasher::new(secret);
    let slot = Arc::new(OnceLock::new());
    slot.set(hasher.clone()).unwrap();
    let mut p = LineProcessor::new(
        LogFormat::compile("combined").unwrap(),
        Classifier::new(&[".iso"]),
    )
    .with_hasher(slot);
    let mut batch = Batch::new();
    for (i, l) in log.lines().enumerate() {
        p.process_line(l.as_bytes(), i as u64 + 1, &mut batch);
    }
    let mut out = Vec::new();
    for i in 0..batch.hits().len() {
        let (visitor, line) = batch.keys(i, hasher.id()).expect("keyed by the reader");
        out.extend([visitor, line]);
    }
    out
}

fn column(conn: &Connection, sql: &str) -> Vec<i64> {
    let mut st = conn.prepare(sql).unwrap();
    let rows = st.query_map([], |r| r.get(0)).unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// How many of `values` occur in `bytes`: as 8 bytes in either byte order,
/// or as SQLite's record encoding of the integer (big-endian in 1, 2, 3, 4,
/// 6 or 8 bytes; only the forms of 6 bytes or more are searched, a shorter
/// one would match by chance).
fn found(bytes: &[u8], values: &[i64]) -> usize {
    let mut patterns: Vec<(Vec<u8>, usize)> = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        patterns.push((v.to_le_bytes().to_vec(), i));
        patterns.push((v.to_be_bytes().to_vec(), i));
        if (-(1i64 << 47)..1i64 << 47).contains(&v) {
            patterns.push((v.to_be_bytes()[2..].to_vec(), i));
        }
    }
    let mut hits = HashSet::new();
    for len in [6, 8] {
        let wanted: std::collections::HashMap<&[u8], usize> = patterns
            .iter()
            .filter(|(p, _)| p.len() == len)
            .map(|(p, i)| (p.as_slice(), *i))
            .collect();
        for w in bytes.windows(len) {
            if let Some(&i) = wanted.get(w) {
                hits.insert(i);
            }
        }
    }
    hits.len()
}

#[test]
fn a_closed_day_leaves_no_key_or_hash_in_the_database_files() {
    let site = Site::new();
    let (log, requests) = old_log();
    let file = site.dir.path().join("access.log.1");
    std::fs::write(&file, &log).unwrap();
    let (code, err) = site.import(&[&file]);
    assert_eq!(code, 0, "{err}");
    let before = site.report();
    assert_eq!(total(&before, "requests"), requests);
    assert_eq!(total(&before, "downloads"), 3 * 301);

    // Everything a closed day could be recognised by: the intermediate
    // hashes, every stored key and hash, and the days' own keys.
    let mut groups: Vec<(&str, Vec<i64>)> = Vec::new();
    {
        let conn = Connection::open(&site.db).unwrap();
        let secret: Vec<u8> = conn
            .query_row("SELECT value FROM meta WHERE name = 'secret'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let stored_keys = column(&conn, "SELECT key FROM visitors");
        let stored_hashes = column(&conn, "SELECT hash FROM seen_lines");
        assert_eq!(stored_keys.len(), 3 * 301);
        assert_eq!(stored_hashes.len() as u64, requests - 3);
        groups.push((
            "hashes made with the secret",
            intermediates(&log, secret.try_into().unwrap()),
        ));
        groups.push(("stored visitor keys", stored_keys));
        groups.push(("stored line hashes", stored_hashes));
        // Day keys (schema 3), in 8-byte pieces; there are none before it.
        let mut day_keys = Vec::new();
        if let Ok(mut st) = conn.prepare("SELECT key FROM day_keys") {
            let keys = st.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
            for k in keys {
                for part in k.unwrap().chunks(8) {
                    day_keys.push(i64::from_le_bytes(part.try_into().unwrap()));
                }
            }
        }
        groups.push(("day key pieces", day_keys));
        // As if the import had finished over an hour ago (the purge's grace).
        conn.execute("UPDATE days SET touched = 0", []).unwrap();
    }

    let empty = site.dir.path().join("empty.log");
    std::fs::write(&empty, "").unwrap();
    let (code, err) = site.import_with(&[&empty], &["--retention-days", "2"]);
    assert_eq!(code, 0, "{err}");
    {
        let conn = Connection::open(&site.db).unwrap();
        let open = column(&conn, "SELECT count(*) FROM days WHERE closed = 0");
        let rows = column(
            &conn,
            "SELECT (SELECT count(*) FROM visitors) + (SELECT count(*) FROM seen_lines)",
        );
        assert_eq!((open, rows), (vec![0], vec![0]));
    }
    assert_eq!(site.report(), before, "closing days keeps their counts");

    let bytes = site.db_bytes();
    let mut report = Vec::new();
    let mut sum = 0;
    for (what, mut values) in groups {
        values.sort_unstable();
        values.dedup();
        let n = found(&bytes, &values);
        sum += n;
        report.push(format!("{what}: {n} of {}", values.len()));
    }
    let report = report.join(", ");
    eprintln!("found in raw bytes after the purge: {report}");
    assert_eq!(sum, 0, "found in raw bytes after the purge: {report}");
}

#[test]
fn identical_lines_split_across_imported_files_count_as_the_most_one_file_holds() {
    let same = "2001:db8::7 - - [20/Nov/2026:23:00:00 +0100] \"GET /isos/a.iso HTTP/1.1\" 206 4096 \"-\" \"aria2/1.37\"\n";
    let whole = Site::new();
    let both = whole.dir.path().join("access.log");
    std::fs::write(&both, same.repeat(3)).unwrap();
    assert_eq!(whole.import(&[&both]).0, 0);
    let parts = Site::new();
    let first = parts.dir.path().join("access.log.1");
    let second = parts.dir.path().join("access.log");
    std::fs::write(&first, same.repeat(2)).unwrap();
    std::fs::write(&second, same).unwrap();
    assert_eq!(parts.import(&[&first, &second]).0, 0);
    let figures = |site: &Site| {
        let r = site.report();
        (
            total(&r, "downloads"),
            total(&r, "requests"),
            total(&r, "bytes"),
        )
    };
    assert_eq!(figures(&whole), (1, 3, 3 * 4096));
    // The copy in the second file is taken for one the first file held.
    assert_eq!(figures(&parts), (1, 2, 2 * 4096));
}
