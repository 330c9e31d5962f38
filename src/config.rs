//! Validated settings: defaults, then the config file, then the command line
//! (which wins).
//!
//! Invariant: a [`Settings`] value is usable as it is — the log format is
//! compiled, extensions are normalised, every number is within its bounds
//! and the database path can be created — so every problem a user can make
//! in the Apache line or the config file is reported once, here, as a
//! one-line message naming the problem. Each command validates only what it
//! uses ([`Uses`]): a bad `format` breaks the logger and `import`, never
//! `report`; what a command does not use keeps its default.

use crate::cli::{parse_duration, DbArgs, Minutes, ParseArgs, Seconds, SiteArgs};
use crate::logformat::LogFormat;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DB: &str = "/var/lib/dlcount/dlcount.sqlite";
/// Where a logger counting into PostgreSQL keeps what must stay local (the spool).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/dlcount";
pub const DEFAULT_ROOT: &str = "/var/www/file-server";
pub const DEFAULT_FORMAT: &str = "combined";
/// The config file read when `--config` is not given (and it exists), so
/// that a command run as root finds the logger's `user`; `$DLCOUNT_CONFIG`
/// names another.
pub const DEFAULT_CONFIG: &str = "/etc/dlcount/dlcount.toml";
pub const DEFAULT_RETENTION_DAYS: u32 = 35;
/// Lines arrive up to a day late, so a day needs two; ten years is beyond any use.
pub const RETENTION_DAYS: RangeInclusive<u32> = 2..=3650;
/// About 50 MiB of held lines (each with its Referer and User-Agent); hours of a busy download server's ISO traffic.
pub const DEFAULT_MAX_PENDING: usize = 200_000;
/// Held lines cost about 300 bytes each: 2,000,000 is about 600 MiB.
pub const MAX_PENDING: RangeInclusive<usize> = 1000..=2_000_000;
/// Pages re-rendered at most once a minute while counts change: a render of
/// a big site (200 images, 10 years × 200 files) takes about 18 ms, so this
/// costs under 0.05 % of a core, and the statistics are never more than a
/// minute behind `report`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// `--refresh` and `--settle` above a day mean a typo (seconds for minutes).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// The `--config` file. Keys are the long option names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub db: Option<PathBuf>,
    pub pg_ca_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub format: Option<String>,
    pub ext: Option<Exts>,
    pub user: Option<String>,
    pub retention_days: Option<u32>,
    pub server: Option<String>,
    pub geoip: Option<PathBuf>,
    pub templates: Option<PathBuf>,
    pub site_title: Option<String>,
    pub logo_url: Option<String>,
    pub home_url: Option<String>,
    pub public_counts: Option<bool>,
    pub refresh: Option<DurationValue>,
    pub settle: Option<DurationValue>,
    pub max_pending: Option<usize>,
}

/// A duration in the file: a number in the key's own unit (`refresh = 5`
/// minutes, `settle = 60` seconds) or text with a unit (`"30s"`, `"1m"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Number(u64),
    Text(String),
}

impl DurationValue {
    fn resolve(&self, key: &str, bare_unit_secs: u64) -> Result<Duration> {
        match self {
            DurationValue::Number(n) => parse_duration(&n.to_string(), bare_unit_secs),
            DurationValue::Text(t) => parse_duration(t, bare_unit_secs),
        }
        .map_err(|e| anyhow::anyhow!("config file: {key} {e}"))
    }
}

/// `ext = ".iso"` or `ext = [".iso", ".img"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Exts {
    One(String),
    Many(Vec<String>),
}

/// The config file a command reads: `--config`, else `$DLCOUNT_CONFIG` (a
/// file that must exist; empty: none), else the default one when it exists.
pub fn config_path(db: &DbArgs) -> Option<PathBuf> {
    if let Some(p) = &db.config {
        return Some(p.clone());
    }
    match std::env::var_os("DLCOUNT_CONFIG") {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => {
            let default = PathBuf::from(DEFAULT_CONFIG);
            default.is_file().then_some(default)
        }
    }
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let msg = e.message().to_string();
            let line = e
                .span()
                .map(|s| text[..s.start].matches('\n').count() + 1)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            anyhow::anyhow!("config file {}{line}: {msg}", path.display())
        })
    }
}

