//! Turns a byte stream of access lines into batches of counted hits.
//!
//! This is the one place where lines are split, parsed and classified, for the
//! pipe and for imports alike. A [`Batch`] keeps only what counting needs of
//! each counted line (client, normalised path, method, status, bytes and the
//! identity fields: `%t`, `%r`, Referer, User-Agent) in one arena, so a
//! batch costs two allocations however many lines it holds. The raw client
//! address lives only in memory: it is hashed with the database's secret
//! here (or by the store when the secret was not known yet), and the store
//! keeps only that hash re-keyed with its day's key (see `store`, `keys`).
//!
//! A batch can also be **hashed** ([`Batch::hash_all`]): every key the
//! store may need of each line is made ([`LineKeys`]) and the raw fields
//! are dropped, leaving only the line's facts (day, method, status, bytes,
//! identity bits, normalised path). That is the form the outage queue
//! keeps on disk (see `queue`); `store::dedup::line_keys` serves it from
//! the keys alone.
//!
//! What the statistics need of the raw fields is taken here too, before
//! anything is hashed ([`LineFacts`]): the client class of the User-Agent
//! (`agent`, classified once per distinct string), and the country and
//! network of the address (`geo`). These are coarse on purpose and are the
//! only things of the address besides its keyed hash that go further.

use crate::agent::{AgentClassifier, ClientClass};
use crate::classify::{Classifier, Ignored, Method};
use crate::geo::{Country, GeoDb, Network};
use crate::keys::{KeyHasher, LineFields, LineKeys, Scratch};
use crate::logformat::{identity, DayCache, LogFormat, Reject};
use crate::store::Origin;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// Lines longer than this are rejected without being buffered whole
/// (Apache lines over 8 KiB exist; 1 MiB is far beyond any real one).
pub const MAX_LINE: usize = 1 << 20;

/// How many rejected lines are remembered with their line number.
const REJECT_SAMPLES: usize = 5;

/// What the statistics keep of one counted line's raw fields (see the
/// module header): fixed per line, so the same line read twice gives the
/// same facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineFacts {
    pub class: ClientClass,
    /// `None`: not looked up (no `--geoip`); else the database's answer.
    pub country: Option<Country>,
    pub network: Network,
}

impl Default for LineFacts {
    fn default() -> LineFacts {
        LineFacts {
            class: ClientClass::Other,
            country: None,
            network: Network::Unknown,
        }
    }
}

/// One counted line. Ranges point into the batch arena.
///
/// These are a line's facts: one that a later feature adds (a client
/// class, a country) goes here, and into the outage queue's record
/// (`queue::encode_batch`, whose format version then goes up), so that a
/// queued line keeps it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub day: i32,
    pub method: Method,
    pub status: u16,
    pub bytes: u64,
    /// Which identity fields the line has (`logformat::identity` bits).
    pub identity: u8,
    pub facts: LineFacts,
    /// The host part of the Referer (`referer::host_part`); empty: direct.
    /// Kept when the batch is hashed (a host is no client's).
    referer_host: Range<u32>,
    client: Range<u32>,
    path: Range<u32>,
    time: Range<u32>,
    request_line: Range<u32>,
    referer: Range<u32>,
    user_agent: Range<u32>,
}

/// A rejected line remembered for the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectSample {
    pub line_no: u64,
    pub reason: Reject,
}

/// What happened to the lines of a batch (or, merged, of a whole run).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LineStats {
    pub lines: u64,
    /// Lines that met the counting rules (before "seen before" is asked).
    pub candidates: u64,
    pub ignored_method: u64,
    pub ignored_status: u64,
    pub ignored_ext: u64,
    pub rejected: BTreeMap<Reject, u64>,
    pub samples: Vec<RejectSample>,
    /// Counted lines given up because the database was unwritable and the
    /// pending queue was full (pipe mode only).
    pub dropped: u64,
}

