//! One batch into PostgreSQL: SQLite's `apply_inner`, step for step, with
//! each step one statement over arrays instead of one per line.
//!
//! Invariant: the figures and the [`ApplyStats`] are exactly SQLite's for
//! the same input (the conformance suite, `tests/it/store.rs`, runs the same
//! checks against both). The decisions are the shared pure code
//! ([`line_keys`], [`SeenLine`]); SQL only fetches and stores rows, and
//! every row read or written belongs to a day whose advisory lock the
//! transaction holds (see the parent module's header).
//!
//! Statements of one batch, in order (those in brackets only when needed):
//! 0. the shared lock that keeps `migrate` out, then the secret and the
//!    generation of the cached file and server ids (`meta`);
//! 1. `pg_advisory_xact_lock` of every day, ascending, in one SELECT;
//! 2. the days' state and keys (one SELECT), [new days], [new keys], touch;
//! 3. [which of an import's lines that lack a field of their day's identity
//!    set are known] — one SELECT for all of them;
//! 4. `seen_lines`: the existing rows of the batch's lines (one SELECT), the
//!    new rows (one `COPY … FROM STDIN BINARY`), [the changed rows (one
//!    UPDATE … FROM unnest)];
//! 5. `visitors`: the same three;
//! 6. `daily`: one upsert whose sums saturate in SQL (never a BIGINT
//!    overflow error, which would abort the batch);
//! 7. `server_daily`: one statement (update, then insert the rest);
//! 8. `facts_daily`: one upsert of the moves of the downloads' facts
//!    (`store::facts`), computed from the rows read in 5; `network_days`:
//!    one upsert OR-ing the words that gain bits;
//! 9. [completion]: the rows of the downloads whose lines cover bytes (one
//!    SELECT), [their changed rows (one UPDATE … FROM unnest)], [the
//!    file-days' completed downloads (one UPDATE … FROM unnest)];
//! 10. [the mark], COMMIT.
//!
//! Under the day locks a row's existence cannot change between the SELECT
//! and the COPY, so the new rows need no ON CONFLICT: a conflict would mean
//! the lock discipline was broken, and fails the transaction (retried).

use super::{PostgresStore, Stale, MIGRATE_LOCK, NS, NS_DAY};
use crate::coverage::{ByteRanges, LineCover};
use crate::keys::{DayKey, KeyHasher};
use crate::store::dedup::{
    line_keys, BatchAccount, HeldCover, LineAgg, SeenLine, SCHEMA1_IDENTITY,
};
use crate::store::facts::{gathered, settle, Brought, Held};
use crate::store::{ApplyStats, Mark, Origin};
use crate::tally::Batch;
use anyhow::{anyhow, Result};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Statement;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeMap;

/// SQL for `a + b` saturating at `i64::MAX` and, for a negative `b`, at 0
/// (as SQLite's `sat_add!`): `a` is a stored figure (never negative).
macro_rules! sat_add {
    ($a:literal, $b:literal) => {
        concat!(
            "(CASE WHEN ",
            $b,
            " > 9223372036854775807 - ",
            $a,
            " THEN 9223372036854775807 WHEN ",
            $b,
            " < 0 THEN GREATEST(",
            $a,
            " + ",
            $b,
            ", 0) ELSE ",
            $a,
            " + ",
            $b,
            " END)"
        )
    };
}

/// The statements of a batch, prepared once per connection.
pub struct Statements {
    lock_shared: Statement,
    meta_read: Statement,
    lock_days: Statement,
    days_read: Statement,
    days_insert: Statement,
    days_touch: Statement,
    keys_insert: Statement,
    seen_known: Statement,
    seen_read: Statement,
    seen_update: Statement,
    visitors_read: Statement,
    visitors_update: Statement,
    daily_upsert: Statement,
    server_daily_upsert: Statement,
    facts_upsert: Statement,
    networks_upsert: Statement,
    mark_upsert: Statement,
    cover_read: Statement,
    cover_update: Statement,
    completed_update: Statement,
}

