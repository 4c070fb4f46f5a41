//! Startup recovery: rebuild [`State`] from the segment files and metadata.
//!
//! Scans every segment (verifying checksums and index continuity), repairs a torn tail of
//! the last segment, applies the recorded purge (deleting segments that hold only purged
//! entries, e.g. leftovers of a purge interrupted by a crash) and returns the in-memory
//! index. The entry cache starts empty: entries are read back from disk on demand.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use openraft::type_config::alias::LogIdOf;
use openraft::RaftTypeConfig;

use crate::error::Error;
use crate::meta::Meta;
use crate::segment::{list_segments, scan_segment, sync_dir};
use crate::state::State;

/// Rebuild the state of the log stored in `dir`.
pub(crate) fn recover<C: RaftTypeConfig>(
    dir: &Path,
    meta: Meta<C>,
    committed: Option<LogIdOf<C>>,
) -> Result<State<C>, Error> {
    let purged_upto: Option<u64> = meta.last_purged.as_ref().map(|p| p.index);
    let segs = list_segments(dir)?;
    let mut slots = VecDeque::new();
    let mut first_index = 0u64;
    let mut last: Option<LogIdOf<C>> = None;
    let mut segments = BTreeMap::new();
    let mut prev_end: Option<(u64, u64)> = None; // (segment, next index after it)
    let mut removed = false;

    for (k, (first, path)) in segs.iter().enumerate() {
        let next_first = segs.get(k + 1).map(|(f, _)| *f);
        // Wholly purged without even looking inside: the next segment starts at or before
        // `purged + 1`.
        if let (Some(p), Some(nf)) = (purged_upto, next_first) {
            if nf <= p + 1 {
                remove(path)?;
                removed = true;
                continue;
            }
        }
        let scanned = scan_segment::<C>(path, *first, next_first.is_none())?;
        let live: Vec<_> = scanned
            .records
            .iter()
            .filter(|(id, _)| purged_upto.is_none_or(|p| id.index > p))
            .cloned()
            .collect();
        if live.is_empty() {
            if scanned.records.is_empty() {
                tracing::warn!(path = %path.display(), "removing empty WAL segment");
            }
            remove(path)?;
            removed = true;
            continue;
        }
        if let Some((prev_seg, end)) = prev_end {
            if *first != end {
                return Err(Error::Corrupt(format!(
                    "segment {first} does not follow segment {prev_seg} (expected first index {end})"
                )));
            }
        }
        prev_end = Some((*first, *first + scanned.records.len() as u64));
        segments.insert(*first, scanned.valid_len);
        for (log_id, slot) in live {
            if slots.is_empty() {
                first_index = log_id.index;
            }
            slots.push_back(slot);
            last = Some(log_id);
        }
    }
    if removed {
        sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    if let (Some(p), false) = (purged_upto, slots.is_empty()) {
        if first_index > p + 1 {
            tracing::warn!(
                first_index,
                last_purged = p,
                "log does not start right after the last purged index"
            );
        }
    }
    let last_log_id = if slots.is_empty() {
        meta.last_purged.clone()
    } else {
        last
    };
    tracing::debug!(
        dir = %dir.display(),
        entries = slots.len(),
        segments = segments.len(),
        "recovered raft log"
    );
    Ok(State {
        vote: meta.vote,
        committed,
        last_purged: meta.last_purged,
        last_log_id,
        first_index,
        slots,
        cache: VecDeque::new(),
        cache_bytes: 0,
        segments,
        next_seq: 1,
        completed_seq: 0,
        failed: None,
    })
}

fn remove(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}
