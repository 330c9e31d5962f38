//! The dedup algebra, pure code shared by every backend: how the copies of
//! one distinct line combine across live and imported sources. No SQL here.
//!
//! Invariant: a figure moves only by the change of [`SeenLine::copies`], so
//! applying the same copies again, or in another order, changes nothing.
//! [`BatchAccount`] is where a batch's lines, once the backend has read
//! and written their `seen_lines` rows, add up by that change alone.

use super::facts::{join_country, Brought, FactDeltas, NO_COUNTRY};
use super::{ApplyStats, Origin};
use crate::coverage::{ByteRanges, LineCover};
use crate::keys::{KeyHasher, Scratch};
use crate::tally::Batch;
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;

/// `days.identity` of a day counted before schema 2: schema 1's fingerprint.
pub const SCHEMA1_IDENTITY: i64 = -1;

/// Refuses batches hashed with another secret than `hasher`'s (see
/// [`line_keys`]): a backend calls it once it knows the secret its
/// transaction hashes with, so that such a batch is an error of the
/// transaction (the outage queue then sees the secret changed), never a
/// line counted under a wrong key.
pub fn check_keyed(batches: &[Batch], hasher: &KeyHasher) -> anyhow::Result<()> {
    if let Some(b) = batches
        .iter()
        .find(|b| b.is_hashed() && b.keyed_with() != hasher.id())
    {
        anyhow::bail!(
            "{} queued lines were hashed with another secret than the database's",
            b.hits().len()
        );
    }
    Ok(())
}

/// The secret-keyed (visitor, line) hashes of hit `i` of `batch`, for a day
/// whose lines are identified by `day_identity` (`logformat::identity`
/// bits, or [`SCHEMA1_IDENTITY`]). The reader's precomputed keys serve when
/// they were made with this secret and this very set; otherwise the line is
/// hashed again from its fields. A hashed batch (the outage queue's, see
/// `tally::Batch::hash_all`) has no fields left: its keys for every
/// identity set serve, and they must have been made with this very secret
/// (the queue sets aside what another secret made, so a mismatch here is a
/// bug, and it panics rather than count a line under a wrong key). These
/// are intermediates: a backend stores them only re-keyed with the day's
/// key (`keys::DayKey`).
pub fn line_keys(
    batch: &Batch,
    i: usize,
    day_identity: i64,
    hasher: &KeyHasher,
    scratch: &mut Scratch,
) -> (i64, i64) {
    let h = &batch.hits()[i];
    let schema1 = day_identity == SCHEMA1_IDENTITY;
    let set = day_identity as u8;
    if let Some(k) = batch.hashed_keys(i) {
        assert_eq!(
            batch.keyed_with(),
            hasher.id(),
            "a batch hashed with another database's secret reached the store"
        );
        let line = if schema1 {
            k.line_v1
        } else {
            k.line[usize::from(set) % crate::keys::SETS]
        };
        return (k.visitor, line);
    }
    let precomputed = batch.keys(i, hasher.id());
    if let Some(k) = precomputed {
        if !schema1 && set == h.identity {
            return k;
        }
    }
    let visitor = match precomputed {
        Some((v, _)) => v,
        None => hasher.visitor(scratch, batch.client(h), batch.path(h), h.day),
    };
    let fields = batch.line_fields(h);
    let line = if schema1 {
        hasher.line_v1(scratch, visitor, &fields)
    } else {
        hasher.line(scratch, visitor, &fields, set)
    };
    (visitor, line)
}

/// The copies of one distinct line seen so far (a `seen_lines` row).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeenLine {
    pub live: i64,
    pub imported: i64,
    pub source: i64,
    pub source_n: i64,
    pub live_bytes: i64,
    pub imported_bytes: i64,
    pub source_bytes: i64,
}