impl Statements {
    fn prepare(c: &mut postgres::Client) -> Result<Statements> {
        let mut p = |sql: &str| c.prepare(sql);
        Ok(Statements {
            lock_shared: p("SELECT pg_advisory_xact_lock_shared($1, $2)")?,
            meta_read: p("SELECT name, value FROM meta WHERE name IN ('secret', 'generation')")?,
            lock_days: p("SELECT pg_advisory_xact_lock($1, d) FROM unnest($2::int4[]) AS d")?,
            days_read: p("SELECT d.day, d.closed, d.identity, k.key, d.completion
                            FROM days d LEFT JOIN day_keys k ON k.day = d.day
                           WHERE d.day = ANY($1::int8[])")?,
            days_insert: p("INSERT INTO days(day, touched, identity, completion)
                            SELECT d, $2, i, true FROM unnest($1::int8[], $3::int8[]) AS u(d, i)")?,
            days_touch: p("UPDATE days SET touched = $2 WHERE day = ANY($1::int8[])")?,
            keys_insert: p("INSERT INTO day_keys(day, key)
                            SELECT * FROM unnest($1::int8[], $2::bytea[])")?,
            seen_known: p(
                "SELECT s.day, s.hash FROM unnest($1::int8[], $2::int8[]) AS u(day, hash)
                             JOIN seen_lines s ON s.day = u.day AND s.hash = u.hash",
            )?,
            seen_read: p(
                "SELECT s.day, s.hash, s.live, s.imported, s.source, s.source_n,
                                 s.live_bytes, s.imported_bytes, s.source_bytes
                            FROM unnest($1::int8[], $2::int8[]) AS u(day, hash)
                            JOIN seen_lines s ON s.day = u.day AND s.hash = u.hash",
            )?,
            seen_update: p(
                "UPDATE seen_lines s SET live = u.live, imported = u.imported,
                                source = u.source, source_n = u.source_n, live_bytes = u.live_bytes,
                                imported_bytes = u.imported_bytes, source_bytes = u.source_bytes
                            FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
                                $6::int8[], $7::int8[], $8::int8[], $9::int8[])
                                AS u(day, hash, live, imported, source, source_n, live_bytes,
                                     imported_bytes, source_bytes)
                            WHERE s.day = u.day AND s.hash = u.hash",
            )?,
            visitors_read: p("SELECT v.day, v.key, v.run, v.servers, v.class, v.country
                                FROM unnest($1::int8[], $2::int8[]) AS u(day, key)
                                JOIN visitors v ON v.day = u.day AND v.key = u.key")?,
            visitors_update: p(concat!(
                "UPDATE visitors v SET requests = ",
                sat_add!("v.requests", "u.requests"),
                ", bytes = ",
                sat_add!("v.bytes", "u.bytes"),
                ", run = u.run, servers = v.servers | u.servers, class = u.class,
                   country = u.country
                 FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
                     $7::int8[], $8::int8[])
                     AS u(day, key, requests, bytes, run, servers, class, country)
                 WHERE v.day = u.day AND v.key = u.key"
            ))?,
            daily_upsert: p(concat!(
                "INSERT INTO daily AS t (file_id, day, downloads, requests, bytes)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])
                 ON CONFLICT (file_id, day) DO UPDATE SET downloads = ",
                sat_add!("t.downloads", "excluded.downloads"),
                ", requests = ",
                sat_add!("t.requests", "excluded.requests"),
                ", bytes = ",
                sat_add!("t.bytes", "excluded.bytes")
            ))?,
            // As SQLite's: a new row takes the figures clamped at 0, an
            // existing one adds them as they are (bytes may go down when
            // the live copies' replace an import's). The update then the
            // insert of the rest, in one statement (rows of locked days).
            server_daily_upsert: p(concat!(
                "WITH u AS (SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[],
                        $5::int8[]) AS u(s, d, dl, rq, by)),
                 upd AS (UPDATE server_daily t SET downloads = ",
                sat_add!("t.downloads", "u.dl"),
                ", requests = ",
                sat_add!("t.requests", "u.rq"),
                ", bytes = ",
                sat_add!("t.bytes", "u.by"),
                " FROM u WHERE t.server_id = u.s AND t.day = u.d RETURNING t.server_id, t.day)
                 INSERT INTO server_daily(server_id, day, downloads, requests, bytes)
                 SELECT s, d, GREATEST(dl, 0), GREATEST(rq, 0), GREATEST(by, 0) FROM u
                  WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.server_id = u.s AND upd.day = u.d)"
            ))?,
            // As SQLite's: a move may be negative; a new row takes it clamped.
            // (ON CONFLICT could not see the unclamped move): the update,
            // then the insert of the rest, in one statement (rows of locked days).
            facts_upsert: p(concat!(
                "WITH u AS (SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[],
                        $5::int8[]) AS u(f, d, k, v, n)),
                 upd AS (UPDATE facts_daily t SET n = ",
                sat_add!("t.n", "u.n"),
                " FROM u WHERE t.file_id = u.f AND t.day = u.d AND t.kind = u.k AND t.value = u.v
                   RETURNING t.file_id, t.day, t.kind, t.value)
                 INSERT INTO facts_daily(file_id, day, kind, value, n)
                 SELECT f, d, k, v, GREATEST(n, 0) FROM u
                  WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.file_id = u.f AND upd.day = u.d
                        AND upd.kind = u.k AND upd.value = u.v)"
            ))?,
            networks_upsert: p("INSERT INTO network_days AS t (day, word, bits)
                                SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[])
                                ON CONFLICT (day, word) DO UPDATE SET bits = t.bits | excluded.bits")?,
            mark_upsert: p("INSERT INTO meta(name, value) VALUES ($1, $2)
                            ON CONFLICT (name) DO UPDATE SET value = excluded.value")?,
            cover_read: p("SELECT v.day, v.key, v.ranges, v.got, v.complete
                             FROM unnest($1::int8[], $2::int8[]) AS u(day, key)
                             JOIN visitors v ON v.day = u.day AND v.key = u.key")?,
            cover_update: p(
                "UPDATE visitors v SET ranges = u.ranges, got = u.got, complete = u.complete
                   FROM unnest($1::int8[], $2::int8[], $3::bytea[], $4::int8[], $5::bool[])
                        AS u(day, key, ranges, got, complete)
                  WHERE v.day = u.day AND v.key = u.key",
            )?,
            completed_update: p(concat!(
                "UPDATE daily t SET completed = ",
                sat_add!("coalesce(t.completed, 0)", "u.n"),
                " FROM unnest($1::int8[], $2::int8[], $3::int8[]) AS u(f, d, n)
                  WHERE t.file_id = u.f AND t.day = u.d"
            ))?,
        })
    }
}

