//! Follows a log file that another program appends to, across logrotate's
//! `create` (rename, then a new file) and `copytruncate` (copy, then
//! truncate in place), and resumes from a saved position after a restart.
//!
//! Invariants:
//! - Only whole lines are delivered, through the one [`LineSplitter`] per
//!   open file (so its `MAX_LINE` holds here too), and a position
//!   ([`FilePosition`]) always points just past a newline: saving it with
//!   the counts of the lines before it resumes exactly there.
//! - A renamed-away file is read to its end, and kept open and read for
//!   [`ROTATED_GRACE`] after it last grew: a server writes to its old file
//!   until it reopens its log (nginx on `USR1`, Apache on a graceful
//!   restart), and those lines are not lost.
//! - A file is recognised by device, inode *and* a fingerprint of its first
//!   bytes: an inode alone is reused, and a file truncated and written again
//!   keeps its inode. A fingerprint needs [`FINGERPRINT_MIN`] bytes; a file
//!   shorter than that is read again from its start (re-reading is harmless:
//!   the line identity counts nothing twice; the position only makes it rare).
//!
//! - A truncation is noticed by the size *or* the first bytes (a file
//!   truncated and grown past the old offset before the next look), and the
//!   lines not read yet up to logrotate's copy are read from that copy (a
//!   sibling whose first bytes are the ones read, as `access.log.1` is with
//!   `delaycompress`).
//! - [`Follower::positions`] (every open file's position, rotated ones
//!   included) is given after every chunk of lines by
//!   [`Follower::poll_marked`]; saved with the counts of the lines given so
//!   far, [`Follower::start_at`] resumes every one of those files exactly.
//!
//! What cannot be helped: with `copytruncate`, lines the server wrote after
//! logrotate's copy and before its truncate, and that this follower had not
//! read yet, are in neither the copy (`access.log.1`) nor the truncated file
//! it reads; so are the unread lines when the copy is compressed at once
//! (no `delaycompress`) — `import` the rotated copy to recover them (it is
//! idempotent), or prefer `create`, which loses nothing.

use crate::tally::{LineSplitter, Piece};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a renamed-away file is still read after it last grew.
pub const ROTATED_GRACE: Duration = Duration::from_secs(30);
/// Bytes of a file's start that identify it (fewer if the file is shorter).
pub const FINGERPRINT_LEN: usize = 1024;
/// A fingerprint of fewer bytes than this identifies nothing.
pub const FINGERPRINT_MIN: usize = 64;

/// Where a follower stands in a file: saved with the counts it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePosition {
    pub dev: u64,
    pub ino: u64,
    /// Just past the last newline delivered.
    pub offset: u64,
    /// BLAKE3 of the file's first `fingerprint_len` bytes.
    pub fingerprint: [u8; 32],
    pub fingerprint_len: u32,
}

/// Something worth a line in the log of the follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Resumed at the saved position.
    Resumed { offset: u64 },
    /// The saved file had been rotated: its rest is read from its new name.
    ResumedRotated { name: PathBuf, offset: u64 },
    /// No saved position fits the file (new, truncated, replaced, or too
    /// short to identify): read from its start.
    FromStart,
    /// The path now names a new file (logrotate `create`).
    Rotated,
    /// The file was truncated under us (logrotate `copytruncate`): read
    /// from its start; what was not read yet is read from logrotate's copy
    /// when one is found (`copy`).
    Truncated {
        read_up_to: u64,
        copy: Option<PathBuf>,
    },
    /// A renamed-away file stopped growing and was closed.
    ClosedRotated { lines: u64 },
}

struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes read so far.
    read: u64,
    /// Just past the last newline read (and delivered).
    line_end: u64,
    splitter: LineSplitter,
    last_growth: Instant,
    /// Fingerprint of the file's first bytes as last taken (fixed once they
    /// are [`FINGERPRINT_LEN`] long: they cannot change after, unless truncated).
    head: Option<([u8; 32], u32)>,
}

