//! The store: the only authority on "seen before", behind one batch-level
//! interface ([`Backend`]) with one implementation per database engine.
//!
//! - `sqlite/`: the embedded default, one file beside the logger.
//! - `postgres/`: a shared server, so several web servers count as one.
//!
//! What every backend keeps (the behaviour suite in `tests/it/store.rs`
//! runs the same checks against each):
//! - **Once ever.** A download is a distinct (client, file, day) visitor
//!   row; it is counted when that row is created, in the same transaction
//!   that records the line that created it.
//! - **Multiset idempotency.** Every counted line has a row keyed by (day,
//!   line identity hash) holding how many copies were seen live and the most
//!   copies one imported file held ([`dedup::SeenLine`]); requests and bytes
//!   move only by the change of the real copies, so re-reading a line never
//!   changes a figure.
//! - **One identity per day**, fixed by the first source that counted it.
//! - **No raw addresses**: the reader hashes with the database's secret;
//!   the store keeps only those hashes re-keyed with the day's random key,
//!   and closing a day deletes its rows and its key together.
//! - **Closed days are final; sums never wrap** (they saturate at `i64::MAX`).
//! - **Facts are joins** ([`facts`]): each download's client class and
//!   country only move up a lattice, and the per file and day counts of
//!   downloads by class, country and network (`facts_daily`) move with
//!   them in the same transaction, so they are exact in any order and
//!   outlive the purge. Downloads whose facts are not known (counted
//!   before dlcount kept them) are the difference to `daily`'s downloads.
//!
//! **Read model** (for `report` and the statistics pages): [`Backend::monthly`]
//! (file × month), [`Backend::by_server`] (server × month),
//! [`Backend::daily`] (file × day: downloads, requests, bytes) and
//! [`Backend::facts`] (file × day × fact: downloads with each class, country
//! code and network). Per month and per day views are sums of these rows;
//! [`Backend::page_facts`] is those sums as the statistics pages need them
//! (per month, and per day over all files), worked out by the database so
//! a render does not carry a row per file and day.
//!
//! A batch is applied in one transaction: all of its lines count, or none.

pub mod dedup;
pub mod facts;
pub mod migrate;
pub mod postgres;
pub mod sqlite;

use crate::config::DbTarget;
use crate::keys::KeyHasher;
use crate::tally::Batch;
use anyhow::Result;
use chrono::{Datelike, NaiveDate};

pub use sqlite::lock_wait;

/// What a storage engine does for dlcount. Batch-level on purpose: a call
/// costs a few statements per table, never a round trip per line.
pub trait Backend: Send {
    /// The hasher of this database's secret, for reading threads.
    fn hasher(&self) -> KeyHasher;

    /// Registers a source (an import file or run) and returns its id.
    fn new_source(&mut self, kind: &str, name: &str) -> Result<i64>;

    /// Applies batches in one transaction and, when `mark` is given,
    /// records that mark in the same transaction (a source's position: the
    /// spool's offset, a followed file's checkpoint), so a position is never
    /// ahead of, nor behind, the counts it covers.
    fn apply_marked(
        &mut self,
        batches: &[Batch],
        origin: Origin,
        mark: Option<Mark<'_>>,
    ) -> Result<ApplyStats>;

    /// The value of a mark, if one is recorded.
    fn mark(&self, name: &str) -> Result<Option<String>>;

    /// The names of the recorded marks starting with `prefix`.
    fn mark_names(&self, prefix: &str) -> Result<Vec<String>>;

    /// Forgets a mark.
    fn forget_mark(&self, name: &str) -> Result<()>;

    /// Applies batches in one transaction: all of them count, or none does.
    fn apply(&mut self, batches: &[Batch], origin: Origin) -> Result<ApplyStats> {
        self.apply_marked(batches, origin, None)
    }