/// What a batch needs to know of one day (as SQLite's).
#[derive(Debug, Clone, Copy)]
struct DayState {
    identity: i64,
    closed: bool,
    key: Option<DayKey>,
    /// `days.completion`: the day keeps its downloads' completion.
    completion: bool,
}

/// One counted hit's stored keys (after re-keying with its day's key).
struct Keyed<'b> {
    day: i32,
    visitor: i64,
    line: i64,
    /// Fields of the day's identity set this line lacks.
    missing: u8,
    schema1: bool,
    file_id: i64,
    server_id: i64,
    bytes: i64,
    facts: Brought,
    /// Its Referer's host (`referer::host_part`, as logged); empty: direct.
    referer: &'b [u8],
    cover: LineCover,
}

/// Arrays of `seen_lines` rows for unnest.
#[derive(Default)]
struct SeenRows {
    day: Vec<i64>,
    hash: Vec<i64>,
    live: Vec<i64>,
    imported: Vec<i64>,
    source: Vec<i64>,
    source_n: Vec<i64>,
    live_bytes: Vec<i64>,
    imported_bytes: Vec<i64>,
    source_bytes: Vec<i64>,
}

/// The rows of `cols` (columns of equal length) into a table by `COPY …
/// FROM STDIN BINARY`: for new rows (the bulk of a batch), cheaper than an
/// INSERT over unnest, as the server inserts them several to a page.
fn copy_rows(tx: &mut postgres::Transaction<'_>, copy: &str, cols: &[&Vec<i64>]) -> Result<u64> {
    let n = cols[0].len();
    if n == 0 {
        return Ok(0);
    }
    let types = vec![Type::INT8; cols.len()];
    let mut w = BinaryCopyInWriter::new(tx.copy_in(copy)?, &types);
    let mut row: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(cols.len());
    for i in 0..n {
        row.clear();
        row.extend(cols.iter().map(|c| &c[i] as &(dyn ToSql + Sync)));
        w.write(&row)?;
    }
    Ok(w.finish()?)
}