impl OpenFile {
    fn open(path: &Path, offset: u64) -> std::io::Result<OpenFile> {
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(OpenFile {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            read: offset,
            line_end: offset,
            splitter: LineSplitter::new(),
            last_growth: Instant::now(),
            head: None,
        })
    }

    /// Reads one chunk; every complete line in it goes to `sink`, and then
    /// `line_end` is just past the last of them. False at the end of the file.
    fn read_chunk(
        &mut self,
        buf: &mut [u8],
        sink: &mut dyn FnMut(Piece<'_>),
    ) -> std::io::Result<bool> {
        let n = loop {
            match self.file.read(buf) {
                Ok(0) => return Ok(false),
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.last_growth = Instant::now();
        let chunk = &buf[..n];
        self.splitter.feed(chunk, &mut *sink);
        if let Some(nl) = memchr::memrchr(b'\n', chunk) {
            self.line_end = self.read + nl as u64 + 1;
        }
        self.read += n as u64;
        Ok(true)
    }

    /// The fingerprint of the first bytes (cached once they are complete),
    /// read through the open descriptor: a rename cannot mix two files.
    fn head(&mut self) -> std::io::Result<([u8; 32], u32)> {
        if let Some(h) = self.head.filter(|h| h.1 as usize == FINGERPRINT_LEN) {
            return Ok(h);
        }
        let h = fingerprint(&self.file, FINGERPRINT_LEN)?;
        self.head = Some(h);
        Ok(h)
    }

    fn position(&mut self) -> Option<FilePosition> {
        let (fingerprint, fingerprint_len) = self.head().ok()?;
        Some(FilePosition {
            dev: self.dev,
            ino: self.ino,
            offset: self.line_end,
            fingerprint,
            fingerprint_len,
        })
    }

    /// Whether the file was truncated under us (copytruncate): shorter than
    /// what was read, or its first bytes are not the ones read (it was
    /// truncated and has grown again since).
    fn truncated(&mut self) -> std::io::Result<bool> {
        let size = self.file.metadata()?.len();
        if size < self.read {
            return Ok(true);
        }
        match self.head {
            Some((fp, n)) => Ok(fingerprint(&self.file, n as usize)? != (fp, n)),
            None => Ok(false),
        }
    }
}

/// Follows one path (see the module header).
pub struct Follower {
    path: PathBuf,
    current: Option<OpenFile>,
    /// Renamed-away files (and a copytruncate copy) still read until their
    /// grace runs out, oldest first.
    rotated: Vec<OpenFile>,
    buf: Vec<u8>,
}

impl Follower {
    /// Starts following `path`, from `saved` when it still fits.
    pub fn start(path: &Path, saved: Option<&FilePosition>) -> (Follower, Vec<Note>) {
        Follower::start_at(path, saved.map(std::slice::from_ref).unwrap_or_default())
    }

    /// Starts following `path` from a checkpoint of several files (see
    /// [`Follower::positions`]): each saved file still at the path, or under
    /// a rotated name, is read on from its offset; the file at the path, if
    /// none of them, from its start.
    pub fn start_at(path: &Path, saved: &[FilePosition]) -> (Follower, Vec<Note>) {
        let mut f = Follower {
            path: path.to_owned(),
            current: None,
            rotated: Vec::new(),
            buf: vec![0; 256 * 1024],
        };
        let mut notes = Vec::new();
        let mut lost = false;
        for pos in saved {
            if f.current.is_none() && is_saved_file(path, pos) {
                if let Ok(open) = OpenFile::open(path, pos.offset) {
                    notes.push(Note::Resumed { offset: pos.offset });
                    f.current = Some(open);
                    continue;
                }
            }
            // Rotated while we were away? Its rest is under a sibling name
            // (renamed: the same file; copytruncate: a copy of its start).
            let sibling = rotated_sibling(path, pos).or_else(|| {
                (pos.fingerprint_len as usize >= FINGERPRINT_MIN)
                    .then(|| copy_sibling(path, pos.fingerprint, pos.fingerprint_len, pos.offset))
                    .flatten()
            });
            match sibling.map(|name| (OpenFile::open(&name, pos.offset), name)) {
                Some((Ok(open), name)) => {
                    notes.push(Note::ResumedRotated {
                        name,
                        offset: pos.offset,
                    });
                    f.rotated.push(open);
                }
                _ => lost = true,
            }
        }
        if f.current.is_none() {
            if let Ok(open) = OpenFile::open(path, 0) {
                if lost
                    && !notes
                        .iter()
                        .any(|n| matches!(n, Note::ResumedRotated { .. }))
                {
                    notes.push(Note::FromStart);
                }
                f.current = Some(open);
            }
        }
        (f, notes)
    }

    /// Reads everything new: rotated files first (older lines), then the
    /// current file; notices rotation and truncation. `sink` gets every
    /// complete line.
    pub fn poll(&mut self, sink: &mut dyn FnMut(Piece<'_>)) -> std::io::Result<Vec<Note>> {
        self.poll_marked(sink, &mut |_| {})
    }

    /// [`Follower::poll`], and after every chunk read (and at the end) the
    /// positions of the open files ([`Follower::positions`]) to `mark`: at
    /// that moment they cover exactly the lines given to `sink` so far.
    pub fn poll_marked(
        &mut self,
        sink: &mut dyn FnMut(Piece<'_>),
        mark: &mut dyn FnMut(Vec<FilePosition>),
    ) -> std::io::Result<Vec<Note>> {
        let mut notes = Vec::new();
        let now = Instant::now();
        let mut i = 0;
        while i < self.rotated.len() {
            while self.rotated[i].read_chunk(&mut self.buf, sink)? {
                mark(self.positions());
            }
            let old = &mut self.rotated[i];
            if now.duration_since(old.last_growth) >= ROTATED_GRACE {
                // A last line without a newline is a line: the writer is gone.
                old.splitter.finish(&mut *sink);
                notes.push(Note::ClosedRotated {
                    lines: old.splitter.line_no(),
                });
                self.rotated.remove(i);
                mark(self.positions());
            } else {
                i += 1;
            }
        }
        let truncated = match self.current.as_mut() {
            Some(cur) => cur.truncated()?,
            None => false,
        };
        if truncated {
            let cur = self.current.take().expect("checked above");
            // The lines not read yet, up to logrotate's copy, are in the
            // copy (`access.log.1`, with delaycompress): read on there.
            let copy = cur
                .head
                .filter(|h| h.1 as usize >= FINGERPRINT_MIN)
                .and_then(|(fp, n)| {
                    copy_sibling(&self.path, fp, n, cur.line_end).and_then(|name| {
                        OpenFile::open(&name, cur.line_end).ok().map(|o| (name, o))
                    })
                });
            notes.push(Note::Truncated {
                read_up_to: cur.read,
                copy: copy.as_ref().map(|(name, _)| name.clone()),
            });
            if let Some((_, open)) = copy {
                self.rotated.push(open);
                let last = self.rotated.len() - 1;
                while self.rotated[last].read_chunk(&mut self.buf, sink)? {
                    mark(self.positions());
                }
            }
            // The same inode, truncated: a partial line before the
            // truncation can never complete.
            self.current = OpenFile::open(&self.path, 0).ok();
            mark(self.positions());
        }
        if self.current.is_some() {
            while self
                .current
                .as_mut()
                .expect("checked")
                .read_chunk(&mut self.buf, sink)?
            {
                mark(self.positions());
            }
        }
        match std::fs::metadata(&self.path) {
            Ok(meta) => {
                let moved = self
                    .current
                    .as_ref()
                    .is_none_or(|c| c.dev != meta.dev() || c.ino != meta.ino());
                if moved {
                    if let Some(old) = self.current.take() {
                        notes.push(Note::Rotated);
                        self.rotated.push(old);
                    }
                    if let Ok(open) = OpenFile::open(&self.path, 0) {
                        self.current = Some(open);
                        mark(self.positions());
                        while self
                            .current
                            .as_mut()
                            .expect("just set")
                            .read_chunk(&mut self.buf, sink)?
                        {
                            mark(self.positions());
                        }
                    }
                }
            }
            // Renamed away and not created yet: keep reading the old one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        mark(self.positions());
        Ok(notes)
    }

    /// Whether a renamed-away file is still being read.
    pub fn reading_rotated(&self) -> bool {
        !self.rotated.is_empty()
    }

    /// The position to save with the counts of every line delivered so far
    /// from the current file (`None` before the file exists).
    pub fn position(&mut self) -> Option<FilePosition> {
        self.current.as_mut()?.position()
    }

    /// The positions of every open file, rotated ones first: saved with the
    /// counts of every line delivered so far, they let [`Follower::start_at`]
    /// resume each exactly (a file whose first bytes cannot be read is left out).
    pub fn positions(&mut self) -> Vec<FilePosition> {
        self.rotated
            .iter_mut()
            .chain(self.current.as_mut())
            .filter_map(OpenFile::position)
            .collect()
    }
}

/// A sibling of `path` (`access.log.1`, …) whose first `n` bytes have the
/// fingerprint `fp` and that holds at least `len` bytes: logrotate's copy of
/// the file it then truncated.
fn copy_sibling(path: &Path, fp: [u8; 32], n: u32, len: u64) -> Option<PathBuf> {
    siblings(path)?.into_iter().find(|p| {
        File::open(p).is_ok_and(|f| {
            f.metadata().is_ok_and(|m| m.is_file() && m.len() >= len)
                && fingerprint(&f, n as usize).is_ok_and(|h| h == (fp, n))
        })
    })
}

/// The other files in `path`'s directory whose names start with its name.
fn siblings(path: &Path) -> Option<Vec<PathBuf>> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = path.file_name()?.to_str()?;
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n != stem && n.starts_with(stem))
        })
        .collect();
    v.sort();
    Some(v)
}

/// BLAKE3 of a file's first `len` bytes (fewer if it is shorter), and how many.
fn fingerprint(file: &File, len: usize) -> std::io::Result<([u8; 32], u32)> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; len];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok((*blake3::hash(&head[..n]).as_bytes(), n as u32))
}

