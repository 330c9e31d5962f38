//! `dlcount-pipe follow FILE…`: log files of any server, counted as they are
//! written, across logrotate's `create` and `copytruncate` and across
//! restarts of dlcount itself (the reading is `crate::follow::Follower`'s).
//!
//! Each file's checkpoint is a mark in the database (`follow:<path>`): the
//! device, inode, offset and fingerprint of every file still being read for
//! that path (the current one, and a rotated one not finished yet), and the
//! source id its lines are counted under. It is committed in the same
//! transaction as the lines it covers — the follower gives a position after
//! every chunk of lines and the reader hands a followed file's lines over
//! only together with the position after them — so after a crash or SIGKILL
//! the next start resumes exactly where the counts end.
//!
//! A followed file is counted as an import of that file (`Origin::Import`),
//! not as a live stream: a line read twice (a checkpoint that no longer fits,
//! two followers of one file, an `import` of the same file) is not counted
//! twice. Resumed exactly, a file keeps its source id, so copies of one line
//! split by a restart still add up; read again from its start it gets a new
//! one (the most copies one source saw count, see `store::dedup`).
//!
//! Invariant: the reader never drops a followed file's lines: while the
//! database cannot take them it stops reading ([`Backpressure::Always`]) —
//! the file keeps them. A configuration error stops `follow` (exit 2); the
//! lines wait in the file, and the next start reads them from the checkpoint.

use super::{Backpressure, Item, Source, Stop};
use crate::cli::FollowArgs;
use crate::config::{Extra, Settings};
use crate::follow::{FilePosition, Follower, Note};
use crate::store::{Origin, Store};
use crate::tally::{BatchMark, Piece};
use anyhow::Result;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Marks of followed files are named this, then the file's absolute path.
pub const MARK_PREFIX: &str = "follow:";
/// How often the files are looked at when nothing is being read.
const POLL: Duration = Duration::from_millis(200);
/// While the database cannot be opened at start, tried again this often.
const OPEN_RETRY: Duration = Duration::from_secs(5);

/// A followed path's checkpoint (see the module header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The source id the path's lines are counted under.
    pub source: i64,
    pub files: Vec<FilePosition>,
}

impl Checkpoint {
    /// `1 SOURCE DEV:INO:OFFSET:LEN:FINGERPRINT …`
    pub fn encode(&self) -> String {
        use std::fmt::Write;
        let mut s = format!("1 {}", self.source);
        for f in &self.files {
            let _ = write!(
                s,
                " {}:{}:{}:{}:{}",
                f.dev,
                f.ino,
                f.offset,
                f.fingerprint_len,
                hex(&f.fingerprint)
            );
        }
        s
    }

