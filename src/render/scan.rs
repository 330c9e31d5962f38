//! Finds the ISO images under ROOT for the public page: recursive, grouped by
//! folder, each with the checksum/signature files that actually exist beside it
//! and the folder's checksum lists (`SHA256SUMS`, `sha256sum.txt`, a
//! `NAME.sha256` of no image …) that really name it: a list is read (its
//! first [`SUMS_READ_LIMIT`] bytes, only when it is the regular file the scan
//! saw) and an image is linked to it only when a line of it names the image.
//! Images are in [`release_cmp`] order, folders in [`folder_cmp`] order.
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

use super::natsort::{folder_cmp, natural_cmp, release_cmp};
use crate::classify::Classifier;
use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Per-image sidecar extensions, in the order their links are shown.
pub const SIDECAR_EXTS: [&str; 8] = [
    ".md5", ".sha1", ".sha256", ".sha512", ".asc", ".sig", ".gpg", ".torrent",
];

/// Signature suffixes allowed after a folder-level checksum list (`SHA256SUMS.gpg`).
const SUMS_SIG_EXTS: [&str; 3] = [".gpg", ".asc", ".sig"];

/// Suffixes of lists named after the coreutils tool that wrote them
/// (`linuxvillage-24.04.sha256sum`, written by `sha256sum *.iso > …`).
const SUM_TOOL_EXTS: [&str; 7] = [
    ".md5sum",
    ".sha1sum",
    ".sha224sum",
    ".sha256sum",
    ".sha384sum",
    ".sha512sum",
    ".b2sum",
];

/// How much of a checksum list is read to find the names it covers: 1 MiB
/// holds some 10,000 SHA-256 lines, far more than any release folder's list.
/// Only complete lines within it count; a name listed further on gets no link.
pub const SUMS_READ_LIMIT: usize = 1 << 20;

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
    /// The folder's checksum lists that have a line for this image (see
    /// [`names_in_sums`]): those of [`Folder::sums`] in its order, then digest
    /// files named after no image (`linuxvillage-24.04.sha256`), natural order.
    pub lists: Vec<Vec<u8>>,
}

/// One folder that holds at least one image.
#[derive(Debug, Clone)]
pub struct Folder {
    /// Path relative to ROOT (empty for ROOT itself).
    pub rel: Vec<u8>,
    /// Newest release first ([`release_cmp`] order of names).
    pub isos: Vec<IsoFile>,
    /// Folder-level checksum lists and their signatures, natural order.
    pub sums: Vec<Vec<u8>>,
}

/// Whether a name is a folder-level checksum list such as `SHA256SUMS`,
/// `MD5SUMS`, `B2SUMS`, `CHECKSUMS`, Fedora's `…-CHECKSUM`, a coreutils-named
/// `NAME.sha256sum`, any of these with `.txt` added (Arch's `sha256sums.txt`,
/// `b2sums.txt`), a bare tool name with `.txt` (Linux Mint's
/// `sha256sum.txt`), or a signature of one.
pub fn is_sums_name(name: &[u8]) -> bool {
    let stem = SUMS_SIG_EXTS
        .iter()
        .find_map(|e| strip_suffix_ci(name, e.as_bytes()))
        .unwrap_or(name);
    let (stem, txt) = match strip_suffix_ci(stem, b".txt") {
        Some(s) => (s, true),
        None => (stem, false),
    };
    strip_suffix_ci(stem, b"SUMS").is_some_and(|s| !s.is_empty())
        || strip_suffix_ci(stem, b"CHECKSUM").is_some()
        || SUM_TOOL_EXTS.iter().any(|e| {
            // `sha256sum` alone may be the tool itself; with `.txt` it is a list.
            strip_suffix_ci(stem, e.as_bytes()).is_some_and(|s| !s.is_empty())
                || (txt && stem.eq_ignore_ascii_case(&e.as_bytes()[1..]))
        })
}

/// Extensions of per-image digest files ([`SIDECAR_EXTS`]) that, on a file
/// that is no image's own sidecar, mark a list of several images
/// (`linuxvillage-24.04.sha256` holding a line per flavour).
const DIGEST_EXTS: [&str; 4] = [".md5", ".sha1", ".sha256", ".sha512"];

