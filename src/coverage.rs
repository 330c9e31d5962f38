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
    fn storage_form_round_trips() {
        let r = ranges(&[(0, 250), (500, u64::MAX)]);
        assert_eq!(ByteRanges::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(ByteRanges::from_bytes(b"short"), None);
        assert_eq!(ByteRanges::from_bytes(b""), Some(ByteRanges::new()));
    }
}
