//! Moving counts between databases (`dlcount-pipe migrate`): the whole
//! content of a store as plain rows ([`Dump`]), and the pure policy that
//! merges a source into a target ([`plan`]). Backends only export and
//! replace rows; every decision is here, where it is unit-tested.
//!
//! Invariants:
//! - **Exact when it can be.** Into a database that has counted nothing,
//!   everything moves as it is (the secret, open days' keys and rows,
//!   closed days, legacy months, identities, import sources), so counting
//!   goes on exactly: a line counted before the move is known after it.
//! - **Idempotent.** Merging the same source again changes nothing: rows of
//!   one lineage (the same secret and day key) merge by their maximum, and
//!   figures added from a database with another secret are marked per day
//!   (`migrated:<source id>:<day>`) and never added twice.
//! - **Never a guess.** Two databases with different secrets cannot tell
//!   whether their clients are the same: their closed days' figures add up
//!   (as two separate counts did), and their open days are left for an
//!   `import` of those days' logs, which matches lines exactly — unless
//!   the admin asks to add those figures too (`--add-open-days`).

use super::dedup::SeenLine;
use crate::keys::KeyHasher;
use std::collections::{BTreeMap, HashMap};

/// Everything a store holds, by value. Files and servers are named, rows
/// refer to them by index into [`Dump::files`] and [`Dump::servers`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dump {
    pub secret: [u8; 32],
    /// When the database was created (RFC 3339), as it says.
    pub created: Option<String>,
    pub files: Vec<String>,
    /// Bit `i` of a visitor's `servers` is `servers[i]`.
    pub servers: Vec<String>,
    pub days: Vec<DayRow>,
    pub seen_lines: Vec<SeenRow>,
    pub visitors: Vec<VisitorRow>,
    /// Per file (index) and day.
    pub daily: Vec<FigureRow>,
    /// Per server (index) and day.
    pub server_daily: Vec<FigureRow>,
    /// Per file (index), day and fact (`store::facts`).
    pub facts: Vec<FactRow>,
    /// Per day and word of its network bitmap (`store::facts`).
    pub networks: Vec<NetworkRow>,
    pub legacy: Vec<LegacyRow>,
    /// Import sources (an id in `SeenLine::source` and `VisitorRow::run`).
    pub sources: Vec<SourceRow>,
    /// Named positions (spool offsets, follow checkpoints, migration marks).
    pub marks: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRow {
    pub day: i32,
    /// Unix time of the last line that touched it.
    pub touched: i64,
    pub closed: bool,
    pub identity: i64,
    /// `days.completion`: the day keeps its downloads' completion.
    pub completion: bool,
    /// The day's key; `None` once closed.
    pub key: Option<[u8; 32]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRow {
    pub day: i32,
    pub hash: i64,
    pub seen: SeenLine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorRow {
    pub day: i32,
    pub key: i64,
    pub file: usize,
    pub requests: i64,
    pub bytes: i64,
    pub run: i64,
    pub servers: i64,
    /// `store::facts`: the class's rank (-1 unknown) and the stored country.
    pub class: i64,
    pub country: i64,
    /// What it covered (`store::dedup::HeldCover`): ranges (stored form,
    /// `None`: none), unplaced bytes, complete.
    pub ranges: Option<Vec<u8>>,
    pub got: i64,
    pub complete: bool,
}

/// One word of a day's network bitmap (`store::facts::NETWORK_WORDS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    pub day: i32,
    pub word: i64,
    pub bits: i64,
}

/// Downloads of a file on a day that have one fact (`store::facts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactRow {
    pub file: usize,
    pub day: i32,
    /// `class`, `country` or `network`.
    pub kind: String,
    pub value: String,
    pub n: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureRow {
    /// A file index (`daily`) or a server index (`server_daily`).
    pub of: usize,
    pub day: i32,
    pub downloads: i64,
    pub requests: i64,
    pub bytes: i64,
    /// `daily.completed` (`None`: unknown; always `None` for servers).
    pub completed: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyRow {
    pub file: usize,
    pub month: String,
    pub downloads: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub started: i64,
}

impl Dump {
    /// Whether nothing was ever counted into it (a new database).
    pub fn is_empty(&self) -> bool {
        self.days.is_empty() && self.daily.is_empty() && self.legacy.is_empty()
    }

    /// The secret's public id (see [`KeyHasher::id`]).
    pub fn secret_id(&self) -> u64 {
        KeyHasher::new(self.secret).id()
    }
}

/// Options of [`plan`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// With another secret: add the open days' figures too (their clients
    /// cannot be matched, and an `import` of their logs would count them again).
    pub add_open_days: bool,
}

/// What a [`plan`] does, for the command's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The target had counted nothing: it became a copy of the source.
    pub copied_whole: bool,
    /// The source's secret differs from the target's.
    pub foreign: bool,
    /// Days moved or merged with their keys (exact).
    pub days_merged: Vec<i32>,
    /// Days whose figures were added (another secret).
    pub days_added: Vec<i32>,
    /// Days added by an earlier run, left alone.
    pub days_already_added: Vec<i32>,
    /// Open days of another secret not moved: import their logs.
    pub open_days_left: Vec<i32>,
    /// Days both databases counted apart under different keys: not moved.
    pub diverged_days: Vec<i32>,
}