/// Everything any subcommand may need, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub db: DbTarget,
    pub root: PathBuf,
    /// The root whose files' sizes decide completed downloads (`coverage`):
    /// the logger's `root`; for `import` only a `--root` or the config's
    /// `root` (none: completion unknown, never guessed).
    pub size_root: Option<PathBuf>,
    pub format: LogFormat,
    pub exts: Vec<String>,
    pub retention_days: u32,
    /// The web server whose log is read (`--server`): part of a line's identity.
    pub server: String,
    /// The country database (`--geoip`), opened once and shared by the
    /// reading threads; `None`: countries are not looked up.
    pub geoip: Option<std::sync::Arc<crate::geo::GeoDb>>,
    pub user: Option<String>,
    pub templates: Option<PathBuf>,
    pub site_title: String,
    pub logo_url: Option<String>,
    pub home_url: Option<String>,
    pub public_counts: bool,
    /// Re-render when counts changed, at most this often; `None` when off.
    pub refresh: Option<Duration>,
    /// Files written less than this long ago are not listed yet.
    pub settle: Duration,
    pub max_pending: usize,
}

/// Options that only some subcommands have.
#[derive(Debug, Default, Clone)]
pub struct Extra {
    pub user: Option<String>,
    /// `import --root`: see [`Settings::size_root`].
    pub root: Option<PathBuf>,
    pub refresh: Option<Minutes>,
    pub max_pending: Option<usize>,
}

/// Which settings a command uses, and so validates; the others keep their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uses {
    /// The log format, extensions and retention (reading lines).
    pub lines: bool,
    /// The root, templates and page options (rendering), and the extensions.
    pub site: bool,
    /// `refresh` and `max_pending` (the running logger).
    pub live: bool,
}

impl Uses {
    /// `report`, `import-json`: the database (and `user`) only.
    pub const DB: Uses = Uses {
        lines: false,
        site: false,
        live: false,
    };
    pub const IMPORT: Uses = Uses {
        lines: true,
        site: false,
        live: false,
    };
    pub const RENDER: Uses = Uses {
        lines: false,
        site: true,
        live: false,
    };
    /// The logger and `check`.
    pub const ALL: Uses = Uses {
        lines: true,
        site: true,
        live: true,
    };
}

fn within<T: PartialOrd + std::fmt::Display + Copy>(
    value: T,
    range: &RangeInclusive<T>,
    name: &str,
    unit: &str,
) -> Result<T> {
    if !range.contains(&value) {
        bail!(
            "{name} {value} is out of range: give {} to {}{unit}",
            range.start(),
            range.end()
        );
    }
    Ok(value)
}

fn interval_within(value: Duration, name: &str, zero: &str) -> Result<Duration> {
    if value > MAX_INTERVAL {
        bail!(
            "{name} {} s is out of range: give {zero} to 24h",
            value.as_secs()
        );
    }
    Ok(value)
}

impl Settings {
    /// The settings of the logger (and `check`): everything validated.
    pub fn resolve(
        db: &DbArgs,
        parse: &ParseArgs,
        site: &SiteArgs,
        extra: &Extra,
    ) -> Result<Settings> {
        Settings::resolve_for(Uses::ALL, db, parse, site, extra)
    }

