//! The SQLite backend: one database file beside the logger, the embedded
//! default (see the parent module for what every backend keeps).
//!
//! How SQLite keeps those invariants:
//! - **Multiset idempotency**: a `seen_lines` row per (day, line hash);
//!   live copies are summed over pipe instances (each gets a disjoint share
//!   of Apache's stream), an imported file's copies are counted within that
//!   file (files are views of that same stream, so they overlap).
//! - **One identity per day**: `days.identity` holds which optional fields
//!   (`%r`, Referer, User-Agent) identify the day's lines; later sources hash
//!   that same set, so a log written with more fields, or with `%b` instead
//!   of `%O`, still matches. A source that lacks a field of the day's set
//!   cannot be matched: an import skips those lines and says why, never
//!   counting them twice. Days counted by schema 1 keep its fingerprint
//!   (bytes included) until they close.
//! - **Nothing left of a closed day**: every stored key is re-keyed with its
//!   day's random 32-byte key (`day_keys`), created in the write transaction
//!   that first sees the day. Closing a day deletes its rows and its key in
//!   one transaction, with `secure_delete` zeroing the freed cells and pages
//!   and a TRUNCATE checkpoint emptying the WAL (retried by the next
//!   `checkpoint` while a reader holds it back). A closed day keeps only its
//!   `days` row and its per-file `daily` figures.
//! - **Sums never wrap**, in Rust and in SQL (SQLite would turn an
//!   overflowing `+` into a REAL that no reader accepts).
//! - **No lost update**: SQLite has one writer at a time, and every write
//!   transaction is `BEGIN IMMEDIATE` (a deferred one that reads and then
//!   writes fails at once with "database is locked" when another instance
//!   writes), so the read-modify-write of a batch sees the latest rows. WAL,
//!   `synchronous=NORMAL` and an explicit busy timeout.
//!
//! Schema versions live in `PRAGMA user_version`; the DDL of each version is
//! in `migrations/`, applied in place by `init_schema`.

use super::dedup::{
    line_keys, server_bit, BatchAccount, HeldCover, LineAgg, SeenLine, SCHEMA1_IDENTITY,
};
use super::facts::{gathered, settle, Held};
use super::migrate::{
    DayRow, Dump, FactRow, FigureRow, LegacyRow, NetworkRow, SeenRow, SourceRow, VisitorRow,
};
use super::{
    month_of, ApplyStats, Backend, DayTotalRow, FactDayRow, FileDayRow, FileMonthCount, Mark,
    MonthFactRow, MonthNetworkRow, MonthOf, MonthRow, NetworkDayRow, Origin, PageFacts,
    ServerMonthRow,
};
use crate::classify::path_key;
use crate::keys::{DayKey, KeyHasher, Scratch};
use crate::tally::Batch;
use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use rustc_hash::FxHashMap as HashMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Waiting for another writer's lock, as a signal the pipe's reader can read.
///
/// SQLite's own busy timeout cannot tell anyone that it is waiting; a commit
/// that is merely big (a flood of new downloads) and one stuck behind another
/// process's write transaction look the same from outside. So every
/// connection gets this busy handler instead: it sleeps and retries like the
/// timeout (for [`BUSY_TIMEOUT`] at most) and, each time it is called, leaves
/// a heartbeat that [`waiting_for_lock`] reads — true exactly while some
/// connection of this process is blocked by a lock.
pub mod lock_wait {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// How long a statement waits for a lock before it fails with "database is locked".
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
    /// The handler's sleep between tries.
    const STEP: Duration = Duration::from_millis(10);
    /// The heartbeat counts this long after the handler's last call.
    const FRESH: Duration = Duration::from_millis(100);

    /// Milliseconds (since the process's first look, plus one) of the last call; 0: never.
    static LAST_CALL: AtomicU64 = AtomicU64::new(0);

    fn now_ms() -> u64 {
        static START: OnceLock<Instant> = OnceLock::new();
        let start = START.get_or_init(Instant::now);
        u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn handler(tries: i32) -> bool {
        LAST_CALL.store(now_ms(), Ordering::Release);
        let waited = STEP.saturating_mul(u32::try_from(tries).unwrap_or(u32::MAX));
        if waited >= BUSY_TIMEOUT {
            return false;
        }
        std::thread::sleep(STEP);
        true
    }

    pub fn install(conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
        conn.busy_handler(Some(handler))
    }

    /// Whether a connection of this process is waiting for a lock right now.
    pub fn waiting_for_lock() -> bool {
        let last = LAST_CALL.load(Ordering::Acquire);
        last != 0 && now_ms().saturating_sub(last) <= FRESH.as_millis() as u64
    }
}

/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 6;

/// A day is purged only if no line touched it for this long, so a purge never
/// closes a day an import is still working through.
const PURGE_GRACE_SECS: i64 = 3600;

/// A new database's tables at schema 3; `V4` and `V5` then bring them to `SCHEMA_VERSION`.
const SCHEMA: &str = include_str!("migrations/v3_create.sql");
const V4: &str = include_str!("migrations/v4_from_v3.sql");
const V5: &str = include_str!("migrations/v5_from_v4.sql");
const V6: &str = include_str!("migrations/v6_from_v5.sql");

/// SQL for `a + b` saturating at `i64::MAX` (and, for a negative `b`, at 0:
/// no figure is negative). `a` is a stored figure (never negative), `b` the
/// change; SQLite would turn an overflowing `+` into a REAL.
macro_rules! sat_add {
    ($a:literal, $b:literal) => {
        concat!(
            "(CASE WHEN ",
            $b,
            " > 9223372036854775807 - ",
            $a,
            " THEN 9223372036854775807",
            " WHEN ",
            $b,
            " < 0 THEN max(",
            $a,
            " + ",
            $b,
            ", 0)",
            " ELSE ",
            $a,
            " + ",
            $b,
            " END)"
        )
    };
}

/// What a damaged figure becomes in the schema-3 upgrade (see `repair_figures`).
const SATURATED: i64 = i64::MAX;

/// An open SQLite database.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    hasher: KeyHasher,
    file_ids: HashMap<Vec<u8>, i64>,
    server_ids: HashMap<std::sync::Arc<str>, i64>,
    scratch: Scratch,
    /// A purge's TRUNCATE checkpoint could not finish (a reader was busy):
    /// the next `checkpoint` tries again, so the WAL sheds the old pages.
    scrub_pending: std::cell::Cell<bool>,
}

/// What a batch needs to know of one day.
#[derive(Debug, Clone, Copy)]
struct DayState {
    /// `days.identity`: the identity set of the day's lines.
    identity: i64,
    closed: bool,
    /// The day's key (`day_keys`); `None` only for a closed day.
    key: Option<DayKey>,
    /// `days.completion`: its downloads' completion is kept (a day first
    /// counted at schema 6 or later).
    completion: bool,
}

/// The most servers one database knows: a visitor row keeps its servers
/// as bits of one INTEGER.
pub const MAX_SERVERS: i64 = 63;