impl LineStats {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn merge(&mut self, other: &LineStats) {
        self.lines += other.lines;
        self.candidates += other.candidates;
        self.ignored_method += other.ignored_method;
        self.ignored_status += other.ignored_status;
        self.ignored_ext += other.ignored_ext;
        self.dropped += other.dropped;
        for (r, n) in &other.rejected {
            *self.rejected.entry(*r).or_default() += n;
        }
        for s in &other.samples {
            if self.samples.len() < REJECT_SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }
}

/// Counted hits of a run of lines, plus what happened to the others.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    arena: Vec<u8>,
    hits: Vec<Hit>,
    /// (visitor key, line fingerprint over the hit's own identity fields)
    /// per hit, when the reader could hash.
    keys: Vec<(i64, i64)>,
    /// Which secret made `keys` (see [`KeyHasher::id`]), and `hashed`.
    keyed_with: u64,
    /// Hashed form (see [`Batch::hash_all`]): every key of every hit, and
    /// no raw field left in the arena (only paths). `None`: raw form.
    hashed: Option<Vec<LineKeys>>,
    /// Which identity fields the format that read these lines logs.
    pub format_identity: u8,
    /// The server whose log these lines are from (`--server`): two servers'
    /// logs are two streams, so a line's identity includes it.
    pub server: Arc<str>,
    pub stats: LineStats,
    /// Where the lines come from when it is not a live stream (Apache's
    /// pipe, nginx's datagrams: `None`): a followed file's origin.
    pub origin: Option<Origin>,
    /// How far its source is read once this batch is committed (a followed
    /// file's checkpoint): recorded in the same transaction as its lines.
    pub mark: Option<BatchMark>,
    /// The hits carry no [`LineFacts`] (lines queued by a dlcount that did
    /// not take them): the store marks their days' facts unknown.
    pub facts_missing: bool,
}