impl SeenRows {
    fn columns(&self) -> [&Vec<i64>; 9] {
        [
            &self.day,
            &self.hash,
            &self.live,
            &self.imported,
            &self.source,
            &self.source_n,
            &self.live_bytes,
            &self.imported_bytes,
            &self.source_bytes,
        ]
    }

    fn push(&mut self, day: i32, hash: i64, s: &SeenLine) {
        self.day.push(i64::from(day));
        self.hash.push(hash);
        self.live.push(s.live);
        self.imported.push(s.imported);
        self.source.push(s.source);
        self.source_n.push(s.source_n);
        self.live_bytes.push(s.live_bytes);
        self.imported_bytes.push(s.imported_bytes);
        self.source_bytes.push(s.source_bytes);
    }

    fn run(&self, tx: &mut postgres::Transaction<'_>, st: &Statement) -> Result<u64> {
        if self.day.is_empty() {
            return Ok(0);
        }
        Ok(tx.execute(
            st,
            &[
                &self.day,
                &self.hash,
                &self.live,
                &self.imported,
                &self.source,
                &self.source_n,
                &self.live_bytes,
                &self.imported_bytes,
                &self.source_bytes,
            ],
        )?)
    }
}

impl PostgresStore {
    /// One try at a batch (the caller retries on serialization failures).
    pub(super) fn apply_once(
        &mut self,
        batches: &[Batch],
        origin: Origin,
        mark: Option<Mark<'_>>,
    ) -> Result<ApplyStats> {
        let PostgresStore {
            client,
            shown,
            hasher,
            file_ids,
            server_ids,
            generation,
            scratch,
            statements,
        } = self;
        let client = client.get_mut();
        if statements.is_none() {
            *statements = Some(Statements::prepare(client)?);
        }
        let st = statements.as_ref().expect("prepared just now");
        let mut stats = ApplyStats::default();

        // 1. The days, in ascending order (BTreeMap): their identity sets
        //    from the batch, as SQLite decides them for a new day.
        let mut days: BTreeMap<i32, DayState> = BTreeMap::new();
        for batch in batches {
            for h in batch.hits() {
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
        let mut tx = client.transaction()?;
        // 0. No `migrate` rewrites the tables under this batch (it takes
        //    this lock exclusively), and none did since the ids cached
        //    before it were read; the secret is the database's own.
        tx.execute(&st.lock_shared, &[&NS, &MIGRATE_LOCK])?;
        let (mut secret, mut current) = (None, 0);
        for r in tx.query(&st.meta_read, &[])? {
            let value: Vec<u8> = r.get(1);
            match r.get::<_, &str>(0) {
                "secret" => secret = Some(value),
                _ => current = parse_generation(&value),
            }
        }
        if current != *generation {
            *generation = current;
            return Err(Stale.into());
        }
        let secret = secret.ok_or_else(|| anyhow!("{shown}: no hash secret"))?;
        if secret.as_slice() != hasher.secret() {
            let secret: [u8; 32] = secret
                .try_into()
                .map_err(|_| anyhow!("{shown}: corrupt hash secret"))?;
            eprintln!(
                "dlcount: the hash secret of {shown} was replaced (a migrate); hashing with the new one"
            );
            *hasher = KeyHasher::new(secret);
        }
        // A queued batch is keyed with the secret it was made with: only this one serves.
        crate::store::dedup::check_keyed(batches, hasher)?;
        if !days.is_empty() {
            let ascending: Vec<i32> = days.keys().copied().collect();
            tx.execute(&st.lock_days, &[&NS_DAY, &ascending])?;
            let all: Vec<i64> = ascending.iter().map(|&d| i64::from(d)).collect();
            let mut known: HashSet<i32> = HashSet::default();
            for r in tx.query(&st.days_read, &[&all])? {
                let day = i32::try_from(r.get::<_, i64>(0))?;
                let state = days
                    .get_mut(&day)
                    .ok_or_else(|| anyhow!("day {day} was not asked for"))?;
                state.closed = r.get(1);
                state.identity = r.get(2);
                state.completion = r.get(4);
                if let Some(k) = r.get::<_, Option<Vec<u8>>>(3) {
                    let raw = <[u8; 32]>::try_from(k.as_slice())
                        .map_err(|_| anyhow!("corrupt key of day {day}"))?;
                    state.key = Some(DayKey::new(raw));
                }
                known.insert(day);
            }
            let now = chrono::Utc::now().timestamp();
            let (mut new_days, mut new_identities) = (Vec::new(), Vec::new());
            let mut touched = Vec::new();
            let (mut key_days, mut new_keys) = (Vec::new(), Vec::new());
            for (&day, state) in days.iter_mut() {
                if !known.contains(&day) {
                    new_days.push(i64::from(day));
                    new_identities.push(state.identity);
                } else if !state.closed {
                    touched.push(i64::from(day));
                }
                if !state.closed && state.key.is_none() {
                    let raw = new_day_key()?;
                    key_days.push(i64::from(day));
                    new_keys.push(raw.to_vec());
                    state.key = Some(DayKey::new(raw));
                }
            }
            if !new_days.is_empty() {
                tx.execute(&st.days_insert, &[&new_days, &now, &new_identities])?;
            }
            if !touched.is_empty() {
                tx.execute(&st.days_touch, &[&touched, &now])?;
            }
            if !key_days.is_empty() {
                tx.execute(&st.keys_insert, &[&key_days, &new_keys])?;
            }
        }

        // 2. Hash with the day's identity set, keep only the stored forms.
        let mut keyed: Vec<Keyed> = Vec::new();
        let (mut ask_days, mut ask_lines) = (Vec::new(), Vec::new());
        for batch in batches {
            let server_id = match batch.hits() {
                [] => 0,
                _ => *server_ids
                    .get(&batch.server)
                    .ok_or_else(|| anyhow!("no server id for {:?}", batch.server))?,
            };
            for (i, h) in batch.hits().iter().enumerate() {
                let day = days[&h.day];
                let Some(day_key) = day.key else {
                    stats.closed_day_lines += 1;
                    continue;
                };
                let schema1 = day.identity == SCHEMA1_IDENTITY;
                let missing = if schema1 {
                    0
                } else {
                    day.identity as u8 & !h.identity
                };
                let (visitor, line) = line_keys(batch, i, day.identity, hasher, scratch);
                let (visitor, line) = (day_key.visitor(visitor), day_key.line(line));
                if missing != 0 && origin != Origin::Live {
                    ask_days.push(i64::from(h.day));
                    ask_lines.push(line);
                }
                let file_id = *file_ids
                    .get(batch.path(h))
                    .ok_or_else(|| anyhow!("no file id for a path of the batch"))?;
                keyed.push(Keyed {
                    day: h.day,
                    visitor,
                    line,
                    missing,
                    schema1,
                    file_id,
                    server_id,
                    bytes: i64::try_from(h.bytes).unwrap_or(i64::MAX),
                    facts: crate::store::facts::brought(&h.facts, batch.facts_missing),
                    referer: batch.referer_host(h),
                    cover: h.cover,
                });
            }
        }

        // 3. A line lacking a field of its day's set counts only when that
        //    very line was seen before (the pipe hashes what is absent as empty).
        let mut known_lines: HashSet<(i32, i64)> = HashSet::default();
        if !ask_days.is_empty() {
            for r in tx.query(&st.seen_known, &[&ask_days, &ask_lines])? {
                known_lines.insert((i32::try_from(r.get::<_, i64>(0))?, r.get(1)));
            }
        }
        let mut lines: Vec<LineAgg> = Vec::new();
        let mut index: HashMap<(i32, i64), usize> = HashMap::default();
        let mut account = BatchAccount::default();
        for k in &keyed {
            if k.missing != 0 && origin != Origin::Live && !known_lines.contains(&(k.day, k.line)) {
                stats.unmatched_lines += 1;
                stats.unmatched_fields |= k.missing;
                continue;
            }
            match index.entry((k.day, k.line)) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    let l = &mut lines[*e.get()];
                    l.copies += 1;
                    l.bytes = l.bytes.saturating_add(k.bytes);
                    l.facts = l.facts.join(k.facts);
                    l.cover(&k.cover);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(lines.len());
                    lines.push(LineAgg {
                        day: k.day,
                        hash: k.line,
                        copies: 1,
                        bytes: k.bytes,
                        visitor: k.visitor,
                        file_id: k.file_id,
                        server_id: k.server_id,
                        schema1: k.schema1,
                        facts: k.facts,
                        referer: account.fact_deltas.labels.id(k.referer),
                        ranges: ByteRanges::new(),
                        unplaced: false,
                        size: None,
                    });
                    lines.last_mut().expect("pushed").cover(&k.cover);
                }
            }
        }
        drop(keyed);

        // 4. Lines: how many copies are new?
        lines.sort_unstable_by_key(|l| (l.day, l.hash));
        let mut before: HashMap<(i32, i64), SeenLine> = HashMap::default();
        if !lines.is_empty() {
            let ds: Vec<i64> = lines.iter().map(|l| i64::from(l.day)).collect();
            let hs: Vec<i64> = lines.iter().map(|l| l.hash).collect();
            for r in tx.query(&st.seen_read, &[&ds, &hs])? {
                before.insert(
                    (i32::try_from(r.get::<_, i64>(0))?, r.get(1)),
                    SeenLine {
                        live: r.get(2),
                        imported: r.get(3),
                        source: r.get(4),
                        source_n: r.get(5),
                        live_bytes: r.get(6),
                        imported_bytes: r.get(7),
                        source_bytes: r.get(8),
                    },
                );
            }
        }
        let (mut inserts, mut updates) = (SeenRows::default(), SeenRows::default());
        for l in &lines {
            let delta = match before.get(&(l.day, l.hash)) {
                None => {
                    let fresh = SeenLine::default().seen(l.copies, l.bytes, origin);
                    inserts.push(l.day, l.hash, &fresh);
                    l.new_copies(None, &fresh)
                }
                Some(was) => {
                    let after = was.seen(l.copies, l.bytes, origin);
                    if after != *was {
                        updates.push(l.day, l.hash, &after);
                    }
                    l.new_copies(Some(was), &after)
                }
            };
            account.add(&mut stats, l, delta);
        }
        let BatchAccount {
            visitors,
            mut visitor_order,
            mut server_days,
            mut fact_deltas,
        } = account;
        let inserted = copy_rows(
            &mut tx,
            "COPY seen_lines(day, hash, live, imported, source, source_n, live_bytes,
                 imported_bytes, source_bytes) FROM STDIN BINARY",
            &inserts.columns(),
        )?;
        if inserted != inserts.day.len() as u64 {
            anyhow::bail!(
                "seen_lines: {inserted} of {} rows inserted",
                inserts.day.len()
            );
        }
        updates.run(&mut tx, &st.seen_update)?;
        drop(lines);