impl SqliteStore {
    /// Opens (creating if needed) the database for writing.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        remove_orphaned_side_files(path);
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", path.display()))?;
        lock_wait::install(&mut conn)?;
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
        // secure_delete zeroes what deletes free, so a closed day's rows do
        // not live on in free pages (see the module header).
        conn.execute_batch(
            "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-8000; PRAGMA secure_delete=ON;",
        )?;
        let mut store = SqliteStore {
            conn,
            path: path.to_owned(),
            hasher: KeyHasher::new([0; 32]),
            file_ids: HashMap::default(),
            server_ids: HashMap::default(),
            scratch: Scratch::default(),
            scrub_pending: Default::default(),
        };
        store.init_schema()?;
        if store.vacuum_pending()? {
            // An upgrade left old keys in free pages. A failure here (another
            // instance busy) leaves the mark; every purge retries and reports.
            let _ = store.scrub();
        }
        Ok(store)
    }

    /// Opens an existing database for reading only (report, render).
    pub fn open_read(path: &Path) -> Result<SqliteStore> {
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
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open database {}", path.display()))?;
        lock_wait::install(&mut conn)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .with_context(|| format!("cannot read the database {}", path.display()))?;
        check_version(version, path)?;
        if version == 0 {
            bail!("{} is not a dlcount database (no schema)", path.display());
        }
        Ok(SqliteStore {
            conn,
            path: path.to_owned(),
            hasher: KeyHasher::new([0; 32]),
            file_ids: HashMap::default(),
            server_ids: HashMap::default(),
            scratch: Scratch::default(),
            scrub_pending: Default::default(),
        })
    }

    /// `daily.completed`, or `NULL` (unknown) in a database of a schema
    /// before it that a reader opened (reading never upgrades).
    fn completed_column(&self) -> Result<&'static str> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        Ok(if version >= 6 { "d.completed" } else { "NULL" })
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
            tx.execute_batch("PRAGMA user_version=3")?;
            tx.execute_batch(V4)?;
            tx.execute_batch(V5)?;
            tx.execute_batch(V6)?;
        }
        if version == 1 {
            // Schema 1 hashed the bytes into a line's identity and knew no
            // Referer/User-Agent. Its days keep that fingerprint (identity
            // -1, the column default) so their logs still match; new days use
            // the new identity, with bytes kept beside it.
            tx.execute_batch(include_str!("migrations/v2_from_v1.sql"))?;
        }
        if version == 1 || version == 2 {
            upgrade_to_3(&tx)?;
        }
        if (1..=3).contains(&version) {
            tx.execute_batch(V4)?;
        }
        if (1..=4).contains(&version) {
            tx.execute_batch(V5)?;
        }
        if (1..=5).contains(&version) {
            tx.execute_batch(V6)?;
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

    fn apply_inner(
        &mut self,
        batches: &[Batch],
        origin: Origin,
        mark: Option<Mark<'_>>,
    ) -> Result<ApplyStats> {
        let mut stats = ApplyStats::default();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;

        // 0. The secret this transaction hashes with is the database's own:
        //    a `migrate` into this database may have replaced it since we
        //    opened it (the reader's keys made with the old one are then
        //    not used: `line_keys` hashes again).
        let secret: Vec<u8> = tx
            .prepare_cached("SELECT value FROM meta WHERE name = 'secret'")?
            .query_row([], |r| r.get(0))?;
        if secret.as_slice() != self.hasher.secret() {
            let secret: [u8; 32] = secret
                .try_into()
                .map_err(|_| anyhow::anyhow!("{}: corrupt hash secret", self.path.display()))?;
            eprintln!(
                "dlcount: the hash secret of {} was replaced (a migrate); hashing with the new one",
                self.path.display()
            );
            self.hasher = KeyHasher::new(secret);
        }
        // A queued batch is keyed with the secret it was made with: only this one serves.
        super::dedup::check_keyed(batches, &self.hasher)?;

        // 1. The days these lines fall on: closed ones are skipped, the
        //    others are touched (which keeps them from purging) and give the
        //    identity set their lines are hashed with and the key their
        //    hashes are stored under; a new day takes the set of the first
        //    line that reaches it, and a fresh key (race-free: this
        //    transaction holds the write lock from its start).
        let mut days: HashMap<i32, DayState> = HashMap::default();
        for batch in batches {
            for h in batch.hits() {
                // The pipe's own format decides (one damaged line must not
                // weaken a whole day); an import takes the fields every line
                // of the day in this batch has, so none of its lines is left out.
                let bits = match origin {
                    Origin::Live => batch.format_identity,
                    Origin::Import { .. } => h.identity,
                };
                days.entry(h.day)
                    .and_modify(|d| d.identity &= i64::from(bits))
                    .or_insert(DayState {
                        identity: i64::from(bits),
                        closed: false,
                        key: None,
                        completion: true,
                    });
            }
        }
        if !days.is_empty() {
            let now = chrono::Utc::now().timestamp();
            let mut select =
                tx.prepare_cached("SELECT closed, identity, completion FROM days WHERE day = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO days(day, touched, identity, completion) VALUES(?1, ?2, ?3, 1)",
            )?;
            let mut touch = tx.prepare_cached("UPDATE days SET touched = ?2 WHERE day = ?1")?;
            let mut select_key = tx.prepare_cached("SELECT key FROM day_keys WHERE day = ?1")?;
            let mut insert_key =
                tx.prepare_cached("INSERT INTO day_keys(day, key) VALUES(?1, ?2)")?;
            for (&day, state) in days.iter_mut() {
                match select
                    .query_row([day], |r| {
                        Ok((
                            r.get::<_, bool>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, bool>(2)?,
                        ))
                    })
                    .optional()?
                {
                    Some((closed, identity, completion)) => {
                        state.identity = identity;
                        state.closed = closed;
                        state.completion = completion;
                        if !closed {
                            touch.execute(params![day, now])?;
                        }
                    }
                    None => {
                        insert.execute(params![day, now, state.identity])?;
                    }
                }
                if !state.closed {
                    let stored: Option<Vec<u8>> =
                        select_key.query_row([day], |r| r.get(0)).optional()?;
                    let raw = match stored {
                        Some(k) => <[u8; 32]>::try_from(k.as_slice())
                            .map_err(|_| anyhow::anyhow!("corrupt key of day {day}"))?,
                        None => {
                            let k = new_day_key()?;
                            insert_key.execute(params![day, &k[..]])?;
                            k
                        }
                    };
                    state.key = Some(DayKey::new(raw));
                }
            }
        }

        // 2. Hash (with the day's identity set) and group identical lines
        //    (copies within these batches).
        let mut lines: Vec<LineAgg> = Vec::new();
        let mut index: HashMap<(i32, i64), usize> = HashMap::default();
        let mut account = BatchAccount::default();
        for batch in batches {
            let server_id = if batch.hits().is_empty() {
                0
            } else {
                server_id(&mut self.server_ids, &tx, &self.path, &batch.server)?
            };
            for (i, h) in batch.hits().iter().enumerate() {
                let day = days[&h.day];
                let Some(day_key) = day.key else {
                    stats.closed_day_lines += 1;
                    continue;
                };
                let schema1 = day.identity == SCHEMA1_IDENTITY;
                let set = day.identity as u8;
                let missing = if schema1 { 0 } else { set & !h.identity };
                let path = batch.path(h);
                let (visitor, line) =
                    line_keys(batch, i, day.identity, &self.hasher, &mut self.scratch);
                // From here on only the stored forms exist (module header).
                let (visitor, line) = (day_key.visitor(visitor), day_key.line(line));
                if missing != 0 && origin != Origin::Live {
                    // This line lacks a field that identifies the day's lines.
                    // The very same short line seen before (by the pipe, which
                    // hashes what is absent as empty) is found as such; any
                    // other cannot tell whether its request was counted.
                    let known = tx
                        .prepare_cached("SELECT 1 FROM seen_lines WHERE day = ?1 AND hash = ?2")?
                        .exists(params![h.day, line])?;
                    if !known {
                        stats.unmatched_lines += 1;
                        stats.unmatched_fields |= missing;
                        continue;
                    }
                }
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
                let bytes = i64::try_from(h.bytes).unwrap_or(i64::MAX);
                let facts = super::facts::brought(&h.facts, batch.facts_missing);
                match index.entry((h.day, line)) {
                    std::collections::hash_map::Entry::Occupied(e) => {
                        let l = &mut lines[*e.get()];
                        l.copies += 1;
                        l.bytes = l.bytes.saturating_add(bytes);
                        l.facts = l.facts.join(facts);
                        l.cover(&h.cover);
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(lines.len());
                        lines.push(LineAgg {
                            day: h.day,
                            hash: line,
                            copies: 1,
                            bytes,
                            visitor,
                            file_id,
                            server_id,
                            schema1,
                            facts,
                            referer: account.fact_deltas.labels.id(batch.referer_host(h)),
                            ranges: Default::default(),
                            unplaced: false,
                            size: None,
                        });
                        lines.last_mut().expect("pushed").cover(&h.cover);
                    }
                }
            }
        }

        // 3. Lines: how many copies are new? Sorted by key so the B-tree is
        //    walked in order; plain SELECT then INSERT or UPDATE, which is much
        //    cheaper in SQLite than an upsert with RETURNING.
        // The keys are sorted with the lines' places, not the lines
        // themselves: a `LineAgg` is large, and moving it is most of a sort.
        // One integer per line, ordered as (day, hash, place): the sign
        // bits flipped so that unsigned order is the signed one.
        let mut order: Vec<u128> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let day = u128::from((l.day as u32) ^ (1 << 31));
                let hash = u128::from((l.hash as u64) ^ (1 << 63));
                (day << 96) | (hash << 32) | i as u128
            })
            .collect();
        order.sort_unstable();
        {
            // New rows (the common case) cost one statement: INSERT OR IGNORE
            // says by its change count whether the row was there already.
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO seen_lines(day, hash, live, imported, source, source_n,
                    live_bytes, imported_bytes, source_bytes)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut select = tx.prepare_cached(
                "SELECT live, imported, source, source_n, live_bytes, imported_bytes, source_bytes
                 FROM seen_lines WHERE day = ?1 AND hash = ?2",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE seen_lines SET live = ?3, imported = ?4, source = ?5, source_n = ?6,
                    live_bytes = ?7, imported_bytes = ?8, source_bytes = ?9
                 WHERE day = ?1 AND hash = ?2",
            )?;
            for l in order.iter().map(|&k| &lines[k as u32 as usize]) {
                let fresh = SeenLine::default().seen(l.copies, l.bytes, origin);
                let inserted = insert.execute(params![
                    l.day,
                    l.hash,
                    fresh.live,
                    fresh.imported,
                    fresh.source,
                    fresh.source_n,
                    fresh.live_bytes,
                    fresh.imported_bytes,
                    fresh.source_bytes
                ])?;
                let delta = if inserted == 1 {
                    l.new_copies(None, &fresh)
                } else {
                    let before = select.query_row(params![l.day, l.hash], |r| {
                        Ok(SeenLine {
                            live: r.get(0)?,
                            imported: r.get(1)?,
                            source: r.get(2)?,
                            source_n: r.get(3)?,
                            live_bytes: r.get(4)?,
                            imported_bytes: r.get(5)?,
                            source_bytes: r.get(6)?,
                        })
                    })?;
                    let after = before.seen(l.copies, l.bytes, origin);
                    if after != before {
                        update.execute(params![
                            l.day,
                            l.hash,
                            after.live,
                            after.imported,
                            after.source,
                            after.source_n,
                            after.live_bytes,
                            after.imported_bytes,
                            after.source_bytes
                        ])?;
                    }
                    l.new_copies(Some(&before), &after)
                };
                account.add(&mut stats, l, delta);
            }
        }

        // 4. Visitors: a new row is a new download. `run` remembers the last
        //    import run that touched a row, to tell "already known" downloads.
        let BatchAccount {
            visitors,
            mut visitor_order,
            mut server_days,
            mut fact_deltas,
        } = account;
        visitor_order.sort_unstable();
        let mut daily: BTreeMap<(i64, i32), (i64, i64, i64)> = BTreeMap::new();
        let mut completed: BTreeMap<(i64, i32), i64> = BTreeMap::new();
        {
            let run = match origin {
                Origin::Live => 0,
                Origin::Import { run, .. } => run,
            };
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO visitors(day, key, file_id, requests, bytes, run, servers,
                    class, country, ranges, got, complete)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            let mut select = tx.prepare_cached(
                "SELECT run, servers, class, country, ranges, got, complete
                   FROM visitors WHERE day = ?1 AND key = ?2",
            )?;
            let mut update = tx.prepare_cached(concat!(
                "UPDATE visitors SET requests = ",
                sat_add!("requests", "?3"),
                ", bytes = ",
                sat_add!("bytes", "?4"),
                ", run = ?5, servers = servers | ?6, class = ?7, country = ?8,
                 ranges = ?9, got = ?10, complete = ?11
                 WHERE day = ?1 AND key = ?2"
            ))?;
            for key in &visitor_order {
                let v = &visitors[key];
                // Bytes can change alone: the live copies of a line replace
                // an imported file's `%b` figure.
                let changed = v.requests > 0 || v.bytes != 0;
                let brought = gathered(v.facts, v.country);
                // Completion (see `coverage`): a download of a day that
                // keeps it takes its lines' ranges and unplaced bytes into
                // its row, in the same statements as its other figures. Lines
                // already counted still bring their ranges and the file's
                // size (a union adds nothing twice), so a re-read that knows
                // the size can complete a download.
                let cover = days.get(&key.0).is_some_and(|d| d.completion) && v.brings_cover();
                if !changed && run == 0 && brought.is_none() && !cover {
                    continue;
                }
                // A new download holds the facts its lines brought.
                let fresh = v.facts.and(brought).map(|f| Held {
                    class: f.class,
                    country: f.country,
                });
                // A new row's cover starts empty; one that becomes complete
                // adds one to its file-day's `completed`, once (`complete`
                // only turns on). A file-day whose size a line knew has a
                // `completed` (0 or more); else it stays unknown.
                let mut count_completed = |became: bool| {
                    if cover && v.size.is_some() {
                        *completed.entry((v.file_id, key.0)).or_default() += i64::from(became);
                    }
                };
                let new_download = match (v.requests > 0, fresh) {
                    (true, Some(h)) => {
                        let (now, became) = if cover {
                            HeldCover::default().after(v)
                        } else {
                            (HeldCover::default(), false)
                        };
                        let ranges = now.ranges_column();
                        let inserted = insert.execute(params![
                            key.0,
                            key.1,
                            v.file_id,
                            v.requests,
                            v.bytes,
                            run,
                            v.servers,
                            h.class,
                            h.country,
                            ranges,
                            now.got,
                            now.complete
                        ])? == 1;
                        if inserted {
                            count_completed(became);
                        }
                        inserted
                    }
                    _ => false,
                };
                // A server's download is a (client, file, day) it sent a
                // counted line of: the first such line adds one for it.
                let mut new_servers = v.servers;
                if new_download {
                    stats.new_downloads += 1;
                    if let Some(f) = brought {
                        settle(v.file_id, key.0, None, f, &mut fact_deltas);
                    }
                } else if let Some((old, old_servers, class, country, (ranges, got, complete))) =
                    select
                        .query_row(params![key.0, key.1], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, i64>(2)?,
                                r.get::<_, i64>(3)?,
                                (
                                    r.get::<_, Option<Vec<u8>>>(4)?,
                                    r.get::<_, i64>(5)?,
                                    r.get::<_, bool>(6)?,
                                ),
                            ))
                        })
                        .optional()?
                {
                    new_servers &= !old_servers;
                    if run != 0 && old != run {
                        stats.known_downloads += 1;
                    }
                    let was = Held { class, country };
                    let now = match brought {
                        Some(f) => settle(v.file_id, key.0, Some(was), f, &mut fact_deltas),
                        None => was,
                    };
                    // The held cover, written back as read unless it moved.
                    let mut held = (ranges, got, complete);
                    let mut cover_moved = false;
                    if cover {
                        let was =
                            HeldCover::from_columns(held.0.as_deref(), held.1, held.2, key.0)?;
                        let (after, became) = was.after(v);
                        count_completed(became);
                        if after != was {
                            cover_moved = true;
                            held = (after.ranges_column(), after.got, after.complete);
                        }
                    }
                    if changed || old != run || now != was || cover_moved {
                        update.execute(params![
                            key.0,
                            key.1,
                            v.requests,
                            v.bytes,
                            run,
                            v.servers,
                            now.class,
                            now.country,
                            held.0,
                            held.1,
                            held.2
                        ])?;
                    }
                }
                while new_servers != 0 {
                    let id = i64::from(new_servers.trailing_zeros()) + 1;
                    new_servers &= new_servers - 1;
                    server_days.entry((id, key.0)).or_default().0 += 1;
                }
                if changed {
                    let d = daily.entry((v.file_id, key.0)).or_default();
                    d.0 += i64::from(new_download);
                    d.1 = d.1.saturating_add(v.requests);
                    d.2 = d.2.saturating_add(v.bytes);
                }
            }
        }

        // 5. Per file and day figures.
        {
            let mut st = tx.prepare_cached(concat!(
                "INSERT INTO daily(file_id, day, downloads, requests, bytes) VALUES(?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(file_id, day) DO UPDATE SET downloads = ",
                sat_add!("downloads", "excluded.downloads"),
                ", requests = ",
                sat_add!("requests", "excluded.requests"),
                ", bytes = ",
                sat_add!("bytes", "excluded.bytes")
            ))?;
            for ((file_id, day), (dl, rq, by)) in &daily {
                st.execute(params![file_id, day, dl, rq, by])?;
            }
        }

        // 5b. Completed downloads per file and day (see 4), now that every
        //     file-day of the batch has its `daily` row.
        {
            let mut st = tx.prepare_cached(
                "UPDATE daily SET completed = coalesce(completed, 0) + ?3 WHERE file_id = ?1 AND day = ?2",
            )?;
            for ((file_id, day), n) in &completed {
                st.execute(params![file_id, day, n])?;
            }
        }

        // 6. Per file and day facts (see `facts`): moves of one download
        //    between classes may be negative; a new row takes them clamped.
        {
            let mut st = tx.prepare_cached(concat!(
                "INSERT INTO facts_daily(file_id, day, kind, value, n)
                 VALUES(?1, ?2, ?3, ?4, max(?5, 0))
                 ON CONFLICT(file_id, day, kind, value) DO UPDATE SET n = ",
                sat_add!("n", "?5")
            ))?;
            for (file_id, day, kind, value, n) in fact_deltas.rows() {
                st.execute(params![file_id, day, kind, value, n])?;
            }
            let mut st = tx.prepare_cached(
                "INSERT INTO network_days(day, word, bits) VALUES(?1, ?2, ?3)
                 ON CONFLICT(day, word) DO UPDATE SET bits = bits | excluded.bits",
            )?;
            for (day, word, bits) in fact_deltas.network_words() {
                st.execute(params![day, word, bits])?;
            }
        }

        // 7. Per server and day figures.
        {
            let mut st = tx.prepare_cached(concat!(
                "INSERT INTO server_daily(server_id, day, downloads, requests, bytes)
                 VALUES(?1, ?2, max(?3, 0), max(?4, 0), max(?5, 0))
                 ON CONFLICT(server_id, day) DO UPDATE SET downloads = ",
                sat_add!("downloads", "?3"),
                ", requests = ",
                sat_add!("requests", "?4"),
                ", bytes = ",
                sat_add!("bytes", "?5")
            ))?;
            for ((server_id, day), (dl, rq, by)) in &server_days {
                st.execute(params![server_id, day, dl, rq, by])?;
            }
        }

        if let Some(mark) = mark {
            tx.execute(
                "INSERT INTO meta(name, value) VALUES(?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![mark.name, mark.value],
            )?;
        }
        tx.commit()?;
        Ok(stats)
    }

    /// Whether an upgrade asked for a VACUUM that has not happened yet.
    fn vacuum_pending(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM meta WHERE name = 'vacuum'", [], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Clears what deletes left in the files: VACUUM if an upgrade asked for
    /// it (pages freed before `secure_delete` was on), then a TRUNCATE
    /// checkpoint so the WAL keeps no old page either.
    fn scrub(&self) -> Result<()> {
        if self.vacuum_pending()? {
            self.conn.execute_batch("VACUUM")?;
            self.conn
                .execute("DELETE FROM meta WHERE name = 'vacuum'", [])?;
        }
        let truncated = self.checkpoint_truncate()?;
        self.scrub_pending.set(!truncated);
        Ok(())
    }
}

