//! Which bytes of a file one download received: the union of the byte
//! ranges its lines sent, and whether that covers the whole file.
//!
//! Invariant: a download's coverage is a set union — commutative,
//! associative and idempotent — so it is the same whatever the order of its
//! lines or sources, and reading a line twice (pipe and import, a re-import)
//! changes nothing. A `200` covers `[0, bytes)`; a `206` covers
//! `[start, start + bytes)` where `start` comes from the logged
//! `Content-Range` (`bytes 1000-1999/5000`); a `HEAD` covers nothing. The
//! logged bytes may include headers (`%O`, nginx's `$bytes_sent`), so a
//! range can reach a little past what was really sent: completion is a
//! statement about what the server sent, never more exact than its log.

use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What one counted line tells of the bytes its download received: fixed
/// per line (so the same line read twice tells the same), made by the
/// reader and kept by the outage queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCover {
    /// The range it sent ([`line_range`]), when its format logged
    /// `Content-Range`.
    pub range: Option<(u64, u64)>,
    /// Its bytes count towards the download without a place: the format
    /// did not log `Content-Range` and the line is a `GET` 200 or 206.
    pub unplaced: bool,
    /// The size of the file under ROOT its URL path names; `None`: unknown.
    pub size: Option<u64>,
}

impl LineCover {
    /// The cover of a line: `content_range` is `None` when its format did
    /// not log one (or the line ended before it).
    pub fn of(
        head: bool,
        status: u16,
        bytes: u64,
        content_range: Option<&[u8]>,
        size: Option<u64>,
    ) -> LineCover {
        match content_range {
            Some(cr) => LineCover {
                range: line_range(head, status, bytes, cr),
                unplaced: false,
                size,
            },
            None => LineCover {
                range: None,
                unplaced: !head && matches!(status, 200 | 206),
                size,
            },
        }
    }
}

/// How long a looked-up size serves before the file is asked again: a file
/// replaced under ROOT is seen within this, and a busy log asks the file
/// system once per path and interval, not once per line.
pub const SIZE_TTL: Duration = Duration::from_secs(10);

/// Sizes of the files under ROOT by URL path, as the public page's scan
/// sees them (`render::scan`): a regular file, no hidden component (`.name`),
/// and its canonical path inside the canonical ROOT (so a symlink out of
/// ROOT, or `..`, names no file). Anything else has no known size.
#[derive(Debug, Clone, Default)]
pub struct FileSizes {
    root: Option<PathBuf>,
    cache: FxHashMap<Vec<u8>, Option<u64>>,
    filled: Option<Instant>,
}

impl FileSizes {
    /// Sizes under `root`; without one every size is unknown.
    pub fn new(root: Option<PathBuf>) -> FileSizes {
        let root = root.map(|r| std::fs::canonicalize(&r).unwrap_or(r));
        FileSizes {
            root,
            ..FileSizes::default()
        }
    }

    /// Forgets sizes older than [`SIZE_TTL`] (called once per batch).
    pub fn refresh(&mut self) {
        if self.filled.is_some_and(|t| t.elapsed() >= SIZE_TTL) {
            self.cache.clear();
            self.filled = None;
        }
    }

    /// The size of the file the normalised URL path `url_path` names.
    pub fn size(&mut self, url_path: &[u8]) -> Option<u64> {
        let root = self.root.as_ref()?;
        if let Some(&s) = self.cache.get(url_path) {
            return s;
        }
        let s = size_under(root, url_path);
        self.filled.get_or_insert_with(Instant::now);
        self.cache.insert(url_path.to_vec(), s);
        s
    }
}

fn size_under(canon_root: &Path, url_path: &[u8]) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let rel = url_path.strip_prefix(b"/").unwrap_or(url_path);
    let hidden_or_odd = rel
        .split(|&b| b == b'/')
        .any(|c| c.is_empty() || c.starts_with(b"."));
    if rel.is_empty() || hidden_or_odd || rel.contains(&0) {
        return None;
    }
    let path = canon_root.join(std::ffi::OsStr::from_bytes(rel));
    let canon = std::fs::canonicalize(&path).ok()?;
    if !canon.starts_with(canon_root) {
        return None;
    }
    let meta = std::fs::metadata(&canon).ok()?;
    // An empty file is no download: its size tells nothing.
    (meta.is_file() && meta.len() > 0).then_some(meta.len())
}

/// Disjoint, sorted, non-adjacent half-open byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByteRanges {
    ranges: Vec<(u64, u64)>,
}

impl ByteRanges {
    pub fn new() -> ByteRanges {
        ByteRanges::default()
    }

    /// Adds `[start, end)`, merging with whatever it touches.
    pub fn add(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // First range that ends at or after `start` (touching counts).
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let mut last = first;
        let (mut s, mut e) = (start, end);
        while let Some(&(rs, re)) = self.ranges.get(last) {
            if rs > e {
                break;
            }
            s = s.min(rs);
            e = e.max(re);
            last += 1;
        }
        self.ranges.splice(first..last, [(s, e)]);
    }