/// The target's content after merging `source` into `target`.
pub fn plan(source: &Dump, target: &Dump, opts: Options) -> (Dump, Outcome) {
    let mut out = Outcome::default();
    if target.is_empty() {
        out.copied_whole = true;
        out.days_merged = source.days.iter().map(|d| d.day).collect();
        let mut copy = source.clone();
        // The target's own marks (none that matter in a new database) go.
        copy.marks.sort();
        return (copy, out);
    }
    let mut merged = Merge::new(target);
    if source.secret == target.secret {
        merged.same_lineage(source, &mut out);
    } else {
        out.foreign = true;
        merged.foreign(source, opts, &mut out);
    }
    for l in &source.legacy {
        let file = merged.file(&source.files[l.file]);
        let e = merged.legacy.entry((file, l.month.clone())).or_insert(0);
        *e = (*e).max(l.downloads);
    }
    (merged.finish(), out)
}

/// The target's rows, keyed for merging.
struct Merge {
    base: Dump,
    file_idx: HashMap<String, usize>,
    server_idx: HashMap<String, usize>,
    days: BTreeMap<i32, DayRow>,
    seen: BTreeMap<(i32, i64), SeenLine>,
    visitors: BTreeMap<(i32, i64), VisitorRow>,
    daily: BTreeMap<(usize, i32), FigureRow>,
    server_daily: BTreeMap<(usize, i32), FigureRow>,
    facts: BTreeMap<(usize, i32, String, String), i64>,
    /// A set of networks: merged by OR whatever the lineage.
    networks: BTreeMap<(i32, i64), i64>,
    legacy: BTreeMap<(usize, String), i64>,
    marks: BTreeMap<String, String>,
}