    /// Applies batches of a spool file and records, in the same transaction,
    /// that the file is counted up to byte `offset` (see `spool`).
    fn apply_spooled(
        &mut self,
        batches: &[Batch],
        origin: Origin,
        spool_file: &str,
        offset: u64,
    ) -> Result<ApplyStats> {
        let value = offset.to_string();
        let name = format!("{SPOOL_MARK}{spool_file}");
        self.apply_marked(
            batches,
            origin,
            Some(Mark {
                name: &name,
                value: &value,
            }),
        )
    }

    /// How far a spool file is counted already (0 if not at all).
    fn spool_offset(&self, spool_file: &str) -> Result<u64> {
        match self.mark(&format!("{SPOOL_MARK}{spool_file}"))? {
            None => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("corrupt spool offset {v:?} of {spool_file}")),
        }
    }

    /// The spool files whose offsets are recorded.
    fn spool_names(&self) -> Result<Vec<String>> {
        Ok(self
            .mark_names(SPOOL_MARK)?
            .into_iter()
            .map(|n| n[SPOOL_MARK.len()..].to_string())
            .collect())
    }

    /// Forgets a spool file once it is counted whole and deleted.
    fn forget_spool(&self, spool_file: &str) -> Result<()> {
        self.forget_mark(&format!("{SPOOL_MARK}{spool_file}"))
    }

    /// Closes days older than the retention window (their keys and rows
    /// go); later lines for them are skipped. Returns the closed days.
    fn purge(&mut self, today: i32, retention_days: u32) -> Result<Vec<i32>>;

    /// Adds months from the old script's counts.json (kept as the larger of old and new).
    fn import_legacy(&mut self, entries: &[(String, String, u64)]) -> Result<usize>;

    /// Per file and month figures, downloads merged with legacy months.
    fn monthly(&self) -> Result<Vec<MonthRow>>;

    /// Per server and month figures (see [`ServerMonthRow`]), for the
    /// servers that counted anything.
    fn by_server(&self) -> Result<Vec<ServerMonthRow>>;

    /// Per file and day figures (legacy months not included), sorted by
    /// path, then day.
    fn daily(&self) -> Result<Vec<FileDayRow>>;

    /// Per file, day and fact: how many downloads have it (see [`facts`]),
    /// for facts of `kind` (`class`, `country`, `network`: `v6`), sorted by
    /// path, day, value; rows of 0 left out.
    fn facts(&self, kind: &str) -> Result<Vec<FactDayRow>>;

    /// Per day: which IPv4 /10 networks downloaded (see [`NetworkDayRow`]),
    /// sorted by day.
    fn networks(&self) -> Result<Vec<NetworkDayRow>>;

    /// What the statistics pages show besides [`Backend::monthly`], summed
    /// per month (and per day over all files) by the database, so a render
    /// reads thousands of rows, not one per file and day (see [`PageFacts`]).
    fn page_facts(&self) -> Result<PageFacts>;

    /// Everything the store holds, as plain rows (`migrate`).
    fn export(&self) -> Result<migrate::Dump>;

    /// In one transaction that keeps every other writer out: reads
    /// everything, lets `f` work out the new content, and writes it in
    /// place of the old (`migrate`).
    fn transform(
        &mut self,
        f: &mut dyn FnMut(migrate::Dump) -> Result<migrate::Dump>,
    ) -> Result<()>;

    /// Periodic upkeep while a logger runs (SQLite: a WAL checkpoint).
    fn checkpoint(&self) -> Result<()>;

    /// Gives local disk space back after a commit on a full disk; `Ok(false)`
    /// when that could not happen yet. A server backend holds nothing locally.
    fn checkpoint_truncate(&self) -> Result<bool>;

    /// Closes a database whose file was deleted or replaced under it
    /// without touching the names it had (SQLite's `-wal`/`-shm`).
    fn close_detached(self: Box<Self>);
}

/// One server × month. A server's downloads are the (client, file, day)
/// it sent a counted line of: a download resumed on another server counts
/// for each, so servers add up to more than the total downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMonthRow {
    pub server: String,
    pub month: String,
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
}

