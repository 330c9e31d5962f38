//! The spool: Apache's lines kept on disk while the configuration is unusable,
//! and counted once a logger starts with a valid one.
//!
//! A typo in the TOML must neither hang the site (the pipe is always read)
//! nor lose downloads. So a logger that cannot start counting writes what it
//! reads, unchanged, to `spool/spool-<time>-<pid>.log` beside the database it
//! was meant to use (or would most likely have used), up to [`SPOOL_LIMIT`]
//! bytes for the whole directory; past that, lines are discarded and counted,
//! and the error log says so. A logger that does start drains every spool
//! file it can lock, through the same counting path, as live lines: they were
//! Apache's pipe, which no other logger saw.
//!
//! Invariants: a spool file is written under an exclusive `flock`, so it is
//! never drained while a logger still appends to it; each drained batch and
//! the file offset it reached are committed in one transaction, so a drain
//! that is killed and started again never counts a line twice; a file is
//! deleted only once every line of it is committed.

use crate::classify::Classifier;
use crate::config::{Settings, DEFAULT_DB};
use crate::store::{Origin, Store};
use crate::tally::{Batch, LineProcessor};
use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg, OFlag};
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most the spool directory holds, all files together: about five
/// million access lines, a day or more of a busy download server.
pub const SPOOL_LIMIT: u64 = 1 << 30;

/// Lines per drain transaction (as an import's).
const DRAIN_LINES: u64 = 65_536;

/// How often a running logger looks again for spool files it could not lock
/// (an old logger still appending to one after a graceful restart).
const DRAIN_RETRY: Duration = Duration::from_secs(5);

/// The spool directory of a database: `spool/` beside it.
pub fn dir_for(db: &Path) -> PathBuf {
    match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("spool"),
        _ => PathBuf::from("spool"),
    }
}

/// The database a logger with an unusable configuration was meant to use,
/// as far as can be told: `--db` on the command line, else `db` in the
/// `--config` file (read leniently, as the file may be what is broken), else
/// the default.
pub fn intended_db(args: &[OsString]) -> PathBuf {
    let value_of = |name: &str| -> Option<PathBuf> {
        let eq = format!("{name}=");
        let mut it = args.iter().skip(1);
        while let Some(a) = it.next() {
            let a = a.to_string_lossy();
            if a == name {
                return it.next().map(PathBuf::from);
            }
            if let Some(v) = a.strip_prefix(&eq) {
                return Some(PathBuf::from(v));
            }
        }
        None
    };
    if let Some(db) = value_of("--db") {
        return db;
    }
    value_of("--config")
        .and_then(|c| std::fs::read_to_string(c).ok())
        .and_then(|text| db_in_config_text(&text))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
}

/// `db = "…"` of a config file that may not parse as a whole.
fn db_in_config_text(text: &str) -> Option<PathBuf> {
    if let Ok(table) = text.parse::<toml::Table>() {
        return table.get("db")?.as_str().map(PathBuf::from);
    }
    text.lines().find_map(|l| {
        let rest = l
            .trim()
            .strip_prefix("db")?
            .trim_start()
            .strip_prefix('=')?;
        let v = rest.trim().strip_prefix('"')?;
        Some(PathBuf::from(&v[..v.find('"')?]))
    })
}

/// What became of the input of a logger that could not count.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SpoolOutcome {
    pub file: Option<PathBuf>,
    pub spooled_lines: u64,
    pub discarded_lines: u64,
}

