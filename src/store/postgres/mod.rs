//! The PostgreSQL backend: one shared database, so several web servers
//! count as one (see the parent module for what every backend keeps).
//!
//! The logical tables are SQLite's (`migrations/`, versioned in
//! `dlcount_schema`, see `schema`); the dedup algebra is the shared pure code
//! (`dedup::SeenLine`, `dedup::line_keys`), so both backends give the same
//! figures and the same [`ApplyStats`] for the same input. What differs is
//! how a batch reaches the tables: a round trip costs a network hop here, so
//! a batch is a fixed handful of statements over arrays (`unnest`), never
//! one per line (see `apply`).
//!
//! **No lost update between servers.** Several servers commit lines of the
//! same day at the same moment, and a batch is a read-modify-write (how many
//! copies of a line are new depends on the row as it is). Every write
//! transaction therefore starts by taking a transaction-scoped advisory lock
//! per day it touches (`pg_advisory_xact_lock(NS_DAY, day)`), all of them in
//! one statement, in ascending day order; every row a batch reads or writes
//! (`days`, `day_keys`, `seen_lines`, `visitors`, `daily`, and the facts:
//! `facts_daily`, `network_days`) belongs to one of those days: the moves
//! of a download's facts are computed from its `visitors` row as read under
//! the lock, so they can neither be lost nor counted twice. So two transactions that share a day run one after the other
//! on that day: the second one's statements start after the first one's
//! commit (the lock is released only after the commit is visible) and,
//! under READ COMMITTED, each statement sees it. Transactions on different
//! days run side by side. (The `days` row each batch updates early, to keep
//! the day from purging, serializes them too; the test of four pipes and
//! imports on one day fails only when both are taken away.) Deadlock-free:
//! the day locks are taken in one global order before any row is touched,
//! and the only rows outside a day, `files` and `servers`, are created
//! *before* the transaction, in short transactions of their own (files
//! sorted by path; a server's id under its own advisory lock). A
//! serialization failure, a detected deadlock or a unique violation (none
//! expected) rolls the batch back and retries it whole, a bounded number of
//! times ([`RETRIES`]).
//!
//! **`migrate` rewrites everything** (`transform`) in one transaction that
//! holds [`MIGRATE_LOCK`] exclusively; every write takes it shared first, so
//! no batch runs during a rewrite. The rewrite renumbers files and servers
//! and raises `meta.generation`; a batch that finds another generation than
//! its cached ids were read under drops them and runs again, and one that
//! finds another secret hashes with the new one (as SQLite's).
//!
//! **Closed days.** `purge` takes the same day lock before closing a day, so a
//! day is closed between two batches, never under one; it deletes the day's
//! rows and its key in that transaction. PostgreSQL never overwrites a row in
//! place: a deleted key stays in the table's file until the space is reused,
//! so after closing days the purge rewrites `day_keys` (`TRUNCATE`, which
//! gives the table a new file, then the open days' keys again). Its WAL, and
//! any WAL archive or base backup, still hold the key until they are
//! recycled; keep them as private as the database (see the README).
//!
//! **Reads** (`report`, the pages): a connection (its timeouts set in one
//! statement), the schema version (one), the figures per file (one,
//! `monthly`) and per server (one, `by_server`): the pages do that at most
//! once a `--refresh` interval.

mod apply;
pub mod connect;
mod dump;
pub mod privileges;
pub mod schema;

use super::migrate::Dump;
use super::sqlite::MAX_SERVERS;
use super::{
    month_of, ApplyStats, Backend, DayTotalRow, FactDayRow, FileDayRow, FileMonthCount, Mark,
    MonthFactRow, MonthNetworkRow, MonthRow, NetworkDayRow, Origin, PageFacts, ServerMonthRow,
};
use crate::config::PgTarget;
use crate::keys::{KeyHasher, Scratch};
use crate::tally::Batch;
use anyhow::{anyhow, Result};
use postgres::error::SqlState;
use rustc_hash::FxHashMap as HashMap;
use std::cell::{RefCell, RefMut};
use std::collections::BTreeMap;