    /// The settings of a command that uses only `uses`.
    pub fn resolve_for(
        uses: Uses,
        db: &DbArgs,
        parse: &ParseArgs,
        site: &SiteArgs,
        extra: &Extra,
    ) -> Result<Settings> {
        let file = FileConfig::load(config_path(db).as_deref())?;
        let db_text = db
            .db
            .clone()
            .or(file.db)
            .unwrap_or_else(|| DEFAULT_DB.into());
        let target = DbTarget::new(
            &db_text,
            db.pg_ca_file.clone().or(file.pg_ca_file),
            db.state_dir.clone().or(file.state_dir),
        )?;
        let mut s = Settings {
            db: target,
            root: DEFAULT_ROOT.into(),
            size_root: None,
            format: LogFormat::compile(DEFAULT_FORMAT)?,
            exts: vec![".iso".into()],
            retention_days: DEFAULT_RETENTION_DAYS,
            server: String::new(),
            geoip: None,
            user: extra.user.clone().or(file.user),
            templates: None,
            site_title: "Downloads".into(),
            logo_url: None,
            home_url: None,
            public_counts: false,
            refresh: Some(DEFAULT_REFRESH),
            settle: crate::render::DEFAULT_SETTLE,
            max_pending: DEFAULT_MAX_PENDING,
        };
        if uses.lines || uses.site {
            let exts: Vec<String> = if !parse.ext.is_empty() {
                parse.ext.clone()
            } else {
                match file.ext {
                    Some(Exts::One(e)) => vec![e],
                    Some(Exts::Many(v)) => v,
                    None => vec![".iso".into()],
                }
            };
            s.exts = exts
                .iter()
                .map(|e| {
                    let e = e.trim().to_ascii_lowercase();
                    if e.is_empty() || e == "." || e.contains('/') {
                        bail!("bad --ext {e:?}: give a file extension such as .iso");
                    }
                    Ok(if e.starts_with('.') {
                        e
                    } else {
                        format!(".{e}")
                    })
                })
                .collect::<Result<_>>()?;
            if s.exts.is_empty() {
                bail!("no counted extension: give at least one --ext");
            }
        }
        if uses.lines {
            if let Some(f) = parse.format.clone().or(file.format) {
                s.format = LogFormat::compile(&f)?;
            }
            s.retention_days = within(
                parse
                    .retention_days
                    .or(file.retention_days)
                    .unwrap_or(DEFAULT_RETENTION_DAYS),
                &RETENTION_DAYS,
                "--retention-days",
                " days (lines arrive up to a day late)",
            )?;
            s.server = match parse.server.clone().or(file.server) {
                Some(name) => server_name(&name)?,
                None => default_server_name()?,
            };
            if let Some(path) = parse.geoip.clone().or(file.geoip) {
                s.geoip = Some(std::sync::Arc::new(crate::geo::GeoDb::open(&path)?));
            }
        }
        if uses.lines && !uses.site {
            s.size_root = extra.root.clone().or(file.root.clone());
        }
        if uses.site {
            s.root = site
                .root
                .clone()
                .or(file.root)
                .unwrap_or_else(|| DEFAULT_ROOT.into());
            s.templates = site.templates.clone().or(file.templates);
            if let Some(t) = site.site_title.clone().or(file.site_title) {
                s.site_title = t;
            }
            s.logo_url = site.logo_url.clone().or(file.logo_url);
            s.home_url = site.home_url.clone().or(file.home_url);
            s.public_counts = site.public_counts().or(file.public_counts).unwrap_or(false);
            let settle = match (site.settle, &file.settle) {
                (Some(Seconds(d)), _) => d,
                (None, Some(v)) => v.resolve("settle", 1)?,
                (None, None) => crate::render::DEFAULT_SETTLE,
            };
            s.settle = interval_within(settle, "--settle", "0")?;
            if uses.lines {
                s.size_root = Some(s.root.clone());
            }
        }
        if uses.live {
            let refresh = match (extra.refresh, &file.refresh) {
                (Some(Minutes(d)), _) => d,
                (None, Some(v)) => v.resolve("refresh", 60)?,
                (None, None) => DEFAULT_REFRESH,
            };
            let refresh = interval_within(refresh, "--refresh", "0 (off) or 1s")?;
            s.refresh = Some(refresh).filter(|d| !d.is_zero());
            s.max_pending = within(
                extra
                    .max_pending
                    .or(file.max_pending)
                    .unwrap_or(DEFAULT_MAX_PENDING),
                &MAX_PENDING,
                "--max-pending",
                " lines",
            )?;
        }
        Ok(s)
    }

    /// Checks that the database can live where `--db` says: for SQLite not
    /// a directory, parent exists; for PostgreSQL the local state directory exists.
    pub fn check_db_path(&self) -> Result<()> {
        match &self.db {
            DbTarget::Sqlite(path) => check_db_path(path),
            DbTarget::Postgres(pg) if !pg.state_dir.is_dir() => bail!(
                "--state-dir {} does not exist (create it, owned by the user dlcount runs as)",
                pg.state_dir.display()
            ),
            DbTarget::Postgres(_) => Ok(()),
        }
    }
}

/// The longest `--server` name.
pub const MAX_SERVER_NAME: usize = 64;

/// A valid `--server` name: 1 to [`MAX_SERVER_NAME`] of `[A-Za-z0-9._-]`
/// (a host name fits; it shows on pages and in `report`).
pub fn server_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SERVER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !ok {
        bail!("--server {name:?}: give 1 to {MAX_SERVER_NAME} letters, digits, '.', '-' or '_'");
    }
    Ok(name.to_string())
}

