//! What a client address tells before it is hashed away: its country (from
//! a MaxMind DB file, `--geoip`) and its network for the coverage
//! map (the IPv4 /10, DeleGate's 1,024 networks; IPv6 apart).
//!
//! Invariant: these are the only facts taken from a raw address besides its
//! keyed hash, and both are coarse by construction — an ISO country code and
//! one of 1,024 networks of four million addresses each — so neither can
//! single out a client. Anything that is not an address (a host name logged
//! by `HostnameLookups On`, junk) is `unknown`, never guessed.
//!
//! Why the `maxminddb` crate: it is the maintained Rust reader of the MaxMind
//! DB format that both GeoLite2-Country and the CC-BY DB-IP Lite country
//! database use, with no C library. Its API changes between minor releases,
//! so Cargo.toml pins the version.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A country as far as the database knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Country {
    /// ISO 3166-1 alpha-2, upper case (`DE`).
    Code([u8; 2]),
    Unknown,
}

impl Country {
    pub fn as_str(&self) -> &str {
        match self {
            // Only ASCII letters are stored (see `from_code`).
            Country::Code(c) => std::str::from_utf8(c).unwrap_or("unknown"),
            Country::Unknown => "unknown",
        }
    }

    /// The stored form of a lookup (`visitors.country`, the outage queue):
    /// -1 not looked up, 0 unknown, else the two letters as `a << 8 | b`.
    pub fn stored(looked_up: Option<Country>) -> i64 {
        match looked_up {
            None => -1,
            Some(Country::Unknown) => 0,
            Some(Country::Code([a, b])) => i64::from(a) << 8 | i64::from(b),
        }
    }

    /// Reads [`Country::stored`]'s form (anything else is not looked up).
    pub fn from_stored(v: i64) -> Option<Country> {
        match v {
            0 => Some(Country::Unknown),
            1..=0xffff => {
                let code = [(v >> 8) as u8, v as u8];
                std::str::from_utf8(&code).ok().map(Country::from_code)
            }
            _ => None,
        }
    }

    fn from_code(code: &str) -> Country {
        match code.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Country::Code([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
            }
            _ => Country::Unknown,
        }
    }
}

/// A country database that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot read the country database {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not a MaxMind DB (.mmdb) file ({reason}); use GeoLite2-Country.mmdb or \
         DB-IP's dbip-country-lite .mmdb — Debian's geoip-database is the legacy .dat format",
        path.display()
    )]
    NotMmdb { path: PathBuf, reason: String },
}

/// An open country database.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeoDb")
    }
}

