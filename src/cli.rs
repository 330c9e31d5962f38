//! Command-line arguments exactly as typed, before validation.
//!
//! Every option is optional here: [`crate::config`] merges them over the
//! `--config` file and the defaults, so "command-line options win" holds in
//! one place. Nothing in this module touches the file system.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "dlcount-pipe",
    version,
    about = "Counts deduplicated ISO downloads from Apache's access log into SQLite",
    long_about = "Counts deduplicated ISO downloads from Apache's access log into SQLite.\n\n\
        Without a subcommand it is Apache's piped logger: it reads access lines on stdin until EOF \
        (GlobalLog \"|/usr/local/bin/dlcount-pipe --config /etc/dlcount/dlcount.toml\" dlcount), \
        counts one download per client, file and day, and keeps the public and statistics pages current.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(flatten)]
    pub pipe: PipeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Count historical or rotated logs (plain or gzip, `-` for stdin) through the same counting path.
    Import(ImportArgs),
    /// Migrate the old cron script's counts.json as legacy monthly figures.
    ImportJson(ImportJsonArgs),
    /// Print the counts: a month × file table, or JSON.
    Report(ReportArgs),
    /// Move the counts of --db into another database (SQLite or PostgreSQL, either way); running it again changes nothing
    Migrate(MigrateArgs),
    /// Render the public and statistics pages now.
    Render(RenderArgs),
    /// Work with the page templates.
    Templates(TemplatesArgs),
    /// Check a configuration as the logger would use it (same options; run after editing the config)
    Check(PipeArgs),
    /// Count nginx's access lines sent over syslog (access_log syslog:server=unix:PATH,nohostname,tag=dlcount dlcount;) until SIGTERM
    Listen(ListenArgs),
    /// Count the lines of log files as they are written, across logrotate's create and copytruncate, resuming where it stopped
    Follow(FollowArgs),
    /// Man pages and shell completions from this very command line (for packagers)
    #[command(hide = true)]
    Generate(crate::generate::GenerateArgs),
}

#[derive(Debug, Args, Default, Clone)]
pub struct DbArgs {
    /// Database: an SQLite file, or postgres://USER@HOST:PORT/DBNAME for one shared PostgreSQL (add ?sslmode=require for TLS) [default: /var/lib/dlcount/dlcount.sqlite]
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// CA certificate file (PEM) that PostgreSQL's server certificate must chain to: with it, sslmode=prefer/require verify the chain; verify-ca and verify-full always do [default for verify-ca/verify-full: the system's roots]
    #[arg(long, value_name = "FILE")]
    pub pg_ca_file: Option<PathBuf>,
    /// With PostgreSQL: the local directory for what must stay on this machine (the spool) [default: /var/lib/dlcount]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// TOML file with the same settings (keys as the long options, e.g. db, root, format, ext, user); options given here win [default: $DLCOUNT_CONFIG (empty: none), else /etc/dlcount/dlcount.toml when it exists]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args, Default, Clone)]
pub struct ParseArgs {
    /// Log format: common, combined, vhost_combined, dlcount (combined, then "%{Content-Range}o": the shipped Apache format), nginx_combined, nginx_dlcount (the recommended log_format dlcount), an Apache LogFormat string, or an nginx log_format string (optionally starting with escape=json or escape=none) [default: combined]
    #[arg(long, value_name = "FMT")]
    pub format: Option<String>,
    /// Counted file extension; repeat for several [default: .iso]
    #[arg(long = "ext", value_name = "EXT")]
    pub ext: Vec<String>,
    /// Days of per-client keys kept before a day is closed for good, 2 to 3650 [default: 35]
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u32>,
    /// Name of the web server whose log this is, when several count into one database (letters, digits, '.', '-', '_') [default: this machine's host name]
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// Country database (MaxMind DB format: GeoLite2-Country.mmdb or DB-IP's dbip-country-lite .mmdb): count downloads per country, looked up before the address is hashed [default: no countries]
    #[arg(long, value_name = "FILE")]
    pub geoip: Option<PathBuf>,
}

#[derive(Debug, Args, Default, Clone)]
pub struct SiteArgs {
    /// Download root served by Apache; pages go to ROOT/index.html and ROOT/.stats/ [default: /var/www/file-server]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Directory of templates overriding the built-in ones
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Site title on both pages [default: Downloads]
    #[arg(long, value_name = "TEXT")]
    pub site_title: Option<String>,
    /// Logo image URL shown in the page header
    #[arg(long, value_name = "URL")]
    pub logo_url: Option<String>,
    /// Link back to the site's home page
    #[arg(long, value_name = "URL")]
    pub home_url: Option<String>,
    /// Show each ISO's download count on the public page (overrides the config file)
    #[arg(long, overrides_with = "no_public_counts")]
    pub public_counts: bool,
    /// Do not show download counts on the public page (overrides the config file)
    #[arg(long, overrides_with = "public_counts")]
    pub no_public_counts: bool,
    /// List a file only once it has not been written to for SECONDS (or give a unit: 30s, 2m, 1h; at most 24h) (uploads in progress stay hidden); 0 lists at once [default: 60]
    #[arg(long, value_name = "SECONDS")]
    pub settle: Option<Seconds>,
}

#[derive(Debug, Args, Default, Clone)]
pub struct PipeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub parse: ParseArgs,
    #[command(flatten)]
    pub site: SiteArgs,
    /// When started as root, switch to this user (and group) before reading any input
    #[arg(long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Re-render the pages when counts changed, at most once per MINUTES (or give a unit: 30s, 2m, 1h; 1s to 24h); 0 turns it off [default: 1]
    #[arg(long, value_name = "MINUTES")]
    pub refresh: Option<Minutes>,
    /// Counted lines held in memory while the database cannot be written, 1000 to 2000000 [default: 200000]
    #[arg(long, value_name = "LINES")]
    pub max_pending: Option<usize>,
}

