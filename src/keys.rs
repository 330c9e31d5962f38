//! Keyed hashing of client addresses: the only form in which they reach the
//! disk, and only after the store re-keys them per day (see below) — or,
//! while the database cannot take them, encrypted in the outage queue.
//!
//! A visitor key is BLAKE3 keyed with the database's 32-byte secret over
//! (client, normalised path, day). A line's fingerprint — its **identity**,
//! which decides whether two sources saw the same request — is keyed over the
//! visitor key, method, final status and `%t`, plus whichever of the raw `%r`
//! (query and protocol included), Referer and User-Agent the day's identity
//! set names (see [`identity`]). The byte count is deliberately *not* part of
//! it: `%O` and `%b` log different numbers for the same request, and the
//! store keeps bytes beside each fingerprint instead. Both hashes are
//! truncated to 64 bits and compared only within one day.
//!
//! Those two hashes are **intermediates**: they never reach the disk. The
//! store re-keys each of them (SipHash-2-4, a PRF built for such short
//! inputs) with the [`DayKey`] of the line's day, a random 32-byte key kept
//! only while the day is open and deleted when it closes, so
//! what a closed day left behind (free pages, backups) no longer matches
//! anything the secret and the old log can recompute. The one other place
//! they are written is the outage queue (`queue`), which keeps them only
//! until the database takes them, encrypted with a key of each file that is
//! overwritten before the file is deleted, for the same reason.
//!
//! Invariant: the same secret gives the same keys on any thread, so the
//! reading thread may hash (spreading the work over both cores) and the
//! store trusts those keys only when they were made with its own secret and
//! the day's identity set.

use crate::classify::Method;
use crate::logformat::identity;

/// Hashes with one database's secret.
#[derive(Clone)]
pub struct KeyHasher {
    secret: [u8; 32],
    id: u64,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "KeyHasher({:016x})", self.id)
    }
}

/// Every secret-keyed hash the store may need of one counted line, made
/// while its raw fields are still at hand, so that they can be dropped: the
/// visitor key, the line's fingerprint for each of the [`SETS`] identity
/// sets a day may have (indexed by the set's `logformat::identity` bits; a
/// day's set is decided in the database when the line is applied, and may
/// name fields the line lacks, hashed as empty), and schema 1's fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineKeys {
    pub visitor: i64,
    pub line: [i64; SETS],
    pub line_v1: i64,
}

/// How many identity sets there are: every combination of the optional
/// fields and the server (`identity::ALL | identity::SERVER`, plus one).
pub const SETS: usize = (identity::ALL | identity::SERVER) as usize + 1;

/// Scratch space reused between hashes so the hot loop does not allocate.
#[derive(Default, Debug, Clone)]
pub struct Scratch(Vec<u8>);

/// What identifies one counted line besides its visitor key.
#[derive(Debug, Clone, Copy)]
pub struct LineFields<'a> {
    pub time: &'a [u8],
    pub method: Method,
    pub status: u16,
    /// Only for the fingerprints of days counted before schema 2 (see [`KeyHasher::line_v1`]).
    pub bytes: u64,
    pub request_line: &'a [u8],
    pub referer: &'a [u8],
    pub user_agent: &'a [u8],
    /// The server whose log the line is from (`--server`).
    pub server: &'a [u8],
}

impl KeyHasher {
    pub fn new(secret: [u8; 32]) -> KeyHasher {
        let id = blake3::keyed_hash(&secret, b"dlcount key id");
        KeyHasher {
            secret,
            id: u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes")),
        }
    }

