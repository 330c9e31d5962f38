//! The facts of a download (issue 14) as the store keeps them: pure code
//! shared by every backend, no SQL here.
//!
//! Per download (a `visitors` row, kept until its day closes) the store
//! keeps its client class and country; per file and day (`facts_daily`,
//! which outlives the purge like `daily`) it keeps how many downloads have
//! each class, each country, and how many came over IPv6; per day
//! (`network_days`) which of the 1,024 IPv4 /10 networks downloaded, as a
//! bitmap of 16 words that only ever gains bits (OR). Those figures are
//! maintained at apply time from the change of each download's own facts,
//! so they are exact whatever the order of lines, and nothing needs the
//! purged rows. (A count per network and file would cost a row per new
//! download: a bitmap per day costs at most 16 per day and batch.)
//!
//! Invariant: each per-download fact only moves up a lattice, so the result
//! is a join — commutative, associative, idempotent — of its lines' facts:
//! - **class**: the strongest of its lines (browser < downloader < other <
//!   bot, `agent::ClientClass::strongest`); a line whose class is not known
//!   (queued by a dlcount that did not keep facts) makes it *unknown*, and
//!   unknown absorbs everything. Downloads counted before the upgrade are
//!   unknown for the same reason. So per file and day the four class counts
//!   add up to the downloads whose class is known, and `downloads - sum` is
//!   exactly the unknown rest, never a guessed zero.
//! - **country**: a code beats "not looked up" (an instance without
//!   `--geoip`) and "not in the database"; two codes (two different
//!   databases) keep the smaller, so the answer never depends on order.
//!   Downloads without a code count as `unknown` (`downloads - sum`).
//! - **referring host**: not a fact of the download but of each request:
//!   requests per Referer host move exactly as `daily.requests` does, by the
//!   new copies of each line (so re-reading a line adds nothing).
//! - **network**: fixed per client; set (IPv4) or counted (IPv6) once, when
//!   the download is new. A day counted partly before the upgrade has the
//!   networks of its later downloads only: its class counts say how many
//!   downloads are unknown.
//!
//! A download's class changes only when one of its lines is counted for
//! the first time (a line seen before brought its class then), so the
//! backends join the classes of the lines whose copies are new. Its
//! country is joined over every line, read again or not: the same line
//! read by an instance with `--geoip` brings the code one without it could
//! not ([`gathered`]).

use crate::agent::ClientClass;
use crate::geo::{Network, V4_NETWORKS};
use std::collections::BTreeMap;

/// `visitors.class` of a download whose class is not known (absorbing).
pub const CLASS_UNKNOWN: i64 = -1;

/// No class brought at all (only a country): the neutral element of
/// [`join_class`], never stored.
pub const CLASS_NONE: i64 = i64::MAX;

/// `visitors.country` of a download without a country code.
pub const NO_COUNTRY: i64 = -1;

/// The stored form of a class: its rank, strongest first.
pub fn class_code(c: ClientClass) -> i64 {
    match c {
        ClientClass::Browser => 0,
        ClientClass::Downloader => 1,
        ClientClass::Other => 2,
        ClientClass::Bot => 3,
    }
}

/// The class of a stored rank (`None`: unknown).
pub fn class_of(code: i64) -> Option<ClientClass> {
    match code {
        0 => Some(ClientClass::Browser),
        1 => Some(ClientClass::Downloader),
        2 => Some(ClientClass::Other),
        3 => Some(ClientClass::Bot),
        _ => None,
    }
}

/// The class of a download whose lines have the stored classes `a` and `b`.
pub fn join_class(a: i64, b: i64) -> i64 {
    if a == CLASS_NONE {
        b
    } else if b == CLASS_NONE {
        a
    } else if class_of(a).is_none() || class_of(b).is_none() {
        CLASS_UNKNOWN
    } else {
        a.min(b)
    }
}

/// Whether a stored country (`geo::Country::stored`) is a code.
fn is_code(c: i64) -> bool {
    c > 0
}

