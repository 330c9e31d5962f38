//! `genlog`: command-line front end of the access-log generator used by
//! `scripts/bench.sh` (run it with `cargo run --release --example genlog -- …`).
//!
//! Invariant: it only wires arguments to `tests/support/genlog.rs`, the same
//! module the integration tests include, so a benchmark log and a test log
//! built from the same parameters are byte-identical and carry the same answer.

#[path = "../tests/support/genlog.rs"]
mod genlog;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Parser, ValueEnum};
use genlog::{generate_to, GenConfig, Mode};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Realistic traffic; about a quarter of the lines are counted ISO requests.
    Mixed,
    /// Every line is a new counted download (distinct IP, GET of an ISO, 200).
    AllNew,
}

/// Writes a realistic Apache `combined` access log and its expected dlcount answer.
#[derive(Parser)]
#[command(name = "genlog")]
struct Args {
    /// Approximate number of lines (exact in all-new mode).
    #[arg(long, default_value_t = 10_000)]
    lines: usize,
    /// Seed: the same seed and parameters always give the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = ModeArg::Mixed)]
    mode: ModeArg,
    /// First day written in %t.
    #[arg(long, default_value = "2026-10-30")]
    start: NaiveDate,
    /// Number of days the request starts are spread over.
    #[arg(long, default_value_t = 4)]
    days: u32,
    /// Log output (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Expected `report --json --detail` answer.
    #[arg(long)]
    answer: Option<PathBuf>,
    /// Expected `report --json` answer.
    #[arg(long)]
    answer_plain: Option<PathBuf>,
}

/// Counts bytes and lines on their way out, for the summary on stderr.
struct Counting<W> {
    inner: W,
    lines: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = GenConfig {
        lines: args.lines,
        seed: args.seed,
        mode: match args.mode {
            ModeArg::Mixed => Mode::Mixed,
            ModeArg::AllNew => Mode::AllNew,
        },
        start: args.start,
        days: args.days,
    };
    let began = Instant::now();
    let (lines, (detail, plain)) = match &args.out {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("creating {}", p.display()))?;
            let mut w = Counting { inner: f, lines: 0 };
            let answers = generate_to(&cfg, &mut w)?;
            (w.lines, answers)
        }
        None => {
            let mut w = Counting {
                inner: io::stdout().lock(),
                lines: 0,
            };
            let answers = generate_to(&cfg, &mut w)?;
            (w.lines, answers)
        }
    };
    let secs = began.elapsed().as_secs_f64();
    if let Some(p) = &args.answer {
        write_json(p, &detail)?;
    }
    if let Some(p) = &args.answer_plain {
        write_json(p, &plain)?;
    }
    let (mut downloads, mut requests) = (0u64, 0u64);
    for months in detail.as_object().into_iter().flat_map(|o| o.values()) {
        for t in months.as_object().into_iter().flat_map(|o| o.values()) {
            downloads += t["downloads"].as_u64().unwrap_or(0);
            requests += t["requests"].as_u64().unwrap_or(0);
        }
    }
    eprintln!(
        "genlog: {lines} lines ({requests} counted requests, {:.1}%; {downloads} downloads) in {secs:.2} s, {:.0} lines/s",
        100.0 * requests as f64 / lines.max(1) as f64,
        lines as f64 / secs.max(1e-9)
    );
    Ok(())
}
