//! Orders of names on the pages: [`natural_cmp`], the ascending natural
//! ("version") order (checksum lists: `MD5SUMS`, `SHA256SUMS`, `SHA512SUMS`),
//! and [`release_cmp`], the order the public page lists images in, and
//! [`folder_cmp`], the same per folder segment — newest release first.
//!
//! [`natural_cmp`]: a name is split into runs of ASCII digits and runs of
//! everything else. Digit runs compare by numeric value (`9` < `10`, `04` <
//! `10`), other runs compare ASCII-case-insensitively byte by byte; a digit
//! sorts before text at the same position; a name that is a prefix of the
//! other sorts first.
//!
//! [`release_cmp`] reads a name as the same runs, compared in this order:
//! - numbers descending, so the newest release comes first: `24.10`,
//!   `24.04.1`, `24.04`, `22.04.5`, `22.04`, `10`, `9`;
//! - words ascending (A to Z, case-insensitively), so products and flavours
//!   read like a dictionary: `debian-12`, `fedora-41`, `ubuntu-24.10`;
//! - at a position where one name has a number and the other a word, the
//!   number first: a release before a name without one (`24.10` before
//!   `archive`, `lv-24.04.iso` before `lv-daily.iso`);
//! - where one name ends and the other goes on, the longer first when it goes
//!   on with a further version component (a digit, or one punctuation
//!   character followed by a digit: `24.04.1`, `24.04-2`, `isos2`), the shorter
//!   first otherwise (`24.04` before `24.04-beta`, `isos` before `isos-old`).
//!
//! Both are total orders (a lexicographic order of tokens: a number, a
//! "punctuation before a digit", the end of the name, then any other
//! character, in that rank); ties by value (`a01` and `a1`, `A` and `a`)
//! are broken by the raw bytes, so the order never depends on the order the
//! directory listing came in.

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

/// One token of [`release_cmp`], ranked by its variant first.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Token<'a> {
    /// A run of digits; ranks by [`Reverse`](std::cmp::Reverse) value.
    Number(std::cmp::Reverse<Value<'a>>),
    /// Punctuation followed by a digit: `.` of `24.04.1`, `-` of `lv-24.04`.
    VersionMark(u8),
    /// The end of the name.
    End,
    /// Any other byte, case-insensitively.
    Text(u8),
}

/// A digit run compared by numeric value, of any length.
#[derive(PartialEq, Eq)]
struct Value<'a>(&'a [u8]);

impl Ord for Value<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_digits(self.0, other.0)
    }
}

impl PartialOrd for Value<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The token at `i` of `s` and where the next one starts.
fn token(s: &[u8], i: usize) -> (Token<'_>, usize) {
    match s.get(i) {
        None => (Token::End, i),
        Some(c) if c.is_ascii_digit() => {
            let end = run_end(s, i, true);
            // Leading zeros are no part of the value (`04` is 4).
            (
                Token::Number(std::cmp::Reverse(Value(trim_zeros(&s[i..end])))),
                end,
            )
        }
        Some(&c) if c.is_ascii_punctuation() && s.get(i + 1).is_some_and(u8::is_ascii_digit) => {
            (Token::VersionMark(c), i + 1)
        }
        Some(&c) => (Token::Text(c.to_ascii_lowercase()), i + 1),
    }
}

/// Compares two names in release order, the one listed first being `Less`
/// (see the module documentation): `24.10` < `24.04.1` < `24.04` <
/// `24.04-beta` < `archive`.
pub fn release_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    loop {
        let (ta, ni) = token(a, i);
        let (tb, nj) = token(b, j);
        match ta.cmp(&tb) {
            Ordering::Equal if ta == Token::End => return a.cmp(b),
            Ordering::Equal => (i, j) = (ni, nj),
            ord => return ord,
        }
    }
}