/// One file × day of the figures (`daily`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDayRow {
    pub path: String,
    pub day: i32,
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
    /// Completed downloads (see `coverage`); `None`: unknown (the day was
    /// counted before dlcount kept it, or the file's size is not known).
    pub completed: Option<u64>,
}

/// The statistics pages' read ([`Backend::page_facts`]): every figure the
/// overview and the month pages show that `monthly` does not give, already
/// summed. Each is a sum of `daily`, `facts_daily` or `network_days` rows,
/// so it is as exact and order-independent as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageFacts {
    /// Per month, kind and value over all files: downloads with each class
    /// (`class`), country (`country`), over IPv6 (`network`, `v6`), and
    /// requests per referring host (`referer`). Sorted by month, kind,
    /// value; rows of 0 left out.
    pub months: Vec<MonthFactRow>,
    /// Per file and month: downloads by bots. Sorted by path, month; rows
    /// of 0 left out.
    pub bots: Vec<FileMonthCount>,
    /// Per day over all files (legacy months not included), sorted by day.
    pub days: Vec<DayTotalRow>,
    /// Per month: which IPv4 /10 networks downloaded (the OR of its days).
    pub networks: Vec<MonthNetworkRow>,
}

/// One month × fact over all files (see [`PageFacts::months`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthFactRow {
    pub month: String,
    pub kind: String,
    pub value: String,
    pub n: u64,
}

/// One file × month count (see [`PageFacts::bots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMonthCount {
    pub path: String,
    pub month: String,
    pub n: u64,
}

/// One day over all files (see [`PageFacts::days`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotalRow {
    pub day: i32,
    pub downloads: u64,
    pub requests: u64,
    pub bytes: u64,
    /// Downloads by bots.
    pub bots: u64,
}

/// One month's IPv4 network coverage, as [`NetworkDayRow`] for a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthNetworkRow {
    pub month: String,
    pub bits: [u64; facts::NETWORK_WORDS],
}

/// Month names of day numbers, for rows that arrive in day order or
/// nearly: the last month's span is kept, so consecutive days of one month
/// cost a comparison, not a date conversion (a render reads millions of
/// rows on a big site).
#[derive(Default)]
pub struct MonthOf {
    /// First and last day of the last month asked, and its index in `names`.
    span: Option<(i32, i32, usize)>,
    index: std::collections::HashMap<String, usize>,
    pub names: Vec<String>,
}

impl MonthOf {
    /// The index in [`MonthOf::names`] of `day`'s month.
    pub fn index(&mut self, day: i32) -> usize {
        if let Some((lo, hi, i)) = self.span {
            if day >= lo && day <= hi {
                return i;
            }
        }
        let name = month_of(day);
        let (lo, hi) = NaiveDate::from_num_days_from_ce_opt(day)
            .and_then(|d| {
                let first = d.with_day(1)?;
                let next = first.checked_add_months(chrono::Months::new(1))?;
                Some((day_of(first), day_of(next) - 1))
            })
            .unwrap_or((day, day));
        let i = match self.index.get(&name) {
            Some(&i) => i,
            None => {
                self.names.push(name.clone());
                self.index.insert(name, self.names.len() - 1);
                self.names.len() - 1
            }
        };
        self.span = Some((lo, hi, i));
        i
    }
}

/// One file × day × fact (`facts_daily`): `n` downloads of `path` on `day`
/// have the fact `kind` = `value` (a class name, an ISO country code, an
/// IPv4 /10 network's number or `v6`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactDayRow {
    pub path: String,
    pub day: i32,
    pub kind: String,
    pub value: String,
    pub n: u64,
}

/// One day's IPv4 network coverage (`network_days`): bit `n % 64` of
/// `bits[n / 64]` is set when a download came from the /10 network `n`
/// (0 to 1023). A month's coverage is the OR of its days'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDayRow {
    pub day: i32,
    pub bits: [u64; facts::NETWORK_WORDS],
}

impl NetworkDayRow {
    /// How many of the 1,024 networks are set.
    pub fn count(&self) -> u32 {
        self.bits.iter().map(|w| w.count_ones()).sum()
    }
}