/// A named position carried by a batch (see `store::Mark`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMark {
    pub name: String,
    pub value: String,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn hits(&self) -> &[Hit] {
        &self.hits
    }

    /// Precomputed keys of hit `i`, if they were made with the secret `id`.
    pub fn keys(&self, i: usize, id: u64) -> Option<(i64, i64)> {
        if self.hashed.is_none() && self.keyed_with == id && self.keys.len() == self.hits.len() {
            Some(self.keys[i])
        } else {
            None
        }
    }

    /// Whether the batch is hashed: its lines are known only by their
    /// [`LineKeys`], made with the secret [`Batch::keyed_with`].
    pub fn is_hashed(&self) -> bool {
        self.hashed.is_some()
    }

    /// Which secret made the batch's keys (see [`KeyHasher::id`]).
    pub fn keyed_with(&self) -> u64 {
        self.keyed_with
    }

    /// Every key of hit `i` of a hashed batch; `None` for a raw batch.
    pub fn hashed_keys(&self, i: usize) -> Option<&LineKeys> {
        self.hashed.as_ref().map(|k| &k[i])
    }

    /// An empty hashed batch, for lines of `server`'s log keyed with the
    /// secret `keyed_with` and read with a format that logs the identity
    /// fields `format_identity`.
    pub fn hashed(format_identity: u8, server: Arc<str>, keyed_with: u64) -> Batch {
        Batch {
            keyed_with,
            format_identity,
            server,
            hashed: Some(Vec::new()),
            ..Batch::default()
        }
    }

    /// Adds a line to a hashed batch: its facts, path and keys.
    #[allow(clippy::too_many_arguments)]
    pub fn push_hashed(
        &mut self,
        day: i32,
        method: Method,
        status: u16,
        bytes: u64,
        identity: u8,
        facts: LineFacts,
        path: &[u8],
        referer_host: &[u8],
        keys: LineKeys,
    ) {
        let path = self.push_bytes(path);
        let referer_host = self.push_bytes(referer_host);
        self.hits.push(Hit {
            day,
            method,
            status,
            bytes,
            identity,
            facts,
            referer_host,
            client: 0..0,
            path,
            time: 0..0,
            request_line: 0..0,
            referer: 0..0,
            user_agent: 0..0,
        });
        self.hashed.get_or_insert_with(Vec::new).push(keys);
    }

    /// Makes every key of every hit with `hasher` and drops the raw fields
    /// (client, `%t`, `%r`, Referer, User-Agent), keeping one copy of each
    /// path, and the server's name. The reader's visitor keys serve when `hasher` made them. A
    /// hashed batch stays as it is (it has nothing left to hash).
    pub fn hash_all(&mut self, hasher: &KeyHasher, scratch: &mut Scratch) {
        if self.hashed.is_some() {
            return;
        }
        let reuse = self.keyed_with == hasher.id() && self.keys.len() == self.hits.len();
        let mut all = Vec::with_capacity(self.hits.len());
        for (i, h) in self.hits.iter().enumerate() {
            let visitor = if reuse {
                self.keys[i].0
            } else {
                hasher.visitor(scratch, self.client(h), self.path(h), h.day)
            };
            all.push(hasher.line_keys(scratch, visitor, &self.line_fields(h)));
        }
        let mut arena = Vec::new();
        let mut paths: rustc_hash::FxHashMap<&[u8], Range<u32>> = Default::default();
        let mut hits = std::mem::take(&mut self.hits);
        for h in &mut hits {
            for r in [&mut h.path, &mut h.referer_host] {
                let text = &self.arena[r.start as usize..r.end as usize];
                *r = paths
                    .entry(text)
                    .or_insert_with(|| {
                        let start = arena.len() as u32;
                        arena.extend_from_slice(text);
                        start..arena.len() as u32
                    })
                    .clone();
            }
            for r in [
                &mut h.client,
                &mut h.time,
                &mut h.request_line,
                &mut h.referer,
                &mut h.user_agent,
            ] {
                *r = 0..0;
            }
        }
        drop(paths);
        // The raw bytes go now; the old arena is not kept for reuse.
        self.arena = arena;
        self.hits = hits;
        self.keys = Vec::new();
        self.keyed_with = hasher.id();
        self.hashed = Some(all);
    }

    /// Moves the counted hits (with their keys and bytes) into a new batch
    /// of the same format, leaving this one with the line accounting only.
    pub fn take_hits(&mut self) -> Batch {
        Batch {
            arena: std::mem::take(&mut self.arena),
            hits: std::mem::take(&mut self.hits),
            keys: std::mem::take(&mut self.keys),
            keyed_with: self.keyed_with,
            hashed: self.hashed.take(),
            format_identity: self.format_identity,
            server: self.server.clone(),
            stats: LineStats::default(),
            origin: self.origin,
            // The position goes with the lines it covers (a checkpoint
            // left behind could be committed before them).
            mark: self.mark.take(),
            facts_missing: self.facts_missing,
        }
    }

    pub fn client(&self, h: &Hit) -> &[u8] {
        &self.arena[h.client.start as usize..h.client.end as usize]
    }

    pub fn path(&self, h: &Hit) -> &[u8] {
        &self.arena[h.path.start as usize..h.path.end as usize]
    }

    pub fn time(&self, h: &Hit) -> &[u8] {
        self.slice(&h.time)
    }

    /// The host part of hit `h`'s Referer (empty: direct).
    pub fn referer_host(&self, h: &Hit) -> &[u8] {
        self.slice(&h.referer_host)
    }

    /// What identifies the line of hit `h` (see `keys`).
    pub fn line_fields(&self, h: &Hit) -> LineFields<'_> {
        LineFields {
            time: self.slice(&h.time),
            method: h.method,
            status: h.status,
            bytes: h.bytes,
            request_line: self.slice(&h.request_line),
            referer: self.slice(&h.referer),
            user_agent: self.slice(&h.user_agent),
            server: self.server.as_bytes(),
        }
    }

    fn slice(&self, r: &Range<u32>) -> &[u8] {
        &self.arena[r.start as usize..r.end as usize]
    }

    /// Gives up the counted hits (the database cannot take them), keeping the accounting.
    pub fn drop_hits(&mut self) {
        self.stats.dropped += self.hits.len() as u64;
        self.hits = Vec::new();
        self.arena = Vec::new();
        self.keys = Vec::new();
        self.hashed = None;
    }

    pub fn is_empty(&self) -> bool {
        self.hits.is_empty() && self.stats.lines == 0 && self.mark.is_none()
    }

    /// Moves hits `at..` (with their keys and bytes) into a new batch of the
    /// same format and origin; the line accounting stays here, the mark goes
    /// with the tail (it covers the tail's lines too). The pipe commits a
    /// batch in smaller pieces when a full disk cannot take it whole.
    pub fn split_off(&mut self, at: usize) -> Batch {
        let mut tail = Batch {
            keyed_with: self.keyed_with,
            format_identity: self.format_identity,
            origin: self.origin,
            mark: self.mark.take(),
            server: self.server.clone(),
            facts_missing: self.facts_missing,
            ..Batch::default()
        };
        if self.keys.len() == self.hits.len() && at < self.keys.len() {
            tail.keys = self.keys.split_off(at);
        }
        if let Some(all) = self.hashed.as_mut() {
            tail.hashed = Some(all.split_off(at.min(all.len())));
        }
        for mut h in self.hits.split_off(at.min(self.hits.len())) {
            for r in [
                &mut h.client,
                &mut h.path,
                &mut h.referer_host,
                &mut h.time,
                &mut h.request_line,
                &mut h.referer,
                &mut h.user_agent,
            ] {
                let bytes = &self.arena[r.start as usize..r.end as usize];
                *r = tail.push_bytes(bytes);
            }
            tail.hits.push(h);
        }
        tail
    }

    fn push_bytes(&mut self, b: &[u8]) -> Range<u32> {
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(b);
        start..self.arena.len() as u32
    }
}