/// This machine's host name, the default `--server`.
fn default_server_name() -> Result<String> {
    let host = nix::unistd::gethostname()
        .map_err(|e| anyhow::anyhow!("cannot read the host name for --server: {e}"))?;
    let host = host.to_string_lossy();
    server_name(&host).map_err(|_| {
        anyhow::anyhow!("the host name {host:?} is not a valid --server name: give --server NAME")
    })
}

/// Where the counts live, as `--db` names it: a path is an SQLite file (the
/// embedded default), a `postgres://` or `postgresql://` URL a shared
/// PostgreSQL database (see `store::postgres`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    Sqlite(PathBuf),
    Postgres(PgTarget),
}

/// A PostgreSQL database and what this machine keeps beside it.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// The connection URL as given (libpq's URL syntax; it may hold a password).
    pub url: String,
    /// CA certificate(s) to verify the server with (`--pg-ca-file`), for `sslmode=require` and up.
    pub ca_file: Option<PathBuf>,
    /// The local directory for the spool (`--state-dir`).
    pub state_dir: PathBuf,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &redact_password(&self.url))
            .field("ca_file", &self.ca_file)
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

impl DbTarget {
    /// Reads `--db`; `ca_file` and `state_dir` belong to PostgreSQL only.
    pub fn new(
        db: &Path,
        ca_file: Option<PathBuf>,
        state_dir: Option<PathBuf>,
    ) -> Result<DbTarget> {
        let text = db.to_string_lossy();
        let is_url = ["postgres://", "postgresql://"]
            .iter()
            .any(|p| text.len() >= p.len() && text[..p.len()].eq_ignore_ascii_case(p));
        if is_url {
            return Ok(DbTarget::Postgres(PgTarget {
                url: text.into_owned(),
                ca_file,
                state_dir: state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
            }));
        }
        if text.contains("://") {
            bail!("--db {text}: not a database this dlcount knows (give a file path for SQLite, or postgres://…)");
        }
        if ca_file.is_some() {
            bail!(
                "--pg-ca-file is for a PostgreSQL --db (postgres://…), not the SQLite file {text}"
            );
        }
        Ok(DbTarget::Sqlite(db.to_owned()))
    }

    /// The SQLite file, if that is the backend.
    pub fn sqlite(&self) -> Option<&Path> {
        match self {
            DbTarget::Sqlite(p) => Some(p),
            DbTarget::Postgres(_) => None,
        }
    }

    /// The local directory of this logger's state (the spool): beside the
    /// SQLite file, or PostgreSQL's `--state-dir`.
    pub fn local_dir(&self) -> &Path {
        match self {
            DbTarget::Sqlite(p) => db_dir(p),
            DbTarget::Postgres(pg) => &pg.state_dir,
        }
    }

    /// How messages name the database: the path, or the URL without its password.
    pub fn display(&self) -> String {
        match self {
            DbTarget::Sqlite(p) => p.display().to_string(),
            DbTarget::Postgres(pg) => redact_password(&pg.url),
        }
    }

    /// Whether the database exists already (a PostgreSQL one is assumed to).
    pub fn exists(&self) -> bool {
        match self {
            DbTarget::Sqlite(p) => p.exists(),
            DbTarget::Postgres(_) => true,
        }
    }
}

