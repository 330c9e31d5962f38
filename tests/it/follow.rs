//! `follow`: a log file counted as it grows, exactly, across `kill -9` and
//! restarts (the checkpoint is committed with the counts), across rotation
//! by rename (`create`) and by copy and truncation (`copytruncate`), and
//! never twice when the same file is also imported.

use super::{cmd, line, wait_until, Pipe, Site};
use nix::sys::signal::Signal;
use std::io::Write;
use std::path::Path;

fn spawn_follow(site: &Site, files: &[&Path]) -> Pipe {
    let mut c = cmd();
    c.arg("follow")
        .arg("--db")
        .arg(&site.db)
        .arg("--root")
        .arg(&site.root)
        .args(files);
    Pipe::spawn(c)
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// Lines `from..to`: 40 clients, two files, and every fifth line written
/// three times identically (a segmented download's equal ranges started in
/// one second: three real requests).
fn lines(from: u32, to: u32) -> String {
    (from..to)
        .map(|i| {
            let path = if i % 2 == 0 {
                "/isos/a.iso"
            } else {
                "/isos/b.iso"
            };
            let l = line(
                &format!("198.51.100.{}", i % 40),
                12,
                i,
                path,
                206,
                1000 + u64::from(i),
            );
            if i % 5 == 0 {
                l.repeat(3)
            } else {
                l
            }
        })
        .collect()
}

/// The answer: the same lines imported into a fresh database.
fn answer(site: &Site, text: &str) -> serde_json::Value {
    let all = site.dir.path().join("all-lines.log");
    std::fs::write(&all, text).unwrap();
    let fresh = Site::new();
    let (code, err) = fresh.import(&[&all]);
    assert_eq!(code, 0, "{err}");
    fresh.report()
}

#[test]
fn counts_are_exact_across_kill_9_and_two_restarts() {
    let site = Site::new();
    let log = site.dir.path().join("access.log");
    let mut written = String::new();
    let mut write = |from, to| {
        let t = lines(from, to);
        append(&log, &t);
        written.push_str(&t);
    };
    write(0, 20_000);
    let p = spawn_follow(&site, &[&log]);
    wait_until("some lines are counted", || {
        site.try_total("requests").is_some_and(|n| n > 0)
    });
    write(20_000, 40_000);
    p.signal(Signal::SIGKILL);
    let (code, _) = p.finish();
    assert_eq!(code, -1);
    let p = spawn_follow(&site, &[&log]);
    write(40_000, 60_000);
    std::thread::sleep(std::time::Duration::from_millis(150));
    p.signal(Signal::SIGKILL);
    p.finish();
    write(60_000, 70_000);
    let p = spawn_follow(&site, &[&log]);
    let want = answer(&site, &written);
    wait_until("every line is counted", || {
        site.try_report() == Some(want.clone())
    });
    p.signal(Signal::SIGTERM);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(its checkpoint)"), "{err}");
    // Importing the followed file afterwards changes nothing.
    let (code, err) = site.import(&[&log]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(site.report(), want);
}

#[test]
fn create_and_copytruncate_rotations_while_following_lose_nothing() {
    let site = Site::new();
    let log = site.dir.path().join("access.log");
    let rotated = site.dir.path().join("access.log.1");
    let written = std::cell::RefCell::new(String::new());
    let write = |from, to| {
        let t = lines(from, to);
        append(&log, &t);
        written.borrow_mut().push_str(&t);
    };
    write(0, 500);
    let p = spawn_follow(&site, &[&log]);
    wait_until("the first lines are counted", || {
        site.try_total("requests").is_some_and(|n| n > 0)
    });
    // create: renamed, the server writes on to the old file a little, then a new one.
    write(500, 600);
    std::fs::rename(&log, &rotated).unwrap();
    let late = lines(600, 650);
    append(&rotated, &late);
    written.borrow_mut().push_str(&late);
    write(650, 900);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // copytruncate: copied (with lines not read yet), then truncated, then more.
    write(900, 1000);
    std::fs::remove_file(&rotated).unwrap();
    std::fs::copy(&log, &rotated).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    write(1000, 1300);
    let want = answer(&site, &written.borrow());
    wait_until("every line is counted", || {
        site.try_report() == Some(want.clone())
    });
    p.signal(Signal::SIGTERM);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("was rotated: reading the new file"), "{err}");
    assert!(err.contains("was truncated (copytruncate)"), "{err}");
}

#[test]
fn a_configuration_error_stops_follow_and_leaves_the_lines_in_the_file() {
    let site = Site::new();
    let log = site.dir.path().join("access.log");
    append(&log, &lines(0, 10));
    let out = cmd()
        .arg("follow")
        .arg("--db")
        .arg(&site.db)
        .args(["--format", "%h %t"])
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not following until the configuration is fixed"),
        "{err}"
    );
    assert!(site.try_report().is_none());
}

#[test]
fn a_restart_reads_on_from_its_checkpoint_and_copies_split_by_it_add_up() {
    let site = Site::new();
    let log = site.dir.path().join("access.log");
    let same = line("192.0.2.50", 12, 1, "/isos/a.iso", 206, 500);
    append(&log, &(lines(0, 1000) + &same));
    let p = spawn_follow(&site, &[&log]);
    let want = answer(&site, &(lines(0, 1000) + &same));
    wait_until("the first part is counted", || {
        site.try_report() == Some(want.clone())
    });
    p.signal(Signal::SIGTERM);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(": 1401 lines,"), "{err}");
    // Two more copies of the identical line: three real requests in all.
    append(&log, &(same.repeat(2) + &lines(1000, 1010)));
    let p = spawn_follow(&site, &[&log]);
    let all = lines(0, 1000) + &same.repeat(3) + &lines(1000, 1010);
    let want = answer(&site, &all);
    wait_until("the rest is counted", || {
        site.try_report() == Some(want.clone())
    });
    p.signal(Signal::SIGTERM);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(its checkpoint)"), "{err}");
    assert!(err.contains(": 16 lines,"), "read on, not again: {err}");
    assert_eq!(want["/isos/a.iso"]["2026-11"]["requests"], 700 + 3 + 7);
}