/// Reads `input` to its end, keeping it in a new spool file in `dir` while
/// there is room. Never stops reading: whatever cannot be kept is counted
/// and discarded. The configuration `problem` and where the lines go make
/// one line in `log` (Apache's error log); trouble later adds one more.
pub fn spool_input(
    dir: &Path,
    problem: &str,
    input: &mut dyn Read,
    log: &mut dyn Write,
) -> SpoolOutcome {
    let recover = "recover them later with `dlcount-pipe import` of Apache's access.log";
    let mut out = SpoolOutcome::default();
    let mut writer = match SpoolFile::create(dir) {
        Ok(w) => {
            let _ = writeln!(
                log,
                "dlcount-pipe: error: {problem}; not counting until the configuration is fixed \
                 (`dlcount-pipe check` names every problem): lines are kept in {} (at most {} MiB \
                 in {}) and counted when dlcount-pipe starts with a valid configuration",
                w.path.display(),
                SPOOL_LIMIT >> 20,
                dir.display()
            );
            out.file = Some(w.path.clone());
            Some(w)
        }
        Err(e) => {
            let _ = writeln!(
                log,
                "dlcount-pipe: error: {problem}; not counting until the configuration is fixed \
                 (`dlcount-pipe check` names every problem); cannot spool to {} ({e:#}): lines \
                 are read and discarded, {recover}",
                dir.display()
            );
            None
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    // Whether the input so far ends inside a line (a last line without newline).
    let mut partial = false;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = &buf[..n];
        partial = chunk.last() != Some(&b'\n');
        let lines = memchr::memchr_iter(b'\n', chunk).count() as u64;
        let Some(w) = writer.as_mut() else {
            out.discarded_lines += lines;
            continue;
        };
        if w.room() >= n as u64 {
            match w.write(chunk) {
                Ok(()) => out.spooled_lines += lines,
                Err(e) => {
                    let _ = writeln!(
                        log,
                        "dlcount-pipe: cannot write the spool {} ({e}): further lines are \
                         discarded; {recover}",
                        w.path.display()
                    );
                    out.discarded_lines += lines;
                    writer = None;
                }
            }
            continue;
        }
        // Full: keep whole lines only, cut at the last newline that fits.
        let fits = &chunk[..w.room() as usize];
        let cut = memchr::memrchr(b'\n', fits).map_or(0, |i| i + 1);
        let kept = memchr::memchr_iter(b'\n', &chunk[..cut]).count() as u64;
        if w.write(&chunk[..cut]).is_ok() {
            out.spooled_lines += kept;
        }
        out.discarded_lines += lines - kept;
        let _ = writeln!(
            log,
            "dlcount-pipe: the spool {} is full ({} MiB): further lines are discarded; {recover}",
            dir.display(),
            SPOOL_LIMIT >> 20
        );
        writer = None;
    }
    if partial {
        // A last line without its newline: spooled with it if it was written.
        match writer {
            Some(_) => out.spooled_lines += 1,
            None => out.discarded_lines += 1,
        }
    }
    if out.discarded_lines > 0 {
        let _ = writeln!(
            log,
            "dlcount-pipe: input closed: {} line(s) spooled, {} discarded",
            out.spooled_lines, out.discarded_lines
        );
    }
    out
}

/// A spool file being written, locked for as long as it is open.
struct SpoolFile {
    path: PathBuf,
    file: Flock<File>,
    /// Bytes the directory may still take.
    room: u64,
}

impl SpoolFile {
    fn create(dir: &Path) -> Result<SpoolFile> {
        let parent = dir.parent().unwrap_or(Path::new("."));
        let owner = std::fs::metadata(parent)
            .with_context(|| format!("{} is not usable", parent.display()))?;
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o750)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // By descriptor, never following a link: the directory's owner
            // could swap the path for a symlink to make root chown elsewhere.
            let opened = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
                .open(dir)
                .with_context(|| format!("cannot open {}", dir.display()))?;
            give_to_owner_of(&opened, &owner);
        }
        let used: u64 = spool_files(dir)?
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        // Names sort by time; the sequence number keeps two spools of one
        // process (or a reused pid) within a second apart.
        // Made under a name no drainer looks at, locked, then renamed: a
        // drainer can never take (and delete) a file before its writer holds it.
        let (temp, file) = (0u32..)
            .map(|n| {
                let path = dir.join(format!(".new-spool-{stamp}-{}-{n}", std::process::id()));
                let opened = std::fs::OpenOptions::new()
                    .append(true)
                    .create_new(true)
                    .mode(0o640)
                    .open(&path);
                (path, opened)
            })
            .find(|(_, r)| !matches!(r, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists))
            .expect("an unused name");
        let file = file.with_context(|| format!("cannot create {}", temp.display()))?;
        // Whoever counts later runs as the database directory's owner.
        give_to_owner_of(&file, &owner);
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| anyhow::anyhow!("cannot lock {}: {e}", temp.display()))?;
        let name = temp.file_name().expect("a file name").to_string_lossy();
        let path = dir.join(format!("{}.log", &name[".new-".len()..]));
        std::fs::rename(&temp, &path)
            .with_context(|| format!("cannot rename {} to {}", temp.display(), path.display()))?;
        Ok(SpoolFile {
            path,
            file,
            room: SPOOL_LIMIT.saturating_sub(used),
        })
    }

    fn room(&self) -> u64 {
        self.room
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all(bytes)?;
        self.room = self.room.saturating_sub(bytes.len() as u64);
        Ok(())
    }
}

