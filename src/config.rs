//! Validated settings: defaults, then the `--config` TOML file, then the
//! command line (which wins).
//!
//! Invariant: a [`Settings`] value is usable as it is — the log format is
//! compiled, extensions are normalised and the database path can be created —
//! so every problem a user can make in the Apache line or the config file is
//! reported once, here, as a one-line message naming the problem.

use crate::cli::{DbArgs, Interval, ParseArgs, SiteArgs};
use crate::logformat::LogFormat;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_DB: &str = "/var/lib/dlcount/dlcount.sqlite";
pub const DEFAULT_ROOT: &str = "/var/www/file-server";
pub const DEFAULT_FORMAT: &str = "combined";
pub const DEFAULT_RETENTION_DAYS: u32 = 35;
/// About 50 MiB of held lines (each with its Referer and User-Agent); hours of a busy download server's ISO traffic.
pub const DEFAULT_MAX_PENDING: usize = 200_000;
/// Pages re-rendered at most once a minute while counts change: a render of
/// a big site (200 images, 10 years × 200 files) takes about 18 ms, so this
/// costs under 0.05 % of a core, and the statistics are never more than a
/// minute behind `report`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// The `--config` file. Keys are the long option names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub db: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub format: Option<String>,
    pub ext: Option<Exts>,
    pub user: Option<String>,
    pub retention_days: Option<u32>,
    pub templates: Option<PathBuf>,
    pub site_title: Option<String>,
    pub logo_url: Option<String>,
    pub home_url: Option<String>,
    pub public_counts: Option<bool>,
    pub refresh: Option<IntervalValue>,
    pub settle: Option<u64>,
    pub max_pending: Option<usize>,
}

/// `refresh = 5` (minutes) or `refresh = "30s"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum IntervalValue {
    Minutes(u64),
    Text(String),
}

impl IntervalValue {
    fn resolve(&self) -> Result<Interval> {
        match self {
            IntervalValue::Minutes(m) => m.to_string().parse(),
            IntervalValue::Text(t) => t.parse(),
        }
        .map_err(|e| anyhow::anyhow!("config file: refresh {e}"))
    }
}

/// `ext = ".iso"` or `ext = [".iso", ".img"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Exts {
    One(String),
    Many(Vec<String>),
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
    pub db: PathBuf,
    pub root: PathBuf,
    pub format: LogFormat,
    pub exts: Vec<String>,
    pub retention_days: u32,
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
    pub refresh: Option<Interval>,
    pub max_pending: Option<usize>,
}

impl Settings {
    pub fn resolve(
        db: &DbArgs,
        parse: &ParseArgs,
        site: &SiteArgs,
        extra: &Extra,
    ) -> Result<Settings> {
        let file = FileConfig::load(db.config.as_deref())?;
        let db_path = db
            .db
            .clone()
            .or(file.db)
            .unwrap_or_else(|| DEFAULT_DB.into());
        let root = site
            .root
            .clone()
            .or(file.root)
            .unwrap_or_else(|| DEFAULT_ROOT.into());
        let format_src = parse
            .format
            .clone()
            .or(file.format)
            .unwrap_or_else(|| DEFAULT_FORMAT.into());
        let format = LogFormat::compile(&format_src)?;
        let exts: Vec<String> = if !parse.ext.is_empty() {
            parse.ext.clone()
        } else {
            match file.ext {
                Some(Exts::One(e)) => vec![e],
                Some(Exts::Many(v)) => v,
                None => vec![".iso".into()],
            }
        };
        let exts: Vec<String> = exts
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
        if exts.is_empty() {
            bail!("no counted extension: give at least one --ext");
        }
        let retention_days = parse
            .retention_days
            .or(file.retention_days)
            .unwrap_or(DEFAULT_RETENTION_DAYS);
        if retention_days < 2 {
            bail!("--retention-days {retention_days} is too short: lines arrive up to a day late");
        }
        let refresh = match (extra.refresh, &file.refresh) {
            (Some(i), _) => i,
            (None, Some(v)) => v.resolve()?,
            (None, None) => Interval(DEFAULT_REFRESH),
        };
        let settle = site
            .settle
            .or(file.settle)
            .map_or(crate::render::DEFAULT_SETTLE, Duration::from_secs);
        let max_pending = extra
            .max_pending
            .or(file.max_pending)
            .unwrap_or(DEFAULT_MAX_PENDING);
        Ok(Settings {
            db: db_path,
            root,
            format,
            exts,
            retention_days,
            user: extra.user.clone().or(file.user),
            templates: site.templates.clone().or(file.templates),
            site_title: site
                .site_title
                .clone()
                .or(file.site_title)
                .unwrap_or_else(|| "Downloads".into()),
            logo_url: site.logo_url.clone().or(file.logo_url),
            home_url: site.home_url.clone().or(file.home_url),
            public_counts: site.public_counts || file.public_counts.unwrap_or(false),
            refresh: Some(refresh.0).filter(|d| !d.is_zero()),
            settle,
            max_pending: max_pending.max(1000),
        })
    }

    /// Checks that the database can live at `db`: not a directory, parent exists.
    pub fn check_db_path(&self) -> Result<()> {
        check_db_path(&self.db)
    }
}

pub fn check_db_path(db: &Path) -> Result<()> {
    if db.is_dir() {
        bail!(
            "--db {} is a directory; give the path of the database file",
            db.display()
        );
    }
    let parent = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
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
        };
        let s = Settings::resolve(
            &db,
            &ParseArgs::default(),
            &SiteArgs::default(),
            &Extra::default(),
        )
        .unwrap();
        assert_eq!(s.db, PathBuf::from("/y/cli.sqlite"));
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
}