fn is_digest_name(name: &[u8]) -> bool {
    DIGEST_EXTS
        .iter()
        .any(|e| strip_suffix_ci(name, e.as_bytes()).is_some_and(|s| !s.is_empty()))
}

/// Whether a checksum-list name is a binary detached signature (`.gpg`,
/// `.sig`), which is never read for names. An `.asc` is text — often the
/// list itself, clear-signed — and is read like a list.
fn is_binary_signature(name: &[u8]) -> bool {
    [".gpg", ".sig"]
        .iter()
        .any(|e| strip_suffix_ci(name, e.as_bytes()).is_some())
}

/// The names of files in the list's own folder that a checksum list has a
/// line for, in the order of the list. A line is one of
/// - GNU (`sha256sum`, `md5sum`, `b2sum` …): `HASH  NAME` or `HASH *NAME`
///   (exactly one space, then the mode: a space for text, `*` for binary); a
///   line starting with `\` has its name escaped (`\\`, `\n`, `\r`);
/// - BSD tag (`sha256sum --tag`, OpenBSD, FreeBSD, Fedora's CHECKSUM):
///   `ALGO (NAME) = HASH`, ALGO letters, digits and `-` (`SHA256`, `BLAKE2b-256`);
///
/// where HASH is hexadecimal of a digest's length (32, 40, 56, 64, 96 or 128
/// digits: MD5 to SHA-512 and BLAKE2b). Anything else — comments, blank
/// lines, the armour of a clear-signed list, prose — names nothing. A name
/// with a leading `./` is the same name; one with any other `/` is in another
/// folder and not returned. A trailing CR (a list written on Windows) is not
/// part of the name. Names are bytes, compared exactly (case included).
pub fn names_in_sums(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let name = gnu_line(line).or_else(|| bsd_line(line))?;
            let name = match name.strip_prefix(b"./") {
                Some(rest) => rest.to_vec(),
                None => name.into_owned(),
            };
            (!name.is_empty() && !name.contains(&b'/')).then_some(name)
        })
        .collect()
}

fn is_hex_digest(s: &[u8]) -> bool {
    [32, 40, 56, 64, 96, 128].contains(&s.len()) && s.iter().all(u8::is_ascii_hexdigit)
}

/// A line's escape mark: coreutils starts a line with `\` when the name holds
/// a backslash, a newline or a CR, written as `\\`, `\n`, `\r`.
fn split_escape(line: &[u8]) -> (bool, &[u8]) {
    match line.strip_prefix(b"\\") {
        Some(rest) => (true, rest),
        None => (false, line),
    }
}

fn unescape(name: &[u8], escaped: bool) -> Option<Cow<'_, [u8]>> {
    if !escaped {
        return Some(Cow::Borrowed(name));
    }
    let mut out = Vec::with_capacity(name.len());
    let mut it = name.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match it.next()? {
            b'\\' => b'\\',
            b'n' => b'\n',
            b'r' => b'\r',
            _ => return None,
        });
    }
    Some(Cow::Owned(out))
}

/// `HASH  NAME` / `HASH *NAME`.
fn gnu_line(line: &[u8]) -> Option<Cow<'_, [u8]>> {
    let (escaped, rest) = split_escape(line);
    let space = rest.iter().position(|&b| b == b' ')?;
    if !is_hex_digest(&rest[..space]) {
        return None;
    }
    let name = match &rest[space + 1..] {
        [b' ' | b'*', name @ ..] => name,
        _ => return None,
    };
    unescape(name, escaped)
}

/// `ALGO (NAME) = HASH`; the last `) = ` ends the name, so a name may hold one.
fn bsd_line(line: &[u8]) -> Option<Cow<'_, [u8]>> {
    let (escaped, rest) = split_escape(line);
    let open = rest.windows(2).position(|w| w == b" (")?;
    let algo = &rest[..open];
    if !algo.first()?.is_ascii_alphabetic()
        || !algo.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return None;
    }
    let body = &rest[open + 2..];
    let close = body.windows(4).rposition(|w| w == b") = ")?;
    if !is_hex_digest(&body[close + 4..]) {
        return None;
    }
    unescape(&body[..close], escaped)
}

