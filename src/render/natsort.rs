//! Natural ("version") ordering of file names, so that release listings sort
//! the way people read version numbers.
//!
//! Rule: a name is split into runs of ASCII digits and runs of everything
//! else. Digit runs compare by numeric value (`9` < `10`, `04` < `10`), other
//! runs compare ASCII-case-insensitively byte by byte; a name that is a prefix
//! of the other sorts first. Ties (`a01` vs `a1`, `A` vs `a`) are broken by
//! comparing the raw bytes, so the order is total and deterministic.
//! The public page lists each folder in *descending* order of this comparator
//! ("newest release first": `24.10` before `24.04`, `10` before `9`), and
//! the folders themselves by [`folder_cmp`]: the same rule per path segment.

use std::cmp::Ordering;

/// Compares two names in natural order (see the module documentation).
pub fn natural_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (ad, bd) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if ad && bd {
            let ie = run_end(a, i, true);
            let je = run_end(b, j, true);
            let ord = cmp_digits(&a[i..ie], &b[j..je]);
            if ord != Ordering::Equal {
                return ord;
            }
            i = ie;
            j = je;
        } else if ad != bd {
            // A digit run sorts before text at the same position (`a1` < `ab`).
            return if ad {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        } else {
            let ord = a[i].to_ascii_lowercase().cmp(&b[j].to_ascii_lowercase());
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j)).then_with(|| a.cmp(b))
}

/// Order of folders (paths relative to ROOT, `/`-separated, empty for ROOT):
/// a folder comes before its subfolders (ROOT first), and sibling folders
/// newest release first — descending [`natural_cmp`] of their names, the
/// order of the images inside a folder — so `isos/24.10` comes before
/// `isos/24.04`, and both after `isos` itself. Total: segment by segment.
pub fn folder_cmp(a: &[u8], b: &[u8]) -> Ordering {
    fn segments(p: &[u8]) -> impl Iterator<Item = &[u8]> {
        // ROOT, the empty path, has no segment at all.
        p.split(|&c| c == b'/').filter(move |_| !p.is_empty())
    }
    let (mut sa, mut sb) = (segments(a), segments(b));
    loop {
        match (sa.next(), sb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match natural_cmp(y, x) {
                Ordering::Equal => {}
                ord => return ord,
            },
        }
    }
}

fn run_end(s: &[u8], start: usize, digits: bool) -> usize {
    s[start..]
        .iter()
        .position(|c| c.is_ascii_digit() != digits)
        .map_or(s.len(), |p| start + p)
}

/// Numeric comparison of two digit runs of any length (no overflow).
fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    let a = trim_zeros(a);
    let b = trim_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let nz = s.iter().position(|&c| c != b'0').unwrap_or(s.len());
    &s[nz..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_desc(names: &[&str]) -> Vec<String> {
        let mut v: Vec<&str> = names.to_vec();
        v.sort_by(|a, b| natural_cmp(b.as_bytes(), a.as_bytes()));
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn newest_release_first() {
        assert_eq!(
            sorted_desc(&[
                "linuxvillage-9-amd64.iso",
                "linuxvillage-24.04-amd64.iso",
                "linuxvillage-10-amd64.iso",
                "linuxvillage-24.10-amd64.iso",
                "linuxvillage-24.04.1-amd64.iso",
            ]),
            [
                "linuxvillage-24.10-amd64.iso",
                "linuxvillage-24.04.1-amd64.iso",
                "linuxvillage-24.04-amd64.iso",
                "linuxvillage-10-amd64.iso",
                "linuxvillage-9-amd64.iso",
            ]
        );
    }

    #[test]
    fn folders_parent_first_then_newest_release_first() {
        let mut v = vec![
            "isos/24.04",
            "isos",
            "",
            "isos/24.10",
            "isos/24.04.1",
            "isos/9",
            "isos/10/beta",
            "isos/10",
            "archive",
            "isos/24.10/torrents",
        ];
        v.sort_by(|a, b| folder_cmp(a.as_bytes(), b.as_bytes()));
        assert_eq!(
            v,
            [
                "",
                "isos",
                "isos/24.10",
                "isos/24.10/torrents",
                "isos/24.04.1",
                "isos/24.04",
                "isos/10",
                "isos/10/beta",
                "isos/9",
                "archive",
            ]
        );
        assert_eq!(folder_cmp(b"a", b"a"), Ordering::Equal);
        assert_eq!(folder_cmp(b"", b""), Ordering::Equal);
    }

    #[test]
    fn digits_compare_numerically_and_order_is_total() {
        assert_eq!(natural_cmp(b"a9", b"a10"), Ordering::Less);
        assert_eq!(
            natural_cmp(b"a99999999999999999999999", b"a100000000000000000000000"),
            Ordering::Less
        );
        assert_eq!(natural_cmp(b"Alpha", b"alpha2"), Ordering::Less);
        assert_eq!(natural_cmp(b"a1", b"ab"), Ordering::Less);
        // Equal by value, still a total order: decided by the raw bytes.
        assert_eq!(natural_cmp(b"a01", b"a1"), Ordering::Less);
        assert_eq!(natural_cmp(b"A", b"a"), Ordering::Less);
        assert_eq!(natural_cmp(b"same", b"same"), Ordering::Equal);
    }
}
