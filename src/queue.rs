//! The outage queue: counted lines kept on local disk — hashed, without any
//! raw client address — while the database cannot take them, and counted
//! once it can, by this logger or the next one started for the database.
//!
//! The pipe's owner holds up to `--max-pending` counted lines in memory
//! while the database fails. Past that bound, and on SIGTERM or EOF while it
//! still fails, lines go to the **spill thread** ([`SpillSender`]), so that
//! neither the reader nor the owner (whose database calls may hang for the
//! busy or statement timeout) ever waits for the disk. It hashes each batch
//! with the database's secret ([`Batch::hash_all`]: every key the store may
//! need, the raw fields dropped) and appends it as records to its file in
//! `queue/` of the local state directory. Once the database answers again,
//! and whenever a logger starts, the owner replays the files oldest first,
//! one group commit at a time between its other work ([`Queue::replay_step`]).
//!
//! **The secret** is needed to hash. It lives in the database; when a
//! logger first reads it there, it keeps a copy in `queue/secret-<db>`, so a
//! logger that starts while the database cannot be reached (a PostgreSQL
//! server down, an SQLite file locked or unreadable) can still queue. A copy
//! that differs from the database's secret once that answers (the database
//! was recreated) is replaced and said in the error log; what was queued
//! under it is never counted (see below). With no secret known at all,
//! lines past the memory bound are dropped, counted and reported.
//!
//! **Format** (version 3, integers little-endian). A file starts with a
//! 64-byte header: `DLCOUNTQ`, version u32, flags u32 (0), the id of the
//! secret ([`KeyHasher::id`]) u64, a check u64 of those 24 bytes, and the
//! file key (32 random bytes). Records follow: payload length u32, check u64
//! (the first 8 bytes of BLAKE3 over the length and the payload as stored),
//! payload. A payload is one hashed batch, encrypted with the file key's
//! keystream (BLAKE3's XOF keyed with it over the record's offset): format
//! identity u8; the server's name (length u32, bytes); paths and referring
//! hosts (count u32, then length u32 and bytes each); hits (count u32, then [`HIT_BYTES`]
//! each: day i32, method u8, status u16, bytes u64, identity u8, path index
//! u32, the visitor key, the line keys of the [`SETS`] identity sets and
//! schema 1's, i64 each; then the line's facts (`tally::LineFacts`): client
//! class u8, country i32 (`geo::Country::stored`), network u16
//! (`geo::Network::stored`), and the index u32 of its Referer's host among
//! the paths (`u32::MAX`: direct)); then what it covers of its file
//! (`coverage::LineCover`): flags u8 (1: a range, 2: unplaced bytes, 4: a
//! known size), range start u64, range end u64, size u64 (0 when absent).
//! Version 1 (before the facts) still replays: its lines count as they
//! did, and their days' facts become unknown. Versions 1 and 2 (before the
//! cover) replay with their bytes unplaced and the size unknown, the bytes
//! rule of a format without `Content-Range` (`coverage`).
//!
//! Invariants:
//! - **No raw address, and nothing matchable left behind.** Records hold
//!   only a line's facts and secret-keyed hashes, encrypted with the file
//!   key, which is overwritten with zeros before a counted file is deleted:
//!   what a deleted file leaves in free blocks can no longer be matched
//!   against the secret and a log (as the store's day keys do for closed days).
//! - **Counted once.** Each replayed group commits together with the file's
//!   mark `queue:<name>` (the offset reached; `done <unix time>` at the end)
//!   in one transaction; a file is deleted only once its mark says done; and
//!   a done mark outlives its file by the retention window (after which
//!   every day the file touched is closed), so a replay killed midway, a
//!   file deleted late or a copy put back never counts a line twice. (Live
//!   lines are not harmless to apply twice by themselves: live copies add up.)
//! - **Never miscounted.** A record cut short or failing its check at the
//!   end of a file (a write a crash cut short) is dropped and reported; one
//!   failing in the middle stops the file, which is set aside as `.bad`; a
//!   file made with another secret is never applied: it is reported once per
//!   logger with its count of lines and left alone.
//! - **Private and bounded.** The directory is a [`PrivateDir`] (0700, never
//!   through a link); a file is created 0600 under a temporary name, locked
//!   (`flock`, held while it is written, so it is never replayed then),
//!   given its header and only then renamed; all files together hold at most
//!   [`QUEUE_LIMIT`] bytes, past which lines are dropped, counted and reported.

use crate::agent::ClientClass;
use crate::config::DbTarget;
use crate::coverage::LineCover;
use crate::dirfd::PrivateDir;
use crate::geo::{Country, Network};
use crate::keys::{KeyHasher, LineKeys, Scratch, SETS};
use crate::pipe::Throttle;
use crate::store::{ApplyStats, Mark, Origin, Store};
use crate::tally::{Batch, LineFacts};
use anyhow::{bail, Context, Result};
use nix::fcntl::{renameat, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most the queue directory holds, all files together: about ten
/// million counted lines (days of a busy download server's ISO traffic).
pub const QUEUE_LIMIT: u64 = 1 << 30;

const MAGIC: &[u8; 8] = b"DLCOUNTQ";
const VERSION: u32 = 3;
/// The version before line facts, still replayed.
const VERSION_NO_FACTS: u32 = 1;
/// The version before a line's cover, still replayed.
const VERSION_NO_COVER: u32 = 2;
const HEADER_BYTES: u64 = 64;
/// Where the file key starts in the header.
const KEY_AT: u64 = 32;
const RECORD_HEAD: u64 = 12;
/// Bytes of one hit in a payload of version 1.
const HIT_BYTES_V1: usize = 4 + 1 + 2 + 8 + 1 + 4 + 8 * (SETS + 2);
/// Bytes of one hit in a payload of version 2: version 1's, then the facts.
const HIT_BYTES_V2: usize = HIT_BYTES_V1 + 1 + 4 + 2 + 4;
/// Bytes of one hit in a payload: version 2's, then the cover.
pub const HIT_BYTES: usize = HIT_BYTES_V2 + 1 + 8 * 3;
/// A payload is cut at about this size (a longer one is refused as corrupt).
const RECORD_TARGET: usize = 4 << 20;
const MAX_RECORD: u32 = 64 << 20;
const SECRET_MAGIC: &[u8; 8] = b"DLCOUNTS";
const SECRET_BYTES: usize = 8 + 32 + 8;
/// Marks of queue files are named this, then the file's name.
const MARK: &str = "queue:";
/// A file's name: `q-<secret id>-<time>-<random>.dlq`.
const SUFFIX: &str = ".dlq";
/// How often a running logger looks for queue files to replay: often while
/// one is written by another logger (an old one after a graceful restart)…
const SCAN_BUSY: Duration = Duration::from_secs(5);
/// …else now and then (the spill thread may have written one in a moment of trouble).
const SCAN_IDLE: Duration = Duration::from_secs(60);
/// A spill thread that finished no batch for this long while some wait is
/// stuck (a hung disk): the reader stops waiting for it.
const SPILL_STUCK: Duration = Duration::from_secs(2);
/// After a failure to write the queue, how long batches are dropped before
/// a new file is tried.
const SPILL_RETRY: Duration = Duration::from_secs(5);
/// How long the owner waits for the spill thread to close its file.
const CLOSE_WAIT: Duration = Duration::from_secs(30);

/// The queue directory in a logger's local state directory
/// ([`crate::config::DbTarget::local_dir`]).
pub fn dir_for(local_dir: &Path) -> PathBuf {
    local_dir.join("queue")
}

fn check_of(parts: &[&[u8]]) -> u64 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p);
    }
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// XORs `data` with the keystream of `key` for the record at `offset`.
fn crypt(key: &[u8; 32], offset: u64, data: &mut [u8]) {
    let mut xof = blake3::Hasher::new_keyed(key)
        .update(b"dlcount queue record")
        .update(&offset.to_le_bytes())
        .finalize_xof();
    let mut ks = [0u8; 4096];
    for chunk in data.chunks_mut(ks.len()) {
        let ks = &mut ks[..chunk.len()];
        xof.fill(ks);
        for (b, k) in chunk.iter_mut().zip(ks.iter()) {
            *b ^= k;
        }
    }
}