impl Backend for SqliteStore {
    /// The hasher of this database's secret, for reading threads.
    fn hasher(&self) -> KeyHasher {
        self.hasher.clone()
    }

    /// Registers a source (an import file or run) and returns its id.
    fn new_source(&mut self, kind: &str, name: &str) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO sources(kind, name, started) VALUES(?1, ?2, ?3)",
            params![kind, name, chrono::Utc::now().timestamp()],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn mark(&self, name: &str) -> Result<Option<String>> {
        // Spool offsets were stored as integers before marks were text.
        Ok(self
            .conn
            .query_row(
                "SELECT CAST(value AS TEXT) FROM meta WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn mark_names(&self, prefix: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM meta WHERE substr(name, 1, length(?1)) = ?1")?;
        let names = st
            .query_map([prefix], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(names)
    }

    fn forget_mark(&self, name: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM meta WHERE name = ?1", [name])?;
        Ok(())
    }

    fn apply_marked(
        &mut self,
        batches: &[Batch],
        origin: Origin,
        mark: Option<Mark<'_>>,
    ) -> Result<ApplyStats> {
        let result = self.apply_inner(batches, origin, mark);
        if result.is_err() {
            // Ids handed out inside a rolled-back transaction do not exist.
            self.file_ids.clear();
            self.server_ids.clear();
        }
        result
    }

    /// Closes days older than the retention window: their rows and their
    /// key are deleted, the files scrubbed (see the module header), and
    /// later lines for them are skipped. Returns the closed days.
    fn purge(&mut self, today: i32, retention_days: u32) -> Result<Vec<i32>> {
        // In i64, so no retention (up to u32::MAX days) can wrap round.
        let cutoff = i64::from(today) - i64::from(retention_days);
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
            tx.execute("DELETE FROM day_keys WHERE day = ?1", [day])?;
            tx.execute("UPDATE days SET closed = 1 WHERE day = ?1", [day])?;
            tx.commit()?;
        }
        if !days.is_empty() || self.vacuum_pending()? {
            self.scrub()?;
        }
        Ok(days)
    }

    /// Adds months from the old script's counts.json (kept as the larger of old and new).
    fn import_legacy(&mut self, entries: &[(String, String, u64)]) -> Result<usize> {
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
                params![id, month, i64::try_from(*n).unwrap_or(i64::MAX)],
            )?;
        }
        tx.commit()?;
        self.file_ids.clear();
        Ok(changed)
    }

    /// Per file and month figures, downloads merged with legacy months.
    fn monthly(&self) -> Result<Vec<MonthRow>> {
        // By file id and month index while reading (see `page_facts`): a
        // path and a month name per row would cost more than the read.
        let paths: HashMap<i64, String> = self
            .conn
            .prepare("SELECT id, path FROM files")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut months = MonthOf::default();
        let mut counted: HashMap<(i64, usize), MonthRow> = HashMap::default();
        let mut st = self.conn.prepare(&format!(
            "SELECT d.file_id, d.day, d.downloads, d.requests, d.bytes, {} FROM daily d",
            self.completed_column()?
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (file, day): (i64, i32) = (r.get(0)?, r.get(1)?);
            let e = counted
                .entry((file, months.index(day)))
                .or_insert_with(|| MonthRow::empty(String::new(), String::new()));
            e.downloads = e.downloads.saturating_add(figure(r.get_ref(2)?));
            e.requests = e.requests.saturating_add(figure(r.get_ref(3)?));
            e.bytes = e.bytes.saturating_add(figure(r.get_ref(4)?));
            e.add_completed(optional_figure(r.get_ref(5)?));
        }
        let mut acc: BTreeMap<(String, String), MonthRow> = BTreeMap::new();
        for ((file, m), row) in counted {
            let Some(path) = paths.get(&file) else {
                continue;
            };
            let month = months.names[m].clone();
            acc.insert(
                (path.clone(), month.clone()),
                MonthRow {
                    path: path.clone(),
                    month,
                    ..row
                },
            );
        }
        let mut st = self.conn.prepare(
            "SELECT f.path, l.month, l.downloads FROM legacy l JOIN files f ON f.id = l.file_id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let path: String = r.get(0)?;
            let month: String = r.get(1)?;
            let n = figure(r.get_ref(2)?);
            let counted = acc.contains_key(&(path.clone(), month.clone()));
            let e = acc
                .entry((path.clone(), month.clone()))
                .or_insert_with(|| MonthRow::empty(path, month));
            e.merge_legacy(n, counted);
        }
        Ok(acc.into_values().collect())
    }

    fn by_server(&self) -> Result<Vec<ServerMonthRow>> {
        let mut acc: BTreeMap<(String, String), ServerMonthRow> = BTreeMap::new();
        let mut st = self.conn.prepare(
            "SELECT s.name, d.day, d.downloads, d.requests, d.bytes
             FROM server_daily d JOIN servers s ON s.id = d.server_id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let server: String = r.get(0)?;
            let month = month_of(r.get(1)?);
            let e = acc
                .entry((server.clone(), month.clone()))
                .or_insert_with(|| ServerMonthRow {
                    server,
                    month,
                    downloads: 0,
                    requests: 0,
                    bytes: 0,
                });
            e.downloads = e.downloads.saturating_add(figure(r.get_ref(2)?));
            e.requests = e.requests.saturating_add(figure(r.get_ref(3)?));
            e.bytes = e.bytes.saturating_add(figure(r.get_ref(4)?));
        }
        Ok(acc.into_values().collect())
    }

    fn daily(&self) -> Result<Vec<FileDayRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT f.path, d.day, d.downloads, d.requests, d.bytes, {}
               FROM daily d JOIN files f ON f.id = d.file_id ORDER BY f.path, d.day",
            self.completed_column()?
        ))?;
        let mut rows = st.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(FileDayRow {
                path: r.get(0)?,
                day: r.get(1)?,
                downloads: figure(r.get_ref(2)?),
                requests: figure(r.get_ref(3)?),
                bytes: figure(r.get_ref(4)?),
                completed: optional_figure(r.get_ref(5)?),
            });
        }
        Ok(out)
    }

    fn facts(&self, kind: &str) -> Result<Vec<FactDayRow>> {
        let mut st = self.conn.prepare(
            "SELECT f.path, d.day, d.value, d.n
               FROM facts_daily d JOIN files f ON f.id = d.file_id
              WHERE d.kind = ?1 AND d.n > 0 ORDER BY f.path, d.day, d.value",
        )?;
        let mut rows = st.query([kind])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(FactDayRow {
                path: r.get(0)?,
                day: r.get(1)?,
                kind: kind.to_string(),
                value: r.get(2)?,
                n: figure(r.get_ref(3)?),
            });
        }
        Ok(out)
    }

    fn networks(&self) -> Result<Vec<NetworkDayRow>> {
        let mut st = self
            .conn
            .prepare("SELECT day, word, bits FROM network_days ORDER BY day, word")?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i32>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(super::network_rows(rows))
    }

    /// Each table is read once in its key order and summed here as its rows
    /// arrive: SQLite would sort millions of rows for a GROUP BY on a month
    /// worked out from the day, while the rows of one file come in day
    /// order, so [`MonthOf`] names their month for the cost of a comparison.
    fn page_facts(&self) -> Result<PageFacts> {
        let mut months = MonthOf::default();
        let paths: HashMap<i64, String> = self
            .conn
            .prepare("SELECT id, path FROM files")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        // Per day over all files.
        let mut days: BTreeMap<i32, DayTotalRow> = BTreeMap::new();
        let mut st = self
            .conn
            .prepare("SELECT day, downloads, requests, bytes FROM daily")?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let day: i32 = r.get(0)?;
            let t = days.entry(day).or_insert_with(|| DayTotalRow {
                day,
                downloads: 0,
                requests: 0,
                bytes: 0,
                bots: 0,
            });
            t.downloads = t.downloads.saturating_add(figure(r.get_ref(1)?));
            t.requests = t.requests.saturating_add(figure(r.get_ref(2)?));
            t.bytes = t.bytes.saturating_add(figure(r.get_ref(3)?));
        }
        // Facts: per month and value over all files; bots also per file and
        // per day. The (kind, value) pairs are few: each gets a slot once.
        // Keyed by `kind \0 value` in one reused buffer: no allocation per row.
        let mut slot_of: HashMap<Vec<u8>, usize> = HashMap::default();
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut is_bot: Vec<bool> = Vec::new();
        let mut totals: HashMap<(usize, usize), u64> = HashMap::default();
        let mut bots: HashMap<(i64, usize), u64> = HashMap::default();
        let mut st = self
            .conn
            .prepare("SELECT file_id, day, kind, value, n FROM facts_daily WHERE n > 0")?;
        let mut rows = st.query([])?;
        let mut key: Vec<u8> = Vec::new();
        while let Some(r) = rows.next()? {
            let (kind, value) = (r.get_ref(2)?.as_bytes()?, r.get_ref(3)?.as_bytes()?);
            key.clear();
            key.extend_from_slice(kind);
            key.push(0);
            key.extend_from_slice(value);
            let slot = match slot_of.get(key.as_slice()) {
                Some(&i) => i,
                None => {
                    let pair = (
                        String::from_utf8_lossy(kind).into_owned(),
                        String::from_utf8_lossy(value).into_owned(),
                    );
                    is_bot.push(pair.0 == "class" && pair.1 == "bot");
                    pairs.push(pair);
                    slot_of.insert(key.clone(), pairs.len() - 1);
                    pairs.len() - 1
                }
            };
            let (file, day, n): (i64, i32, u64) = (r.get(0)?, r.get(1)?, figure(r.get_ref(4)?));
            let m = months.index(day);
            let t = totals.entry((m, slot)).or_default();
            *t = t.saturating_add(n);
            if is_bot[slot] {
                let b = bots.entry((file, m)).or_default();
                *b = b.saturating_add(n);
                if let Some(d) = days.get_mut(&day) {
                    d.bots = d.bots.saturating_add(n);
                }
            }
        }
        let mut month_rows: Vec<MonthFactRow> = totals
            .into_iter()
            .map(|((m, slot), n)| MonthFactRow {
                month: months.names[m].clone(),
                kind: pairs[slot].0.clone(),
                value: pairs[slot].1.clone(),
                n,
            })
            .collect();
        month_rows
            .sort_by(|a, b| (&a.month, &a.kind, &a.value).cmp(&(&b.month, &b.kind, &b.value)));
        let mut bot_rows: Vec<FileMonthCount> = bots
            .into_iter()
            .filter_map(|((file, m), n)| {
                Some(FileMonthCount {
                    path: paths.get(&file)?.clone(),
                    month: months.names[m].clone(),
                    n,
                })
            })
            .collect();
        bot_rows.sort_by(|a, b| (&a.path, &a.month).cmp(&(&b.path, &b.month)));
        // Networks: the OR of each month's days.
        let mut nets: BTreeMap<String, [u64; super::facts::NETWORK_WORDS]> = BTreeMap::new();
        let mut st = self
            .conn
            .prepare("SELECT day, word, bits FROM network_days")?;
        let mut rows = st.query([])?;
        let mut month_bits: HashMap<usize, [u64; super::facts::NETWORK_WORDS]> = HashMap::default();
        while let Some(r) = rows.next()? {
            let (day, word, bits): (i32, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let Some(w) = usize::try_from(word)
                .ok()
                .filter(|w| *w < super::facts::NETWORK_WORDS)
            else {
                continue;
            };
            month_bits.entry(months.index(day)).or_default()[w] |= bits as u64;
        }
        for (m, bits) in month_bits {
            nets.insert(months.names[m].clone(), bits);
        }
        Ok(PageFacts {
            months: month_rows,
            bots: bot_rows,
            days: days.into_values().collect(),
            networks: nets
                .into_iter()
                .map(|(month, bits)| MonthNetworkRow { month, bits })
                .collect(),
        })
    }

    fn export(&self) -> Result<Dump> {
        let tx = self.conn.unchecked_transaction()?;
        export_from(&tx, &self.path)
    }

    fn transform(&mut self, f: &mut dyn FnMut(Dump) -> Result<Dump>) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = export_from(&tx, &self.path)?;
        let after = f(before)?;
        write_dump(&tx, &after, &self.path)?;
        tx.commit()?;
        self.file_ids.clear();
        self.server_ids.clear();
        self.hasher = KeyHasher::new(after.secret);
        // What the rewrite deleted must not stay in the files.
        self.checkpoint_truncate()?;
        Ok(())
    }

    /// Runs a passive WAL checkpoint so the WAL file does not grow without bound
    /// while readers keep it busy; a TRUNCATE one while a purge's is pending.
    fn checkpoint(&self) -> Result<()> {
        if self.scrub_pending.get() {
            return self.scrub();
        }
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Copies the whole WAL into the database and truncates it to zero bytes,
    /// giving its space back on a full disk; `Ok(false)` when a reader held
    /// it back (nothing was truncated).
    fn checkpoint_truncate(&self) -> Result<bool> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        Ok(busy == 0)
    }

    /// Closes a database whose file is no longer at its path (deleted or
    /// replaced) without touching the `-wal`/`-shm` names: SQLite's last
    /// connection deletes them by name, and they may be another database's now.
    fn close_detached(self: Box<Self>) {
        let _ = self.conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        );
    }
}

