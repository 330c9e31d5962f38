//! Dropping root before reading input.
//!
//! Apache starts piped loggers as root. With `--user USER[:GROUP]` we give up
//! supplementary groups, then the gid, then the uid — in that order, because
//! after `setuid` we could no longer change groups — and then verify that
//! nothing of root is left (including that `setuid(0)` now fails).
//!
//! When the configured user cannot be used (no such user, a typo), a logger
//! still must not stay root while it spools Apache's lines into a directory
//! someone else owns: [`fallback`] names a safe unprivileged identity — the
//! owner of the database directory when that is not root (whoever could
//! plant a link there gains nothing from our writing as them), else
//! `nobody:nogroup`.

use anyhow::{bail, Context, Result};
use nix::unistd::{
    getegid, geteuid, getgid, getgroups, getuid, setgid, setgroups, setuid, Gid, Group, Uid, User,
};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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

/// Whether we already run as the user `spec` names (its uid; the group is not compared).
pub fn is_current(spec: &str) -> bool {
    lookup(spec).is_ok_and(|(uid, _)| geteuid() == uid)
}

/// Who we run as, for messages: `user dlcount (uid 998)`.
pub fn current() -> String {
    describe(geteuid(), getegid())
}

fn describe(uid: Uid, gid: Gid) -> String {
    let user = User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name);
    let group = Group::from_gid(gid)
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name);
    format!("{user}:{group} (uid {uid}, gid {gid})")
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
    drop_to_ids(uid, gid).with_context(|| format!("--user {spec}"))
}

/// Switches to `uid`/`gid` for good and verifies that nothing of root is left.
pub fn drop_to_ids(uid: Uid, gid: Gid) -> Result<()> {
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
        bail!("privileges were not fully dropped; refusing to continue");
    }
    Ok(())
}

/// The identity a root process takes when the configured user cannot be
/// used: the owner of `dir` (the database directory) unless that is root,
/// else `nobody:nogroup`; never root. The group is the owner's own (never
/// gid 0), else `nogroup`.
pub fn fallback(dir: &Path) -> (Uid, Gid) {
    let nogroup = Group::from_name("nogroup")
        .ok()
        .flatten()
        .or_else(|| Group::from_name("nobody").ok().flatten())
        .map_or(Gid::from_raw(65534), |g| g.gid);
    let nobody = User::from_name("nobody")
        .ok()
        .flatten()
        .map_or(Uid::from_raw(65534), |u| u.uid);
    match std::fs::metadata(dir) {
        Ok(m) if m.uid() != 0 => {
            let uid = Uid::from_raw(m.uid());
            let gid = User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.gid)
                .filter(|g| g.as_raw() != 0)
                .unwrap_or(nogroup);
            (uid, gid)
        }
        _ => (nobody, nogroup),
    }
}

/// As root: becomes [`fallback`] of `dir`; returns who we are now, for the
/// error log line.
pub fn drop_to_fallback(dir: &Path) -> Result<String> {
    let (uid, gid) = fallback(dir);
    drop_to_ids(uid, gid)?;
    Ok(describe(uid, gid))
}