/// The country of a download whose lines have the stored countries `a` and `b`.
pub fn join_country(a: i64, b: i64) -> i64 {
    match (is_code(a), is_code(b)) {
        (true, true) => a.min(b),
        (true, false) => a,
        (false, true) => b,
        // Neither has a code: "looked up, unknown" (0) over "not looked up".
        (false, false) => a.max(b),
    }
}

/// What a `facts_daily` row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fact {
    Class(ClientClass),
    /// A stored country code (`geo::Country::stored`, never 0 or -1).
    Country(i64),
    /// Downloads over IPv6 (IPv4 networks are in [`FactDeltas::networks`]).
    Ipv6,
}

impl Fact {
    /// `facts_daily.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fact::Class(_) => "class",
            Fact::Country(_) => "country",
            Fact::Ipv6 => "network",
        }
    }

    /// `facts_daily.value`: the class name, the ISO code, or `v6`.
    pub fn value(&self) -> String {
        match *self {
            Fact::Class(c) => c.name().to_string(),
            Fact::Country(c) => match crate::geo::Country::from_stored(c) {
                Some(c) => c.as_str().to_string(),
                None => "unknown".to_string(),
            },
            Fact::Ipv6 => "v6".to_string(),
        }
    }
}

/// Words of a day's network bitmap: bit `n % 64` of word `n / 64` is the
/// IPv4 /10 network `n`.
pub const NETWORK_WORDS: usize = V4_NETWORKS as usize / 64;

/// What a batch changes: `facts_daily` per (file id, day, fact), and the
/// bits each day's network bitmap gains.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FactDeltas {
    pub counts: BTreeMap<(i64, i32, Fact), i64>,
    pub networks: BTreeMap<i32, [u64; NETWORK_WORDS]>,
    /// Requests per (file id, day, referring host: an id of `labels`): the
    /// new copies of lines, as `daily.requests` moves.
    pub referers: BTreeMap<(i64, i32, u32), i64>,
    pub labels: RefererLabels,
}

/// The referring hosts of one transaction, each labelled once
/// (`referer::host_label`): a line carries a small id, so a flood of new
/// lines costs a hash lookup each, not a label's allocations and a copy of
/// it in every key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefererLabels {
    /// The host as logged → id.
    by_host: rustc_hash::FxHashMap<Vec<u8>, u32>,
    by_label: rustc_hash::FxHashMap<Vec<u8>, u32>,
    /// id → label; empty: direct.
    labels: Vec<Vec<u8>>,
}

impl RefererLabels {
    /// The id of the label of `host` as `referer::host_part` gives it
    /// (empty: direct).
    pub fn id(&mut self, host: &[u8]) -> u32 {
        if let Some(&id) = self.by_host.get(host) {
            return id;
        }
        let label = if host.is_empty() {
            Vec::new()
        } else {
            crate::referer::host_label(host).into_bytes()
        };
        let next = self.labels.len() as u32;
        let id = *self.by_label.entry(label.clone()).or_insert(next);
        if id == next {
            self.labels.push(label);
        }
        self.by_host.insert(host.to_vec(), id);
        id
    }

    /// The label of `id`: `facts_daily.value` of a `referer` row.
    pub fn value(&self, id: u32) -> String {
        match self.labels.get(id as usize) {
            Some(l) if !l.is_empty() => String::from_utf8_lossy(l).into_owned(),
            _ => "direct".to_string(),
        }
    }
}

impl FactDeltas {
    pub fn new() -> FactDeltas {
        FactDeltas::default()
    }

    /// Every `facts_daily` change: (file id, day, kind, value, change).
    pub fn rows(&self) -> impl Iterator<Item = (i64, i32, &'static str, String, i64)> + '_ {
        let counts = self
            .counts
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(&(f, d, fact), &n)| (f, d, fact.kind(), fact.value(), n));
        let referers = self
            .referers
            .iter()
            .filter(|(_, n)| **n != 0)
            .map(|(&(f, d, host), &n)| (f, d, "referer", self.labels.value(host), n));
        counts.chain(referers)
    }