/// Parses and classifies lines into batches. One per reading thread.
#[derive(Debug, Clone)]
pub struct LineProcessor {
    format: LogFormat,
    classifier: Classifier,
    days: DayCache,
    path_buf: Vec<u8>,
    /// Set once the database's secret is known; then hashing happens here.
    hasher: Arc<OnceLock<KeyHasher>>,
    scratch: Scratch,
    server: Arc<str>,
    /// Per reading thread, so its cache needs no lock (see `agent`).
    agents: AgentClassifier,
    geo: Option<Arc<GeoDb>>,
}

impl LineProcessor {
    pub fn new(format: LogFormat, classifier: Classifier) -> LineProcessor {
        LineProcessor {
            format,
            classifier,
            days: DayCache::default(),
            path_buf: Vec::with_capacity(256),
            hasher: Arc::default(),
            scratch: Scratch::default(),
            server: Arc::from(""),
            agents: AgentClassifier::new(),
            geo: None,
        }
    }

    /// Looks up the country of every counted line's address in `db` (`--geoip`).
    pub fn with_geoip(mut self, db: Option<Arc<GeoDb>>) -> LineProcessor {
        self.geo = db;
        self
    }

    /// Names the server whose log this processor reads (`--server`).
    pub fn with_server(mut self, server: &str) -> LineProcessor {
        self.server = Arc::from(server);
        self
    }

    /// Shares the slot where the database owner puts the hasher once it has
    /// opened the database; from then on this thread hashes.
    pub fn with_hasher(mut self, slot: Arc<OnceLock<KeyHasher>>) -> LineProcessor {
        self.hasher = slot;
        self
    }