    /// Adds every range of `other`.
    pub fn union(&mut self, other: &ByteRanges) {
        for &(s, e) in &other.ranges {
            self.add(s, e);
        }
    }

    /// Bytes of `[0, size)` covered.
    pub fn covered(&self, size: u64) -> u64 {
        self.ranges
            .iter()
            .map(|&(s, e)| e.min(size).saturating_sub(s.min(size)))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Compact form for storage: each range as two little-endian u64.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.ranges.len() * 16);
        for &(s, e) in &self.ranges {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&e.to_le_bytes());
        }
        out
    }

    /// Reads [`ByteRanges::to_bytes`]'s form; `None` if it is not one.
    pub fn from_bytes(b: &[u8]) -> Option<ByteRanges> {
        if !b.len().is_multiple_of(16) {
            return None;
        }
        let mut r = ByteRanges::new();
        for chunk in b.chunks_exact(16) {
            let s = u64::from_le_bytes(chunk[..8].try_into().ok()?);
            let e = u64::from_le_bytes(chunk[8..].try_into().ok()?);
            r.add(s, e);
        }
        Some(r)
    }
}

/// The range one line covers, from its method, status, logged bytes and
/// `Content-Range` value (`-` or empty when not logged): `None` when it
/// covers nothing or cannot be placed (a 206 without a readable range).
pub fn line_range(head: bool, status: u16, bytes: u64, content_range: &[u8]) -> Option<(u64, u64)> {
    if head || bytes == 0 {
        return None;
    }
    let start = match status {
        200 => 0,
        206 => content_range_start(content_range)?,
        _ => return None,
    };
    Some((start, start.saturating_add(bytes)))
}