/// Schema 3: per-day keys, figures that cannot wrap, no `counters` table.
/// The rows of open days are re-keyed with a fresh key each (their stored
/// values were the intermediates, see `keys`); closed days had none left and
/// keep their `days` and `daily` rows. The old values still sit in free
/// pages, so the upgrade marks the database for a VACUUM (`scrub`).
fn upgrade_to_3(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.execute_batch(include_str!("migrations/v3_from_v2.sql"))?;
    repair_figures(tx)?;
    // A closed day has no rows (the purge deletes them as it closes the day);
    // whatever else lies outside the open days could never be matched again.
    tx.execute_batch(
        "DELETE FROM seen_lines WHERE day NOT IN (SELECT day FROM days WHERE closed = 0);
         DELETE FROM visitors WHERE day NOT IN (SELECT day FROM days WHERE closed = 0);",
    )?;
    let open_days: Vec<i32> = tx
        .prepare("SELECT day FROM days WHERE closed = 0")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for day in open_days {
        let raw = new_day_key()?;
        tx.execute(
            "INSERT INTO day_keys(day, key) VALUES(?1, ?2)",
            params![day, &raw[..]],
        )?;
        let key = DayKey::new(raw);
        type LineRow = (i64, [i64; 7]);
        let lines: Vec<LineRow> = tx
            .prepare(
                "SELECT hash, live, imported, source, source_n, live_bytes, imported_bytes,
                    source_bytes FROM seen_lines WHERE day = ?1",
            )?
            .query_map([day], |r| {
                let mut v = [0; 7];
                for (i, x) in v.iter_mut().enumerate() {
                    *x = r.get(i + 1)?;
                }
                Ok((r.get(0)?, v))
            })?
            .collect::<rusqlite::Result<_>>()?;
        tx.execute("DELETE FROM seen_lines WHERE day = ?1", [day])?;
        let mut insert = tx.prepare(
            "INSERT INTO seen_lines(day, hash, live, imported, source, source_n, live_bytes,
                imported_bytes, source_bytes) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for (hash, v) in lines {
            insert.execute(params![
                day,
                key.line(hash),
                v[0],
                v[1],
                v[2],
                v[3],
                v[4],
                v[5],
                v[6]
            ])?;
        }
        type VisitorRow = (i64, [i64; 4]);
        let visitors: Vec<VisitorRow> = tx
            .prepare("SELECT key, file_id, requests, bytes, run FROM visitors WHERE day = ?1")?
            .query_map([day], |r| {
                Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?]))
            })?
            .collect::<rusqlite::Result<_>>()?;
        tx.execute("DELETE FROM visitors WHERE day = ?1", [day])?;
        let mut insert = tx.prepare(
            "INSERT INTO visitors(day, key, file_id, requests, bytes, run)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (k, v) in visitors {
            insert.execute(params![day, key.visitor(k), v[0], v[1], v[2], v[3]])?;
        }
    }
    tx.execute_batch(
        "INSERT INTO meta(name, value) VALUES('vacuum', 1) ON CONFLICT(name) DO NOTHING;
         PRAGMA user_version=3;",
    )?;
    Ok(())
}