        // 5. Visitors: a new row is a new download; `run` tells the
        //    downloads an import run found already known.
        visitor_order.sort_unstable();
        let run = match origin {
            Origin::Live => 0,
            Origin::Import { run, .. } => run,
        };
        let candidates: Vec<(i32, i64)> = visitor_order
            .iter()
            .copied()
            .filter(|k| {
                let v = &visitors[k];
                v.requests > 0 || v.bytes != 0 || run != 0 || gathered(v.facts, v.country).is_some()
            })
            .collect();
        let mut old_rows: HashMap<(i32, i64), (i64, i64, Held)> = HashMap::default();
        if !candidates.is_empty() {
            let ds: Vec<i64> = candidates.iter().map(|k| i64::from(k.0)).collect();
            let ks: Vec<i64> = candidates.iter().map(|k| k.1).collect();
            for r in tx.query(&st.visitors_read, &[&ds, &ks])? {
                old_rows.insert(
                    (i32::try_from(r.get::<_, i64>(0))?, r.get(1)),
                    (
                        r.get(2),
                        r.get(3),
                        Held {
                            class: r.get(4),
                            country: r.get(5),
                        },
                    ),
                );
            }
        }
        let mut ins: [Vec<i64>; 9] = Default::default();
        let mut upd: [Vec<i64>; 8] = Default::default();
        let mut daily: BTreeMap<(i64, i32), (i64, i64, i64)> = BTreeMap::new();
        for key in &candidates {
            let v = &visitors[key];
            let changed = v.requests > 0 || v.bytes != 0;
            let old = old_rows.get(key).copied();
            // A new download holds the facts its lines brought (a new
            // line's, so `facts` is set whenever `requests > 0`).
            let brought = gathered(v.facts, v.country);
            let fresh = match (v.requests > 0 && old.is_none(), v.facts.and(brought)) {
                (true, Some(f)) => Some(f),
                _ => None,
            };
            let new_download = fresh.is_some();
            // A server's download is a (client, file, day) it sent a
            // counted line of: the first such line adds one for it.
            let mut new_servers = v.servers;
            if let Some(f) = fresh {
                stats.new_downloads += 1;
                let held = settle(v.file_id, key.0, None, f, &mut fact_deltas);
                for (col, x) in ins.iter_mut().zip([
                    i64::from(key.0),
                    key.1,
                    v.file_id,
                    v.requests,
                    v.bytes,
                    run,
                    v.servers,
                    held.class,
                    held.country,
                ]) {
                    col.push(x);
                }
            } else if let Some((old, old_servers, was)) = old {
                new_servers &= !old_servers;
                if run != 0 && old != run {
                    stats.known_downloads += 1;
                }
                let now = match brought {
                    Some(f) => settle(v.file_id, key.0, Some(was), f, &mut fact_deltas),
                    None => was,
                };
                if changed || old != run || now != was {
                    for (col, x) in upd.iter_mut().zip([
                        i64::from(key.0),
                        key.1,
                        v.requests,
                        v.bytes,
                        run,
                        v.servers,
                        now.class,
                        now.country,
                    ]) {
                        col.push(x);
                    }
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
        let [a, b, c, d, e, f, g, h, i] = &ins;
        copy_rows(
            &mut tx,
            "COPY visitors(day, key, file_id, requests, bytes, run, servers, class, country)
                 FROM STDIN BINARY",
            &[a, b, c, d, e, f, g, h, i],
        )?;
        if !upd[0].is_empty() {
            let [a, b, c, d, e, f, g, h] = &upd;
            tx.execute(&st.visitors_update, &[a, b, c, d, e, f, g, h])?;
        }

        // 6. Per file and day figures.
        if !daily.is_empty() {
            let mut cols: [Vec<i64>; 5] = Default::default();
            for ((file_id, day), (dl, rq, by)) in &daily {
                for (col, x) in cols
                    .iter_mut()
                    .zip([*file_id, i64::from(*day), *dl, *rq, *by])
                {
                    col.push(x);
                }
            }
            let [a, b, c, d, e] = &cols;
            tx.execute(&st.daily_upsert, &[a, b, c, d, e])?;
        }

        // 6b. Completion, as SQLite's step 4b: under the day locks, so a
        //     download becomes complete in one transaction only, and its
        //     file-day's `completed` goes up once.
        {
            let covering: Vec<(i32, i64)> = visitor_order
                .iter()
                .copied()
                .filter(|k| {
                    let v = &visitors[k];
                    days.get(&k.0).is_some_and(|d| d.completion) && v.brings_cover()
                })
                .collect();
            let mut completed: BTreeMap<(i64, i32), i64> = BTreeMap::new();
            if !covering.is_empty() {
                let ds: Vec<i64> = covering.iter().map(|k| i64::from(k.0)).collect();
                let ks: Vec<i64> = covering.iter().map(|k| k.1).collect();
                let mut held: HashMap<(i32, i64), HeldCover> = HashMap::default();
                for r in tx.query(&st.cover_read, &[&ds, &ks])? {
                    let day = i32::try_from(r.get::<_, i64>(0))?;
                    let ranges: Option<Vec<u8>> = r.get(2);
                    held.insert(
                        (day, r.get(1)),
                        HeldCover::from_columns(ranges.as_deref(), r.get(3), r.get(4), day)?,
                    );
                }
                let (mut ud, mut uk, mut ur, mut ug, mut uc) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for key in &covering {
                    let Some(was) = held.get(key) else {
                        continue;
                    };
                    let v = &visitors[key];
                    let (now, became) = was.after(v);
                    if now != *was {
                        ud.push(i64::from(key.0));
                        uk.push(key.1);
                        ur.push(now.ranges_column());
                        ug.push(now.got);
                        uc.push(now.complete);
                    }
                    if v.size.is_some() {
                        *completed.entry((v.file_id, key.0)).or_default() += i64::from(became);
                    }
                }
                if !ud.is_empty() {
                    tx.execute(&st.cover_update, &[&ud, &uk, &ur, &ug, &uc])?;
                }
            }
            if !completed.is_empty() {
                let (mut fs, mut ds, mut ns) = (Vec::new(), Vec::new(), Vec::new());
                for ((file_id, day), n) in &completed {
                    fs.push(*file_id);
                    ds.push(i64::from(*day));
                    ns.push(*n);
                }
                tx.execute(&st.completed_update, &[&fs, &ds, &ns])?;
            }
        }

        // 7. Per server and day figures.
        if !server_days.is_empty() {
            let mut cols: [Vec<i64>; 5] = Default::default();
            for ((server_id, day), (dl, rq, by)) in &server_days {
                for (col, x) in cols
                    .iter_mut()
                    .zip([*server_id, i64::from(*day), *dl, *rq, *by])
                {
                    col.push(x);
                }
            }
            let [a, b, c, d, e] = &cols;
            tx.execute(&st.server_daily_upsert, &[a, b, c, d, e])?;
        }

        // 8. Per file and day facts.
        {
            let (mut fs, mut ds, mut ks, mut vs, mut ns) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (file_id, day, kind, value, n) in fact_deltas.rows() {
                fs.push(file_id);
                ds.push(i64::from(day));
                ks.push(kind);
                vs.push(value);
                ns.push(n);
            }
            if !fs.is_empty() {
                tx.execute(&st.facts_upsert, &[&fs, &ds, &ks, &vs, &ns])?;
            }
        }
        if !fact_deltas.networks.is_empty() {
            let (mut ds, mut ws, mut bs) = (Vec::new(), Vec::new(), Vec::new());
            for (day, word, bits) in fact_deltas.network_words() {
                ds.push(i64::from(day));
                ws.push(word);
                bs.push(bits);
            }
            tx.execute(&st.networks_upsert, &[&ds, &ws, &bs])?;
        }

        if let Some(mark) = mark {
            tx.execute(&st.mark_upsert, &[&mark.name, &mark.value.as_bytes()])?;
        }
        tx.commit()?;
        Ok(stats)
    }
}

/// `meta.generation` as a number (0 when absent: no `migrate` yet).
pub fn parse_generation(value: &[u8]) -> i64 {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn new_day_key() -> Result<[u8; 32]> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness for a day key: {e}"))?;
    Ok(key)
}
