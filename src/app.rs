//! Entry point shared by the binary and the tests: parses the command line,
//! validates settings and dispatches to pipe mode or a subcommand.
//!
//! Invariant: in pipe mode we never leave Apache's pipe unread. Even a fatal
//! configuration error is printed as one line (into Apache's error log), and
//! then stdin is drained to EOF before the non-zero exit — a logger that dies
//! at once is respawned every second while Apache's workers block on the
//! full pipe, which would take the whole site down. Lines read meanwhile go
//! to the spool (see [`crate::spool`]) and are counted by the next logger
//! that starts with a valid configuration.
//!
//! Invariant: started as root, we leave root before reading a line or
//! touching a file the logger's user owns — as the configured user; if that
//! user cannot be used, as [`privs::fallback`] (never root writing through a
//! path someone else controls). Only a logger with no user configured at all
//! stays root (with a warning), as it always did. Every subcommand but
//! `templates` likewise becomes the logger's user when run as root (the
//! default config file names it when `--config` is not given), so the
//! database and pages it creates stay the logger's.

use crate::cli::{Cli, Command};
use crate::config::{Extra, Settings, Uses};
use crate::{check, import, pages, pipe, privs, report, spool};
use anyhow::Result;
use clap::Parser;
use std::ffi::OsString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Runs the program; returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            if code != 0 && stdin_is_pipe() {
                // Apache's error log: one line, not clap's usage screen.
                let text = e.to_string();
                let first = text.lines().next().unwrap_or_default();
                refuse_and_spool(
                    first.trim_start_matches("error: "),
                    &spool::intended_local_dir(&args),
                    spool::intended_user(&args),
                );
            } else {
                let _ = e.print();
            }
            return code;
        }
    };
    let result = match cli.command {
        None => run_pipe(&cli.pipe, &args),
        Some(Command::Listen(a)) => crate::source::listen::run(&a, &args),
        Some(cmd) => run_command(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dlcount: error: {e:#}");
            2
        }
    }
}

fn stdin_is_pipe() -> bool {
    std::fs::metadata("/dev/stdin")
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false)
}

/// A pipe-mode configuration error: one line for Apache's error log, then
/// the pipe read to its end into the spool beside `db` (see the module
/// header), as `user` if it can be used, never as root where someone else
/// owns the database directory.
fn refuse_and_spool(problem: &str, local_dir: &Path, user: Option<String>) {
    if !stdin_is_pipe() {
        eprintln!("dlcount: error: {problem}");
        return;
    }
    // Apache's SIGTERM (every graceful restart) must not end us: the
    // lines of requests still in flight follow it, up to EOF.
    // SAFETY: ignoring a signal installs no handler code; nothing else
    // has touched SIGTERM's disposition in this process.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGTERM,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    let mut problem = problem.to_string();
    let mut spool_dir = Ok(spool::dir_for(local_dir));
    if privs::is_root() {
        match leave_root_to_spool(local_dir, user.as_deref()) {
            Ok(Some(who)) => problem.push_str(&format!("; running as {who}, not root")),
            Ok(None) => {}
            Err(e) => spool_dir = Err(format!("cannot leave root: {e:#}")),
        }
    }
    let mut stdin = std::io::stdin().lock();
    spool::spool_input(
        spool_dir.as_deref().map_err(String::as_str),
        &problem,
        &mut stdin,
        &mut std::io::stderr(),
    );
}

/// As root, before spooling: becomes `user` if it can be used; else, when a
/// user was configured or someone else owns the database directory,
/// [`privs::fallback`]. Stays root only with no user configured and a
/// database directory of root's own (`Ok(None)`). Returns who we became.
pub(crate) fn leave_root_to_spool(dir: &Path, user: Option<&str>) -> Result<Option<String>> {
    if let Some(user) = user {
        if privs::drop_to(user).is_ok() {
            return Ok(Some(privs::current()));
        }
    }
    let root_owned = std::fs::metadata(dir).is_ok_and(|m| m.uid() == 0);
    if user.is_none() && root_owned {
        return Ok(None);
    }
    privs::drop_to_fallback(dir).map(Some)
}

fn run_pipe(args: &crate::cli::PipeArgs, raw_args: &[OsString]) -> Result<i32> {
    let extra = Extra {
        user: args.user.clone(),
        root: None,
        refresh: args.refresh,
        max_pending: args.max_pending,
    };
    let settings = match Settings::resolve(&args.db, &args.parse, &args.site, &extra) {
        Ok(s) => s,
        Err(e) => {
            let local_dir = spool::intended_local_dir(raw_args);
            let user = args.user.clone().or_else(|| spool::intended_user(raw_args));
            refuse_and_spool(&format!("{e:#}"), &local_dir, user);
            return Ok(2);
        }
    };
    let switched = match &settings.user {
        Some(user) if privs::is_root() => privs::drop_to(user),
        // Checked so a typo still fails, but only root can switch.
        Some(user) => privs::lookup(user).map(|_| ()),
        None => Ok(()),
    };
    if let Err(e) = switched.and_then(|()| settings.check_db_path()) {
        refuse_and_spool(
            &format!("{e:#}"),
            settings.db.local_dir(),
            settings.user.clone(),
        );
        return Ok(2);
    }
    if settings.user.is_none() && privs::is_root() {
        eprintln!("dlcount: warning: running as root; give --user (e.g. --user dlcount) to drop privileges");
    }
    Ok(crate::source::run_live(
        &settings,
        Box::new(pipe::StdinSource::new()),
    ))
}