fn header(secret_id: u64, key: &[u8; 32]) -> [u8; HEADER_BYTES as usize] {
    let mut h = [0u8; HEADER_BYTES as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&secret_id.to_le_bytes());
    let check = check_of(&[&h[..24]]);
    h[24..32].copy_from_slice(&check.to_le_bytes());
    h[32..].copy_from_slice(key);
    h
}

/// What a file's header says: the secret's id, the file key (`None`:
/// wiped, the file is counted) and the format version.
fn parse_header(h: &[u8]) -> Result<(u64, Option<[u8; 32]>, u32)> {
    if h.len() < HEADER_BYTES as usize || &h[..8] != MAGIC {
        bail!("not a dlcount queue file");
    }
    let version = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if ![VERSION, VERSION_NO_COVER, VERSION_NO_FACTS].contains(&version) {
        bail!("queue format version {version}, this dlcount reads {VERSION}");
    }
    if u64::from_le_bytes(h[24..32].try_into().expect("8 bytes")) != check_of(&[&h[..24]]) {
        bail!("damaged header");
    }
    let id = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    let key: [u8; 32] = h[32..64].try_into().expect("32 bytes");
    Ok((id, (key != [0; 32]).then_some(key), version))
}

/// The plaintext payloads of a hashed batch, each of at most about
/// [`RECORD_TARGET`] bytes.
pub fn encode_batch(batch: &Batch) -> Vec<Vec<u8>> {
    assert!(batch.is_hashed() || batch.hits().is_empty());
    let mut out = Vec::new();
    let hits = batch.hits();
    let mut start = 0;
    while start < hits.len() {
        // Paths first: take hits while the payload stays under the target.
        let mut paths: Vec<&[u8]> = Vec::new();
        let mut index: rustc_hash::FxHashMap<&[u8], u32> = Default::default();
        let mut idx = Vec::new();
        let mut hosts = Vec::new();
        let mut size = 1 + 4 + batch.server.len() + 4 + 4;
        let mut end = start;
        while end < hits.len() {
            let path = batch.path(&hits[end]);
            let host = batch.referer_host(&hits[end]);
            let new_text = |t: &[u8]| {
                if t.is_empty() || index.contains_key(t) {
                    0
                } else {
                    4 + t.len()
                }
            };
            let extra = HIT_BYTES + new_text(path) + new_text(host);
            if end > start && size + extra > RECORD_TARGET {
                break;
            }
            size += extra;
            idx.push(intern(&mut paths, &mut index, path));
            hosts.push(if host.is_empty() {
                u32::MAX
            } else {
                intern(&mut paths, &mut index, host)
            });
            end += 1;
        }
        let mut p = Vec::with_capacity(size);
        p.push(batch.format_identity);
        p.extend_from_slice(&(batch.server.len() as u32).to_le_bytes());
        p.extend_from_slice(batch.server.as_bytes());
        p.extend_from_slice(&(paths.len() as u32).to_le_bytes());
        for path in &paths {
            p.extend_from_slice(&(path.len() as u32).to_le_bytes());
            p.extend_from_slice(path);
        }
        p.extend_from_slice(&((end - start) as u32).to_le_bytes());
        for (j, h) in hits[start..end].iter().enumerate() {
            let k = batch.hashed_keys(start + j).expect("a hashed batch");
            p.extend_from_slice(&h.day.to_le_bytes());
            p.push(match h.method {
                crate::classify::Method::Get => b'G',
                crate::classify::Method::Head => b'H',
            });
            p.extend_from_slice(&h.status.to_le_bytes());
            p.extend_from_slice(&h.bytes.to_le_bytes());
            p.push(h.identity);
            p.extend_from_slice(&idx[j].to_le_bytes());
            p.extend_from_slice(&k.visitor.to_le_bytes());
            for l in k.line {
                p.extend_from_slice(&l.to_le_bytes());
            }
            p.extend_from_slice(&k.line_v1.to_le_bytes());
            let f = &h.facts;
            p.push(class_code(f.class));
            p.extend_from_slice(&(Country::stored(f.country) as i32).to_le_bytes());
            p.extend_from_slice(&f.network.stored().to_le_bytes());
            p.extend_from_slice(&hosts[j].to_le_bytes());
            let c = &h.cover;
            let flags = u8::from(c.range.is_some())
                | (u8::from(c.unplaced) << 1)
                | (u8::from(c.size.is_some()) << 2);
            p.push(flags);
            let (rs, re) = c.range.unwrap_or((0, 0));
            p.extend_from_slice(&rs.to_le_bytes());
            p.extend_from_slice(&re.to_le_bytes());
            p.extend_from_slice(&c.size.unwrap_or(0).to_le_bytes());
        }
        out.push(p);
        start = end;
    }
    out
}

/// The index of `text` in a payload's table of paths and hosts, added on first sight.
fn intern<'a>(
    table: &mut Vec<&'a [u8]>,
    index: &mut rustc_hash::FxHashMap<&'a [u8], u32>,
    text: &'a [u8],
) -> u32 {
    let next = table.len() as u32;
    *index.entry(text).or_insert_with(|| {
        table.push(text);
        next
    })
}

/// Reads a payload; every length and value is checked.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            bail!("record shorter than its contents");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }
}

/// A client class in a payload.
fn class_code(c: ClientClass) -> u8 {
    match c {
        ClientClass::Browser => 0,
        ClientClass::Downloader => 1,
        ClientClass::Other => 2,
        ClientClass::Bot => 3,
    }
}

