//! Pipe mode under the conditions Apache creates: lines committed while the
//! pipe stays open, SIGTERM followed by more lines, two instances on one
//! database, `kill -9`, and a database that cannot be written for a while.

use super::{line, total, wait_until, Site};
use nix::sys::signal::Signal;
use serde_json::json;

#[test]
fn lines_are_committed_while_the_pipe_stays_open() {
    let site = Site::new();
    let mut p = site.spawn_pipe(&[]);
    p.write(line("192.0.2.1", 5, 1, "/a.iso", 200, 100).as_bytes());
    // No EOF: the line must reach the database on its own (group commit).
    wait_until("the line is committed", || {
        site.try_total("requests") == Some(1)
    });
    let (code, _) = p.finish();
    assert_eq!(code, 0);
}

#[test]
fn sigterm_commits_and_keeps_reading_until_eof() {
    let site = Site::new();
    let mut p = site.spawn_pipe(&[]);
    p.write(line("192.0.2.1", 5, 1, "/a.iso", 200, 100).as_bytes());
    wait_until("first line committed", || {
        site.try_total("requests") == Some(1)
    });
    p.signal(Signal::SIGTERM);
    // Apache's graceful restart: requests still in flight are logged after SIGTERM.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(p.is_running(), "the logger must not exit on SIGTERM");
    p.write(line("192.0.2.2", 5, 2, "/a.iso", 200, 100).as_bytes());
    p.write(line("192.0.2.3", 5, 3, "/b.iso", 206, 50).as_bytes());
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        site.report(),
        json!({"/a.iso": {"2026-11": {"downloads": 2, "requests": 2, "bytes": 200}},
               "/b.iso": {"2026-11": {"downloads": 1, "requests": 1, "bytes": 50}}})
    );
    assert!(err.contains("end of input after SIGTERM"), "{err}");
}

#[test]
fn two_instances_on_one_database_split_the_lines() {
    let site = Site::new();
    let mut a = site.spawn_pipe(&[]);
    let mut b = site.spawn_pipe(&[]);
    // An identical line going to both instances is two real requests
    // (Apache gives each line to exactly one logger).
    let same = line("192.0.2.9", 6, 1, "/a.iso", 206, 1000);
    for i in 0..400u32 {
        let l = line(&format!("198.51.100.{}", i % 200), 6, i, "/a.iso", 206, 10);
        if i % 2 == 0 {
            a.write(l.as_bytes())
        } else {
            b.write(l.as_bytes())
        }
    }
    a.write(same.as_bytes());
    b.write(same.as_bytes());
    let (ca, ea) = a.finish();
    let (cb, eb) = b.finish();
    assert_eq!((ca, cb), (0, 0), "{ea}\n{eb}");
    assert_eq!(
        site.report(),
        json!({"/a.iso": {"2026-11": {"downloads": 201, "requests": 402, "bytes": 4000 + 2000}}})
    );
}

#[test]
fn kill_9_after_a_committed_burst_loses_nothing_committed() {
    let site = Site::new();
    let mut p = site.spawn_pipe(&[]);
    let burst: String = (0..1000u32)
        .map(|i| line(&format!("203.0.113.{}", i % 250), 7, i, "/a.iso", 206, 3))
        .collect();
    p.write(burst.as_bytes());
    wait_until("burst committed", || {
        site.try_total("requests") == Some(1000)
    });
    p.signal(Signal::SIGKILL);
    let (code, _) = p.finish();
    assert_eq!(code, -1, "killed by signal");
    let rest: String = (1000..1500u32)
        .map(|i| line(&format!("203.0.113.{}", i % 250), 7, i, "/a.iso", 206, 3))
        .collect();
    let (code, err) = site.pipe_all(rest.as_bytes(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        site.report(),
        json!({"/a.iso": {"2026-11": {"downloads": 250, "requests": 1500, "bytes": 4500}}})
    );
}

/// Makes the database unwritable for the logger, returns how to undo it and
/// the extra arguments the logger needs. As root (CI) permission bits do not
/// stop us, so the logger drops to `nobody` and the files belong to root.
pub fn make_unwritable(site: &Site) -> (Vec<String>, Box<dyn Fn()>) {
    use std::os::unix::fs::PermissionsExt;
    let dir = site.db.parent().unwrap().to_path_buf();
    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let nobody = nix::unistd::User::from_name("nobody")
            .unwrap()
            .expect("user nobody");
        let undo_dir = dir.clone();
        (
            vec!["--user".into(), "nobody".into()],
            Box::new(move || {
                for e in std::fs::read_dir(&undo_dir).unwrap() {
                    let p = e.unwrap().path();
                    nix::unistd::chown(&p, Some(nobody.uid), Some(nobody.gid)).unwrap();
                }
                nix::unistd::chown(&undo_dir, Some(nobody.uid), Some(nobody.gid)).unwrap();
            }),
        )
    } else {
        let files: Vec<_> = ["", "-wal", "-shm"]
            .iter()
            .map(|s| {
                let mut p = site.db.clone().into_os_string();
                p.push(s);
                std::path::PathBuf::from(p)
            })
            .filter(|p| p.exists())
            .collect();
        for f in &files {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o444)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        (
            vec![],
            Box::new(move || {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
                for f in &files {
                    std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
                }
            }),
        )
    }
}

