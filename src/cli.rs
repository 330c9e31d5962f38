//! Command-line arguments exactly as typed, before validation.
//!
//! Every option is optional here: [`crate::config`] merges them over the
//! `--config` file and the defaults, so "command-line options win" holds in
//! one place. Nothing in this module touches the file system.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
    /// Render the public and statistics pages now.
    Render(RenderArgs),
    /// Work with the page templates.
    Templates(TemplatesArgs),
}

#[derive(Debug, Args, Default, Clone)]
pub struct DbArgs {
    /// SQLite database [default: /var/lib/dlcount/dlcount.sqlite]
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// TOML file with the same settings (keys as the long options, e.g. db, root, format, ext, user); options given here win
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args, Default, Clone)]
pub struct ParseArgs {
    /// Log format: common, combined, vhost_combined, or an Apache LogFormat string [default: combined]
    #[arg(long, value_name = "FMT")]
    pub format: Option<String>,
    /// Counted file extension; repeat for several [default: .iso]
    #[arg(long = "ext", value_name = "EXT")]
    pub ext: Vec<String>,
    /// Days of per-client keys kept before a day is closed for good [default: 35]
    #[arg(long, value_name = "DAYS")]
    pub retention_days: Option<u32>,
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
    /// Show each ISO's download count on the public page
    #[arg(long)]
    pub public_counts: bool,
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
    /// Also re-render the pages every MINUTES when counts changed
    #[arg(long, value_name = "MINUTES")]
    pub refresh: Option<u32>,
    /// Counted lines held in memory while the database cannot be written [default: 200000]
    #[arg(long, value_name = "LINES")]
    pub max_pending: Option<usize>,
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