    /// The words that gain bits, per day: (day, word index, bits).
    pub fn network_words(&self) -> impl Iterator<Item = (i32, i64, i64)> + '_ {
        self.networks.iter().flat_map(|(&day, words)| {
            words
                .iter()
                .enumerate()
                .filter(|(_, &w)| w != 0)
                .map(move |(i, &w)| (day, i as i64, w as i64))
        })
    }
}

/// A download's stored facts (`visitors.class`, `visitors.country`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub class: i64,
    pub country: i64,
}

/// The facts a batch's new lines bring to one download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brought {
    pub class: i64,
    pub country: i64,
    pub network: Network,
}

impl Brought {
    /// The join of two lines' facts (of one download).
    pub fn join(self, o: Brought) -> Brought {
        Brought {
            class: join_class(self.class, o.class),
            country: join_country(self.country, o.country),
            network: if self.network == Network::Unknown {
                o.network
            } else {
                self.network
            },
        }
    }
}

/// A download of `file_id` on `day` held `old` (`None`: it is new) and its
/// new lines brought `brought`: what it holds now, with the moves of
/// `facts_daily` recorded in `deltas`.
pub fn settle(
    file_id: i64,
    day: i32,
    old: Option<Held>,
    brought: Brought,
    deltas: &mut FactDeltas,
) -> Held {
    let mut add = |fact: Fact, n: i64| {
        *deltas.counts.entry((file_id, day, fact)).or_default() += n;
    };
    let Some(old) = old else {
        if let Some(c) = class_of(brought.class) {
            add(Fact::Class(c), 1);
        }
        if is_code(brought.country) {
            add(Fact::Country(brought.country), 1);
        }
        match brought.network {
            Network::V4Slash10(n) => {
                let words = deltas.networks.entry(day).or_default();
                words[usize::from(n) / 64] |= 1 << (n % 64);
            }
            Network::V6 => add(Fact::Ipv6, 1),
            Network::Unknown => {}
        }
        return Held {
            class: brought.class,
            country: brought.country,
        };
    };
    let new = Held {
        class: join_class(old.class, brought.class),
        country: join_country(old.country, brought.country),
    };
    if new.class != old.class {
        if let Some(c) = class_of(old.class) {
            add(Fact::Class(c), -1);
        }
        if let Some(c) = class_of(new.class) {
            add(Fact::Class(c), 1);
        }
    }
    if new.country != old.country {
        if is_code(old.country) {
            add(Fact::Country(old.country), -1);
        }
        if is_code(new.country) {
            add(Fact::Country(new.country), 1);
        }
    }
    new
}

/// What a download's lines in a batch bring: the facts of its new lines
/// (`new`) and the country of all of them (`country`, see the module
/// header); `None` when that is nothing.
pub fn gathered(new: Option<Brought>, country: i64) -> Option<Brought> {
    match new {
        Some(f) => Some(Brought {
            country: join_country(f.country, country),
            ..f
        }),
        None if is_code(country) => Some(Brought {
            class: CLASS_NONE,
            country,
            network: Network::Unknown,
        }),
        None => None,
    }
}