fn run_command(cmd: Command) -> Result<i32> {
    match cmd {
        Command::Import(a) => {
            let settings = Settings::resolve_for(
                Uses::IMPORT,
                &a.db,
                &a.parse,
                &Default::default(),
                &Extra {
                    root: a.root.clone(),
                    ..Extra::default()
                },
            )?;
            settings.check_db_path()?;
            // As root with a configured user, open the logs first (they are
            // often root:adm), then become that user so the database stays its own.
            let switch = settings.user.clone().filter(|_| privs::is_root());
            let inputs: Vec<import::Input> = a
                .files
                .iter()
                .map(|p| {
                    if switch.is_some() {
                        import::Input::open_now(p.clone())
                    } else {
                        import::Input::lazy(p.clone())
                    }
                })
                .collect();
            become_configured_user(&settings)?;
            writable_database(&settings)?;
            if a.detach {
                detach(a.log.as_deref().expect("clap requires --log with --detach"))?;
            }
            let summary = import::run(&settings, inputs, !a.quiet && !a.detach)?;
            eprint!("{}", summary.render());
            Ok(if summary.failed.is_empty() { 0 } else { 1 })
        }
        Command::ImportJson(a) => {
            let settings = db_settings(&a.db)?;
            settings.check_db_path()?;
            let text = std::fs::read_to_string(&a.file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.file.display()))?;
            become_configured_user(&settings)?;
            writable_database(&settings)?;
            let (entries, changed) = import::import_json(&settings.db, &a.file, &text, &a.prefix)?;
            eprintln!(
                "import-json: {entries} file-months read from {}, {changed} added or raised (legacy figures; \
                 reported downloads are max(legacy, counted))",
                a.file.display()
            );
            Ok(0)
        }
        Command::Migrate(a) => {
            let settings = db_settings(&a.db)?;
            let target = crate::config::DbTarget::new(
                &a.to,
                a.db.pg_ca_file.clone(),
                a.db.state_dir.clone(),
            )?;
            become_configured_user(&settings)?;
            crate::migrate::run(&settings.db, &target, a.add_open_days)
        }
        Command::Report(a) => {
            let settings = db_settings(&a.db)?;
            // Reading makes -wal/-shm files: root's would lock the logger out.
            become_configured_user(&settings)?;
            let store = crate::store::Store::open_read(&settings.db)?;
            if a.daily {
                let rows = store.daily()?;
                print_report(
                    &a,
                    || report::daily_to_json(&rows),
                    || report::daily_to_csv(&rows),
                    || report::daily_to_table(&rows),
                );
                return Ok(0);
            }
            if a.completed {
                let rows = store.monthly()?;
                print_report(
                    &a,
                    || report::completed_to_json(&rows),
                    || report::completed_to_csv(&rows),
                    || report::completed_to_table(&rows),
                );
                return Ok(0);
            }
            if a.summary {
                let today = crate::store::day_of(chrono::Local::now().date_naive());
                let s = report::summary(&store.monthly()?, &store.page_facts()?, today);
                print_report(
                    &a,
                    || report::summary_to_json(&s),
                    || report::summary_to_csv(&s),
                    || report::summary_to_table(&s),
                );
                return Ok(0);
            }
            let fact = match a.by {
                Some(crate::cli::ReportBy::Server) => {
                    if a.csv {
                        anyhow::bail!("--csv does not go with --by server");
                    }
                    let rows = store.by_server()?;
                    if a.json {
                        print!("{}", report::servers_to_json(&rows));
                    } else {
                        print!("{}", report::servers_to_table(&rows));
                    }
                    return Ok(0);
                }
                Some(crate::cli::ReportBy::Class) => {
                    Some(("class", &["browser", "downloader", "bot", "other"][..]))
                }
                Some(crate::cli::ReportBy::Country) => Some(("country", &[][..])),
                Some(crate::cli::ReportBy::Referer) => Some(("referer", &[][..])),
                Some(crate::cli::ReportBy::Network) => {
                    let months =
                        report::network_months(&store.networks()?, &store.facts("network")?);
                    print_report(
                        &a,
                        || report::networks_to_json(&months),
                        || report::networks_to_csv(&months),
                        || report::networks_to_table(&months),
                    );
                    return Ok(0);
                }
                None => None,
            };
            let rows = store.monthly()?;
            if let Some((kind, fixed)) = fact {
                let mut facts = store.facts(kind)?;
                if kind == "referer" {
                    report::label_own_hosts(&mut facts, &a.site_host);
                }
                let f = report::fact_months(&rows, &facts, fixed, kind == "referer");
                print_report(
                    &a,
                    || report::facts_to_json(&f),
                    || report::facts_to_csv(&f, kind),
                    || report::facts_to_table(&f, kind),
                );
            } else {
                print_report(
                    &a,
                    || report::to_json(&rows, a.detail),
                    || report::to_csv(&rows),
                    || report::to_table(&rows),
                );
            }
            Ok(0)
        }
        Command::Render(a) => {
            let parse = crate::cli::ParseArgs {
                ext: a.ext.clone(),
                ..Default::default()
            };
            let settings =
                Settings::resolve_for(Uses::RENDER, &a.db, &parse, &a.site, &Extra::default())?;
            if !settings.root.is_dir() {
                anyhow::bail!("--root {} is not a directory", settings.root.display());
            }
            become_configured_user(&settings)?;
            let s = pages::render_now(&settings)?;
            let stats_page = settings.root.join(".stats/index.html");
            let also = match &s.stats_refused {
                None => format!(" and {}", stats_page.display()),
                Some(why) => {
                    eprintln!("dlcount: {why}");
                    String::new()
                }
            };
            eprintln!(
                "rendered {}{also} ({} ISO files) in {} ms",
                settings.root.join("index.html").display(),
                s.isos,
                s.elapsed.as_millis()
            );
            Ok(0)
        }
        Command::Check(a) => Ok(check::run(&a)),
        Command::Listen(a) => crate::source::listen::run(&a, &[]),
        Command::Follow(a) => crate::source::follow::run(&a),
        Command::Generate(a) => crate::generate::run(&a),
        Command::Templates(a) => {
            // Written for the admin, into a directory of theirs: no switch.
            let written = crate::render::dump_templates(&a.dump)?;
            for p in written {
                println!("{}", p.display());
            }
            Ok(0)
        }
    }
}