/// Makes the figures of a database damaged by wrapped sums readable again.
/// Before schema 3 a byte count of 2^63 or more was stored negative, and a
/// sum past `i64::MAX` became a REAL, which every reader refused. Such a
/// figure's true value is lost; all that is known is that it claimed 2^63
/// bytes or more, so it becomes `SATURATED` (`i64::MAX`), the value where the
/// saturating sums now stop: "overflowed", not a made-up smaller count, and
/// the downloads and requests beside it stay as counted.
fn repair_figures(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    for (table, columns) in [
        ("daily", &["downloads", "requests", "bytes"][..]),
        ("visitors", &["requests", "bytes"][..]),
        (
            "seen_lines",
            &[
                "live",
                "imported",
                "source_n",
                "live_bytes",
                "imported_bytes",
                "source_bytes",
            ][..],
        ),
        ("legacy", &["downloads"][..]),
    ] {
        for c in columns {
            tx.execute(
                &format!("UPDATE {table} SET {c} = ?1 WHERE typeof({c}) <> 'integer' OR {c} < 0"),
                [SATURATED],
            )?;
        }
    }
    Ok(())
}

/// The id of server `name`, registered on first sight (within the
/// batch's transaction: a rolled-back id is forgotten with the rest).
fn server_id(
    ids: &mut HashMap<std::sync::Arc<str>, i64>,
    tx: &rusqlite::Transaction<'_>,
    db: &Path,
    name: &std::sync::Arc<str>,
) -> Result<i64> {
    if let Some(&id) = ids.get(name) {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO servers(name) VALUES(?1) ON CONFLICT(name) DO NOTHING")?
        .execute([&**name])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM servers WHERE name = ?1")?
        .query_row([&**name], |r| r.get(0))?;
    if !(1..=MAX_SERVERS).contains(&id) {
        bail!(
            "{}: more than {MAX_SERVERS} servers count into this database (--server {name})",
            db.display()
        );
    }
    ids.insert(name.clone(), id);
    Ok(id)
}

/// Meta rows that are the database's own, not marks.
const META_OWN: [&str; 3] = ["secret", "created", "vacuum"];

/// Everything in the database (see `store::migrate`), read within `conn`'s
/// current transaction.
fn export_from(conn: &Connection, path: &Path) -> Result<Dump> {
    let mut dump = Dump::default();
    let secret: Vec<u8> =
        conn.query_row("SELECT value FROM meta WHERE name='secret'", [], |r| {
            r.get(0)
        })?;
    dump.secret = secret
        .try_into()
        .map_err(|_| anyhow::anyhow!("{}: corrupt hash secret", path.display()))?;
    dump.created = conn
        .query_row(
            "SELECT CAST(value AS TEXT) FROM meta WHERE name='created'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let mut file_of: HashMap<i64, usize> = HashMap::default();
    for row in conn
        .prepare("SELECT id, path FROM files ORDER BY id")?
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
    {
        let (id, p) = row?;
        file_of.insert(id, dump.files.len());
        dump.files.push(p);
    }
    let mut server_of: HashMap<i64, usize> = HashMap::default();
    for row in conn
        .prepare("SELECT id, name FROM servers ORDER BY id")?
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
    {
        let (id, name) = row?;
        server_of.insert(id, dump.servers.len());
        dump.servers.push(name);
    }
    let file = |id: i64| {
        file_of
            .get(&id)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("{}: figures of unknown file {id}", path.display()))
    };
    let server = |id: i64| {
        server_of
            .get(&id)
            .copied()
            .ok_or_else(|| anyhow::anyhow!("{}: figures of unknown server {id}", path.display()))
    };
    for row in conn
        .prepare(
            "SELECT d.day, d.touched, d.closed, d.identity, k.key, d.completion FROM days d
             LEFT JOIN day_keys k ON k.day = d.day ORDER BY d.day",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, bool>(5)?,
            ))
        })?
    {
        let (day, touched, closed, identity, key, completion) = row?;
        let key = match key {
            Some(k) => Some(
                <[u8; 32]>::try_from(k.as_slice())
                    .map_err(|_| anyhow::anyhow!("{}: corrupt key of day {day}", path.display()))?,
            ),
            None => None,
        };
        dump.days.push(DayRow {
            day,
            touched,
            closed,
            identity,
            completion,
            key,
        });
    }
    for row in conn
        .prepare(
            "SELECT day, hash, live, imported, source, source_n, live_bytes, imported_bytes,
                source_bytes FROM seen_lines ORDER BY day, hash",
        )?
        .query_map([], |r| {
            Ok(SeenRow {
                day: r.get(0)?,
                hash: r.get(1)?,
                seen: SeenLine {
                    live: r.get(2)?,
                    imported: r.get(3)?,
                    source: r.get(4)?,
                    source_n: r.get(5)?,
                    live_bytes: r.get(6)?,
                    imported_bytes: r.get(7)?,
                    source_bytes: r.get(8)?,
                },
            })
        })?
    {
        dump.seen_lines.push(row?);
    }
    for row in conn
        .prepare(
            "SELECT day, key, file_id, requests, bytes, run, servers, class, country,
                ranges, got, complete
             FROM visitors ORDER BY day, key",
        )?
        .query_map([], |r| {
            Ok((
                r.get::<_, i32>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                [r.get::<_, i64>(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
                [r.get::<_, i64>(7)?, r.get(8)?],
                (
                    r.get::<_, Option<Vec<u8>>>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get::<_, bool>(11)?,
                ),
            ))
        })?
    {
        let (day, key, file_id, [requests, bytes, run, ids], [class, country], cover) = row?;
        let (ranges, got, complete) = cover;
        let mut servers = 0i64;
        for (&id, &i) in &server_of {
            if ids & server_bit(id) != 0 {
                servers |= 1i64 << i;
            }
        }
        dump.visitors.push(VisitorRow {
            day,
            key,
            file: file(file_id)?,
            requests,
            bytes,
            run,
            servers,
            class,
            country,
            ranges,
            got,
            complete,
        });
    }
    for row in conn
        .prepare(
            "SELECT file_id, day, kind, value, n FROM facts_daily ORDER BY file_id, day, kind, value",
        )?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i32>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?
    {
        let (id, day, kind, value, n) = row?;
        dump.facts.push(FactRow {
            file: file(id)?,
            day,
            kind,
            value,
            n,
        });
    }
    for row in conn
        .prepare("SELECT day, word, bits FROM network_days ORDER BY day, word")?
        .query_map([], |r| {
            Ok(NetworkRow {
                day: r.get(0)?,
                word: r.get(1)?,
                bits: r.get(2)?,
            })
        })?
    {
        dump.networks.push(row?);
    }
    for (table, column) in [("daily", "file_id"), ("server_daily", "server_id")] {
        let mut st = conn.prepare(&format!(
            "SELECT {column}, day, downloads, requests, bytes, {} FROM {table} ORDER BY {column}, day",
            if table == "daily" { "completed" } else { "NULL" }
        ))?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let row = FigureRow {
                of: if table == "daily" {
                    file(id)?
                } else {
                    server(id)?
                },
                day: r.get(1)?,
                downloads: r.get(2)?,
                requests: r.get(3)?,
                bytes: r.get(4)?,
                completed: r.get(5)?,
            };
            if table == "daily" {
                dump.daily.push(row);
            } else {
                dump.server_daily.push(row);
            }
        }
    }
    for row in conn
        .prepare("SELECT file_id, month, downloads FROM legacy ORDER BY file_id, month")?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
    {
        let (id, month, downloads) = row?;
        dump.legacy.push(LegacyRow {
            file: file(id)?,
            month,
            downloads,
        });
    }
    for row in conn
        .prepare("SELECT id, kind, name, started FROM sources ORDER BY id")?
        .query_map([], |r| {
            Ok(SourceRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                name: r.get(2)?,
                started: r.get(3)?,
            })
        })?
    {
        dump.sources.push(row?);
    }
    for row in conn
        .prepare(
            "SELECT name, CAST(value AS TEXT) FROM meta
             WHERE name NOT IN ('secret', 'created', 'vacuum') ORDER BY name",
        )?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
    {
        dump.marks.push(row?);
    }
    Ok(dump)
}

