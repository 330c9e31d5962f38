//! The spool: Apache's lines kept on disk while the configuration is unusable,
//! and counted once a logger starts with a valid one.
//!
//! A typo in the TOML must neither hang the site (the pipe is always read)
//! nor lose downloads. So a logger that cannot start counting writes what it
//! reads, unchanged, to `spool/spool-<time>-<pid>.log` beside the database it
//! was meant to use (or would most likely have used), up to [`SPOOL_LIMIT`]
//! bytes for the whole directory; past that, lines are discarded and counted,
//! and the error log says so. A logger that does start drains every spool
//! file it can lock, through the same counting path and line splitter
//! ([`LineSplitter`], so a line is never held beyond [`crate::tally::MAX_LINE`]),
//! as live lines: they were Apache's pipe, which no other logger saw. At EOF
//! it finishes the drain (or stops at a committed offset) within
//! [`DRAIN_AT_EXIT`] before it exits, and says what it left.
//!
//! Spool files hold raw lines, client addresses included — the one place
//! they reach the disk — so they are `0600` in a `0700` directory and live
//! only until counted.
//!
//! Invariants: the spool directory is a [`PrivateDir`], only ever used through a descriptor
//! opened without following a link, and only when it is a real directory
//! owned by the user we run as (or root) and writable by no one else; its
//! files are created exclusively and opened without following links — so
//! whoever owns the database directory cannot plant a link that makes the
//! logger write, read or delete elsewhere. A spool file is written under an
//! exclusive `flock`, so it is never drained while a logger still appends to
//! it; each drained batch and the file offset it reached (the end of a whole
//! line) are committed in one transaction, so a drain that is killed and
//! started again never counts a line twice; a file is deleted only once
//! every line of it is committed.

use crate::classify::Classifier;
use crate::config::{db_dir, Settings, DEFAULT_DB};
use crate::dirfd::PrivateDir;
use crate::store::{Origin, Store};
use crate::tally::{Batch, LineProcessor, LineSplitter, Piece};
use anyhow::{Context, Result};
use nix::fcntl::{renameat, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstatat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most the spool directory holds, all files together: about five
/// million access lines, a day or more of a busy download server.
pub const SPOOL_LIMIT: u64 = 1 << 30;

/// Lines per drain transaction (as an import's).
const DRAIN_LINES: u64 = 65_536;

/// How often a running logger looks again for spool files it could not lock
/// (an old logger still appending to one after a graceful restart).
const DRAIN_RETRY: Duration = Duration::from_secs(5);

/// At EOF, how long a logger goes on draining the spool before it exits
/// (it stops at a committed offset; the next logger goes on from there).
pub const DRAIN_AT_EXIT: Duration = Duration::from_secs(30);

/// Bytes read from a spool file at a time.
const DRAIN_CHUNK: usize = 256 * 1024;

/// The spool directory in a logger's local state directory
/// ([`crate::config::DbTarget::local_dir`]: beside an SQLite database).
pub fn dir_for(local_dir: &Path) -> PathBuf {
    local_dir.join("spool")
}

/// The database a logger with an unusable configuration was meant to use,
/// as far as can be told: `--db` on the command line, else `db` in the
/// config file (`--config` or the default one, read leniently, as the file
/// may be what is broken), else the default.
pub fn intended_db(args: &[OsString]) -> PathBuf {
    if let Some(db) = value_of(args, "--db") {
        return PathBuf::from(db);
    }
    config_text(args)
        .and_then(|text| key_in_config_text(&text, "db"))
        .map_or_else(|| PathBuf::from(DEFAULT_DB), PathBuf::from)
}

/// The local state directory (where the spool goes) of that logger: beside
/// its SQLite file, or its `--state-dir` with a PostgreSQL `--db`.
pub fn intended_local_dir(args: &[OsString]) -> PathBuf {
    let db = intended_db(args);
    match crate::config::DbTarget::new(&db, None, None) {
        Ok(crate::config::DbTarget::Sqlite(path)) => db_dir(&path).to_owned(),
        _ => value_of(args, "--state-dir")
            .map(PathBuf::from)
            .or_else(|| {
                config_text(args)
                    .and_then(|text| key_in_config_text(&text, "state_dir"))
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_STATE_DIR)),
    }
}

/// The user a logger with an unusable configuration was meant to run as,
/// found as [`intended_db`] finds the database.
pub fn intended_user(args: &[OsString]) -> Option<String> {
    value_of(args, "--user")
        .map(|u| u.to_string_lossy().into_owned())
        .or_else(|| config_text(args).and_then(|text| key_in_config_text(&text, "user")))
}

fn value_of(args: &[OsString], name: &str) -> Option<OsString> {
    let eq = format!("{name}=");
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let text = a.to_string_lossy();
        if text == name {
            return it.next().cloned();
        }
        if let Some(v) = text.strip_prefix(&eq) {
            return Some(v.into());
        }
    }
    None
}