/// Whether the file at `path` is the saved one, unchanged before the saved
/// offset: same device and inode, long enough, same first bytes.
fn is_saved_file(path: &Path, pos: &FilePosition) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    meta.dev() == pos.dev
        && meta.ino() == pos.ino
        && meta.len() >= pos.offset
        && pos.fingerprint_len as usize >= FINGERPRINT_MIN
        && fingerprint(&file, pos.fingerprint_len as usize)
            .is_ok_and(|(fp, n)| n == pos.fingerprint_len && fp == pos.fingerprint)
}

/// The rotated name (`access.log.1`, `access.log-20261203`, …) that now holds
/// the saved file.
fn rotated_sibling(path: &Path, pos: &FilePosition) -> Option<PathBuf> {
    siblings(path)?.into_iter().find(|p| is_saved_file(p, pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Lines delivered by one poll.
    fn poll(f: &mut Follower) -> (Vec<String>, Vec<Note>) {
        let mut lines = Vec::new();
        let notes = f
            .poll(&mut |p| match p {
                Piece::Line(l, _) => lines.push(String::from_utf8_lossy(l).into_owned()),
                Piece::TooLong(_) => lines.push("<too long>".into()),
            })
            .unwrap();
        (lines, notes)
    }

    /// A line long enough that two of them make a fingerprint.
    fn line(n: u32) -> String {
        format!("{n:04} the quick brown fox jumps over the lazy dog\n")
    }

    #[test]
    fn only_whole_lines_and_the_position_after_the_last_newline() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &(line(1) + &line(2)[..10]));
        let (mut f, notes) = Follower::start(&log, None);
        assert!(notes.is_empty());
        assert_eq!(poll(&mut f).0, [line(1).trim_end()]);
        assert_eq!(f.position().unwrap().offset, line(1).len() as u64);
        append(&log, &line(2)[10..]);
        assert_eq!(poll(&mut f).0, [line(2).trim_end()]);
        assert_eq!(f.position().unwrap().offset, 2 * line(1).len() as u64);
    }

    #[test]
    fn create_rotation_reads_the_old_file_to_its_end_and_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &line(1));
        let (mut f, _) = Follower::start(&log, None);
        assert_eq!(poll(&mut f).0.len(), 1);
        // logrotate renames; the server still writes to its old file…
        std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
        append(&dir.path().join("access.log.1"), &line(2));
        let (lines, notes) = poll(&mut f);
        assert_eq!(lines, [line(2).trim_end()]);
        assert!(notes.is_empty(), "{notes:?}");
        // …then logrotate creates the new file and the server reopens.
        append(&log, &line(3));
        let (lines, notes) = poll(&mut f);
        assert_eq!(lines, [line(3).trim_end()]);
        assert_eq!(notes, [Note::Rotated]);
        // A late line in the old file is still read (within the grace).
        append(&dir.path().join("access.log.1"), &line(4));
        append(&log, &line(5));
        assert_eq!(poll(&mut f).0, [line(4).trim_end(), line(5).trim_end()]);
        assert!(f.reading_rotated());
    }

    #[test]
    fn copytruncate_starts_over_in_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &(line(1) + &line(2)));
        let (mut f, _) = Follower::start(&log, None);
        assert_eq!(poll(&mut f).0.len(), 2);
        std::fs::copy(&log, dir.path().join("access.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&log, &line(3));
        let (lines, notes) = poll(&mut f);
        assert_eq!(lines, [line(3).trim_end()]);
        assert_eq!(
            notes,
            [Note::Truncated {
                read_up_to: 2 * line(1).len() as u64,
                copy: Some(dir.path().join("access.log.1")),
            }]
        );
    }

    #[test]
    fn a_restart_resumes_at_the_saved_position() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &(line(1) + &line(2)));
        let (mut f, _) = Follower::start(&log, None);
        poll(&mut f);
        let saved = f.position().unwrap();
        drop(f);
        append(&log, &line(3));
        let (mut f, notes) = Follower::start(&log, Some(&saved));
        assert_eq!(
            notes,
            [Note::Resumed {
                offset: saved.offset
            }]
        );
        assert_eq!(poll(&mut f).0, [line(3).trim_end()]);
    }

    #[test]
    fn a_restart_after_a_rotation_reads_the_rest_under_the_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &(line(1) + &line(2)));
        let (mut f, _) = Follower::start(&log, None);
        poll(&mut f);
        let saved = f.position().unwrap();
        drop(f);
        append(&log, &line(3));
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&log, &rotated).unwrap();
        append(&log, &line(4));
        let (mut f, notes) = Follower::start(&log, Some(&saved));
        assert_eq!(
            notes,
            [Note::ResumedRotated {
                name: rotated,
                offset: saved.offset
            }]
        );
        assert_eq!(poll(&mut f).0, [line(3).trim_end(), line(4).trim_end()]);
    }

    #[test]
    fn a_file_truncated_or_replaced_while_away_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &(line(1) + &line(2)));
        let (mut f, _) = Follower::start(&log, None);
        poll(&mut f);
        let saved = f.position().unwrap();
        drop(f);
        // Truncated and written again: same inode, different start.
        std::fs::write(&log, line(7) + &line(8) + &line(9)).unwrap();
        let (mut f, notes) = Follower::start(&log, Some(&saved));
        assert_eq!(notes, [Note::FromStart]);
        assert_eq!(poll(&mut f).0.len(), 3);
        // Too short to be recognised: read from the start too.
        std::fs::write(&log, "short\n").unwrap();
        let (_, _) = Follower::start(&log, None);
        let (mut f2, _) = Follower::start(&log, None);
        poll(&mut f2);
        let short = f2.position().unwrap();
        assert_eq!(short.fingerprint_len, 6);
        let (_, notes) = Follower::start(&log, Some(&short));
        assert_eq!(notes, [Note::FromStart]);
    }

    fn lines(from: u32, to: u32) -> String {
        (from..to).map(line).collect()
    }

    fn truncate(path: &Path) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    #[test]
    fn copytruncate_reads_the_unread_rest_from_the_copy_even_after_the_file_grew_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &lines(0, 40));
        let (mut f, _) = Follower::start(&log, None);
        assert_eq!(poll(&mut f).0.len(), 40);
        f.position().unwrap();
        // Written before logrotate's copy, not read yet: in the copy.
        append(&log, &lines(40, 42));
        std::fs::copy(&log, dir.path().join("access.log.1")).unwrap();
        // Written between the copy and the truncation: in neither, lost.
        append(&log, &line(42));
        truncate(&log);
        // The file grows past the old offset before the next look.
        append(&log, &lines(100, 200));
        let (got, notes) = poll(&mut f);
        let want: Vec<String> = (40..42)
            .chain(100..200)
            .map(|n| line(n).trim_end().to_string())
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            notes,
            [Note::Truncated {
                read_up_to: 40 * line(0).len() as u64,
                copy: Some(dir.path().join("access.log.1")),
            }]
        );
    }

    #[test]
    fn positions_of_a_rotated_and_a_current_file_resume_both_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        let old = dir.path().join("access.log.1");
        append(&log, &lines(0, 30));
        let (mut f, _) = Follower::start(&log, None);
        poll(&mut f);
        std::fs::rename(&log, &old).unwrap();
        append(&log, &lines(30, 60));
        assert_eq!(poll(&mut f).0.len(), 30);
        assert!(f.reading_rotated());
        let saved = f.positions();
        assert_eq!(saved.len(), 2);
        drop(f);
        append(&old, &line(60));
        append(&log, &line(61));
        let (mut f, notes) = Follower::start_at(&log, &saved);
        assert_eq!(
            notes,
            [
                Note::ResumedRotated {
                    name: old.clone(),
                    offset: 30 * line(0).len() as u64
                },
                Note::Resumed {
                    offset: 30 * line(0).len() as u64
                }
            ]
        );
        assert_eq!(poll(&mut f).0, [line(60).trim_end(), line(61).trim_end()]);
    }

    #[test]
    fn every_mark_covers_exactly_the_lines_given_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        // About 1.5 MiB: several chunks.
        append(&log, &lines(0, 30_000));
        let (mut f, _) = Follower::start(&log, None);
        let given = std::cell::Cell::new(0u64);
        let marks = std::cell::RefCell::new(Vec::new());
        f.poll_marked(
            &mut |p| {
                if let Piece::Line(l, _) = p {
                    given.set(given.get() + l.len() as u64 + 1);
                }
            },
            &mut |pos| marks.borrow_mut().push((given.get(), pos[0].offset)),
        )
        .unwrap();
        let marks = marks.into_inner();
        assert!(marks.len() > 5, "{} marks", marks.len());
        for (given, offset) in &marks {
            assert_eq!(given, offset);
        }
        assert_eq!(
            marks.last().unwrap().1,
            std::fs::metadata(&log).unwrap().len()
        );
    }

    #[test]
    fn a_copytruncate_while_stopped_resumes_in_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        append(&log, &lines(0, 30));
        let (mut f, _) = Follower::start(&log, None);
        poll(&mut f);
        let saved = f.positions();
        drop(f);
        append(&log, &lines(30, 32));
        std::fs::copy(&log, dir.path().join("access.log.1")).unwrap();
        truncate(&log);
        append(&log, &lines(100, 140));
        let (mut f, notes) = Follower::start_at(&log, &saved);
        assert_eq!(
            notes,
            [Note::ResumedRotated {
                name: dir.path().join("access.log.1"),
                offset: 30 * line(0).len() as u64
            }]
        );
        let want: Vec<String> = (30..32)
            .chain(100..140)
            .map(|n| line(n).trim_end().to_string())
            .collect();
        assert_eq!(poll(&mut f).0, want);
    }
}
