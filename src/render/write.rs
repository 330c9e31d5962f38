//! Writes files by name into an open directory — the pages into ROOT and
//! `ROOT/.stats`, the default templates into `templates --dump DIR` — without
//! ever following a symbolic link at a name it writes.
//!
//! Invariants: ROOT is opened once as a directory (the configured path, as the
//! admin names it); `.stats` is opened relative to it with `O_NOFOLLOW`, so a
//! `.stats` that is a link (or not a directory) is refused and nothing is
//! written through it; a page is written as a new temp file created in the
//! verified directory with `O_CREAT|O_EXCL|O_NOFOLLOW` and renamed over the
//! page's name within that same directory. A page name that is a symbolic
//! link is therefore replaced as a link — the link goes, its target is never
//! opened — which keeps the page current and touches nothing outside ROOT.

use crate::dirfd::{open_subdir, Subdir};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Prefix of our temp files: hidden, so neither the scan nor the watcher sees them.
pub const TEMP_PREFIX: &str = ".dlcount-";

/// An open directory that files are written into by name.
pub struct Dir {
    fd: OwnedFd,
    /// For messages only: every access goes through `fd`.
    path: PathBuf,
}

/// Why a subdirectory was not opened for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Symlink,
    NotADirectory,
}

impl Dir {
    /// Opens `path` as a directory; the path itself may pass through links
    /// (it is the configured one), what is opened must be a directory.
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens the subdirectory `name`, creating it with mode 0755 if missing.
    /// A `name` that is a symbolic link or not a directory is refused
    /// (`Ok(Err(_))`), never followed.
    pub fn subdir(&self, name: &str) -> Result<std::result::Result<Dir, Refused>> {
        let path = self.path.join(name);
        let found = open_subdir(self.fd.as_fd(), name, Some(Mode::from_bits_truncate(0o755)))
            .with_context(|| format!("cannot open or create {}", path.display()))?;
        Ok(match found {
            Subdir::Dir { fd, .. } => Ok(Dir { fd, path }),
            Subdir::Symlink => Err(Refused::Symlink),
            Subdir::NotADirectory => Err(Refused::NotADirectory),
            // Created, then gone before it could be opened.
            Subdir::Missing => anyhow::bail!("{} vanished while being created", path.display()),
        })
    }

    /// Replaces the entry `name` atomically with `data`, mode 0644. No fsync:
    /// the pages are derived data re-rendered at every start, and the rename
    /// alone already guarantees readers see the old or the new file, never a mix.
    pub fn write_atomic(&self, name: &str, data: &[u8]) -> Result<()> {
        let (tmp_name, fd) = self.create_temp()?;
        let written = (|| -> Result<()> {
            let mut file = File::from(fd);
            file.write_all(data)
                .with_context(|| format!("cannot write {}", self.path.join(&tmp_name).display()))?;
            // The creation mode passed through the umask.
            fchmod(file.as_fd(), Mode::from_bits_truncate(0o644)).with_context(|| {
                format!(
                    "cannot set permissions on {}",
                    self.path.join(&tmp_name).display()
                )
            })?;
            drop(file);
            renameat(self.fd.as_fd(), tmp_name.as_str(), self.fd.as_fd(), name)
                .with_context(|| format!("cannot replace {}", self.path.join(name).display()))
        })();
        if written.is_err() {
            let _ = unlinkat(
                self.fd.as_fd(),
                tmp_name.as_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        written
    }

    /// The last `n` bytes (or fewer) of the regular file `name`, `None`
    /// when there is none (a link is not followed: it reads as none, and is
    /// then replaced). Only the end is read: a month page's stamp is there.
    pub fn tail(&self, name: &str, n: u64) -> Result<Option<Vec<u8>>> {
        use std::io::{Read, Seek, SeekFrom};
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(self.fd.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => {
                let mut f = File::from(fd);
                let ctx = || format!("cannot read {}", self.path.join(name).display());
                let len = f.metadata().with_context(ctx)?.len();
                f.seek(SeekFrom::Start(len.saturating_sub(n)))
                    .with_context(ctx)?;
                let mut data = Vec::new();
                f.read_to_end(&mut data).with_context(ctx)?;
                Ok(Some(data))
            }
            Err(Errno::ENOENT | Errno::ELOOP) => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("cannot read {}", self.path.join(name).display()))
            }
        }
    }

    /// A new, empty temp file of ours; `O_EXCL` makes an existing entry of
    /// that name (a planted link included) a collision, never a file we write.
    fn create_temp(&self) -> Result<(String, OwnedFd)> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut last = Errno::EEXIST;
        for _ in 0..16 {
            let tag =
                getrandom::u64().map_err(|e| anyhow::anyhow!("cannot name a temp file ({e})"))?;
            let name = format!("{TEMP_PREFIX}{tag:016x}.tmp");
            match openat(
                self.fd.as_fd(),
                name.as_str(),
                flags,
                Mode::from_bits_truncate(0o644),
            ) {
                Ok(fd) => return Ok((name, fd)),
                Err(Errno::EEXIST) => last = Errno::EEXIST,
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        Err(last).with_context(|| format!("cannot create a temp file in {}", self.path.display()))
    }
}