/// The config file's text: `--config`, else the default one.
fn config_text(args: &[OsString]) -> Option<String> {
    let db = crate::cli::DbArgs {
        config: value_of(args, "--config").map(PathBuf::from),
        ..Default::default()
    };
    std::fs::read_to_string(crate::config::config_path(&db)?).ok()
}

/// `key = "…"` of a config file that may not parse as a whole.
fn key_in_config_text(text: &str, key: &str) -> Option<String> {
    if let Ok(table) = text.parse::<toml::Table>() {
        return table.get(key)?.as_str().map(str::to_string);
    }
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(key)?.trim_start().strip_prefix('=')?;
        let v = rest.trim().strip_prefix('"')?;
        Some(v[..v.find('"')?].to_string())
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
/// there is room (`Err`: why there is no spool to write). Never stops
/// reading: whatever cannot be kept is counted and discarded. The
/// configuration `problem` and where the lines go make one line in `log`
/// (Apache's error log); trouble later adds one more.
pub fn spool_input(
    dir: Result<&Path, &str>,
    problem: &str,
    input: &mut dyn Read,
    log: &mut dyn Write,
) -> SpoolOutcome {
    let recover = "recover them later with `dlcount-pipe import` of Apache's access.log";
    let mut out = SpoolOutcome::default();
    let created = dir.map_err(|e| anyhow::anyhow!("{e}")).and_then(|d| {
        SpoolFile::create(d)
            .map(|w| (d, w))
            .map_err(|e| e.context(format!("cannot spool to {}", d.display())))
    });
    let mut writer = match created {
        Ok((d, w)) => {
            let _ = writeln!(
                log,
                "dlcount: error: {problem}; not counting until the configuration is fixed \
                 (`dlcount-pipe check` names every problem): lines are kept in {} (at most {} MiB \
                 in {}) and counted when dlcount-pipe starts with a valid configuration",
                w.path.display(),
                SPOOL_LIMIT >> 20,
                d.display()
            );
            out.file = Some(w.path.clone());
            Some(w)
        }
        Err(e) => {
            let _ = writeln!(
                log,
                "dlcount: error: {problem}; not counting until the configuration is fixed \
                 (`dlcount-pipe check` names every problem); {}: lines are read and discarded, \
                 {recover}",
                crate::pipe::describe(&e)
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
                        "dlcount: cannot write the spool {} ({e}): further lines are \
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
            "dlcount: the spool {} is full ({} MiB): further lines are discarded; {recover}",
            w.path.parent().unwrap_or(Path::new(".")).display(),
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
            "dlcount: input closed: {} line(s) spooled, {} discarded",
            out.spooled_lines, out.discarded_lines
        );
    }
    out
}

/// The spool files of a verified directory, oldest first.
fn spool_names(dir: &PrivateDir) -> Result<Vec<String>> {
    Ok(spool_files(&dir.path)?
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
        .collect())
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
        let dir =
            PrivateDir::open(dir, true)?.with_context(|| format!("{} vanished", dir.display()))?;
        let used: u64 = spool_names(&dir)?.iter().map(|n| dir.size_of(n)).sum();
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        // Names sort by time; the sequence number keeps two spools of one
        // process (or a reused pid) within a second apart.
        // Made under a name no drainer looks at, locked, then renamed: a
        // drainer can never take (and delete) a file before its writer holds it.
        let (temp, file) = (0u32..)
            .map(|n| {
                let name = format!(".new-spool-{stamp}-{}-{n}", std::process::id());
                let opened = dir.open_file(
                    &name,
                    OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_EXCL,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                );
                (name, opened)
            })
            .find(|(_, r)| !matches!(r, Err(nix::errno::Errno::EEXIST)))
            .expect("an unused name");
        let file = file.with_context(|| format!("cannot create {}/{temp}", dir.path.display()))?;
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| anyhow::anyhow!("cannot lock {}/{temp}: {e}", dir.path.display()))?;
        let name = &temp[".new-".len()..];
        let name = format!("{name}.log");
        renameat(&dir.fd, temp.as_str(), &dir.fd, name.as_str())
            .with_context(|| format!("cannot rename {}/{temp} to {name}", dir.path.display()))?;
        Ok(SpoolFile {
            path: dir.path.join(name),
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
    /// Files left at a committed offset because `stop` said so.
    pub stopped: u64,
}

/// Counts every spool file of the settings' database that no logger is
/// writing any more, then deletes it. Between transactions, `stop()` ends
/// the drain at the offset just committed.
pub fn drain(settings: &Settings, stop: &dyn Fn() -> bool) -> Result<DrainStats> {
    let mut stats = DrainStats::default();
    let Some(dir) = PrivateDir::open(&dir_for(settings.db.local_dir()), false)? else {
        return Ok(stats);
    };
    let files = spool_names(&dir)?;
    if files.is_empty() {
        return Ok(stats);
    }
    let mut store = Store::open(&settings.db)?;
    // Offsets of files deleted by a drain that was stopped before it could
    // forget them: a later file of the same name must start at 0.
    for name in store.spool_names()? {
        if fstatat(
            &dir.fd,
            name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_err()
        {
            store.forget_spool(&name)?;
        }
    }
    for (i, name) in files.iter().enumerate() {
        if stop() {
            stats.stopped += (files.len() - i) as u64;
            break;
        }
        let path = dir.path.join(name);
        let file = match dir.open_file(name, OFlag::O_RDONLY, Mode::empty()) {
            Ok(f) => f,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        };
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err(_) => {
                stats.busy += 1;
                continue;
            }
        };
        // Another drainer may have counted and deleted it while we waited
        // for the lock: then this is a dead inode, not the file at `path`.
        if !dir.still_at(name, &file) {
            continue;
        }
        let done = store.spool_offset(name)?;
        file.seek(SeekFrom::Start(done))?;
        let mut processor =
            LineProcessor::new(settings.format.clone(), Classifier::new(&settings.exts))
                .with_server(&settings.server)
                .with_geoip(settings.geoip.clone())
                .with_root(settings.size_root.clone());
        let mut splitter = LineSplitter::new();
        let mut buf = vec![0u8; DRAIN_CHUNK];
        // Bytes read so far, and the end of the last whole line among them.
        let (mut read, mut boundary) = (done, done);
        let mut batch = Batch::new();
        let mut finished = false;
        loop {
            let n = match file.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            };
            let mut piece = |p: Piece<'_>| match p {
                Piece::Line(text, no) => processor.process_line(text, no, &mut batch),
                Piece::TooLong(no) => processor.too_long(no, &mut batch),
            };
            if n == 0 {
                splitter.finish(&mut piece);
                boundary = read;
                finished = true;
            } else {
                let chunk = &buf[..n];
                splitter.feed(chunk, &mut piece);
                if let Some(i) = memchr::memrchr(b'\n', chunk) {
                    boundary = read + i as u64 + 1;
                }
                read += n as u64;
            }
            if finished || batch.stats.lines >= DRAIN_LINES {
                stats.lines += batch.stats.lines;
                let applied = store.apply_spooled(
                    std::slice::from_ref(&batch),
                    Origin::Live,
                    name,
                    boundary,
                )?;
                stats.counted_lines += applied.counted_lines;
                batch = Batch::new();
                if !finished && stop() {
                    break;
                }
            }
            if finished {
                break;
            }
        }
        if !finished {
            stats.stopped += (files.len() - i) as u64;
            break;
        }
        unlinkat(&dir.fd, name.as_str(), UnlinkatFlags::NoRemoveDir)
            .with_context(|| format!("cannot remove {} after counting it", path.display()))?;
        store.forget_spool(name)?;
        stats.files += 1;
    }
    Ok(stats)
}

/// A running logger's spool drain (see [`spawn_drainer`]).
pub struct Drainer {
    /// Set at EOF: the drain ends by then, and tries busy files no more.
    deadline: Arc<Mutex<Option<Instant>>>,
    wake: mpsc::Sender<()>,
    done: mpsc::Receiver<Result<(), String>>,
    dir: PathBuf,
}

impl Drainer {
    /// At EOF: lets the drain finish (or stop at a committed offset) within
    /// `limit`; returns what it left undone, as one line for the error log.
    pub fn finish(self, limit: Duration) -> Option<String> {
        *self.deadline.lock().expect("deadline lock") = Some(Instant::now() + limit);
        let _ = self.wake.send(());
        // One transaction past the deadline (a busy database waits 10 s).
        let outcome = match self.done.recv_timeout(limit + Duration::from_secs(15)) {
            Ok(r) => r,
            Err(_) => Err("the database did not answer in time".to_string()),
        };
        let left = spool_files(&self.dir).map_or(0, |f| f.len());
        match outcome {
            Ok(()) if left == 0 => None,
            Ok(()) => Some(format!(
                "dlcount: exiting with {left} spool file(s) in {} not counted yet (still written by another logger, or past the {} s allowed at exit): the next logger counts them",
                self.dir.display(),
                limit.as_secs()
            )),
            Err(why) => Some(format!(
                "dlcount: exiting with {left} spool file(s) in {} not counted yet ({why}): the next logger counts them",
                self.dir.display()
            )),
        }
    }
}

/// In a running logger: drains the spool on a thread of its own (with its
/// own database connection, like an import), retrying files another logger
/// still writes, and calls `counted` after lines were counted. Ends when the
/// spool is empty, or once [`Drainer::finish`] was called and its time is up;
/// messages go to stderr (Apache's error log). `None`: nothing to drain.
pub fn spawn_drainer(settings: Settings, counted: Box<dyn Fn() + Send>) -> Option<Drainer> {
    let dir = dir_for(settings.db.local_dir());
    if spool_files(&dir).map_or(true, |f| f.is_empty()) {
        return None;
    }
    let deadline: Arc<Mutex<Option<Instant>>> = Arc::default();
    let (wake, woken) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel();
    let shared = deadline.clone();
    let spawned = std::thread::Builder::new()
        .name("spool".into())
        .spawn(move || {
            let at_exit = || *shared.lock().expect("deadline lock");
            let stop = || at_exit().is_some_and(|d| Instant::now() >= d);
            let mut last_error: Option<String> = None;
            let result = loop {
                let outcome = drain(&settings, &stop);
                match &outcome {
                    Ok(s) => {
                        if s.files > 0 || s.lines > 0 {
                            eprintln!(
                                "dlcount: counted {} spooled line(s) from {} spool file(s): {} new",
                                s.lines, s.files, s.counted_lines
                            );
                            counted();
                        }
                        if s.busy == 0 && s.stopped == 0 {
                            break Ok(());
                        }
                    }
                    Err(e) => {
                        // Said once per kind of trouble, retried quietly.
                        let why = crate::pipe::describe(e);
                        if last_error.as_deref() != Some(why.as_str()) {
                            eprintln!(
                                "dlcount: cannot count the spool in {} yet: {why}; trying again every {} s",
                                dir_for(settings.db.local_dir()).display(),
                                DRAIN_RETRY.as_secs()
                            );
                            last_error = Some(why);
                        }
                    }
                }
                // After EOF one more pass is all: a busy file's writer may
                // live for hours, and the error is said already.
                if at_exit().is_some() {
                    break match outcome {
                        Ok(_) => Ok(()),
                        Err(e) => Err(crate::pipe::describe(&e)),
                    };
                }
                let _ = woken.recv_timeout(DRAIN_RETRY);
            };
            let _ = done_tx.send(result);
        });
    match spawned {
        Ok(_) => Some(Drainer {
            deadline,
            wake,
            done,
            dir,
        }),
        Err(e) => {
            eprintln!("dlcount: cannot start the spool thread: {e}");
            None
        }
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
        // The user to spool as comes the same ways.
        assert_eq!(intended_user(&with_config), None);
        std::fs::write(&cfg, "user = \"dlcount\"\nformat = [broken\n").unwrap();
        assert_eq!(intended_user(&with_config), Some("dlcount".to_string()));
        let mut with_user = with_config.clone();
        with_user.extend(args(&["x", "--user=www-data"]).into_iter().skip(1));
        assert_eq!(intended_user(&with_user), Some("www-data".to_string()));
        assert_eq!(
            dir_for(Path::new("/var/lib/dlcount")),
            PathBuf::from("/var/lib/dlcount/spool")
        );
    }

    #[test]
    fn spooling_keeps_whole_lines_and_discards_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let input = b"line one\nline two\n".repeat(3);
        let mut log = Vec::new();
        let out = spool_input(Ok(&spool), "bad", &mut &input[..], &mut log);
        assert_eq!((out.spooled_lines, out.discarded_lines), (6, 0));
        let file = out.file.unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), input);
        assert_eq!(spool_files(&spool).unwrap(), vec![file.clone()]);
        let log = String::from_utf8(log).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(
            log.starts_with("dlcount: error: bad; not counting"),
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
        let out = spool_input(Ok(&spool), "bad", &mut &input[..], &mut log);
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
                ..Default::default()
            },
            &Default::default(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        let line = |ip: u8| {
            format!("198.51.100.{ip} - - [20/Nov/2026:10:00:00 +0100] \"GET /a.iso HTTP/1.1\" 200 5 \"-\" \"-\"\n")
        };
        let spool = dir_for(db.parent().unwrap());
        std::fs::create_dir(&spool).unwrap();
        let name = "spool-20261120-100000-1-0.log";
        let text = format!("{}{}{}", line(1), line(2), line(3));
        std::fs::write(spool.join(name), &text).unwrap();
        // A drain that committed the first line, then was killed.
        {
            let mut store = Store::open(&crate::config::DbTarget::Sqlite(db.clone())).unwrap();
            let mut p =
                LineProcessor::new(settings.format.clone(), Classifier::new(&settings.exts))
                    .with_server(&settings.server);
            let mut b = Batch::new();
            p.process_line(line(1).trim_end().as_bytes(), 1, &mut b);
            store
                .apply_spooled(&[b], Origin::Live, name, line(1).len() as u64)
                .unwrap();
        }
        let stats = drain(&settings, &|| false).unwrap();
        assert_eq!((stats.files, stats.lines, stats.counted_lines), (1, 2, 2));
        assert!(spool_files(&spool).unwrap().is_empty());
        let store = Store::open(&crate::config::DbTarget::Sqlite(db.clone())).unwrap();
        assert_eq!(store.spool_offset(name).unwrap(), 0);
        let rows = store.monthly().unwrap();
        assert_eq!((rows[0].downloads, rows[0].requests), (3, 3));
    }

    #[test]
    fn a_drain_told_to_stop_ends_at_a_committed_line_and_the_next_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.sqlite");
        let settings = Settings::resolve(
            &crate::cli::DbArgs {
                db: Some(db.clone()),
                config: None,
                ..Default::default()
            },
            &Default::default(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        let n = DRAIN_LINES as usize + 1000;
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!(
                "10.0.{}.{} - - [20/Nov/2026:10:00:00 +0100] \"GET /a.iso HTTP/1.1\" 200 5 \"-\" \"-\"\n",
                i >> 8,
                i & 255
            ));
            if i == 10 {
                // Too long for any line: rejected, never held whole.
                text.push_str(&"x".repeat(crate::tally::MAX_LINE + 1));
                text.push('\n');
            }
        }
        let spool = dir_for(db.parent().unwrap());
        std::fs::create_dir(&spool).unwrap();
        let name = "spool-20261120-100000-1-0.log";
        std::fs::write(spool.join(name), &text).unwrap();
        // Time is up right after the first transaction.
        let asked = std::cell::Cell::new(0);
        let first = drain(&settings, &|| {
            asked.set(asked.get() + 1);
            asked.get() > 1
        })
        .unwrap();
        assert_eq!((first.files, first.stopped), (0, 1));
        assert!(first.lines >= DRAIN_LINES, "{first:?}");
        let offset = Store::open(&crate::config::DbTarget::Sqlite(db.clone()))
            .unwrap()
            .spool_offset(name)
            .unwrap() as usize;
        assert_eq!(&text[offset - 1..offset], "\n");
        assert_eq!(text[..offset].matches('\n').count() as u64, first.lines);
        let rest = drain(&settings, &|| false).unwrap();
        assert_eq!((rest.files, rest.stopped), (1, 0));
        assert_eq!(first.lines + rest.lines, n as u64 + 1);
        assert_eq!(first.counted_lines + rest.counted_lines, n as u64);
        assert!(spool_files(&spool).unwrap().is_empty());
        let rows = Store::open(&crate::config::DbTarget::Sqlite(db.clone()))
            .unwrap()
            .monthly()
            .unwrap();
        assert_eq!(rows[0].downloads, n as u64);
    }
}
