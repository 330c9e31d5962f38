//! `import`: idempotent for every figure across repeated, overlapping,
//! compressed and concurrent imports, and with the live pipe.

use super::{line, total, Site};
use flate2::write::GzEncoder;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(site: &Site, name: &str, bytes: &[u8]) -> PathBuf {
    let p = site.dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// 330 lines: 3 files, 50 clients over two days; every tenth line is
/// written twice, as a segmented downloader's identical ranges are.
fn sample() -> String {
    let mut s = String::new();
    for i in 0..300u32 {
        let f = ["/isos/a.iso", "/isos/b.iso", "/c.iso"][(i % 3) as usize];
        let l = line(
            &format!("198.51.100.{}", i % 50),
            10 + i % 2,
            i / 7,
            f,
            206,
            100,
        );
        s.push_str(&l);
        if i % 10 == 0 {
            s.push_str(&l);
        }
    }
    s
}

#[test]
fn overlapping_rotated_files_count_once() {
    let site = Site::new();
    let all = sample();
    let lines: Vec<&str> = all.split_inclusive('\n').collect();
    // access.log.1 today, and the same lines as access.log.2.gz tomorrow,
    // plus a newer access.log.1 overlapping half of it.
    let first = write(&site, "access.log.1", lines[..200].concat().as_bytes());
    let first_gz = write(
        &site,
        "access.log.2.gz",
        &gz(lines[..200].concat().as_bytes()),
    );
    let newer = write(&site, "access.log.1.new", lines[100..].concat().as_bytes());
    let reference = Site::new();
    let whole = write(&reference, "all.log", all.as_bytes());
    reference.import(&[&whole]);
    let expected = reference.report();
    assert_eq!(total(&expected, "requests"), 330);
    for files in [
        vec![&first, &first_gz, &newer],
        vec![&newer, &first],
        vec![&first_gz],
    ] {
        let (code, err) = site.import(&files.iter().map(|p| p.as_path()).collect::<Vec<_>>());
        assert_eq!(code, 0, "{err}");
    }
    assert_eq!(site.report(), expected);
}

#[test]
fn half_live_then_whole_file_import_is_exact() {
    let site = Site::new();
    let all = sample();
    let lines: Vec<&str> = all.split_inclusive('\n').collect();
    let (code, _) = site.pipe_all(lines[..150].concat().as_bytes(), &[]);
    assert_eq!(code, 0);
    let file = write(&site, "access.log", all.as_bytes());
    let (code, err) = site.import(&[&file]);
    assert_eq!(code, 0, "{err}");
    let reference = Site::new();
    reference.pipe_all(all.as_bytes(), &[]);
    assert_eq!(site.report(), reference.report());
    // The reverse race: the pipe gets lines an import already counted.
    let (code, _) = site.pipe_all(lines[150..].concat().as_bytes(), &[]);
    assert_eq!(code, 0);
    assert_eq!(site.report(), reference.report());
}

#[test]
fn truncated_gzip_keeps_what_was_read_and_names_the_file() {
    let site = Site::new();
    let all = sample();
    let full = gz(all.as_bytes());
    let cut = write(&site, "access.log.3.gz", &full[..full.len() * 2 / 3]);
    let good = write(
        &site,
        "good.log",
        line("192.0.2.200", 12, 1, "/isos/a.iso", 200, 9).as_bytes(),
    );
    let missing = site.dir.path().join("nope.log");
    let dir = site.dir.path().join("root");
    let (code, err) = site.import(&[&cut, &missing, &dir, &good]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("access.log.3.gz") && err.contains("the lines before it are counted"),
        "{err}"
    );
    assert!(err.contains("nope.log: No such file or directory"), "{err}");
    assert!(err.contains("root: is a directory"), "{err}");
    let r = site.report();
    let counted = total(&r, "requests");
    assert!(
        counted > 1 && counted < 331,
        "partial file counted: {counted}"
    );
    assert!(r["/isos/a.iso"]["2026-11"]["downloads"].as_u64().unwrap() >= 1);
    // Importing the complete file afterwards fills in exactly the rest.
    let whole = write(&site, "access.log.3.full.gz", &full);
    site.import(&[&whole]);
    assert_eq!(total(&site.report(), "requests"), 331);
}

#[test]
fn multi_member_gzip_is_read_whole() {
    let site = Site::new();
    let all = sample();
    let lines: Vec<&str> = all.split_inclusive('\n').collect();
    let mut multi = gz(lines[..100].concat().as_bytes());
    multi.extend(gz(lines[100..].concat().as_bytes()));
    // Named without .gz: recognised by content.
    let f = write(&site, "access.log.2", &multi);
    let (code, err) = site.import(&[&f]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(total(&site.report(), "requests"), 330);
}

#[test]
fn import_while_a_pipe_runs_is_exact_and_the_pipe_keeps_draining() {
    let site = Site::new();
    let mut p = site.spawn_pipe(&[]);
    let all = sample();
    let file = write(&site, "old.log", all.as_bytes());
    let live: String = (0..2000u32)
        .map(|i| {
            line(
                &format!("203.0.113.{}", i % 200),
                20,
                i,
                "/live.iso",
                200,
                1,
            )
        })
        .collect();
    let writer = {
        let live = live.clone();
        let mut stdin = p.child.stdin.take().unwrap();
        std::thread::spawn(move || {
            for chunk in live.as_bytes().chunks(4096) {
                stdin.write_all(chunk).unwrap();
            }
            stdin
        })
    };
    for _ in 0..3 {
        let (code, err) = site.import(&[&file]);
        assert_eq!(code, 0, "{err}");
    }
    let stdin = writer.join().unwrap();
    p.child.stdin = Some(stdin);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    let r = site.report();
    assert_eq!(
        r["/live.iso"],
        json!({"2026-11": {"downloads": 200, "requests": 2000, "bytes": 2000}})
    );
    assert_eq!(total(&r, "requests"), 2330);
}

#[test]
fn import_json_then_overlapping_logs_double_count_nothing() {
    let site = Site::new();
    let legacy = write(
        &site,
        "counts.json",
        br#"{"linuxvillage-24.04-amd64.iso": {"2026-10": 120, "2026-11": 2}, "/isos/old.iso": {"2025-01": 7}}"#,
    );
    let out = super::cmd()
        .args(["import-json", "--prefix", "/isos", "--db"])
        .arg(&site.db)
        .arg(&legacy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // November's logs: 3 downloads > legacy 2, so 3; October stays 120.
    let logs: String = (0..3)
        .map(|i| {
            line(
                &format!("192.0.2.{i}"),
                2,
                i,
                "/isos/linuxvillage-24.04-amd64.iso",
                200,
                5,
            )
        })
        .collect();
    let f = write(&site, "access.log", logs.as_bytes());
    site.import(&[&f]);
    site.import(&[&f]);
    let out = super::cmd()
        .args(["report", "--json", "--db"])
        .arg(&site.db)
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r,
        json!({"/isos/linuxvillage-24.04-amd64.iso": {"2026-10": 120, "2026-11": 3}, "/isos/old.iso": {"2025-01": 7}})
    );
    // Re-running the migration is harmless.
    let again = super::cmd()
        .args(["import-json", "--prefix", "/isos", "--db"])
        .arg(&site.db)
        .arg(&legacy)
        .output()
        .unwrap();
    assert!(again.status.success());
    let out = super::cmd()
        .args(["report", "--json", "--db"])
        .arg(&site.db)
        .output()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        r
    );
}

#[test]
fn as_root_with_a_configured_user_import_reads_root_only_logs_and_writes_as_that_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let site = Site::new();
    let log = write(
        &site,
        "access.log",
        line("192.0.2.1", 3, 1, "/a.iso", 200, 9).as_bytes(),
    );
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(site.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = write(&site, "dlcount.toml", b"user = \"nobody\"\n");
    let out = super::cmd()
        .args(["import", "--quiet", "--config"])
        .arg(&config)
        .arg("--db")
        .arg(&site.db)
        .arg(&log)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(total(&site.report(), "downloads"), 1);
    let owner = std::fs::metadata(&site.db).unwrap().uid();
    if nix::unistd::geteuid().is_root() {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(
            owner,
            nobody.uid.as_raw(),
            "database must belong to the configured user"
        );
    } else {
        // Not root: `user` cannot apply and is ignored; we wrote as ourselves.
        assert_eq!(owner, nix::unistd::geteuid().as_raw());
    }
}
