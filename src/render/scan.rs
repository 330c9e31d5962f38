//! Finds the ISO images under ROOT for the public page: recursive, grouped by
//! folder, each with the checksum/signature files that actually exist beside it.
//!
//! Invariants: hidden entries (`.stats`, `.git`, rsync's `.name.XXXX` temp files)
//! are never listed; a symlink is followed only when its canonical target lies
//! inside the canonical ROOT, and every real directory is listed at most once
//! (so links cannot lead outside ROOT or into a loop). Real directories are
//! walked before symlinked ones, so a file reachable both ways is shown under
//! its real folder.
//!
//! A file is listed only once it is complete: one whose mtime lies within the
//! settle time of now (see [`Settle`]) is still being written — `cp`, `scp`,
//! `rsync --inplace` and web uploads all move the mtime with every write — and
//! is left out, and the scan says when the first such file will have settled
//! so the caller can render again then. Whether a file is open for writing
//! right now cannot be asked by an unprivileged logger (another user's
//! `/proc/PID/fd` is closed to it, a lease needs the file's owner), so the
//! mtime is the rule; a writer that stalls mid-file for longer than the settle
//! time is the one case it cannot see.

use super::natsort::{folder_cmp, natural_cmp};
use crate::classify::Classifier;
use anyhow::{Context, Result};
use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Per-image sidecar extensions, in the order their links are shown.
pub const SIDECAR_EXTS: [&str; 8] = [
    ".md5", ".sha1", ".sha256", ".sha512", ".asc", ".sig", ".gpg", ".torrent",
];

/// Signature suffixes allowed after a folder-level checksum list (`SHA256SUMS.gpg`).
const SUMS_SIG_EXTS: [&str; 3] = [".gpg", ".asc", ".sig"];

/// One image on disk.
#[derive(Debug, Clone)]
pub struct IsoFile {
    /// Path relative to ROOT as raw bytes, `/`-separated, no leading `/`.
    pub rel: Vec<u8>,
    pub name: Vec<u8>,
    pub size: u64,
    pub mtime: SystemTime,
    /// Sidecar files that exist: (extension without the dot, file name).
    pub sidecars: Vec<(&'static str, Vec<u8>)>,
}

/// One folder that holds at least one image.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Path relative to ROOT (empty for ROOT itself).
    pub rel: Vec<u8>,
    /// Newest release first (descending natural order of names).
    pub isos: Vec<IsoFile>,
    /// Folder-level checksum lists and their signatures, natural order.
    pub sums: Vec<Vec<u8>>,
}

/// Whether a name is a folder-level checksum list such as `SHA256SUMS`,
/// `MD5SUMS`, `B2SUMS`, Fedora's `…-CHECKSUM`, or a signature of one.
pub fn is_sums_name(name: &[u8]) -> bool {
    let stem = SUMS_SIG_EXTS
        .iter()
        .find_map(|e| strip_suffix_ci(name, e.as_bytes()))
        .unwrap_or(name);
    strip_suffix_ci(stem, b"SUMS").is_some_and(|s| !s.is_empty())
        || strip_suffix_ci(stem, b"CHECKSUM").is_some()
}

/// Whether a name is a per-image checksum/signature file (by extension).
pub fn is_sidecar_name(name: &[u8]) -> bool {
    SIDECAR_EXTS
        .iter()
        .any(|e| strip_suffix_ci(name, e.as_bytes()).is_some_and(|s| !s.is_empty()))
}

fn strip_suffix_ci<'a>(s: &'a [u8], suffix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= suffix.len() && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix))
        .then(|| &s[..s.len() - suffix.len()])
}

/// The completeness rule: a file written less than `time` before `now` is
/// not listed yet.
#[derive(Debug, Clone, Copy)]
pub struct Settle {
    pub now: SystemTime,
    pub time: Duration,
}

impl Settle {
    /// How long until a file with this mtime may be listed; `None` when it
    /// may be listed now. An mtime far in the future (a clock set wrong, a
    /// `touch -d`) is not a write in progress, so only one within `time` of
    /// now counts as recent.
    pub fn remaining(&self, mtime: SystemTime) -> Option<Duration> {
        let recent = match self.now.duration_since(mtime) {
            Ok(age) => age < self.time,
            Err(ahead) => ahead.duration() < self.time,
        };
        recent.then(|| {
            (mtime + self.time)
                .duration_since(self.now)
                .unwrap_or_default()
        })
    }
}

/// What a scan found.
#[derive(Debug, Clone)]
pub struct Scan {
    pub folders: Vec<Folder>,
    /// Tracked files (images, checksums, signatures) left out as still being written.
    pub unsettled: usize,
    /// When the first of them may be listed, from the scan's `now`.
    pub next_settle: Option<Duration>,
}

