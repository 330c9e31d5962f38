//! The SQLite database: the only authority on "seen before".
//!
//! Invariants this module keeps:
//! - **Once ever.** A download is a distinct (client, file, day) visitor row;
//!   it is counted when that row is created, in the same transaction that
//!   records the line that created it.
//! - **Multiset idempotency.** Every counted line has a `seen_lines` row keyed
//!   by (day, line hash) holding how many identical copies were seen *live*
//!   (summed over pipe instances, which each get a disjoint share of Apache's
//!   stream) and the most copies any one *imported* file held (files are views
//!   of that same stream, so they overlap). The number of real copies is
//!   `max(live, imported)`; requests and bytes only ever grow by the increase of
//!   that maximum, so re-reading a line never changes a figure.
//! - **No raw addresses on disk.** Visitor keys and line hashes are keyed
//!   BLAKE3 hashes whose 32-byte secret is created with the database.
//! - **Closed days are final.** Purging a day's keys (after the retention
//!   window) marks it closed; lines for a closed day are skipped and counted.
//!
//! Writes use `BEGIN IMMEDIATE` (a deferred transaction that reads and then
//! writes fails at once with "database is locked" when another instance
//! writes), WAL, `synchronous=NORMAL` and an explicit busy timeout.

use crate::classify::path_key;
use crate::keys::{KeyHasher, Scratch};
use crate::tally::{Batch, LineStats};
use anyhow::{bail, Context, Result};
use chrono::{Datelike, NaiveDate};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// A day is purged only if no line touched it for this long, so a purge never
/// closes a day an import is still working through.
const PURGE_GRACE_SECS: i64 = 3600;

const SCHEMA: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
-- One row per distinct counted line and day; see the module header.
CREATE TABLE seen_lines (
    day INTEGER NOT NULL, hash INTEGER NOT NULL,
    live INTEGER NOT NULL, imported INTEGER NOT NULL,
    source INTEGER NOT NULL, source_n INTEGER NOT NULL,
    PRIMARY KEY (day, hash)) WITHOUT ROWID;
-- One row per (client, file, day): a download. requests/bytes tell complete from aborted.
CREATE TABLE visitors (
    day INTEGER NOT NULL, key INTEGER NOT NULL, file_id INTEGER NOT NULL,
    requests INTEGER NOT NULL, bytes INTEGER NOT NULL,
    run INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key)) WITHOUT ROWID;
CREATE TABLE daily (
    file_id INTEGER NOT NULL, day INTEGER NOT NULL,
    downloads INTEGER NOT NULL, requests INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (file_id, day)) WITHOUT ROWID;
-- Monthly downloads migrated from the old script's counts.json.
CREATE TABLE legacy (
    file_id INTEGER NOT NULL, month TEXT NOT NULL, downloads INTEGER NOT NULL,
    PRIMARY KEY (file_id, month)) WITHOUT ROWID;
CREATE TABLE days (day INTEGER PRIMARY KEY, touched INTEGER NOT NULL, closed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sources (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, started INTEGER NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
";

/// Where a batch comes from, which decides how identical lines combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Apache's pipe: instances see disjoint shares of the stream, so copies add up.
    Live,
    /// An imported file (`file_source`) within an import run (`run`).
    Import { file_source: i64, run: i64 },
}

/// What applying batches changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// Lines that raised a figure.
    pub counted_lines: u64,
    /// Lines whose copies had all been counted before.
    pub already_counted_lines: u64,
    pub new_downloads: u64,
    /// Downloads this import run touched that were already in the database.
    pub known_downloads: u64,
    /// Lines skipped because their day is closed.
    pub closed_day_lines: u64,
    /// Latest day among the counted lines.
    pub max_day: Option<i32>,
}

impl ApplyStats {
    pub fn merge(&mut self, o: &ApplyStats) {
        self.counted_lines += o.counted_lines;
        self.already_counted_lines += o.already_counted_lines;
        self.new_downloads += o.new_downloads;
        self.known_downloads += o.known_downloads;
        self.closed_day_lines += o.closed_day_lines;
        self.max_day = self.max_day.max(o.max_day);
    }
}

/// One file × month of the statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRow {
    pub path: String,
    pub month: String,
    /// `max(legacy, counted)` — the old script's merge rule.
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
}

