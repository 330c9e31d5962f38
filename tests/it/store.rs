//! The store conformance suite: the store's behaviour, written once and run
//! against every backend through the real binary (`--db PATH` for SQLite,
//! `--db postgres://…` for PostgreSQL), so the two cannot drift apart.
//!
//! `backends! { name => |db: &Db| { … } }` makes `store::name::sqlite` and
//! `store::name::postgres`. The PostgreSQL half needs `DLCOUNT_TEST_PG`, the
//! URL of a role that may create databases (scripts/test.sh runs the tests
//! under `tests/e2e/with_pg.sh`, which starts a throwaway cluster and sets
//! it); each test gets a fresh database, dropped afterwards. Without the
//! variable those tests pass after one "skipped: …" line on stderr (once
//! per run) saying why and how to run them
//! (`tests/e2e/with_pg.sh cargo test --release`),
//! except under `CI=true`, where they fail: CI must run both halves.
//!
//! Tests that only PostgreSQL can have (several writers at once, roles and
//! privileges, TLS) and the cross-check of both backends on one log follow
//! the suite.

use super::{cmd, line, total, Pipe, Site};
use crate::support::genlog::{generate, GenConfig, Mode};
use dlcount::config::PgTarget;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The PostgreSQL schema version this build writes.
const PG_SCHEMA: i64 = dlcount::store::postgres::schema::SCHEMA_VERSION;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The admin URL for PostgreSQL tests; `None` (after saying so) to skip them.
fn admin_url() -> Option<String> {
    match std::env::var("DLCOUNT_TEST_PG") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "DLCOUNT_TEST_PG is unset and CI=true: the PostgreSQL half of the store suite must run \
             (scripts/test.sh runs the tests under tests/e2e/with_pg.sh)"
        ),
        _ => {
            say_skipped(
                "the PostgreSQL tests: DLCOUNT_TEST_PG (the URL of a role that may create \
                 databases) is unset",
            );
            None
        }
    }
}

/// Says once per run of the test binary, on its real stderr, what is
/// skipped, why, and how to run it: `eprintln!` in a test is captured and
/// shown only when the test fails, and a pass that ran nothing must be
/// seen. (Once: not one line per test of the suite.)
fn say_skipped(what: &str) {
    use std::io::Write;
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.iter().any(|w| w == what) {
        said.push(what.to_string());
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {what}; run with `tests/e2e/with_pg.sh cargo test --release`, \
             which starts a throwaway PostgreSQL cluster and sets it"
        );
    }
}

fn pg_connect(url: &str) -> postgres::Client {
    let target = dlcount::store::postgres::connect::Target::new(&PgTarget {
        url: url.to_string(),
        ca_file: None,
        state_dir: PathBuf::from("/nonexistent"),
    })
    .unwrap();
    target.connect().unwrap()
}