/// Replaces everything in the database by `dump`, within `tx`.
fn write_dump(tx: &rusqlite::Transaction<'_>, dump: &Dump, path: &Path) -> Result<()> {
    if dump.servers.len() > MAX_SERVERS as usize {
        bail!("{}: more than {MAX_SERVERS} servers", path.display());
    }
    tx.execute_batch(
        "DELETE FROM seen_lines; DELETE FROM visitors; DELETE FROM daily; DELETE FROM server_daily;
         DELETE FROM legacy; DELETE FROM days; DELETE FROM day_keys; DELETE FROM sources;
         DELETE FROM files; DELETE FROM servers; DELETE FROM facts_daily;
         DELETE FROM network_days;",
    )?;
    for name in tx
        .prepare("SELECT name FROM meta")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
    {
        if !META_OWN.contains(&name.as_str()) {
            tx.execute("DELETE FROM meta WHERE name = ?1", [&name])?;
        }
    }
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE name = 'secret'",
        [&dump.secret[..]],
    )?;
    if let Some(created) = &dump.created {
        tx.execute(
            "INSERT INTO meta(name, value) VALUES('created', ?1)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [created],
        )?;
    }
    // Ids are the dump's indices + 1 (a server's bit is its index).
    let mut st = tx.prepare("INSERT INTO files(id, path) VALUES(?1, ?2)")?;
    for (i, p) in dump.files.iter().enumerate() {
        st.execute(params![i as i64 + 1, p])?;
    }
    let mut st = tx.prepare("INSERT INTO servers(id, name) VALUES(?1, ?2)")?;
    for (i, s) in dump.servers.iter().enumerate() {
        st.execute(params![i as i64 + 1, s])?;
    }
    let mut st = tx.prepare(
        "INSERT INTO days(day, touched, closed, identity, completion) VALUES(?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut key_st = tx.prepare("INSERT INTO day_keys(day, key) VALUES(?1, ?2)")?;
    for d in &dump.days {
        st.execute(params![
            d.day,
            d.touched,
            d.closed,
            d.identity,
            d.completion
        ])?;
        if let Some(k) = &d.key {
            key_st.execute(params![d.day, &k[..]])?;
        }
    }
    let mut st = tx.prepare(
        "INSERT INTO seen_lines(day, hash, live, imported, source, source_n, live_bytes,
            imported_bytes, source_bytes) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for r in &dump.seen_lines {
        let s = &r.seen;
        st.execute(params![
            r.day,
            r.hash,
            s.live,
            s.imported,
            s.source,
            s.source_n,
            s.live_bytes,
            s.imported_bytes,
            s.source_bytes
        ])?;
    }
    let mut st = tx.prepare(
        "INSERT INTO visitors(day, key, file_id, requests, bytes, run, servers, class, country,
            ranges, got, complete)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for v in &dump.visitors {
        st.execute(params![
            v.day,
            v.key,
            v.file as i64 + 1,
            v.requests,
            v.bytes,
            v.run,
            v.servers,
            v.class,
            v.country,
            v.ranges,
            v.got,
            v.complete
        ])?;
    }
    let mut st = tx.prepare(
        "INSERT INTO facts_daily(file_id, day, kind, value, n) VALUES(?1, ?2, ?3, ?4, ?5)",
    )?;
    for f in &dump.facts {
        st.execute(params![f.file as i64 + 1, f.day, f.kind, f.value, f.n])?;
    }
    let mut st = tx.prepare("INSERT INTO network_days(day, word, bits) VALUES(?1, ?2, ?3)")?;
    for n in &dump.networks {
        st.execute(params![n.day, n.word, n.bits])?;
    }
    for (table, column, rows) in [
        ("daily", "file_id", &dump.daily),
        ("server_daily", "server_id", &dump.server_daily),
    ] {
        let mut st = tx.prepare(&format!(
            "INSERT INTO {table}({column}, day, downloads, requests, bytes{}) VALUES(?1, ?2, ?3, ?4, ?5{})",
            if table == "daily" { ", completed" } else { "" },
            if table == "daily" { ", ?6" } else { "" },
        ))?;
        for f in rows {
            if table == "daily" {
                st.execute(params![
                    f.of as i64 + 1,
                    f.day,
                    f.downloads,
                    f.requests,
                    f.bytes,
                    f.completed
                ])?;
            } else {
                st.execute(params![
                    f.of as i64 + 1,
                    f.day,
                    f.downloads,
                    f.requests,
                    f.bytes
                ])?;
            }
        }
    }
    let mut st = tx.prepare("INSERT INTO legacy(file_id, month, downloads) VALUES(?1, ?2, ?3)")?;
    for l in &dump.legacy {
        st.execute(params![l.file as i64 + 1, l.month, l.downloads])?;
    }
    let mut st =
        tx.prepare("INSERT INTO sources(id, kind, name, started) VALUES(?1, ?2, ?3, ?4)")?;
    for s in &dump.sources {
        st.execute(params![s.id, s.kind, s.name, s.started])?;
    }
    let mut st = tx.prepare("INSERT INTO meta(name, value) VALUES(?1, ?2)")?;
    for (name, value) in &dump.marks {
        st.execute(params![name, value])?;
    }
    Ok(())
}

fn new_day_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness for a day key: {e}"))?;
    Ok(key)
}

/// A stored figure as a count: a REAL or negative one (a database damaged
/// before schema 3 and not yet upgraded, read by `report`) reads as
/// `SATURATED`, as the upgrade will make it (see `repair_figures`).
fn figure(v: rusqlite::types::ValueRef<'_>) -> u64 {
    match v {
        rusqlite::types::ValueRef::Integer(i) if i >= 0 => i as u64,
        _ => SATURATED as u64,
    }
}

/// A figure that may be unknown (NULL), such as `daily.completed`.
fn optional_figure(v: rusqlite::types::ValueRef<'_>) -> Option<u64> {
    match v {
        rusqlite::types::ValueRef::Null => None,
        v => Some(figure(v)),
    }
}

