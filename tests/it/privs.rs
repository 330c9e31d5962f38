//! Run as root (as under Apache, and as CI runs the tests): the logger never
//! writes as root through a path someone else controls, and every command
//! acts as the logger's user, so nothing it leaves locks the logger out.
//! Run as anyone else, the commands say whom they ran as.
//!
//! The tests that need root say so and return at once without it.

use super::{line, Site};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

/// A uid no account has: the database directory's owner in these tests.
const OWNER: u32 = 54_321;
const NOBODY: u32 = 65_534;

fn root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: this test needs root");
    }
    root
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(NOBODY)).unwrap();
}

/// Pipe mode with `input` on a pipe; returns (exit code, stderr).
fn pipe(args: &[&str], input: &[u8]) -> (i32, String) {
    let mut child = super::cmd()
        .args(args)
        .env("DLCOUNT_CONFIG", "")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_user_drops_root_and_never_follows_a_planted_spool_link() {
    if !root() {
        return;
    }
    let site = Site::new();
    chmod(site.dir.path(), 0o755);
    chown(site.dir.path(), OWNER);
    // The directory's owner plants `spool` pointing into a root-only directory.
    let secret = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(secret.path(), site.dir.path().join("spool")).unwrap();
    let db = site.db.to_str().unwrap();
    let lines = line("192.0.2.1", 10, 1, "/a.iso", 200, 5).repeat(100);
    let (code, err) = pipe(
        &["--db", db, "--user", "no-such-user-dlcount-test"],
        lines.as_bytes(),
    );
    assert_eq!(code, 2);
    assert_eq!(std::fs::read_dir(secret.path()).unwrap().count(), 0);
    assert_eq!(err.lines().count(), 2, "{err}");
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with(
            "dlcount: error: --user no-such-user-dlcount-test: no such user \
             \"no-such-user-dlcount-test\"; running as 54321:nogroup (uid 54321, gid 65534), \
             not root; not counting until the configuration is fixed"
        ) && first.ends_with(&format!(
            "cannot spool to {0}/spool: {0}/spool is not a directory (a symbolic link?): \
             refused: lines are read and discarded, recover them later with `dlcount-pipe \
             import` of Apache's access.log",
            site.dir.path().display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with("dlcount: input closed: 0 line(s) spooled, 100 discarded\n"),
        "{err}"
    );

    // Without the link: spooled as that owner, readable by nobody else.
    std::fs::remove_file(site.dir.path().join("spool")).unwrap();
    let (code, err) = pipe(
        &["--db", db, "--user", "no-such-user-dlcount-test"],
        lines.as_bytes(),
    );
    assert_eq!(code, 2, "{err}");
    let spool = site.dir.path().join("spool");
    let dir = std::fs::metadata(&spool).unwrap();
    assert_eq!((dir.uid(), dir.mode() & 0o7777), (OWNER, 0o700));
    let files: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let file = std::fs::metadata(&files[0]).unwrap();
    assert_eq!(
        (file.uid(), file.mode() & 0o7777, file.len()),
        (OWNER, 0o600, lines.len() as u64)
    );
}

#[test]
fn a_root_logger_without_a_user_refuses_a_spool_directory_someone_else_owns() {
    if !root() {
        return;
    }
    let site = Site::new();
    let spool = site.dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    chown(&spool, OWNER);
    let (code, err) = pipe(
        &["--db", site.db.to_str().unwrap(), "--format", "%Z"],
        line("192.0.2.1", 10, 1, "/a.iso", 200, 5).as_bytes(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!(
            "{} belongs to uid 54321, not to uid 0 (the user dlcount runs as) or root: refused",
            spool.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
}

/// A site laid out as the installer does: the database directory the
/// logger's (here `nobody`'s), the root sticky and writable for it.
fn nobody_site() -> (Site, std::path::PathBuf) {
    let site = Site::new();
    chmod(site.dir.path(), 0o755);
    let dbdir = site.dir.path().join("db");
    std::fs::create_dir(&dbdir).unwrap();
    chown(&dbdir, NOBODY);
    chmod(&site.root, 0o1777);
    let cfg = site.dir.path().join("dlcount.toml");
    std::fs::write(
        &cfg,
        format!(
            "db = \"{}\"\nroot = \"{}\"\nuser = \"nobody\"\n",
            dbdir.join("dl.sqlite").display(),
            site.root.display()
        ),
    )
    .unwrap();
    (site, cfg)
}

#[test]
fn render_as_root_without_config_writes_as_the_loggers_user_and_check_sees_root_owned_pages() {
    if !root() {
        return;
    }
    let (site, cfg) = nobody_site();
    // As the README lists it: no --config; the default config file names the user.
    let out = super::cmd()
        .arg("render")
        .env("DLCOUNT_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in ["index.html", ".stats/index.html", ".stats/counts.json"] {
        let m = std::fs::metadata(site.root.join(page)).unwrap();
        assert_eq!(m.uid(), NOBODY, "{page}");
    }

    // A page someone else left in the sticky root: the logger could not
    // replace it, and check says so.
    let page = site.root.join("index.html");
    std::fs::remove_file(&page).unwrap();
    std::fs::write(&page, "old").unwrap();
    let out = super::cmd()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        format!(
            "dlcount: check: {} belongs to uid 0 and {} is sticky: it cannot be replaced as \
             nobody:nogroup (uid 65534, gid 65534) (chown it to the user dlcount runs as)\n",
            page.display(),
            site.root.display()
        )
    );
    std::os::unix::fs::chown(&page, Some(NOBODY), None).unwrap();
    let out = super::cmd()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    super::assert_succeeded(&out);
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("dlcount: check: ok (as nobody:nogroup (uid 65534, gid 65534)): database "));
}

#[test]
fn report_as_root_without_config_reads_the_default_one_as_the_loggers_user() {
    if !root() {
        return;
    }
    let (site, cfg) = nobody_site();
    let db = site.dir.path().join("db/dl.sqlite");
    let mut logger = super::cmd();
    logger.arg("--config").arg(&cfg);
    let p = super::Pipe::spawn(logger);
    let (code, err) = {
        let mut p = p;
        p.write(line("192.0.2.1", 10, 1, "/a.iso", 200, 5).as_bytes());
        p.finish()
    };
    assert_eq!(code, 0, "{err}");
    let out = super::cmd()
        .args(["report", "--json"])
        .env("DLCOUNT_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!({"/a.iso": {"2026-11": 1}})
    );
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let e = entry.unwrap();
        assert_eq!(
            e.metadata().unwrap().uid(),
            NOBODY,
            "{}",
            e.path().display()
        );
    }
}

#[test]
fn check_and_import_by_an_ordinary_user_say_whom_they_ran_as() {
    if !root() {
        return;
    }
    let site = Site::new();
    chmod(site.dir.path(), 0o755);
    let log = site.dir.path().join("access.log");
    std::fs::write(&log, line("192.0.2.1", 10, 1, "/a.iso", 200, 5)).unwrap();
    chmod(&log, 0o644);
    let db = site.db.to_str().unwrap();
    let as_nobody = |args: &[&str]| {
        let out = super::cmd()
            .args(args)
            .env("DLCOUNT_CONFIG", "")
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let advice = "(as nobody:nogroup (uid 65534, gid 65534), not the logger's user: run as root \
                  (or as the logger's user))";
    let (code, err) = as_nobody(&["import", "--db", db, log.to_str().unwrap()]);
    assert_eq!(
        (code, err),
        (
            2,
            format!(
                "dlcount: error: --db {db}: directory {} is not writable {advice}\n",
                site.dir.path().display()
            )
        )
    );
    let (code, err) = as_nobody(&["check", "--db", db, "--root", site.root.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(!err.contains("chown"), "{err}");
    assert_eq!(
        err.lines().next().unwrap(),
        format!(
            "dlcount: check: --db {db}: directory {} is not writable {advice}",
            site.dir.path().display()
        )
    );
}