/// As root, hands a spool path to the owner of the database directory (the
/// logger's user), so the logger that drains it can read and delete it.
fn give_to_owner_of(file: &File, owner: &std::fs::Metadata) {
    if crate::privs::is_root() {
        let _ = std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid()));
    }
}

/// The spool files in `dir`, oldest first (an absent directory has none).
pub fn spool_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("spool-") && n.ends_with(".log"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// What a drain did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DrainStats {
    pub files: u64,
    pub lines: u64,
    pub counted_lines: u64,
    /// Files still being written by another logger (tried again later).
    pub busy: u64,
}

/// Counts every spool file of the settings' database that no logger is
/// writing any more, then deletes it.
pub fn drain(settings: &Settings) -> Result<DrainStats> {
    let dir = dir_for(&settings.db);
    let mut stats = DrainStats::default();
    let files = spool_files(&dir)?;
    if files.is_empty() {
        return Ok(stats);
    }
    let mut store = Store::open(&settings.db)?;
    // Offsets of files deleted by a drain that was stopped before it could
    // forget them: a later file of the same name must start at 0.
    for name in store.spool_names()? {
        if !dir.join(&name).exists() {
            store.forget_spool(&name)?;
        }
    }
    for path in files {
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err(_) => {
                stats.busy += 1;
                continue;
            }
        };
        // Another drainer may have counted and deleted it while we waited
        // for the lock: then this is a dead inode, not the file at `path`.
        let same = std::fs::metadata(&path).is_ok_and(|m| {
            file.metadata()
                .is_ok_and(|f| f.ino() == m.ino() && f.nlink() > 0)
        });
        if !same {
            continue;
        }
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let done = store.spool_offset(&name)?;
        file.seek(SeekFrom::Start(done))?;
        let mut processor =
            LineProcessor::new(settings.format.clone(), Classifier::new(&settings.exts));
        let mut reader = BufReader::with_capacity(256 * 1024, &*file);
        let mut offset = done;
        let mut line = Vec::new();
        let mut batch = Batch::new();
        let mut line_no = 0;
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n > 0 {
                line_no += 1;
                offset += n as u64;
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                if text.len() > crate::tally::MAX_LINE {
                    processor.too_long(line_no, &mut batch);
                } else {
                    processor.process_line(text, line_no, &mut batch);
                }
            }
            if n == 0 || batch.stats.lines >= DRAIN_LINES {
                stats.lines += batch.stats.lines;
                let applied = store.apply_spooled(
                    std::slice::from_ref(&batch),
                    Origin::Live,
                    &name,
                    offset,
                )?;
                stats.counted_lines += applied.counted_lines;
                batch = Batch::new();
            }
            if n == 0 {
                break;
            }
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove {} after counting it", path.display()))?;
        store.forget_spool(&name)?;
        stats.files += 1;
    }
    Ok(stats)
}

