//! A configuration typo loses nothing: the logger keeps Apache's lines in the
//! spool while its configuration is unusable, `check` names the problem, and
//! the next logger with a valid configuration counts the spool exactly once —
//! only after the old logger (which may live on for hours after a graceful
//! restart) has stopped writing it.

use super::{line, total, wait_until, Pipe, Site};
use std::path::{Path, PathBuf};

fn config(site: &Site, text: &str) -> PathBuf {
    let p = site.dir.path().join("dlcount.toml");
    let full = format!(
        "db = \"{}\"\nroot = \"{}\"\n{text}",
        site.db.display(),
        site.root.display()
    );
    std::fs::write(&p, full).unwrap();
    p
}

fn check(cfg: &Path) -> (i32, String, String) {
    let out = super::cmd()
        .args(["check", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pipe_with_config(cfg: &Path) -> Pipe {
    let mut cmd = super::cmd();
    cmd.arg("--config").arg(cfg);
    Pipe::spawn(cmd)
}

fn spool_files(site: &Site) -> usize {
    std::fs::read_dir(site.dir.path().join("spool")).map_or(0, |d| d.count())
}

/// `n` counted lines, one download each (distinct clients).
fn downloads(first_client: u32, n: u32) -> String {
    (first_client..first_client + n)
        .map(|i| line(&format!("198.51.100.{i}"), 20, i, "/isos/a.iso", 200, 1000))
        .collect()
}

#[test]
fn a_config_typo_is_named_by_check_and_its_lines_are_counted_once_it_is_fixed() {
    let site = Site::new();
    let cfg = config(&site, "fromat = \"combined\"\n");
    // The logger under the broken configuration: one error line, input spooled.
    let mut broken = pipe_with_config(&cfg);
    broken.write(downloads(1, 10).as_bytes());
    let (code, err) = broken.finish();
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown field `fromat`") && err.contains("lines are kept in"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(spool_files(&site), 1);
    assert!(!site.db.exists(), "the broken logger created the database");

    let (code, out, err) = check(&cfg);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("dlcount: check: config file ")
            && err.contains("(line 3): unknown field `fromat`"),
        "{err}"
    );

    let cfg = config(&site, "format = \"combined\"\n");
    let (code, out, err) = check(&cfg);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("dlcount: check: 1 spool file(s)"),
        "{out}"
    );
    assert!(lines[1].starts_with("dlcount: check: ok"), "{out}");

    // The next logger counts the spool and its own lines, each once.
    let mut fixed = pipe_with_config(&cfg);
    fixed.write(downloads(11, 2).as_bytes());
    wait_until("the spool counted", || {
        site.try_total("downloads") == Some(12)
    });
    let (code, err) = fixed.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("counted 10 spooled line(s) from 1 spool file(s): 10 new"),
        "{err}"
    );
    assert_eq!(spool_files(&site), 0);
    let again = pipe_with_config(&cfg);
    assert_eq!(again.finish().0, 0);
    let report = site.report();
    assert_eq!(
        (total(&report, "downloads"), total(&report, "requests")),
        (12, 12)
    );
}

