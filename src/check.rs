//! `dlcount-pipe check`: validates everything the logger would, before
//! Apache (re)starts it with that configuration.
//!
//! The logger itself cannot stop to complain — it must keep reading Apache's
//! pipe — so a typo only shows in the error log, and while it lasts lines go
//! to the spool instead of the database. `check` takes the very same
//! options, resolves them the same way, switches to the configured user as
//! the logger does (when run as root), and then tries what the logger will
//! need: the database and its directory writable, the download root and its
//! `.stats` writable, the templates renderable. Each problem is one line on
//! stderr; the exit code is 0 only when there is none.

use crate::cli::PipeArgs;
use crate::config::{Extra, Settings};
use crate::{pages, privs, spool};
use nix::unistd::{access, AccessFlags};
use std::path::Path;

/// Runs the checks; returns the exit code (0 all well, 1 problems found).
pub fn run(args: &PipeArgs) -> i32 {
    let mut problems: Vec<String> = Vec::new();
    let extra = Extra {
        user: args.user.clone(),
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
    let mut checked_as = "the current user".to_string();
    if let Some(user) = &settings.user {
        match privs::lookup(user) {
            Err(e) => problems.push(format!("{e:#}")),
            Ok(_) if privs::is_root() => match privs::drop_to(user) {
                Ok(()) => checked_as = format!("user {user}"),
                Err(e) => problems.push(format!("{e:#}")),
            },
            Ok(_) => {
                checked_as =
                    "the current user (run check as root to check as the logger's user)".to_string()
            }
        }
    }
    check_database(&settings.db, &mut problems);
    let spool_dir = spool::dir_for(&settings.db);
    if spool_dir.is_dir() && !writable(&spool_dir) {
        problems.push(format!(
            "the spool {} is not writable: its lines could not be counted and deleted \
             (chown it to the user dlcount runs as)",
            spool_dir.display()
        ));
    }
    check_root(&settings, &mut problems);
    let spooled = spool::spool_files(&spool::dir_for(&settings.db)).unwrap_or_default();
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
            "dlcount-pipe check: {} spool file(s) ({} KiB) in {} wait to be counted: the logger \
             counts them when Apache next starts it (apache2ctl graceful)",
            spooled.len(),
            bytes.div_ceil(1024),
            spool::dir_for(&settings.db).display()
        );
    }
    // The verdict last: the installer shows the last line.
    println!(
        "dlcount-pipe check: ok (as {checked_as}): database {}{}, root {}, format {:?}, counting {}",
        settings.db.display(),
        if settings.db.exists() {
            ""
        } else {
            " (new: the logger creates it)"
        },
        settings.root.display(),
        settings.format.source(),
        settings.exts.join(" ")
    );
    0
}

fn report(problems: &[String]) {
    for p in problems {
        eprintln!("dlcount-pipe: check: {p}");
    }
}

fn writable(path: &Path) -> bool {
    access(path, AccessFlags::W_OK).is_ok()
}

fn check_database(db: &Path, problems: &mut Vec<String>) {
    if let Err(e) = crate::config::check_db_path(db) {
        problems.push(format!("{e:#}"));
        return;
    }
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // WAL mode writes db-wal and db-shm beside the database.
    if !writable(dir) {
        problems.push(format!(
            "--db {}: directory {} is not writable (chown it to the user dlcount runs as)",
            db.display(),
            dir.display()
        ));
    }
    match db.try_exists() {
        Ok(true) => {
            if !writable(db) {
                problems.push(format!(
                    "--db {} is not writable (chown it to the user dlcount runs as)",
                    db.display()
                ));
            }
            if let Err(e) = crate::store::Store::open_read(db) {
                problems.push(crate::pipe::describe(&e));
            }
            // A root-owned -wal/-shm (a `report` run as root while no logger
            // ran) locks the logger out as surely as the database itself.
            for suffix in ["-wal", "-shm"] {
                let mut side = db.as_os_str().to_owned();
                side.push(suffix);
                let side = Path::new(&side);
                if side.exists() && !writable(side) {
                    problems.push(format!(
                        "{} is not writable (chown it to the user dlcount runs as)",
                        side.display()
                    ));
                }
            }
        }
        Ok(false) => {}
        Err(e) => problems.push(format!("--db {}: {e}", db.display())),
    }
}

fn check_root(settings: &Settings, problems: &mut Vec<String>) {
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
            "--root {} is not writable: ROOT/index.html cannot be replaced (see the README's Install)",
            root.display()
        ));
    }
    let stats = root.join(crate::render::STATS_DIR);
    if stats.exists() && !writable(&stats) {
        problems.push(format!(
            "{} is not writable: the statistics page cannot be replaced",
            stats.display()
        ));
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
    };
    if let Err(e) = crate::render::render_all(&trial, &empty, chrono::Local::now()) {
        problems.push(format!("the page templates do not render: {e:#}"));
    }
}
