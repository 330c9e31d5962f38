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
//! - the pid file is opened with `O_CREAT` (following links: keep it in a
//!   directory of root's or the daemon's own, such as `/run/dlcount`),
//!   locked with `flock` for the daemon's life — a second daemon with the
//!   same pid file refuses to start — and written with its pid; it is never
//!   removed by the crate: [`finish`] removes it when it still holds our pid.

use crate::cli::DaemonArgs;
use anyhow::{Context, Result};

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
    if let Ok(f) = std::fs::File::open(pidfile) {
        if let Err((f, _)) = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
        {
            let mut pid = String::new();
            let _ = std::io::Read::read_to_string(&mut &f, &mut pid);
            anyhow::bail!(
                "already running in the background: {} is locked by pid {}",
                pidfile.display(),
                pid.trim()
            );
        }
    }
    daemonize::Daemonize::new()
        .pid_file(pidfile)
        .working_directory("/")
        .umask(0o022)
        .stdout(out)
        .stderr(err)
        .start()
        .map_err(|e| anyhow::anyhow!("cannot run in the background: {e}"))?;
    Ok(())
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
