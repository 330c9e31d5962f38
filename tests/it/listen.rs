//! `listen`: nginx's syslog datagrams counted through the pipe's database
//! owner — every datagram once, SIGTERM draining what is queued, the day from
//! the line (never the header), a configuration error spooling the lines for
//! the next listener, and `--daemon` with its pid file (never written through a link).

use super::{cmd, line, total, wait_until, Pipe, Site};
use nix::sys::signal::Signal;
use serde_json::json;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

fn spawn_listen(site: &Site, sock: &Path, extra: &[&str]) -> Pipe {
    let mut c = cmd();
    c.arg("listen")
        .arg("--db")
        .arg(&site.db)
        .arg("--root")
        .arg(&site.root)
        .arg("--socket")
        .arg(sock)
        .args(extra);
    let p = Pipe::spawn(c);
    wait_until("the socket exists", || sock.exists());
    p
}

/// Sends each line as one datagram with nginx's header, as nginx does (a
/// blocking socket: it waits while the listener's queue is full).
fn send(sock: &Path, lines: &str) {
    let tx = UnixDatagram::unbound().unwrap();
    for l in lines.lines() {
        let d = format!("<190>Dec 31 23:59:59 dlcount: {l}");
        tx.send_to(d.as_bytes(), sock).unwrap();
    }
}

fn socket_path(site: &Site) -> PathBuf {
    site.dir.path().join("listen.sock")
}

#[test]
fn every_datagram_counts_once_and_sigterm_drains_the_queue_then_exits() {
    let site = Site::new();
    let sock = socket_path(&site);
    let p = spawn_listen(&site, &sock, &[]);
    let lines: String = (0..2000u32)
        .map(|i| {
            line(
                &format!("203.0.113.{}", i % 250),
                9,
                i,
                "/isos/a.iso",
                206,
                7,
            )
        })
        .collect();
    send(&sock, &lines);
    // At once: what the socket still queues is read before the exit.
    p.signal(Signal::SIGTERM);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            ": 2000 lines, 2000 counted, 0 already counted, 250 new downloads, 0 rejected; exiting"
        ),
        "{err}"
    );
    // The header says 31 December: the day is the line's.
    assert_eq!(
        site.report(),
        json!({"/isos/a.iso": {"2026-11": {"downloads": 250, "requests": 2000, "bytes": 14000}}})
    );
    assert!(!sock.exists(), "the socket is removed at exit");
}

#[test]
fn lines_are_committed_within_a_second_and_a_datagram_without_header_is_rejected() {
    let site = Site::new();
    let sock = socket_path(&site);
    let p = spawn_listen(&site, &sock, &[]);
    send(&sock, &line("192.0.2.1", 5, 1, "/a.iso", 200, 100));
    UnixDatagram::unbound()
        .unwrap()
        .send_to(
            line("192.0.2.2", 5, 2, "/a.iso", 200, 100).as_bytes(),
            &sock,
        )
        .unwrap();
    wait_until("the line is committed", || {
        site.try_total("requests") == Some(1)
    });
    p.signal(Signal::SIGTERM);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 lines, 1 counted"), "{err}");
    assert!(err.contains("1 rejected"), "{err}");
}

#[test]
fn udp_datagrams_count_too() {
    let site = Site::new();
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let mut c = cmd();
    c.arg("listen")
        .arg("--db")
        .arg(&site.db)
        .arg("--root")
        .arg(&site.root)
        .arg("--udp")
        .arg(port.to_string());
    let p = Pipe::spawn(c);
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Sent until seen: the listener may not be bound yet.
    let mut i = 0u32;
    wait_until("a UDP line is committed", || {
        i += 1;
        let l = line("192.0.2.7", 5, i, "/u.iso", 200, 1);
        let d = format!("<190>Nov  5 10:00:00 web1 dlcount: {}", l.trim_end());
        tx.send_to(d.as_bytes(), ("127.0.0.1", port)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        site.try_total("requests").is_some_and(|n| n > 0)
    });
    p.signal(Signal::SIGTERM);
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    let r = site.report();
    assert_eq!(r["/u.iso"]["2026-11"]["downloads"], 1);
    assert_eq!(total(&r, "requests"), total(&r, "bytes"));
}

#[test]
fn a_configuration_error_spools_the_datagrams_and_the_next_listener_counts_them() {
    let site = Site::new();
    let sock = socket_path(&site);
    let cfg = site.dir.path().join("dlcount.toml");
    let write_cfg = |extra: &str| {
        std::fs::write(
            &cfg,
            format!(
                "db = \"{}\"\nroot = \"{}\"\n{extra}",
                site.db.display(),
                site.root.display()
            ),
        )
        .unwrap()
    };
    write_cfg("fromat = \"combined\"\n");
    let listen = |extra: &[&str]| {
        let mut c = cmd();
        c.arg("listen")
            .arg("--config")
            .arg(&cfg)
            .arg("--socket")
            .arg(&sock)
            .args(extra);
        let p = Pipe::spawn(c);
        wait_until("the socket exists", || sock.exists());
        p
    };
    let broken = listen(&[]);
    let lines: String = (1..=10u32)
        .map(|i| line(&format!("198.51.100.{i}"), 20, i, "/isos/a.iso", 200, 1000))
        .collect();
    send(&sock, &lines);
    broken.signal(Signal::SIGTERM);
    let (code, err) = broken.finish();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not counting until the configuration is fixed"),
        "{err}"
    );
    assert!(err.contains("unknown field `fromat`"), "{err}");
    assert!(site.try_report().is_none(), "nothing counted yet");
    write_cfg("format = \"combined\"\n");
    let fixed = listen(&[]);
    wait_until("the spooled lines are counted", || {
        site.try_total("downloads") == Some(10)
    });
    fixed.signal(Signal::SIGTERM);
    let (code, err) = fixed.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        site.report(),
        json!({"/isos/a.iso": {"2026-11": {"downloads": 10, "requests": 10, "bytes": 10000}}})
    );
}

