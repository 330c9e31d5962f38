//! What `dlcount-pipe check` asks of a PostgreSQL `--db`: it connects as
//! the logger would, reads the schema version, and names every privilege the
//! logger needs and its role lacks.
//!
//! Invariant: read-only. `check` never creates or upgrades anything; what a
//! first start would do (create the tables) is checked as a privilege.
//!
//! What the logger needs: CONNECT on the database; USAGE on the schema its
//! `search_path` leads to; SELECT, INSERT, UPDATE and DELETE on each dlcount
//! table (SELECT alone on `dlcount_schema`); TRUNCATE on `day_keys` (the
//! purge rewrites it, see the parent module). CREATE on the schema only while
//! the tables are not there yet (or need an upgrade, which also needs their
//! ownership). No sequence privilege: the ids are identity columns, which
//! PostgreSQL numbers without one.

use super::connect::{describe, Target};
use super::schema::{self, SCHEMA_VERSION, TABLES};
use crate::config::PgTarget;
use anyhow::{anyhow, Result};

/// Privileges the logger needs on every table but the version table.
const TABLE_PRIVILEGES: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE"];

/// What check found: the problems (one line each, empty when all is well)
/// and a short description of the database for the verdict line.
pub struct Verdict {
    pub problems: Vec<String>,
    pub summary: String,
}

/// Connects and checks (module header). `Err` only when the database
/// cannot be reached or read at all; the message names where, never the password.
pub fn check(pg: &PgTarget) -> Result<Verdict> {
    let target = Target::new(pg)?;
    let mut c = target.connect()?;
    let place = target.place();
    let pg_err = |e: postgres::Error| anyhow!("PostgreSQL at {place}: {}", describe(&e));
    let mut problems = Vec::new();
    let row = c
        .query_one(
            "SELECT current_user::text, current_database()::text,
                    has_database_privilege(current_database(), 'CONNECT'), current_schema()::text",
            &[],
        )
        .map_err(pg_err)?;
    let user: String = row.get(0);
    let database: String = row.get(1);
    if !row.get::<_, bool>(2) {
        problems.push(format!(
            "PostgreSQL at {place}: role {user} lacks CONNECT on database {database} \
             (GRANT CONNECT ON DATABASE {database} TO {user})"
        ));
    }
    let Some(schema) = row.get::<_, Option<String>>(3) else {
        problems.push(format!(
            "PostgreSQL at {place}: no schema of role {user}'s search_path exists \
             (CREATE SCHEMA …, or ALTER ROLE {user} SET search_path = …)"
        ));
        return Ok(Verdict {
            problems,
            summary: String::new(),
        });
    };
    let row = c
        .query_one(
            "SELECT has_schema_privilege($1, 'USAGE'), has_schema_privilege($1, 'CREATE')",
            &[&schema],
        )
        .map_err(pg_err)?;
    let (usage, create): (bool, bool) = (row.get(0), row.get(1));
    if !usage {
        problems.push(format!(
            "PostgreSQL at {place}: role {user} lacks USAGE on schema {schema} \
             (GRANT USAGE ON SCHEMA {schema} TO {user})"
        ));
        return Ok(Verdict {
            problems,
            summary: String::new(),
        });
    }
    // A role without SELECT on the version table cannot read the version:
    // that is one of the privileges to name below, not a failure of check.
    let version_readable: bool = c
        .query_one(
            "SELECT CASE WHEN to_regclass('dlcount_schema') IS NULL THEN true
                         ELSE has_table_privilege(to_regclass('dlcount_schema')::oid, 'SELECT') END",
            &[],
        )
        .map_err(pg_err)?
        .get(0);
    let version = if version_readable {
        Some(schema::version(&mut c)?)
    } else {
        None
    };
    if let Some(version) = version {
        version_problems(version, create, &place, &user, &schema, &mut problems);
    }
    if version != Some(0) {
        let mut wanted: Vec<(String, &str)> = Vec::new();
        for &t in TABLES {
            if t == "dlcount_schema" {
                wanted.push((t.to_string(), "SELECT"));
                continue;
            }
            for &p in TABLE_PRIVILEGES {
                wanted.push((t.to_string(), p));
            }
        }
        wanted.push(("day_keys".to_string(), "TRUNCATE"));
        let tables: Vec<String> = wanted
            .iter()
            .map(|(t, _)| format!("{}.{}", quote_ident(&schema), quote_ident(t)))
            .collect();
        let privileges: Vec<&str> = wanted.iter().map(|(_, p)| *p).collect();
        let rows = c
            .query(
                "SELECT i FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(t, p, i)
                  WHERE to_regclass(t) IS NULL OR NOT has_table_privilege(t, p) ORDER BY i",
                &[&tables, &privileges],
            )
            .map_err(pg_err)?;
        let mut missing: Vec<(String, Vec<&str>)> = Vec::new();
        for r in rows {
            let i = usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(0);
            let (table, privilege) = &wanted[i];
            match missing.last_mut() {
                Some((t, ps)) if t == table => ps.push(privilege),
                _ => missing.push((table.clone(), vec![privilege])),
            }
        }
        for (table, privileges) in missing {
            problems.push(format!(
                "PostgreSQL at {place}: role {user} lacks {} on table {schema}.{table} \
                 (GRANT {} ON {schema}.{table} TO {user})",
                privileges.join(", "),
                privileges.join(", ")
            ));
        }
    }
    let summary = format!(
        "PostgreSQL at {place}, schema {schema} {}",
        match version {
            None => "(version unreadable)".to_string(),
            Some(0) => "(new: the logger creates the tables)".to_string(),
            Some(v) if v < SCHEMA_VERSION =>
                format!("(version {v}: the logger upgrades it to {SCHEMA_VERSION})"),
            Some(v) => format!("(version {v})"),
        }
    );
    Ok(Verdict { problems, summary })
}

/// What the schema's version means for the logger's role: a newer dlcount's
/// tables, or tables to create or upgrade without CREATE.
fn version_problems(
    version: i64,
    create: bool,
    place: &str,
    user: &str,
    schema: &str,
    problems: &mut Vec<String>,
) {
    if version > SCHEMA_VERSION {
        problems.push(format!(
            "PostgreSQL at {place}: the tables in schema {schema} were written by a newer dlcount \
             (schema {version}, this one knows {SCHEMA_VERSION}): upgrade dlcount-pipe"
        ));
    } else if version < SCHEMA_VERSION && !create {
        problems.push(format!(
            "PostgreSQL at {place}: {} and role {user} lacks CREATE on schema {schema} \
             (GRANT CREATE ON SCHEMA {schema} TO {user}, or start dlcount once as a role that has it)",
            if version == 0 {
                "dlcount's tables are not there yet".to_string()
            } else {
                format!("dlcount's tables need an upgrade (schema {version} to {SCHEMA_VERSION})")
            }
        ));
    }
}

/// An identifier as SQL text, quoted when it needs to be.
fn quote_ident(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}
