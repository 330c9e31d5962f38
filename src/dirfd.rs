//! Opening a subdirectory through its parent's descriptor without ever
//! following a link — the one step the page writer (`render::write`, for
//! `ROOT/.stats`) and the spool (`spool`, for `spool/` beside the database)
//! share before each applies its own policy to what it found.
//!
//! Invariant: a name that is a symbolic link, or anything but a directory,
//! is reported as such and never opened; a directory created here gets the
//! asked mode exactly (`mkdirat`'s mode passes through the umask, so it is
//! set again on the descriptor).

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use std::os::fd::{AsFd, OwnedFd};

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