    /// Handles one line (without its newline); `line_no` is 1-based within its source.
    pub fn process_line(&mut self, line: &[u8], line_no: u64, batch: &mut Batch) {
        batch.stats.lines += 1;
        let mut rec = match self.format.parse(line, &mut self.days) {
            Ok(rec) => rec,
            Err(reason) => return reject(batch, line_no, reason),
        };
        match self.classifier.classify(
            rec.method,
            rec.status,
            rec.target,
            rec.target_form,
            self.format.escape(),
            &mut self.path_buf,
        ) {
            Ok(method) => {
                self.format.parse_identity(line, &mut rec);
                batch.format_identity = self.format.identity() | identity::SERVER;
                if batch.hits.is_empty() {
                    batch.server = self.server.clone();
                }
                batch.stats.candidates += 1;
                let client = batch.push_bytes(rec.client);
                let path = batch.push_bytes(&self.path_buf);
                let time = batch.push_bytes(rec.time);
                let request_line = batch.push_bytes(rec.request_line);
                let referer = batch.push_bytes(rec.referer);
                let referer_host = match crate::referer::host_part(rec.referer) {
                    Some(host) => batch.push_bytes(host),
                    None => 0..0,
                };
                let user_agent = batch.push_bytes(rec.user_agent);
                // The raw address's last use besides its hash (module header).
                let facts = LineFacts {
                    class: self.agents.class(rec.user_agent),
                    country: self.geo.as_ref().map(|g| g.country(rec.client)),
                    network: crate::geo::network(rec.client),
                };
                let hit = Hit {
                    day: rec.day,
                    method,
                    status: rec.status,
                    bytes: rec.bytes,
                    identity: rec.identity | identity::SERVER,
                    facts,
                    referer_host,
                    client,
                    path,
                    time,
                    request_line,
                    referer,
                    user_agent,
                };
                if let Some(hasher) = self.hasher.get() {
                    if batch.keys.len() == batch.hits.len() {
                        if batch.hits.is_empty() {
                            batch.keyed_with = hasher.id();
                        }
                        if batch.keyed_with == hasher.id() {
                            let visitor = hasher.visitor(
                                &mut self.scratch,
                                rec.client,
                                &self.path_buf,
                                rec.day,
                            );
                            let line = hasher.line(
                                &mut self.scratch,
                                visitor,
                                &batch.line_fields(&hit),
                                hit.identity,
                            );
                            batch.keys.push((visitor, line));
                        }
                    }
                }
                batch.hits.push(hit);
            }
            Err(Ignored::Method) => batch.stats.ignored_method += 1,
            Err(Ignored::Status) => batch.stats.ignored_status += 1,
            Err(Ignored::Extension) => batch.stats.ignored_ext += 1,
        }
    }

    /// Counts a line that was too long to keep.
    pub fn too_long(&mut self, line_no: u64, batch: &mut Batch) {
        self.rejected(line_no, Reject::TooLong, batch);
    }

    /// Counts a line rejected before parsing (too long, not a syslog datagram).
    pub fn rejected(&mut self, line_no: u64, reason: Reject, batch: &mut Batch) {
        batch.stats.lines += 1;
        reject(batch, line_no, reason);
    }
}

fn reject(batch: &mut Batch, line_no: u64, reason: Reject) {
    *batch.stats.rejected.entry(reason).or_default() += 1;
    if batch.stats.samples.len() < REJECT_SAMPLES {
        batch.stats.samples.push(RejectSample { line_no, reason });
    }
}

/// Splits chunks of a byte stream into lines, keeping a partial line between
/// chunks. A line longer than [`MAX_LINE`] is reported as too long and its
/// bytes are dropped as they arrive, so memory stays bounded.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    overlong: bool,
    line_no: u64,
}

/// One item from the splitter.
pub enum Piece<'a> {
    Line(&'a [u8], u64),
    TooLong(u64),
}

impl LineSplitter {
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    /// Lines completed so far.
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// Feeds a chunk; calls `f` for every complete line.
    pub fn feed(&mut self, chunk: &[u8], mut f: impl FnMut(Piece<'_>)) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            self.line_no += 1;
            let part = &chunk[start..nl];
            if self.overlong {
                self.overlong = false;
                f(Piece::TooLong(self.line_no));
            } else if self.partial.is_empty() && part.len() <= MAX_LINE {
                f(Piece::Line(part, self.line_no));
            } else if self.partial.len() + part.len() > MAX_LINE {
                self.partial.clear();
                f(Piece::TooLong(self.line_no));
            } else {
                self.partial.extend_from_slice(part);
                f(Piece::Line(&self.partial, self.line_no));
                self.partial.clear();
            }
            start = nl + 1;
        }
        let tail = &chunk[start..];
        if !self.overlong && !tail.is_empty() {
            if self.partial.len() + tail.len() > MAX_LINE {
                self.partial = Vec::new();
                self.overlong = true;
            } else {
                self.partial.extend_from_slice(tail);
            }
        }
    }

