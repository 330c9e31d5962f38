//! The whole content of a PostgreSQL store as plain rows and back
//! (`store::migrate::Dump`), for `migrate`; every decision about what to
//! move is in `store::migrate`, none here.
//!
//! Invariant: `write` replaces everything but the secret's row identity in
//! one transaction (the caller's, which holds `MIGRATE_LOCK` exclusively),
//! numbers files and servers by their index in the dump + 1 (a server's bit
//! in `visitors.servers` is its index), sets the id sequences past the ids
//! written, and raises `meta.generation` so every logger's cached ids are
//! fetched again.

use super::apply::parse_generation;
use crate::store::dedup::server_bit;
use crate::store::dedup::SeenLine;
use crate::store::migrate::{
    DayRow, Dump, FactRow, FigureRow, LegacyRow, NetworkRow, SeenRow, SourceRow, VisitorRow,
};
use crate::store::sqlite::MAX_SERVERS;
use anyhow::{anyhow, bail, Result};
use postgres::Transaction;
use std::collections::HashMap;

/// Meta rows that are the database's own, not marks.
const META_OWN: [&str; 3] = ["secret", "created", "generation"];

fn day32(v: i64) -> Result<i32> {
    i32::try_from(v).map_err(|_| anyhow!("day {v} out of range"))
}

/// Everything in the database, within `tx`.
pub fn export(tx: &mut Transaction<'_>, shown: &str) -> Result<Dump> {
    let mut dump = Dump::default();
    let secret: Vec<u8> = tx
        .query_one("SELECT value FROM meta WHERE name = 'secret'", &[])?
        .get(0);
    dump.secret = secret
        .try_into()
        .map_err(|_| anyhow!("{shown}: corrupt hash secret"))?;
    dump.created = tx
        .query_opt("SELECT value FROM meta WHERE name = 'created'", &[])?
        .map(|r| String::from_utf8_lossy(&r.get::<_, Vec<u8>>(0)).into_owned());
    let mut file_of: HashMap<i64, usize> = HashMap::new();
    for r in tx.query("SELECT id, path FROM files ORDER BY id", &[])? {
        file_of.insert(r.get(0), dump.files.len());
        dump.files.push(r.get(1));
    }
    let mut server_of: HashMap<i64, usize> = HashMap::new();
    for r in tx.query("SELECT id, name FROM servers ORDER BY id", &[])? {
        server_of.insert(r.get(0), dump.servers.len());
        dump.servers.push(r.get(1));
    }
    let file = |id: i64| {
        file_of
            .get(&id)
            .copied()
            .ok_or_else(|| anyhow!("{shown}: figures of unknown file {id}"))
    };
    let server = |id: i64| {
        server_of
            .get(&id)
            .copied()
            .ok_or_else(|| anyhow!("{shown}: figures of unknown server {id}"))
    };
    for r in tx.query(
        "SELECT d.day, d.touched, d.closed, d.identity, k.key FROM days d
         LEFT JOIN day_keys k ON k.day = d.day ORDER BY d.day",
        &[],
    )? {
        let day = day32(r.get(0))?;
        let key = match r.get::<_, Option<Vec<u8>>>(4) {
            Some(k) => Some(
                <[u8; 32]>::try_from(k.as_slice())
                    .map_err(|_| anyhow!("{shown}: corrupt key of day {day}"))?,
            ),
            None => None,
        };
        dump.days.push(DayRow {
            day,
            touched: r.get(1),
            closed: r.get(2),
            identity: r.get(3),
            key,
        });
    }
    for r in tx.query(
        "SELECT day, hash, live, imported, source, source_n, live_bytes, imported_bytes,
            source_bytes FROM seen_lines ORDER BY day, hash",
        &[],
    )? {
        dump.seen_lines.push(SeenRow {
            day: day32(r.get(0))?,
            hash: r.get(1),
            seen: SeenLine {
                live: r.get(2),
                imported: r.get(3),
                source: r.get(4),
                source_n: r.get(5),
                live_bytes: r.get(6),
                imported_bytes: r.get(7),
                source_bytes: r.get(8),
            },
        });
    }
    for r in tx.query(
        "SELECT day, key, file_id, requests, bytes, run, servers, class, country
           FROM visitors ORDER BY day, key",
        &[],
    )? {
        let ids: i64 = r.get(6);
        let mut servers = 0i64;
        for (&id, &i) in &server_of {
            if ids & server_bit(id) != 0 {
                servers |= 1i64 << i;
            }
        }
        dump.visitors.push(VisitorRow {
            day: day32(r.get(0))?,
            key: r.get(1),
            file: file(r.get(2))?,
            requests: r.get(3),
            bytes: r.get(4),
            run: r.get(5),
            servers,
            class: r.get(7),
            country: r.get(8),
        });
    }
    for r in tx.query(
        "SELECT file_id, day, kind, value, n FROM facts_daily ORDER BY file_id, day, kind, value",
        &[],
    )? {
        dump.facts.push(FactRow {
            file: file(r.get(0))?,
            day: day32(r.get(1))?,
            kind: r.get(2),
            value: r.get(3),
            n: r.get(4),
        });
    }
    for r in tx.query(
        "SELECT day, word, bits FROM network_days ORDER BY day, word",
        &[],
    )? {
        dump.networks.push(NetworkRow {
            day: day32(r.get(0))?,
            word: r.get(1),
            bits: r.get(2),
        });
    }
    for r in tx.query(
        "SELECT file_id, day, downloads, requests, bytes FROM daily ORDER BY file_id, day",
        &[],
    )? {
        dump.daily.push(FigureRow {
            of: file(r.get(0))?,
            day: day32(r.get(1))?,
            downloads: r.get(2),
            requests: r.get(3),
            bytes: r.get(4),
        });
    }
    for r in tx.query(
        "SELECT server_id, day, downloads, requests, bytes FROM server_daily ORDER BY server_id, day",
        &[],
    )? {
        dump.server_daily.push(FigureRow {
            of: server(r.get(0))?,
            day: day32(r.get(1))?,
            downloads: r.get(2),
            requests: r.get(3),
            bytes: r.get(4),
        });
    }
    for r in tx.query(
        "SELECT file_id, month, downloads FROM legacy ORDER BY file_id, month",
        &[],
    )? {
        dump.legacy.push(LegacyRow {
            file: file(r.get(0))?,
            month: r.get(1),
            downloads: r.get(2),
        });
    }
    for r in tx.query(
        "SELECT id, kind, name, started FROM sources ORDER BY id",
        &[],
    )? {
        dump.sources.push(SourceRow {
            id: r.get(0),
            kind: r.get(1),
            name: r.get(2),
            started: r.get(3),
        });
    }
    for r in tx.query(
        "SELECT name, value FROM meta WHERE name <> ALL($1) ORDER BY name",
        &[&&META_OWN[..]],
    )? {
        let value: Vec<u8> = r.get(1);
        dump.marks
            .push((r.get(0), String::from_utf8_lossy(&value).into_owned()));
    }
    Ok(dump)
}