/// (day, word, bits) rows, sorted by day, into one row per day.
fn network_rows(rows: Vec<(i32, i64, i64)>) -> Vec<NetworkDayRow> {
    let mut out: Vec<NetworkDayRow> = Vec::new();
    for (day, word, bits) in rows {
        let Ok(i) = usize::try_from(word) else {
            continue;
        };
        if i >= facts::NETWORK_WORDS {
            continue;
        }
        if out.last().is_none_or(|r| r.day != day) {
            out.push(NetworkDayRow {
                day,
                bits: [0; facts::NETWORK_WORDS],
            });
        }
        let last = out.last_mut().expect("pushed above");
        last.bits[i] |= bits as u64;
    }
    out
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of(day: i32) -> String {
    match NaiveDate::from_num_days_from_ce_opt(day) {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => "0000-00-00".to_string(),
    }
}

/// A named position recorded with the counts it covers (see [`Backend::apply_marked`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// Marks of spool files are named this, then the file's name.
const SPOOL_MARK: &str = "spool:";

/// An open store of whichever backend `--db` names.
pub struct Store(Box<dyn Backend>);

impl Store {
    /// Opens (creating if needed) the database for writing.
    pub fn open(db: &DbTarget) -> Result<Store> {
        match db {
            DbTarget::Sqlite(path) => Ok(Store(Box::new(sqlite::SqliteStore::open(path)?))),
            DbTarget::Postgres(pg) => Ok(Store(Box::new(postgres::PostgresStore::open(pg)?))),
        }
    }

    /// Opens an existing database for reading only (report, render).
    pub fn open_read(db: &DbTarget) -> Result<Store> {
        match db {
            DbTarget::Sqlite(path) => Ok(Store(Box::new(sqlite::SqliteStore::open_read(path)?))),
            DbTarget::Postgres(pg) => Ok(Store(Box::new(postgres::PostgresStore::open_read(pg)?))),
        }
    }

    /// See [`Backend::close_detached`].
    pub fn close_detached(self) {
        self.0.close_detached()
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &(dyn Backend + 'static) {
        &*self.0
    }
}

impl std::ops::DerefMut for Store {
    fn deref_mut(&mut self) -> &mut (dyn Backend + 'static) {
        &mut *self.0
    }
}

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
    /// Imported lines not counted because their day's lines are identified
    /// by fields this source lacks (see the module header).
    pub unmatched_lines: u64,
    /// Those fields (`logformat::identity` bits).
    pub unmatched_fields: u8,
}

impl ApplyStats {
    pub fn merge(&mut self, o: &ApplyStats) {
        self.counted_lines += o.counted_lines;
        self.already_counted_lines += o.already_counted_lines;
        self.new_downloads += o.new_downloads;
        self.known_downloads += o.known_downloads;
        self.closed_day_lines += o.closed_day_lines;
        self.max_day = self.max_day.max(o.max_day);
        self.unmatched_lines += o.unmatched_lines;
        self.unmatched_fields |= o.unmatched_fields;
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
    /// Completed downloads of the month's days; `None` (unknown) when any
    /// of its days does not know them, or old counts.json downloads make
    /// up the month's figure: a partial sum is never shown as the month's.
    pub completed: Option<u64>,
}

impl MonthRow {
    fn empty(path: String, month: String) -> MonthRow {
        MonthRow {
            path,
            month,
            downloads: 0,
            requests: 0,
            bytes: 0,
            completed: Some(0),
        }
    }

    /// Adds a counted day's completed downloads.
    fn add_completed(&mut self, day: Option<u64>) {
        self.completed = match (self.completed, day) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        };
    }

    /// Merges a legacy month (the old script's `n` downloads): the larger
    /// figure wins, and where the legacy one does, completion is unknown.
    fn merge_legacy(&mut self, n: u64, counted_days: bool) {
        if !counted_days || n > self.downloads {
            self.completed = None;
        }
        self.downloads = self.downloads.max(n);
    }
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