/// `url` with its database name replaced.
fn url_for_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").unwrap() + 3;
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// A fresh PostgreSQL database, dropped (connections and all) with it.
pub struct PgDb {
    admin: String,
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub fn create(admin: &str) -> PgDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dlcount_t_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        pg_connect(admin)
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        PgDb {
            admin: admin.to_string(),
            url: url_for_database(admin, &name),
            name,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = pg_connect(&self.admin).batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A database of one backend, with a scratch site (download root, state dir).
pub struct Db {
    pub backend: Backend,
    pub site: Site,
    /// What `--db` gets.
    pub arg: String,
    pub pg: Option<PgDb>,
}

impl Db {
    /// `None` when the backend's tests are skipped (see the module header).
    pub fn new(backend: Backend) -> Option<Db> {
        let site = Site::new();
        match backend {
            Backend::Sqlite => Some(Db {
                backend,
                arg: site.db.to_str().unwrap().to_string(),
                site,
                pg: None,
            }),
            Backend::Postgres => {
                let pg = PgDb::create(&admin_url()?);
                Some(Db {
                    backend,
                    arg: pg.url.clone(),
                    site,
                    pg: Some(pg),
                })
            }
        }
    }

    pub fn dir(&self) -> &Path {
        self.site.dir.path()
    }

    /// `--db …` and, for PostgreSQL, the local state directory.
    pub fn db_args(&self) -> Vec<String> {
        let mut a = vec!["--db".to_string(), self.arg.clone()];
        if self.backend == Backend::Postgres {
            a.push("--state-dir".to_string());
            a.push(self.dir().to_str().unwrap().to_string());
        }
        a
    }

    /// `dlcount-pipe SUB… --db …`.
    pub fn cmd(&self, sub: &[&str]) -> Command {
        let mut c = cmd();
        c.args(sub).args(self.db_args()).stdin(Stdio::null());
        c
    }

    pub fn spawn_pipe(&self, extra: &[&str]) -> Pipe {
        let mut c = cmd();
        c.args(self.db_args())
            .arg("--root")
            .arg(&self.site.root)
            .args(extra);
        Pipe::spawn(c)
    }

    /// Pipe mode with `lines` on stdin to EOF: (exit code, stderr).
    pub fn pipe_all(&self, lines: &[u8], extra: &[&str]) -> (i32, String) {
        let mut p = self.spawn_pipe(extra);
        p.write(lines);
        p.finish()
    }

    pub fn import(&self, files: &[&Path], extra: &[&str]) -> (i32, String) {
        let out = self
            .cmd(&["import"])
            .args(extra)
            .args(files)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `import` that must succeed; its summary (stderr without the timing line).
    pub fn import_ok(&self, files: &[&Path], extra: &[&str]) -> String {
        let (code, err) = self.import(files, extra);
        assert_eq!(code, 0, "{err}");
        summary(&err)
    }

    fn report_with(&self, args: &[&str]) -> Value {
        let out = self.cmd(&["report"]).args(args).output().unwrap();
        assert_succeeded(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `report --json --detail`; a failing report fails the test.
    pub fn report(&self) -> Value {
        self.report_with(&["--json", "--detail"])
    }

    pub fn report_plain(&self) -> Value {
        self.report_with(&["--json"])
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Runs SQL that both backends understand.
    pub fn sql(&self, sql: &str) {
        match &self.pg {
            None => rusqlite::Connection::open(&self.site.db)
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Some(pg) => pg_connect(&pg.url).batch_execute(sql).unwrap(),
        }
    }

    /// One integer from SQL that both backends understand.
    pub fn sql_i64(&self, sql: &str) -> i64 {
        match &self.pg {
            None => rusqlite::Connection::open(&self.site.db)
                .unwrap()
                .query_row(sql, [], |r| r.get(0))
                .unwrap(),
            Some(pg) => pg_connect(&pg.url).query_one(sql, &[]).unwrap().get(0),
        }
    }
}

fn assert_succeeded(out: &Output) {
    super::assert_succeeded(out)
}

/// An import's summary: its stderr without the line that holds timings.
fn summary(err: &str) -> String {
    err.lines()
        .filter(|l| !l.starts_with("read "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn bytes_of(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn month(downloads: u64, requests: u64, bytes: u64) -> Value {
    json!({"downloads": downloads, "requests": requests, "bytes": bytes})
}

/// Runs `f` on a fresh database of `backend`, unless that backend is skipped.
pub fn with_db(backend: Backend, f: impl FnOnce(&Db)) {
    if let Some(db) = Db::new(backend) {
        f(&db);
    }
}

macro_rules! backends {
    ($($name:ident => $body:expr;)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[test]
                fn sqlite() {
                    with_db(Backend::Sqlite, $body)
                }
                #[test]
                fn postgres() {
                    with_db(Backend::Postgres, $body)
                }
            }
        )*
    };
}

/// 30,000 generated lines (mixed), seed 21.
fn generated() -> crate::support::genlog::Generated {
    generate(&GenConfig {
        lines: 30_000,
        seed: 21,
        ..Default::default()
    })
}

const FROM_PAGE: &str = "203.0.113.5 - - [20/Nov/2026:10:00:00 +0100] \"GET /isos/a.iso HTTP/1.1\" 200 1000 \"https://example.org/downloads/\" \"Mozilla/5.0\"\n";
const NO_REFERER: &str = "203.0.113.5 - - [20/Nov/2026:10:00:00 +0100] \"GET /isos/a.iso HTTP/1.1\" 200 1000 \"-\" \"Mozilla/5.0\"\n";
const UPSTREAM_COMBINED: &str = "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"";

/// Four requests as the pipe's `%O` writes them (`sent`) or as upstream's `%b`.
fn traffic(bytes_field: &dyn Fn(u64) -> String) -> String {
    let mut s = String::new();
    for (ip, sec, method, status, body) in [
        ("198.51.100.1", 1, "GET", 200, 3_000_000_000u64),
        ("198.51.100.2", 2, "GET", 206, 1_048_576),
        ("198.51.100.2", 9, "GET", 206, 1_048_576),
        ("198.51.100.3", 4, "HEAD", 200, 0),
    ] {
        s.push_str(&format!(
            "{ip} - - [21/Nov/2026:11:00:{sec:02} +0100] \"{method} /isos/b.iso HTTP/1.1\" {status} {} \"-\" \"aria2/1.37.0\"\n",
            bytes_field(body)
        ));
    }
    s
}

backends! {
    generated_log_through_the_pipe_gives_the_known_answer => |db: &Db| {
        let g = generated();
        let (code, err) = db.pipe_all(&bytes_of(&g.lines), &[]);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains(&format!(
                "end of input: {} lines, {} counted, 0 already counted, {} new downloads, 0 rejected",
                g.lines.len(),
                total(&g.answer_detail, "requests"),
                total(&g.answer_detail, "downloads")
            )),
            "{err}"
        );
        assert_eq!(db.report(), g.answer_detail);
        assert_eq!(db.report_plain(), g.answer_plain);
        assert_eq!(db.by("class"), g.answer_class);
    };

    import_again_and_in_reverse_order_changes_nothing => |db: &Db| {
        let g = generated();
        let (requests, downloads) = (
            total(&g.answer_detail, "requests"),
            total(&g.answer_detail, "downloads"),
        );
        let file = db.write("access.log", &bytes_of(&g.lines));
        let first = db.import_ok(&[&file], &[]);
        assert!(first.contains(&format!("downloads: {downloads} new, 0 already known")), "{first}");
        assert!(first.contains(&format!("counted lines: {requests} new, 0 already counted before")), "{first}");
        assert_eq!(db.report(), g.answer_detail);
        let again = db.import_ok(&[&file], &[]);
        assert!(again.contains(&format!("downloads: 0 new, {downloads} already known")), "{again}");
        assert!(again.contains(&format!("counted lines: 0 new, {requests} already counted before")), "{again}");
        assert_eq!(db.report(), g.answer_detail);
        let mut reversed = g.lines.clone();
        reversed.reverse();
        let file = db.write("reversed.log", &bytes_of(&reversed));
        assert_eq!(db.import_ok(&[&file], &[]), again.replace("access.log", "reversed.log"));
        assert_eq!(db.report(), g.answer_detail);
        assert_eq!(db.by("class"), g.answer_class);
    };

    half_live_then_the_whole_file_imported => |db: &Db| {
        let g = generated();
        let half = g.lines.len() / 2;
        let (code, err) = db.pipe_all(&bytes_of(&g.lines[..half]), &[]);
        assert_eq!(code, 0, "{err}");
        let file = db.write("access.log", &bytes_of(&g.lines));
        db.import_ok(&[&file], &[]);
        assert_eq!(db.report(), g.answer_detail);
        // The reverse: the file first, then the pipe sees its lines again.
        let (code, err) = db.pipe_all(&bytes_of(&g.lines[half..]), &[]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains(", 0 counted, "), "{err}");
        assert_eq!(db.report(), g.answer_detail);
        assert_eq!(db.by("class"), g.answer_class);
    };

    every_line_a_new_download => |db: &Db| {
        let g = generate(&GenConfig { lines: 20_000, seed: 22, mode: Mode::AllNew, ..Default::default() });
        let (code, err) = db.pipe_all(&bytes_of(&g.lines), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.report(), g.answer_detail);
        assert_eq!(total(&db.report(), "downloads"), 20_000);
    };

    split_imports_count_the_most_copies_one_file_holds => |db: &Db| {
        // Three identical lines (a segmented downloader's equal ranges in
        // one second): whole, 3 requests; split 2 + 1 over two files, 2.
        let l = line("192.0.2.7", 20, 5, "/isos/a.iso", 206, 500);
        let whole = db.write("whole.log", l.repeat(3).as_bytes());
        db.import_ok(&[&whole], &[]);
        assert_eq!(db.report(), json!({"/isos/a.iso": {"2026-11": month(1, 3, 1500)}}));
        let split = Db::new(db.backend).unwrap();
        let a = split.write("access.log.1", l.repeat(2).as_bytes());
        let b = split.write("access.log", l.as_bytes());
        split.import_ok(&[&a, &b], &[]);
        assert_eq!(split.report(), json!({"/isos/a.iso": {"2026-11": month(1, 2, 1000)}}));
        // The pipe then sees all three: the live copies win.
        let (code, err) = split.pipe_all(l.repeat(3).as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(split.report(), json!({"/isos/a.iso": {"2026-11": month(1, 3, 1500)}}));
    };

    lines_differing_only_in_referer_are_two_requests => |db: &Db| {
        let expected = json!({"/isos/a.iso": {"2026-11": month(1, 2, 2000)}});
        let older = db.write("access.log.1", FROM_PAGE.as_bytes());
        let newer = db.write("access.log", NO_REFERER.as_bytes());
        db.import_ok(&[&older, &newer], &[]);
        assert_eq!(db.report(), expected);
        db.import_ok(&[&newer, &older], &[]);
        let (code, err) = db.pipe_all(format!("{FROM_PAGE}{NO_REFERER}").as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.report(), expected);
    };

    a_percent_b_log_matches_the_percent_o_pipe_and_the_pipes_bytes_win => |db: &Db| {
        let sent = |body: u64| (body + 300).to_string();
        let clf = |body: u64| if body == 0 { "-".to_string() } else { body.to_string() };
        let pipe_bytes = 3_000_000_300 + 2 * 1_048_876 + 300;
        let access_log = db.write("access.log", traffic(&clf).as_bytes());
        let first = db.import_ok(&[&access_log], &["--format", UPSTREAM_COMBINED]);
        assert!(first.contains("counted lines: 4 new, 0 already counted before"), "{first}");
        assert_eq!(
            db.report(),
            json!({"/isos/b.iso": {"2026-11": month(3, 4, 3_000_000_000 + 2 * 1_048_576)}})
        );
        let (code, err) = db.pipe_all(traffic(&sent).as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.report(), json!({"/isos/b.iso": {"2026-11": month(3, 4, pipe_bytes)}}));
        let again = db.import_ok(&[&access_log], &["--format", UPSTREAM_COMBINED]);
        assert!(again.contains("counted lines: 0 new, 4 already counted before"), "{again}");
        assert_eq!(db.report(), json!({"/isos/b.iso": {"2026-11": month(3, 4, pipe_bytes)}}));
    };

    an_import_lacking_the_days_identity_fields_is_left_out_by_name => |db: &Db| {
        let combined = traffic(&|b| (b + 300).to_string());
        let (code, err) = db.pipe_all(combined.as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        let mut common: String = combined
            .lines()
            .map(|l| format!("{}\n", l.split(" \"-\" ").next().unwrap()))
            .collect();
        common.push_str("198.51.100.9 - - [25/Nov/2026:08:00:00 +0100] \"GET /isos/b.iso HTTP/1.1\" 200 700\n");
        let file = db.write("old-common.log", common.as_bytes());
        let (code, err) = db.import(&[&file], &["--format", "common"]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("4 counted line(s) left out") && err.contains("%{Referer}i, %{User-Agent}i"),
            "{err}"
        );
        assert_eq!(
            db.report(),
            json!({"/isos/b.iso": {"2026-11": month(4, 5, 3_000_000_300 + 2 * 1_048_876 + 300 + 700)}})
        );
    };

    import_json_keeps_the_larger_of_legacy_and_counted => |db: &Db| {
        let legacy = db.write(
            "counts.json",
            br#"{"linuxvillage-24.04-amd64.iso": {"2026-10": 120, "2026-11": 2}, "/isos/old.iso": {"2025-01": 7}}"#,
        );
        let import_json = || {
            let out = db.cmd(&["import-json", "--prefix", "/isos"]).arg(&legacy).output().unwrap();
            assert_succeeded(&out);
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        let err = import_json();
        assert!(err.contains("3 file-months read from") && err.contains(", 3 added or raised"), "{err}");
        let logs: String = (0..3)
            .map(|i| line(&format!("192.0.2.{i}"), 2, i, "/isos/linuxvillage-24.04-amd64.iso", 200, 5))
            .collect();
        let f = db.write("access.log", logs.as_bytes());
        db.import_ok(&[&f], &[]);
        let expected = json!({
            "/isos/linuxvillage-24.04-amd64.iso": {"2026-10": 120, "2026-11": 3},
            "/isos/old.iso": {"2025-01": 7}
        });
        assert_eq!(db.report_plain(), expected);
        let err = import_json();
        assert!(err.contains(", 0 added or raised"), "{err}");
        assert_eq!(db.report_plain(), expected);
    };

    render_writes_the_statistics_of_the_database => |db: &Db| {
        let g = generated();
        let (code, err) = db.pipe_all(&bytes_of(&g.lines), &[]);
        assert_eq!(code, 0, "{err}");
        let out = db.cmd(&["render"]).arg("--root").arg(&db.site.root).output().unwrap();
        assert_succeeded(&out);
        let counts: Value = serde_json::from_slice(
            &std::fs::read(db.site.root.join(".stats/counts.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(counts, g.answer_plain);
        let page = std::fs::read_to_string(db.site.root.join(".stats/index.html")).unwrap();
        assert!(page.contains("linuxvillage-24.04-amd64.iso"), "{page}");
    };

    check_says_ok_for_a_usable_database => |db: &Db| {
        let out = db.cmd(&["check"]).arg("--root").arg(&db.site.root).output().unwrap();
        assert_succeeded(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("dlcount: check: ok ("), "{text}");
        if db.backend == Backend::Postgres {
            assert!(text.contains("(new: the logger creates the tables)"), "{text}");
            assert!(!text.contains(&db.arg) || !db.arg.contains(":***@"), "{text}");
        }
        let (code, err) = db.pipe_all(line("192.0.2.1", 20, 1, "/isos/a.iso", 200, 5).as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        let out = db.cmd(&["check"]).arg("--root").arg(&db.site.root).output().unwrap();
        assert_succeeded(&out);
        let text = String::from_utf8_lossy(&out.stdout);
        if db.backend == Backend::Postgres {
            assert!(text.contains(&format!("schema public (version {PG_SCHEMA}))")), "{text}");
        }
    };

    a_closed_day_keeps_its_figures_and_counts_nothing_more => |db: &Db| {
        // Three November days, well past a two-day retention.
        let lines: String = (0..30u32)
            .map(|i| line(&format!("198.51.100.{}", i % 10), 10 + i % 3, i, "/isos/a.iso", 200, 100))
            .collect();
        let (code, err) = db.pipe_all(lines.as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        let counted = db.report();
        assert_eq!(counted, json!({"/isos/a.iso": {"2026-11": month(30, 30, 3000)}}));
        // Untouched for long (the purge's grace), then an import purges.
        db.sql("UPDATE days SET touched = 0");
        let empty = db.write("empty.log", b"");
        db.import_ok(&[&empty], &["--retention-days", "2"]);
        assert_eq!(db.sql_i64("SELECT count(*) FROM days WHERE closed"), 3);
        for table in ["seen_lines", "visitors", "day_keys"] {
            assert_eq!(db.sql_i64(&format!("SELECT count(*) FROM {table}")), 0, "{table}");
        }
        assert_eq!(db.report(), counted);
        // Their lines again, and a new client on a closed day: skipped, said so.
        let more = format!("{lines}{}", line("192.0.2.200", 11, 59, "/isos/a.iso", 200, 100));
        let file = db.write("late.log", more.as_bytes());
        let s = db.import_ok(&[&file], &["--retention-days", "2"]);
        assert!(s.contains("skipped for closed days: 31"), "{s}");
        let (code, err) = db.pipe_all(more.as_bytes(), &["--retention-days", "2"]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains(", 0 counted, "), "{err}");
        assert_eq!(db.report(), counted);
    };

    sums_saturate_instead_of_failing_the_batch => |db: &Db| {
        let first = line("192.0.2.1", 20, 1, "/isos/a.iso", 200, 1000);
        let (code, err) = db.pipe_all(first.as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        db.sql(
            "UPDATE daily SET bytes = 9223372036854775800, requests = 9223372036854775807;
             UPDATE visitors SET bytes = 9223372036854775800;",
        );
        let second = line("192.0.2.1", 20, 2, "/isos/a.iso", 200, 1000);
        let (code, err) = db.pipe_all(second.as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains(", 1 counted, "), "{err}");
        let max = i64::MAX as u64;
        assert_eq!(db.report(), json!({"/isos/a.iso": {"2026-11": month(1, max, max)}}));
        assert_eq!(db.sql_i64("SELECT bytes FROM visitors"), i64::MAX);
    };

    spooled_lines_are_counted_once_the_configuration_is_fixed => |db: &Db| {
        let config = |extra: &str| {
            let mut text = format!("db = \"{}\"\nroot = \"{}\"\n", db.arg, db.site.root.display());
            if db.backend == Backend::Postgres {
                text.push_str(&format!("state_dir = \"{}\"\n", db.dir().display()));
            }
            text.push_str(extra);
            db.write("dlcount.toml", text.as_bytes())
        };
        let lines: String = (1..=10u32)
            .map(|i| line(&format!("198.51.100.{i}"), 20, i, "/isos/a.iso", 200, 1000))
            .collect();
        let broken = config("fromat = \"combined\"\n");
        let mut c = cmd();
        c.arg("--config").arg(&broken);
        let mut p = Pipe::spawn(c);
        p.write(lines.as_bytes());
        let (code, err) = p.finish();
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("lines are kept in"), "{err}");
        assert_eq!(std::fs::read_dir(db.dir().join("spool")).unwrap().count(), 1);
        let fixed = config("");
        let mut c = cmd();
        c.arg("--config").arg(&fixed);
        let mut p = Pipe::spawn(c);
        p.write(line("198.51.100.99", 20, 30, "/isos/a.iso", 200, 1000).as_bytes());
        let (code, err) = p.finish();
        assert_eq!(code, 0, "{err}");
        assert_eq!(std::fs::read_dir(db.dir().join("spool")).unwrap().count(), 0, "{err}");
        assert_eq!(db.report(), json!({"/isos/a.iso": {"2026-11": month(11, 11, 11_000)}}));
        assert_eq!(db.sql_i64("SELECT count(*) FROM meta WHERE name LIKE 'spool:%'"), 0);
    };
}

impl Db {
    /// `report --json --by server`.
    pub fn by_server(&self) -> Value {
        self.report_with(&["--json", "--by", "server"])
    }
}

/// `migrate --db FROM --to TO` (each `--db …` with its state directory);
/// what it printed on stdout.
fn migrate(from: &Db, to: &Db, extra: &[&str]) -> String {
    migrate_said(from, to, extra).0
}

/// `migrate` as [`migrate`]; what it printed on stdout and on stderr.
fn migrate_said(from: &Db, to: &Db, extra: &[&str]) -> (String, String) {
    let out = from
        .cmd(&["migrate"])
        .arg("--to")
        .arg(&to.arg)
        .args(extra)
        .output()
        .unwrap();
    assert_succeeded(&out);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Two servers' SQLite databases, each of which counted its own log
/// (`servers::log_a` as mirror-a, `log_b` as mirror-b, one open day each,
/// each with its own secret), and the logs.
fn two_sqlite_servers() -> (Db, PathBuf, Db, PathBuf) {
    use crate::servers::{log_a, log_b};
    let a_site = Db::new(Backend::Sqlite).unwrap();
    let a = a_site.write("a.log", log_a().as_bytes());
    a_site.import_ok(&[&a], &["--server", "mirror-a"]);
    let b_site = Db::new(Backend::Sqlite).unwrap();
    let b = b_site.write("b.log", log_b().as_bytes());
    b_site.import_ok(&[&b], &["--server", "mirror-b"]);
    (a_site, a, b_site, b)
}

backends! {
    two_servers_logs_add_up_and_a_download_resumed_elsewhere_counts_once => |db: &Db| {
        use crate::servers::{expected_files, expected_servers, log_a, log_b};
        let a = db.write("a.log", log_a().as_bytes());
        let b = db.write("b.log", log_b().as_bytes());
        for _ in 0..2 {
            db.import_ok(&[&a], &["--server", "mirror-a"]);
            db.import_ok(&[&b], &["--server", "mirror-b"]);
            assert_eq!(db.report(), expected_files());
            assert_eq!(db.by_server(), expected_servers());
        }
    };

    servers_figures_do_not_depend_on_order_or_on_pipe_versus_import => |db: &Db| {
        use crate::servers::{expected_files, expected_servers, log_a, log_b};
        let (code, err) = db.pipe_all(log_b().as_bytes(), &["--server", "mirror-b"]);
        assert_eq!(code, 0, "{err}");
        let reversed: String = log_a().lines().rev().map(|l| format!("{l}\n")).collect();
        let a = db.write("a.log", reversed.as_bytes());
        db.import_ok(&[&a], &["--server", "mirror-a"]);
        let b = db.write("b.log", log_b().as_bytes());
        let s = db.import_ok(&[&b], &["--server", "mirror-b"]);
        assert!(s.contains("counted lines: 0 new, 3 already counted before"), "{s}");
        assert_eq!(db.report(), expected_files());
        assert_eq!(db.by_server(), expected_servers());
    };

    a_database_moved_whole_to_either_backend_goes_on_counting_exactly => |db: &Db| {
        use crate::servers::{expected_files, expected_servers, log_a, log_b};
        // Counted into SQLite, moved into this backend, and back again.
        let old = Db::new(Backend::Sqlite).unwrap();
        let (code, err) = old.pipe_all(log_a().as_bytes(), &["--server", "mirror-a"]);
        assert_eq!(code, 0, "{err}");
        let before = old.report();
        let said = migrate(&old, db, &[]);
        assert!(said.contains("had counted nothing: it is now a copy of"), "{said}");
        assert_eq!(db.report(), before);
        // The moved secret and day keys know every line counted before.
        let a = db.write("a.log", log_a().as_bytes());
        let s = db.import_ok(&[&a], &["--server", "mirror-a"]);
        assert!(s.contains("counted lines: 0 new, 2 already counted before"), "{s}");
        let b = db.write("b.log", log_b().as_bytes());
        db.import_ok(&[&b], &["--server", "mirror-b"]);
        assert_eq!(db.report(), expected_files());
        let said = migrate(&old, db, &[]);
        assert!(said.contains("share one secret: 1 day (2026-11-20) merged"), "{said}");
        assert_eq!(db.report(), expected_files());
        assert_eq!(db.by_server(), expected_servers());
        migrate(db, &old, &[]);
        assert_eq!(old.report(), expected_files());
        assert_eq!(old.by_server(), expected_servers());
        // New files, sources and servers after the move get new ids.
        let c = db.write("c.log", line("192.0.2.9", 21, 1, "/c.iso", 200, 7).as_bytes());
        db.import_ok(&[&c], &["--server", "mirror-c"]);
        assert_eq!(db.report()["/c.iso"], json!({"2026-11": month(1, 1, 7)}));
        assert_eq!(db.by_server()["mirror-c"], json!({"2026-11": month(1, 1, 7)}));
        assert_eq!(db.report()["/a.iso"], expected_files()["/a.iso"]);
    };
}

// Two servers that counted apart into SQLite, merged into one database of
// each backend (tests/it/migrate.rs has the SQLite-only variants with
// their messages): the same test code, exact figures.
backends! {
    two_sqlite_servers_merge_into_one_database_exactly_through_the_logs_of_their_open_days => |db: &Db| {
        use crate::servers::{expected_files, expected_servers};
        let (a_site, _, b_site, b) = two_sqlite_servers();
        let said = migrate(&a_site, db, &[]);
        assert!(said.contains("had counted nothing: it is now a copy of"), "{said}");
        let only_a = json!({
            "/a.iso": {"2026-11": month(1, 1, 600)},
            "/b.iso": {"2026-11": month(1, 1, 50)},
        });
        assert_eq!(db.report(), only_a);
        assert_eq!(db.by_server(), json!({"mirror-a": {"2026-11": month(2, 2, 650)}}));
        for _ in 0..2 {
            // B's secret differs: its open day cannot be matched key for
            // key, so it is left to B's log, and said so (twice: no change).
            let (said, err) = migrate_said(&b_site, db, &[]);
            assert!(said.contains("has another secret than"), "{said}");
            assert!(
                err.contains("1 day (2026-11-20) still open in") && err.contains("dlcount-pipe import --db"),
                "{err}"
            );
            assert_eq!(db.report(), only_a);
        }
        // The exact way: B's log of its open day, imported as B's; twice.
        for round in 0..2 {
            let s = db.import_ok(&[&b], &["--server", "mirror-b"]);
            let counted = if round == 0 { "3 new, 0" } else { "0 new, 3" };
            assert!(s.contains(&format!("counted lines: {counted} already counted before")), "{s}");
            assert_eq!(db.report(), expected_files());
            assert_eq!(db.by_server(), expected_servers());
        }
    };

    adding_the_open_days_of_another_secret_is_asked_for_and_done_once => |db: &Db| {
        use crate::servers::{expected_servers, log_a};
        let (_, _, b_site, _) = two_sqlite_servers();
        // A counts into this database itself; B's database is added to it.
        let a = db.write("a.log", log_a().as_bytes());
        db.import_ok(&[&a], &["--server", "mirror-a"]);
        for _ in 0..2 {
            migrate(&b_site, db, &["--add-open-days"]);
            // Client .1's download on both servers cannot be matched across
            // the two secrets: 1 (A's) + 2 (B's) downloads of /a.iso.
            assert_eq!(
                db.report(),
                json!({
                    "/a.iso": {"2026-11": month(3, 4, 2600)},
                    "/b.iso": {"2026-11": month(1, 1, 50)},
                })
            );
            assert_eq!(db.by_server(), expected_servers());
        }
    };
}

/// A logger that runs while a `migrate` rewrites its PostgreSQL database
/// counts on exactly (it fetches its file and server ids again).
#[test]
fn a_pipe_running_through_a_migrate_into_postgresql_counts_on_exactly() {
    use crate::servers::{log_a, log_b};
    let Some(db) = pg_db() else { return };
    // The running logger has cached ids of a file and a server first.
    let mut pipe = db.spawn_pipe(&["--server", "mirror-b"]);
    pipe.write(line("192.0.2.50", 22, 1, "/z.iso", 200, 9).as_bytes());
    super::wait_until("the first line is counted", || {
        let out = db.cmd(&["report", "--json"]).output().unwrap();
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout).unwrap()["/z.iso"].is_object()
    });
    let old = Db::new(Backend::Sqlite).unwrap();
    let (code, err) = old.pipe_all(log_a().as_bytes(), &["--server", "mirror-a"]);
    assert_eq!(code, 0, "{err}");
    let said = migrate(&old, &db, &[]);
    assert!(said.starts_with("migrate: "), "{said}");
    pipe.write(log_b().as_bytes());
    let (code, err) = pipe.finish();
    assert_eq!(code, 0, "{err}");
    // Another secret (the target had counted): its open day is left to
    // the logs; the tables were rewritten all the same.
    assert!(said.contains("has another secret than"), "{said}");
    assert_eq!(
        db.sql_i64("SELECT count(*) FROM meta WHERE name = 'generation'"),
        1
    );
    assert_eq!(
        db.report(),
        json!({"/a.iso": {"2026-11": month(2, 3, 2000)}, "/z.iso": {"2026-11": month(1, 1, 9)}})
    );
    assert_eq!(
        db.by_server(),
        json!({"mirror-b": {"2026-11": month(3, 4, 2009)}})
    );
}

// ---- PostgreSQL only -------------------------------------------------------

fn pg_db() -> Option<Db> {
    Db::new(Backend::Postgres)
}

/// Both backends count one log the same way, figure for figure and in every
/// summary line, also where both differ from the truth (rotated parts).
#[test]
fn both_backends_report_and_summarise_one_log_identically() {
    let Some(pg) = pg_db() else { return };
    let lite = Db::new(Backend::Sqlite).unwrap();
    let g = generate(&GenConfig {
        lines: 40_000,
        seed: 23,
        ..Default::default()
    });
    let quarter = g.lines.len() / 4;
    let mut summaries = Vec::new();
    for db in [&lite, &pg] {
        let (code, err) = db.pipe_all(&bytes_of(&g.lines[..quarter]), &[]);
        assert_eq!(code, 0, "{err}");
        // The rest in 24 rotated parts, then the whole log as one file.
        let parts: Vec<PathBuf> = g.lines[quarter..]
            .chunks(g.lines[quarter..].len().div_ceil(24))
            .enumerate()
            .map(|(i, c)| db.write(&format!("access.log.{i}"), &bytes_of(c)))
            .collect();
        let parts: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
        let a = db.import_ok(&parts, &[]);
        let after_parts = db.report();
        let whole = db.write("whole.log", &bytes_of(&g.lines));
        let b = db.import_ok(&[&whole], &[]);
        summaries.push((a, after_parts, b, db.report(), db.report_plain()));
    }
    assert_eq!(summaries[0], summaries[1]);
    assert_eq!(summaries[1].3, g.answer_detail);
    assert_eq!(summaries[1].4, g.answer_plain);
}

/// Four pipe instances (disjoint shares of one day's lines, as Apache's
/// piped loggers see them across a graceful restart) and imports of an
/// overlapping part, all committing at the same time: exact. (Without the
/// day locks, and the `days` row every batch updates, this fails:
/// concurrent read-modify-writes of one `seen_lines` row lose copies.)
#[test]
fn four_pipes_and_an_import_writing_one_day_at_once_are_exact() {
    let Some(db) = pg_db() else { return };
    let g = generate(&GenConfig {
        lines: 60_000,
        seed: 24,
        days: 1,
        ..Default::default()
    });
    let import_part = db.write(
        "access.log",
        &bytes_of(&g.lines[g.lines.len() / 4..g.lines.len() * 3 / 4]),
    );
    let mut shares: Vec<Vec<u8>> = vec![Vec::new(); 4];
    for (i, l) in g.lines.iter().enumerate() {
        shares[i % 4].extend_from_slice(l);
        shares[i % 4].push(b'\n');
    }
    // The schema and secret exist before the race (several starting at once
    // is its own test below).
    let (code, err) = db.pipe_all(b"", &[]);
    assert_eq!(code, 0, "{err}");
    let mut pipes: Vec<Pipe> = (0..4).map(|_| db.spawn_pipe(&[])).collect();
    // The import three times over (a new run and file each time, so it
    // rewrites every row it covers) while the pipes write the same rows.
    let imports = {
        let args = db.db_args();
        let part = import_part.clone();
        std::thread::spawn(move || {
            (0..3)
                .map(|_| cmd().arg("import").args(&args).arg(&part).output().unwrap())
                .collect::<Vec<Output>>()
        })
    };
    // Each share in 40 pieces, round-robin, so every instance commits many
    // times while the others and the import do.
    let pieces: Vec<Vec<&[u8]>> = shares
        .iter()
        .map(|s| {
            let step = s.len().div_ceil(40);
            let mut out = Vec::new();
            let mut start = 0;
            while start < s.len() {
                let mut end = (start + step).min(s.len());
                while end < s.len() && s[end - 1] != b'\n' {
                    end += 1;
                }
                out.push(&s[start..end]);
                start = end;
            }
            out
        })
        .collect();
    // And a hot spot: 100 lines of which every instance gets a copy in each
    // of the first 8 rounds, so all four update the same rows at once.
    let hot: String = (0..100)
        .map(|i| {
            format!(
                "10.9.0.{i} - - [30/Oct/2026:12:00:00 +0100] \"GET /isos/hot.iso HTTP/1.1\" 206 1000 \"-\" \"aria2/1.37.0\"\n"
            )
        })
        .collect();
    for round in 0..pieces.iter().map(Vec::len).max().unwrap() {
        for (p, piece) in pipes.iter_mut().zip(&pieces) {
            if let Some(bytes) = piece.get(round) {
                p.write(bytes);
            }
            if round < 8 {
                p.write(hot.as_bytes());
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    for out in imports.join().unwrap() {
        assert_succeeded(&out);
    }
    for p in pipes {
        let (code, err) = p.finish();
        assert_eq!(code, 0, "{err}");
    }
    let mut expected = g.answer_detail.clone();
    expected["/isos/hot.iso"] = json!({"2026-10": month(100, 3200, 3_200_000)});
    assert_eq!(db.report(), expected);
    // The figures add up per transaction even when a `seen_lines` row lost
    // a copy to a concurrent writer; the loss shows when a file holding
    // every copy is imported: it would count the lost copies again.
    let mut everything = bytes_of(&g.lines);
    everything.extend_from_slice(hot.repeat(32).as_bytes());
    let all = db.write("everything.log", &everything);
    let s = db.import_ok(&[&all], &[]);
    assert!(s.contains("counted lines: 0 new, "), "{s}");
    assert_eq!(db.report(), expected);
    assert_eq!(
        db.sql_i64("SELECT count(*) FROM days WHERE NOT closed"),
        db.sql_i64("SELECT count(*) FROM day_keys")
    );
}

/// Servers starting at the same moment on an empty database: one schema,
/// one secret, and their counts agree.
#[test]
fn servers_starting_at_once_create_one_schema_and_one_secret() {
    let Some(db) = pg_db() else { return };
    let g = generate(&GenConfig {
        lines: 3_000,
        seed: 25,
        ..Default::default()
    });
    let file = db.write("access.log", &bytes_of(&g.lines));
    let imports: Vec<_> = (0..6)
        .map(|_| {
            db.cmd(&["import"])
                .arg(&file)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for i in imports {
        assert_succeeded(&i.wait_with_output().unwrap());
    }
    assert_eq!(db.sql_i64("SELECT count(*) FROM dlcount_schema"), PG_SCHEMA);
    assert_eq!(
        db.sql_i64("SELECT count(*) FROM meta WHERE name = 'secret'"),
        1
    );
    assert_eq!(db.report(), g.answer_detail);
}

/// No client address, in any spelling, in any table.
#[test]
fn no_client_address_reaches_postgresql() {
    let Some(db) = pg_db() else { return };
    let clients = ["203.0.113.77", "2001:db8::4242", "198.51.100.123"];
    let lines: String = clients
        .iter()
        .enumerate()
        .map(|(i, c)| line(c, 20, i as u32, "/isos/a.iso", 200, 1000))
        .collect();
    let (code, err) = db.pipe_all(lines.as_bytes(), &[]);
    assert_eq!(code, 0, "{err}");
    let file = db.write("access.log", lines.as_bytes());
    db.import_ok(&[&file], &[]);
    let mut c = pg_connect(&db.arg);
    let mut dump = String::new();
    for t in dlcount::store::postgres::schema::TABLES {
        for r in c.query(&format!("SELECT t::text FROM {t} t"), &[]).unwrap() {
            dump.push_str(&r.get::<_, String>(0));
            dump.push('\n');
        }
    }
    assert!(dump.contains("/isos/a.iso"), "{dump}");
    for client in clients {
        let hex: String = client.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!dump.contains(client), "{client} in {dump}");
        assert!(!dump.contains(&hex), "{client} as hex in {dump}");
    }
}

/// `check` names each privilege a least-privileged role lacks, and the
/// logger works once they are granted.
#[test]
fn check_names_the_privileges_the_logger_lacks() {
    let Some(db) = pg_db() else { return };
    // The tables, created by their owner (the admin).
    let (code, err) = db.pipe_all(b"", &[]);
    assert_eq!(code, 0, "{err}");
    let role = format!("{}_logger", db.pg.as_ref().unwrap().name);
    let mut admin = pg_connect(&db.arg);
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}';
             REVOKE ALL ON DATABASE {name} FROM PUBLIC;
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
             REVOKE DELETE ON seen_lines FROM {role};
             REVOKE UPDATE, DELETE ON visitors FROM {role};",
            name = db.pg.as_ref().unwrap().name
        ))
        .unwrap();
    let url = format!("postgres://{role}:pw-{role}@{}", after_at(&db.arg));
    let check = |url: &str| {
        let out = cmd()
            .args(["check", "--db", url, "--state-dir"])
            .arg(db.dir())
            .arg("--root")
            .arg(&db.site.root)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let name = &db.pg.as_ref().unwrap().name;
    let (code, _, err) = check(&url);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        format!(
            "dlcount: check: cannot connect to PostgreSQL at {}, database {name}, as {role}: \
             FATAL: permission denied for database \"{name}\" (User does not have CONNECT privilege.)\n",
            after_at(&db.arg).split('/').next().unwrap()
        )
    );
    admin
        .batch_execute(&format!("GRANT CONNECT ON DATABASE {name} TO {role}"))
        .unwrap();
    let (code, _, err) = check(&url);
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].contains(&format!(
            "role {role} lacks DELETE on table public.seen_lines"
        )),
        "{err}"
    );
    assert!(
        lines[1].contains(&format!(
            "role {role} lacks UPDATE, DELETE on table public.visitors"
        )),
        "{err}"
    );
    assert!(
        lines[2].contains(&format!(
            "role {role} lacks TRUNCATE on table public.day_keys"
        )),
        "{err}"
    );
    assert!(!err.contains(&format!("pw-{role}")), "{err}");
    admin
        .batch_execute(&format!(
            "GRANT DELETE ON seen_lines TO {role}; GRANT UPDATE, DELETE ON visitors TO {role};
             GRANT TRUNCATE ON day_keys TO {role};"
        ))
        .unwrap();
    let (code, out, err) = check(&url);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(
        out.contains(&format!("as {role}, schema public (version {PG_SCHEMA})")),
        "{out}"
    );
    let (code, err) = {
        let mut c = cmd();
        c.args(["--db", &url, "--state-dir"])
            .arg(db.dir())
            .arg("--root")
            .arg(&db.site.root);
        let mut p = Pipe::spawn(c);
        p.write(line("192.0.2.1", 20, 1, "/isos/a.iso", 200, 5).as_bytes());
        p.finish()
    };
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        db.report(),
        json!({"/isos/a.iso": {"2026-11": month(1, 1, 5)}})
    );
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
}

/// A URL without a password takes it from the password file (`PGPASSFILE`
/// here; `~/.pgpass` of the user the logger runs as otherwise), which must
/// be private.
#[test]
fn the_password_comes_from_a_private_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let Some(db) = pg_db() else { return };
    let (code, err) = db.pipe_all(
        line("192.0.2.1", 20, 1, "/isos/a.iso", 200, 5).as_bytes(),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let name = &db.pg.as_ref().unwrap().name;
    let role = format!("{name}_reader");
    let mut admin = pg_connect(&db.arg);
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'pw:{role}';
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .unwrap();
    let hostport = after_at(&db.arg).split('/').next().unwrap();
    let (host, port) = hostport.rsplit_once(':').unwrap();
    let url = format!("postgres://{role}@{hostport}/{name}");
    let file = db.write(
        "pgpass",
        format!("{host}:{port}:{name}:{role}:pw\\:{role}\n").as_bytes(),
    );
    let report = |mode: u32| {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        cmd()
            .args(["report", "--json", "--db", &url])
            .env("PGPASSFILE", &file)
            .output()
            .unwrap()
    };
    let out = report(0o600);
    assert_succeeded(&out);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({"/isos/a.iso": {"2026-11": 1}})
    );
    // Readable by others: ignored, as libpq ignores it.
    let out = report(0o644);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("as {role}: ")), "{err}");
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
}

/// One text value from SQL, on PostgreSQL.
fn pg_text(url: &str, sql: &str) -> String {
    pg_connect(url).query_one(sql, &[]).unwrap().get(0)
}

/// The columns and constraints of the tables in schema public, one line each.
fn pg_tables(url: &str) -> String {
    pg_text(
        url,
        "SELECT string_agg(l, E'\\n' ORDER BY l) FROM (
             SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
                    || ' ' || coalesce(column_default, '') || ' ' || is_identity AS l
               FROM information_schema.columns WHERE table_schema = 'public'
             UNION ALL
             SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid)
               FROM pg_constraint WHERE connamespace = 'public'::regnamespace) t",
    )
}

/// A database at PostgreSQL schema 1 (the first release of the backend),
/// with days, figures, open days' keys and a secret, upgraded in place by
/// the current binary: the version is the current one, every figure, the
/// secret and each open day's key are unchanged, and counting goes on
/// exactly (its lines again add nothing; a new line adds one).
///
/// Schema 1's data is made by counting with this binary and then taking
/// migrations 3 and 2 back exactly (their tables and columns dropped, their
/// version rows deleted: they add nothing else); that the result is schema 1 is
/// checked against a database made by applying `0001_create.sql` alone, as
/// `schema.rs` applies it, column for column and constraint for constraint.
#[test]
fn a_schema_1_database_is_upgraded_in_place_and_counts_on_exactly() {
    let Some(db) = pg_db() else { return };
    assert_eq!(PG_SCHEMA, 4, "a new migration: take it back below too");
    let reference = PgDb::create(&admin_url().unwrap());
    {
        let mut c = pg_connect(&reference.url);
        let mut tx = c.transaction().unwrap();
        tx.batch_execute(include_str!(
            "../../src/store/postgres/migrations/0001_create.sql"
        ))
        .unwrap();
        tx.execute("INSERT INTO dlcount_schema(version) VALUES (1)", &[])
            .unwrap();
        tx.commit().unwrap();
    }
    let g = generated();
    let (requests, downloads) = (
        total(&g.answer_detail, "requests"),
        total(&g.answer_detail, "downloads"),
    );
    let half = g.lines.len() / 2;
    let (code, err) = db.pipe_all(&bytes_of(&g.lines[..half]), &[]);
    assert_eq!(code, 0, "{err}");
    let file = db.write("access.log", &bytes_of(&g.lines));
    db.import_ok(&[&file], &[]);
    assert_eq!(db.report(), g.answer_detail);
    let keys_sql =
        "SELECT string_agg(day || ':' || encode(key, 'hex'), ',' ORDER BY day) FROM day_keys";
    let secret_sql = "SELECT encode(value, 'hex') FROM meta WHERE name = 'secret'";
    let (keys, secret) = (pg_text(&db.arg, keys_sql), pg_text(&db.arg, secret_sql));
    let open_days = db.sql_i64("SELECT count(*) FROM days WHERE NOT closed");
    assert!(open_days > 1, "{open_days}");
    assert_eq!(db.sql_i64("SELECT count(*) FROM day_keys"), open_days);
    // Migration 2 taken back: schema 1 as its binary left it.
    db.sql(
        "ALTER TABLE visitors DROP COLUMN ranges, DROP COLUMN got, DROP COLUMN complete;
         ALTER TABLE daily DROP COLUMN completed; ALTER TABLE days DROP COLUMN completion;
         DELETE FROM dlcount_schema WHERE version = 4;
         DROP TABLE network_days; DROP TABLE facts_daily;
         ALTER TABLE visitors DROP COLUMN class, DROP COLUMN country;
         DELETE FROM dlcount_schema WHERE version = 3;
         DROP TABLE server_daily; DROP TABLE servers;
         ALTER TABLE visitors DROP COLUMN servers;
         DELETE FROM dlcount_schema WHERE version = 2;",
    );
    assert_eq!(pg_tables(&db.arg), pg_tables(&reference.url));
    assert_eq!(db.sql_i64("SELECT max(version) FROM dlcount_schema"), 1);
    // Reading does not upgrade (a report runs with the rights it has)…
    assert_eq!(db.report(), g.answer_detail);
    assert_eq!(db.sql_i64("SELECT max(version) FROM dlcount_schema"), 1);
    // …the first writer does, and counts nothing twice.
    let again = db.import_ok(&[&file], &[]);
    assert!(
        again.contains(&format!("downloads: 0 new, {downloads} already known")),
        "{again}"
    );
    assert!(
        again.contains(&format!(
            "counted lines: 0 new, {requests} already counted before"
        )),
        "{again}"
    );
    assert_eq!(
        db.sql_i64("SELECT max(version) FROM dlcount_schema"),
        PG_SCHEMA
    );
    assert_eq!(db.sql_i64("SELECT count(*) FROM dlcount_schema"), PG_SCHEMA);
    assert_eq!(db.report(), g.answer_detail);
    assert_eq!(db.report_plain(), g.answer_plain);
    assert_eq!(pg_text(&db.arg, secret_sql), secret);
    assert_eq!(pg_text(&db.arg, keys_sql), keys);
    // The lines only the import saw, live now: already counted (live
    // copies of lines the pipe saw before would add up, as before).
    let rest = g.lines.len() - half;
    let (code, err) = db.pipe_all(&bytes_of(&g.lines[half..]), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("end of input: {rest} lines, 0 counted, ")),
        "{err}"
    );
    assert_eq!(db.report(), g.answer_detail);
    // A new client on a counted day is one more download, as before.
    let extra = line("192.0.2.250", 20, 1, "/isos/new.iso", 200, 77);
    let (code, err) = db.pipe_all(extra.as_bytes(), &["--server", "mirror-a"]);
    assert_eq!(code, 0, "{err}");
    let mut expected = g.answer_detail.clone();
    expected["/isos/new.iso"] = json!({"2026-11": month(1, 1, 77)});
    assert_eq!(db.report(), expected);
    assert_eq!(
        db.by_server(),
        json!({"mirror-a": {"2026-11": month(1, 1, 77)}})
    );
}

/// The session timeouts of the module header of `connect.rs`, read back
/// from the server on a connection made by the store's own connect path;
/// a URL's own `options` keep their value.
#[test]
fn a_live_connection_has_the_session_timeouts_set() {
    let Some(db) = pg_db() else { return };
    let show = |c: &mut postgres::Client, what: &str| -> String {
        c.query_one(&format!("SHOW {what}"), &[]).unwrap().get(0)
    };
    let mut c = pg_connect(&db.arg);
    assert_eq!(show(&mut c, "statement_timeout"), "1min");
    assert_eq!(show(&mut c, "idle_in_transaction_session_timeout"), "2min");
    assert_eq!(show(&mut c, "application_name"), "dlcount-pipe");
    let sep = if db.arg.contains('?') { '&' } else { '?' };
    let own = format!("{}{sep}options=-c%20statement_timeout%3D7s", db.arg);
    let mut c = pg_connect(&own);
    assert_eq!(show(&mut c, "statement_timeout"), "7s");
    assert_eq!(show(&mut c, "idle_in_transaction_session_timeout"), "2min");
}

/// The host part of a URL (after any user info).
fn after_at(url: &str) -> &str {
    let rest = &url[url.find("://").unwrap() + 3..];
    match rest.find('@') {
        Some(at) if at < rest.find('/').unwrap_or(rest.len()) => &rest[at + 1..],
        _ => rest,
    }
}

#[test]
fn a_newer_schema_is_refused_with_both_versions() {
    let Some(db) = pg_db() else { return };
    let (code, err) = db.pipe_all(
        line("192.0.2.1", 20, 1, "/isos/a.iso", 200, 5).as_bytes(),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    db.sql("INSERT INTO dlcount_schema(version) VALUES (99)");
    let out = db.cmd(&["report"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "was written by a newer dlcount (PostgreSQL schema 99, this one knows {PG_SCHEMA})"
        )),
        "{err}"
    );
    let (code, err) = db.import(&[&db.write("a.log", b"")], &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("PostgreSQL schema 99"), "{err}");
}

#[test]
fn an_unreachable_server_is_named_without_the_password() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://dl:hunter2@127.0.0.1:{port}/counts");
    let out = cmd().args(["report", "--db", &url]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}, database counts, as dl"
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// A server (or anything between) that accepts the connection and then
/// never answers: the client library would wait for its first byte forever
/// (its connect timeout covers the TCP connect only); the handshake's
/// deadline (`connect_timeout` per host, plus one for the `SET`) ends it.
#[test]
fn a_server_that_accepts_and_never_answers_is_given_up_on_in_time() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let url = format!("postgres://dl:hunter2@127.0.0.1:{port}/counts?connect_timeout=1");
    let start = std::time::Instant::now();
    let mut child = cmd()
        .args(["report", "--db", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Without the deadline `report` waits for good: kill it, fail the test.
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("report still waits for the server after 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let took = start.elapsed();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "cannot connect to PostgreSQL at 127.0.0.1:{port}, database counts, as dl: \
             no answer within 2 s (the connection was accepted, the handshake never finished)"
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(took >= std::time::Duration::from_secs(2), "{took:?}");
    assert!(took < std::time::Duration::from_secs(8), "{took:?}");
}

/// TLS with the CA that signed the test server's certificate: verify-full
/// and verify-ca work; another CA is refused by name.
#[test]
fn tls_verifies_the_server_against_the_ca_file() {
    let Some(db) = pg_db() else { return };
    let Ok(ca) = std::env::var("DLCOUNT_TEST_PG_CA") else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("DLCOUNT_TEST_PG_CA is unset and CI=true (tests/e2e/with_pg.sh sets it)");
        }
        say_skipped(
            "the PostgreSQL TLS test: DLCOUNT_TEST_PG_CA (the CA of the test server's \
             certificate) is unset",
        );
        return;
    };
    let (code, err) = db.pipe_all(
        line("192.0.2.1", 20, 1, "/isos/a.iso", 200, 5).as_bytes(),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let sep = if db.arg.contains('?') { '&' } else { '?' };
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = format!("{}{sep}sslmode={mode}", db.arg);
        let out = cmd()
            .args(["report", "--json", "--db", &url, "--pg-ca-file", &ca])
            .output()
            .unwrap();
        assert_succeeded(&out);
    }
    // A CA that did not sign it (a fresh self-signed one).
    let other = db.write("other-ca.pem", OTHER_CA.as_bytes());
    let url = format!("{}{sep}sslmode=verify-full", db.arg);
    let out = cmd()
        .args(["report", "--db", &url, "--pg-ca-file"])
        .arg(&other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
}

/// A self-signed CA certificate of nothing (`openssl req -x509 -newkey ec
/// -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=other-ca -days 36500`).
const OTHER_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBfjCCASOgAwIBAgIUX6zI+y6anF8efPNj5bVZH6NdfrMwCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIb3RoZXItY2EwIBcNMjYxMjAzMTM1NzU1WhgPMjEyNjExMDkx
MzU3NTVaMBMxETAPBgNVBAMMCG90aGVyLWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAE8zXd5cVlEjTsiqXQMSwL5klVrJKO/KCNN1S9figz2k9fakKVsfKNfZx8
OjHdYldTJK1/HINoldCdgIqoyHmZrqNTMFEwHQYDVR0OBBYEFENKU1hS88Dk9HB1
I+bdn1qITwlqMB8GA1UdIwQYMBaAFENKU1hS88Dk9HB1I+bdn1qITwlqMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAOYNhqIAkQ/JATeqUnVZf1Nq
g55pICNuE515Kdc4aR8qAiEA6ewBapo5Bs1A3PUijov+rcGTYP4jhZy7cnQIydiZ
Ww8=
-----END CERTIFICATE-----
";

/// A line of `/isos/a.iso` on 2026-11-20 from `ip` at second `sec` with
/// User-Agent `ua` (real strings, see tests/cases/user-agents.txt).
fn ua_line(ip: &str, sec: u32, ua: &str) -> String {
    format!(
        "{ip} - - [20/Nov/2026:10:00:{sec:02} +0100] \"GET /isos/a.iso HTTP/1.1\" 200 1000 \"-\" \"{ua}\"\n"
    )
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const CURL: &str = "curl/8.5.0";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const GPTBOT: &str =
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)";

/// Four downloads: a bot's, curl's and Firefox's lines from one client
/// (browser: a human signal wins), two crawlers (bot), curl and an empty
/// User-Agent over IPv6 (downloader), and "-" alone (other).
fn class_lines() -> Vec<String> {
    vec![
        ua_line("192.0.2.7", 1, GOOGLEBOT),
        ua_line("192.0.2.7", 2, CURL),
        ua_line("192.0.2.7", 3, FIREFOX),
        ua_line("192.0.2.8", 4, GOOGLEBOT),
        ua_line("192.0.2.8", 5, GPTBOT),
        ua_line("2001:db8::7", 6, ""),
        ua_line("2001:db8::7", 7, CURL),
        ua_line("198.51.100.200", 8, "-"),
    ]
}

fn classes(browser: u64, downloader: u64, bot: u64, other: u64) -> Value {
    json!({"/isos/a.iso": {"2026-11": {
        "browser": browser, "downloader": downloader, "bot": bot, "other": other
    }}})
}

impl Db {
    /// `report --json --by WHAT`.
    pub fn by(&self, what: &str) -> Value {
        self.report_with(&["--json", "--by", what])
    }
}

fn test_mmdb() -> PathBuf {
    // Built by scripts/make-test-mmdb.py (not real data): 192.0.2.0/24 DE,
    // 198.51.100.0/24 FR, 2001:db8::/33 NL.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/countries.mmdb")
}

backends! {
    client_classes_do_not_depend_on_order_or_source => |db: &Db| {
        let lines = class_lines();
        let want = classes(1, 1, 1, 1);
        // One line per import (one transaction each), in order…
        for (i, l) in lines.iter().enumerate() {
            let f = db.write(&format!("l{i}.log"), l.as_bytes());
            db.import_ok(&[&f], &[]);
        }
        assert_eq!(db.by("class"), want);
        // …then all of them again, reversed, through the pipe: nothing moves.
        let reversed: String = lines.iter().rev().cloned().collect();
        let (code, err) = db.pipe_all(reversed.as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.by("class"), want);
        // Reversed, one line per pipe run, into a fresh database.
        let other = Db::new(db.backend).unwrap();
        for l in lines.iter().rev() {
            let (code, err) = other.pipe_all(l.as_bytes(), &[]);
            assert_eq!(code, 0, "{err}");
        }
        assert_eq!(other.by("class"), want);
        let whole = other.write("all.log", lines.concat().as_bytes());
        other.import_ok(&[&whole], &[]);
        assert_eq!(other.by("class"), want);
        assert_eq!(other.report_plain(), json!({"/isos/a.iso": {"2026-11": 4}}));
    };

    a_download_moves_to_a_stronger_class_and_leaves_the_weaker => |db: &Db| {
        let steps = [
            (ua_line("192.0.2.7", 1, GOOGLEBOT), classes(0, 0, 1, 0)),
            (ua_line("192.0.2.7", 2, "-"), classes(0, 0, 0, 1)),
            (ua_line("192.0.2.7", 3, CURL), classes(0, 1, 0, 0)),
            (ua_line("192.0.2.7", 4, GPTBOT), classes(0, 1, 0, 0)),
            (ua_line("192.0.2.7", 5, FIREFOX), classes(1, 0, 0, 0)),
            (ua_line("192.0.2.7", 6, GOOGLEBOT), classes(1, 0, 0, 0)),
        ];
        for (l, want) in steps {
            let (code, err) = db.pipe_all(l.as_bytes(), &[]);
            assert_eq!(code, 0, "{err}");
            assert_eq!(db.by("class"), want, "after {l}");
        }
    };

    countries_come_from_geoip_and_a_code_wins_over_none => |db: &Db| {
        let mmdb = test_mmdb();
        let geoip = ["--geoip", mmdb.to_str().unwrap()];
        let lines = [
            ua_line("192.0.2.7", 1, CURL),
            ua_line("2001:db8::7", 2, CURL),
            ua_line("10.0.0.1", 3, CURL),
            ua_line("198.51.100.200", 4, CURL),
        ];
        // Without --geoip nothing is looked up: every download is unknown.
        let (code, err) = db.pipe_all(lines[..2].concat().as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        let unknown = |n: u64| json!({"/isos/a.iso": {"2026-11": {"unknown": n}}});
        assert_eq!(db.by("country"), unknown(2));
        // Imported with it, the same downloads get their codes, once.
        let f = db.write("access.log", lines.concat().as_bytes());
        for _ in 0..2 {
            db.import_ok(&[&f], &geoip);
            assert_eq!(
                db.by("country"),
                json!({"/isos/a.iso": {"2026-11": {"DE": 1, "FR": 1, "NL": 1, "unknown": 1}}})
            );
        }
        // In reverse order through the pipe, into a fresh database.
        let other = Db::new(db.backend).unwrap();
        let reversed: String = lines.iter().rev().cloned().collect();
        let (code, err) = other.pipe_all(reversed.as_bytes(), &geoip);
        assert_eq!(code, 0, "{err}");
        assert_eq!(other.by("country"), db.by("country"));
        // A file that is not a MaxMind DB is refused, saying what to use.
        let dat = db.write("GeoIP.dat", b"legacy");
        let (code, err) = db.import(&[&f], &["--geoip", dat.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("legacy .dat format"), "{err}");
    };

    facts_of_downloads_counted_before_the_upgrade_stay_unknown => |db: &Db| {
        let (code, err) = db.pipe_all(class_lines()[..5].concat().as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.by("class")["/isos/a.iso"]["2026-11"]["browser"], json!(1));
        // What a database counted before the upgrade looks like.
        db.sql("UPDATE visitors SET class = -1, country = -1; DELETE FROM facts_daily;");
        let unknown = |browser: u64, downloader: u64, unknown: u64| json!({"/isos/a.iso": {"2026-11": {
            "browser": browser, "downloader": downloader, "bot": 0, "other": 0, "unknown": unknown
        }}});
        assert_eq!(db.by("class"), unknown(0, 0, 2));
        // A new line of such a download cannot make it known (its earlier
        // lines' classes are lost); a new download is known.
        let more = format!("{}{}", ua_line("192.0.2.8", 9, FIREFOX), ua_line("192.0.2.99", 9, CURL));
        let (code, err) = db.pipe_all(more.as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.by("class"), unknown(0, 1, 2));
        assert_eq!(db.report_plain(), json!({"/isos/a.iso": {"2026-11": 3}}));
    };

    facts_move_with_migrate_and_go_on_exactly => |db: &Db| {
        let old = Db::new(Backend::Sqlite).unwrap();
        let mmdb = test_mmdb();
        let geoip = ["--geoip", mmdb.to_str().unwrap()];
        let lines = class_lines();
        let (code, err) = old.pipe_all(lines[..4].concat().as_bytes(), &geoip);
        assert_eq!(code, 0, "{err}");
        let said = migrate(&old, db, &[]);
        assert!(said.contains("had counted nothing: it is now a copy of"), "{said}");
        assert_eq!(db.by("class"), old.by("class"));
        assert_eq!(db.by("country"), old.by("country"));
        // The moved downloads keep their class: the rest of the lines move
        // them exactly as in one database.
        let (code, err) = db.pipe_all(lines[4..].concat().as_bytes(), &geoip);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.by("class"), classes(1, 1, 1, 1));
        assert_eq!(
            db.by("country"),
            json!({"/isos/a.iso": {"2026-11": {"DE": 2, "FR": 1, "NL": 1}}})
        );
    };
}

backends! {
    network_coverage_is_a_union_of_days_and_counts_ipv6_apart => |db: &Db| {
        // 192.0.2.x and 192.0.3.x share the /10 768; 10.0.0.1 is network 40,
        // 0.0.0.1 network 0; two IPv6 downloads; "-" a host name (none).
        let lines = [
            ua_line("192.0.2.7", 1, CURL),
            ua_line("192.0.3.9", 2, CURL),
            ua_line("10.0.0.1", 3, CURL),
            ua_line("2001:db8::7", 4, CURL),
            ua_line("2001:db8::8", 5, CURL),
            ua_line("::ffff:192.0.2.200", 6, CURL),
            ua_line("crawler.example.org", 7, CURL),
        ];
        let next_day = "0.0.0.1 - - [21/Nov/2026:10:00:00 +0100] \"GET /isos/b.iso HTTP/1.1\" 200 10 \"-\" \"curl/8.5.0\"\n";
        let want = json!({"2026-11": {"ipv4_networks": 3, "ipv6_downloads": 2}});
        let reversed: String = lines.iter().rev().cloned().collect();
        let (code, err) = db.pipe_all(format!("{reversed}{next_day}").as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.by("network"), want);
        let f = db.write("access.log", format!("{next_day}{}", lines.concat()).as_bytes());
        db.import_ok(&[&f], &[]);
        assert_eq!(db.by("network"), want);
        let out = db.cmd(&["report", "--by", "network", "--csv"]).output().unwrap();
        assert_succeeded(&out);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "month,ipv4_networks,ipv6_downloads\n2026-11,3,2\n");
        // The map moves with migrate.
        let other = Db::new(Backend::Sqlite).unwrap();
        migrate(db, &other, &[]);
        assert_eq!(other.by("network"), want);
    };
}

/// A line of `/isos/a.iso` on 2026-11-20 from `ip` at second `sec` with
/// the Referer `referer`.
fn ref_line(ip: &str, sec: u32, referer: &str) -> String {
    format!(
        "{ip} - - [20/Nov/2026:10:00:{sec:02} +0100] \"GET /isos/a.iso HTTP/1.1\" 206 100 \"{referer}\" \"curl/8.5.0\"\n"
    )
}

backends! {
    requests_by_referring_host_count_each_line_once => |db: &Db| {
        let twice = ref_line("192.0.2.10", 6, "https://www.google.com/");
        let lines = [
            ref_line("192.0.2.7", 1, "https://www.google.com/search?q=linuxvillage+iso"),
            ref_line("192.0.2.7", 2, "https://Downloads.Example.ORG/isos/"),
            ref_line("192.0.2.8", 3, "-"),
            ref_line("192.0.2.8", 4, "http://user:secret@forum.example.net:8080/t/1"),
            ref_line("192.0.2.9", 5, "https://www.google.com/"),
            twice.clone(),
            twice,
        ];
        let want = json!({"/isos/a.iso": {"2026-11": {
            "direct": 1, "downloads.example.org": 1, "forum.example.net": 1, "www.google.com": 4
        }}});
        let reversed: String = lines.iter().rev().cloned().collect();
        let (code, err) = db.pipe_all(reversed.as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.by("referer"), want);
        let f = db.write("access.log", lines.concat().as_bytes());
        for _ in 0..2 {
            db.import_ok(&[&f], &[]);
            assert_eq!(db.by("referer"), want);
        }
        assert_eq!(db.report(), json!({"/isos/a.iso": {"2026-11": month(4, 7, 700)}}));
        // One line per import run into a fresh database: the same.
        let other = Db::new(db.backend).unwrap();
        for (i, l) in lines.iter().enumerate() {
            let f = other.write(&format!("l{i}.log"), l.as_bytes());
            other.import_ok(&[&f], &[]);
        }
        // (Split over files, the two identical lines are one copy each:
        // an imported file counts its own copies, as for requests.)
        let mut split = want.clone();
        split["/isos/a.iso"]["2026-11"]["www.google.com"] = json!(3);
        assert_eq!(other.by("referer"), split);
        let mine = db.report_with(&["--json", "--by", "referer", "--site-host", "DOWNLOADS.example.org."]);
        assert_eq!(
            mine,
            json!({"/isos/a.iso": {"2026-11": {
                "direct": 1, "this site": 1, "forum.example.net": 1, "www.google.com": 4
            }}})
        );
        let out = db.cmd(&["report", "--by", "referer", "--csv"]).output().unwrap();
        assert_succeeded(&out);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "path,month,referer,requests\n/isos/a.iso,2026-11,direct,1\n\
             /isos/a.iso,2026-11,downloads.example.org,1\n/isos/a.iso,2026-11,forum.example.net,1\n\
             /isos/a.iso,2026-11,www.google.com,4\n"
        );
    };
}

/// A line of the `dlcount` format (`combined` and `"%{Content-Range}o"`)
/// on 2026-11-`day` from `ip` at second `sec`.
#[allow(clippy::too_many_arguments)]
fn cr_line(
    ip: &str,
    day: u32,
    sec: u32,
    method: &str,
    path: &str,
    status: u16,
    bytes: u64,
    range: &str,
) -> String {
    format!(
        "{ip} - - [{day}/Nov/2026:10:00:{sec:02} +0100] \"{method} {path} HTTP/1.1\" {status} {bytes} \"-\" \"aria2/1.37.0\" \"{range}\"\n"
    )
}

/// The issue's shapes of download of the 1,000-byte `/isos/c.iso`, as
/// (client, lines): A tiles the file with four segments (complete); B's
/// two overlapping ranges cover 60 % (not); C only asks HEAD (not); D
/// aborted after 300 bytes (not); E resumed the same day (complete); F
/// resumed the next day (neither day); G fetched a file that is not under
/// the root (unknown).
fn completion_lines() -> Vec<String> {
    let c = "/isos/c.iso";
    vec![
        cr_line("192.0.2.1", 20, 1, "GET", c, 206, 250, "bytes 0-249/1000"),
        cr_line("192.0.2.1", 20, 2, "GET", c, 206, 250, "bytes 250-499/1000"),
        cr_line("192.0.2.1", 20, 3, "GET", c, 206, 250, "bytes 500-749/1000"),
        cr_line("192.0.2.1", 20, 4, "GET", c, 206, 250, "bytes 750-999/1000"),
        cr_line("192.0.2.2", 20, 5, "GET", c, 206, 400, "bytes 0-399/1000"),
        cr_line("192.0.2.2", 20, 6, "GET", c, 206, 400, "bytes 200-599/1000"),
        cr_line("192.0.2.3", 20, 7, "HEAD", c, 200, 300, "-"),
        cr_line("192.0.2.4", 20, 8, "GET", c, 200, 300, "-"),
        cr_line("192.0.2.5", 20, 9, "GET", c, 200, 300, "-"),
        cr_line(
            "192.0.2.5",
            20,
            10,
            "GET",
            c,
            206,
            700,
            "bytes 300-999/1000",
        ),
        cr_line("192.0.2.6", 20, 11, "GET", c, 200, 300, "-"),
        cr_line(
            "192.0.2.6",
            21,
            12,
            "GET",
            c,
            206,
            700,
            "bytes 300-999/1000",
        ),
        cr_line("192.0.2.7", 20, 13, "GET", "/isos/gone.iso", 200, 1000, "-"),
    ]
}

impl Db {
    /// `report ARGS…` parsed as JSON.
    pub fn report_json(&self, args: &[&str]) -> Value {
        self.report_with(args)
    }

    /// The 1,000-byte file of [`completion_lines`] under the root.
    fn put_file(&self) {
        let dir = self.site.root.join("isos");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("c.iso"), vec![7u8; 1000]).unwrap();
    }
}

fn day_figures(downloads: u64, requests: u64, bytes: u64, completed: Option<u64>) -> Value {
    json!({"downloads": downloads, "requests": requests, "bytes": bytes, "completed": completed})
}

/// What [`completion_lines`] give, per file and day.
fn completion_days() -> Value {
    json!({
        "/isos/c.iso": {
            "2026-11-20": day_figures(6, 11, 3700, Some(2)),
            "2026-11-21": day_figures(1, 1, 700, Some(0)),
        },
        "/isos/gone.iso": {"2026-11-20": day_figures(1, 1, 1000, None)},
    })
}

backends! {
    completed_downloads_are_exact_in_any_order_and_source => |db: &Db| {
        db.put_file();
        let lines = completion_lines();
        let fmt = ["--format", "dlcount"];
        let want_months = json!({"/isos/c.iso": {"2026-11": 2}});
        let (code, err) = db.pipe_all(lines.concat().as_bytes(), &fmt);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.report_json(&["--json", "--daily"]), completion_days());
        assert_eq!(db.report_json(&["--json", "--completed"]), want_months);
        // report --json is what it always was.
        assert_eq!(
            db.report_plain(),
            json!({"/isos/c.iso": {"2026-11": 7}, "/isos/gone.iso": {"2026-11": 1}})
        );
        // Re-imported (with the root), nothing moves.
        let root = db.site.root.to_str().unwrap().to_string();
        let with_root = ["--format", "dlcount", "--root", root.as_str()];
        let f = db.write("access.log", lines.concat().as_bytes());
        for _ in 0..2 {
            db.import_ok(&[&f], &with_root);
            assert_eq!(db.report_json(&["--json", "--daily"]), completion_days());
        }
        // Reversed through the pipe, into a fresh database.
        let other = Db::new(db.backend).unwrap();
        other.put_file();
        let reversed: String = lines.iter().rev().cloned().collect();
        let (code, err) = other.pipe_all(reversed.as_bytes(), &fmt);
        assert_eq!(code, 0, "{err}");
        assert_eq!(other.report_json(&["--json", "--daily"]), completion_days());
        // One line per import (one transaction each), in a shuffled order.
        let third = Db::new(db.backend).unwrap();
        third.put_file();
        let order = [7, 2, 12, 0, 9, 5, 3, 11, 1, 8, 4, 10, 6];
        for (n, &i) in order.iter().enumerate() {
            let f = third.write(&format!("l{n}.log"), lines[i].as_bytes());
            third.import_ok(&[&f], &with_root);
        }
        assert_eq!(third.report_json(&["--json", "--daily"]), completion_days());
        assert_eq!(third.report_json(&["--json", "--completed"]), want_months);
        // The CSV and the table say unknown as such.
        let out = db.cmd(&["report", "--completed", "--csv"]).output().unwrap();
        assert_succeeded(&out);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "path,month,downloads,completed\n/isos/c.iso,2026-11,7,2\n/isos/gone.iso,2026-11,1,\n"
        );
    };

    an_import_without_a_root_knows_no_completion => |db: &Db| {
        db.put_file();
        let f = db.write("access.log", completion_lines().concat().as_bytes());
        db.import_ok(&[&f], &["--format", "dlcount"]);
        let mut want = completion_days();
        want["/isos/c.iso"]["2026-11-20"]["completed"] = Value::Null;
        want["/isos/c.iso"]["2026-11-21"]["completed"] = Value::Null;
        assert_eq!(db.report_json(&["--json", "--daily"]), want);
        assert_eq!(db.report_json(&["--json", "--completed"]), json!({}));
        // The pipe with its root then knows the sizes: the ranges kept so
        // far count, and each download completes once.
        let (code, err) = db.pipe_all(completion_lines().concat().as_bytes(), &["--format", "dlcount"]);
        assert_eq!(code, 0, "{err}");
        let out = db.cmd(&["report", "--json", "--daily"]).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["/isos/c.iso"]["2026-11-20"]["completed"], json!(2));
        assert_eq!(v["/isos/c.iso"]["2026-11-21"]["completed"], json!(0));
    };

    without_content_range_the_bytes_count_capped_and_head_never => |db: &Db| {
        db.put_file();
        let c = "/isos/c.iso";
        // `combined`: no Content-Range. Two halves (complete by the bytes
        // rule, even from one place: its documented limit), one 999-byte
        // download (not), a HEAD of 1,000 bytes and 999 (not: HEAD covers
        // nothing), a 1,300-byte %O of a whole file with headers (complete).
        let lines = [
            line("192.0.2.1", 20, 1, c, 200, 500),
            line("192.0.2.1", 20, 2, c, 206, 500),
            line("192.0.2.2", 20, 3, c, 200, 999),
            format!("192.0.2.3 - - [20/Nov/2026:10:00:04 +0100] \"HEAD {c} HTTP/1.1\" 200 1000 \"-\" \"-\"\n"),
            line("192.0.2.3", 20, 5, c, 206, 999),
            line("192.0.2.4", 20, 6, c, 200, 1300),
        ];
        let (code, err) = db.pipe_all(lines.concat().as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            db.report_json(&["--json", "--daily"])["/isos/c.iso"]["2026-11-20"]["completed"],
            json!(2)
        );
    };

    completion_of_days_counted_before_the_upgrade_stays_unknown => |db: &Db| {
        db.put_file();
        let lines = completion_lines();
        let fmt = ["--format", "dlcount"];
        // Day 20 counted by a dlcount without completion: its first lines.
        let (code, err) = db.pipe_all(lines[..5].concat().as_bytes(), &fmt);
        assert_eq!(code, 0, "{err}");
        // The schema before (SQLite 5, PostgreSQL 3), as its binary left it.
        match db.backend {
            Backend::Sqlite => db.sql(
                "ALTER TABLE visitors DROP COLUMN ranges; ALTER TABLE visitors DROP COLUMN got;
                 ALTER TABLE visitors DROP COLUMN complete; ALTER TABLE daily DROP COLUMN completed;
                 ALTER TABLE days DROP COLUMN completion; PRAGMA user_version = 5;",
            ),
            Backend::Postgres => db.sql(
                "ALTER TABLE visitors DROP COLUMN ranges, DROP COLUMN got, DROP COLUMN complete;
                 ALTER TABLE daily DROP COLUMN completed; ALTER TABLE days DROP COLUMN completion;
                 DELETE FROM dlcount_schema WHERE version = 4;",
            ),
        }
        // The upgraded logger counts the rest: day 20 stays unknown (its
        // downloads' earlier bytes were not kept), day 21 is known.
        let (code, err) = db.pipe_all(lines[5..].concat().as_bytes(), &fmt);
        assert_eq!(code, 0, "{err}");
        let mut want = completion_days();
        want["/isos/c.iso"]["2026-11-20"]["completed"] = Value::Null;
        assert_eq!(db.report_json(&["--json", "--daily"]), want);
        assert_eq!(db.report_json(&["--json", "--completed"]), json!({}));
        match db.backend {
            Backend::Sqlite => assert_eq!(db.sql_i64("PRAGMA user_version"), 6),
            Backend::Postgres => {
                assert_eq!(db.sql_i64("SELECT max(version) FROM dlcount_schema"), 4)
            }
        }
    };

    completion_moves_with_migrate_both_ways => |db: &Db| {
        db.put_file();
        let lines = completion_lines();
        let fmt = ["--format", "dlcount"];
        let old = Db::new(Backend::Sqlite).unwrap();
        old.put_file();
        // Half of each download's lines before the move, the rest after.
        let (first, rest): (Vec<_>, Vec<_>) =
            lines.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let first: String = first.into_iter().map(|(_, l)| l.clone()).collect();
        let rest: String = rest.into_iter().map(|(_, l)| l.clone()).collect();
        let (code, err) = old.pipe_all(first.as_bytes(), &fmt);
        assert_eq!(code, 0, "{err}");
        migrate(&old, db, &[]);
        let (code, err) = db.pipe_all(rest.as_bytes(), &fmt);
        assert_eq!(code, 0, "{err}");
        assert_eq!(db.report_json(&["--json", "--daily"]), completion_days());
        // And back into a fresh SQLite database.
        let back = Db::new(Backend::Sqlite).unwrap();
        migrate(db, &back, &[]);
        assert_eq!(back.report_json(&["--json", "--daily"]), completion_days());
    };
}

backends! {
    the_pages_figures_are_the_same_in_any_order_and_on_both_backends => |db: &Db| {
        // Four downloads on 2026-11-20 (browser, bot, downloader over IPv6,
        // other) and one more on 2026-10-31 by a bot; read reversed by the
        // pipe, then re-imported in order: nothing moves.
        let mut lines = class_lines();
        lines.push(
            "192.0.2.50 - - [31/Oct/2026:23:00:00 +0100] \"GET /isos/b.iso HTTP/1.1\" 200 500 \"-\" \"AhrefsBot/7.0\"\n"
                .to_string(),
        );
        let reversed: String = lines.iter().rev().cloned().collect();
        let (code, err) = db.pipe_all(reversed.as_bytes(), &[]);
        assert_eq!(code, 0, "{err}");
        let f = db.write("access.log", lines.concat().as_bytes());
        db.import_ok(&[&f], &[]);
        let want = json!({
            "first_day": "2026-10-31",
            "period": {"downloads": 5, "completed": null, "completed_of": 0, "bots": 2,
                       "requests": 9, "bytes": 8500, "files": 2},
            "months": {
                // October: one download on its last day, counting began then.
                "2026-10": {"downloads": 1, "completed": null, "completed_of": 0, "bots": 1,
                            "requests": 1, "bytes": 500, "files": 1, "per_day": 1.0},
                // November: 4 downloads over its 30 days.
                "2026-11": {"downloads": 4, "completed": null, "completed_of": 0, "bots": 1,
                            "requests": 8, "bytes": 8000, "files": 1, "per_day": 0.1}
            }
        });
        assert_eq!(db.report_with(&["--summary", "--json"]), want);
        let out = db.cmd(&["report", "--summary", "--csv"]).output().unwrap();
        assert_succeeded(&out);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "month,downloads,completed,completed_of,bots,requests,bytes,files,per_day\n\
             2026-10,1,,0,1,1,500,1,1.0\n2026-11,4,,0,1,8,8000,1,0.1\ntotal,5,,0,2,9,8500,2,\n"
        );
        // The pages show the same, from the same reads.
        let out = db
            .cmd(&["render", "--root", db.site.root.to_str().unwrap()])
            .output()
            .unwrap();
        assert_succeeded(&out);
        let page = std::fs::read_to_string(db.site.root.join(".stats/index.html")).unwrap();
        assert!(page.contains(r#"<span class="stat-value" id="bot-share" title="2 of 5 downloads">40.0 %</span>"#), "{page}");
        let nov = std::fs::read_to_string(db.site.root.join(".stats/2026-11.html")).unwrap();
        assert!(nov.contains(r#"<span class="stat-value" id="month-total">4</span>"#));
        assert!(nov.contains("2 of the 1,024 IPv4 /10 networks downloaded (0.2 %); 1 download over IPv6"), "{nov}");
    };
}