/// In a running logger: drains the spool on a thread of its own (with its
/// own database connection, like an import), retrying files another logger
/// still writes, and calls `counted` after lines were counted. Ends when the
/// spool is empty; messages go to stderr (Apache's error log).
pub fn spawn_drainer(settings: Settings, counted: Box<dyn Fn() + Send>) {
    if spool_files(&dir_for(&settings.db)).map_or(true, |f| f.is_empty()) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("spool".into())
        .spawn(move || {
            let mut last_error: Option<String> = None;
            loop {
            match drain(&settings) {
                Ok(s) => {
                    if s.files > 0 {
                        eprintln!(
                            "dlcount: counted {} spooled line(s) from {} spool file(s): {} new",
                            s.lines, s.files, s.counted_lines
                        );
                        counted();
                    }
                    if s.busy == 0 {
                        return;
                    }
                }
                Err(e) => {
                    // Said once per kind of trouble, retried quietly.
                    let why = crate::pipe::describe(&e);
                    if last_error.as_deref() != Some(why.as_str()) {
                        eprintln!(
                            "dlcount: cannot count the spool in {} yet: {why}; trying again every {} s",
                            dir_for(&settings.db).display(),
                            DRAIN_RETRY.as_secs()
                        );
                        last_error = Some(why);
                    }
                }
            }
            std::thread::sleep(DRAIN_RETRY);
            }
        });
    if let Err(e) = spawned {
        eprintln!("dlcount: cannot start the spool thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_intended_database_comes_from_the_command_line_or_a_broken_config() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        let args = |v: &[&str]| -> Vec<OsString> { v.iter().map(OsString::from).collect() };
        assert_eq!(
            intended_db(&args(&["dlcount-pipe", "--db", "/x/a.sqlite"])),
            PathBuf::from("/x/a.sqlite")
        );
        assert_eq!(
            intended_db(&args(&["dlcount-pipe", "--db=/x/b.sqlite"])),
            PathBuf::from("/x/b.sqlite")
        );
        // Valid TOML with an unknown key, and TOML that does not parse at all.
        std::fs::write(&cfg, "db = \"/srv/dl/dl.sqlite\"\nfromat = \"combined\"\n").unwrap();
        let with_config = args(&["dlcount-pipe", "--config", cfg.to_str().unwrap()]);
        assert_eq!(
            intended_db(&with_config),
            PathBuf::from("/srv/dl/dl.sqlite")
        );
        std::fs::write(
            &cfg,
            "root = /var/www\n db = \"/srv/dl/dl.sqlite\"  # ours\n",
        )
        .unwrap();
        assert_eq!(
            intended_db(&with_config),
            PathBuf::from("/srv/dl/dl.sqlite")
        );
        std::fs::write(&cfg, "root = \"/var/www\"\n").unwrap();
        assert_eq!(intended_db(&with_config), PathBuf::from(DEFAULT_DB));
        assert_eq!(
            dir_for(Path::new("/var/lib/dlcount/dlcount.sqlite")),
            PathBuf::from("/var/lib/dlcount/spool")
        );
    }

    #[test]
    fn spooling_keeps_whole_lines_and_discards_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let input = b"line one\nline two\n".repeat(3);
        let mut log = Vec::new();
        let out = spool_input(&spool, "bad", &mut &input[..], &mut log);
        assert_eq!((out.spooled_lines, out.discarded_lines), (6, 0));
        let file = out.file.unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), input);
        assert_eq!(spool_files(&spool).unwrap(), vec![file.clone()]);
        let log = String::from_utf8(log).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(
            log.starts_with("dlcount-pipe: error: bad; not counting"),
            "{log}"
        );
        assert!(
            log.contains(&format!("lines are kept in {}", file.display())),
            "{log}"
        );

        // A directory already at its limit (a sparse file stands for it) keeps nothing more.
        let full = spool.join("spool-00000000-000000-1.log");
        let used = input.len() as u64; // the first spool file
        File::create(&full)
            .unwrap()
            .set_len(SPOOL_LIMIT - used - 12)
            .unwrap();
        let mut log = Vec::new();
        let out = spool_input(&spool, "bad", &mut &input[..], &mut log);
        // 12 bytes of room: "line one\n" (9) fits, "line two\n" does not.
        assert_eq!((out.spooled_lines, out.discarded_lines), (1, 5));
        assert_eq!(std::fs::read(out.file.unwrap()).unwrap(), b"line one\n");
        let log = String::from_utf8(log).unwrap();
        assert!(
            log.contains("is full (1024 MiB): further lines are discarded"),
            "{log}"
        );
        assert!(
            log.contains("input closed: 1 line(s) spooled, 5 discarded"),
            "{log}"
        );
    }

    #[test]
    fn a_drain_stopped_midway_goes_on_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.sqlite");
        let settings = Settings::resolve(
            &crate::cli::DbArgs {
                db: Some(db.clone()),
                config: None,
            },
            &Default::default(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        let line = |ip: u8| {
            format!("198.51.100.{ip} - - [20/Nov/2026:10:00:00 +0100] \"GET /a.iso HTTP/1.1\" 200 5 \"-\" \"-\"\n")
        };
        let spool = dir_for(&db);
        std::fs::create_dir(&spool).unwrap();
        let name = "spool-20261120-100000-1-0.log";
        let text = format!("{}{}{}", line(1), line(2), line(3));
        std::fs::write(spool.join(name), &text).unwrap();
        // A drain that committed the first line, then was killed.
        {
            let mut store = Store::open(&db).unwrap();
            let mut p =
                LineProcessor::new(settings.format.clone(), Classifier::new(&settings.exts));
            let mut b = Batch::new();
            p.process_line(line(1).trim_end().as_bytes(), 1, &mut b);
            store
                .apply_spooled(&[b], Origin::Live, name, line(1).len() as u64)
                .unwrap();
        }
        let stats = drain(&settings).unwrap();
        assert_eq!((stats.files, stats.lines, stats.counted_lines), (1, 2, 2));
        assert!(spool_files(&spool).unwrap().is_empty());
        let store = Store::open(&db).unwrap();
        assert_eq!(store.spool_offset(name).unwrap(), 0);
        let rows = store.monthly().unwrap();
        assert_eq!((rows[0].downloads, rows[0].requests), (3, 3));
    }
}