/// The hashed batch of a plaintext payload of the current version, keyed
/// with the secret `keyed_with`.
pub fn decode_batch(payload: &[u8], keyed_with: u64) -> Result<Batch> {
    decode_batch_of(payload, keyed_with, VERSION)
}

/// The hashed batch of a plaintext payload of format `version`.
fn decode_batch_of(payload: &[u8], keyed_with: u64, version: u32) -> Result<Batch> {
    let with_facts = version != VERSION_NO_FACTS;
    let with_cover = version == VERSION;
    let hit_bytes = match version {
        VERSION_NO_FACTS => HIT_BYTES_V1,
        VERSION_NO_COVER => HIT_BYTES_V2,
        _ => HIT_BYTES,
    };
    let all = crate::logformat::identity::ALL | crate::logformat::identity::SERVER;
    let mut c = Cursor(payload);
    let format_identity = c.u8()?;
    if format_identity & !all != 0 {
        bail!("bad identity bits {format_identity}");
    }
    let server_len = c.u32()? as usize;
    let server = std::str::from_utf8(c.take(server_len)?).context("a server name not in UTF-8")?;
    let n_paths = c.u32()? as usize;
    let mut paths = Vec::with_capacity(n_paths.min(payload.len() / 4));
    for _ in 0..n_paths {
        let len = c.u32()? as usize;
        paths.push(c.take(len)?);
    }
    let n_hits = c.u32()? as usize;
    if c.0.len() != n_hits.saturating_mul(hit_bytes) {
        bail!("{n_hits} hits do not fill the record");
    }
    let mut b = Batch::hashed(format_identity, Arc::from(server), keyed_with);
    b.facts_missing = !with_facts;
    for _ in 0..n_hits {
        let day = c.u32()? as i32;
        let method = match c.u8()? {
            b'G' => crate::classify::Method::Get,
            b'H' => crate::classify::Method::Head,
            m => bail!("bad method {m}"),
        };
        let status = c.u16()?;
        let bytes = c.u64()?;
        let identity = c.u8()?;
        if identity & !all != 0 {
            bail!("bad identity bits {identity}");
        }
        let path = *paths
            .get(c.u32()? as usize)
            .context("path index out of range")?;
        let mut keys = LineKeys {
            visitor: c.i64()?,
            ..LineKeys::default()
        };
        for l in keys.line.iter_mut() {
            *l = c.i64()?;
        }
        keys.line_v1 = c.i64()?;
        let mut host: &[u8] = b"";
        let facts = if with_facts {
            let class = match c.u8()? {
                0 => ClientClass::Browser,
                1 => ClientClass::Downloader,
                2 => ClientClass::Other,
                3 => ClientClass::Bot,
                x => bail!("bad client class {x}"),
            };
            let country = c.u32()? as i32;
            if !(-1..=0xffff).contains(&country) {
                bail!("bad country {country}");
            }
            let network = Network::from_stored(c.u16()?);
            let h = c.u32()?;
            if h != u32::MAX {
                host = paths.get(h as usize).context("host index out of range")?;
            }
            LineFacts {
                class,
                country: Country::from_stored(i64::from(country)),
                network,
            }
        } else {
            LineFacts::default()
        };
        let head = method == crate::classify::Method::Head;
        let cover = if with_cover {
            let flags = c.u8()?;
            if flags & !7 != 0 {
                bail!("bad cover flags {flags}");
            }
            let (rs, re, size) = (c.u64()?, c.u64()?, c.u64()?);
            if rs > re {
                bail!("bad range {rs}-{re}");
            }
            LineCover {
                range: (flags & 1 != 0).then_some((rs, re)),
                unplaced: flags & 2 != 0,
                size: (flags & 4 != 0).then_some(size),
            }
        } else {
            LineCover::of(head, status, bytes, None, None)
        };
        b.push_hashed(
            day, method, status, bytes, identity, facts, cover, path, host, keys,
        );
    }
    Ok(b)
}

/// A record as stored: head and encrypted payload, for the record at `offset`.
fn seal(key: &[u8; 32], offset: u64, mut payload: Vec<u8>) -> Vec<u8> {
    crypt(key, offset + RECORD_HEAD, &mut payload);
    let len = (payload.len() as u32).to_le_bytes();
    let check = check_of(&[&len, &payload]);
    let mut rec = Vec::with_capacity(RECORD_HEAD as usize + payload.len());
    rec.extend_from_slice(&len);
    rec.extend_from_slice(&check.to_le_bytes());
    rec.extend_from_slice(&payload);
    rec
}

/// What the next record of a file is.
#[derive(Debug)]
enum Next {
    /// A payload (decrypted) and the offset after it.
    Record(Vec<u8>, u64),
    End,
    /// The file ends inside a record, or its last record fails its check:
    /// a write cut short. So many bytes.
    Torn(u64),
    /// A record in the middle fails its check.
    Corrupt(String),
}

/// Reads the records of an open queue file from `offset`.
struct RecordReader<'a> {
    file: &'a File,
    key: [u8; 32],
    offset: u64,
    len: u64,
}

impl RecordReader<'_> {
    fn next(&mut self) -> std::io::Result<Next> {
        let left = self.len.saturating_sub(self.offset);
        if left == 0 {
            return Ok(Next::End);
        }
        if left < RECORD_HEAD {
            return Ok(Next::Torn(left));
        }
        let mut head = [0u8; RECORD_HEAD as usize];
        self.file.read_exact_at(&mut head, self.offset)?;
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            return Ok(Next::Corrupt(format!(
                "a record at byte {} claims {len} bytes",
                self.offset
            )));
        }
        let total = RECORD_HEAD + u64::from(len);
        if total > left {
            return Ok(Next::Torn(left));
        }
        let mut payload = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut payload, self.offset + RECORD_HEAD)?;
        let check = u64::from_le_bytes(head[4..].try_into().expect("8 bytes"));
        if check != check_of(&[&head[..4], &payload]) {
            return Ok(if total == left {
                Next::Torn(left)
            } else {
                Next::Corrupt(format!(
                    "the record at byte {} fails its check",
                    self.offset
                ))
            });
        }
        crypt(&self.key, self.offset + RECORD_HEAD, &mut payload);
        self.offset += total;
        Ok(Next::Record(payload, self.offset))
    }
}

/// A queue file's name for the secret `secret_id`, made now.
fn new_name(secret_id: u64) -> Result<String> {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!(
        "q-{secret_id:016x}-{stamp}-{:016x}{SUFFIX}",
        u64::from_le_bytes(r)
    ))
}

/// The secret id and time stamp (`YYYYmmdd-HHMMSS`) in a queue file's name.
fn parse_name(name: &str) -> Option<(u64, &str)> {
    let rest = name.strip_prefix("q-")?.strip_suffix(SUFFIX)?;
    let (id, rest) = rest.split_once('-')?;
    let stamp = rest.get(..15)?;
    Some((u64::from_str_radix(id, 16).ok()?, stamp))
}