/// Order of folders (paths relative to ROOT, `/`-separated, empty for ROOT):
/// a folder comes before its subfolders (ROOT first), and sibling folders in
/// [`release_cmp`] order of their names — the order of the images inside a
/// folder — so `isos/24.10` comes before `isos/24.04`, both after `isos`
/// itself and before `isos/archive`. Total: segment by segment.
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
            (Some(x), Some(y)) => match release_cmp(x, y) {
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

    fn in_release_order(names: &[&str]) -> Vec<String> {
        let mut v: Vec<&str> = names.to_vec();
        v.sort_by(|a, b| release_cmp(a.as_bytes(), b.as_bytes()));
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn newest_release_first() {
        let expected = [
            "linuxvillage-24.10-amd64.iso",
            "linuxvillage-24.04.1-amd64.iso",
            "linuxvillage-24.04-amd64.iso",
            "linuxvillage-10-amd64.iso",
            "linuxvillage-9-amd64.iso",
        ];
        assert_eq!(
            in_release_order(&[
                "linuxvillage-9-amd64.iso",
                "linuxvillage-24.04-amd64.iso",
                "linuxvillage-10-amd64.iso",
                "linuxvillage-24.10-amd64.iso",
                "linuxvillage-24.04.1-amd64.iso",
            ]),
            expected
        );
        // Every input order gives the same listing.
        let mut names = expected;
        for _ in 0..names.len() {
            names.rotate_left(1);
            assert_eq!(in_release_order(&names), expected);
            names.reverse();
            assert_eq!(in_release_order(&names), expected);
        }
    }

    #[test]
    fn release_folder_names_then_words_a_to_z() {
        assert_eq!(
            in_release_order(&[
                "22.04",
                "archive",
                "24.04",
                "Daily",
                "22.04.5",
                "24.10",
                "24.04-beta",
                "9",
                "beta",
                "10",
            ]),
            [
                "24.10",
                "24.04",
                "24.04-beta",
                "22.04.5",
                "22.04",
                "10",
                "9",
                "archive",
                "beta",
                "Daily",
            ]
        );
        // Products A to Z, each newest release first; a release before the
        // same product's unversioned images.
        assert_eq!(
            in_release_order(&[
                "ubuntu-24.04",
                "debian-12",
                "ubuntu-daily",
                "debian-11.11",
                "Fedora-41",
                "ubuntu-24.10",
                "debian",
                "debian-12.8",
            ]),
            [
                "debian-12.8",
                "debian-12",
                "debian-11.11",
                "debian",
                "Fedora-41",
                "ubuntu-24.10",
                "ubuntu-24.04",
                "ubuntu-daily",
            ]
        );
        // A further version component goes first, anything else after.
        assert_eq!(
            in_release_order(&["isos-old", "isos", "isos2", "isos.3", "isos_old"]),
            ["isos2", "isos.3", "isos", "isos-old", "isos_old"]
        );
    }

    #[test]
    fn release_order_is_total() {
        // Equal by value, still ordered: by the raw bytes.
        assert_eq!(release_cmp(b"a01", b"a1"), Ordering::Less);
        assert_eq!(release_cmp(b"A", b"a"), Ordering::Less);
        assert_eq!(release_cmp(b"same", b"same"), Ordering::Equal);
        assert_eq!(release_cmp(b"", b""), Ordering::Equal);
        assert_eq!(release_cmp(b"", b"a"), Ordering::Less);
        assert_eq!(release_cmp(b"1", b""), Ordering::Less);
        assert_eq!(
            release_cmp(b"a100000000000000000000000", b"a99999999999999999999999"),
            Ordering::Less
        );
        // Antisymmetric and transitive over names that mix every token.
        let names: Vec<&[u8]> = vec![
            b"24.04",
            b"24.04.1",
            b"24.04-1",
            b"24.04-beta",
            b"24.04beta",
            b"24.04_",
            b"24.04.",
            b"24",
            b"24.4",
            b"024.04",
            b"",
            b"-1",
            b".",
            b"a",
            b"A",
            b"a1",
            b"a.1",
            b"caf\xe9",
        ];
        for x in &names {
            for y in &names {
                assert_eq!(release_cmp(x, y), release_cmp(y, x).reverse());
                for z in &names {
                    if release_cmp(x, y).is_le() && release_cmp(y, z).is_le() {
                        assert!(release_cmp(x, z).is_le(), "{x:?} {y:?} {z:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn folders_parent_first_then_newest_release_first() {
        let mut v = vec![
            "isos/24.04",
            "isos",
            "",
            "isos/24.10",
            "isos/archive",
            "isos/24.04.1",
            "isos/9",
            "isos/10/beta",
            "isos/10",
            "archive",
            "isos/24.10/torrents",
            "isos/22.04.5",
            "isos/22.04",
        ];
        v.sort_by(|a, b| folder_cmp(a.as_bytes(), b.as_bytes()));
        assert_eq!(
            v,
            [
                "",
                "archive",
                "isos",
                "isos/24.10",
                "isos/24.10/torrents",
                "isos/24.04.1",
                "isos/24.04",
                "isos/22.04.5",
                "isos/22.04",
                "isos/10",
                "isos/10/beta",
                "isos/9",
                "isos/archive",
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