impl Merge {
    fn new(target: &Dump) -> Merge {
        let t = target.clone();
        Merge {
            file_idx: t
                .files
                .iter()
                .enumerate()
                .map(|(i, f)| (f.clone(), i))
                .collect(),
            server_idx: t
                .servers
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i))
                .collect(),
            days: t.days.iter().map(|d| (d.day, d.clone())).collect(),
            seen: t
                .seen_lines
                .iter()
                .map(|s| ((s.day, s.hash), s.seen))
                .collect(),
            visitors: t
                .visitors
                .iter()
                .map(|v| ((v.day, v.key), v.clone()))
                .collect(),
            daily: t.daily.iter().map(|f| ((f.of, f.day), f.clone())).collect(),
            server_daily: t
                .server_daily
                .iter()
                .map(|f| ((f.of, f.day), f.clone()))
                .collect(),
            facts: t
                .facts
                .iter()
                .map(|f| ((f.file, f.day, f.kind.clone(), f.value.clone()), f.n))
                .collect(),
            networks: t
                .networks
                .iter()
                .map(|n| ((n.day, n.word), n.bits))
                .collect(),
            legacy: t
                .legacy
                .iter()
                .map(|l| ((l.file, l.month.clone()), l.downloads))
                .collect(),
            marks: t.marks.iter().cloned().collect(),
            base: t,
        }
    }

    fn file(&mut self, path: &str) -> usize {
        if let Some(&i) = self.file_idx.get(path) {
            return i;
        }
        self.base.files.push(path.to_string());
        let i = self.base.files.len() - 1;
        self.file_idx.insert(path.to_string(), i);
        i
    }

    fn server(&mut self, name: &str) -> usize {
        if let Some(&i) = self.server_idx.get(name) {
            return i;
        }
        self.base.servers.push(name.to_string());
        let i = self.base.servers.len() - 1;
        self.server_idx.insert(name.to_string(), i);
        i
    }

    /// A source visitor's server bits in the target's server numbering.
    fn server_bits(&mut self, source: &Dump, bits: i64) -> i64 {
        let mut out = 0i64;
        for (i, name) in source.servers.iter().enumerate() {
            if bits & (1i64 << i) != 0 {
                out |= 1i64 << self.server(name);
            }
        }
        out
    }

    /// Same secret: each day of the source is moved with its key when the
    /// target lacks it, merged by maximum when the target has it under the
    /// same key (or both closed it), and left out when both counted it
    /// apart under different keys (its lines cannot be matched).
    fn same_lineage(&mut self, source: &Dump, out: &mut Outcome) {
        for d in &source.days {
            let mergeable = match self.days.get(&d.day) {
                None => true,
                Some(t) => t.key == d.key || t.closed || d.closed,
            };
            if !mergeable {
                out.diverged_days.push(d.day);
                continue;
            }
            out.days_merged.push(d.day);
            let day = self.days.entry(d.day).or_insert_with(|| d.clone());
            day.touched = day.touched.max(d.touched);
            // Completion is known of a day only where both counted it so.
            day.completion &= d.completion;
            if d.closed && !day.closed {
                // Closed in the source: final there, and its rows are gone.
                day.closed = true;
                day.key = None;
            }
        }
        let moved: std::collections::BTreeSet<i32> = out.days_merged.iter().copied().collect();
        let open = |m: &Merge, day: i32| m.days.get(&day).is_some_and(|d| !d.closed);
        for s in &source.seen_lines {
            if !moved.contains(&s.day) || !open(self, s.day) {
                continue;
            }
            // Import-file ids of another database mean nothing here.
            let incoming = SeenLine {
                source: 0,
                source_n: 0,
                source_bytes: 0,
                ..s.seen
            };
            let e = self.seen.entry((s.day, s.hash)).or_insert(incoming);
            e.live = e.live.max(incoming.live);
            e.imported = e.imported.max(incoming.imported);
            e.live_bytes = e.live_bytes.max(incoming.live_bytes);
            e.imported_bytes = e.imported_bytes.max(incoming.imported_bytes);
        }
        for v in &source.visitors {
            if !moved.contains(&v.day) || !open(self, v.day) {
                continue;
            }
            let file = self.file(&source.files[v.file]);
            let servers = self.server_bits(source, v.servers);
            let e = self.visitors.entry((v.day, v.key)).or_insert(VisitorRow {
                file,
                run: 0,
                servers: 0,
                requests: 0,
                bytes: 0,
                ranges: None,
                got: 0,
                complete: false,
                ..v.clone()
            });
            e.requests = e.requests.max(v.requests);
            e.bytes = e.bytes.max(v.bytes);
            // Covered ranges are a union, the unplaced bytes a figure like
            // `bytes`, and being complete only ever turns on.
            e.ranges = union_ranges(e.ranges.as_deref(), v.ranges.as_deref());
            e.got = e.got.max(v.got);
            e.complete |= v.complete;
            e.servers |= servers;
            // The facts are joins (see `store::facts`): merging is one more join.
            e.class = super::facts::join_class(e.class, v.class);
            e.country = super::facts::join_country(e.country, v.country);
        }
        for n in &source.networks {
            if moved.contains(&n.day) {
                *self.networks.entry((n.day, n.word)).or_insert(0) |= n.bits;
            }
        }
        for f in &source.facts {
            if moved.contains(&f.day) {
                let file = self.file(&source.files[f.file]);
                let e = self
                    .facts
                    .entry((file, f.day, f.kind.clone(), f.value.clone()))
                    .or_insert(0);
                *e = (*e).max(f.n);
            }
        }
        for f in &source.daily {
            if moved.contains(&f.day) {
                let of = self.file(&source.files[f.of]);
                max_into(&mut self.daily, of, f);
            }
        }
        for f in &source.server_daily {
            if moved.contains(&f.day) {
                let of = self.server(&source.servers[f.of]);
                max_into(&mut self.server_daily, of, f);
            }
        }
    }

    /// Another secret: closed days' figures (and open days' with
    /// `add_open_days`) are added once, marked per day.
    fn foreign(&mut self, source: &Dump, opts: Options, out: &mut Outcome) {
        let id = source.secret_id();
        for d in &source.days {
            let mark = format!("migrated:{id:016x}:{}", d.day);
            if self.marks.contains_key(&mark) {
                out.days_already_added.push(d.day);
                continue;
            }
            if !d.closed && !opts.add_open_days {
                out.open_days_left.push(d.day);
                continue;
            }
            out.days_added.push(d.day);
            self.marks.insert(mark, "added".to_string());
        }
        let added: std::collections::BTreeSet<i32> = out.days_added.iter().copied().collect();
        for f in &source.daily {
            if added.contains(&f.day) {
                let of = self.file(&source.files[f.of]);
                add_into(&mut self.daily, of, f);
            }
        }
        for f in &source.server_daily {
            if added.contains(&f.day) {
                let of = self.server(&source.servers[f.of]);
                add_into(&mut self.server_daily, of, f);
            }
        }
        for n in &source.networks {
            if added.contains(&n.day) {
                *self.networks.entry((n.day, n.word)).or_insert(0) |= n.bits;
            }
        }
        for f in &source.facts {
            if added.contains(&f.day) {
                let file = self.file(&source.files[f.file]);
                let e = self
                    .facts
                    .entry((file, f.day, f.kind.clone(), f.value.clone()))
                    .or_insert(0);
                *e = e.saturating_add(f.n);
            }
        }
    }

    fn finish(self) -> Dump {
        Dump {
            secret: self.base.secret,
            created: self.base.created,
            files: self.base.files,
            servers: self.base.servers,
            days: self.days.into_values().collect(),
            seen_lines: self
                .seen
                .into_iter()
                .map(|((day, hash), seen)| SeenRow { day, hash, seen })
                .collect(),
            visitors: self.visitors.into_values().collect(),
            daily: self.daily.into_values().collect(),
            server_daily: self.server_daily.into_values().collect(),
            facts: self
                .facts
                .into_iter()
                .map(|((file, day, kind, value), n)| FactRow {
                    file,
                    day,
                    kind,
                    value,
                    n,
                })
                .collect(),
            networks: self
                .networks
                .into_iter()
                .map(|((day, word), bits)| NetworkRow { day, word, bits })
                .collect(),
            legacy: self
                .legacy
                .into_iter()
                .map(|((file, month), downloads)| LegacyRow {
                    file,
                    month,
                    downloads,
                })
                .collect(),
            sources: self.base.sources,
            marks: self.marks.into_iter().collect(),
        }
    }
}