/// The first [`SUMS_READ_LIMIT`] bytes of a list, cut after the last complete
/// line when the file is longer; `None` when it cannot be read as a regular
/// file. Opened without following a link (`path` is the entry itself, or a
/// link's canonical target inside ROOT, checked by the scan) and without
/// blocking, so a FIFO swapped in after the scan cannot stall the render;
/// and read only when it is the very file the scan saw there (`seen`: same
/// device and inode), so a folder on the way swapped for a link to a file
/// outside ROOT after the scan is not read either.
fn read_list(path: &Path, seen: &Metadata, limit: usize) -> Option<Vec<u8>> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || (meta.dev(), meta.ino()) != (seen.dev(), seen.ino()) {
        return None;
    }
    let mut text = Vec::new();
    file.take(limit as u64 + 1).read_to_end(&mut text).ok()?;
    if text.len() > limit {
        let end = text[..limit]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        text.truncate(end);
    }
    Some(text)
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
    /// Where to read it: the entry itself, or a link's canonical target.
    path: PathBuf,
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
                    None => {
                        let path = via_link.unwrap_or_else(|| entry.path());
                        files.push(Entry { name, meta, path });
                    }
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
                lists: Vec::new(),
            }
        })
        .collect();
    if isos.is_empty() {
        return None;
    }
    isos.sort_by(|a, b| release_cmp(&a.name, &b.name));
    let mut sums: Vec<&Entry> = files.iter().filter(|e| is_sums_name(&e.name)).collect();
    sums.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    // Digest files that belong to no image (`linuxvillage-24.04.sha256`) are
    // read as lists too, after the folder's own; they are no folder-level
    // list by name, so only the images they name link to them.
    let own: HashSet<&[u8]> = isos
        .iter()
        .flat_map(|i| i.sidecars.iter().map(|(_, n)| n.as_slice()))
        .collect();
    let mut loose: Vec<&Entry> = files
        .iter()
        .filter(|e| is_digest_name(&e.name) && !is_sums_name(&e.name))
        .filter(|e| !own.contains(e.name.as_slice()) && !classifier.has_counted_ext(&e.name))
        .collect();
    loose.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    let readable = sums.iter().filter(|e| !is_binary_signature(&e.name));
    for list in readable.chain(loose.iter()) {
        let Some(text) = read_list(&list.path, &list.meta, SUMS_READ_LIMIT) else {
            continue;
        };
        let named: HashSet<Vec<u8>> = names_in_sums(&text).into_iter().collect();
        for iso in isos.iter_mut().filter(|i| named.contains(&i.name)) {
            iso.lists.push(list.name.clone());
        }
    }
    let sums = sums.into_iter().map(|e| e.name.clone()).collect();
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
        assert_eq!(names, [&b"future-3.0.iso"[..], b"uploaded-1.0.iso"]);
        // Its checksum, written 10 s ago, is not linked yet either.
        assert_eq!(found.folders[0].isos[1].sidecars, Vec::new());
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
        // Lists named after the coreutils tool that wrote them.
        for n in [
            "linuxvillage-24.04.sha256sum",
            "all.MD5SUM",
            "x.b2sum.asc",
            "y.sha512sum",
        ] {
            assert!(is_sums_name(n.as_bytes()), "{n}");
        }
        // With `.txt` added (Arch, Linux Mint), signed or not.
        for n in [
            "SHA256SUMS.txt",
            "sha256sums.txt",
            "b2sums.txt",
            "sha256sum.txt",
            "sha256sum.txt.gpg",
            "MD5SUM.TXT",
            "CHECKSUMS.txt",
            "a.sha256sums.txt",
            "x.sha512sum.txt",
        ] {
            assert!(is_sums_name(n.as_bytes()), "{n}");
        }
        for n in [
            "SUMS",
            "SUMS.txt",
            "a.iso",
            "README",
            "README.txt",
            "sums.txt.iso",
            ".sha256sum",
            "sha256sum",
            ".txt",
            "sha256.txt",
            "x.sha256",
        ] {
            assert!(!is_sums_name(n.as_bytes()), "{n}");
        }
        assert!(is_sidecar_name(b"a.iso.sha256"));
        assert!(is_sidecar_name(b"a.TORRENT"));
        assert!(!is_sidecar_name(b".sig"));
        assert!(!is_sidecar_name(b"a.iso"));
    }

    fn h(n: usize, c: char) -> String {
        std::iter::repeat_n(c, n).collect()
    }

    #[test]
    fn checksum_lines_name_files_of_their_own_folder() {
        let text = [
            "-----BEGIN PGP SIGNED MESSAGE-----".to_owned(),
            "Hash: SHA256".into(),
            String::new(),
            "# Fedora-41.iso: 2345 bytes".into(),
            // GNU, text and binary mode, every digest length.
            format!("{}  text-mode.iso", h(64, 'a')),
            format!("{} *binary-mode.iso", h(64, 'B')),
            format!("{}  md5.iso", h(32, '1')),
            format!("{}  sha1.iso", h(40, '2')),
            format!("{}  sha224.iso", h(56, '3')),
            format!("{}  sha384.iso", h(96, '4')),
            format!("{}  sha512.iso", h(128, '5')),
            format!("{}  name with  spaces.iso", h(64, '6')),
            format!("{}  ./dot-slash.iso", h(64, '7')),
            format!("{}  windows.iso\r", h(64, '8')),
            // Escaped names: a backslash and a newline in the name.
            format!("\\{}  back\\\\slash\\nnewline.iso", h(64, '9')),
            // BSD tags, a name holding ") = " and an escaped one.
            format!("SHA256 (bsd.iso) = {}", h(64, 'c')),
            format!("BLAKE2b-256 (odd) = name.iso) = {}", h(64, 'd')),
            format!("MD5 (bsd-md5.iso) = {}", h(32, 'e')),
            format!("\\SHA1 (tab\\\\bsd.iso) = {}", h(40, 'f')),
            // None of these names anything.
            format!("{}  other/folder.iso", h(64, 'a')),
            format!("{}  /absolute.iso", h(64, 'a')),
            format!("{} single-space.iso", h(64, 'a')),
            format!("{}  short-hash.iso", h(63, 'a')),
            format!("{}  not-hex.iso", h(64, 'g')),
            format!("{}  ", h(64, 'a')),
            format!("{} *", h(64, 'a')),
            format!("\\{}  bad\\escape.iso", h(64, 'a')),
            "SHA256 (no-hash.iso) = ".into(),
            format!("SHA 256 (space-in-algo.iso) = {}", h(64, 'a')),
            format!("(no-algo.iso) = {}", h(64, 'a')),
            format!("SHA256 (dir/in-bsd.iso) = {}", h(64, 'a')),
            "Verify with sha256sum -c, e.g. 0123  prose.iso".into(),
            "-----BEGIN PGP SIGNATURE-----".into(),
            "iQIzBAEBCAAdFiEE".into(),
            "-----END PGP SIGNATURE-----".into(),
        ]
        .join("\n");
        let names: Vec<String> = names_in_sums(text.as_bytes())
            .into_iter()
            .map(|n| String::from_utf8(n).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "text-mode.iso",
                "binary-mode.iso",
                "md5.iso",
                "sha1.iso",
                "sha224.iso",
                "sha384.iso",
                "sha512.iso",
                "name with  spaces.iso",
                "dot-slash.iso",
                "windows.iso",
                "back\\slash\nnewline.iso",
                "bsd.iso",
                "odd) = name.iso",
                "bsd-md5.iso",
                "tab\\bsd.iso",
            ]
        );
        // Not UTF-8: bytes in, the same bytes out.
        let mut line = h(64, 'a').into_bytes();
        line.extend_from_slice(b"  caf\xe9.iso\n");
        assert_eq!(names_in_sums(&line), [b"caf\xe9.iso".to_vec()]);
        assert!(names_in_sums(b"").is_empty());
    }

    #[test]
    fn a_list_is_read_up_to_the_limit_in_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("SHA256SUMS");
        let line = |name: &str| format!("{}  {name}\n", h(64, 'a'));
        // 100 lines of 76 bytes; a limit of 200 bytes holds two whole lines.
        let text: String = (0..100).map(|i| line(&format!("f-{i:03}.iso"))).collect();
        assert_eq!(line("f-000.iso").len(), 76);
        fs::write(&path, &text).unwrap();
        let seen = fs::metadata(&path).unwrap();
        let read = read_list(&path, &seen, 200).unwrap();
        assert_eq!(read, text.as_bytes()[..152]);
        assert_eq!(
            names_in_sums(&read),
            [b"f-000.iso".to_vec(), b"f-001.iso".to_vec()]
        );
        // Exactly the limit: the whole file; one byte over: its last line goes.
        assert_eq!(
            read_list(&path, &seen, text.len()).unwrap(),
            text.as_bytes()
        );
        assert_eq!(
            read_list(&path, &seen, text.len() - 1).unwrap(),
            text.as_bytes()[..text.len() - 76]
        );
        // A FIFO is refused at once instead of blocking the render.
        let fifo = dir.path().join("MD5SUMS");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let fifo_seen = fs::symlink_metadata(&fifo).unwrap();
        assert_eq!(read_list(&fifo, &fifo_seen, SUMS_READ_LIMIT), None);
        // A link is not followed (the scan passes a link's checked target).
        let link = dir.path().join("SHA512SUMS");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(read_list(&link, &seen, SUMS_READ_LIMIT), None);
        assert_eq!(
            read_list(&dir.path().join("missing"), &seen, SUMS_READ_LIMIT),
            None
        );
        // Another file put in its place after the scan saw it is not read
        // (the old one is kept under another name, so its inode stays taken).
        fs::hard_link(&path, dir.path().join("kept")).unwrap();
        fs::write(dir.path().join("new"), line("f-000.iso")).unwrap();
        fs::rename(dir.path().join("new"), &path).unwrap();
        assert_eq!(read_list(&path, &seen, SUMS_READ_LIMIT), None);
        let now_seen = fs::metadata(&path).unwrap();
        assert_eq!(
            read_list(&path, &now_seen, SUMS_READ_LIMIT).unwrap(),
            line("f-000.iso").as_bytes()
        );
    }

    #[test]
    fn images_get_the_lists_that_name_them() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().join("rel");
        fs::create_dir(&r).unwrap();
        for n in ["a.iso", "b.iso", "c.iso", "d.iso", "e.iso"] {
            fs::write(r.join(n), "x").unwrap();
        }
        let line = |name: &str| format!("{}  {name}\n", h(64, 'a'));
        fs::write(r.join("SHA256SUMS"), line("a.iso") + &line("b.iso")).unwrap();
        fs::write(r.join("MD5SUMS"), format!("{} *a.iso\n", h(32, '0'))).unwrap();
        // A clear-signed .asc list is read; binary signatures never are.
        fs::write(
            r.join("SHA512SUMS.asc"),
            format!(
                "-----BEGIN PGP SIGNED MESSAGE-----\n\n{} *c.iso\n",
                h(128, 'f')
            ),
        )
        .unwrap();
        fs::write(r.join("SHA256SUMS.gpg"), line("d.iso")).unwrap();
        fs::write(r.join("SHA256SUMS.sig"), line("d.iso")).unwrap();
        // A list linked from elsewhere inside ROOT is read through its target.
        fs::create_dir(root.path().join("lists")).unwrap();
        fs::write(root.path().join("lists/all"), line("e.iso")).unwrap();
        std::os::unix::fs::symlink("../lists/all", r.join("e.sha256sum")).unwrap();
        // The page's own names, e.g. a list that names a file of another folder.
        fs::write(root.path().join("top.iso"), "x").unwrap();
        fs::write(root.path().join("B2SUMS"), line("rel/a.iso")).unwrap();
        let folders = scan(root.path(), &Classifier::new(&[".iso"]), no_settle())
            .unwrap()
            .folders;
        let lists = |f: &Folder| -> Vec<(String, Vec<String>)> {
            f.isos
                .iter()
                .map(|i| {
                    let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                    (s(&i.name), i.lists.iter().map(|l| s(l)).collect())
                })
                .collect()
        };
        assert_eq!(folders.len(), 2);
        assert_eq!(lists(&folders[0]), [("top.iso".into(), vec![])]);
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            lists(&folders[1]),
            [
                ("a.iso".into(), v(&["MD5SUMS", "SHA256SUMS"])),
                ("b.iso".into(), v(&["SHA256SUMS"])),
                ("c.iso".into(), v(&["SHA512SUMS.asc"])),
                ("d.iso".into(), v(&[])),
                ("e.iso".into(), v(&["e.sha256sum"])),
            ]
        );
        assert_eq!(
            folders[1].sums,
            [
                b"e.sha256sum".to_vec(),
                b"MD5SUMS".to_vec(),
                b"SHA256SUMS".to_vec(),
                b"SHA256SUMS.gpg".to_vec(),
                b"SHA256SUMS.sig".to_vec(),
                b"SHA512SUMS.asc".to_vec(),
            ]
        );
    }

    #[test]
    fn only_lists_that_name_an_image_cover_it() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().join("24.04");
        fs::create_dir(&r).unwrap();
        for n in [
            "lv-24.04-desktop.iso",
            "lv-24.04-server.iso",
            "lv-24.04-netinst.iso",
            "lv-24.04-live.iso",
            "lv-24.04-mini.iso",
            "lv-24.04-mini.iso.sha256",
            "lv-24.04-uncovered.iso",
        ] {
            fs::write(r.join(n), "x").unwrap();
        }
        let line = |name: &str| format!("{}  {name}\n", h(64, 'a'));
        // Linux Mint's name, covering one image.
        fs::write(r.join("sha256sum.txt"), line("lv-24.04-desktop.iso")).unwrap();
        // A digest file named after no image, holding a line per flavour, and
        // one that names only files of another folder or no file at all.
        fs::write(
            r.join("lv-24.04.sha256"),
            line("lv-24.04-server.iso") + &line("lv-24.04-netinst.iso"),
        )
        .unwrap();
        fs::write(
            r.join("SHA512SUMS"),
            format!("{}  ../22.04/lv-24.04-uncovered.iso\n", h(128, '1'))
                + &line("lv-22.04-uncovered.iso")
                + &line("LV-24.04-UNCOVERED.ISO"),
        )
        .unwrap();
        // An image's own sidecar names it and stays its "sha256" link only.
        fs::write(
            r.join("lv-24.04-mini.iso.sha256"),
            line("lv-24.04-mini.iso"),
        )
        .unwrap();
        // A huge list of garbage: a line for `live` inside the first MiB
        // counts, the one for `uncovered` beyond it does not.
        let mut junk: Vec<u8> = (0..3u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .filter(|&b| b != b'\n')
            .collect();
        junk.splice(
            1000..1000,
            format!("\n{}", line("lv-24.04-live.iso")).bytes(),
        );
        junk.extend_from_slice(format!("\n{}", line("lv-24.04-uncovered.iso")).as_bytes());
        fs::write(r.join("MD5SUMS"), &junk).unwrap();
        let folders = scan(root.path(), &Classifier::new(&[".iso"]), no_settle())
            .unwrap()
            .folders;
        assert_eq!(folders.len(), 1);
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let got: Vec<(String, Vec<String>, Vec<String>)> = folders[0]
            .isos
            .iter()
            .map(|i| {
                (
                    s(&i.name),
                    i.sidecars.iter().map(|(_, n)| s(n)).collect(),
                    i.lists.iter().map(|l| s(l)).collect(),
                )
            })
            .collect();
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            [
                ("lv-24.04-desktop.iso".into(), v(&[]), v(&["sha256sum.txt"])),
                ("lv-24.04-live.iso".into(), v(&[]), v(&["MD5SUMS"])),
                (
                    "lv-24.04-mini.iso".into(),
                    v(&["lv-24.04-mini.iso.sha256"]),
                    v(&[])
                ),
                (
                    "lv-24.04-netinst.iso".into(),
                    v(&[]),
                    v(&["lv-24.04.sha256"])
                ),
                (
                    "lv-24.04-server.iso".into(),
                    v(&[]),
                    v(&["lv-24.04.sha256"])
                ),
                ("lv-24.04-uncovered.iso".into(), v(&[]), v(&[])),
            ]
        );
        // The folder-level lists are the ones named as lists, natural order.
        assert_eq!(
            folders[0].sums,
            [
                b"MD5SUMS".to_vec(),
                b"sha256sum.txt".to_vec(),
                b"SHA512SUMS".to_vec()
            ]
        );
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
        assert_eq!(names, [&b"caf\xe9.iso"[..], b"x.iso"]);
        assert_eq!(
            f.isos[1].sidecars,
            [
                ("sha256", b"x.sha256".to_vec()),
                ("torrent", b"x.torrent".to_vec())
            ]
        );
        assert_eq!(f.isos[0].sidecars, [("sig", b"caf\xe9.iso.sig".to_vec())]);
        assert_eq!(f.isos[0].rel, b"r/caf\xe9.iso");
    }
}