    pub fn decode(text: &str) -> Option<Checkpoint> {
        let mut words = text.split_ascii_whitespace();
        if words.next()? != "1" {
            return None;
        }
        let source = words.next()?.parse().ok()?;
        let files = words
            .map(|w| {
                let mut p = w.split(':');
                let pos = FilePosition {
                    dev: p.next()?.parse().ok()?,
                    ino: p.next()?.parse().ok()?,
                    offset: p.next()?.parse().ok()?,
                    fingerprint_len: p.next()?.parse().ok()?,
                    fingerprint: unhex(p.next()?)?,
                };
                p.next().is_none().then_some(pos)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Checkpoint { source, files })
    }
}

fn hex(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// One followed path.
struct Followed {
    path: PathBuf,
    mark_name: String,
    follower: Follower,
    origin: Origin,
    source: i64,
    /// The last mark given, so an unchanged position gives none.
    last: Option<String>,
    /// The last read error said (said again only when it changes).
    trouble: Option<String>,
}

/// The followed files as a [`Source`].
pub struct FollowSource {
    files: Vec<Followed>,
    stop: Arc<Stop>,
    first: bool,
}

impl Source for FollowSource {
    fn wait(&mut self, timeout: Option<Duration>) -> bool {
        if std::mem::take(&mut self.first) {
            return true;
        }
        let t = timeout.map_or(POLL, |t| t.min(POLL));
        self.stop.sleep(Some(t));
        true
    }

    fn read(&mut self, sink: &mut dyn FnMut(Item<'_>)) -> std::io::Result<bool> {
        let stopping = self.stop.is_set();
        let sink = RefCell::new(sink);
        for f in &mut self.files {
            (sink.borrow_mut())(Item::Origin(f.origin));
            let (name, source, last) = (&f.mark_name, f.source, &mut f.last);
            let polled = f.follower.poll_marked(
                &mut |p| match p {
                    Piece::Line(l, no) => (sink.borrow_mut())(Item::Line(l, no)),
                    Piece::TooLong(no) => (sink.borrow_mut())(Item::TooLong(no)),
                },
                &mut |files| {
                    let value = Checkpoint { source, files }.encode();
                    if last.as_deref() != Some(value.as_str()) {
                        *last = Some(value.clone());
                        (sink.borrow_mut())(Item::Mark(BatchMark {
                            name: name.clone(),
                            value,
                        }));
                    }
                },
            );
            match polled {
                Ok(notes) => {
                    f.trouble = None;
                    for n in notes {
                        say(&f.path, &n);
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    if f.trouble.as_deref() != Some(why.as_str()) {
                        eprintln!(
                            "dlcount: cannot read {} ({why}); trying again",
                            f.path.display()
                        );
                        f.trouble = Some(why);
                    }
                }
            }
        }
        Ok(!stopping)
    }

    fn backpressure(&self) -> Backpressure {
        Backpressure::Always
    }

    fn stop(&self) -> Option<Arc<Stop>> {
        Some(Arc::clone(&self.stop))
    }

    fn name(&self) -> &'static str {
        "the followed files"
    }

    fn recovery(&self) -> &'static str {
        "they stay in the files and are read again from the last checkpoint at the next start"
    }

    fn hand_over_each_read(&self) -> bool {
        true
    }
}

/// One line in the log for what the follower noticed.
fn say(path: &Path, note: &Note) {
    let p = path.display();
    match note {
        Note::Resumed { offset } => eprintln!("dlcount: following {p} from byte {offset} (its checkpoint)"),
        Note::ResumedRotated { name, offset } => eprintln!(
            "dlcount: {p} was rotated while dlcount was stopped: reading on in {} from byte {offset}, \
             then the new {p} from its start",
            name.display()
        ),
        Note::FromStart => eprintln!(
            "dlcount: the checkpoint of {p} does not fit it any more (replaced, truncated or compressed \
             while dlcount was stopped): reading it from its start (lines counted before are not counted again)"
        ),
        Note::Rotated => eprintln!("dlcount: {p} was rotated: reading the new file from its start, the old one to its end"),
        Note::Truncated { read_up_to, copy: Some(copy) } => eprintln!(
            "dlcount: {p} was truncated (copytruncate) at byte {read_up_to}: reading the lines not read yet \
             from the copy {}, then {p} from its start",
            copy.display()
        ),
        Note::Truncated { read_up_to, copy: None } => eprintln!(
            "dlcount: {p} was truncated (copytruncate) after byte {read_up_to} was read, and no copy of it \
             was found beside it: lines written to it since then and before the truncation are lost \
             (import the rotated copy to count them; see the README on copytruncate)"
        ),
        Note::ClosedRotated { .. } => {}
    }
}

/// `dlcount-pipe follow`. Returns the exit code.
pub fn run(args: &FollowArgs) -> Result<i32> {
    let live = &args.live;
    let extra = Extra {
        user: live.user.clone(),
        root: None,
        refresh: live.refresh,
        max_pending: live.max_pending,
    };
    let settings = match Settings::resolve(&live.db, &live.parse, &live.site, &extra) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "dlcount: error: {e:#}; not following until the configuration is fixed \
                 (`dlcount-pipe check` names every problem): the lines wait in the files, and \
                 follow reads them from its checkpoint once it starts"
            );
            return Ok(2);
        }
    };
    let paths: Vec<PathBuf> = args
        .files
        .iter()
        .map(std::path::absolute)
        .collect::<std::io::Result<_>>()?;
    crate::daemon::start(&args.daemon)?;
    let code = follow(&settings, paths);
    crate::daemon::finish(&args.daemon);
    code
}

