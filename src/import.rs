//! `dlcount-pipe import`: historical and rotated logs through the same
//! counting path as the pipe, and `import-json` for the old script's counts.
//!
//! Invariants: every file is its own source, so identical lines combine as a
//! multiset with what the pipe and other imports saw (see `store`) and any
//! number of imports of the same or overlapping files changes nothing twice.
//! Commits are short (one per [`LINES_PER_COMMIT`] lines) so a live pipe on the
//! same database is never kept waiting long, and whatever was read before an
//! error (a truncated gzip, say) stays counted. gzip is recognised by its
//! magic bytes, and multi-member files are read whole.

use crate::classify::{normalize_target, path_key, Classifier};
use crate::config::Settings;
use crate::logformat::{identity, TargetForm};
use crate::store::{ApplyStats, Origin, Store};
use crate::tally::{Batch, LineProcessor, LineSplitter, LineStats, Piece};
use anyhow::{bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Lines per transaction: short enough that a live pipe waits milliseconds.
pub const LINES_PER_COMMIT: u64 = 65_536;
const READ_BUF: usize = 1 << 20;

/// Totals of an import run, printed as the summary.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub files: usize,
    pub failed: Vec<(PathBuf, String)>,
    pub lines: LineStats,
    pub applied: ApplyStats,
    pub elapsed: Duration,
    /// Per file: the first rejected line numbers.
    pub reject_samples: Vec<(String, u64, &'static str)>,
}

/// A reader that counts the (compressed) bytes taken from the file, for progress.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
    overall: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        self.overall.inc(n as u64);
        Ok(n)
    }
}

/// A file to import: a path, possibly opened already (before dropping root,
/// so that `root:adm` logs stay readable to an import that runs as `--user`).
pub struct Input {
    pub path: PathBuf,
    opened: Option<std::result::Result<File, String>>,
}

impl Input {
    /// Opened when its turn comes.
    pub fn lazy(path: PathBuf) -> Input {
        Input { path, opened: None }
    }

    /// Opened now (`-` is stdin and needs no opening).
    pub fn open_now(path: PathBuf) -> Input {
        let opened = if path == Path::new("-") {
            None
        } else {
            Some(open_file(&path))
        };
        Input { path, opened }
    }
}

fn open_file(path: &Path) -> std::result::Result<File, String> {
    if path.is_dir() {
        return Err("is a directory".into());
    }
    File::open(path).map_err(|e| e.to_string())
}

/// Opens a file or `-`, transparently decompressing gzip (by magic bytes).
fn open_input(
    input: &mut Input,
    bar: ProgressBar,
    overall: ProgressBar,
) -> Result<Box<dyn Read + Send>> {
    let path = input.path.as_path();
    let raw: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        let file = match input.opened.take() {
            Some(r) => r,
            None => open_file(path),
        };
        Box::new(file.map_err(|e| anyhow::anyhow!("{e}"))?)
    };
    let mut buffered = BufReader::with_capacity(
        READ_BUF,
        Counting {
            inner: raw,
            bar,
            overall,
        },
    );
    let head = buffered.fill_buf().map_err(|e| anyhow::anyhow!("{e}"))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buffered)))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Imports `files` into the settings' database.
