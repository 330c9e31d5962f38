//! The render budget (issue 14: "rendering everything for 10 years × 200
//! files ≤ 100 ms"), measured end to end the way `dlcount-pipe render` and
//! the logger's render thread do it: `pages::snapshot` (the store's read)
//! then `render::render_all`, both timed, median of several runs.
//!
//! It fills an SQLite database with 10 years × 200 files of per day
//! figures and facts — every class, 3 of 8 countries, 2 of 5 referring
//! hosts, IPv6 and a few IPv4 networks a day, completed downloads not
//! known — straight into the tables (counting 7 million lines through the
//! pipe would take the whole benchmark), and a ROOT of 200 sparse images.
//! The database is kept in DIR and reused when it exists.
//!
//! `cargo run --release --example renderbench -- DIR [RUNS]`; see
//! scripts/renderbench.sh for the baseline side by side. Uses only the
//! public interface `render` has had since the statistics pages began, so
//! the same file builds against an older tree.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FILES: u64 = 200;
const DAYS: i32 = 3653;

fn path_of(i: u64) -> String {
    format!(
        "/releases/{}/distro-{}.{}-amd64.iso",
        i % 10,
        10 + i / 10,
        i % 10
    )
}

fn fill(db: &Path) -> anyhow::Result<()> {
    // The schema, made by dlcount itself.
    drop(dlcount::store::sqlite::SqliteStore::open(db)?);
    let mut c = rusqlite::Connection::open(db)?;
    let tx = c.transaction()?;
    let start = dlcount::store::day_of(chrono::NaiveDate::from_ymd_opt(2016, 1, 1).unwrap());
    let countries = ["DE", "FR", "US", "BR", "JP", "IN", "NL", "SE"];
    let hosts = [
        "direct",
        "this site",
        "forum.example",
        "news.example.org",
        "www.google.com",
    ];
    {
        let mut file = tx.prepare("INSERT INTO files (id, path) VALUES (?1, ?2)")?;
        let mut daily = tx.prepare(
            "INSERT INTO daily (file_id, day, downloads, requests, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut fact = tx.prepare(
            "INSERT INTO facts_daily (file_id, day, kind, value, n) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut days = tx.prepare(
            "INSERT OR IGNORE INTO days (day, touched, closed, identity) VALUES (?1, 0, 1, 0)",
        )?;
        let mut net =
            tx.prepare("INSERT INTO network_days (day, word, bits) VALUES (?1, ?2, ?3)")?;
        for i in 0..FILES {
            let id = i as i64 + 1;
            file.execute(rusqlite::params![id, path_of(i)])?;
            for d in 0..DAYS {
                let day = start + d;
                let n = ((i * 13 + d as u64 * 7) % 23 + 1) as i64;
                daily.execute(rusqlite::params![id, day, n, n + n / 2, n * 900_000_000])?;
                let bots = n / 5;
                let other = (n % 4 == 0) as i64;
                for (class, k) in [
                    ("browser", n - bots - n / 3 - other),
                    ("downloader", n / 3),
                    ("other", other),
                    ("bot", bots),
                ] {
                    if k > 0 {
                        fact.execute(rusqlite::params![id, day, "class", class, k])?;
                    }
                }
                for k in 0..3usize {
                    let c = countries[(i as usize + d as usize + k) % 8];
                    let share = if k == 0 { n - n / 2 } else { n / 4 };
                    if share > 0 {
                        fact.execute(rusqlite::params![id, day, "country", c, share])?;
                    }
                }
                for k in 0..2usize {
                    let h = hosts[(i as usize + d as usize + k) % 5];
                    fact.execute(rusqlite::params![id, day, "referer", h, n + k as i64])?;
                }
                if n % 3 == 0 {
                    fact.execute(rusqlite::params![id, day, "network", "v6", 1])?;
                }
            }
        }
        for d in 0..DAYS {
            let day = start + d;
            days.execute(rusqlite::params![day])?;
            let mut words = [0u64; 16];
            for k in 0..12usize {
                let n = (d as usize * 37 + k * 89) % 1024;
                words[n / 64] |= 1 << (n % 64);
            }
            for (w, bits) in words.iter().enumerate().filter(|(_, b)| **b != 0) {
                net.execute(rusqlite::params![day, w as i64, *bits as i64])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("usage: renderbench DIR [RUNS]"));
    let runs: usize = args.next().map_or(Ok(7), |r| r.parse())?;
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("bench.sqlite");
    if !db.exists() {
        let t = Instant::now();
        let part = dir.join("bench.sqlite.part");
        let _ = std::fs::remove_file(&part);
        fill(&part)?;
        std::fs::rename(&part, &db)?;
        eprintln!(
            "filled {} in {:.1} s",
            db.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let root = dir.join("root");
    for i in 0..FILES {
        let p = root.join(&path_of(i)[1..]);
        if !p.exists() {
            std::fs::create_dir_all(p.parent().unwrap())?;
            std::fs::File::create(&p)?.set_len(1_000_000_000 + i * 7_777_777)?;
        }
    }
    let _ = std::fs::remove_dir_all(root.join(".stats"));
    let mut settings = dlcount::render::PageSettings::new(root.clone());
    settings.settle = Duration::ZERO;
    let target = dlcount::config::DbTarget::Sqlite(db);
    let (mut read, mut render, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    let mut first = None;
    for run in 0..runs {
        let t0 = Instant::now();
        let snapshot = dlcount::pages::snapshot(&target)?;
        let t1 = Instant::now();
        dlcount::render::render_all(&settings, &snapshot, chrono::Local::now())?;
        let t2 = Instant::now();
        if run == 0 {
            // The first render writes every month page.
            first = Some(t2 - t1);
        } else {
            read.push(t1 - t0);
            render.push(t2 - t1);
            whole.push(t2 - t0);
        }
    }
    let pages = std::fs::read_dir(root.join(".stats"))?.count();
    println!(
        "{FILES} files x {DAYS} days, {pages} files in .stats: store read median {:.1} ms, render median {:.1} ms (first render {:.1} ms), read + render median {:.1} ms, over {} runs after the first",
        median(read),
        median(render),
        first.unwrap_or_default().as_secs_f64() * 1e3,
        median(whole),
        runs - 1
    );
    Ok(())
}