    /// The secret itself, to compare with the database's, and for the
    /// local copy the outage queue keeps (see `queue`).
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Identifies the secret (without revealing it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The visitor key of (client, path, day): one download.
    pub fn visitor(&self, s: &mut Scratch, client: &[u8], path: &[u8], day: i32) -> i64 {
        let buf = &mut s.0;
        buf.clear();
        // Length prefixes keep part boundaries from shifting.
        buf.extend_from_slice(&(client.len() as u32).to_le_bytes());
        buf.extend_from_slice(client);
        buf.extend_from_slice(&(path.len() as u32).to_le_bytes());
        buf.extend_from_slice(path);
        buf.extend_from_slice(&day.to_le_bytes());
        first8(blake3::keyed_hash(&self.secret, buf))
    }

    /// The fingerprint of a line over the identity fields in `set` (a
    /// field of `set` the line lacks is hashed as empty).
    pub fn line(&self, s: &mut Scratch, visitor: i64, f: &LineFields<'_>, set: u8) -> i64 {
        let buf = &mut s.0;
        buf.clear();
        // A version byte keeps these apart from schema 1's fingerprints.
        buf.push(2);
        buf.push(set);
        buf.extend_from_slice(&visitor.to_le_bytes());
        buf.push(method_byte(f.method));
        buf.extend_from_slice(&f.status.to_le_bytes());
        for part in [
            f.time,
            if set & identity::REQUEST_LINE != 0 {
                f.request_line
            } else {
                b""
            },
            if set & identity::REFERER != 0 {
                f.referer
            } else {
                b""
            },
            if set & identity::USER_AGENT != 0 {
                f.user_agent
            } else {
                b""
            },
        ] {
            buf.extend_from_slice(&(part.len() as u32).to_le_bytes());
            buf.extend_from_slice(part);
        }
        // Only when the day's set has it: a line of a day counted before
        // servers were named hashes exactly as it did then.
        if set & identity::SERVER != 0 {
            buf.extend_from_slice(&(f.server.len() as u32).to_le_bytes());
            buf.extend_from_slice(f.server);
        }
        first8(blake3::keyed_hash(&self.secret, buf))
    }

    /// All of a line's keys ([`LineKeys`]), given its visitor key.
    pub fn line_keys(&self, s: &mut Scratch, visitor: i64, f: &LineFields<'_>) -> LineKeys {
        let mut keys = LineKeys {
            visitor,
            line: [0; SETS],
            line_v1: self.line_v1(s, visitor, f),
        };
        for (set, key) in keys.line.iter_mut().enumerate() {
            *key = self.line(s, visitor, f, set as u8);
        }
        keys
    }

    /// Schema 1's fingerprint (visitor, method, status, bytes, `%t`), still
    /// used for the days a schema-1 database had counted when it was
    /// upgraded, so re-importing their logs matches what was counted then.
    pub fn line_v1(&self, s: &mut Scratch, visitor: i64, f: &LineFields<'_>) -> i64 {
        let buf = &mut s.0;
        buf.clear();
        buf.extend_from_slice(&visitor.to_le_bytes());
        buf.push(method_byte(f.method));
        buf.extend_from_slice(&f.status.to_le_bytes());
        buf.extend_from_slice(&f.bytes.to_le_bytes());
        buf.extend_from_slice(f.time);
        first8(blake3::keyed_hash(&self.secret, buf))
    }
}

/// The random key of one open day (see the module header).
#[derive(Clone, Copy)]
pub struct DayKey([u8; 32]);

impl std::fmt::Debug for DayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("DayKey")
    }
}

impl DayKey {
    pub fn new(key: [u8; 32]) -> DayKey {
        DayKey(key)
    }

    /// The stored form of a visitor key.
    pub fn visitor(&self, visitor: i64) -> i64 {
        self.rekey(b'v', visitor)
    }

    /// The stored form of a line fingerprint.
    pub fn line(&self, line: i64) -> i64 {
        self.rekey(b'l', line)
    }

    /// SipHash-2-4 keyed with the day key's first 16 bytes: a PRF, so
    /// without the key a stored value says nothing about the hash behind it.
    fn rekey(&self, tag: u8, v: i64) -> i64 {
        use std::hash::Hasher;
        let (k0, k1) = self.sip_keys();
        let mut buf = [0u8; 9];
        buf[0] = tag;
        buf[1..].copy_from_slice(&v.to_le_bytes());
        let mut h = siphasher::sip::SipHasher24::new_with_keys(k0, k1);
        // Bytes, not write_i64: the same value on any architecture.
        h.write(&buf);
        h.finish() as i64
    }