pub fn run(
    settings: &Settings,
    mut files: Vec<Input>,
    show_progress: bool,
) -> Result<ImportSummary> {
    let started = Instant::now();
    let mut store = Store::open(&settings.db)?;
    let run = store.new_source("import-run", &format!("{} file(s)", files.len()))?;
    let progress = show_progress && std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let total_bytes: u64 = files
        .iter()
        .filter(|i| i.path.as_os_str() != "-")
        .filter_map(|i| std::fs::metadata(&i.path).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    let overall = multi.add(ProgressBar::new(total_bytes));
    overall.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    overall.set_prefix("all");
    let mut summary = ImportSummary::default();
    for input in &mut files {
        let path = input.path.clone();
        let name = path.display().to_string();
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let bar = multi.insert_before(&overall, ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix("file");
        bar.set_message(name.clone());
        summary.files += 1;
        let result = import_one(
            settings,
            &mut store,
            run,
            input,
            bar.clone(),
            overall.clone(),
            &mut summary,
        );
        bar.finish_and_clear();
        if let Err(e) = result {
            let msg = format!("{e:#}");
            multi.suspend(|| eprintln!("dlcount: import: {name}: {msg}"));
            summary.failed.push((path.clone(), msg));
        }
    }
    overall.finish_and_clear();
    let today = crate::store::day_of(chrono::Local::now().date_naive());
    store.purge(today, settings.retention_days)?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Reads one file on a helper thread (decompress, split, parse, classify)
/// while this thread writes the batches, so both cores work.
fn import_one(
    settings: &Settings,
    store: &mut Store,
    run: i64,
    input: &mut Input,
    bar: ProgressBar,
    overall: ProgressBar,
    summary: &mut ImportSummary,
) -> Result<()> {
    let path = input.path.clone();
    let input = open_input(input, bar, overall)?;
    let file_source = store.new_source("import", &path.display().to_string())?;
    let slot = std::sync::Arc::new(std::sync::OnceLock::new());
    let _ = slot.set(store.hasher());
    let processor = LineProcessor::new(settings.format.clone(), Classifier::new(&settings.exts))
        .with_server(&settings.server)
        .with_geoip(settings.geoip.clone())
        .with_hasher(slot);
    let (tx, rx) = mpsc::sync_channel::<Batch>(4);
    let reader = std::thread::spawn(move || read_batches(input, processor, tx));
    let name = path.display().to_string();
    let mut write_error = None;
    let mut unmatched = (0u64, 0u8);
    for batch in rx.iter() {
        for s in &batch.stats.samples {
            if summary.reject_samples.len() < 5 {
                summary
                    .reject_samples
                    .push((name.clone(), s.line_no, s.reason.describe()));
            }
        }
        summary.lines.merge(&batch.stats);
        match store.apply(
            std::slice::from_ref(&batch),
            Origin::Import { file_source, run },
        ) {
            Ok(stats) => {
                unmatched.0 += stats.unmatched_lines;
                unmatched.1 |= stats.unmatched_fields;
                summary.applied.merge(&stats);
            }
            Err(e) => {
                write_error = Some(e);
                break;
            }
        }
    }
    drop(rx);
    let read_result = reader.join().expect("reader thread panicked");
    if let Some(e) = write_error {
        return Err(e.context("cannot write the database"));
    }
    read_result.map_err(|(e, line)| {
        anyhow::anyhow!("{e} (after line {line}; the lines before it are counted)")
    })?;
    if unmatched.0 > 0 {
        anyhow::bail!(
            "{} counted line(s) left out: their days were first counted from a log that \
             identifies a line by {} too, which this file's lines lack (format {:?}), so they \
             cannot be matched with what was counted and importing them would count those \
             requests twice; the other lines are counted. If the file does log those fields, \
             import it with --format set to the LogFormat it was written with",
            unmatched.0,
            identity::describe(unmatched.1),
            settings.format.source(),
        );
    }
    Ok(())
}

fn read_batches(
    mut input: Box<dyn Read + Send>,
    mut processor: LineProcessor,
    tx: mpsc::SyncSender<Batch>,
) -> std::result::Result<(), (std::io::Error, u64)> {
    let mut buf = vec![0u8; READ_BUF];
    let mut splitter = LineSplitter::new();
    let mut batch = Batch::new();
    let result = loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err((e, splitter.line_no())),
        };
        splitter.feed(&buf[..n], |piece| match piece {
            Piece::Line(line, no) => processor.process_line(line, no, &mut batch),
            Piece::TooLong(no) => processor.too_long(no, &mut batch),
        });
        if batch.stats.lines >= LINES_PER_COMMIT && tx.send(std::mem::take(&mut batch)).is_err() {
            return Ok(());
        }
    };
    if result.is_ok() {
        splitter.finish(|piece| match piece {
            Piece::Line(line, no) => processor.process_line(line, no, &mut batch),
            Piece::TooLong(no) => processor.too_long(no, &mut batch),
        });
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    result
}

impl ImportSummary {
    /// The human summary printed at the end.
    pub fn render(&self) -> String {
        let l = &self.lines;
        let a = &self.applied;
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        let mut s = format!(
            "read {} file(s){}: {} lines in {:.2}s ({:.0} lines/s)\n\
             \x20 downloads: {} new, {} already known\n\
             \x20 counted lines: {} new, {} already counted before\n\
             \x20 not counted: {} other files, {} other statuses, {} other methods\n\
             \x20 rejected lines: {}\n\
             \x20 skipped for closed days: {}\n",
            self.files,
            if self.failed.is_empty() {
                String::new()
            } else {
                format!(", {} failed", self.failed.len())
            },
            l.lines,
            secs,
            l.lines as f64 / secs,
            a.new_downloads,
            a.known_downloads,
            a.counted_lines,
            a.already_counted_lines,
            l.ignored_ext,
            l.ignored_status,
            l.ignored_method,
            l.rejected_total(),
            a.closed_day_lines,
        );
        if a.unmatched_lines > 0 {
            s.push_str(&format!(
                "  left out, not matchable with what was counted: {} (see FAILED)\n",
                a.unmatched_lines
            ));
        }
        for (reason, n) in &l.rejected {
            s.push_str(&format!("    {n} × {}\n", reason.describe()));
        }
        for (file, line, why) in &self.reject_samples {
            s.push_str(&format!("    e.g. {file} line {line}: {why}\n"));
        }
        if a.closed_day_lines > 0 {
            s.push_str(
                "  (closed days are older than the retention window; their counts are final)\n",
            );
        }
        for (file, why) in &self.failed {
            s.push_str(&format!("  FAILED {}: {why}\n", file.display()));
        }
        s
    }
}

/// `import-json`: the old script's `{"<file>": {"YYYY-MM": n}}` as legacy months.
///
/// A name starting with `/` is taken as the URL path; any other name gets
/// `prefix` and a `/` in front. Paths are normalised like log lines, so the
/// keys meet the ones counted from logs. All or nothing: one bad entry and
/// nothing is imported.
pub fn import_json(
    db: &crate::config::DbTarget,
    file: &Path,
    text: &str,
    prefix: &str,
) -> Result<(usize, usize)> {
    let value: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("{} is not valid JSON", file.display()))?;
    let obj = value.as_object().with_context(|| {
        format!(
            "{}: expected {{\"<file>\": {{\"YYYY-MM\": n}}}}",
            file.display()
        )
    })?;
    let mut entries = Vec::new();
    let mut path_buf = Vec::new();
    for (name, months) in obj {
        let url = if name.starts_with('/') {
            name.clone()
        } else {
            format!("{}/{}", prefix.trim_end_matches('/'), name)
        };
        // Names in a counts file were written with Apache's escaping, as before.
        normalize_target(
            url.as_bytes(),
            TargetForm::UrlPath,
            crate::logformat::Escape::Default,
            &mut path_buf,
        );
        let key = path_key(&path_buf);
        let months = months
            .as_object()
            .with_context(|| format!("{}: {name:?} should map months to counts", file.display()))?;
        for (month, n) in months {
            let ok = month.len() == 7
                && month.as_bytes()[4] == b'-'
                && month[..4].bytes().all(|b| b.is_ascii_digit())
                && matches!(month[5..].parse::<u32>(), Ok(1..=12));
            if !ok {
                bail!(
                    "{}: {name:?}: {month:?} is not a YYYY-MM month",
                    file.display()
                );
            }
            let n = n.as_u64().with_context(|| {
                format!(
                    "{}: {name:?} {month}: {n} is not a whole number",
                    file.display()
                )
            })?;
            entries.push((key.clone(), month.clone(), n));
        }
    }
    let mut store = Store::open(db)?;
    let changed = store.import_legacy(&entries)?;
    Ok((entries.len(), changed))
}