/// The brought facts of a line (its class unknown when its batch carries none).
pub fn brought(facts: &crate::tally::LineFacts, missing: bool) -> Brought {
    Brought {
        class: if missing {
            CLASS_UNKNOWN
        } else {
            class_code(facts.class)
        },
        country: crate::geo::Country::stored(facts.country),
        network: facts.network,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientClass::*;

    fn line(class: Option<ClientClass>, country: &str, network: Network) -> Brought {
        let country = match country {
            "-" => NO_COUNTRY,
            "?" => 0,
            c => i64::from(c.as_bytes()[0]) << 8 | i64::from(c.as_bytes()[1]),
        };
        Brought {
            class: class.map_or(CLASS_UNKNOWN, class_code),
            country,
            network,
        }
    }

    /// A download's lines settled one batch at a time, in every order, give
    /// the same held facts and the same per-day figures.
    #[test]
    fn facts_do_not_depend_on_the_order_of_lines() {
        let lines = [
            line(Some(Bot), "-", Network::V4Slash10(768)),
            line(Some(Downloader), "DE", Network::V4Slash10(768)),
            line(Some(Other), "?", Network::V4Slash10(768)),
            line(Some(Bot), "DE", Network::V4Slash10(768)),
        ];
        let mut results = Vec::new();
        for perm in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]] {
            let mut deltas = FactDeltas::new();
            let mut held = None;
            for i in perm {
                held = Some(settle(7, 100, held, lines[i], &mut deltas));
            }
            deltas.counts.retain(|_, n| *n != 0);
            results.push((held, deltas));
        }
        let mut want = FactDeltas::new();
        want.counts = [
            ((7, 100, Fact::Class(Downloader)), 1),
            ((7, 100, Fact::Country(0x4445)), 1),
        ]
        .into_iter()
        .collect();
        // Network 768 is bit 0 of word 12.
        want.networks.entry(100).or_default()[12] = 1;
        assert_eq!(want.network_words().collect::<Vec<_>>(), vec![(100, 12, 1)]);
        for r in &results {
            assert_eq!(
                r.0,
                Some(Held {
                    class: 1,
                    country: 0x4445
                })
            );
            assert_eq!(r.1, want);
        }
    }

    #[test]
    fn an_unknown_class_absorbs_and_takes_its_count_back() {
        let mut d = FactDeltas::new();
        let held = settle(1, 5, None, line(Some(Browser), "-", Network::V6), &mut d);
        let held = settle(1, 5, Some(held), line(None, "-", Network::V6), &mut d);
        assert_eq!(held.class, CLASS_UNKNOWN);
        let held = settle(
            1,
            5,
            Some(held),
            line(Some(Browser), "-", Network::V6),
            &mut d,
        );
        assert_eq!(held.class, CLASS_UNKNOWN);
        d.counts.retain(|_, n| *n != 0);
        assert_eq!(
            d.counts.into_iter().collect::<Vec<_>>(),
            vec![((1, 5, Fact::Ipv6), 1)]
        );
        assert_eq!(Fact::Ipv6.value(), "v6");
        assert_eq!(Fact::Country(0x4445).value(), "DE");
        assert_eq!(Fact::Class(Bot).value(), "bot");
    }

    /// A line read again brings no class, but may bring a country.
    #[test]
    fn a_country_alone_fills_in_and_leaves_the_class() {
        let mut d = FactDeltas::new();
        let held = settle(1, 5, None, line(Some(Bot), "-", Network::V6), &mut d);
        assert_eq!(gathered(None, NO_COUNTRY), None);
        assert_eq!(gathered(None, 0), None);
        let only = gathered(None, 0x4445).unwrap();
        let held = settle(1, 5, Some(held), only, &mut d);
        assert_eq!(
            held,
            Held {
                class: class_code(Bot),
                country: 0x4445
            }
        );
        let both = gathered(Some(line(Some(Browser), "-", Network::V6)), 0x4445).unwrap();
        assert_eq!((both.class, both.country), (0, 0x4445));
        d.counts.retain(|_, n| *n != 0);
        assert_eq!(d.counts.len(), 3, "{d:?}");
        assert_eq!(d.counts[&(1, 5, Fact::Country(0x4445))], 1);
    }

    #[test]
    fn two_databases_codes_keep_the_smaller() {
        assert_eq!(join_country(0x4445, 0x4652), 0x4445);
        assert_eq!(join_country(0x4652, 0x4445), 0x4445);
        assert_eq!(join_country(NO_COUNTRY, 0), 0);
        assert_eq!(join_country(0, NO_COUNTRY), 0);
    }
}
