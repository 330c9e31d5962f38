//! Keyed hashing of client addresses: the only form in which they reach the disk.
//!
//! A visitor key is BLAKE3 keyed with the database's 32-byte secret over
//! (client, normalised path, day); a line's fingerprint is keyed over the
//! visitor key and the rest of the line's identity (timestamp, method,
//! status, bytes), so it too depends on the client without containing it, and
//! fits one BLAKE3 block. Both are truncated to 64 bits and compared only
//! within one day, where a collision needs billions of lines.
//!
//! Invariant: the same secret gives the same keys on any thread, so the
//! reading thread may hash (spreading the work over both cores) and the
//! store trusts those keys only when they were made with its own secret.

use crate::classify::Method;

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

/// Scratch space reused between hashes so the hot loop does not allocate.
#[derive(Default, Debug, Clone)]
pub struct Scratch(Vec<u8>);

impl KeyHasher {
    pub fn new(secret: [u8; 32]) -> KeyHasher {
        let id = blake3::keyed_hash(&secret, b"dlcount key id");
        KeyHasher {
            secret,
            id: u64::from_le_bytes(id.as_bytes()[..8].try_into().expect("8 bytes")),
        }
    }

    /// Identifies the secret (without revealing it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// (visitor key, line fingerprint) of a counted line.
    #[allow(clippy::too_many_arguments)]
    pub fn keys(
        &self,
        s: &mut Scratch,
        client: &[u8],
        path: &[u8],
        day: i32,
        time: &[u8],
        method: Method,
        status: u16,
        bytes: u64,
    ) -> (i64, i64) {
        let buf = &mut s.0;
        buf.clear();
        // Length prefixes keep part boundaries from shifting.
        buf.extend_from_slice(&(client.len() as u32).to_le_bytes());
        buf.extend_from_slice(client);
        buf.extend_from_slice(&(path.len() as u32).to_le_bytes());
        buf.extend_from_slice(path);
        buf.extend_from_slice(&day.to_le_bytes());
        let visitor = first8(blake3::keyed_hash(&self.secret, buf));
        buf.clear();
        buf.extend_from_slice(&visitor.to_le_bytes());
        buf.push(match method {
            Method::Get => b'G',
            Method::Head => b'H',
        });
        buf.extend_from_slice(&status.to_le_bytes());
        buf.extend_from_slice(&bytes.to_le_bytes());
        buf.extend_from_slice(time);
        let line = first8(blake3::keyed_hash(&self.secret, buf));
        (visitor, line)
    }
}

fn first8(h: blake3::Hash) -> i64 {
    i64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_part_and_on_the_secret() {
        let h = KeyHasher::new([7; 32]);
        let mut s = Scratch::default();
        let base = h.keys(
            &mut s,
            b"192.0.2.1",
            b"/a.iso",
            5,
            b"t",
            Method::Get,
            200,
            10,
        );
        assert_eq!(
            base,
            h.keys(
                &mut s,
                b"192.0.2.1",
                b"/a.iso",
                5,
                b"t",
                Method::Get,
                200,
                10
            )
        );
        // Same visitor, other line.
        let other = h.keys(
            &mut s,
            b"192.0.2.1",
            b"/a.iso",
            5,
            b"t",
            Method::Get,
            206,
            10,
        );
        assert_eq!(other.0, base.0);
        assert_ne!(other.1, base.1);
        // Boundaries cannot shift: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            h.keys(&mut s, b"ab", b"c", 5, b"t", Method::Get, 200, 10).0,
            h.keys(&mut s, b"a", b"bc", 5, b"t", Method::Get, 200, 10).0
        );
        assert_ne!(
            KeyHasher::new([8; 32]).keys(
                &mut s,
                b"192.0.2.1",
                b"/a.iso",
                5,
                b"t",
                Method::Get,
                200,
                10
            ),
            base
        );
        assert_ne!(KeyHasher::new([8; 32]).id(), h.id());
    }
}