impl MonthRow {
    fn empty(path: String, month: String) -> MonthRow {
        MonthRow {
            path,
            month,
            downloads: 0,
            requests: 0,
            bytes: 0,
        }
    }
}

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    hasher: KeyHasher,
    file_ids: HashMap<Vec<u8>, i64>,
    scratch: Scratch,
}

struct LineAgg {
    day: i32,
    hash: i64,
    copies: i64,
    visitor: i64,
    file_id: i64,
    bytes: u64,
}

/// The copies of one distinct line seen so far (a `seen_lines` row).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct SeenLine {
    live: i64,
    imported: i64,
    source: i64,
    source_n: i64,
}

impl SeenLine {
    /// How many real copies of the line the database knows of.
    fn copies(&self) -> i64 {
        self.live.max(self.imported)
    }

    /// The row after `copies` more copies arrived from `origin`. Live copies
    /// add up; an imported file's copies are counted within that file
    /// (`source_n`), and only a file holding more copies than any before
    /// raises `imported`.
    fn seen(self, copies: i64, origin: Origin) -> SeenLine {
        match origin {
            Origin::Live => SeenLine {
                live: self.live + copies,
                ..self
            },
            Origin::Import { file_source, .. } => {
                let n = if self.source == file_source {
                    self.source_n
                } else {
                    0
                } + copies;
                SeenLine {
                    imported: self.imported.max(n),
                    source: file_source,
                    source_n: n,
                    ..self
                }
            }
        }
    }
}

#[derive(Default)]
struct VisitorAgg {
    file_id: i64,
    requests: i64,
    bytes: i64,
}

