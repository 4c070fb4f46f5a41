//! Segment files: naming, listing, recovery scan and positional reads.
//!
//! A segment is `<dir>/<first_index:020>.wal`, an append-only sequence of framed records
//! (see [`crate::record`]), each holding one bincode-encoded log entry; record `i` of a segment
//! holds log index `first_index + i`. This module owns everything that touches segment files
//! *except* writing, which belongs to [`crate::writer`].

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use openraft::entry::RaftEntry;
use openraft::type_config::alias::LogIdOf;
use openraft::RaftTypeConfig;

use crate::error::Error;
use crate::record::{decode_payload, parse_record, Parsed};

/// File name suffix of segments.
const SUFFIX: &str = ".wal";

/// Path of the segment whose first record is log index `first_index`.
pub(crate) fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:020}{SUFFIX}"))
}

/// List `(first_index, path)` of all segment files in `dir`, sorted by first index.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let mut out = Vec::new();
    let rd = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if stem.len() != 20 {
            continue;
        }
        let Ok(first) = stem.parse::<u64>() else {
            continue;
        };
        out.push((first, ent.path()));
    }
    out.sort_by_key(|(first, _)| *first);
    Ok(out)
}

/// Location of one record inside a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// First index (= id) of the segment holding the record.
    pub seg: u64,
    /// Byte offset of the record header.
    pub offset: u64,
    /// Total record length (header + payload).
    pub len: u32,
}

/// What a recovery scan found in one segment.
pub(crate) struct Scanned<C: RaftTypeConfig> {
    /// `(log id, slot)` of every valid record, in order.
    pub records: Vec<(LogIdOf<C>, Slot)>,
    /// Bytes of valid data (the file was truncated to this length if its tail was torn).
    pub valid_len: u64,
}

/// Scan segment `first_index` at `path`, verifying checksums and index continuity.
///
/// If `is_last` and the file ends in a torn/corrupt record, the file is truncated (and
/// synced) at the end of the last good record and a warning is logged. Damage anywhere in
/// a non-last segment is an [`Error::Corrupt`].
pub(crate) fn scan_segment<C: RaftTypeConfig>(
    path: &Path,
    first_index: u64,
    is_last: bool,
) -> Result<Scanned<C>, Error> {
    let buf = fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut records = Vec::new();
    let mut pos = 0usize;
    let mut bad: Option<String> = None;
    while pos < buf.len() {
        let (payload, total) = match parse_record(&buf[pos..]) {
            Parsed::Ok { payload, total } => (payload, total),
            Parsed::End => break,
            Parsed::Bad(why) => {
                bad = Some(why);
                break;
            }
        };
        let entry: C::Entry = match decode_payload(payload) {
            Ok(e) => e,
            Err(e) => {
                bad = Some(format!("undecodable record: {e}"));
                break;
            }
        };
        let log_id = entry.log_id();
        let want = first_index + records.len() as u64;
        if log_id.index != want {
            // A record with a valid checksum at the wrong index is not a torn write.
            return Err(Error::Corrupt(format!(
                "{}: record at offset {pos} has index {}, expected {want}",
                path.display(),
                log_id.index
            )));
        }
        let slot = Slot {
            seg: first_index,
            offset: pos as u64,
            len: total as u32,
        };
        records.push((log_id, slot));
        pos += total;
    }
    if let Some(why) = bad {
        if !is_last {
            return Err(Error::Corrupt(format!(
                "{}: {why} at offset {pos} in a non-last segment",
                path.display()
            )));
        }
        tracing::warn!(
            path = %path.display(),
            offset = pos,
            dropped_bytes = buf.len() - pos,
            reason = %why,
            "torn or corrupt tail in last WAL segment; truncating at last good record"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        f.set_len(pos as u64).map_err(|e| Error::io(path, e))?;
        f.sync_all().map_err(|e| Error::io(path, e))?;
    }
    Ok(Scanned {
        records,
        valid_len: pos as u64,
    })
}

/// Read and decode the consecutive records `slots` (all in segment `file`, contiguous on disk)
/// whose first record is log index `first_index`.
pub(crate) fn read_records<C: RaftTypeConfig>(
    file: &File,
    path: &Path,
    first_index: u64,
    slots: &[Slot],
) -> Result<Vec<C::Entry>, Error> {
    let (Some(first), Some(last)) = (slots.first(), slots.last()) else {
        return Ok(Vec::new());
    };
    let start = first.offset;
    let end = last.offset + u64::from(last.len);
    let mut buf = vec![0u8; (end - start) as usize];
    file.read_exact_at(&mut buf, start)
        .map_err(|e| Error::io(path, e))?;
    let mut out = Vec::with_capacity(slots.len());
    for (i, slot) in slots.iter().enumerate() {
        let rel = (slot.offset - start) as usize;
        let rec = buf.get(rel..rel + slot.len as usize).unwrap_or(&[]);
        let entry: C::Entry = match parse_record(rec) {
            Parsed::Ok { payload, total } if total == rec.len() => decode_payload(payload)?,
            _ => {
                return Err(Error::Corrupt(format!(
                    "{}: bad record at offset {}",
                    path.display(),
                    slot.offset
                )))
            }
        };
        let want = first_index + i as u64;
        let index = entry.index();
        if index != want {
            return Err(Error::Corrupt(format!(
                "{}: offset {} holds index {}, expected {want}",
                path.display(),
                slot.offset,
                index
            )));
        }
        out.push(entry);
    }
    Ok(out)
}

/// `fsync` a directory so that creations/renames/deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), std::io::Error> {
    File::open(dir)?.sync_all()
}
