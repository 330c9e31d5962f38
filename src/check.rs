//! `dlcount-pipe check`: validates everything the logger would, before
//! Apache (re)starts it with that configuration.
//!
//! The logger itself cannot stop to complain — it must keep reading Apache's
//! pipe — so a typo only shows in the error log, and while it lasts lines go
//! to the spool instead of the database. `check` takes the very same
//! options, resolves them the same way, switches to the configured user as
//! the logger does (when run as root), and then tries what the logger will
//! need: the database and its directory writable, the download root and its
//! `.stats` writable, the existing pages replaceable by that user, the
//! templates renderable. Each problem is one line on stderr; the exit code is
//! 0 only when there is none.
//!
//! Invariant: every verdict says whom it was checked as. Run by someone who
//! is not the logger's user, a permission problem says so and asks for a
//! run as root (or as the logger's user) rather than advising a `chown`.

use crate::cli::PipeArgs;
use crate::config::{db_dir, DbTarget, Extra, Settings};
use crate::{pages, privs, spool};
use nix::unistd::{access, geteuid, AccessFlags};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Runs the checks; returns the exit code (0 all well, 1 problems found).
pub fn run(args: &PipeArgs) -> i32 {
    let mut problems: Vec<String> = Vec::new();
    let extra = Extra {
        user: args.user.clone(),
        root: None,
        refresh: args.refresh,
        max_pending: args.max_pending,
    };
    let settings = match Settings::resolve(&args.db, &args.parse, &args.site, &extra) {
        Ok(s) => s,
        Err(e) => {
            report(&[format!("{e:#}")]);
            return 1;
        }
    };
    if let Some(user) = &settings.user {
        match privs::lookup(user) {
            Err(e) => problems.push(format!("{e:#}")),
            Ok(_) if privs::is_root() => {
                if let Err(e) = privs::drop_to(user) {
                    problems.push(format!("{e:#}"));
                }
            }
            Ok(_) => {}
        }
    }
    let fix = Fix::new(settings.user.as_deref());
    // With PostgreSQL: where it is and what schema version, for the verdict.
    let mut pg_summary = None;
    if let Err(e) = settings.check_db_path() {
        problems.push(format!("{e:#}"));
    } else {
        match &settings.db {
            DbTarget::Sqlite(db) => {
                problems.extend(db_write_problems(db, settings.user.as_deref()));
                if settings.db.exists() {
                    if let Err(e) = crate::store::Store::open_read(&settings.db) {
                        problems.push(crate::pipe::describe(&e));
                    }
                }
            }
            DbTarget::Postgres(pg) => match crate::store::postgres::privileges::check(pg) {
                Ok(v) => {
                    problems.extend(v.problems);
                    pg_summary = Some(v.summary);
                }
                Err(e) => problems.push(crate::pipe::describe(&e)),
            },
        }
    }
    let spool_dir = spool::dir_for(settings.db.local_dir());
    if spool_dir.is_dir() && !writable(&spool_dir) {
        problems.push(format!(
            "the spool {} is not writable: its lines could not be counted and deleted {}",
            spool_dir.display(),
            fix.advice()
        ));
    }
    let queue_dir = crate::queue::dir_for(settings.db.local_dir());
    if queue_dir.is_dir() && !writable(&queue_dir) {
        problems.push(format!(
            "the outage queue {} is not writable: lines kept there could not be counted and deleted {}",
            queue_dir.display(),
            fix.advice()
        ));
    }
    check_root(&settings, &fix, &mut problems);
    let spooled = spool::spool_files(&spool_dir).unwrap_or_default();
    let queued = crate::queue::waiting_files(settings.db.local_dir());
    if !problems.is_empty() {
        report(&problems);
        return 1;
    }
    if !spooled.is_empty() {
        let bytes: u64 = spooled
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "dlcount: check: {} spool file(s) ({} KiB) in {} wait to be counted: the logger \
             counts them when Apache next starts it (apache2ctl graceful)",
            spooled.len(),
            bytes.div_ceil(1024),
            spool_dir.display()
        );
    }
    if !queued.is_empty() {
        let bytes: u64 = queued
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "dlcount: check: {} outage queue file(s) ({} KiB) in {} wait to be counted: a logger \
             counts them once the database can be written (the error log says what it finds)",
            queued.len(),
            bytes.div_ceil(1024),
            queue_dir.display()
        );
    }
    // The verdict last: the installer shows the last line.
    println!(
        "dlcount: check: ok (as {}{}): database {}{}, root {}, format {:?}, counting {}",
        privs::current(),
        if fix.as_logger {
            ""
        } else {
            ", not the logger's user: run as root (or as the logger's user) to check as the logger"
        },
        settings.db.display(),
        match &pg_summary {
            Some(summary) => format!(" ({summary})"),
            None if settings.db.exists() => String::new(),
            None => " (new: the logger creates it)".to_string(),
        },
        settings.root.display(),
        settings.format.source(),
        settings.exts.join(" ")
    );
    0
}

fn report(problems: &[String]) {
    for p in problems {
        eprintln!("dlcount: check: {p}");
    }
}

/// What to advise for a permission problem: a `chown` when we check as the
/// logger's user, else a run as root (or as the logger's user).
struct Fix {
    as_logger: bool,
}