impl GeoDb {
    pub fn open(path: &Path) -> Result<GeoDb, GeoError> {
        let bytes = std::fs::read(path).map_err(|source| GeoError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        let reader = maxminddb::Reader::from_source(bytes).map_err(|e| GeoError::NotMmdb {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(GeoDb { reader })
    }

    /// The country of a client address as logged (`%h`/`%a`, `$remote_addr`).
    pub fn country(&self, client: &[u8]) -> Country {
        let Some(ip) = parse_ip(client) else {
            return Country::Unknown;
        };
        let path = [
            maxminddb::PathElement::Key("country"),
            maxminddb::PathElement::Key("iso_code"),
        ];
        match self
            .reader
            .lookup(ip)
            .and_then(|found| found.decode_path::<&str>(&path))
        {
            Ok(Some(code)) => Country::from_code(code),
            // Not in the database, or an entry without a country (an
            // anonymous proxy, a continent-only block): unknown.
            _ => Country::Unknown,
        }
    }
}

/// The network a client counts under on the coverage map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// The IPv4 /10: the top ten bits, 0..=1023.
    V4Slash10(u16),
    /// Any IPv6 address (counted apart: a /10 of IPv6 means nothing).
    V6,
    /// Not an address.
    Unknown,
}

impl Network {
    /// The stored form (the outage queue): the /10's number, 1024 for
    /// IPv6, 0xffff for not an address.
    pub fn stored(self) -> u16 {
        match self {
            Network::V4Slash10(n) => n,
            Network::V6 => V4_NETWORKS,
            Network::Unknown => u16::MAX,
        }
    }

    /// Reads [`Network::stored`]'s form.
    pub fn from_stored(v: u16) -> Network {
        match v {
            n if n < V4_NETWORKS => Network::V4Slash10(n),
            V4_NETWORKS => Network::V6,
            _ => Network::Unknown,
        }
    }
}

/// How many IPv4 /10 networks there are.
pub const V4_NETWORKS: u16 = 1024;

pub fn network(client: &[u8]) -> Network {
    match parse_ip(client) {
        Some(IpAddr::V4(v4)) => Network::V4Slash10((u32::from(v4) >> 22) as u16),
        Some(IpAddr::V6(_)) => Network::V6,
        None => Network::Unknown,
    }
}

/// An address as logged; an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`,
/// what a dual-stack socket logs) is its IPv4 address.
fn parse_ip(client: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(client) {
        return Some(IpAddr::V4(v4));
    }
    let text = std::str::from_utf8(client).ok()?;
    let ip: IpAddr = text.parse().ok()?;
    Some(ip.to_canonical())
}

/// A dotted-quad IPv4 address, read as `Ipv4Addr`'s `FromStr` reads it
/// (four decimal parts of one to three digits, each at most 255, none with
/// a leading zero), in a plain pass: it runs for every counted line, and
/// the standard parser costs several times as much. `None` for anything
/// else, which then goes to the standard parser.
fn parse_ipv4(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut part = 0;
    // The current part's value and digits so far.
    let (mut n, mut digits) = (0u16, 0);
    for &b in s {
        match b {
            b'0'..=b'9' => {
                // A second digit after a leading zero, or a fourth digit.
                if (digits == 1 && n == 0) || digits == 3 {
                    return None;
                }
                n = n * 10 + u16::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && part < 3 => {
                octets[part] = u8::try_from(n).ok()?;
                part += 1;
                (n, digits) = (0, 0);
            }
            _ => return None,
        }
    }
    if digits == 0 || part != 3 {
        return None;
    }
    octets[3] = u8::try_from(n).ok()?;
    Some(std::net::Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_ipv4_reader_agrees_with_the_standard_parser() {
        let mut cases: Vec<String> = [
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "00.1.2.3",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "+1.2.3.4",
            "1.2.3.-4",
            "1000.1.1.1",
            "192.0.2.1",
            "::ffff:192.0.2.1",
            "-",
            "",
            "a.b.c.d",
            "1.2.3.4a",
            "2001:db8::1",
            "999.999.999.999",
            "10.0.0.255",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every part from 0 to 999 with and without leading zeros, in each position.
        for n in 0..1000 {
            for part in [format!("{n}"), format!("0{n}"), format!("{n:03}")] {
                cases.push(format!("{part}.1.2.3"));
                cases.push(format!("1.2.3.{part}"));
            }
        }
        for c in &cases {
            let want: Option<std::net::Ipv4Addr> = c.parse().ok();
            assert_eq!(parse_ipv4(c.as_bytes()), want, "{c:?}");
            let want_ip = c.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
            assert_eq!(parse_ip(c.as_bytes()), want_ip, "{c:?}");
        }
    }

    fn test_db() -> GeoDb {
        // Built by scripts/make-test-mmdb.py (not real data).
        GeoDb::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/countries.mmdb"))
            .unwrap()
    }

    #[test]
    fn countries_of_ipv4_and_ipv6_addresses() {
        let db = test_db();
        for (client, want) in [
            ("192.0.2.7", "DE"),
            ("198.51.100.200", "FR"),
            ("203.0.113.1", "JP"),
            ("203.0.113.200", "unknown"),
            ("::ffff:192.0.2.9", "DE"),
            ("2001:db8::7", "NL"),
            ("2001:db8:8000::1", "BR"),
            ("2001:db9::1", "unknown"),
            ("10.0.0.1", "unknown"),
            ("crawler.example.org", "unknown"),
            ("-", "unknown"),
            ("", "unknown"),
        ] {
            assert_eq!(db.country(client.as_bytes()).as_str(), want, "{client}");
        }
    }

    #[test]
    fn a_legacy_or_missing_database_says_what_to_use() {
        let dir = tempfile::tempdir().unwrap();
        let dat = dir.path().join("GeoIP.dat");
        std::fs::write(&dat, b"legacy GeoIP .dat content, no metadata marker").unwrap();
        let e = GeoDb::open(&dat).err().unwrap().to_string();
        assert!(e.contains("is not a MaxMind DB (.mmdb) file"), "{e}");
        assert!(e.contains("legacy .dat format"), "{e}");
        let e = GeoDb::open(&dir.path().join("none.mmdb"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("cannot read the country database"), "{e}");
    }

    #[test]
    fn stored_forms_round_trip() {
        for c in [
            None,
            Some(Country::Unknown),
            Some(Country::Code(*b"DE")),
            Some(Country::Code(*b"JP")),
        ] {
            assert_eq!(Country::from_stored(Country::stored(c)), c);
        }
        assert_eq!(Country::stored(Some(Country::Code(*b"DE"))), 0x4445);
        for n in [
            Network::V4Slash10(0),
            Network::V4Slash10(1023),
            Network::V6,
            Network::Unknown,
        ] {
            assert_eq!(Network::from_stored(n.stored()), n);
        }
    }

    #[test]
    fn networks_are_ipv4_slash_10_and_ipv6_apart() {
        assert_eq!(network(b"0.0.0.1"), Network::V4Slash10(0));
        assert_eq!(network(b"0.63.255.255"), Network::V4Slash10(0));
        assert_eq!(network(b"0.64.0.0"), Network::V4Slash10(1));
        assert_eq!(network(b"192.0.2.1"), Network::V4Slash10(768));
        assert_eq!(
            network(b"255.255.255.255"),
            Network::V4Slash10(V4_NETWORKS - 1)
        );
        assert_eq!(network(b"::ffff:192.0.2.1"), Network::V4Slash10(768));
        assert_eq!(network(b"2001:db8::1"), Network::V6);
        assert_eq!(network(b"host.example"), Network::Unknown);
    }
}