#[test]
fn read_only_database_keeps_draining_and_counts_once_writable() {
    let site = Site::new();
    // An existing database with one line in it.
    site.pipe_all(line("192.0.2.1", 8, 1, "/a.iso", 200, 1).as_bytes(), &[]);
    let (args, make_writable) = make_unwritable(&site);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = site.spawn_pipe(&args);
    // More than Apache's 64 KiB pipe buffer: a logger that stopped reading would block us here.
    let lines: String = (0..3000u32)
        .map(|i| line(&format!("198.51.100.{}", i % 100), 8, i, "/b.iso", 206, 7))
        .collect();
    assert!(lines.len() > 64 * 1024);
    p.write(lines.as_bytes());
    wait_until("the problem is reported", || {
        p.stderr().contains("cannot write the database")
    });
    assert!(p.is_running(), "must stay alive: {}", p.stderr());
    assert_eq!(
        total(&site.report(), "requests"),
        1,
        "nothing new could be written yet"
    );
    make_writable();
    wait_until("held lines are saved", || {
        site.try_total("requests") == Some(3001)
    });
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("database writable again"), "{err}");
    assert_eq!(
        site.report()["/b.iso"],
        json!({"2026-11": {"downloads": 100, "requests": 3000, "bytes": 21000}})
    );
}

#[test]
fn no_client_address_reaches_the_disk() {
    let site = Site::new();
    let ips = ["192.0.2.77", "2001:db8:0:1::abcd", "198.51.100.254"];
    let input: String = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| line(ip, 9, i as u32, "/a.iso", 200, 5))
        .collect();
    let (code, _) = site.pipe_all(input.as_bytes(), &[]);
    assert_eq!(code, 0);
    assert_eq!(total(&site.report(), "downloads"), 3);
    let bytes = site.db_bytes();
    for ip in ips {
        assert!(
            memchr::memmem::find(&bytes, ip.as_bytes()).is_none(),
            "{ip} found in the database"
        );
    }
}

/// Past the bound, lines go to the outage queue (see `outage`); here it
/// cannot keep them (its directory cannot be made in the unwritable
/// database directory, or the logger, another user now, cannot read the
/// secret's copy there), so lines are dropped and reported; none waits.
#[test]
fn past_the_pending_bound_lines_are_queued_or_dropped_and_reported_never_blocking() {
    let site = Site::new();
    site.pipe_all(line("192.0.2.1", 8, 1, "/a.iso", 200, 1).as_bytes(), &[]);
    let (mut args, make_writable) = make_unwritable(&site);
    args.extend(["--max-pending".to_string(), "1000".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = site.spawn_pipe(&args);
    let lines: String = (0..3000u32)
        .map(|i| line(&format!("198.51.100.{}", i % 100), 8, i, "/b.iso", 206, 7))
        .collect();
    p.write(lines.as_bytes());
    wait_until("drops are reported", || {
        p.stderr().contains("counted lines dropped so far")
    });
    make_writable();
    let (code, err) = p.finish();
    assert_eq!(code, 1, "dropped lines make a non-zero exit: {err}");
    let dropped: u64 = err
        .split(", ")
        .find_map(|part| part.split_once(" DROPPED (over --max-pending)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no drop count in: {err}"));
    // What went to the queue once it could be made, the next logger counts.
    let (code, err) = site.pipe_all(b"", &args);
    assert_eq!(code, 0, "{err}");
    let kept = total(&site.report(), "requests") - 1;
    assert!(dropped > 0, "{err}");
    assert_eq!(
        kept + dropped,
        3000,
        "every line is either counted or reported dropped: {err}"
    );
}
