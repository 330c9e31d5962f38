//! The PostgreSQL schema: versioned migrations (`migrations/NNNN_*.sql`)
//! applied in place, and the hash secret.
//!
//! Invariants:
//! - **One upgrader at a time.** Migrations run under the schema's advisory
//!   lock, in one transaction that reads the version again first, so several
//!   servers starting at once apply each migration exactly once (the others
//!   wait, then find nothing left to do). A failed migration leaves
//!   the schema as it was (PostgreSQL's DDL is transactional).
//! - **A newer schema is never written.** A database whose `dlcount_schema`
//!   holds a version this binary does not know is refused with a message
//!   naming both versions, before anything is read or written.
//! - **One secret.** It is created once, race-free: `INSERT … ON CONFLICT DO
//!   NOTHING`, then read back in a new statement, which sees whichever
//!   server's insert won. Every server then hashes with the same secret.

use super::connect::describe;
use super::NS;
use anyhow::{anyhow, bail, Context, Result};
use postgres::GenericClient;

/// Each migration: the version it brings the schema to, and its SQL.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_create.sql")),
    (2, include_str!("migrations/0002_servers.sql")),
    (3, include_str!("migrations/0003_facts.sql")),
    (4, include_str!("migrations/0004_completed.sql")),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The second key of the schema's advisory lock (the first is [`NS`]; days use [`super::NS_DAY`]).
const SCHEMA_LOCK: i32 = 0;

/// The tables of the current schema, for `check` and for telling a foreign schema apart.
pub const TABLES: &[&str] = &[
    "dlcount_schema",
    "meta",
    "files",
    "seen_lines",
    "visitors",
    "daily",
    "legacy",
    "days",
    "sources",
    "day_keys",
    "servers",
    "server_daily",
    "facts_daily",
    "network_days",
];

fn pg(e: postgres::Error) -> anyhow::Error {
    anyhow!("{}", describe(&e))
}

/// The schema this connection sees (the first existing one on its search_path).
pub fn current_schema(c: &mut impl GenericClient) -> Result<String> {
    let row = c.query_one("SELECT current_schema()", &[]).map_err(pg)?;
    row.get::<_, Option<String>>(0).ok_or_else(|| {
        anyhow!("no schema of the search_path exists (create one, or set the role's search_path)")
    })
}

/// The schema version in one statement (outside a transaction: a missing
/// table is an error, which would abort one): 0 when there are no tables.
pub fn version_now(c: &mut postgres::Client) -> Result<i64> {
    match c.query_one("SELECT max(version) FROM dlcount_schema", &[]) {
        Ok(row) => Ok(row.get::<_, Option<i64>>(0).unwrap_or(0)),
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => Ok(0),
        Err(e) => Err(pg(e)),
    }
}

/// The schema version of the database: 0 when it has no dlcount tables.
pub fn version(c: &mut impl GenericClient) -> Result<i64> {
    let exists: bool = c
        .query_one("SELECT to_regclass('dlcount_schema') IS NOT NULL", &[])
        .map_err(pg)?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i64> = c
        .query_one("SELECT max(version) FROM dlcount_schema", &[])
        .map_err(pg)?
        .get(0);
    Ok(v.unwrap_or(0))
}

/// Refuses a schema newer than this binary's.
pub fn check_version(version: i64, shown: &str) -> Result<()> {
    if version > SCHEMA_VERSION {
        bail!(
            "{shown} was written by a newer dlcount (PostgreSQL schema {version}, this one knows {SCHEMA_VERSION})"
        );
    }
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`] (see the module header).
///
/// The lock is session-level and the work is done in a transaction begun
/// after it is granted: a transaction that merely waited for the lock could
/// still see the catalog as it was before the other server's migration (its
/// relation cache is refreshed when a transaction starts, not when an
/// advisory lock is granted), and take the new tables for a stranger's.
pub fn migrate(client: &mut postgres::Client, shown: &str) -> Result<()> {
    let v = version_now(client)?;
    check_version(v, shown)?;
    if v == SCHEMA_VERSION {
        return Ok(());
    }
    let schema = current_schema(client)?;
    // Another server's migration may take longer than a statement may.
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL statement_timeout = 0; SELECT pg_advisory_lock({NS}, {SCHEMA_LOCK}); COMMIT"
        ))
        .map_err(pg)?;
    let result = migrate_locked(client, shown, &schema);
    // On an error the connection is dropped anyway, and the lock with it.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1, $2)", &[&NS, &SCHEMA_LOCK]);
    result?;
    unlocked.map_err(pg)?;
    Ok(())
}

fn migrate_locked(client: &mut postgres::Client, shown: &str, schema: &str) -> Result<()> {
    let mut tx = client.transaction().map_err(pg)?;
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .map_err(pg)?;
    let v = version(&mut tx)?;
    check_version(v, shown)?;
    if v == 0 {
        let names: Vec<&str> = TABLES.to_vec();
        let foreign: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ANY($1)",
                &[&names],
            )
            .map_err(pg)?
            .get(0);
        if foreign > 0 {
            bail!(
                "{shown}: schema {schema} has tables named like dlcount's but no dlcount_schema: \
                 it belongs to something else (give dlcount its own database or schema)"
            );
        }
    }
    for (n, sql) in MIGRATIONS.iter().filter(|(n, _)| *n > v) {
        tx.batch_execute(sql)
            .and_then(|_| tx.execute("INSERT INTO dlcount_schema(version) VALUES ($1)", &[n]))
            .map_err(pg)
            .with_context(|| {
                format!(
                    "{shown}: cannot bring dlcount's tables in schema {schema} to version {n} \
                     (from {v}; the role needs CREATE on the schema, or run dlcount once as its owner)"
                )
            })?;
    }
    tx.commit().map_err(pg)?;
    Ok(())
}

/// The database's hash secret, created by the first server to ask.
pub fn secret(client: &mut postgres::Client, shown: &str) -> Result<[u8; 32]> {
    let read = |c: &mut postgres::Client| -> Result<Option<Vec<u8>>> {
        Ok(
            c.query_opt("SELECT value FROM meta WHERE name = 'secret'", &[])
                .map_err(pg)?
                .map(|r| r.get(0)),
        )
    };
    let stored = match read(client)? {
        Some(v) => v,
        None => {
            let mut fresh = [0u8; 32];
            getrandom::fill(&mut fresh)
                .map_err(|e| anyhow!("no randomness for the hash secret: {e}"))?;
            let created = chrono::Local::now().to_rfc3339();
            client
                .execute(
                    "INSERT INTO meta(name, value) VALUES ('secret', $1), ('created', $2)
                     ON CONFLICT (name) DO NOTHING",
                    &[&&fresh[..], &created.as_bytes()],
                )
                .map_err(pg)?;
            read(client)?.ok_or_else(|| anyhow!("{shown}: the hash secret vanished"))?
        }
    };
    stored
        .try_into()
        .map_err(|_| anyhow!("{shown}: corrupt hash secret"))
}