impl Store {
    /// Opens (creating if needed) the database for writing.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .with_context(|| format!("cannot switch {} to WAL mode", path.display()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!(
                "database {} refused WAL mode (journal_mode={mode})",
                path.display()
            );
        }
        // An 8 MB page cache bounds memory (peak RSS stays flat however big
        // the database grows); a larger one bought no speed in scripts/bench.sh.
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-8000;")?;
        let mut store = Store {
            conn,
            path: path.to_owned(),
            hasher: KeyHasher::new([0; 32]),
            file_ids: HashMap::default(),
            scratch: Scratch::default(),
        };
        store.init_schema()?;
        Ok(store)
    }

    /// Opens an existing database for reading only (report, render).
    pub fn open_read(path: &Path) -> Result<Store> {
        // try_exists: "permission denied" (e.g. 0750 /var/lib/dlcount for a
        // normal user) must not read as "nothing counted yet".
        match path.try_exists() {
            Ok(true) => {}
            Ok(false) => bail!(
                "no database at {} (dlcount-pipe has not counted anything there yet)",
                path.display()
            ),
            Err(e) => bail!(
                "cannot read the database {}: {e} (run as root or as the logger's user)",
                path.display()
            ),
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .with_context(|| format!("cannot read the database {}", path.display()))?;
        check_version(version, path)?;
        if version == 0 {
            bail!("{} is not a dlcount database (no schema)", path.display());
        }
        Ok(Store {
            conn,
            path: path.to_owned(),
            hasher: KeyHasher::new([0; 32]),
            file_ids: HashMap::default(),
            scratch: Scratch::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hasher of this database's secret, for reading threads.
    pub fn hasher(&self) -> KeyHasher {
        self.hasher.clone()
    }

    fn init_schema(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        check_version(version, &self.path)?;
        if version == 0 {
            let has_tables: i64 =
                tx.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
            if has_tables > 0 {
                bail!(
                    "{} is an SQLite database of something else, not dlcount",
                    self.path.display()
                );
            }
            tx.execute_batch(SCHEMA)?;
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| anyhow::anyhow!("no randomness for the hash secret: {e}"))?;
            tx.execute(
                "INSERT INTO meta(name, value) VALUES('secret', ?1)",
                [&secret[..]],
            )?;
            tx.execute(
                "INSERT INTO meta(name, value) VALUES('created', ?1)",
                [chrono::Local::now().to_rfc3339()],
            )?;
            tx.execute_batch(&format!("PRAGMA user_version={SCHEMA_VERSION}"))?;
        }
        let secret: Vec<u8> =
            tx.query_row("SELECT value FROM meta WHERE name='secret'", [], |r| {
                r.get(0)
            })?;
        let secret: [u8; 32] = secret
            .try_into()
            .map_err(|_| anyhow::anyhow!("{}: corrupt hash secret", self.path.display()))?;
        self.hasher = KeyHasher::new(secret);
        tx.commit()?;
        Ok(())
    }

    /// Registers a source (an import file or run) and returns its id.
    pub fn new_source(&mut self, kind: &str, name: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO sources(kind, name, started) VALUES(?1, ?2, ?3)",
            params![kind, name, chrono::Utc::now().timestamp()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Applies batches in one transaction: all of them count, or none does.
    pub fn apply(&mut self, batches: &[Batch], origin: Origin) -> Result<ApplyStats> {
        let result = self.apply_inner(batches, origin);
        if result.is_err() {
            // Ids handed out inside a rolled-back transaction do not exist.
            self.file_ids.clear();
        }
        result
    }

    fn apply_inner(&mut self, batches: &[Batch], origin: Origin) -> Result<ApplyStats> {
        let mut stats = ApplyStats::default();
        let mut line_stats = LineStats::default();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;

        // 1. Hash and group identical lines (copies within these batches).
        let mut lines: Vec<LineAgg> = Vec::new();
        let mut index: HashMap<(i32, i64), usize> = HashMap::default();
        let (mut min_day, mut max_day) = (i32::MAX, i32::MIN);
        for batch in batches {
            line_stats.merge(&batch.stats);
            for (i, h) in batch.hits().iter().enumerate() {
                let path = batch.path(h);
                let file_id = match self.file_ids.get(path) {
                    Some(&id) => id,
                    None => {
                        let key = path_key(path);
                        tx.prepare_cached(
                            "INSERT INTO files(path) VALUES(?1) ON CONFLICT(path) DO NOTHING",
                        )?
                        .execute([&key])?;
                        let id: i64 = tx
                            .prepare_cached("SELECT id FROM files WHERE path = ?1")?
                            .query_row([&key], |r| r.get(0))?;
                        self.file_ids.insert(path.to_vec(), id);
                        id
                    }
                };
                let (visitor, line) = match batch.keys(i, self.hasher.id()) {
                    Some(k) => k,
                    None => self.hasher.keys(
                        &mut self.scratch,
                        batch.client(h),
                        path,
                        h.day,
                        batch.time(h),
                        h.method,
                        h.status,
                        h.bytes,
                    ),
                };
                min_day = min_day.min(h.day);
                max_day = max_day.max(h.day);
                match index.entry((h.day, line)) {
                    std::collections::hash_map::Entry::Occupied(e) => lines[*e.get()].copies += 1,
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(lines.len());
                        lines.push(LineAgg {
                            day: h.day,
                            hash: line,
                            copies: 1,
                            visitor,
                            file_id,
                            bytes: h.bytes,
                        });
                    }
                }
            }
        }

        // 2. Days that are closed for good, and the touch that keeps open ones from purging.
        let mut closed: HashSet<i32> = HashSet::default();
        if !lines.is_empty() {
            let mut st = tx.prepare_cached(
                "SELECT day FROM days WHERE closed = 1 AND day BETWEEN ?1 AND ?2",
            )?;
            for d in st.query_map([min_day, max_day], |r| r.get::<_, i32>(0))? {
                closed.insert(d?);
            }
            let now = chrono::Utc::now().timestamp();
            let mut touch = tx.prepare_cached(
                "INSERT INTO days(day, touched) VALUES(?1, ?2) ON CONFLICT(day) DO UPDATE SET touched = excluded.touched",
            )?;
            let mut touched: Vec<i32> = lines
                .iter()
                .map(|l| l.day)
                .filter(|d| !closed.contains(d))
                .collect();
            touched.sort_unstable();
            touched.dedup();
            for d in touched {
                touch.execute(params![d, now])?;
            }
        }

        // 3. Lines: how many copies are new? Sorted by key so the B-tree is
        //    walked in order; plain SELECT then INSERT or UPDATE, which is much
        //    cheaper in SQLite than an upsert with RETURNING.
        lines.sort_unstable_by_key(|l| (l.day, l.hash));
        let mut visitors: HashMap<(i32, i64), VisitorAgg> = HashMap::default();
        let mut visitor_order: Vec<(i32, i64)> = Vec::new();
        {
            // New rows (the common case) cost one statement: INSERT OR IGNORE
            // says by its change count whether the row was there already.
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO seen_lines(day, hash, live, imported, source, source_n)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut select = tx.prepare_cached(
                "SELECT live, imported, source, source_n FROM seen_lines WHERE day = ?1 AND hash = ?2",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE seen_lines SET live = ?3, imported = ?4, source = ?5, source_n = ?6 WHERE day = ?1 AND hash = ?2",
            )?;
            for l in &lines {
                if closed.contains(&l.day) {
                    stats.closed_day_lines += l.copies as u64;
                    continue;
                }
                let fresh = SeenLine::default().seen(l.copies, origin);
                let inserted = insert.execute(params![
                    l.day,
                    l.hash,
                    fresh.live,
                    fresh.imported,
                    fresh.source,
                    fresh.source_n
                ])?;
                let delta = if inserted == 1 {
                    l.copies
                } else {
                    let before = select.query_row(params![l.day, l.hash], |r| {
                        Ok(SeenLine {
                            live: r.get(0)?,
                            imported: r.get(1)?,
                            source: r.get(2)?,
                            source_n: r.get(3)?,
                        })
                    })?;
                    let after = before.seen(l.copies, origin);
                    if after != before {
                        update.execute(params![
                            l.day,
                            l.hash,
                            after.live,
                            after.imported,
                            after.source,
                            after.source_n
                        ])?;
                    }
                    (after.copies() - before.copies()).clamp(0, l.copies)
                };
                stats.counted_lines += delta as u64;
                stats.already_counted_lines += (l.copies - delta) as u64;
                if delta > 0 {
                    stats.max_day = stats.max_day.max(Some(l.day));
                }
                let key = (l.day, l.visitor);
                let v = visitors.entry(key).or_insert_with(|| {
                    visitor_order.push(key);
                    VisitorAgg {
                        file_id: l.file_id,
                        ..Default::default()
                    }
                });
                v.requests += delta;
                v.bytes += delta * l.bytes as i64;
            }
        }

        // 4. Visitors: a new row is a new download. `run` remembers the last
        //    import run that touched a row, to tell "already known" downloads.
        visitor_order.sort_unstable();
        let mut daily: BTreeMap<(i64, i32), (i64, i64, i64)> = BTreeMap::new();
        {
            let run = match origin {
                Origin::Live => 0,
                Origin::Import { run, .. } => run,
            };
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO visitors(day, key, file_id, requests, bytes, run) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut select =
                tx.prepare_cached("SELECT run FROM visitors WHERE day = ?1 AND key = ?2")?;
            let mut update = tx.prepare_cached(
                "UPDATE visitors SET requests = requests + ?3, bytes = bytes + ?4, run = ?5 WHERE day = ?1 AND key = ?2",
            )?;
            for key in &visitor_order {
                let v = &visitors[key];
                if v.requests == 0 && run == 0 {
                    continue;
                }
                let new_download = v.requests > 0
                    && insert
                        .execute(params![key.0, key.1, v.file_id, v.requests, v.bytes, run])?
                        == 1;
                if new_download {
                    stats.new_downloads += 1;
                } else if let Some(old) = select
                    .query_row(params![key.0, key.1], |r| r.get::<_, i64>(0))
                    .optional()?
                {
                    if run != 0 && old != run {
                        stats.known_downloads += 1;
                    }
                    if v.requests > 0 || old != run {
                        update.execute(params![key.0, key.1, v.requests, v.bytes, run])?;
                    }
                }
                if v.requests > 0 {
                    let d = daily.entry((v.file_id, key.0)).or_default();
                    d.0 += i64::from(new_download);
                    d.1 += v.requests;
                    d.2 += v.bytes;
                }
            }
        }

        // 5. Per file and day figures.
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO daily(file_id, day, downloads, requests, bytes) VALUES(?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(file_id, day) DO UPDATE SET
                   downloads = downloads + excluded.downloads,
                   requests = requests + excluded.requests,
                   bytes = bytes + excluded.bytes",
            )?;
            for ((file_id, day), (dl, rq, by)) in &daily {
                st.execute(params![file_id, day, dl, rq, by])?;
            }
        }

        // 6. Line accounting, for `report` and troubleshooting.
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO counters(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            )?;
            let rejected = line_stats.rejected_total();
            for (name, v) in [
                ("lines", line_stats.lines),
                ("rejected_lines", rejected),
                ("counted_lines", stats.counted_lines),
                ("already_counted_lines", stats.already_counted_lines),
                ("closed_day_lines", stats.closed_day_lines),
            ] {
                if v > 0 {
                    st.execute(params![name, v as i64])?;
                }
            }
        }
        tx.commit()?;
        Ok(stats)
    }

    /// Closes days older than the retention window: their keys are deleted
    /// and later lines for them are skipped. Returns the closed days.
    pub fn purge(&mut self, today: i32, retention_days: u32) -> Result<Vec<i32>> {
        let cutoff = today - retention_days as i32;
        let now = chrono::Utc::now().timestamp();
        let days: Vec<i32> = {
            let mut st = self.conn.prepare(
                "SELECT day FROM days WHERE closed = 0 AND day < ?1 AND touched < ?2 ORDER BY day",
            )?;
            let rows = st.query_map(params![cutoff, now - PURGE_GRACE_SECS], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for &day in &days {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM seen_lines WHERE day = ?1", [day])?;
            tx.execute("DELETE FROM visitors WHERE day = ?1", [day])?;
            tx.execute("UPDATE days SET closed = 1 WHERE day = ?1", [day])?;
            tx.commit()?;
        }
        Ok(days)
    }

    /// Adds months from the old script's counts.json (kept as the larger of old and new).
    pub fn import_legacy(&mut self, entries: &[(String, String, u64)]) -> Result<usize> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut changed = 0;
        for (path, month, n) in entries {
            tx.execute(
                "INSERT INTO files(path) VALUES(?1) ON CONFLICT(path) DO NOTHING",
                [path],
            )?;
            let id: i64 =
                tx.query_row("SELECT id FROM files WHERE path = ?1", [path], |r| r.get(0))?;
            changed += tx.execute(
                "INSERT INTO legacy(file_id, month, downloads) VALUES(?1, ?2, ?3)
                 ON CONFLICT(file_id, month) DO UPDATE SET downloads = excluded.downloads
                 WHERE excluded.downloads > downloads",
                params![id, month, *n as i64],
            )?;
        }
        tx.commit()?;
        self.file_ids.clear();
        Ok(changed)
    }

    /// Per file and month figures, downloads merged with legacy months.
    pub fn monthly(&self) -> Result<Vec<MonthRow>> {
        let mut acc: BTreeMap<(String, String), MonthRow> = BTreeMap::new();
        let mut st = self.conn.prepare(
            "SELECT f.path, d.day, d.downloads, d.requests, d.bytes FROM daily d JOIN files f ON f.id = d.file_id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let path: String = r.get(0)?;
            let month = month_of(r.get(1)?);
            let e = acc
                .entry((path.clone(), month.clone()))
                .or_insert_with(|| MonthRow::empty(path, month));
            e.downloads += r.get::<_, i64>(2)? as u64;
            e.requests += r.get::<_, i64>(3)? as u64;
            e.bytes += r.get::<_, i64>(4)? as u64;
        }
        let mut st = self.conn.prepare(
            "SELECT f.path, l.month, l.downloads FROM legacy l JOIN files f ON f.id = l.file_id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let path: String = r.get(0)?;
            let month: String = r.get(1)?;
            let n = r.get::<_, i64>(2)? as u64;
            let e = acc
                .entry((path.clone(), month.clone()))
                .or_insert_with(|| MonthRow::empty(path, month));
            e.downloads = e.downloads.max(n);
        }
        Ok(acc.into_values().collect())
    }

    /// Cumulative line accounting (lines, rejected_lines, …).
    pub fn counters(&self) -> Result<BTreeMap<String, u64>> {
        let mut st = self.conn.prepare("SELECT name, value FROM counters")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Days closed so far, oldest first.
    pub fn closed_days(&self) -> Result<Vec<i32>> {
        let mut st = self
            .conn
            .prepare("SELECT day FROM days WHERE closed = 1 ORDER BY day")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Runs a passive WAL checkpoint so the WAL file does not grow without bound
    /// while readers keep it busy.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }
}

fn check_version(version: i64, path: &Path) -> Result<()> {
    if version > SCHEMA_VERSION {
        bail!(
            "{} was written by a newer dlcount (schema {version}, this one knows {SCHEMA_VERSION})",
            path.display()
        );
    }
    Ok(())
}

/// `YYYY-MM` of a day number (days since 0001-01-01, day 1).
pub fn month_of(day: i32) -> String {
    match NaiveDate::from_num_days_from_ce_opt(day) {
        Some(d) => format!("{:04}-{:02}", d.year(), d.month()),
        None => "0000-00".to_string(),
    }
}

/// Day number of a date, in the same scale as parsed log lines.
pub fn day_of(date: NaiveDate) -> i32 {
    date.num_days_from_ce()
}