/// Replaces everything by `dump` within `tx`; returns the new generation.
pub fn write(tx: &mut Transaction<'_>, dump: &Dump, shown: &str) -> Result<i64> {
    if dump.servers.len() > MAX_SERVERS as usize {
        bail!("{shown}: more than {MAX_SERVERS} servers");
    }
    tx.batch_execute(
        "DELETE FROM seen_lines; DELETE FROM visitors; DELETE FROM daily; DELETE FROM server_daily;
         DELETE FROM facts_daily; DELETE FROM network_days;
         DELETE FROM legacy; DELETE FROM days; DELETE FROM day_keys; DELETE FROM sources;
         DELETE FROM files; DELETE FROM servers;",
    )?;
    tx.execute("DELETE FROM meta WHERE name <> ALL($1)", &[&&META_OWN[..]])?;
    tx.execute(
        "UPDATE meta SET value = $1 WHERE name = 'secret'",
        &[&&dump.secret[..]],
    )?;
    if let Some(created) = &dump.created {
        tx.execute(
            "INSERT INTO meta(name, value) VALUES ('created', $1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&created.as_bytes()],
        )?;
    }
    let index_ids = |n: usize| (1..=n as i64).collect::<Vec<i64>>();
    tx.execute(
        "INSERT INTO files(id, path) SELECT * FROM unnest($1::int8[], $2::text[])",
        &[&index_ids(dump.files.len()), &dump.files],
    )?;
    tx.execute(
        "INSERT INTO servers(id, name) SELECT * FROM unnest($1::int8[], $2::text[])",
        &[&index_ids(dump.servers.len()), &dump.servers],
    )?;
    let days: Vec<i64> = dump.days.iter().map(|d| i64::from(d.day)).collect();
    let touched: Vec<i64> = dump.days.iter().map(|d| d.touched).collect();
    let closed: Vec<bool> = dump.days.iter().map(|d| d.closed).collect();
    let identity: Vec<i64> = dump.days.iter().map(|d| d.identity).collect();
    tx.execute(
        "INSERT INTO days(day, touched, closed, identity)
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::bool[], $4::int8[])",
        &[&days, &touched, &closed, &identity],
    )?;
    let (key_days, keys): (Vec<i64>, Vec<Vec<u8>>) = dump
        .days
        .iter()
        .filter_map(|d| d.key.map(|k| (i64::from(d.day), k.to_vec())))
        .unzip();
    tx.execute(
        "INSERT INTO day_keys(day, key) SELECT * FROM unnest($1::int8[], $2::bytea[])",
        &[&key_days, &keys],
    )?;
    let mut cols: [Vec<i64>; 9] = Default::default();
    for r in &dump.seen_lines {
        let s = &r.seen;
        for (c, x) in cols.iter_mut().zip([
            i64::from(r.day),
            r.hash,
            s.live,
            s.imported,
            s.source,
            s.source_n,
            s.live_bytes,
            s.imported_bytes,
            s.source_bytes,
        ]) {
            c.push(x);
        }
    }
    {
        let [a, b, c, d, e, f, g, h, i] = &cols;
        tx.execute(
            "INSERT INTO seen_lines(day, hash, live, imported, source, source_n, live_bytes,
                imported_bytes, source_bytes)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
                $6::int8[], $7::int8[], $8::int8[], $9::int8[])",
            &[a, b, c, d, e, f, g, h, i],
        )?;
    }
    let mut cols: [Vec<i64>; 9] = Default::default();
    for v in &dump.visitors {
        for (c, x) in cols.iter_mut().zip([
            i64::from(v.day),
            v.key,
            v.file as i64 + 1,
            v.requests,
            v.bytes,
            v.run,
            v.servers,
            v.class,
            v.country,
        ]) {
            c.push(x);
        }
    }
    {
        let [a, b, c, d, e, f, g, h, i] = &cols;
        tx.execute(
            "INSERT INTO visitors(day, key, file_id, requests, bytes, run, servers, class, country)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[],
                $6::int8[], $7::int8[], $8::int8[], $9::int8[])",
            &[a, b, c, d, e, f, g, h, i],
        )?;
    }
    {
        let files: Vec<i64> = dump.facts.iter().map(|f| f.file as i64 + 1).collect();
        let days: Vec<i64> = dump.facts.iter().map(|f| i64::from(f.day)).collect();
        let kinds: Vec<&str> = dump.facts.iter().map(|f| f.kind.as_str()).collect();
        let values: Vec<&str> = dump.facts.iter().map(|f| f.value.as_str()).collect();
        let ns: Vec<i64> = dump.facts.iter().map(|f| f.n).collect();
        tx.execute(
            "INSERT INTO facts_daily(file_id, day, kind, value, n)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::int8[])",
            &[&files, &days, &kinds, &values, &ns],
        )?;
    }
    {
        let days: Vec<i64> = dump.networks.iter().map(|n| i64::from(n.day)).collect();
        let words: Vec<i64> = dump.networks.iter().map(|n| n.word).collect();
        let bits: Vec<i64> = dump.networks.iter().map(|n| n.bits).collect();
        tx.execute(
            "INSERT INTO network_days(day, word, bits)
             SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[])",
            &[&days, &words, &bits],
        )?;
    }
    for (table, column, rows) in [
        ("daily", "file_id", &dump.daily),
        ("server_daily", "server_id", &dump.server_daily),
    ] {
        let mut cols: [Vec<i64>; 5] = Default::default();
        for f in rows {
            for (c, x) in cols.iter_mut().zip([
                f.of as i64 + 1,
                i64::from(f.day),
                f.downloads,
                f.requests,
                f.bytes,
            ]) {
                c.push(x);
            }
        }
        let [a, b, c, d, e] = &cols;
        tx.execute(
            &format!(
                "INSERT INTO {table}({column}, day, downloads, requests, bytes)
                 SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[])"
            ),
            &[a, b, c, d, e],
        )?;
    }
    let files: Vec<i64> = dump.legacy.iter().map(|l| l.file as i64 + 1).collect();
    let months: Vec<&str> = dump.legacy.iter().map(|l| l.month.as_str()).collect();
    let downloads: Vec<i64> = dump.legacy.iter().map(|l| l.downloads).collect();
    tx.execute(
        "INSERT INTO legacy(file_id, month, downloads)
         SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[])",
        &[&files, &months, &downloads],
    )?;
    let ids: Vec<i64> = dump.sources.iter().map(|s| s.id).collect();
    let kinds: Vec<&str> = dump.sources.iter().map(|s| s.kind.as_str()).collect();
    let names: Vec<&str> = dump.sources.iter().map(|s| s.name.as_str()).collect();
    let started: Vec<i64> = dump.sources.iter().map(|s| s.started).collect();
    tx.execute(
        "INSERT INTO sources(id, kind, name, started)
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[])",
        &[&ids, &kinds, &names, &started],
    )?;
    let names: Vec<&str> = dump.marks.iter().map(|(n, _)| n.as_str()).collect();
    let values: Vec<&[u8]> = dump.marks.iter().map(|(_, v)| v.as_bytes()).collect();
    tx.execute(
        "INSERT INTO meta(name, value) SELECT * FROM unnest($1::text[], $2::bytea[])",
        &[&names, &values],
    )?;
    // New files and sources are numbered after the ids written here.
    tx.batch_execute(
        "SELECT setval(pg_get_serial_sequence('files', 'id'), coalesce(max(id), 0) + 1, false) FROM files;
         SELECT setval(pg_get_serial_sequence('sources', 'id'), coalesce(max(id), 0) + 1, false) FROM sources;",
    )?;
    let current = tx
        .query_opt("SELECT value FROM meta WHERE name = 'generation'", &[])?
        .map_or(0, |r| parse_generation(&r.get::<_, Vec<u8>>(0)));
    let next = current + 1;
    tx.execute(
        "INSERT INTO meta(name, value) VALUES ('generation', $1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[&next.to_string().as_bytes()],
    )?;
    Ok(next)
}