    /// End of stream: a last line without a newline still counts.
    pub fn finish(&mut self, mut f: impl FnMut(Piece<'_>)) {
        if self.overlong {
            self.overlong = false;
            self.line_no += 1;
            f(Piece::TooLong(self.line_no));
        } else if !self.partial.is_empty() {
            self.line_no += 1;
            let last = std::mem::take(&mut self.partial);
            f(Piece::Line(&last, self.line_no));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<(Vec<u8>, u64)> {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        let mut push = |p: Piece<'_>| match p {
            Piece::Line(l, n) => out.push((l.to_vec(), n)),
            Piece::TooLong(n) => out.push((b"<too long>".to_vec(), n)),
        };
        for c in chunks {
            s.feed(c, &mut push);
        }
        s.finish(&mut push);
        out
    }

    #[test]
    fn splitter_joins_partial_lines_and_keeps_the_last_one() {
        let got = lines_of(&[b"ab", b"c\nde", b"f\n\ng"]);
        assert_eq!(
            got,
            vec![
                (b"abc".to_vec(), 1),
                (b"def".to_vec(), 2),
                (b"".to_vec(), 3),
                (b"g".to_vec(), 4)
            ]
        );
    }

    #[test]
    fn splitter_drops_overlong_lines_without_buffering_them() {
        let big = vec![b'x'; MAX_LINE + 10];
        let got = lines_of(&[b"a\n", &big[..MAX_LINE / 2], &big[MAX_LINE / 2..], b"\nb\n"]);
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), 1),
                (b"<too long>".to_vec(), 2),
                (b"b".to_vec(), 3)
            ]
        );
        // A 100 KiB line is not "too long".
        let line = vec![b'y'; 100 * 1024];
        let got = lines_of(&[&line, b"\n"]);
        assert_eq!(got[0].0.len(), 100 * 1024);
    }

    #[test]
    fn processor_keeps_counted_hits_and_counts_the_rest() {
        let mut p = LineProcessor::new(
            LogFormat::compile("combined").unwrap(),
            Classifier::new(&[".iso"]),
        );
        let mut b = Batch::new();
        let lines: &[&[u8]] = &[
            br#"203.0.113.7 - - [22/Nov/2026:02:35:41 +0100] "GET /isos//a.iso?x HTTP/1.1" 206 100 "-" "-""#,
            br#"203.0.113.7 - - [22/Nov/2026:02:35:41 +0100] "GET /isos/a.iso.md5 HTTP/1.1" 200 100 "-" "-""#,
            br#"203.0.113.7 - - [22/Nov/2026:02:35:41 +0100] "POST /isos/a.iso HTTP/1.1" 200 100 "-" "-""#,
            br#"203.0.113.7 - - [22/Nov/2026:02:35:41 +0100] "GET /isos/a.iso HTTP/1.1" 404 100 "-" "-""#,
            b"junk",
        ];
        for (i, l) in lines.iter().enumerate() {
            p.process_line(l, i as u64 + 1, &mut b);
        }
        assert_eq!(b.hits().len(), 1);
        let h = &b.hits()[0];
        assert_eq!(b.client(h), b"203.0.113.7");
        assert_eq!(b.path(h), b"/isos/a.iso");
        assert_eq!(b.time(h), b"22/Nov/2026:02:35:41 +0100");
        assert_eq!((h.status, h.bytes, h.method), (206, 100, Method::Get));
        let s = &b.stats;
        assert_eq!(
            (
                s.lines,
                s.candidates,
                s.ignored_ext,
                s.ignored_method,
                s.ignored_status
            ),
            (5, 1, 1, 1, 1)
        );
        assert_eq!(s.rejected_total(), 1);
        assert_eq!(
            s.samples,
            vec![RejectSample {
                line_no: 5,
                reason: Reject::Layout
            }]
        );
    }
}