/// The queue files of a directory, oldest first.
fn queue_names(dir: &PrivateDir) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(&dir.path)
        .with_context(|| format!("cannot read {}", dir.path.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| parse_name(n).is_some())
        .collect();
    names.sort_by(|a, b| {
        let (sa, sb) = (parse_name(a).map(|p| p.1), parse_name(b).map(|p| p.1));
        sa.cmp(&sb).then(a.cmp(b))
    });
    Ok(names)
}

/// The queue files waiting in `local_dir` (of any secret), for `check`.
pub fn waiting_files(local_dir: &Path) -> Vec<PathBuf> {
    let dir = dir_for(local_dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| parse_name(n).is_some())
                .map(|n| dir.join(n))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Bytes of every file in the directory (what counts against the limit).
fn used_bytes(dir: &PrivateDir) -> u64 {
    std::fs::read_dir(&dir.path).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .map(|n| dir.size_of(&n))
            .sum()
    })
}

/// The name of the secret's copy for a database: beside an SQLite file its
/// name, else the URL without its password, hashed (several databases may
/// share a directory).
fn secret_file(db: &DbTarget) -> String {
    let id = match db.sqlite() {
        Some(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        None => db.display(),
    };
    format!("secret-{:016x}", check_of(&[b"dlcount db ", id.as_bytes()]))
}

/// The secret cached for `db` in `local_dir`, if a valid copy is there.
pub fn cached_secret(local_dir: &Path, db: &DbTarget) -> Option<KeyHasher> {
    let dir = PrivateDir::open(&dir_for(local_dir), false).ok()??;
    let mut f = dir
        .open_file(&secret_file(db), OFlag::O_RDONLY, Mode::empty())
        .ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    if buf.len() != SECRET_BYTES || &buf[..8] != SECRET_MAGIC {
        return None;
    }
    let check = u64::from_le_bytes(buf[40..48].try_into().ok()?);
    if check != check_of(&[&buf[..40]]) {
        return None;
    }
    Some(KeyHasher::new(buf[8..40].try_into().ok()?))
}

/// Keeps a copy of the secret for `db` in `local_dir` (0600, written under
/// a temporary name and renamed over the old copy).
pub fn cache_secret(local_dir: &Path, db: &DbTarget, hasher: &KeyHasher) -> Result<()> {
    let dir = PrivateDir::open(&dir_for(local_dir), true)?
        .with_context(|| format!("{} vanished", dir_for(local_dir).display()))?;
    let name = secret_file(db);
    let temp = format!(".new-{name}-{}", std::process::id());
    let _ = unlinkat(&dir.fd, temp.as_str(), UnlinkatFlags::NoRemoveDir);
    let mut buf = Vec::with_capacity(SECRET_BYTES);
    buf.extend_from_slice(SECRET_MAGIC);
    buf.extend_from_slice(hasher.secret());
    let check = check_of(&[&buf]);
    buf.extend_from_slice(&check.to_le_bytes());
    let mut f = dir
        .open_file(
            &temp,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .with_context(|| format!("cannot create {}/{temp}", dir.path.display()))?;
    f.write_all(&buf)
        .and_then(|()| f.sync_data())
        .with_context(|| format!("cannot write {}/{temp}", dir.path.display()))?;
    renameat(&dir.fd, temp.as_str(), &dir.fd, name.as_str())
        .with_context(|| format!("cannot rename {}/{temp}", dir.path.display()))?;
    Ok(())
}

/// A queue file being written, locked while it is open.
struct Writer {
    name: String,
    file: Flock<File>,
    key: [u8; 32],
    secret_id: u64,
    len: u64,
    /// Bytes written since the last `fdatasync`.
    unsynced: bool,
}

impl Writer {
    fn create(dir: &PrivateDir, secret_id: u64) -> Result<Writer> {
        let name = new_name(secret_id)?;
        let temp = format!(".new-{name}");
        let file = dir
            .open_file(
                &temp,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                Mode::S_IRUSR | Mode::S_IWUSR,
            )
            .with_context(|| format!("cannot create {}/{temp}", dir.path.display()))?;
        let mut file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| anyhow::anyhow!("cannot lock {}/{temp}: {e}", dir.path.display()))?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let written = file.write_all(&header(secret_id, &key));
        if let Err(e) = written {
            let _ = unlinkat(&dir.fd, temp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e).with_context(|| format!("cannot write {}/{temp}", dir.path.display()));
        }
        renameat(&dir.fd, temp.as_str(), &dir.fd, name.as_str())
            .with_context(|| format!("cannot rename {}/{temp}", dir.path.display()))?;
        Ok(Writer {
            name,
            file,
            key,
            secret_id,
            len: HEADER_BYTES,
            unsynced: true,
        })
    }

    /// Appends whole records, or nothing: a failed write is cut off again.
    fn append(&mut self, payloads: Vec<Vec<u8>>) -> std::io::Result<u64> {
        let mut bytes = Vec::new();
        for p in payloads {
            let rec = seal(&self.key, self.len + bytes.len() as u64, p);
            bytes.extend_from_slice(&rec);
        }
        match self.file.write_all(&bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                self.unsynced = true;
                Ok(bytes.len() as u64)
            }
            Err(e) => {
                // O_APPEND is not used: the file is ours alone, and its end is `len`.
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }

    fn sync(&mut self) {
        if self.unsynced {
            let _ = self.file.sync_data();
            self.unsynced = false;
        }
    }
}

// A batch moves by value a few times a second: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum SpillMsg {
    Batch(Batch),
    Secret(KeyHasher),
    /// Close the file being written (so it can be replayed), then answer.
    Close(Sender<()>),
}

/// What the spill thread did, shared with the owner.
struct SpillShared {
    /// Counted lines sent and not yet handled.
    in_flight: AtomicUsize,
    /// When the spill thread last finished a batch (milliseconds since
    /// `epoch`): a reader waits for room only while it makes progress.
    progress: AtomicU64,
    epoch: Instant,
    spilled: AtomicU64,
    dropped: AtomicU64,
    /// A file is open (and locked) for writing.
    open: AtomicBool,
    /// The last try to write the queue failed.
    broken: AtomicBool,
}

/// Sends batches to the spill thread.
#[derive(Clone)]
pub struct SpillSender {
    tx: Sender<SpillMsg>,
    shared: Arc<SpillShared>,
    /// Counted lines the reader may have on their way to the spill thread.
    limit: usize,
}

impl SpillShared {
    fn new() -> SpillShared {
        SpillShared {
            in_flight: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            epoch: Instant::now(),
            spilled: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            open: AtomicBool::new(false),
            broken: AtomicBool::new(false),
        }
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl SpillSender {
    /// For the reader past the memory bound: moves the counted lines of
    /// `batch` to the spill thread. While as many as the bound are on their
    /// way there already, it waits for room as long as the spill thread
    /// makes progress (a flood, far beyond a real server's rate, is merely
    /// faster than hashing and writing); a spill thread stuck for
    /// [`SPILL_STUCK`] (a hung disk) makes it give up at once: false,
    /// `batch` untouched.
    pub fn try_send(&self, batch: &mut Batch) -> bool {
        let hits = batch.hits().len();
        if hits == 0 {
            return true;
        }
        let shared = &self.shared;
        loop {
            let cur = shared.in_flight.load(Ordering::Acquire);
            if cur == 0 || cur + hits <= self.limit {
                break;
            }
            let since = shared
                .millis()
                .saturating_sub(shared.progress.load(Ordering::Acquire));
            if since >= SPILL_STUCK.as_millis() as u64 {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if shared.in_flight.fetch_add(hits, Ordering::AcqRel) == 0 {
            // Nothing was on its way: the clock of progress starts now.
            shared.progress.store(shared.millis(), Ordering::Release);
        }
        let hits_only = batch.take_hits();
        if self.tx.send(SpillMsg::Batch(hits_only)).is_err() {
            self.shared.in_flight.fetch_sub(hits, Ordering::AcqRel);
            self.shared.dropped.fetch_add(hits as u64, Ordering::AcqRel);
        }
        true
    }

    /// For the owner: sends a batch whatever is on the way.
    fn send(&self, batch: Batch) {
        let hits = batch.hits().len();
        self.shared.in_flight.fetch_add(hits, Ordering::AcqRel);
        if self.tx.send(SpillMsg::Batch(batch)).is_err() {
            self.shared.in_flight.fetch_sub(hits, Ordering::AcqRel);
            self.shared.dropped.fetch_add(hits as u64, Ordering::AcqRel);
        }
    }
}

/// The spill thread's state.
struct Spiller {
    dir_path: PathBuf,
    dir: Option<PrivateDir>,
    limit: u64,
    /// Bytes in the directory when the file was opened, plus ours since.
    used: u64,
    hasher: Option<KeyHasher>,
    scratch: Scratch,
    writer: Option<Writer>,
    shared: Arc<SpillShared>,
    max_pending: usize,
    secret_copy: PathBuf,
    says: Throttle,
    opens: Throttle,
    /// The last failure to write, and until when no new file is tried.
    failed: Option<(Instant, String)>,
}

impl Spiller {
    fn run(mut self, rx: Receiver<SpillMsg>) {
        loop {
            // Quiet for a moment after a write: it reaches the disk then.
            let unsynced = self.writer.as_ref().is_some_and(|w| w.unsynced);
            let received = if unsynced {
                rx.recv_timeout(Duration::from_millis(200))
            } else {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            let msg = match received {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    if let Some(w) = self.writer.as_mut() {
                        w.sync();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match msg {
                SpillMsg::Batch(b) => {
                    let hits = b.hits().len();
                    self.spill(b);
                    self.shared
                        .progress
                        .store(self.shared.millis(), Ordering::Release);
                    self.shared.in_flight.fetch_sub(hits, Ordering::AcqRel);
                }
                SpillMsg::Secret(h) => {
                    if self.writer.as_ref().is_some_and(|w| w.secret_id != h.id()) {
                        self.close();
                    }
                    self.hasher = Some(h);
                }
                SpillMsg::Close(ack) => {
                    self.close();
                    let _ = ack.send(());
                }
            }
        }
        self.close();
    }

    fn close(&mut self) {
        if let Some(mut w) = self.writer.take() {
            w.sync();
        }
        self.shared.open.store(false, Ordering::Release);
    }

    fn drop_lines(&mut self, n: u64, why: &str) {
        if self.hasher.is_some() {
            self.shared.broken.store(true, Ordering::Release);
        }
        let total = self.shared.dropped.fetch_add(n, Ordering::AcqRel) + n;
        self.says.say(&format!(
            "{total} counted lines dropped so far: the database cannot be written, --max-pending ({}) \
             is full, and {why}; recover them later with `dlcount-pipe import` of the access log",
            self.max_pending
        ));
    }

    fn spill(&mut self, mut b: Batch) {
        let n = b.hits().len() as u64;
        if n == 0 {
            return;
        }
        let Some(hasher) = self.hasher.as_ref() else {
            let why = format!(
                "its hash secret is not known here to keep them on disk without addresses (the \
                 database has not been reached by a logger with the copy {})",
                self.secret_copy.display()
            );
            return self.drop_lines(n, &why);
        };
        if self.writer.is_none() {
            // After a failure, not a new file for every batch (a full disk).
            if let Some((until, why)) = &self.failed {
                if Instant::now() < *until {
                    let why = why.clone();
                    return self.drop_lines(n, &why);
                }
            }
            if let Err(e) = self.open(hasher.id()) {
                let why = format!(
                    "the outage queue cannot be written ({})",
                    crate::pipe::describe(&e)
                );
                self.failed = Some((Instant::now() + SPILL_RETRY, why.clone()));
                return self.drop_lines(n, &why);
            }
        }
        let hasher = self.hasher.as_ref().expect("checked above");
        b.hash_all(hasher, &mut self.scratch);
        let payloads = encode_batch(&b);
        drop(b);
        let size: u64 = payloads.iter().map(|p| RECORD_HEAD + p.len() as u64).sum();
        if self.used + size > self.limit {
            let why = format!(
                "the outage queue {} is full ({} MiB)",
                self.dir_path.display(),
                self.limit >> 20
            );
            return self.drop_lines(n, &why);
        }
        let w = self.writer.as_mut().expect("opened above");
        match w.append(payloads) {
            Ok(bytes) => {
                self.shared.broken.store(false, Ordering::Release);
                self.failed = None;
                self.used += bytes;
                self.shared.spilled.fetch_add(n, Ordering::AcqRel);
            }
            Err(e) => {
                let why = format!(
                    "the outage queue {}/{} cannot be written ({e})",
                    self.dir_path.display(),
                    w.name
                );
                // A file of nothing but its header is not left behind.
                if w.len == HEADER_BYTES {
                    if let Some(dir) = self.dir.as_ref() {
                        let _ = unlinkat(&dir.fd, w.name.as_str(), UnlinkatFlags::NoRemoveDir);
                    }
                }
                self.close();
                self.failed = Some((Instant::now() + SPILL_RETRY, why.clone()));
                self.drop_lines(n, &why);
            }
        }
    }

    fn open(&mut self, secret_id: u64) -> Result<()> {
        if self.dir.is_none() {
            self.dir = Some(
                PrivateDir::open(&self.dir_path, true)?
                    .with_context(|| format!("{} vanished", self.dir_path.display()))?,
            );
        }
        let dir = self.dir.as_ref().expect("opened above");
        let w = Writer::create(dir, secret_id)?;
        self.used = used_bytes(dir);
        self.opens.say(&format!(
            "the database cannot take lines now: counted lines past --max-pending ({}), and all \
             held ones when the logger must end, go hashed (no addresses) to the outage queue {}/{} \
             (at most {} MiB in all); they are counted once the database answers",
            self.max_pending,
            self.dir_path.display(),
            w.name,
            self.limit >> 20
        ));
        self.writer = Some(w);
        self.shared.open.store(true, Ordering::Release);
        Ok(())
    }
}

/// What replaying did, for the owner's summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    pub files: u64,
    pub lines: u64,
    pub applied: ApplyStats,
}

/// A queue file being replayed, locked.
struct Replaying {
    name: String,
    /// The secret its records were made with (its header's).
    secret_id: u64,
    /// Its format version (its header's).
    version: u32,
    file: Flock<File>,
    key: [u8; 32],
    offset: u64,
    len: u64,
}

/// The owner's side of the queue: the spill thread's handle, the secret's
/// copy, the replay.
pub struct Queue {
    local_dir: PathBuf,
    dir_path: PathBuf,
    db: DbTarget,
    retention_days: u32,
    sender: SpillSender,
    /// The secret the spill thread hashes with now.
    secret_id: Option<u64>,
    next_scan: Instant,
    todo: VecDeque<String>,
    current: Option<Replaying>,
    /// Files of another secret already reported by this logger.
    reported: HashSet<String>,
    /// When the marks of counted files were last looked through.
    marks_checked: Option<Instant>,
    /// What was replayed since the last report.
    pending_report: ReplayStats,
    /// Trouble with the queue's own files.
    says: Throttle,
    pub replayed: ReplayStats,
}

/// What [`Queue::finish`] found: counted lines kept on disk, and dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpillTotals {
    pub spilled: u64,
    pub dropped: u64,
}

impl Queue {
    /// Starts the spill thread for the database of `db`, hashing with the
    /// secret's local copy until the database tells its own.
    pub fn start(db: &DbTarget, retention_days: u32, max_pending: usize) -> Queue {
        Queue::start_with_limit(db, retention_days, max_pending, QUEUE_LIMIT)
    }

    fn start_with_limit(
        db: &DbTarget,
        retention_days: u32,
        max_pending: usize,
        limit: u64,
    ) -> Queue {
        let local_dir = db.local_dir().to_path_buf();
        let dir_path = dir_for(&local_dir);
        let shared = Arc::new(SpillShared::new());
        let (tx, rx) = mpsc::channel();
        let cached = cached_secret(&local_dir, db);
        let spiller = Spiller {
            dir_path: dir_path.clone(),
            dir: None,
            limit,
            used: 0,
            secret_copy: dir_path.join(secret_file(db)),
            hasher: cached.clone(),
            scratch: Scratch::default(),
            writer: None,
            shared: Arc::clone(&shared),
            max_pending,
            says: Throttle::new(),
            opens: Throttle::new(),
            failed: None,
        };
        if let Err(e) = std::thread::Builder::new()
            .name("spill".into())
            .spawn(move || spiller.run(rx))
        {
            // Its receiver is gone: whatever is sent is counted as dropped.
            eprintln!("dlcount: cannot start the outage queue's thread: {e}");
        }
        Queue {
            local_dir,
            dir_path,
            db: db.clone(),
            retention_days,
            sender: SpillSender {
                tx,
                shared,
                limit: max_pending,
            },
            secret_id: cached.map(|h| h.id()),
            next_scan: Instant::now(),
            todo: VecDeque::new(),
            current: None,
            reported: HashSet::new(),
            marks_checked: None,
            pending_report: ReplayStats::default(),
            says: Throttle::new(),
            replayed: ReplayStats::default(),
        }
    }

    /// For the reader: where lines past the memory bound go.
    pub fn sender(&self) -> SpillSender {
        self.sender.clone()
    }

    /// Whether lines sent to disk can be kept: a secret is known to hash
    /// them, and the last try to write the queue did not fail.
    pub fn can_spill(&self) -> bool {
        self.secret_id.is_some() && !self.sender.shared.broken.load(Ordering::Acquire)
    }

    /// Sends held lines to disk (the owner at SIGTERM or EOF while the database fails).
    pub fn spill(&self, batch: Batch) {
        self.sender.send(batch);
    }

    /// The database told its secret: the spill thread hashes with it from
    /// now on, and the local copy is made (or replaced, said in the error log).
    pub fn learned_secret(&mut self, hasher: &KeyHasher) {
        if self.secret_id == Some(hasher.id()) {
            return;
        }
        if self.secret_id.is_some() {
            eprintln!(
                "dlcount: the copy of the hash secret in {} is not the secret of the database {} \
                 (it was recreated or replaced): the copy is replaced; lines queued on disk with the \
                 old secret can not be counted into this database (they are reported and left alone)",
                self.dir_path.display(),
                self.db.display()
            );
        }
        if let Err(e) = cache_secret(&self.local_dir, &self.db, hasher) {
            eprintln!(
                "dlcount: cannot keep a copy of the hash secret in {}: {}; a logger that starts while \
                 the database cannot be reached drops what exceeds --max-pending",
                self.dir_path.display(),
                crate::pipe::describe(&e)
            );
        }
        self.secret_id = Some(hasher.id());
        let _ = self.sender.tx.send(SpillMsg::Secret(hasher.clone()));
    }

    /// Look for files to replay at once (the database answers again).
    pub fn replay_soon(&mut self) {
        self.next_scan = Instant::now();
    }

    /// Whether a replay is under way or a look for files is due.
    pub fn replay_due(&self) -> bool {
        self.current.is_some() || !self.todo.is_empty() || Instant::now() >= self.next_scan
    }

    /// Whether a file is being replayed or waits to be.
    pub fn replaying(&self) -> bool {
        self.current.is_some() || !self.todo.is_empty()
    }

    /// One step of the replay into `store` (whose secret is known): a look
    /// for files when due, and one transaction of at most `max_hits`
    /// counted lines. `Ok(None)`: nothing was applied.
    pub fn replay_step(
        &mut self,
        store: &mut Store,
        max_hits: usize,
    ) -> Result<Option<ApplyStats>> {
        match self.step(store, max_hits) {
            Ok(applied) => Ok(applied),
            Err(Trouble::Store(e)) => Err(e),
            Err(Trouble::Disk(e)) => {
                // The queue's own trouble (not the database's): said, and
                // tried again in a while.
                self.current = None;
                self.todo.clear();
                self.next_scan = Instant::now() + SCAN_IDLE;
                self.says.say(&format!(
                    "cannot replay the outage queue in {}: {}; trying again in a minute",
                    self.dir_path.display(),
                    crate::pipe::describe(&e)
                ));
                Ok(None)
            }
        }
    }

    fn step(&mut self, store: &mut Store, max_hits: usize) -> Result<Option<ApplyStats>, Trouble> {
        let secret_id = store.hasher().id();
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.secret_id != secret_id)
        {
            // Another database at the path now (replaced): its own files only.
            self.current = None;
            self.todo.clear();
            self.next_scan = Instant::now();
        }
        if self.current.is_none() && self.todo.is_empty() {
            if Instant::now() < self.next_scan {
                return Ok(None);
            }
            self.scan(store, secret_id)?;
            if self.todo.is_empty() {
                return Ok(None);
            }
        }
        let Some(dir) = PrivateDir::open(&self.dir_path, false).map_err(Trouble::Disk)? else {
            self.todo.clear();
            self.current = None;
            return Ok(None);
        };
        while self.current.is_none() {
            let Some(name) = self.todo.pop_front() else {
                self.report();
                return Ok(None);
            };
            self.current = self.take(&dir, store, &name, secret_id)?;
        }
        let cur = self.current.as_mut().expect("taken above");
        let mut reader = RecordReader {
            file: &cur.file,
            key: cur.key,
            offset: cur.offset,
            len: cur.len,
        };
        let mut batches = Vec::new();
        let mut hits = 0;
        // The end of the last record taken; `end`: the file ends here
        // (`None`) or is damaged here (`Some(why)`).
        let mut offset = cur.offset;
        let mut end: Option<Option<String>> = None;
        let mut torn = None;
        while hits < max_hits {
            match reader.next().map_err(|e| Trouble::Disk(e.into()))? {
                Next::Record(payload, after) => {
                    match decode_batch_of(&payload, cur.secret_id, cur.version) {
                        Ok(b) => {
                            hits += b.hits().len();
                            batches.push(b);
                            offset = after;
                        }
                        Err(e) => {
                            end = Some(Some(format!(
                                "the record at byte {offset} does not decode: {e:#}"
                            )));
                            break;
                        }
                    }
                }
                Next::End => {
                    end = Some(None);
                    break;
                }
                Next::Torn(bytes) => {
                    torn = Some(bytes);
                    end = Some(None);
                    break;
                }
                Next::Corrupt(why) => {
                    end = Some(Some(why));
                    break;
                }
            }
        }
        let done = matches!(end, Some(None));
        let mark_name = format!("{MARK}{}", cur.name);
        let value = if done {
            format!("done {}", chrono::Utc::now().timestamp())
        } else {
            offset.to_string()
        };
        let stats = store
            .apply_marked(
                &batches,
                Origin::Live,
                Some(Mark {
                    name: &mark_name,
                    value: &value,
                }),
            )
            .map_err(Trouble::Store)?;
        cur.offset = offset;
        if let Some(bytes) = torn {
            eprintln!(
                "dlcount: the outage queue file {}/{} ends in an incomplete record ({bytes} bytes: its \
                 logger was stopped while writing it?): dropped, not counted; the records before it are counted",
                self.dir_path.display(),
                cur.name
            );
        }
        self.pending_report.lines += hits as u64;
        self.pending_report.applied.merge(&stats);
        self.replayed.lines += hits as u64;
        self.replayed.applied.merge(&stats);
        match end {
            None => {}
            Some(None) => {
                let cur = self.current.take().expect("current");
                finish_file(&dir, &cur.name, &cur.file).map_err(Trouble::Disk)?;
                self.pending_report.files += 1;
                self.replayed.files += 1;
            }
            Some(Some(why)) => {
                let cur = self.current.take().expect("current");
                let aside = format!("{}.bad", cur.name);
                let _ = renameat(&dir.fd, cur.name.as_str(), &dir.fd, aside.as_str());
                eprintln!(
                    "dlcount: the outage queue file {}/{} is damaged ({why}): what follows is not counted; \
                     it is set aside as {aside}",
                    self.dir_path.display(),
                    cur.name
                );
            }
        }
        if self.current.is_none() && self.todo.is_empty() {
            self.report();
        }
        Ok(Some(stats))
    }

    /// Says what the replay since the last report counted.
    fn report(&mut self) {
        let r = std::mem::take(&mut self.pending_report);
        if r.files > 0 || r.lines > 0 {
            eprintln!(
                "dlcount: counted {} queued line(s) from {} outage queue file(s) in {}: {} new, {} counted \
                 before, {} new downloads",
                r.lines,
                r.files,
                self.dir_path.display(),
                r.applied.counted_lines,
                r.applied.already_counted_lines,
                r.applied.new_downloads
            );
        }
    }

    /// Lists the files to replay (this secret's, not busy), reports those of
    /// another secret once, and forgets marks past their use.
    fn scan(&mut self, store: &mut Store, secret_id: u64) -> Result<(), Trouble> {
        self.next_scan = Instant::now() + SCAN_IDLE;
        // This logger's own file, if it has one, can be replayed once closed.
        if self.sender.shared.open.load(Ordering::Acquire) {
            let (ack, acked) = mpsc::channel();
            if self.sender.tx.send(SpillMsg::Close(ack)).is_ok() {
                let _ = acked.recv_timeout(CLOSE_WAIT);
            }
        }
        let Some(dir) = PrivateDir::open(&self.dir_path, false).map_err(Trouble::Disk)? else {
            return Ok(());
        };
        let names = queue_names(&dir).map_err(Trouble::Disk)?;
        for name in &names {
            let Some((id, _)) = parse_name(name) else {
                continue;
            };
            if id == secret_id {
                self.todo.push_back(name.clone());
            } else if self.reported.insert(name.clone()) {
                let (lines, files_note) = match count_lines(&dir, name) {
                    Ok(n) => (n.to_string(), String::new()),
                    Err(e) => ("an unknown number of".to_string(), format!(" ({e:#})")),
                };
                eprintln!(
                    "dlcount: {lines} counted line(s) in the outage queue file {}/{name}{files_note} were \
                     hashed with another database's secret (the database was recreated or replaced, or \
                     another one shares this directory): they can not be counted into {} and are left \
                     as they are; delete the file once it is not needed",
                    self.dir_path.display(),
                    self.db.display()
                );
            }
        }
        if self
            .marks_checked
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(86_400))
        {
            self.marks_checked = Some(Instant::now());
            self.forget_old_marks(store, &names)
                .map_err(Trouble::Store)?;
        }
        Ok(())
    }

    /// Forgets the marks of files counted more than the retention window
    /// (plus two days) ago: every day they touched is closed by then, so a
    /// copy put back could not count again. Marks of files gone without
    /// being counted whole go by the age in their name.
    fn forget_old_marks(&self, store: &mut Store, names: &[String]) -> Result<()> {
        let keep = i64::from(self.retention_days + 2) * 86_400;
        let now = chrono::Utc::now().timestamp();
        for mark in store.mark_names(MARK)? {
            let name = &mark[MARK.len()..];
            if names.iter().any(|n| n == name) {
                continue;
            }
            let at = match store
                .mark(&mark)?
                .as_deref()
                .and_then(|v| v.strip_prefix("done "))
            {
                Some(t) => t.parse::<i64>().unwrap_or(0),
                None => parse_name(name)
                    .and_then(|(_, stamp)| {
                        chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d-%H%M%S").ok()
                    })
                    .map_or(0, |t| t.and_utc().timestamp()),
            };
            if now - at > keep {
                store.forget_mark(&mark)?;
            }
        }
        Ok(())
    }

    /// Opens, locks and checks a file to replay; `None`: nothing to do with it now.
    fn take(
        &mut self,
        dir: &PrivateDir,
        store: &mut Store,
        name: &str,
        secret_id: u64,
    ) -> Result<Option<Replaying>, Trouble> {
        let disk =
            |e: anyhow::Error| Trouble::Disk(e.context(format!("{}/{name}", dir.path.display())));
        if parse_name(name).is_none_or(|(id, _)| id != secret_id) {
            // Listed for a database that is no longer the one at the path.
            return Ok(None);
        }
        let file = match dir.open_file(name, OFlag::O_RDWR, Mode::empty()) {
            Ok(f) => f,
            Err(nix::errno::Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(disk(anyhow::Error::from(e).context("cannot open"))),
        };
        let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err(_) => {
                // Still written by a logger: later.
                self.next_scan = self.next_scan.min(Instant::now() + SCAN_BUSY);
                return Ok(None);
            }
        };
        // Another logger may have counted and deleted it meanwhile.
        if !dir.still_at(name, &file) {
            return Ok(None);
        }
        let len = file.metadata().map_err(|e| disk(e.into()))?.len();
        let mut head = [0u8; HEADER_BYTES as usize];
        let header = if len < HEADER_BYTES {
            Err(anyhow::anyhow!("shorter than its header"))
        } else {
            file.read_exact_at(&mut head, 0)
                .map_err(|e| disk(e.into()))?;
            parse_header(&head)
        };
        let mark_name = format!("{MARK}{name}");
        let (key, version) = match header {
            Ok((id, _, _)) if id != secret_id => {
                self.aside(dir, name, "its header names another secret than its name");
                return Ok(None);
            }
            Ok((_, Some(key), version)) => (key, version),
            // Wiped: counted whole, only the deletion was left to do.
            Ok((_, None, _)) => {
                finish_file(dir, name, &file).map_err(Trouble::Disk)?;
                return Ok(None);
            }
            Err(_) if len < HEADER_BYTES => {
                // Cut short while it was created: it holds no record.
                unlinkat(&dir.fd, name, UnlinkatFlags::NoRemoveDir).map_err(|e| disk(e.into()))?;
                return Ok(None);
            }
            Err(e) => {
                self.aside(dir, name, &format!("{e:#}"));
                return Ok(None);
            }
        };
        let offset = match store.mark(&mark_name).map_err(Trouble::Store)? {
            None => HEADER_BYTES,
            Some(v) if v.starts_with("done") => {
                finish_file(dir, name, &file).map_err(Trouble::Disk)?;
                return Ok(None);
            }
            Some(v) => match v.parse::<u64>() {
                Ok(o) if (HEADER_BYTES..=len).contains(&o) => o,
                _ => {
                    self.aside(dir, name, &format!("its mark {v:?} does not fit the file"));
                    return Ok(None);
                }
            },
        };
        Ok(Some(Replaying {
            name: name.to_string(),
            secret_id,
            version,
            file,
            key,
            offset,
            len,
        }))
    }

    fn aside(&self, dir: &PrivateDir, name: &str, why: &str) {
        let aside = format!("{name}.bad");
        let _ = renameat(&dir.fd, name, &dir.fd, aside.as_str());
        eprintln!(
            "dlcount: the outage queue file {}/{name} is not counted ({why}); it is set aside as {aside}",
            self.dir_path.display()
        );
    }

    /// At exit: lets the spill thread write what it holds and close its file
    /// (at most [`CLOSE_WAIT`]); what it kept and dropped in all.
    pub fn finish(&self) -> SpillTotals {
        let (ack, acked) = mpsc::channel();
        if self.sender.tx.send(SpillMsg::Close(ack)).is_ok() {
            let _ = acked.recv_timeout(CLOSE_WAIT);
        }
        let s = &self.sender.shared;
        SpillTotals {
            spilled: s.spilled.load(Ordering::Acquire),
            dropped: s.dropped.load(Ordering::Acquire) + s.in_flight.load(Ordering::Acquire) as u64,
        }
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Counted lines written to the queue so far by this logger.
    pub fn spilled(&self) -> u64 {
        self.sender.shared.spilled.load(Ordering::Acquire)
    }

    /// How many queue files wait in the directory (of any secret).
    pub fn files_left(&self) -> usize {
        PrivateDir::open(&self.dir_path, false)
            .ok()
            .flatten()
            .and_then(|d| queue_names(&d).ok())
            .map_or(0, |n| n.len())
    }
}

/// Why a replay step failed: the database (the owner retries it as such),
/// or the queue's own files.
enum Trouble {
    Store(anyhow::Error),
    Disk(anyhow::Error),
}

/// A file counted whole: its key is wiped (what it leaves on disk can no
/// longer be read), then it is deleted.
fn finish_file(dir: &PrivateDir, name: &str, file: &File) -> Result<()> {
    file.write_all_at(&[0u8; 32], KEY_AT)
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot wipe {}/{name}", dir.path.display()))?;
    unlinkat(&dir.fd, name, UnlinkatFlags::NoRemoveDir).with_context(|| {
        format!(
            "cannot remove {}/{name} after counting it",
            dir.path.display()
        )
    })?;
    Ok(())
}

/// The counted lines of a file's whole records (for reporting a file of another secret).
fn count_lines(dir: &PrivateDir, name: &str) -> Result<u64> {
    let file = dir.open_file(name, OFlag::O_RDONLY, Mode::empty())?;
    let len = file.metadata()?.len();
    let mut head = [0u8; HEADER_BYTES as usize];
    file.read_exact_at(&mut head, 0)?;
    let (_, key, _) = parse_header(&head)?;
    let key = key.context("counted already")?;
    let mut r = RecordReader {
        file: &file,
        key,
        offset: HEADER_BYTES,
        len,
    };
    let mut lines = 0u64;
    while let Next::Record(payload, _) = r.next()? {
        let mut c = Cursor(&payload);
        c.take(1)?;
        let server_len = c.u32()? as usize;
        c.take(server_len)?;
        let n_paths = c.u32()?;
        for _ in 0..n_paths {
            let l = c.u32()? as usize;
            c.take(l)?;
        }
        lines += u64::from(c.u32()?);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests;