/// Settings for the commands that only need the database (and the config's `user`).
/// Prints one `report` view in the shape asked for: `--json`, `--csv`,
/// else the readable table (each view's three renderings live in `report`).
fn print_report(
    a: &crate::cli::ReportArgs,
    json: impl FnOnce() -> String,
    csv: impl FnOnce() -> String,
    table: impl FnOnce() -> String,
) {
    let text = if a.json {
        json()
    } else if a.csv {
        csv()
    } else {
        table()
    };
    print!("{text}");
}

fn db_settings(db: &crate::cli::DbArgs) -> Result<Settings> {
    Settings::resolve_for(
        Uses::DB,
        db,
        &Default::default(),
        &Default::default(),
        &Extra::default(),
    )
}

/// Run as root with a `user` in the settings (the config file the installer
/// writes, read by default), a one-off command writes as that user, like the
/// logger does: files it creates (the database, the pages) must stay
/// writable for the logger.
fn become_configured_user(settings: &Settings) -> Result<()> {
    match &settings.user {
        Some(user) if privs::is_root() => privs::drop_to(user),
        _ => Ok(()),
    }
}

/// Before a command writes the database: one line saying who cannot write
/// what, instead of SQLite's "Error code 14".
fn writable_database(settings: &Settings) -> Result<()> {
    let Some(db) = settings.db.sqlite() else {
        return Ok(());
    };
    match crate::check::db_write_problems(db, settings.user.as_deref()).first() {
        Some(p) => anyhow::bail!("{p}"),
        None => Ok(()),
    }
}

/// `import --detach`: a long archive import goes on after the admin logs out.
///
/// We use the `daemonize` crate (the design card's choice) knowingly: it is
/// unmaintained (RUSTSEC-2025-0069) but small and complete for what we need —
/// fork, setsid, stdio redirection — and `daemonix` is its drop-in fork should
/// a fix ever be needed. It is only ever used here, never in pipe mode: it
/// points stdin at /dev/null and its parent exits, which Apache would read as
/// a dead logger.
fn detach(log: &std::path::Path) -> Result<()> {
    use anyhow::Context;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open --log {}", log.display()))?;
    let err = out.try_clone()?;
    let cwd = std::env::current_dir()?;
    eprintln!(
        "import continues in the background; summary in {}",
        log.display()
    );
    daemonize::Daemonize::new()
        .working_directory(cwd)
        .umask(0o022)
        .stdout(out)
        .stderr(err)
        .start()
        .map_err(|e| anyhow::anyhow!("cannot detach: {e}"))?;
    Ok(())
}
