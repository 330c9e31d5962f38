//! Dropping root before reading input.
//!
//! Apache starts piped loggers as root. With `--user USER[:GROUP]` we give up
//! supplementary groups, then the gid, then the uid — in that order, because
//! after `setuid` we could no longer change groups — and then verify that
//! nothing of root is left (including that `setuid(0)` now fails).

use anyhow::{bail, Context, Result};
use nix::unistd::{
    getegid, geteuid, getgid, getgroups, getuid, setgid, setgroups, setuid, Gid, Group, Uid, User,
};

pub fn is_root() -> bool {
    geteuid().is_root()
}

/// Resolves `USER[:GROUP]` to ids.
pub fn lookup(spec: &str) -> Result<(Uid, Gid)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = User::from_name(user)
        .with_context(|| format!("cannot look up user {user:?}"))?
        .with_context(|| format!("--user {spec}: no such user {user:?}"))?;
    let gid = match group {
        Some(g) => {
            Group::from_name(g)
                .with_context(|| format!("cannot look up group {g:?}"))?
                .with_context(|| format!("--user {spec}: no such group {g:?}"))?
                .gid
        }
        None => u.gid,
    };
    Ok((u.uid, gid))
}

/// Switches to `spec` for good (as root). Without root, succeeds only if we already are that user.
pub fn drop_to(spec: &str) -> Result<()> {
    let (uid, gid) = lookup(spec)?;
    if !is_root() {
        if getuid() == uid && geteuid() == uid {
            return Ok(());
        }
        bail!(
            "--user {spec}: only root can switch user (running as uid {})",
            getuid()
        );
    }
    setgroups(&[]).context("cannot drop supplementary groups")?;
    setgid(gid).with_context(|| format!("cannot set group id {gid}"))?;
    setuid(uid).with_context(|| format!("cannot set user id {uid}"))?;
    let groups = getgroups().unwrap_or_default();
    let clean = getuid() == uid
        && geteuid() == uid
        && getgid() == gid
        && getegid() == gid
        && groups.iter().all(|&g| g == gid)
        && (uid.is_root() || setuid(Uid::from_raw(0)).is_err());
    if !clean {
        bail!("--user {spec}: privileges were not fully dropped; refusing to continue");
    }
    Ok(())
}