impl SiteArgs {
    /// `--public-counts` / `--no-public-counts`, the last given; `None` when neither.
    pub fn public_counts(&self) -> Option<bool> {
        match (self.public_counts, self.no_public_counts) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

/// The one duration syntax of every option and config key: a number with a
/// unit `s`, `m` or `h` (`30s`, `2m`, `1h`), or a bare number in the option's
/// own unit (minutes for `--refresh`, seconds for `--settle`, as their names say).
pub fn parse_duration(text: &str, bare_unit_secs: u64) -> Result<Duration, String> {
    let text = text.trim();
    let bare = if bare_unit_secs == 60 {
        "minutes"
    } else {
        "seconds"
    };
    let bad = || format!("{text:?}: give {bare}, or a number with s, m or h (30s, 2m, 1h)");
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let seconds_per_unit = match unit.trim() {
        "" => bare_unit_secs,
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    n.checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// A duration whose bare number means minutes (`--refresh 5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Minutes(pub Duration);

impl std::str::FromStr for Minutes {
    type Err = String;

    fn from_str(text: &str) -> Result<Minutes, String> {
        parse_duration(text, 60).map(Minutes)
    }
}

/// A duration whose bare number means seconds (`--settle 60`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl std::str::FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Seconds, String> {
        parse_duration(text, 1).map(Seconds)
    }
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub live: PipeArgs,
    /// Unix datagram socket to create and receive on (nginx: access_log syslog:server=unix:PATH,nohostname,tag=dlcount dlcount;). A stale socket is replaced only if nothing receives on it; a symbolic link or any other file there is refused
    #[arg(long, value_name = "PATH", required_unless_present = "udp")]
    pub socket: Option<PathBuf>,
    /// Group that may send to --socket (the group nginx's workers run as, e.g. www-data): the socket is made 0660 and given to it [default: the listener's own group]
    #[arg(long, value_name = "GROUP", requires = "socket")]
    pub socket_group: Option<String>,
    /// UDP address to receive on: PORT (on 127.0.0.1) or ADDR:PORT, for an nginx on another host (access_log syslog:server=ADDR:PORT,tag=dlcount dlcount;)
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub udp: Option<String>,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

#[derive(Debug, Args)]
pub struct FollowArgs {
    #[command(flatten)]
    pub live: PipeArgs,
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Log files to follow (each from its checkpoint in the database, else from its start)
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Running in the background without systemd (`listen`, `follow`).
#[derive(Debug, Args, Default, Clone)]
pub struct DaemonArgs {
    /// Run in the background (for systems without systemd): detach from the terminal, write --pidfile, append messages to --log
    #[arg(long, requires_all = ["pidfile", "log"])]
    pub daemon: bool,
    /// With --daemon: the file holding the background process's id (locked while it runs; a second instance with the same file refuses to start)
    #[arg(long, value_name = "FILE", requires = "daemon")]
    pub pidfile: Option<PathBuf>,
    /// With --daemon: the file messages are appended to
    #[arg(long, value_name = "FILE", requires = "daemon")]
    pub log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub parse: ParseArgs,
    /// Run in the background (detached from the terminal), writing the summary to --log
    #[arg(long, requires = "log")]
    pub detach: bool,
    /// With --detach: where the progress summary goes
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// No progress bar even on a terminal
    #[arg(long)]
    pub quiet: bool,
    /// Download root the logged URL paths name files under: their sizes tell completed downloads [default: the config's root; none: completion unknown]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log files (plain or gzip, recognised by content); `-` reads stdin
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportJsonArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Prefix put before each file name of counts.json to make its URL path (e.g. /isos)
    #[arg(long, value_name = "PATH", default_value = "")]
    pub prefix: String,
    /// The old script's counts.json
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Print {"<path>": {"YYYY-MM": downloads}} (the old counts.json structure)
    #[arg(long)]
    pub json: bool,
    /// With --json: each month as {"downloads", "requests", "bytes"}
    #[arg(long, requires = "json")]
    pub detail: bool,
    /// Figures per server and month instead of per file (a download resumed on another server counts for each); with --json: {"<server>": {"YYYY-MM": {"downloads", "requests", "bytes"}}}. Or each file's monthly downloads by client class ({"browser", "downloader", "bot", "other"}) or by country (ISO codes); "unknown": downloads counted before dlcount kept the fact, or without a country
    #[arg(long, value_enum, value_name = "WHAT", conflicts_with = "detail")]
    pub by: Option<ReportBy>,
    /// The statistics overview's headline figures, for the whole period and each month: downloads, completed (where known), bots, requests, bytes, files, mean downloads per day; with --json: {"first_day", "period": {…}, "months": {"YYYY-MM": {…}}}
    #[arg(long, conflicts_with_all = ["detail", "by"])]
    pub summary: bool,
    /// Print CSV (one row per file, month and, with --by class|country, value)
    #[arg(long, conflicts_with_all = ["json", "detail"])]
    pub csv: bool,
    /// Completed downloads (those whose bytes covered the whole file, see the README) per file and month; with --json: {"<path>": {"YYYY-MM": completed}}, months of none or unknown left out
    #[arg(long, conflicts_with_all = ["detail", "by", "daily"])]
    pub completed: bool,
    /// Figures per file and day; with --json: {"<path>": {"YYYY-MM-DD": {"downloads", "requests", "bytes", "completed"}}}, completed null when unknown
    #[arg(long, conflicts_with_all = ["detail", "by"])]
    pub daily: bool,
    /// With --by referer: a host name of this site (repeat for several); its requests are shown as "this site"
    #[arg(long = "site-host", value_name = "HOST")]
    pub site_host: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The database moved from (--db, the config's db, or the default)
    #[command(flatten)]
    pub db: DbArgs,
    /// The database moved to: an SQLite file (created if needed) or postgres://…
    #[arg(long, value_name = "PATH|URL")]
    pub to: PathBuf,
    /// When the two databases have different secrets (two servers that counted apart): add the figures of days still open too, although their clients cannot be matched (only when their logs are gone: an import of those logs would count them again)
    #[arg(long)]
    pub add_open_days: bool,
}

/// What `report --by` breaks the figures down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportBy {
    /// The web servers (`--server`) that counted into the database.
    Server,
    /// Client classes from the User-Agent: browser, downloader, bot, other.
    Class,
    /// Countries of the clients (counted with --geoip).
    Country,
    /// Requests per referring host (the Referer's host; "direct" without one), per file and month
    Referer,
    /// Network coverage per month: how many of the 1,024 IPv4 /10 networks downloaded, and the IPv6 downloads.
    Network,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub site: SiteArgs,
    /// Counted file extension; repeat for several [default: .iso]
    #[arg(long = "ext", value_name = "EXT")]
    pub ext: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TemplatesArgs {
    /// Write the built-in templates into DIR as a starting point for --templates
    #[arg(long, value_name = "DIR", required = true)]
    pub dump: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::{Minutes, Seconds};

    #[test]
    fn durations_take_units_everywhere_and_bare_numbers_in_the_options_unit() {
        let mins = |t: &str| t.parse::<Minutes>().map(|i| i.0.as_secs());
        let secs = |t: &str| t.parse::<Seconds>().map(|i| i.0.as_secs());
        assert_eq!(mins("5"), Ok(300));
        assert_eq!(secs("5"), Ok(5));
        for (text, n) in [("30s", 30), ("2m", 120), ("1m", 60), ("1h", 3600), ("0", 0)] {
            assert_eq!((mins(text), secs(text)), (Ok(n), Ok(n)), "{text}");
        }
        for bad in ["", "m", "5x", "-1", "1.5"] {
            assert!(mins(bad).is_err() && secs(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            secs("5x"),
            Err("\"5x\": give seconds, or a number with s, m or h (30s, 2m, 1h)".to_string())
        );
    }
}