/// First key of dlcount's two-key advisory locks: "dlcn".
pub const NS: i32 = 0x646c_636e;
/// First key of the per-day locks (the second is the day number).
pub const NS_DAY: i32 = NS + 1;
/// Second key (with [`NS`]) of the lock every write takes shared and
/// `migrate` takes exclusively (the schema's lock is 0).
pub const MIGRATE_LOCK: i32 = 1;
/// Second key (with [`NS`]) of the lock under which a server gets its id.
const SERVERS_LOCK: i32 = 2;

/// `open_read` of a database without dlcount's tables (yet).
#[derive(Debug)]
pub struct NoSchema(String);

impl std::fmt::Display for NoSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not a dlcount database yet (no schema: dlcount-pipe has not counted anything there yet)",
            self.0
        )
    }
}

impl std::error::Error for NoSchema {}

/// A batch found the cached file and server ids older than a `migrate`
/// that rewrote the tables: it is tried again with fresh ones.
#[derive(Debug)]
struct Stale;

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the tables were rewritten by a migrate")
    }
}

impl std::error::Error for Stale {}

/// How often a batch is tried again after a serialization failure or deadlock.
pub const RETRIES: u32 = 5;

/// A day is purged only if no line touched it for this long (as SQLite).
const PURGE_GRACE_SECS: i64 = 3600;

/// An open PostgreSQL database.
pub struct PostgresStore {
    /// In a cell because `postgres::Client` needs `&mut` even to read, and
    /// some [`Backend`] reads take `&self`; one thread uses a store at a time.
    client: RefCell<postgres::Client>,
    /// The URL without its password, for messages.
    shown: String,
    hasher: KeyHasher,
    /// Raw request path → `files.id`; ids are committed before any batch
    /// uses them, so they stay valid whatever a batch does.
    file_ids: HashMap<Vec<u8>, i64>,
    /// `--server` name → `servers.id`, committed like the file ids.
    server_ids: HashMap<std::sync::Arc<str>, i64>,
    /// `meta.generation` when the ids above were cached (`migrate` raises it).
    generation: i64,
    scratch: Scratch,
    statements: Option<apply::Statements>,
}

impl PostgresStore {
    /// Connects, brings the schema up to date and reads (or creates) the secret.
    pub fn open(pg: &PgTarget) -> Result<PostgresStore> {
        let target = connect::Target::new(pg)?;
        let mut client = target.connect()?;
        schema::migrate(&mut client, &target.shown)?;
        let secret = schema::secret(&mut client, &target.shown)?;
        Ok(PostgresStore {
            client: RefCell::new(client),
            shown: target.shown,
            hasher: KeyHasher::new(secret),
            file_ids: HashMap::default(),
            server_ids: HashMap::default(),
            generation: 0,
            scratch: Scratch::default(),
            statements: None,
        })
    }