    fn sip_keys(&self) -> (u64, u64) {
        let k = &self.0;
        (
            u64::from_le_bytes(k[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(k[8..16].try_into().expect("8 bytes")),
        )
    }
}

fn method_byte(m: Method) -> u8 {
    match m {
        Method::Get => b'G',
        Method::Head => b'H',
    }
}

fn first8(h: blake3::Hash) -> i64 {
    i64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: LineFields<'static> = LineFields {
        time: b"22/Nov/2026:02:35:41 +0100",
        method: Method::Get,
        status: 200,
        bytes: 10,
        request_line: b"GET /a.iso HTTP/1.1",
        referer: b"-",
        user_agent: b"Wget/1.21.3",
        server: b"mirror-a",
    };

    #[test]
    fn the_server_is_part_of_a_line_only_where_the_set_says_so() {
        let h = KeyHasher::new([7; 32]);
        let mut s = Scratch::default();
        let other = LineFields {
            server: b"mirror-b",
            ..LINE
        };
        let with = identity::ALL | identity::SERVER;
        assert_ne!(
            h.line(&mut s, 1, &LINE, with),
            h.line(&mut s, 1, &other, with)
        );
        // A day counted before servers were named: the same line from any server.
        assert_eq!(
            h.line(&mut s, 1, &LINE, identity::ALL),
            h.line(&mut s, 1, &other, identity::ALL)
        );
        assert_ne!(
            h.line(&mut s, 1, &LINE, with),
            h.line(&mut s, 1, &LINE, identity::ALL)
        );
        // Boundaries cannot shift between the User-Agent and the server.
        let shifted = LineFields {
            user_agent: b"Wget/1.21.3m",
            server: b"irror-a",
            ..LINE
        };
        assert_ne!(
            h.line(&mut s, 1, &LINE, with),
            h.line(&mut s, 1, &shifted, with)
        );
    }

    #[test]
    fn day_keys_rekey_deterministically_and_apart() {
        let k = DayKey::new([1; 32]);
        assert_eq!(k.visitor(42), DayKey::new([1; 32]).visitor(42));
        assert_ne!(k.visitor(42), 42);
        assert_ne!(k.visitor(42), k.visitor(43));
        // A visitor key and a line hash of the same value never coincide.
        assert_ne!(k.visitor(42), k.line(42));
        assert_ne!(k.visitor(42), DayKey::new([2; 32]).visitor(42));
    }

    /// The re-keying is SipHash-2-4 of (tag, value): pinned to the reference
    /// implementation's test vector for the 9-byte message 00 01 … 08 under
    /// the key 00 01 … 0f (the paper's `vectors.h`), not to the crate.
    #[test]
    fn day_keys_are_siphash_2_4() {
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate().take(16) {
            *b = i as u8;
        }
        let k = DayKey::new(key);
        let value = i64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]);
        // Tag 0 is neither 'v' nor 'l': call the shared step directly.
        assert_eq!(k.rekey(0, value) as u64, 0x9e00_82df_0ba9_e4b0);
    }

    #[test]
    fn visitor_keys_depend_on_every_part_and_on_the_secret() {
        let h = KeyHasher::new([7; 32]);
        let mut s = Scratch::default();
        let base = h.visitor(&mut s, b"192.0.2.1", b"/a.iso", 5);
        assert_eq!(base, h.visitor(&mut s, b"192.0.2.1", b"/a.iso", 5));
        assert_ne!(base, h.visitor(&mut s, b"192.0.2.1", b"/a.iso", 6));
        // Boundaries cannot shift: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            h.visitor(&mut s, b"ab", b"c", 5),
            h.visitor(&mut s, b"a", b"bc", 5)
        );
        assert_ne!(
            KeyHasher::new([8; 32]).visitor(&mut s, b"192.0.2.1", b"/a.iso", 5),
            base
        );
        assert_ne!(KeyHasher::new([8; 32]).id(), h.id());
    }

    #[test]
    fn line_identity_covers_its_set_and_ignores_bytes() {
        let h = KeyHasher::new([7; 32]);
        let mut s = Scratch::default();
        let all = identity::ALL;
        let base = h.line(&mut s, 1, &LINE, all);
        assert_eq!(base, h.line(&mut s, 1, &LINE, all));
        // %O and %b log different byte counts for the same request.
        assert_eq!(
            base,
            h.line(&mut s, 1, &LineFields { bytes: 99, ..LINE }, all)
        );
        let differs = [
            LineFields {
                status: 206,
                ..LINE
            },
            LineFields {
                method: Method::Head,
                ..LINE
            },
            LineFields {
                time: b"22/Nov/2026:02:35:42 +0100",
                ..LINE
            },
            LineFields {
                request_line: b"GET /a.iso?x HTTP/1.1",
                ..LINE
            },
            LineFields {
                referer: b"https://example.org/",
                ..LINE
            },
            LineFields {
                user_agent: b"curl/8.5.0",
                ..LINE
            },
        ];
        for d in &differs {
            assert_ne!(h.line(&mut s, 1, d, all), base, "{d:?}");
        }
        assert_ne!(h.line(&mut s, 2, &LINE, all), base);
        // Outside the set a field does not count, and the set itself is hashed.
        let no_ua = identity::REQUEST_LINE | identity::REFERER;
        assert_eq!(
            h.line(
                &mut s,
                1,
                &LineFields {
                    user_agent: b"other",
                    ..LINE
                },
                no_ua
            ),
            h.line(&mut s, 1, &LINE, no_ua)
        );
        assert_ne!(
            h.line(
                &mut s,
                1,
                &LineFields {
                    user_agent: b"",
                    ..LINE
                },
                all
            ),
            h.line(&mut s, 1, &LINE, no_ua)
        );
        // Fields cannot slide into each other.
        assert_ne!(
            h.line(
                &mut s,
                1,
                &LineFields {
                    referer: b"ab",
                    user_agent: b"c",
                    ..LINE
                },
                all
            ),
            h.line(
                &mut s,
                1,
                &LineFields {
                    referer: b"a",
                    user_agent: b"bc",
                    ..LINE
                },
                all
            )
        );
        // Schema 1 fingerprints did include the bytes.
        assert_ne!(
            h.line_v1(&mut s, 1, &LINE),
            h.line_v1(&mut s, 1, &LineFields { bytes: 99, ..LINE })
        );
    }
}