#[test]
fn daemon_writes_its_pid_file_refuses_a_second_instance_and_removes_it_at_exit() {
    let site = Site::new();
    let sock = socket_path(&site);
    let pidfile = site.dir.path().join("listen.pid");
    let log = site.dir.path().join("listen.log");
    let daemon = |sock: &Path| {
        cmd()
            .arg("listen")
            .arg("--db")
            .arg(&site.db)
            .arg("--root")
            .arg(&site.root)
            .arg("--socket")
            .arg(sock)
            .arg("--daemon")
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--log")
            .arg(&log)
            .output()
            .unwrap()
    };
    let out = daemon(&sock);
    super::assert_succeeded(&out);
    wait_until("the pid file is written", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n'))
    });
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    send(&sock, &line("192.0.2.1", 5, 1, "/d.iso", 200, 5));
    wait_until("the daemon counted", || {
        site.try_total("requests") == Some(1)
    });
    let second = daemon(&site.dir.path().join("other.sock"));
    assert_ne!(second.status.code(), Some(0));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!(
            "already running in the background: {} is locked by pid {pid}",
            pidfile.display()
        )),
        "{err}"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    wait_until("the pid file is removed", || !pidfile.exists());
    wait_until("the log has the exit summary", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("1 lines, 1 counted"))
    });
    assert!(!sock.exists());
}

#[test]
fn an_unwritable_database_never_stops_the_receiving_and_every_line_is_counted_or_reported() {
    let site = Site::new();
    // An existing database with one line in it.
    site.pipe_all(line("192.0.2.1", 8, 1, "/a.iso", 200, 1).as_bytes(), &[]);
    let (mut args, make_writable) = super::pipe::make_unwritable(&site);
    args.extend(["--max-pending".to_string(), "1000".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sock = socket_path(&site);
    let p = spawn_listen(&site, &sock, &args);
    let lines: String = (0..3000u32)
        .map(|i| line(&format!("198.51.100.{}", i % 100), 8, i, "/b.iso", 206, 7))
        .collect();
    // A blocking sender: were the listener to wait on the database, this
    // would block once the socket's queue is full, and never return.
    send(&sock, &lines);
    wait_until("drops are reported", || {
        p.stderr().contains("counted lines dropped so far")
    });
    make_writable();
    p.signal(Signal::SIGTERM);
    let (code, err) = p.finish();
    assert_eq!(code, 1, "dropped lines make a non-zero exit: {err}");
    let dropped: u64 = err
        .split(", ")
        .find_map(|part| part.split_once(" DROPPED (over --max-pending)"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no drop count in: {err}"));
    // What went to the on-disk queue meanwhile, the next logger counts.
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

#[test]
fn daemon_never_writes_its_pid_file_through_a_link() {
    // The pid file lives in a directory of the daemon's user, who could
    // plant a link there for root to write through: refused, target intact.
    let site = Site::new();
    let sock = socket_path(&site);
    let victim = site.dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let pidfile = site.dir.path().join("listen.pid");
    std::os::unix::fs::symlink(&victim, &pidfile).unwrap();
    let out = cmd()
        .arg("listen")
        .arg("--db")
        .arg(&site.db)
        .arg("--root")
        .arg(&site.root)
        .arg("--socket")
        .arg(&sock)
        .arg("--daemon")
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--log")
        .arg(site.dir.path().join("listen.log"))
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a plain file (a link?)"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}