    /// Connects to an existing dlcount database for reading (report, render).
    /// `daily.completed`, or `NULL::int8` (unknown) in a database of a
    /// schema before migration 4 that a reader opened (reading never upgrades).
    fn completed_column(&self) -> Result<&'static str> {
        let version = schema::version_now(&mut *self.read_client()?)?;
        Ok(if version >= 4 {
            "d.completed"
        } else {
            "NULL::int8"
        })
    }

    pub fn open_read(pg: &PgTarget) -> Result<PostgresStore> {
        let target = connect::Target::new(pg)?;
        let mut client = target.connect()?;
        let version = schema::version_now(&mut client)?;
        schema::check_version(version, &target.shown)?;
        if version == 0 {
            return Err(NoSchema(target.shown).into());
        }
        Ok(PostgresStore {
            client: RefCell::new(client),
            shown: target.shown,
            hasher: KeyHasher::new([0; 32]),
            file_ids: HashMap::default(),
            server_ids: HashMap::default(),
            generation: 0,
            scratch: Scratch::default(),
            statements: None,
        })
    }

    /// Makes sure every request path of `batches` has its `files` row and
    /// its id in the cache: one INSERT … ON CONFLICT DO NOTHING (sorted, so
    /// two servers adding the same new files never wait on each other in a
    /// cycle) and one SELECT, in autocommit, before the batch's transaction.
    fn resolve_files(&mut self, batches: &[Batch]) -> Result<()> {
        for batch in batches {
            if !batch.hits().is_empty() && !self.server_ids.contains_key(&batch.server) {
                let id = server_id(self.client.get_mut(), &batch.server, &self.shown)?;
                self.server_ids.insert(batch.server.clone(), id);
            }
        }
        let mut missing: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for batch in batches {
            for h in batch.hits() {
                let path = batch.path(h);
                if !self.file_ids.contains_key(path) {
                    let raws = missing.entry(crate::classify::path_key(path)).or_default();
                    if !raws.iter().any(|r| r == path) {
                        raws.push(path.to_vec());
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = missing.keys().map(String::as_str).collect();
        let ids = files_ids(self.client.get_mut(), &keys)?;
        for (key, raws) in missing {
            let id = *ids
                .get(&key)
                .ok_or_else(|| anyhow!("the file {key:?} has no row after its insert"))?;
            for raw in raws {
                self.file_ids.insert(raw, id);
            }
        }
        Ok(())
    }
}

/// `files.id` of each path key, creating the missing rows (sorted keys),
/// in a transaction of its own that keeps `migrate` out.
fn files_ids(c: &mut postgres::Client, keys: &[&str]) -> Result<HashMap<String, i64>> {
    let mut sorted = keys.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut tx = c.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1, $2)",
        &[&NS, &MIGRATE_LOCK],
    )?;
    tx.execute(
        "INSERT INTO files(path) SELECT p FROM unnest($1::text[]) AS p ON CONFLICT (path) DO NOTHING",
        &[&sorted],
    )?;
    let rows = tx.query(
        "SELECT path, id FROM files WHERE path = ANY($1::text[])",
        &[&sorted],
    )?;
    tx.commit()?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The id of server `name`, registered on first sight: max + 1 under an
/// advisory lock (a sequence would lose numbers to conflicts, and a
/// visitor row has bits for 63 servers only).
fn server_id(c: &mut postgres::Client, name: &str, shown: &str) -> Result<i64> {
    if let Some(r) = c.query_opt("SELECT id FROM servers WHERE name = $1", &[&name])? {
        return Ok(r.get(0));
    }
    let mut tx = c.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1, $2)",
        &[&NS, &MIGRATE_LOCK],
    )?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&NS, &SERVERS_LOCK],
    )?;
    let id: i64 = match tx.query_opt("SELECT id FROM servers WHERE name = $1", &[&name])? {
        Some(r) => r.get(0),
        None => tx
            .query_one(
                "INSERT INTO servers(id, name) SELECT coalesce(max(id), 0) + 1, $1 FROM servers RETURNING id",
                &[&name],
            )?
            .get(0),
    };
    if !(1..=MAX_SERVERS).contains(&id) {
        anyhow::bail!(
            "{shown}: more than {MAX_SERVERS} servers count into this database (--server {name})"
        );
    }
    tx.commit()?;
    Ok(id)
}

/// Whether a failed transaction may simply be tried again.
fn retryable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<postgres::Error>()
            .and_then(postgres::Error::code)
            .is_some_and(|code| {
                *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::T_R_DEADLOCK_DETECTED
                    || *code == SqlState::UNIQUE_VIOLATION
            })
    })
}

impl Backend for PostgresStore {
    fn hasher(&self) -> KeyHasher {
        self.hasher.clone()
    }

    fn new_source(&mut self, kind: &str, name: &str) -> Result<i64> {
        let row = self.client.get_mut().query_one(
            "INSERT INTO sources(kind, name, started) VALUES ($1, $2, $3) RETURNING id",
            &[&kind, &name, &chrono::Utc::now().timestamp()],
        )?;
        Ok(row.get(0))
    }