#[test]
fn a_spool_is_counted_only_after_the_old_logger_stops_writing_it() {
    let site = Site::new();
    // A graceful restart: the old logger (bad configuration) still gets the
    // lines of requests in flight while the new, fixed one runs.
    let mut old = site.spawn_pipe(&["--format", "%h %t %Z"]);
    old.write(downloads(1, 5).as_bytes());
    wait_until("the old logger spools", || spool_files(&site) == 1);
    let mut new = site.spawn_pipe(&[]);
    new.write(downloads(50, 3).as_bytes());
    wait_until("the new logger counts its lines", || {
        site.try_total("downloads") == Some(3)
    });
    // Apache's SIGTERM at the graceful restart: the old logger keeps reading.
    old.signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(old.is_running(), "the spooling logger ended on SIGTERM");
    old.write(downloads(6, 2).as_bytes());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        total(&site.report(), "downloads"),
        3,
        "a spool being written was counted"
    );
    assert_eq!(old.finish().0, 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while site.try_total("downloads") != Some(10) {
        assert!(
            std::time::Instant::now() < deadline,
            "the spool was not counted after the old logger ended: {}",
            new.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (code, err) = new.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(spool_files(&site), 0);
    assert_eq!(total(&site.report(), "requests"), 10);
}

#[test]
fn check_names_each_problem_of_a_parsable_config_on_a_line_of_its_own() {
    let site = Site::new();
    let missing_root = site.dir.path().join("no-such-root");
    let cfg = site.dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "db = \"{}\"\nroot = \"{}\"\ntemplates = \"{}\"\n",
            site.dir.path().join("nodir/x.sqlite").display(),
            missing_root.display(),
            site.dir.path().display()
        ),
    )
    .unwrap();
    let (code, out, err) = check(&cfg);
    assert_eq!((code, out.as_str()), (1, ""));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].contains("nodir") && lines[0].contains("does not exist"),
        "{err}"
    );
    assert!(
        lines[1].contains("no-such-root is not a directory"),
        "{err}"
    );
    // A template with an error is named with its line.
    let tpl = site.dir.path().join("tpl");
    std::fs::create_dir(&tpl).unwrap();
    std::fs::write(tpl.join("public.html"), "{% if %}\n").unwrap();
    let cfg = config(&site, &format!("templates = \"{}\"\n", tpl.display()));
    let (code, _, err) = check(&cfg);
    assert_eq!(code, 1);
    assert!(
        err.contains("the page templates do not render") && err.contains("public.html"),
        "{err}"
    );
}

#[test]
fn spool_files_are_private_and_drained_before_the_logger_exits() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let n = 100_000;
    let mut broken = site.spawn_pipe(&["--format", "%h %Z"]);
    broken.write(downloads_on(n).as_bytes());
    assert_eq!(broken.finish().0, 2);
    let spool = site.dir.path().join("spool");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&spool), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&files[0]), 0o600);
    // A valid logger whose input ends at once still counts the whole spool first.
    let (code, err) = site.pipe_all(b"", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(spool_files(&site), 0, "{err}");
    assert!(
        err.contains(&format!(
            "counted {n} spooled line(s) from 1 spool file(s): {n} new"
        )),
        "{err}"
    );
    assert_eq!(total(&site.report(), "downloads"), n as u64);
}

/// An earlier version left the spool directory 0750 and its files 0640: the
/// next logger that spools makes the directory private (and a drained file
/// is private while it lasts).
#[test]
fn an_older_wider_spool_directory_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let spool = site.dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o750)).unwrap();
    let mut broken = site.spawn_pipe(&["--format", "%h %Z"]);
    broken.write(downloads_on(3).as_bytes());
    assert_eq!(broken.finish().0, 2);
    let mode = std::fs::metadata(&spool).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
}

/// `n` downloads by distinct clients on one day.
fn downloads_on(n: u32) -> String {
    (0..n)
        .map(|i| {
            line(
                &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                20,
                i % 3600,
                "/isos/a.iso",
                200,
                1000,
            )
        })
        .collect()
}

/// Peak resident memory of a running process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_huge_spooled_line_is_rejected_without_being_held_in_memory() {
    let site = Site::new();
    let spool = site.dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(spool.join("spool-20261120-100000-1-0.log")).unwrap(),
        );
        f.write_all(downloads(1, 2).as_bytes()).unwrap();
        let block = vec![b'x'; 1 << 20];
        for _ in 0..256 {
            f.write_all(&block).unwrap();
        }
        f.write_all(b"\n").unwrap();
        f.write_all(downloads(3, 1).as_bytes()).unwrap();
    }
    let mut p = site.spawn_pipe(&[]);
    wait_until("the spool counted", || spool_files(&site) == 0);
    wait_until("its lines reported", || {
        p.stderr()
            .contains("counted 4 spooled line(s) from 1 spool file(s): 3 new")
    });
    let peak = peak_rss_kib(p.child.id());
    p.write(b"");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(total(&site.report(), "downloads"), 3);
    // The line is 256 MiB; the whole logger stays far below.
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}