struct Entry {
    name: Vec<u8>,
    meta: Metadata,
}

/// Scans `root` and returns the folders holding complete images, in
/// [`folder_cmp`] order: a folder before its subfolders (ROOT first), sibling
/// folders newest release first, as the images inside each folder.
pub fn scan(root: &Path, classifier: &Classifier, settle: Settle) -> Result<Scan> {
    let canon_root = fs::canonicalize(root)
        .with_context(|| format!("cannot resolve download root {}", root.display()))?;
    let root_meta = fs::metadata(&canon_root)
        .with_context(|| format!("cannot stat {}", canon_root.display()))?;
    let mut visited: HashSet<(u64, u64)> = HashSet::from([(root_meta.dev(), root_meta.ino())]);
    let mut folders = Vec::new();
    // (logical path relative to ROOT, real path)
    let mut real_dirs: Vec<(Vec<u8>, PathBuf)> = vec![(Vec::new(), canon_root.clone())];
    let mut linked_dirs: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    let mut unsettled = 0;
    let mut next_settle: Option<Duration> = None;
    loop {
        let (rel, dir) = if let Some(d) = real_dirs.pop() {
            d
        } else if let Some((rel, target)) = linked_dirs.pop() {
            // A linked folder is entered only if its real folder was never listed.
            match fs::metadata(&target) {
                Ok(m) if visited.insert((m.dev(), m.ino())) => (rel, target),
                _ => continue,
            }
        } else {
            break;
        };
        let Ok(read) = fs::read_dir(&dir) else {
            // Unreadable folders are skipped: the page lists what Apache could serve.
            continue;
        };
        let mut files: Vec<Entry> = Vec::new();
        for entry in read.flatten() {
            let name = entry.file_name().as_bytes().to_vec();
            if name.first() == Some(&b'.') {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            let (meta, via_link) = if ft.is_symlink() {
                let Ok(target) = fs::canonicalize(entry.path()) else {
                    continue;
                };
                if !target.starts_with(&canon_root) {
                    continue;
                }
                match fs::metadata(&target) {
                    Ok(m) => (m, Some(target)),
                    Err(_) => continue,
                }
            } else {
                match entry.metadata() {
                    Ok(m) => (m, None),
                    Err(_) => continue,
                }
            };
            let child_rel = join_rel(&rel, &name);
            if meta.is_dir() {
                match via_link {
                    // Symlinked folders wait until every real folder has been seen.
                    Some(target) => linked_dirs.push((child_rel, target)),
                    None => {
                        if visited.insert((meta.dev(), meta.ino())) {
                            real_dirs.push((child_rel, entry.path()));
                        }
                    }
                }
            } else if meta.is_file() {
                let tracked = classifier.has_counted_ext(&name)
                    || is_sidecar_name(&name)
                    || is_sums_name(&name);
                let wait = tracked
                    .then(|| settle.remaining(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
                    .flatten();
                match wait {
                    Some(wait) => {
                        unsettled += 1;
                        next_settle = Some(next_settle.map_or(wait, |n| n.min(wait)));
                    }
                    None => files.push(Entry { name, meta }),
                }
            }
        }
        if let Some(folder) = build_folder(rel, files, classifier) {
            folders.push(folder);
        }
    }
    folders.sort_by(|a, b| folder_cmp(&a.rel, &b.rel));
    Ok(Scan {
        folders,
        unsettled,
        next_settle,
    })
}

fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rel.len() + name.len() + 1);
    if !rel.is_empty() {
        out.extend_from_slice(rel);
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

fn build_folder(rel: Vec<u8>, files: Vec<Entry>, classifier: &Classifier) -> Option<Folder> {
    let by_name: HashMap<&[u8], &Entry> = files.iter().map(|e| (e.name.as_slice(), e)).collect();
    let mut isos: Vec<IsoFile> = files
        .iter()
        .filter(|e| classifier.has_counted_ext(&e.name))
        .map(|e| {
            // Sidecars are `NAME.iso.sha256` or, as some projects name them, `NAME.sha256`.
            let stem = e
                .name
                .iter()
                .rposition(|&b| b == b'.')
                .map_or(&e.name[..], |i| &e.name[..i]);
            let sidecars = SIDECAR_EXTS
                .iter()
                .filter_map(|ext| {
                    [&e.name[..], stem].iter().find_map(|base| {
                        let mut cand = base.to_vec();
                        cand.extend_from_slice(ext.as_bytes());
                        by_name
                            .contains_key(cand.as_slice())
                            .then(|| (&ext[1..], cand))
                    })
                })
                .collect::<Vec<_>>();
            IsoFile {
                rel: join_rel(&rel, &e.name),
                name: e.name.clone(),
                size: e.meta.len(),
                mtime: e.meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                sidecars,
            }
        })
        .collect();
    if isos.is_empty() {
        return None;
    }
    isos.sort_by(|a, b| natural_cmp(&b.name, &a.name));
    let mut sums: Vec<Vec<u8>> = files
        .iter()
        .filter(|e| is_sums_name(&e.name))
        .map(|e| e.name.clone())
        .collect();
    sums.sort_by(|a, b| natural_cmp(a, b));
    Some(Folder { rel, isos, sums })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_settle() -> Settle {
        Settle {
            now: SystemTime::now(),
            time: Duration::ZERO,
        }
    }

    #[test]
    fn a_file_still_being_written_is_listed_once_it_settles() {
        let root = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let settle = Settle {
            now,
            time: Duration::from_secs(60),
        };
        let at = |name: &str, mtime: SystemTime| {
            let f = fs::File::create(root.path().join(name)).unwrap();
            f.set_len(20 << 20).unwrap();
            f.set_modified(mtime).unwrap();
        };
        at("uploading-2.0.iso", now);
        at("uploaded-1.0.iso", now - Duration::from_secs(120));
        at("uploaded-1.0.iso.sha256", now - Duration::from_secs(10));
        at("SHA256SUMS", now - Duration::from_secs(120));
        at("notes.txt", now);
        // A clock set wrong is no upload in progress.
        at("future-3.0.iso", now + Duration::from_secs(3600));
        let found = scan(root.path(), &Classifier::new(&[".iso"]), settle).unwrap();
        assert_eq!(found.folders.len(), 1);
        let names: Vec<&[u8]> = found.folders[0]
            .isos
            .iter()
            .map(|i| i.name.as_slice())
            .collect();
        assert_eq!(names, [&b"uploaded-1.0.iso"[..], b"future-3.0.iso"]);
        // Its checksum, written 10 s ago, is not linked yet either.
        assert_eq!(found.folders[0].isos[0].sidecars, Vec::new());
        assert_eq!(found.folders[0].sums, [b"SHA256SUMS".to_vec()]);
        assert_eq!(found.unsettled, 2);
        assert_eq!(found.next_settle, Some(Duration::from_secs(50)));
        // A minute later both have settled.
        let later = Settle {
            now: now + Duration::from_secs(60),
            ..settle
        };
        let found = scan(root.path(), &Classifier::new(&[".iso"]), later).unwrap();
        assert_eq!(found.folders[0].isos.len(), 3);
        assert_eq!(found.unsettled, 0);
        assert_eq!(found.next_settle, None);
    }

    #[test]
    fn checksum_names_are_recognised() {
        for n in [
            "SHA256SUMS",
            "SHA512SUMS.gpg",
            "MD5SUMS",
            "B2SUMS.asc",
            "Fedora-41-x86_64-CHECKSUM",
            "sha256sums.sig",
        ] {
            assert!(is_sums_name(n.as_bytes()), "{n}");
        }
        for n in ["SUMS", "a.iso", "README", "SHA256SUMS.txt"] {
            assert!(!is_sums_name(n.as_bytes()), "{n}");
        }
        assert!(is_sidecar_name(b"a.iso.sha256"));
        assert!(is_sidecar_name(b"a.TORRENT"));
        assert!(!is_sidecar_name(b".sig"));
        assert!(!is_sidecar_name(b"a.iso"));
    }

    #[test]
    fn stem_sidecars_and_non_utf8_names_are_found() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("r");
        fs::create_dir(&dir).unwrap();
        use std::ffi::OsStr;
        for n in [
            &b"caf\xe9.iso"[..],
            b"caf\xe9.iso.sig",
            b"x.iso",
            b"x.sha256",
            b"x.torrent",
        ] {
            fs::write(dir.join(OsStr::from_bytes(n)), "1").unwrap();
        }
        let folders = scan(root.path(), &Classifier::new(&[".iso"]), no_settle())
            .unwrap()
            .folders;
        assert_eq!(folders.len(), 1);
        let f = &folders[0];
        assert_eq!(f.rel, b"r");
        let names: Vec<&[u8]> = f.isos.iter().map(|i| i.name.as_slice()).collect();
        assert_eq!(names, [&b"x.iso"[..], b"caf\xe9.iso"]);
        assert_eq!(
            f.isos[0].sidecars,
            [
                ("sha256", b"x.sha256".to_vec()),
                ("torrent", b"x.torrent".to_vec())
            ]
        );
        assert_eq!(f.isos[1].sidecars, [("sig", b"caf\xe9.iso.sig".to_vec())]);
        assert_eq!(f.isos[1].rel, b"r/caf\xe9.iso");
    }
}
