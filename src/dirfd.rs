//! Opening a subdirectory through its parent's descriptor without ever
//! following a link — the one step the page writer (`render::write`, for
//! `ROOT/.stats`), the spool (`spool/`) and the outage queue (`queue/`) in
//! the local state directory share before each applies its own policy to
//! what it found — and [`PrivateDir`], the policy of the last two.
//!
//! Invariant: a name that is a symbolic link, or anything but a directory,
//! is reported as such and never opened; a directory created here gets the
//! asked mode exactly (`mkdirat`'s mode passes through the umask, so it is
//! set again on the descriptor). A [`PrivateDir`] is used only through its
//! descriptor, only when it is a real directory of the user we run as (or
//! root) writable by no one else, and its files are opened without
//! following a link and only when regular.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::geteuid;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What stands at a name in a directory.
pub enum Subdir {
    /// A directory, open; `created`: made by this call.
    Dir {
        fd: OwnedFd,
        created: bool,
    },
    Missing,
    Symlink,
    NotADirectory,
}

/// Opens `name` in `parent` with `O_NOFOLLOW`; with `create`, a missing
/// directory is made with that mode first (one made by someone else
/// meanwhile is simply opened).
pub fn open_subdir<Fd: AsFd>(parent: Fd, name: &str, create: Option<Mode>) -> nix::Result<Subdir> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut created = false;
    loop {
        match openat(parent.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => {
                if let (true, Some(mode)) = (created, create) {
                    fchmod(fd.as_fd(), mode)?;
                }
                return Ok(Subdir::Dir { fd, created });
            }
            Err(Errno::ENOENT) => match create {
                Some(mode) if !created => match mkdirat(parent.as_fd(), name, mode) {
                    Ok(()) => created = true,
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                },
                _ => return Ok(Subdir::Missing),
            },
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let link =
                    fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|st| {
                        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
                    });
                return Ok(if link {
                    Subdir::Symlink
                } else {
                    Subdir::NotADirectory
                });
            }
            Err(e) => return Err(e),
        }
    }
}

/// A verified private directory (the spool, the outage queue), used only
/// through its descriptor.
pub struct PrivateDir {
    pub path: PathBuf,
    pub fd: OwnedFd,
}

impl PrivateDir {
    /// Opens `dir` (creating it `0700` with `create`) without following a
    /// link, and refuses it unless it is a directory owned by us or root and
    /// writable by nobody else. `Ok(None)`: it does not exist.
    pub fn open(dir: &Path, create: bool) -> Result<Option<PrivateDir>> {
        let parent_path = dir.parent().unwrap_or(Path::new("."));
        let name = dir.file_name().unwrap_or(dir.as_os_str());
        let parent = openat(
            nix::fcntl::AT_FDCWD,
            parent_path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("{} is not usable", parent_path.display()))?;
        let name = name
            .to_str()
            .with_context(|| format!("{} is not UTF-8", dir.display()))?;
        let fd = match open_subdir(&parent, name, create.then_some(Mode::S_IRWXU))
            .with_context(|| format!("cannot open or create {}", dir.display()))?
        {
            Subdir::Dir { fd, .. } => fd,
            Subdir::Missing => return Ok(None),
            Subdir::Symlink | Subdir::NotADirectory => bail!(
                "{} is not a directory (a symbolic link?): refused",
                dir.display()
            ),
        };
        let st = fstat(&fd).with_context(|| format!("cannot stat {}", dir.display()))?;
        let me = geteuid().as_raw();
        if st.st_uid != me && st.st_uid != 0 {
            bail!(
                "{} belongs to uid {}, not to uid {me} (the user dlcount runs as) or root: refused",
                dir.display(),
                st.st_uid
            );
        }
        if st.st_mode & 0o022 != 0 {
            bail!(
                "{} is writable by others (mode {:o}): refused",
                dir.display(),
                st.st_mode & 0o7777
            );
        }
        // A spool directory an earlier version made (0750, files 0640) is
        // made private now: the files hold raw addresses.
        if st.st_mode & 0o077 != 0 && st.st_uid == me {
            fchmod(&fd, Mode::from_bits_truncate(0o700))
                .with_context(|| format!("cannot make {} private (0700)", dir.display()))?;
        }
        Ok(Some(PrivateDir {
            path: dir.to_path_buf(),
            fd,
        }))
    }

    /// A regular file of the directory, opened without following a link.
    pub fn open_file(&self, name: &str, flags: OFlag, mode: Mode) -> nix::Result<File> {
        let fd = openat(
            &self.fd,
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            mode,
        )?;
        let st = fstat(&fd)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(Errno::EINVAL);
        }
        // An earlier version's 0640 spool file is made private too.
        if st.st_mode & 0o077 != 0 && st.st_uid == geteuid().as_raw() {
            fchmod(&fd, Mode::from_bits_truncate(0o600))?;
        }
        Ok(File::from(fd))
    }

    /// The size of a file of the directory (0 if it cannot be looked at).
    pub fn size_of(&self, name: &str) -> u64 {
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_or(0, |st| st.st_size as u64)
    }

    /// Whether `file` (opened from `name` and since locked) is still the
    /// file at `name`: another process may have deleted or replaced it meanwhile.
    pub fn still_at(&self, name: &str, file: &File) -> bool {
        use std::os::unix::fs::MetadataExt;
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|m| {
            file.metadata()
                .is_ok_and(|f| f.ino() == m.st_ino && f.dev() == m.st_dev && f.nlink() > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn each_kind_of_entry_is_told_apart_and_links_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let parent = std::fs::File::open(dir.path()).unwrap();
        let private = Some(Mode::from_bits_truncate(0o700));
        assert!(matches!(
            open_subdir(&parent, "a", None),
            Ok(Subdir::Missing)
        ));
        assert!(matches!(
            open_subdir(&parent, "a", private),
            Ok(Subdir::Dir { created: true, .. })
        ));
        let mode = std::fs::metadata(dir.path().join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o700);
        assert!(matches!(
            open_subdir(&parent, "a", private),
            Ok(Subdir::Dir { created: false, .. })
        ));
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("link")).unwrap();
        assert!(matches!(
            open_subdir(&parent, "link", private),
            Ok(Subdir::Symlink)
        ));
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        assert!(matches!(
            open_subdir(&parent, "file", private),
            Ok(Subdir::NotADirectory)
        ));
    }
}