/// A `-wal`/`-shm` beside a database file that does not exist belongs to a
/// deleted database (SQLite creates the database file first): a new database
/// created at the path would take it for its own and replay the old file's
/// pages into itself. Unlinking is safe for a logger still writing the
/// deleted file: it keeps its open descriptors, and notices the deletion
/// itself (see `pipe`), finding these fresh names no longer its own.
fn remove_orphaned_side_files(path: &Path) {
    if path.symlink_metadata().is_ok() {
        return;
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(crate::config::db_side_file(path, suffix));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Classifier;
    use crate::logformat::{identity, LogFormat};
    use crate::tally::LineProcessor;

    fn batch_of(lines: &[&str]) -> Batch {
        let mut p = LineProcessor::new(
            LogFormat::compile("combined").unwrap(),
            Classifier::new(&[".iso"]),
        );
        let mut b = Batch::new();
        for (i, l) in lines.iter().enumerate() {
            p.process_line(l.as_bytes(), i as u64 + 1, &mut b);
        }
        b
    }

    /// A database as schema 1 left it: one line of 20 Nov counted live,
    /// with schema 1's fingerprint (bytes included, no Referer/User-Agent).
    fn schema1_database(path: &Path, line: &str) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE);
             CREATE TABLE seen_lines (day INTEGER NOT NULL, hash INTEGER NOT NULL,
                 live INTEGER NOT NULL, imported INTEGER NOT NULL,
                 source INTEGER NOT NULL, source_n INTEGER NOT NULL,
                 PRIMARY KEY (day, hash)) WITHOUT ROWID;
             CREATE TABLE visitors (day INTEGER NOT NULL, key INTEGER NOT NULL, file_id INTEGER NOT NULL,
                 requests INTEGER NOT NULL, bytes INTEGER NOT NULL, run INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (day, key)) WITHOUT ROWID;
             CREATE TABLE daily (file_id INTEGER NOT NULL, day INTEGER NOT NULL,
                 downloads INTEGER NOT NULL, requests INTEGER NOT NULL, bytes INTEGER NOT NULL,
                 PRIMARY KEY (file_id, day)) WITHOUT ROWID;
             CREATE TABLE legacy (file_id INTEGER NOT NULL, month TEXT NOT NULL, downloads INTEGER NOT NULL,
                 PRIMARY KEY (file_id, month)) WITHOUT ROWID;
             CREATE TABLE days (day INTEGER PRIMARY KEY, touched INTEGER NOT NULL, closed INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE sources (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, started INTEGER NOT NULL);
             CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             PRAGMA user_version=1;",
        )
        .unwrap();
        let secret = [9u8; 32];
        conn.execute(
            "INSERT INTO meta(name, value) VALUES('secret', ?1)",
            [&secret[..]],
        )
        .unwrap();
        let b = batch_of(&[line]);
        let h = &b.hits()[0];
        let hasher = KeyHasher::new(secret);
        let mut s = Scratch::default();
        let visitor = hasher.visitor(&mut s, b.client(h), b.path(h), h.day);
        let hash = hasher.line_v1(&mut s, visitor, &b.line_fields(h));
        conn.execute_batch(&format!(
            "INSERT INTO files(id, path) VALUES(1, '/isos/a.iso');
             INSERT INTO seen_lines VALUES({d}, {hash}, 1, 0, 0, 0);
             INSERT INTO visitors VALUES({d}, {visitor}, 1, 1, {by}, 0);
             INSERT INTO daily VALUES(1, {d}, 1, 1, {by});
             INSERT INTO days(day, touched) VALUES({d}, 0);",
            d = h.day,
            by = h.bytes
        ))
        .unwrap();
    }

    #[test]
    fn a_schema1_database_upgrades_and_its_days_still_match_their_logs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.sqlite");
        let old_line = r#"203.0.113.5 - - [20/Nov/2026:10:00:00 +0100] "GET /isos/a.iso HTTP/1.1" 200 1000 "-" "Mozilla/5.0""#;
        schema1_database(&db, old_line);
        let mut store = SqliteStore::open(&db).unwrap();
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // Re-importing the rotated log of that day counts nothing twice…
        let run = store.new_source("import-run", "test").unwrap();
        let file_source = store.new_source("import", "access.log.1").unwrap();
        let origin = Origin::Import { file_source, run };
        let second = old_line.replace("10:00:00", "10:05:00");
        let stats = store
            .apply(&[batch_of(&[old_line, &second])], origin)
            .unwrap();
        assert_eq!((stats.counted_lines, stats.already_counted_lines), (1, 1));
        // …and a new day uses the new identity (Referer tells these two apart).
        let new_day = old_line.replace("20/Nov", "21/Nov");
        let other_referer =
            new_day.replace("\"-\" \"Mozilla", "\"https://example.org/\" \"Mozilla");
        let stats = store
            .apply(&[batch_of(&[&new_day, &other_referer])], Origin::Live)
            .unwrap();
        assert_eq!((stats.counted_lines, stats.new_downloads), (2, 1));
        let rows = store.monthly().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].downloads, rows[0].requests, rows[0].bytes),
            (2, 4, 4000)
        );
        let identities: Vec<i64> = store
            .conn
            .prepare("SELECT identity FROM days ORDER BY day")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            identities,
            vec![
                SCHEMA1_IDENTITY,
                i64::from(identity::ALL | identity::SERVER)
            ]
        );
        // The download counted before the upgrade has no class, even after
        // a new line of it: its earlier lines' classes are lost (unknown,
        // never guessed). The new day's download has one.
        let classes: Vec<(i32, String, u64)> = store
            .facts("class")
            .unwrap()
            .into_iter()
            .map(|f| (f.day, f.value, f.n))
            .collect();
        let day21 = batch_of(&[&new_day]).hits()[0].day;
        assert_eq!(classes, vec![(day21, "other".to_string(), 1)]);
    }

    /// Lines without facts (an outage queue file of version 1) make their
    /// download's class unknown, whatever came before or after.
    #[test]
    fn lines_without_facts_make_their_download_unknown_in_any_order() {
        let firefox = r#"192.0.2.7 - - [20/Nov/2026:10:00:00 +0100] "GET /isos/a.iso HTTP/1.1" 200 10 "-" "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0""#;
        let queued = firefox.replace("10:00:00", "10:00:01");
        let curl = r#"192.0.2.8 - - [20/Nov/2026:10:00:00 +0100] "GET /isos/a.iso HTTP/1.1" 200 10 "-" "curl/8.5.0""#;
        for queued_first in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = SqliteStore::open(&dir.path().join("d.sqlite")).unwrap();
            let mut missing = batch_of(&[&queued]);
            missing.facts_missing = true;
            let known = batch_of(&[firefox, curl]);
            let order = if queued_first {
                [missing, known]
            } else {
                [known, missing]
            };
            for b in &order {
                store.apply(std::slice::from_ref(b), Origin::Live).unwrap();
            }
            let classes: Vec<(String, u64)> = store
                .facts("class")
                .unwrap()
                .into_iter()
                .map(|f| (f.value, f.n))
                .collect();
            assert_eq!(
                classes,
                vec![("downloader".to_string(), 1)],
                "{queued_first}"
            );
            assert_eq!(store.daily().unwrap()[0].downloads, 2);
        }
    }

    #[test]
    fn the_live_copies_bytes_replace_an_imported_files_and_never_add_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("d.sqlite")).unwrap();
        let run = store.new_source("import-run", "test").unwrap();
        let file_source = store.new_source("import", "access.log").unwrap();
        let origin = Origin::Import { file_source, run };
        let pct_b = r#"203.0.113.5 - - [20/Nov/2026:10:00:00 +0100] "GET /isos/a.iso HTTP/1.1" 206 1000 "-" "aria2""#;
        let pct_o = pct_b.replace(" 1000 ", " 1300 ");
        let stats = store.apply(&[batch_of(&[pct_b, pct_b])], origin).unwrap();
        assert_eq!(stats.counted_lines, 2);
        // One live copy is already counted; the second raises live to a tie: live wins.
        for (live_lines, bytes) in [(1, 2000), (1, 2600), (1, 3900)] {
            let b = batch_of(&vec![pct_o.as_str(); live_lines]);
            store.apply(&[b], Origin::Live).unwrap();
            let r = &store.monthly().unwrap()[0];
            assert_eq!(r.bytes, bytes);
        }
        let r = &store.monthly().unwrap()[0];
        assert_eq!((r.downloads, r.requests), (1, 3));
    }

    const LINE: &str = r#"203.0.113.5 - - [20/Nov/2026:10:00:00 +0100] "GET /isos/a.iso HTTP/1.1" 200 1000 "-" "Mozilla/5.0""#;

    fn one_i64(store: &SqliteStore, sql: &str) -> i64 {
        store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// A schema-2 database whose byte sums wrapped (as before schema 3): one
    /// line of `LINE`'s day counted live, with its bytes turned REAL in
    /// `daily` and `visitors`; a second file whose figures went negative.
    fn damaged_schema2_database(path: &Path) {
        let conn = Connection::open(path).unwrap();
        let schema2 = SCHEMA.replace(
            "CREATE TABLE day_keys (day INTEGER PRIMARY KEY, key BLOB NOT NULL);",
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
        );
        conn.execute_batch(&schema2).unwrap();
        let secret = [3u8; 32];
        conn.execute(
            "INSERT INTO meta(name, value) VALUES('secret', ?1)",
            [&secret[..]],
        )
        .unwrap();
        let b = batch_of(&[LINE]);
        let h = &b.hits()[0];
        let hasher = KeyHasher::new(secret);
        let mut s = Scratch::default();
        let visitor = hasher.visitor(&mut s, b.client(h), b.path(h), h.day);
        let hash = hasher.line(&mut s, visitor, &b.line_fields(h), identity::ALL);
        conn.execute_batch(&format!(
            "INSERT INTO files(id, path) VALUES(1, '/isos/a.iso'), (2, '/isos/b.iso');
             INSERT INTO days(day, touched, identity) VALUES({d}, 0, {all});
             INSERT INTO seen_lines VALUES({d}, {hash}, 1, 0, 0, 0, -9223372036854775000, 0, 0);
             INSERT INTO visitors VALUES({d}, {visitor}, 1, 1, 1.8446744073709552e19, 0);
             INSERT INTO visitors VALUES({d}, 77, 2, 1, -5, 0);
             INSERT INTO daily VALUES(1, {d}, 1, 1, 1.8446744073709552e19);
             INSERT INTO daily VALUES(2, {d}, 1, 1, -9223372036854775000);
             INSERT INTO counters VALUES('lines', 2);
             PRAGMA user_version=2;",
            d = h.day,
            all = identity::ALL
        ))
        .unwrap();
    }

    #[test]
    fn the_schema3_upgrade_repairs_wrapped_byte_sums_and_rekeys_open_days() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("damaged.sqlite");
        damaged_schema2_database(&db);
        let mut store = SqliteStore::open(&db).unwrap();
        assert_eq!(one_i64(&store, "PRAGMA user_version"), SCHEMA_VERSION);
        let rows = store.monthly().unwrap();
        let figures: Vec<_> = rows
            .iter()
            .map(|r| (r.path.as_str(), r.downloads, r.requests, r.bytes))
            .collect();
        let max = i64::MAX as u64;
        assert_eq!(
            figures,
            vec![("/isos/a.iso", 1, 1, max), ("/isos/b.iso", 1, 1, max)]
        );
        for sql in [
            "SELECT count(*) FROM daily WHERE typeof(bytes) <> 'integer' OR bytes <> 9223372036854775807",
            "SELECT count(*) FROM visitors WHERE typeof(bytes) <> 'integer' OR bytes <> 9223372036854775807",
            "SELECT count(*) FROM seen_lines WHERE live_bytes <> 9223372036854775807",
            "SELECT count(*) FROM sqlite_master WHERE name = 'counters'",
            "SELECT count(*) FROM meta WHERE name = 'vacuum'",
        ] {
            assert_eq!(one_i64(&store, sql), 0, "{sql}");
        }
        // The open day got a key, and its rows were re-keyed with it: the
        // same line, imported, is known already.
        assert_eq!(one_i64(&store, "SELECT count(*) FROM day_keys"), 1);
        assert_eq!(
            one_i64(&store, "SELECT count(*) FROM visitors WHERE key = 77"),
            0
        );
        let run = store.new_source("import-run", "test").unwrap();
        let file_source = store.new_source("import", "access.log").unwrap();
        let stats = store
            .apply(&[batch_of(&[LINE])], Origin::Import { file_source, run })
            .unwrap();
        assert_eq!((stats.counted_lines, stats.already_counted_lines), (0, 1));
        assert_eq!((stats.new_downloads, stats.known_downloads), (0, 1));
    }

    #[test]
    fn sums_saturate_in_sql_instead_of_turning_real() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("d.sqlite")).unwrap();
        store.apply(&[batch_of(&[LINE])], Origin::Live).unwrap();
        store
            .conn
            .execute_batch(
                "UPDATE daily SET bytes = 9223372036854775800, requests = 9223372036854775807;
                 UPDATE visitors SET bytes = 9223372036854775800;",
            )
            .unwrap();
        let second = LINE.replace("10:00:00", "10:00:01");
        let stats = store.apply(&[batch_of(&[&second])], Origin::Live).unwrap();
        assert_eq!(stats.counted_lines, 1);
        for sql in [
            "SELECT bytes FROM daily",
            "SELECT requests FROM daily",
            "SELECT bytes FROM visitors",
        ] {
            assert_eq!(one_i64(&store, sql), i64::MAX, "{sql}");
        }
        let r = &store.monthly().unwrap()[0];
        assert_eq!((r.requests, r.bytes), (i64::MAX as u64, i64::MAX as u64));
    }

    #[test]
    fn no_retention_wraps_round_to_close_a_recent_day() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("d.sqlite")).unwrap();
        let stats = store.apply(&[batch_of(&[LINE])], Origin::Live).unwrap();
        let day = stats.max_day.unwrap();
        store
            .conn
            .execute("UPDATE days SET touched = 0", [])
            .unwrap();
        assert_eq!(store.purge(day + 1, u32::MAX).unwrap(), Vec::<i32>::new());
        assert_eq!(store.purge(day + 1, 1).unwrap(), Vec::<i32>::new());
        assert_eq!(store.purge(day + 2, 1).unwrap(), vec![day]);
    }

    #[test]
    fn closing_a_day_deletes_its_key_even_without_visitors() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("d.sqlite")).unwrap();
        let stats = store.apply(&[batch_of(&[LINE])], Origin::Live).unwrap();
        let day = stats.max_day.unwrap();
        let other = LINE.replace("20/Nov", "21/Nov");
        store.apply(&[batch_of(&[&other])], Origin::Live).unwrap();
        assert_eq!(one_i64(&store, "SELECT count(*) FROM day_keys"), 2);
        // The first day keeps no row, only its key.
        store
            .conn
            .execute_batch(&format!(
                "DELETE FROM visitors WHERE day = {day}; DELETE FROM seen_lines WHERE day = {day};
                 UPDATE days SET touched = 0;"
            ))
            .unwrap();
        assert_eq!(store.purge(day + 36, 35).unwrap(), vec![day]);
        let left: Vec<i32> = store
            .conn
            .prepare("SELECT day FROM day_keys")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(left, vec![day + 1]);
        let stats = store.apply(&[batch_of(&[LINE])], Origin::Live).unwrap();
        assert_eq!((stats.closed_day_lines, stats.counted_lines), (1, 0));
    }

    #[test]
    fn everything_exported_is_written_back_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("d.sqlite")).unwrap();
        let day = store
            .apply(&[batch_of(&[LINE])], Origin::Live)
            .unwrap()
            .max_day
            .unwrap();
        let mut b = batch_of(&[&LINE.replace("20/Nov", "21/Nov")]);
        b.server = std::sync::Arc::from("mirror-b");
        let run = store.new_source("import-run", "t").unwrap();
        let file_source = store.new_source("import", "x.log").unwrap();
        store
            .apply_marked(
                &[b],
                Origin::Import { file_source, run },
                Some(Mark {
                    name: "follow:/x.log",
                    value: "1:2:3",
                }),
            )
            .unwrap();
        store
            .import_legacy(&[("/old.iso".into(), "2020-01".into(), 5)])
            .unwrap();
        store
            .conn
            .execute("UPDATE days SET touched = 0 WHERE day = ?1", [day])
            .unwrap();
        assert_eq!(store.purge(day + 36, 35).unwrap(), vec![day]);
        let before = store.export().unwrap();
        assert_eq!(before.days.len(), 2);
        assert!(before.days[0].closed && before.days[0].key.is_none());
        assert_eq!(before.servers, vec!["".to_string(), "mirror-b".to_string()]);
        assert_eq!(before.visitors[0].servers, 0b10);
        assert_eq!(
            before.marks,
            vec![("follow:/x.log".to_string(), "1:2:3".to_string())]
        );
        assert_eq!(before.sources.len(), 2);
        store.transform(&mut |d| Ok(d)).unwrap();
        assert_eq!(store.export().unwrap(), before);
        let rows = store.monthly().unwrap();
        store.transform(&mut |d| Ok(d)).unwrap();
        assert_eq!(store.monthly().unwrap(), rows);
    }

    /// How many of `values` occur in the database files, as 8 bytes in
    /// either byte order (tests/it/privacy.rs searches more encodings).
    fn found_in_files(db: &Path, values: &[i64]) -> usize {
        let wanted: std::collections::HashMap<[u8; 8], i64> = values
            .iter()
            .flat_map(|&v| [(v.to_le_bytes(), v), (v.to_be_bytes(), v)])
            .collect();
        let mut hits = std::collections::HashSet::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            if let Ok(bytes) = std::fs::read(&p) {
                for w in bytes.windows(8) {
                    if let Some(v) = wanted.get(<&[u8; 8]>::try_from(w).unwrap()) {
                        hits.insert(*v);
                    }
                }
            }
        }
        hits.len()
    }

    #[test]
    fn the_schema3_upgrade_clears_what_earlier_purges_left_in_free_pages() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.sqlite");
        let value = |i: i64| first8_of(i);
        let (closed, open): (Vec<i64>, Vec<i64>) = (0..6000).map(value).partition(|v| v % 3 != 0);
        {
            let conn = Connection::open(&db).unwrap();
            let schema2 = SCHEMA.replace(
                "CREATE TABLE day_keys (day INTEGER PRIMARY KEY, key BLOB NOT NULL);",
                "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
            );
            conn.execute_batch(&schema2).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA user_version=2;
                 INSERT INTO meta(name, value) VALUES('secret', zeroblob(32));
                 INSERT INTO days(day, touched, closed) VALUES(1, 0, 1), (2, 0, 1), (3, 0, 0);",
            )
            .unwrap();
            for (i, v) in closed.iter().chain(&open).enumerate() {
                let day = if open.contains(v) {
                    3
                } else {
                    1 + i as i64 % 2
                };
                conn.execute(
                    "INSERT INTO visitors VALUES(?1, ?2, 1, 1, 10, 0)",
                    params![day, v],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO seen_lines VALUES(?1, ?2, 1, 0, 0, 0, 10, 0, 0)",
                    params![day, v.wrapping_add(1)],
                )
                .unwrap();
            }
            // Schema 2's purge, without secure_delete.
            conn.execute_batch(
                "DELETE FROM visitors WHERE day < 3; DELETE FROM seen_lines WHERE day < 3;",
            )
            .unwrap();
        }
        let mut all: Vec<i64> = closed.iter().chain(&open).copied().collect();
        all.extend(closed.iter().chain(&open).map(|v| v.wrapping_add(1)));
        let before = found_in_files(&db, &all);
        assert!(
            before > closed.len(),
            "{before}: the test must see leftovers"
        );
        let store = SqliteStore::open(&db).unwrap();
        assert_eq!(
            one_i64(&store, "SELECT count(*) FROM visitors"),
            open.len() as i64
        );
        assert_eq!(found_in_files(&db, &all), 0, "while open");
        drop(store);
        assert_eq!(found_in_files(&db, &all), 0, "after closing");
    }

    fn first8_of(i: i64) -> i64 {
        let h = blake3::hash(&i.to_le_bytes());
        i64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap())
    }
}