fn max_into(map: &mut BTreeMap<(usize, i32), FigureRow>, of: usize, f: &FigureRow) {
    let e = map.entry((of, f.day)).or_insert(FigureRow {
        of,
        downloads: 0,
        requests: 0,
        bytes: 0,
        completed: Some(0),
        ..f.clone()
    });
    e.downloads = e.downloads.max(f.downloads);
    e.requests = e.requests.max(f.requests);
    e.bytes = e.bytes.max(f.bytes);
    // One lineage: the larger count of the same downloads; unknown on
    // either side stays unknown.
    e.completed = e.completed.zip(f.completed).map(|(a, b)| a.max(b));
}

/// The union of two stored range sets (`coverage::ByteRanges::to_bytes`);
/// an unreadable one counts as none.
fn union_ranges(a: Option<&[u8]>, b: Option<&[u8]>) -> Option<Vec<u8>> {
    use crate::coverage::ByteRanges;
    let read = |x: Option<&[u8]>| x.and_then(ByteRanges::from_bytes).unwrap_or_default();
    let mut r = read(a);
    r.union(&read(b));
    (!r.is_empty()).then(|| r.to_bytes())
}

fn add_into(map: &mut BTreeMap<(usize, i32), FigureRow>, of: usize, f: &FigureRow) {
    let e = map.entry((of, f.day)).or_insert(FigureRow {
        of,
        downloads: 0,
        requests: 0,
        bytes: 0,
        completed: Some(0),
        ..f.clone()
    });
    e.downloads = e.downloads.saturating_add(f.downloads);
    e.requests = e.requests.saturating_add(f.requests);
    e.bytes = e.bytes.saturating_add(f.bytes);
    e.completed = e
        .completed
        .zip(f.completed)
        .map(|(a, b)| a.saturating_add(b));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(of: usize, day: i32, downloads: i64) -> FigureRow {
        FigureRow {
            of,
            day,
            downloads,
            requests: downloads * 2,
            bytes: downloads * 100,
            completed: Some(downloads),
        }
    }

    fn open_day(day: i32, key: u8) -> DayRow {
        DayRow {
            day,
            touched: 10,
            closed: false,
            identity: 15,
            completion: true,
            key: Some([key; 32]),
        }
    }

    fn closed_day(day: i32) -> DayRow {
        DayRow {
            day,
            touched: 5,
            closed: true,
            identity: 15,
            completion: true,
            key: None,
        }
    }

    /// A database with one closed day (100) and one open day (200) of /a.iso.
    fn db(secret: u8, key: u8) -> Dump {
        Dump {
            secret: [secret; 32],
            files: vec!["/a.iso".into()],
            servers: vec![format!("s{secret}")],
            days: vec![closed_day(100), open_day(200, key)],
            seen_lines: vec![SeenRow {
                day: 200,
                hash: 7,
                seen: SeenLine {
                    live: 1,
                    live_bytes: 100,
                    ..Default::default()
                },
            }],
            visitors: vec![VisitorRow {
                day: 200,
                key: 9,
                file: 0,
                requests: 1,
                bytes: 100,
                run: 0,
                servers: 1,
                class: 1,
                country: -1,
                ranges: Some(crate::coverage::ByteRanges::new().to_bytes()),
                got: 0,
                complete: false,
            }],
            daily: vec![figure(0, 100, 3), figure(0, 200, 1)],
            facts: vec![FactRow {
                file: 0,
                day: 200,
                kind: "class".into(),
                value: "downloader".into(),
                n: 1,
            }],
            server_daily: vec![figure(0, 100, 3), figure(0, 200, 1)],
            ..Default::default()
        }
    }

    #[test]
    fn into_a_new_database_everything_moves_as_it_is() {
        let source = db(1, 1);
        let (after, out) = plan(&source, &Dump::default(), Options::default());
        assert_eq!(after, source);
        assert!(out.copied_whole);
        assert_eq!(out.days_merged, vec![100, 200]);
    }

    #[test]
    fn the_same_lineage_merges_by_maximum_and_twice_changes_nothing() {
        let source = db(1, 1);
        // The target went on counting after a first move: day 200 grew.
        let mut target = source.clone();
        target.daily[1].downloads = 4;
        target.visitors[0].requests = 3;
        let (after, out) = plan(&source, &target, Options::default());
        assert_eq!(after.daily[1].downloads, 4);
        assert_eq!(after.visitors[0].requests, 3);
        assert_eq!(after.daily[0].downloads, 3);
        assert_eq!(out.days_merged, vec![100, 200]);
        let (again, _) = plan(&source, &after, Options::default());
        assert_eq!(again, after);
    }

    #[test]
    fn a_day_both_counted_apart_under_different_keys_is_not_moved() {
        let source = db(1, 1);
        let target = db(1, 2);
        let (after, out) = plan(&source, &target, Options::default());
        assert_eq!(out.diverged_days, vec![200]);
        assert_eq!(after.days[1].key, Some([2; 32]));
        assert_eq!(after.daily[1].downloads, 1);
    }

    #[test]
    fn another_secret_adds_closed_days_once_and_leaves_open_days_to_their_logs() {
        let source = db(1, 1);
        let target = db(2, 2);
        let (after, out) = plan(&source, &target, Options::default());
        assert!(out.foreign);
        assert_eq!(out.days_added, vec![100]);
        assert_eq!(out.open_days_left, vec![200]);
        assert_eq!(after.daily[0], figure(0, 100, 6));
        assert_eq!(after.daily[1], figure(0, 200, 1));
        // Each server keeps its own figures.
        assert_eq!(after.servers, vec!["s2".to_string(), "s1".to_string()]);
        assert_eq!(after.server_daily.len(), 3);
        // The target's own rows and keys stay.
        assert_eq!(after.days, target.days);
        assert_eq!(after.visitors, target.visitors);
        let (again, out2) = plan(&source, &after, Options::default());
        assert_eq!(again, after);
        assert_eq!(out2.days_already_added, vec![100]);
        assert!(out2.days_added.is_empty());
        // Asked for: the open day's figures are added too, once.
        let (with_open, out3) = plan(
            &source,
            &after,
            Options {
                add_open_days: true,
            },
        );
        assert_eq!(out3.days_added, vec![200]);
        assert_eq!(with_open.daily[1], figure(0, 200, 2));
        let (again, _) = plan(
            &source,
            &with_open,
            Options {
                add_open_days: true,
            },
        );
        assert_eq!(again, with_open);
    }

    #[test]
    fn legacy_months_keep_the_larger_figure() {
        let mut source = db(1, 1);
        source.legacy = vec![LegacyRow {
            file: 0,
            month: "2020-01".into(),
            downloads: 5,
        }];
        let mut target = db(2, 2);
        target.legacy = vec![LegacyRow {
            file: 0,
            month: "2020-01".into(),
            downloads: 9,
        }];
        let (after, _) = plan(&source, &target, Options::default());
        assert_eq!(after.legacy[0].downloads, 9);
        let (back, _) = plan(&target, &source, Options::default());
        assert_eq!(back.legacy[0].downloads, 9);
    }
}
