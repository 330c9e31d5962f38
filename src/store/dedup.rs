//! The dedup algebra, pure code shared by every backend: how the copies of
//! one distinct line combine across live and imported sources. No SQL here.
//!
//! Invariant: a figure moves only by the change of [`SeenLine::copies`], so
//! applying the same copies again, or in another order, changes nothing.

use super::Origin;
use crate::keys::{KeyHasher, Scratch};
use crate::tally::Batch;

/// `days.identity` of a day counted before schema 2: schema 1's fingerprint.
pub const SCHEMA1_IDENTITY: i64 = -1;

/// The secret-keyed (visitor, line) hashes of hit `i` of `batch`, for a day
/// whose lines are identified by `day_identity` (`logformat::identity`
/// bits, or [`SCHEMA1_IDENTITY`]). The reader's precomputed keys serve when
/// they were made with this secret and this very set; otherwise the line is
/// hashed again from its fields. These are intermediates: a backend stores
/// them only re-keyed with the day's key (`keys::DayKey`).
pub fn line_keys(
    batch: &Batch,
    i: usize,
    day_identity: i64,
    hasher: &KeyHasher,
    scratch: &mut Scratch,
) -> (i64, i64) {
    let h = &batch.hits()[i];
    let schema1 = day_identity == SCHEMA1_IDENTITY;
    let set = day_identity as u8;
    let precomputed = batch.keys(i, hasher.id());
    if let Some(k) = precomputed {
        if !schema1 && set == h.identity {
            return k;
        }
    }
    let visitor = match precomputed {
        Some((v, _)) => v,
        None => hasher.visitor(scratch, batch.client(h), batch.path(h), h.day),
    };
    let fields = batch.line_fields(h);
    let line = if schema1 {
        hasher.line_v1(scratch, visitor, &fields)
    } else {
        hasher.line(scratch, visitor, &fields, set)
    };
    (visitor, line)
}

/// The copies of one distinct line seen so far (a `seen_lines` row).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeenLine {
    pub live: i64,
    pub imported: i64,
    pub source: i64,
    pub source_n: i64,
    pub live_bytes: i64,
    pub imported_bytes: i64,
    pub source_bytes: i64,
}

impl SeenLine {
    /// The real copies of the line the database knows of, with their bytes:
    /// the live ones, unless one imported file held more.
    pub fn copies(&self) -> (i64, i64) {
        if self.live >= self.imported {
            (self.live, self.live_bytes)
        } else {
            (self.imported, self.imported_bytes)
        }
    }

    /// The row after `copies` more copies (with `bytes` together) arrived
    /// from `origin`. Live copies add up; an imported file's copies are
    /// counted within that file (`source_n`), and only a file holding more
    /// copies than any before replaces `imported`.
    pub fn seen(self, copies: i64, bytes: i64, origin: Origin) -> SeenLine {
        match origin {
            Origin::Live => SeenLine {
                live: self.live.saturating_add(copies),
                live_bytes: self.live_bytes.saturating_add(bytes),
                ..self
            },
            Origin::Import { file_source, .. } => {
                let (n, nb) = if self.source == file_source {
                    (
                        self.source_n.saturating_add(copies),
                        self.source_bytes.saturating_add(bytes),
                    )
                } else {
                    (copies, bytes)
                };
                let (imported, imported_bytes) = if n > self.imported {
                    (n, nb)
                } else {
                    (self.imported, self.imported_bytes)
                };
                SeenLine {
                    imported,
                    imported_bytes,
                    source: file_source,
                    source_n: n,
                    source_bytes: nb,
                    ..self
                }
            }
        }
    }
}