/// `bytes 1000-1999/5000` (or `bytes 1000-1999/*`) → 1000.
pub fn content_range_start(v: &[u8]) -> Option<u64> {
    let rest = v.strip_prefix(b"bytes ")?;
    let dash = memchr::memchr(b'-', rest)?;
    let digits = &rest[..dash];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether a download got the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Completion {
    Complete,
    Incomplete,
    /// The file's size is not known (not under ROOT), or the day was counted
    /// before dlcount kept these facts.
    Unknown,
}

/// The completion of a download of a file of `size` bytes (if known) whose
/// lines covered `ranges` (when the format logs `Content-Range`) or, without
/// ranges, sent `bytes` together (capped at the size).
pub fn completion(size: Option<u64>, ranges: Option<&ByteRanges>, bytes: u64) -> Completion {
    let Some(size) = size else {
        return Completion::Unknown;
    };
    let covered = match ranges {
        Some(r) => r.covered(size),
        None => bytes.min(size),
    };
    if covered >= size {
        Completion::Complete
    } else {
        Completion::Incomplete
    }
}

/// Whether a download of a file of `size` bytes is complete: the bytes of
/// `[0, size)` its `ranges` cover, or its `unplaced` bytes (lines that
/// logged no `Content-Range`) capped at the size, whichever is more, reach
/// the size.
pub fn is_complete(size: u64, ranges: &ByteRanges, unplaced: u64) -> bool {
    ranges.covered(size).max(unplaced.min(size)) >= size
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[(u64, u64)]) -> ByteRanges {
        let mut r = ByteRanges::new();
        for &(s, e) in list {
            r.add(s, e);
        }
        r
    }

    #[test]
    fn union_merges_overlapping_and_touching_ranges() {
        let r = ranges(&[(10, 20), (30, 40), (20, 25), (5, 12), (50, 60), (24, 31)]);
        assert_eq!(r.ranges, vec![(5, 40), (50, 60)]);
        assert_eq!(r.covered(1000), 45);
        assert_eq!(r.covered(55), 40);
        assert_eq!(r.covered(3), 0);
        let mut all = ranges(&[(0, 5)]);
        all.union(&r);
        assert_eq!(all.ranges, vec![(0, 40), (50, 60)]);
    }

    /// The same lines in every order give the same coverage.
    #[test]
    fn coverage_does_not_depend_on_the_order_of_lines() {
        let lines = [
            (0u64, 400u64),
            (300, 700),
            (900, 1000),
            (700, 800),
            (0, 100),
        ];
        let want = ranges(&lines);
        let mut order: Vec<usize> = (0..lines.len()).collect();
        // All 120 permutations (Heap's algorithm).
        fn permute(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            if k == 1 {
                out.push(a.clone());
                return;
            }
            for i in 0..k {
                permute(k - 1, a, out);
                let j = if k.is_multiple_of(2) { i } else { 0 };
                a.swap(j, k - 1);
            }
        }
        let mut all = Vec::new();
        permute(order.len(), &mut order, &mut all);
        assert_eq!(all.len(), 120);
        for p in all {
            let got = ranges(&p.iter().map(|&i| lines[i]).collect::<Vec<_>>());
            assert_eq!(got, want, "{p:?}");
        }
        assert_eq!(want.covered(1000), 900);
    }

    #[test]
    fn lines_place_their_ranges() {
        assert_eq!(line_range(false, 200, 1000, b"-"), Some((0, 1000)));
        assert_eq!(
            line_range(false, 206, 500, b"bytes 1000-1499/5000"),
            Some((1000, 1500))
        );
        assert_eq!(
            line_range(false, 206, 500, b"bytes 1000-1499/*"),
            Some((1000, 1500))
        );
        assert_eq!(line_range(true, 200, 310, b"-"), None);
        assert_eq!(line_range(false, 206, 500, b"-"), None);
        assert_eq!(line_range(false, 206, 500, b"bytes */5000"), None);
        assert_eq!(line_range(false, 200, 0, b"-"), None);
        // Absurd starts never wrap: too long to read, or saturating.
        assert_eq!(
            line_range(false, 206, 10, b"bytes 18446744073709551615-1/2"),
            None
        );
        assert_eq!(
            line_range(false, 206, u64::MAX, b"bytes 9999999999999999999-1/2"),
            Some((9_999_999_999_999_999_999, u64::MAX))
        );
    }

    /// The cases: a segmented download tiling the file, an
    /// overlapping one covering 60 %, HEAD only, aborted, resumed the same day.
    #[test]
    fn completion_of_the_usual_shapes() {
        let size = Some(1000);
        let tiling = ranges(&[(0, 250), (250, 500), (500, 750), (750, 1000)]);
        assert_eq!(completion(size, Some(&tiling), 0), Completion::Complete);
        let sixty = ranges(&[(0, 400), (200, 600)]);
        assert_eq!(sixty.covered(1000), 600);
        assert_eq!(completion(size, Some(&sixty), 800), Completion::Incomplete);
        assert_eq!(
            completion(size, Some(&ByteRanges::new()), 0),
            Completion::Incomplete
        );
        let aborted = ranges(&[(0, 300)]);
        assert_eq!(
            completion(size, Some(&aborted), 300),
            Completion::Incomplete
        );
        let resumed = ranges(&[(0, 300), (300, 1000)]);
        assert_eq!(completion(size, Some(&resumed), 1000), Completion::Complete);
        // Without Content-Range: the bytes logged, capped at the size.
        assert_eq!(completion(size, None, 999), Completion::Incomplete);
        assert_eq!(completion(size, None, 1300), Completion::Complete);
        // A file not under ROOT: unknown, never guessed.
        assert_eq!(completion(None, Some(&tiling), 1000), Completion::Unknown);
    }

    #[test]
    fn lines_give_their_cover() {
        let cr = Some(&b"bytes 100-199/1000"[..]);
        assert_eq!(
            LineCover::of(false, 206, 100, cr, Some(1000)),
            LineCover {
                range: Some((100, 200)),
                unplaced: false,
                size: Some(1000)
            }
        );
        // Logged as `-`: a 200 covers from 0; a HEAD nothing.
        let c = LineCover::of(false, 200, 1000, Some(b"-"), None);
        assert_eq!((c.range, c.unplaced), (Some((0, 1000)), false));
        let c = LineCover::of(true, 200, 300, Some(b"-"), None);
        assert_eq!((c.range, c.unplaced), (None, false));
        // Not logged: the bytes count without a place, a HEAD's never.
        let c = LineCover::of(false, 206, 500, None, None);
        assert_eq!((c.range, c.unplaced), (None, true));
        let c = LineCover::of(true, 200, 300, None, None);
        assert_eq!((c.range, c.unplaced), (None, false));
    }

    #[test]
    fn sizes_are_those_of_files_under_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("isos/.hidden")).unwrap();
        std::fs::write(root.join("isos/a.iso"), vec![0u8; 1234]).unwrap();
        std::fs::write(root.join("isos/.hidden/b.iso"), b"xx").unwrap();
        std::fs::write(dir.path().join("outside.iso"), b"xyz").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.iso"), root.join("out.iso")).unwrap();
        std::os::unix::fs::symlink(root.join("isos/a.iso"), root.join("in.iso")).unwrap();
        let mut s = FileSizes::new(Some(root.clone()));
        assert_eq!(s.size(b"/isos/a.iso"), Some(1234));
        assert_eq!(s.size(b"/in.iso"), Some(1234));
        assert_eq!(s.size(b"/isos/.hidden/b.iso"), None);
        assert_eq!(s.size(b"/out.iso"), None);
        assert_eq!(s.size(b"/../outside.iso"), None);
        assert_eq!(s.size(b"/isos"), None);
        assert_eq!(s.size(b"/missing.iso"), None);
        // Cached: a change shows only once the interval is over.
        std::fs::write(root.join("isos/a.iso"), b"short").unwrap();
        assert_eq!(s.size(b"/isos/a.iso"), Some(1234));
        s.filled = Some(Instant::now() - SIZE_TTL);
        s.refresh();
        assert_eq!(s.size(b"/isos/a.iso"), Some(5));
        // Without a root nothing is known.
        assert_eq!(FileSizes::new(None).size(b"/isos/a.iso"), None);
    }

    #[test]
    fn storage_form_round_trips() {
        let r = ranges(&[(0, 250), (500, u64::MAX)]);
        assert_eq!(ByteRanges::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(ByteRanges::from_bytes(b"short"), None);
        assert_eq!(ByteRanges::from_bytes(b""), Some(ByteRanges::new()));
    }
}