impl SeenLine {
    /// The real copies of the line the database knows of, with their bytes:
    /// the live ones, unless one imported file held more.
    pub fn copies(&self) -> (i64, i64) {
        if self.live >= self.imported {
            (self.live, self.live_bytes)
        } else {
            (self.imported, self.imported_bytes)
        }
    }

    /// The row after `copies` more copies (with `bytes` together) arrived
    /// from `origin`. Live copies add up; an imported file's copies are
    /// counted within that file (`source_n`), and only a file holding more
    /// copies than any before replaces `imported`.
    pub fn seen(self, copies: i64, bytes: i64, origin: Origin) -> SeenLine {
        match origin {
            Origin::Live => SeenLine {
                live: self.live.saturating_add(copies),
                live_bytes: self.live_bytes.saturating_add(bytes),
                ..self
            },
            Origin::Import { file_source, .. } => {
                let (n, nb) = if self.source == file_source {
                    (
                        self.source_n.saturating_add(copies),
                        self.source_bytes.saturating_add(bytes),
                    )
                } else {
                    (copies, bytes)
                };
                let (imported, imported_bytes) = if n > self.imported {
                    (n, nb)
                } else {
                    (self.imported, self.imported_bytes)
                };
                SeenLine {
                    imported,
                    imported_bytes,
                    source: file_source,
                    source_n: n,
                    source_bytes: nb,
                    ..self
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Classifier;
    use crate::logformat::LogFormat;
    use crate::tally::LineProcessor;

    /// A hashed batch gives the store the very keys its raw form gives, for
    /// every identity set a day may have (schema 1's included), whether the
    /// reader had hashed or not; the raw fields are gone from it.
    #[test]
    fn a_hashed_batch_gives_the_keys_of_its_raw_form_for_every_day_identity() {
        let hasher = KeyHasher::new([3; 32]);
        let lines = [
            r#"192.0.2.1 - - [05/Nov/2026:10:00:00 +0100] "GET /a.iso?x=1 HTTP/1.1" 200 10"#,
            r#"192.0.2.1 - - [05/Nov/2026:10:00:00 +0100] "GET /a.iso HTTP/1.1" 206 10"#,
            r#"2001:db8::7 - - [06/Nov/2026:23:59:59 +0100] "HEAD /b/../c.iso HTTP/1.1" 200 0"#,
        ];
        let tails = [
            r#" "https://r.example/" "Wget/1.21""#,
            r#" "-" "curl/8""#,
            r#" "-" "-""#,
        ];
        for (format, keyed_by_reader) in [("combined", true), ("combined", false), ("common", true)]
        {
            let slot = std::sync::Arc::new(std::sync::OnceLock::new());
            if keyed_by_reader {
                let _ = slot.set(hasher.clone());
            }
            let mut p = LineProcessor::new(
                LogFormat::compile(format).unwrap(),
                Classifier::new(&[".iso"]),
            )
            .with_server("mirror-a")
            .with_hasher(slot);
            let mut raw = Batch::new();
            for (i, l) in lines.iter().enumerate() {
                let l = match format {
                    "common" => l.to_string(),
                    _ => format!("{l}{}", tails[i]),
                };
                p.process_line(l.as_bytes(), i as u64 + 1, &mut raw);
            }
            let n = raw.hits().len();
            assert_eq!(n, 3, "{format}");
            let mut hashed = raw.clone();
            hashed.hash_all(&hasher, &mut Scratch::default());
            assert!(hashed.is_hashed() && !raw.is_hashed());
            assert_eq!(hashed.keyed_with(), hasher.id());
            let mut s = Scratch::default();
            for i in 0..n {
                let (r, h) = (&raw.hits()[i], &hashed.hits()[i]);
                assert_eq!(hashed.client(h), b"");
                assert_eq!(hashed.time(h), b"");
                assert_eq!(hashed.path(h), raw.path(r));
                assert_eq!(
                    (h.day, h.method, h.status, h.bytes, h.identity),
                    (r.day, r.method, r.status, r.bytes, r.identity)
                );
                for day_identity in (0..crate::keys::SETS as i64).chain([SCHEMA1_IDENTITY]) {
                    assert_eq!(
                        line_keys(&hashed, i, day_identity, &hasher, &mut s),
                        line_keys(&raw, i, day_identity, &hasher, &mut s),
                        "{format}, line {i}, day identity {day_identity}"
                    );
                }
            }
            // Split as the pipe splits pieces, the keys stay with their lines.
            let tail = hashed.split_off(1);
            assert_eq!(
                line_keys(&tail, 0, 7, &hasher, &mut s),
                line_keys(&raw, 1, 7, &hasher, &mut s)
            );
        }
    }

    /// A download's lines, each in a batch of its own, in every order
    /// (and each line read twice): the same stored cover, and it becomes
    /// complete exactly once — for a segmented download tiling the file, a
    /// resume, and never for 60 % or a HEAD.
    #[test]
    fn every_order_of_a_downloads_lines_gives_the_same_completion() {
        let cover = |range: Option<(u64, u64)>, unplaced: i64| VisitorAgg {
            ranges: {
                let mut r = ByteRanges::new();
                if let Some((s, e)) = range {
                    r.add(s, e);
                }
                r
            },
            unplaced,
            size: Some(1000),
            ..Default::default()
        };
        let shapes: [(&str, Vec<VisitorAgg>, bool); 4] = [
            (
                "tiling",
                (0..4)
                    .map(|i| cover(Some((i * 250, i * 250 + 250)), 0))
                    .collect(),
                true,
            ),
            (
                "resumed",
                vec![cover(Some((0, 300)), 0), cover(Some((300, 1000)), 0)],
                true,
            ),
            (
                "sixty",
                vec![cover(Some((0, 400)), 0), cover(Some((200, 600)), 0)],
                false,
            ),
            ("head", vec![cover(None, 0), cover(None, 0)], false),
        ];
        fn orders(n: usize) -> Vec<Vec<usize>> {
            if n == 0 {
                return vec![vec![]];
            }
            let mut out = Vec::new();
            for rest in orders(n - 1) {
                for at in 0..=rest.len() {
                    let mut o = rest.clone();
                    o.insert(at, n - 1);
                    out.push(o);
                }
            }
            out
        }
        for (name, lines, complete) in shapes {
            let mut finals = Vec::new();
            for order in orders(lines.len()) {
                let mut held = HeldCover::default();
                let mut became = 0;
                for &i in order.iter().chain(order.iter()) {
                    let (now, b) = held.after(&lines[i]);
                    held = now;
                    became += u32::from(b);
                }
                assert_eq!(became, u32::from(complete), "{name} {order:?}");
                assert_eq!(held.complete, complete, "{name} {order:?}");
                finals.push(held);
            }
            assert!(finals.windows(2).all(|w| w[0] == w[1]), "{name}");
        }
        // Without a known size nothing becomes complete, but the ranges stay.
        let unknown = VisitorAgg {
            size: None,
            ..cover(Some((0, 1000)), 0)
        };
        let (held, became) = HeldCover::default().after(&unknown);
        assert!(!became && !held.complete && held.ranges.covered(1000) == 1000);
        // Then a line that knows it completes the download.
        let (held, became) = held.after(&cover(None, 0));
        assert!(became && held.complete);
    }

    #[test]
    #[should_panic(expected = "another database's secret")]
    fn a_batch_hashed_with_another_secret_is_never_keyed() {
        let mut p = LineProcessor::new(
            LogFormat::compile("combined").unwrap(),
            Classifier::new(&[".iso"]),
        );
        let mut b = Batch::new();
        p.process_line(
            br#"192.0.2.1 - - [05/Nov/2026:10:00:00 +0100] "GET /a.iso HTTP/1.1" 200 10 "-" "-""#,
            1,
            &mut b,
        );
        b.hash_all(&KeyHasher::new([1; 32]), &mut Scratch::default());
        // The store refuses the batch before it hashes anything…
        let batches = std::slice::from_ref(&b);
        assert!(check_keyed(batches, &KeyHasher::new([1; 32])).is_ok());
        let e = check_keyed(batches, &KeyHasher::new([2; 32])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "1 queued lines were hashed with another secret than the database's"
        );
        // …and line_keys would never use it.
        line_keys(&b, 0, 7, &KeyHasher::new([2; 32]), &mut Scratch::default());
    }
}

/// One distinct line of a batch, its copies gathered, as both backends
/// account for it.
pub struct LineAgg {
    pub day: i32,
    pub hash: i64,
    pub copies: i64,
    /// Bytes of those copies together.
    pub bytes: i64,
    pub visitor: i64,
    pub file_id: i64,
    /// `servers.id` of the server whose log the line is from.
    pub server_id: i64,
    /// A schema-1 day: the bytes are part of the hash, so every copy has `bytes / copies`.
    pub schema1: bool,
    /// The line's facts (`store::facts`), joined over its copies.
    pub facts: Brought,
    /// Its Referer's host: an id of the transaction's `FactDeltas::labels`.
    pub referer: u32,
    /// What its copies cover of the file (`coverage`): the union of their
    /// ranges, whether their bytes count unplaced, the file's size.
    pub ranges: ByteRanges,
    pub unplaced: bool,
    pub size: Option<u64>,
}

impl LineAgg {
    /// Takes in the cover of one more copy of the line.
    pub fn cover(&mut self, c: &LineCover) {
        if let Some((s, e)) = c.range {
            self.ranges.add(s, e);
        }
        self.unplaced |= c.unplaced;
        self.size = self.size.max(c.size);
    }
}

impl LineAgg {
    /// What the line's copies add, `(requests, bytes)`: all of them for a
    /// row the store did not have (`was` is `None`), else only the growth
    /// from `was` to `after` (see the module's invariant).
    pub fn new_copies(&self, was: Option<&SeenLine>, after: &SeenLine) -> (i64, i64) {
        let Some(was) = was else {
            return (self.copies, self.bytes);
        };
        let delta = (after.copies().0 - was.copies().0).clamp(0, self.copies);
        let delta_bytes = if self.schema1 {
            // Schema-1 rows keep no bytes: every copy logged the same.
            delta.saturating_mul(self.bytes / self.copies)
        } else {
            after.copies().1.saturating_sub(was.copies().1)
        };
        (delta, delta_bytes)
    }
}

/// A download (day, visitor key) of a batch, gathered over its lines.
#[derive(Default)]
pub struct VisitorAgg {
    pub file_id: i64,
    pub requests: i64,
    pub bytes: i64,
    /// Bits of the servers that sent counted lines ([`server_bit`]).
    pub servers: i64,
    /// The facts of its lines whose copies are new (`None`: no such line).
    pub facts: Option<Brought>,
    /// The country of all its lines (`store::facts::gathered`).
    pub country: i64,
    /// The ranges its lines cover, counted or not (a union: a line read
    /// again adds nothing), and the unplaced bytes of its new copies.
    pub ranges: ByteRanges,
    pub unplaced: i64,
    /// The size of its file, when a line knew it.
    pub size: Option<u64>,
}

impl VisitorAgg {
    /// Whether the batch's lines bring anything to the download's cover:
    /// ranges, unplaced bytes, or the file's size (a line already counted
    /// can still bring the size, which may complete the download).
    pub fn brings_cover(&self) -> bool {
        !(self.ranges.is_empty() && self.unplaced == 0 && self.size.is_none())
    }
}

/// What a download's row keeps of its cover until its day closes
/// (`visitors.ranges`, `got`, `complete`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldCover {
    pub ranges: ByteRanges,
    /// Bytes of its lines that logged no `Content-Range` (`coverage`).
    pub got: i64,
    pub complete: bool,
}

impl HeldCover {
    /// The cover a `visitors` row of `day` holds (`ranges` NULL: none yet).
    pub fn from_columns(
        ranges: Option<&[u8]>,
        got: i64,
        complete: bool,
        day: i32,
    ) -> anyhow::Result<HeldCover> {
        let ranges = match ranges {
            Some(b) => ByteRanges::from_bytes(b)
                .ok_or_else(|| anyhow::anyhow!("corrupt byte ranges of a download of day {day}"))?,
            None => ByteRanges::new(),
        };
        Ok(HeldCover {
            ranges,
            got,
            complete,
        })
    }

    /// The `visitors.ranges` value of this cover: NULL when it has none.
    pub fn ranges_column(&self) -> Option<Vec<u8>> {
        (!self.ranges.is_empty()).then(|| self.ranges.to_bytes())
    }

    /// The row after the batch's `v`, and whether the download became
    /// complete with it (then its file-day's `completed` goes up by one:
    /// `complete` only ever turns on, so that happens once).
    pub fn after(&self, v: &VisitorAgg) -> (HeldCover, bool) {
        let mut ranges = self.ranges.clone();
        ranges.union(&v.ranges);
        let got = self.got.saturating_add(v.unplaced).max(0);
        let now = v
            .size
            .is_some_and(|size| crate::coverage::is_complete(size, &ranges, got as u64));
        let complete = self.complete || now;
        let became = complete && !self.complete;
        (
            HeldCover {
                ranges,
                got,
                complete,
            },
            became,
        )
    }
}

/// The bit of server `id` (1 to 63) in `visitors.servers`.
pub fn server_bit(id: i64) -> i64 {
    1i64 << (id - 1)
}

/// What a batch's lines add up to before the visitors are written: the
/// downloads in the order first seen, per server and day (new downloads,
/// requests, bytes), and the facts' deltas.
#[derive(Default)]
pub struct BatchAccount {
    pub visitors: HashMap<(i32, i64), VisitorAgg>,
    pub visitor_order: Vec<(i32, i64)>,
    pub server_days: BTreeMap<(i64, i32), (i64, i64, i64)>,
    pub fact_deltas: FactDeltas,
}

impl BatchAccount {
    /// Adds line `l`, whose new copies are `(delta, delta_bytes)`
    /// ([`LineAgg::new_copies`]).
    pub fn add(&mut self, stats: &mut ApplyStats, l: &LineAgg, (delta, delta_bytes): (i64, i64)) {
        stats.counted_lines += delta as u64;
        stats.already_counted_lines += (l.copies - delta) as u64;
        if delta > 0 {
            stats.max_day = stats.max_day.max(Some(l.day));
        }
        let key = (l.day, l.visitor);
        let order = &mut self.visitor_order;
        let v = self.visitors.entry(key).or_insert_with(|| {
            order.push(key);
            VisitorAgg {
                file_id: l.file_id,
                country: NO_COUNTRY,
                ..Default::default()
            }
        });
        v.country = join_country(v.country, l.facts.country);
        v.ranges.union(&l.ranges);
        if l.unplaced {
            v.unplaced = v.unplaced.saturating_add(delta_bytes);
        }
        v.size = v.size.max(l.size);
        v.requests = v.requests.saturating_add(delta);
        v.bytes = v.bytes.saturating_add(delta_bytes);
        if delta > 0 {
            *self
                .fact_deltas
                .referers
                .entry((l.file_id, l.day, l.referer))
                .or_default() += delta;
            v.servers |= server_bit(l.server_id);
            // Only new lines bring facts (see `store::facts`).
            v.facts = Some(v.facts.map_or(l.facts, |f| f.join(l.facts)));
        }
        if delta != 0 || delta_bytes != 0 {
            let sd = self.server_days.entry((l.server_id, l.day)).or_default();
            sd.1 = sd.1.saturating_add(delta);
            sd.2 = sd.2.saturating_add(delta_bytes);
        }
    }
}