/// A connection URL with its password replaced by `***`, for messages.
pub fn redact_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// The directory holding the database (and its `-wal`, `-shm` and `spool/`):
/// the one place this is worked out.
pub fn db_dir(db: &Path) -> &Path {
    match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `db` with `suffix` appended: SQLite's `-wal` and `-shm` files beside it.
pub fn db_side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

pub fn check_db_path(db: &Path) -> Result<()> {
    if db.is_dir() {
        bail!(
            "--db {} is a directory; give the path of the database file",
            db.display()
        );
    }
    let parent = db_dir(db);
    if !parent.is_dir() {
        bail!(
            "--db {}: directory {} does not exist (create it, owned by the user dlcount runs as)",
            db.display(),
            parent.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "db = \"/x/file.sqlite\"\nroot = \"/srv\"\next = [\"img\", \".ISO\"]\nretention_days = 40\n").unwrap();
        let db = DbArgs {
            db: Some("/y/cli.sqlite".into()),
            config: Some(cfg.clone()),
            ..Default::default()
        };
        let s = Settings::resolve(
            &db,
            &ParseArgs::default(),
            &SiteArgs::default(),
            &Extra::default(),
        )
        .unwrap();
        assert_eq!(s.db, DbTarget::Sqlite(PathBuf::from("/y/cli.sqlite")));
        assert_eq!(s.root, PathBuf::from("/srv"));
        assert_eq!(s.exts, vec![".img".to_string(), ".iso".to_string()]);
        assert_eq!(s.retention_days, 40);
    }

    #[test]
    fn config_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, "db = \"/x\"\nbogus = 1\n").unwrap();
        let db = DbArgs {
            db: None,
            config: Some(cfg),
            ..Default::default()
        };
        let e = Settings::resolve(
            &db,
            &ParseArgs::default(),
            &SiteArgs::default(),
            &Extra::default(),
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("line 2") && msg.contains("bogus"), "{msg}");
        let parse = ParseArgs {
            format: Some("%h %t \"%r\" %>s %Q".into()),
            ..Default::default()
        };
        let e = Settings::resolve(
            &DbArgs::default(),
            &parse,
            &SiteArgs::default(),
            &Extra::default(),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("unknown format directive %Q"));
        let e = check_db_path(Path::new("/nonexistent-dir/x.sqlite")).unwrap_err();
        assert!(format!("{e:#}").contains("does not exist"));
    }

    fn resolve_file(toml: &str, extra: &Extra) -> Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(&cfg, toml).unwrap();
        let db = DbArgs {
            db: None,
            config: Some(cfg),
            ..Default::default()
        };
        Settings::resolve(&db, &ParseArgs::default(), &SiteArgs::default(), extra)
    }

    #[test]
    fn pages_refresh_every_minute_by_default_and_in_the_shipped_config() {
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/apache-conf/dlcount.toml");
        for s in [
            resolve_file("", &Extra::default()).unwrap(),
            resolve_file(
                &std::fs::read_to_string(shipped).unwrap(),
                &Extra::default(),
            )
            .unwrap(),
        ] {
            assert_eq!(s.refresh, Some(Duration::from_secs(60)));
            assert_eq!(s.settle, Duration::from_secs(60));
        }
    }

    #[test]
    fn refresh_takes_minutes_or_units_and_zero_turns_it_off() {
        let refresh = |toml: &str| resolve_file(toml, &Extra::default()).unwrap().refresh;
        assert_eq!(refresh("refresh = 5"), Some(Duration::from_secs(300)));
        assert_eq!(refresh("refresh = \"30s\""), Some(Duration::from_secs(30)));
        assert_eq!(refresh("refresh = 0"), None);
        assert_eq!(refresh("refresh = \"0s\""), None);
        let cli = Extra {
            refresh: Some("2m".parse().unwrap()),
            ..Extra::default()
        };
        assert_eq!(
            resolve_file("refresh = 0", &cli).unwrap().refresh,
            Some(Duration::from_secs(120))
        );
        let e = resolve_file("refresh = \"5x\"", &Extra::default()).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "config file: refresh \"5x\": give minutes, or a number with s, m or h (30s, 2m, 1h)"
        );
        assert_eq!(
            resolve_file("settle = 0", &Extra::default())
                .unwrap()
                .settle,
            Duration::ZERO
        );
    }

    #[test]
    fn settle_and_refresh_share_one_duration_syntax() {
        let s = resolve_file("settle = \"1m\"\nrefresh = \"2m\"\n", &Extra::default()).unwrap();
        assert_eq!(
            (s.settle, s.refresh),
            (Duration::from_secs(60), Some(Duration::from_secs(120)))
        );
        let s = resolve_file("settle = \"90s\"\nrefresh = \"1h\"\n", &Extra::default()).unwrap();
        assert_eq!(
            (s.settle, s.refresh),
            (Duration::from_secs(90), Some(Duration::from_secs(3600)))
        );
        let e = resolve_file("settle = \"1x\"", &Extra::default()).unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "config file: settle \"1x\": give seconds, or a number with s, m or h (30s, 2m, 1h)"
        );
    }

    #[test]
    fn numbers_out_of_range_are_one_line_naming_the_bounds() {
        let err = |toml: &str| format!("{:#}", resolve_file(toml, &Extra::default()).unwrap_err());
        assert_eq!(
            err("retention_days = 4294967295"),
            "--retention-days 4294967295 is out of range: give 2 to 3650 days (lines arrive up to a day late)"
        );
        assert_eq!(
            err("retention_days = 1"),
            "--retention-days 1 is out of range: give 2 to 3650 days (lines arrive up to a day late)"
        );
        assert_eq!(
            err("max_pending = 10"),
            "--max-pending 10 is out of range: give 1000 to 2000000 lines"
        );
        assert_eq!(
            err("max_pending = 18446744073709551615"),
            "--max-pending 18446744073709551615 is out of range: give 1000 to 2000000 lines"
        );
        assert_eq!(
            err("refresh = \"25h\""),
            "--refresh 90000 s is out of range: give 0 (off) or 1s to 24h"
        );
        assert_eq!(
            err("settle = 86401"),
            "--settle 86401 s is out of range: give 0 to 24h"
        );
        for ok in [
            "retention_days = 3650",
            "max_pending = 2000000",
            "settle = \"24h\"",
        ] {
            assert!(resolve_file(ok, &Extra::default()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn each_command_validates_only_what_it_uses() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "db = \"/x/d.sqlite\"\nformat = \"%h %Q\"\nsettle = \"1x\"\nmax_pending = 1\n",
        )
        .unwrap();
        let db = DbArgs {
            db: None,
            config: Some(cfg),
            ..Default::default()
        };
        let resolve = |uses| {
            Settings::resolve_for(
                uses,
                &db,
                &ParseArgs::default(),
                &SiteArgs::default(),
                &Extra::default(),
            )
            .map_err(|e| format!("{e:#}"))
        };
        assert_eq!(
            resolve(Uses::DB).unwrap().db,
            DbTarget::Sqlite(PathBuf::from("/x/d.sqlite"))
        );
        assert!(resolve(Uses::IMPORT)
            .unwrap_err()
            .contains("unknown format directive %Q"));
        assert!(resolve(Uses::RENDER).unwrap_err().contains("settle \"1x\""));
        assert!(resolve(Uses::ALL).is_err());
    }

    #[test]
    fn public_counts_on_the_command_line_overrides_the_file_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        let counts = |toml: &str, args: &[&str]| {
            std::fs::write(&cfg, toml).unwrap();
            let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(
                ["dlcount-pipe", "--config", cfg.to_str().unwrap()]
                    .iter()
                    .chain(args),
            )
            .unwrap();
            Settings::resolve(
                &cli.pipe.db,
                &cli.pipe.parse,
                &cli.pipe.site,
                &Extra::default(),
            )
            .unwrap()
            .public_counts
        };
        assert!(counts("public_counts = true", &[]));
        assert!(!counts("public_counts = true", &["--no-public-counts"]));
        assert!(counts("public_counts = false", &["--public-counts"]));
        assert!(!counts("", &[]));
        assert!(counts("", &["--no-public-counts", "--public-counts"]));
        assert!(!counts("", &["--public-counts", "--no-public-counts"]));
    }

    #[test]
    fn db_names_its_backend_and_urls_never_show_a_password() {
        let t = DbTarget::new(Path::new("/x/d.sqlite"), None, None).unwrap();
        assert_eq!(t.sqlite(), Some(Path::new("/x/d.sqlite")));
        assert_eq!(t.local_dir(), Path::new("/x"));
        let t = DbTarget::new(
            Path::new("postgresql://dl:s3cret@db.example:5433/counts?sslmode=require"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(t.sqlite(), None);
        assert_eq!(t.local_dir(), Path::new(DEFAULT_STATE_DIR));
        assert_eq!(
            t.display(),
            "postgresql://dl:***@db.example:5433/counts?sslmode=require"
        );
        assert!(!format!("{t:?}").contains("s3cret"));
        assert_eq!(redact_password("postgres://dl@h/db"), "postgres://dl@h/db");
        let e = DbTarget::new(Path::new("mysql://h/db"), None, None).unwrap_err();
        assert!(
            e.to_string().contains("not a database this dlcount knows"),
            "{e}"
        );
        let e = DbTarget::new(Path::new("/x/d.sqlite"), Some("/ca.pem".into()), None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--pg-ca-file is for a PostgreSQL --db"),
            "{e}"
        );
    }
}
