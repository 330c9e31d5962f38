//! `--daemon --pidfile FILE --log FILE` for `listen` and `follow` on systems
//! without systemd (under systemd they run in the foreground: see
//! `scripts/systemd/`).
//!
//! The crate: `daemonize` 0.5, the design card's choice and already used by
//! `import --detach`. It is unmaintained (RUSTSEC-2025-0069, informational:
//! no activity since 2023); its one reported soundness bug is a `transmute`
//! between two instantiations of `Daemonize<T>` in `privileged_action()`,
//! which we never call. `daemonix` 0.1.0 is the drop-in fork with exactly
//! that fixed and nothing else, so switching would change no behaviour of
//! ours; the day either needs a fix we need, the fork is the move. What
//! the crate does, and what we do about it:
//! - it `fork()`s twice: only the calling thread survives a fork, so it
//!   must run before any thread exists — [`start`] is called after the
//!   sockets are bound and the files checked, before the reader, owner,
//!   signal and page threads start;
//! - the parent exits as soon as the first child has forked again, before
//!   the daemon has done anything: every check that can fail is done before
//!   [`start`], so a usage or configuration error still reaches the terminal
//!   with a non-zero exit; later errors go to `--log`;
//! - it points stdin at `/dev/null` (which is why the pipe mode can never be
//!   a daemon: Apache's pipe is stdin, and Apache reads the parent's exit as
//!   a dead logger);
//! - its own pid file follows links (`open(O_CREAT)`, then truncated) and is
//!   written while the daemon is still root, so we do not use it: [`start`]
//!   writes the pid file itself, in the daemon, with `O_NOFOLLOW`, refusing
//!   anything but a plain file with one link — the pid file then lives in a
//!   directory of the daemon's user (`/run/dlcount/listen.pid`), so that
//!   [`finish`], run after privileges were dropped, can remove it, while
//!   root never writes through a link that user planted there. It is locked
//!   with `flock` for the daemon's life (a second daemon with the same pid
//!   file refuses to start) and removed by [`finish`] when it still holds
//!   our pid. A daemon killed with SIGKILL leaves it behind: whoever signals
//!   the pid in it must first check the process is ours
//!   (`scripts/nginx/install-steps.sh`, `listener_stop`).

use crate::cli::DaemonArgs;
use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg, OFlag};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// With `--daemon`: detaches (see the module header); the caller continues
/// as the daemon. Without: does nothing.
pub fn start(args: &DaemonArgs) -> Result<()> {
    if !args.daemon {
        return Ok(());
    }
    let (Some(pidfile), Some(log)) = (&args.pidfile, &args.log) else {
        anyhow::bail!("--daemon needs --pidfile FILE and --log FILE");
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open --log {}", log.display()))?;
    let err = out.try_clone()?;
    // The crate finds a locked pid file only in the daemon, after the
    // parent exited 0: look first, so a second instance fails here.
    let nofollow = OFlag::O_NOFOLLOW.bits();
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(pidfile)
    {
        if let Err((f, _)) = Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            let mut pid = String::new();
            let _ = std::io::Read::read_to_string(&mut &f, &mut pid);
            anyhow::bail!(
                "already running in the background: {} is locked by pid {}",
                pidfile.display(),
                pid.trim()
            );
        }
    }
    // A link or a special file is refused here too, while the error still
    // reaches the terminal; the daemon checks again when it opens the file.
    if let Ok(m) = std::fs::symlink_metadata(pidfile) {
        if !m.file_type().is_file() {
            anyhow::bail!(
                "--pidfile {} is not a plain file (a link?): refusing to write through it",
                pidfile.display()
            );
        }
    }
    daemonize::Daemonize::new()
        .working_directory("/")
        .umask(0o022)
        .stdout(out)
        .stderr(err)
        .start()
        .map_err(|e| anyhow::anyhow!("cannot run in the background: {e}"))?;
    // Now the daemon (its own pid); its stderr is --log.
    let lock = write_pidfile(pidfile)?;
    // The lock lives as long as the process: the file is never closed.
    std::mem::forget(lock);
    Ok(())
}

/// Creates or reuses `pidfile` without following a link (see the module
/// header), locks it and writes our pid.
fn write_pidfile(pidfile: &Path) -> Result<Flock<std::fs::File>> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(pidfile)
        .with_context(|| format!("cannot open --pidfile {} (a link?)", pidfile.display()))?;
    let meta = f.metadata()?;
    if !meta.is_file() || meta.nlink() != 1 {
        anyhow::bail!(
            "--pidfile {} is not a plain file with one link: refusing to write it",
            pidfile.display()
        );
    }
    let f = Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!(
            "already running in the background: {} is locked ({e})",
            pidfile.display()
        )
    })?;
    f.set_len(0)?;
    (&*f).write_all(format!("{}\n", std::process::id()).as_bytes())?;
    Ok(f)
}

/// At the daemon's exit: removes the pid file if it still holds our pid.
pub fn finish(args: &DaemonArgs) {
    let (true, Some(pidfile)) = (args.daemon, &args.pidfile) else {
        return;
    };
    let ours =
        std::fs::read_to_string(pidfile).is_ok_and(|t| t.trim() == std::process::id().to_string());
    if ours {
        let _ = std::fs::remove_file(pidfile);
    }
}