impl Fix {
    /// With `user` configured we are the logger only as that user; with none,
    /// the logger is root (Apache starts it so).
    fn new(user: Option<&str>) -> Fix {
        Fix {
            as_logger: match user {
                Some(u) => privs::is_current(u),
                None => privs::is_root(),
            },
        }
    }

    fn advice(&self) -> String {
        if self.as_logger {
            "(chown it to the user dlcount runs as)".to_string()
        } else if privs::is_root() {
            // Still root: the configured user could not be taken (said above).
            "(checked as root: fix `user` first)".to_string()
        } else {
            format!(
                "(as {}, not the logger's user: run as root (or as the logger's user))",
                privs::current()
            )
        }
    }
}

fn writable(path: &Path) -> bool {
    access(path, AccessFlags::W_OK).is_ok()
}

/// Why we (checking as [`privs::current`]) cannot write the database at
/// `db` and the files SQLite keeps beside it, one line each; empty when we can.
pub fn db_write_problems(db: &Path, user: Option<&str>) -> Vec<String> {
    let fix = Fix::new(user);
    let mut problems = Vec::new();
    let dir = db_dir(db);
    // WAL mode writes db-wal and db-shm beside the database.
    if !writable(dir) {
        problems.push(format!(
            "--db {}: directory {} is not writable {}",
            db.display(),
            dir.display(),
            fix.advice()
        ));
    }
    match db.try_exists() {
        Ok(true) => {
            // A root-owned -wal/-shm (a `report` run as root while no logger
            // ran) locks the logger out as surely as the database itself.
            for suffix in ["", "-wal", "-shm"] {
                let side = crate::config::db_side_file(db, suffix);
                let side = side.as_path();
                if side.exists() && !writable(side) {
                    problems.push(format!(
                        "{}{} is not writable {}",
                        if suffix.is_empty() { "--db " } else { "" },
                        side.display(),
                        fix.advice()
                    ));
                }
            }
        }
        Ok(false) => {}
        Err(e) => problems.push(format!("--db {}: {e} {}", db.display(), fix.advice())),
    }
    problems
}

/// Whether we could replace `file` by renaming a new file over it in `dir`:
/// `dir` writable, and in a sticky directory (the installer makes the root
/// one) the file or the directory ours.
fn replaceable(dir: &Path, file: &Path) -> bool {
    let Ok(d) = std::fs::metadata(dir) else {
        return false;
    };
    let sticky = d.permissions().mode() & 0o1000 != 0;
    let me = geteuid().as_raw();
    writable(dir)
        && (!sticky
            || d.uid() == me
            || std::fs::symlink_metadata(file).is_ok_and(|f| f.uid() == me))
}

fn check_root(settings: &Settings, fix: &Fix, problems: &mut Vec<String>) {
    let root = &settings.root;
    if !root.is_dir() {
        problems.push(format!(
            "--root {} is not a directory: nothing to list, and no pages can be written",
            root.display()
        ));
        return;
    }
    // Pages are written as a temporary file in the same directory, then renamed.
    if !writable(root) {
        problems.push(format!(
            "--root {} is not writable: ROOT/index.html cannot be replaced (see the README's Install) {}",
            root.display(),
            fix.advice()
        ));
    }
    let stats = root.join(crate::render::STATS_DIR);
    // The logger never writes through a link or into a non-folder (see
    // render::write): say so now rather than as a refusal in the error log.
    match std::fs::symlink_metadata(&stats) {
        Ok(m) if m.file_type().is_symlink() => problems.push(format!(
            "{} is a symbolic link: the statistics are never written through it; \
             make it a real folder (or remove it: the logger creates it)",
            stats.display()
        )),
        Ok(m) if !m.is_dir() => problems.push(format!(
            "{} is not a directory: the statistics cannot be written there; remove it",
            stats.display()
        )),
        _ => {}
    }
    if stats.is_dir() && !stats.is_symlink() && !writable(&stats) {
        problems.push(format!(
            "{} is not writable: the statistics page cannot be replaced {}",
            stats.display(),
            fix.advice()
        ));
    }
    // A page left by someone else (a `render` run as root) in the sticky
    // root cannot be replaced: the public page would silently stop updating.
    for (dir, page) in [
        (root.clone(), root.join("index.html")),
        (stats.clone(), stats.join("index.html")),
        (stats.clone(), stats.join("counts.json")),
    ] {
        if writable(&dir) && page.exists() && !replaceable(&dir, &page) {
            let owner = std::fs::symlink_metadata(&page).map_or(0, |m| m.uid());
            problems.push(format!(
                "{} belongs to uid {owner} and {} is sticky: it cannot be replaced as {} {}",
                page.display(),
                dir.display(),
                privs::current(),
                fix.advice()
            ));
        }
    }
    // The templates: a trial render into a scratch root shows any error with
    // its template and line, as the logger would hit it.
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!(
                "cannot make a scratch directory to try the templates: {e}"
            ));
            return;
        }
    };
    let mut trial = pages::page_settings(settings);
    trial.root = scratch.path().to_path_buf();
    let empty = crate::render::StatsSnapshot {
        rows: Vec::new(),
        counts_json: "{}\n".to_string(),
        servers: Vec::new(),
        facts: Default::default(),
    };
    if let Err(e) = crate::render::render_all(&trial, &empty, chrono::Local::now()) {
        problems.push(format!("the page templates do not render: {e:#}"));
    }
}