    fn apply_marked(
        &mut self,
        batches: &[Batch],
        origin: Origin,
        mark: Option<Mark<'_>>,
    ) -> Result<ApplyStats> {
        let mut tries = 0;
        loop {
            let result = self
                .resolve_files(batches)
                .and_then(|_| self.apply_once(batches, origin, mark));
            match result {
                Ok(stats) => return Ok(stats),
                Err(e) if e.is::<Stale>() => {
                    // Not a failure: ids cached before a migrate, fetched again.
                    self.file_ids.clear();
                    self.server_ids.clear();
                }
                Err(e)
                    if tries < RETRIES && retryable(&e) && !self.client.get_mut().is_closed() =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5 << tries));
                }
                Err(e) => {
                    self.file_ids.clear();
                    self.server_ids.clear();
                    return Err(e.context(format!("PostgreSQL {}", self.shown)));
                }
            }
        }
    }

    fn mark(&self, name: &str) -> Result<Option<String>> {
        let row = self
            .read_client()?
            .query_opt("SELECT value FROM meta WHERE name = $1", &[&name])?;
        match row {
            None => Ok(None),
            Some(r) => String::from_utf8(r.get(0))
                .map(Some)
                .map_err(|_| anyhow!("the mark {name:?} is not text")),
        }
    }

    fn mark_names(&self, prefix: &str) -> Result<Vec<String>> {
        let rows = self.read_client()?.query(
            "SELECT name FROM meta WHERE left(name, length($1)) = $1 ORDER BY name",
            &[&prefix],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn forget_mark(&self, name: &str) -> Result<()> {
        self.read_client()?
            .execute("DELETE FROM meta WHERE name = $1", &[&name])?;
        Ok(())
    }

    /// Closes days older than the retention window, each in its own
    /// transaction under its day lock (module header), then rewrites
    /// `day_keys` so no closed day's key is left in its file.
    fn purge(&mut self, today: i32, retention_days: u32) -> Result<Vec<i32>> {
        let cutoff = i64::from(today) - i64::from(retention_days);
        let quiet_since = chrono::Utc::now().timestamp() - PURGE_GRACE_SECS;
        let client = self.client.get_mut();
        let candidates: Vec<i64> = client
            .query(
                "SELECT day FROM days WHERE NOT closed AND day < $1 AND touched < $2 ORDER BY day",
                &[&cutoff, &quiet_since],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut closed = Vec::new();
        for day in candidates {
            let day32 = i32::try_from(day).map_err(|_| anyhow!("day {day} out of range"))?;
            let mut tx = client.transaction()?;
            tx.execute(
                "SELECT pg_advisory_xact_lock_shared($1, $2)",
                &[&NS, &MIGRATE_LOCK],
            )?;
            tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&NS_DAY, &day32])?;
            // Another server may have closed it, or a batch touched it, meanwhile.
            let n = tx.execute(
                "UPDATE days SET closed = true WHERE day = $1 AND NOT closed AND touched < $2",
                &[&day, &quiet_since],
            )?;
            if n == 0 {
                continue;
            }
            tx.execute("DELETE FROM seen_lines WHERE day = $1", &[&day])?;
            tx.execute("DELETE FROM visitors WHERE day = $1", &[&day])?;
            tx.execute("DELETE FROM day_keys WHERE day = $1", &[&day])?;
            tx.commit()?;
            closed.push(day32);
        }
        if !closed.is_empty() {
            self.scrub_day_keys()?;
        }
        Ok(closed)
    }

    fn import_legacy(&mut self, entries: &[(String, String, u64)]) -> Result<usize> {
        let keys: Vec<&str> = entries.iter().map(|(p, _, _)| p.as_str()).collect();
        let client = self.client.get_mut();
        let ids = files_ids(client, &keys)?;
        // The larger of two figures for one file-month, sorted: one row each.
        let mut rows: BTreeMap<(i64, &str), i64> = BTreeMap::new();
        for (path, month, n) in entries {
            let id = *ids
                .get(path)
                .ok_or_else(|| anyhow!("the file {path:?} has no row after its insert"))?;
            let n = i64::try_from(*n).unwrap_or(i64::MAX);
            let e = rows.entry((id, month.as_str())).or_insert(n);
            *e = (*e).max(n);
        }
        let (mut file_ids, mut months, mut downloads) = (Vec::new(), Vec::new(), Vec::new());
        for ((id, month), n) in rows {
            file_ids.push(id);
            months.push(month);
            downloads.push(n);
        }
        let mut tx = client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock_shared($1, $2)",
            &[&NS, &MIGRATE_LOCK],
        )?;
        let changed = tx.execute(
            "INSERT INTO legacy AS l (file_id, month, downloads)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[])
             ON CONFLICT (file_id, month) DO UPDATE SET downloads = excluded.downloads
             WHERE excluded.downloads > l.downloads",
            &[&file_ids, &months, &downloads],
        )?;
        tx.commit()?;
        Ok(changed as usize)
    }

    /// Every figure in one query: per file and day, and the legacy months.
    fn monthly(&self) -> Result<Vec<MonthRow>> {
        let completed = self.completed_column()?;
        let rows = self.read_client()?.query(
            &format!(
                "SELECT f.path, d.day, NULL::text, d.downloads, d.requests, d.bytes, {completed}
                   FROM daily d JOIN files f ON f.id = d.file_id
                 UNION ALL
                 SELECT f.path, NULL::int8, l.month, l.downloads, NULL::int8, NULL::int8, NULL::int8
                   FROM legacy l JOIN files f ON f.id = l.file_id"
            ),
            &[],
        )?;
        let mut acc: BTreeMap<(String, String), MonthRow> = BTreeMap::new();
        let mut legacy: Vec<(String, String, u64)> = Vec::new();
        for r in &rows {
            let path: String = r.get(0);
            let figure = |i: usize| r.get::<_, Option<i64>>(i).map_or(0, figure);
            match r.get::<_, Option<i64>>(1) {
                Some(day) => {
                    let month = month_of(i32::try_from(day).unwrap_or(0));
                    let e = acc
                        .entry((path.clone(), month.clone()))
                        .or_insert_with(|| MonthRow::empty(path, month));
                    e.downloads = e.downloads.saturating_add(figure(3));
                    e.requests = e.requests.saturating_add(figure(4));
                    e.bytes = e.bytes.saturating_add(figure(5));
                    e.add_completed(r.get::<_, Option<i64>>(6).map(self::figure));
                }
                None => legacy.push((path, r.get(2), figure(3))),
            }
        }
        // After every counted day, as SQLite: max(legacy, counted).
        for (path, month, n) in legacy {
            let counted = acc.contains_key(&(path.clone(), month.clone()));
            let e = acc
                .entry((path.clone(), month.clone()))
                .or_insert_with(|| MonthRow::empty(path, month));
            e.merge_legacy(n, counted);
        }
        Ok(acc.into_values().collect())
    }

    fn by_server(&self) -> Result<Vec<ServerMonthRow>> {
        let rows = self.read_client()?.query(
            "SELECT s.name, d.day, d.downloads, d.requests, d.bytes
               FROM server_daily d JOIN servers s ON s.id = d.server_id",
            &[],
        )?;
        let mut acc: BTreeMap<(String, String), ServerMonthRow> = BTreeMap::new();
        for r in &rows {
            let server: String = r.get(0);
            let month = month_of(i32::try_from(r.get::<_, i64>(1)).unwrap_or(0));
            let e = acc
                .entry((server.clone(), month.clone()))
                .or_insert_with(|| ServerMonthRow {
                    server,
                    month,
                    downloads: 0,
                    requests: 0,
                    bytes: 0,
                });
            e.downloads = e.downloads.saturating_add(figure(r.get(2)));
            e.requests = e.requests.saturating_add(figure(r.get(3)));
            e.bytes = e.bytes.saturating_add(figure(r.get(4)));
        }
        Ok(acc.into_values().collect())
    }

    fn daily(&self) -> Result<Vec<FileDayRow>> {
        let completed = self.completed_column()?;
        let rows = self.read_client()?.query(
            &format!(
                "SELECT f.path, d.day, d.downloads, d.requests, d.bytes, {completed}
                   FROM daily d JOIN files f ON f.id = d.file_id
                  ORDER BY f.path COLLATE \"C\", d.day"
            ),
            &[],
        )?;
        rows.iter()
            .map(|r| {
                Ok(FileDayRow {
                    path: r.get(0),
                    day: i32::try_from(r.get::<_, i64>(1))?,
                    downloads: figure(r.get(2)),
                    requests: figure(r.get(3)),
                    bytes: figure(r.get(4)),
                    completed: r.get::<_, Option<i64>>(5).map(figure),
                })
            })
            .collect()
    }

    fn facts(&self, kind: &str) -> Result<Vec<FactDayRow>> {
        let rows = self.read_client()?.query(
            "SELECT f.path, d.day, d.value, d.n
               FROM facts_daily d JOIN files f ON f.id = d.file_id
              WHERE d.kind = $1 AND d.n > 0 ORDER BY f.path COLLATE \"C\", d.day, d.value COLLATE \"C\"",
            &[&kind],
        )?;
        rows.iter()
            .map(|r| {
                Ok(FactDayRow {
                    path: r.get(0),
                    day: i32::try_from(r.get::<_, i64>(1))?,
                    kind: kind.to_string(),
                    value: r.get(2),
                    n: figure(r.get(3)),
                })
            })
            .collect()
    }

    fn networks(&self) -> Result<Vec<NetworkDayRow>> {
        let rows = self.read_client()?.query(
            "SELECT day, word, bits FROM network_days ORDER BY day, word",
            &[],
        )?;
        let rows = rows
            .iter()
            .map(|r| Ok((i32::try_from(r.get::<_, i64>(0))?, r.get(1), r.get(2))))
            .collect::<Result<Vec<_>>>()?;
        Ok(super::network_rows(rows))
    }

    /// Summed by the server (GROUP BY month), in one read-only snapshot so
    /// the four reads agree; sums are `numeric` there and come back capped
    /// at `i64::MAX`, as every figure saturates.
    fn page_facts(&self) -> Result<PageFacts> {
        let mut client = self.read_client()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        const MONTH: &str = "to_char(date '0001-01-01' + (d.day::int - 1), 'YYYY-MM')";
        const CAP: &str = "9223372036854775807";
        let months = tx
            .query(
                &format!(
                    "SELECT {MONTH} AS m, d.kind, d.value, LEAST(SUM(d.n), {CAP})::int8
                       FROM facts_daily d WHERE d.n > 0 GROUP BY 1, 2, 3
                      ORDER BY m, d.kind COLLATE \"C\", d.value COLLATE \"C\""
                ),
                &[],
            )?
            .iter()
            .map(|r| MonthFactRow {
                month: r.get(0),
                kind: r.get(1),
                value: r.get(2),
                n: figure(r.get(3)),
            })
            .filter(|r| r.n > 0)
            .collect();
        let bots = tx
            .query(
                &format!(
                    "SELECT f.path, {MONTH} AS m, LEAST(SUM(d.n), {CAP})::int8
                       FROM facts_daily d JOIN files f ON f.id = d.file_id
                      WHERE d.kind = 'class' AND d.value = 'bot' AND d.n > 0
                      GROUP BY 1, 2 ORDER BY f.path COLLATE \"C\", m"
                ),
                &[],
            )?
            .iter()
            .map(|r| FileMonthCount {
                path: r.get(0),
                month: r.get(1),
                n: figure(r.get(2)),
            })
            .filter(|r| r.n > 0)
            .collect();
        let days = tx
            .query(
                &format!(
                    "SELECT t.day, t.downloads, t.requests, t.bytes, COALESCE(b.bots, 0)
                       FROM (SELECT day, LEAST(SUM(downloads), {CAP})::int8 AS downloads,
                                    LEAST(SUM(requests), {CAP})::int8 AS requests,
                                    LEAST(SUM(bytes), {CAP})::int8 AS bytes
                               FROM daily GROUP BY day) t
                       LEFT JOIN (SELECT day, LEAST(SUM(n), {CAP})::int8 AS bots FROM facts_daily
                                   WHERE kind = 'class' AND value = 'bot' AND n > 0 GROUP BY day) b
                         ON b.day = t.day
                      ORDER BY t.day"
                ),
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(DayTotalRow {
                    day: i32::try_from(r.get::<_, i64>(0))?,
                    downloads: figure(r.get(1)),
                    requests: figure(r.get(2)),
                    bytes: figure(r.get(3)),
                    bots: figure(r.get(4)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut networks: Vec<MonthNetworkRow> = Vec::new();
        for r in tx.query(
            &format!(
                "SELECT {MONTH} AS m, d.word, bit_or(d.bits) FROM network_days d
                  GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            &[],
        )? {
            let month: String = r.get(0);
            let Some(w) = usize::try_from(r.get::<_, i64>(1))
                .ok()
                .filter(|w| *w < super::facts::NETWORK_WORDS)
            else {
                continue;
            };
            if networks.last().is_none_or(|n| n.month != month) {
                networks.push(MonthNetworkRow {
                    month,
                    bits: [0; super::facts::NETWORK_WORDS],
                });
            }
            let last = networks.last_mut().expect("pushed above");
            last.bits[w] |= r.get::<_, i64>(2) as u64;
        }
        tx.commit()?;
        Ok(PageFacts {
            months,
            bots,
            days,
            networks,
        })
    }

    /// Everything, from one snapshot (a read-only REPEATABLE READ transaction).
    fn export(&self) -> Result<Dump> {
        let mut client = self.read_client()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let dump = dump::export(&mut tx, &self.shown)?;
        tx.commit()?;
        Ok(dump)
    }

    /// Reads and rewrites everything in one transaction holding the lock
    /// every write takes shared ([`MIGRATE_LOCK`]), so no batch runs
    /// meanwhile; raises `meta.generation`, so every logger fetches its
    /// file and server ids again before its next batch.
    fn transform(&mut self, f: &mut dyn FnMut(Dump) -> Result<Dump>) -> Result<()> {
        let shown = self.shown.clone();
        let client = self.client.get_mut();
        let mut tx = client.transaction()?;
        tx.batch_execute("SET LOCAL statement_timeout = 0")?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&NS, &MIGRATE_LOCK],
        )?;
        let before = dump::export(&mut tx, &shown)?;
        let after = f(before)?;
        let generation = dump::write(&mut tx, &after, &shown)?;
        tx.commit()?;
        self.file_ids.clear();
        self.server_ids.clear();
        self.generation = generation;
        self.hasher = KeyHasher::new(after.secret);
        Ok(())
    }

    /// Nothing to do: the server keeps its own files.
    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    /// Nothing is held on the local disk.
    fn checkpoint_truncate(&self) -> Result<bool> {
        Ok(true)
    }

    /// A server database cannot be deleted or replaced under us: just close.
    fn close_detached(self: Box<Self>) {}
}

impl PostgresStore {
    /// The client for the `&self` calls of [`Backend`].
    fn read_client(&self) -> Result<RefMut<'_, postgres::Client>> {
        self.client
            .try_borrow_mut()
            .map_err(|_| anyhow!("the PostgreSQL connection is busy"))
    }

    /// See the module header: rewrites `day_keys` with the open days' keys
    /// only. Needs TRUNCATE on the table (`check` says so); without it the
    /// purge still closes the days, and says once that the file keeps them.
    fn scrub_day_keys(&mut self) -> Result<()> {
        let mut tx = self.client.get_mut().transaction()?;
        let rows = tx.query("SELECT day, key FROM day_keys ORDER BY day", &[])?;
        let days: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let keys: Vec<Vec<u8>> = rows.iter().map(|r| r.get(1)).collect();
        if let Err(e) = tx.batch_execute("TRUNCATE day_keys") {
            eprintln!(
                "dlcount: PostgreSQL {}: closed days' keys stay in day_keys' file until reused \
                 (TRUNCATE refused: {})",
                self.shown,
                connect::describe(&e)
            );
            return Ok(());
        }
        tx.execute(
            "INSERT INTO day_keys(day, key) SELECT * FROM unnest($1::int8[], $2::bytea[])",
            &[&days, &keys],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// A stored figure as a count; a negative one (never written: sums
/// saturate) reads as `i64::MAX`, as SQLite reads a damaged figure.
fn figure(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(i64::MAX as u64)
}