fn follow(settings: &Settings, paths: Vec<PathBuf>) -> Result<i32> {
    match &settings.user {
        Some(u) if crate::privs::is_root() => crate::privs::drop_to(u)?,
        Some(u) => crate::privs::lookup(u).map(|_| ())?,
        None if crate::privs::is_root() => eprintln!(
            "dlcount: warning: running as root; give --user (e.g. --user dlcount) to drop privileges"
        ),
        None => {}
    }
    settings.check_db_path()?;
    let stop = Stop::new()?;
    super::listen::stop_on_signals(&stop)?;
    let Some(mut store) = open_store(settings, &stop) else {
        eprintln!("dlcount: stopped before the database could be opened; nothing read");
        return Ok(0);
    };
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let run = store.new_source("follow-run", &names.join(" "))?;
    let mut files = Vec::new();
    for path in paths {
        let mark_name = format!("{MARK_PREFIX}{}", path.display());
        let saved = store.mark(&mark_name)?.and_then(|v| Checkpoint::decode(&v));
        let (follower, notes) =
            Follower::start_at(&path, saved.as_ref().map_or(&[][..], |c| &c.files[..]));
        let resumed = notes
            .iter()
            .any(|n| matches!(n, Note::Resumed { .. } | Note::ResumedRotated { .. }));
        let source = match &saved {
            Some(c) if resumed => c.source,
            _ => store.new_source("follow", &path.display().to_string())?,
        };
        if notes.is_empty() {
            eprintln!("dlcount: following {} from its start", path.display());
        }
        for n in &notes {
            say(&path, n);
        }
        files.push(Followed {
            path,
            mark_name,
            follower,
            origin: Origin::Import {
                file_source: source,
                run,
            },
            source,
            last: saved.map(|c| c.encode()),
            trouble: None,
        });
    }
    drop(store);
    let source = FollowSource {
        files,
        stop,
        first: true,
    };
    Ok(super::run_live(settings, Box::new(source)))
}

/// Opens the database, trying again while it cannot be (the files keep
/// their lines meanwhile); `None` if told to stop first.
fn open_store(settings: &Settings, stop: &Stop) -> Option<Store> {
    let mut said: Option<String> = None;
    loop {
        match Store::open(&settings.db) {
            Ok(s) => return Some(s),
            Err(e) => {
                let why = crate::pipe::describe(&e);
                if said.as_deref() != Some(why.as_str()) {
                    eprintln!(
                        "dlcount: cannot open the database yet ({why}); trying again every {} s",
                        OPEN_RETRY.as_secs()
                    );
                    said = Some(why);
                }
            }
        }
        if stop.sleep(Some(OPEN_RETRY)) {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_junk_is_none() {
        let cp = Checkpoint {
            source: 42,
            files: vec![
                FilePosition {
                    dev: 2049,
                    ino: 131_073,
                    offset: 1_234_567,
                    fingerprint: [0xab; 32],
                    fingerprint_len: 1024,
                },
                FilePosition {
                    dev: 2049,
                    ino: 7,
                    offset: 0,
                    fingerprint: [0; 32],
                    fingerprint_len: 0,
                },
            ],
        };
        let text = cp.encode();
        assert_eq!(
            text,
            format!(
                "1 42 2049:131073:1234567:1024:{} 2049:7:0:0:{}",
                "ab".repeat(32),
                "00".repeat(32)
            )
        );
        assert_eq!(Checkpoint::decode(&text), Some(cp));
        let empty = Checkpoint {
            source: 3,
            files: vec![],
        };
        assert_eq!(Checkpoint::decode(&empty.encode()), Some(empty));
        for junk in [
            "",
            "2 1",
            "1 x",
            "1 1 1:2:3",
            "1 1 1:2:3:4:zz",
            "1 1 1:2:3:4:ab:5",
        ] {
            assert_eq!(Checkpoint::decode(junk), None, "{junk:?}");
        }
    }
}
