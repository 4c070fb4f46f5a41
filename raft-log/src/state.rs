//! In-memory view of the log: index of record locations, bounded entry cache, segment table.
//!
//! Owns [`State`] and the pure bookkeeping for append / truncate / purge: each `plan_*`
//! method updates the in-memory state and returns the file operations the writer thread must
//! perform to make the disk match. The caller holds the state's write lock while planning and
//! submitting, so the writer sees operations in exactly the order the state changed.

use std::collections::{BTreeMap, VecDeque};

use openraft::entry::RaftEntry;
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::RaftTypeConfig;

use crate::error::Error;
use crate::segment::Slot;
use crate::writer::Op;

/// A cached entry and the writer job that carries it.
pub(crate) struct Cached<E> {
    pub entry: E,
    /// Job sequence number; the entry may only be evicted once the writer completed it.
    pub seq: u64,
    /// Record size, for the cache byte budget.
    pub bytes: usize,
}

/// Everything the store knows, guarded by one `RwLock`.
pub(crate) struct State<C: RaftTypeConfig> {
    pub vote: Option<VoteOf<C>>,
    pub committed: Option<LogIdOf<C>>,
    pub last_purged: Option<LogIdOf<C>>,
    /// Log id of the last present entry, or `last_purged` if there is none.
    pub last_log_id: Option<LogIdOf<C>>,
    /// Log index of `slots[0]` (meaningless while `slots` is empty).
    pub first_index: u64,
    /// Location of every live (non-purged) entry, in index order.
    pub slots: VecDeque<Slot>,
    /// Entries of a suffix of `slots` (always includes everything not yet written).
    pub cache: VecDeque<Cached<C::Entry>>,
    pub cache_bytes: usize,
    /// Segment first index -> current size in bytes (the last one is the append target).
    pub segments: BTreeMap<u64, u64>,
    /// Next job sequence number.
    pub next_seq: u64,
    /// Sequence number of the last job the writer finished (written + synced).
    pub completed_seq: u64,
    /// Set once the writer failed; all writes are refused afterwards.
    pub failed: Option<String>,
}

impl<C: RaftTypeConfig> State<C> {
    /// One past the last live index.
    pub(crate) fn end_index(&self) -> u64 {
        self.first_index + self.slots.len() as u64
    }

    /// Index of the first cached entry (== `end_index()` when the cache is empty).
    pub(crate) fn cache_start(&self) -> u64 {
        self.end_index() - self.cache.len() as u64
    }

    /// Location of a live entry.
    pub(crate) fn slot(&self, index: u64) -> Option<Slot> {
        let pos = index.checked_sub(self.first_index)?;
        self.slots.get(usize::try_from(pos).ok()?).copied()
    }

    /// Refuse writes after a writer failure.
    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        match &self.failed {
            Some(msg) => Err(Error::WriterFailed(msg.clone())),
            None => Ok(()),
        }
    }

    /// Take the next job sequence number.
    pub(crate) fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Register `items` (entry, encoded record) as appended by job `seq`; returns the file
    /// operations.
    ///
    /// Entries are expected to continue the log. A non-consecutive entry (which openraft never
    /// produces: it truncates first) is handled like Raft's overwrite: an overlap truncates
    /// the log from that index, a gap drops all live entries and restarts the log at the new
    /// index, so live entries always stay contiguous. Both cases are logged.
    pub(crate) fn plan_append(
        &mut self,
        items: Vec<(C::Entry, Vec<u8>)>,
        seq: u64,
        segment_bytes: u64,
    ) -> Vec<Op> {
        let mut ops: Vec<Op> = Vec::new();
        for (entry, rec) in items {
            let index = entry.index();
            if !self.slots.is_empty() && index != self.end_index() {
                let overlap = index > self.first_index && index < self.end_index();
                let target = if overlap { index } else { self.first_index };
                tracing::warn!(
                    index,
                    expected = self.end_index(),
                    truncate_from = target,
                    "non-consecutive append; truncating the log first"
                );
                if let Some(op) = self.plan_truncate(target, None) {
                    ops.push(op);
                }
            }
            if self.slots.is_empty() && self.last_purged.as_ref().is_some_and(|p| index <= p.index)
            {
                tracing::warn!(index, "append at or below the last purged index");
            }
            // Start a new segment when the log is empty or the tail is full.
            let tail = match self.segments.last_key_value() {
                Some((&seg, &size)) if !self.slots.is_empty() && size < segment_bytes => {
                    Some((seg, size))
                }
                _ => None,
            };
            let (seg, offset, create) = match tail {
                Some((seg, size)) => (seg, size, false),
                None => {
                    self.segments.insert(index, 0);
                    (index, 0, true)
                }
            };
            if self.slots.is_empty() {
                self.first_index = index;
            }
            let len = rec.len();
            self.slots.push_back(Slot {
                seg,
                offset,
                len: len as u32,
            });
            self.segments.insert(seg, offset + len as u64);
            self.last_log_id = Some(entry.log_id());
            self.cache.push_back(Cached {
                entry,
                seq,
                bytes: len,
            });
            self.cache_bytes += len;
            match ops.last_mut() {
                Some(Op::Write {
                    seg: s,
                    offset: o,
                    data,
                    ..
                }) if *s == seg && *o + data.len() as u64 == offset => data.extend_from_slice(&rec),
                _ => ops.push(Op::Write {
                    seg,
                    create,
                    offset,
                    data: rec,
                }),
            }
        }
        ops
    }

    /// Remove live entries `>= target` (`first_index <= target < end_index()`), setting the
    /// last log id to `new_last`. Returns the truncate op and the deleted segments.
    pub(crate) fn plan_truncate(
        &mut self,
        target: u64,
        new_last: Option<LogIdOf<C>>,
    ) -> Option<Op> {
        let slot = self.slot(target)?;
        let mut delete: Vec<u64> = self
            .segments
            .range(slot.seg + 1..)
            .map(|(k, _)| *k)
            .collect();
        let keep = if slot.seg == target {
            delete.push(slot.seg);
            None
        } else {
            Some((slot.seg, slot.offset))
        };
        for seg in &delete {
            self.segments.remove(seg);
        }
        if let Some((seg, len)) = keep {
            self.segments.insert(seg, len);
        }
        let cache_start = self.cache_start();
        let keep_cached = target.saturating_sub(cache_start) as usize;
        while self.cache.len() > keep_cached {
            if let Some(c) = self.cache.pop_back() {
                self.cache_bytes -= c.bytes;
            }
        }
        self.slots.truncate((target - self.first_index) as usize);
        self.last_log_id = new_last;
        Some(Op::Truncate { keep, delete })
    }

    /// Record `upto` as purged and drop entries `<= upto.index`; returns the segments that
    /// no longer hold any live entry (to be deleted after the purge is durable).
    pub(crate) fn plan_purge(&mut self, upto: LogIdOf<C>) -> Vec<u64> {
        let n = (upto.index + 1)
            .saturating_sub(self.first_index)
            .min(self.slots.len() as u64) as usize;
        self.slots.drain(..n);
        self.first_index = self.first_index.max(upto.index + 1);
        while self.cache.len() > self.slots.len() {
            if let Some(c) = self.cache.pop_front() {
                self.cache_bytes -= c.bytes;
            }
        }
        if self.last_log_id.as_ref() < Some(&upto) {
            self.last_log_id = Some(upto.clone());
        }

        let keys: Vec<u64> = self.segments.keys().copied().collect();
        let mut delete = Vec::new();
        for (i, seg) in keys.iter().enumerate() {
            let wholly_purged = match keys.get(i + 1) {
                Some(next) => *next <= upto.index + 1,
                None => self.slots.is_empty(),
            };
            if wholly_purged {
                delete.push(*seg);
            }
        }
        for seg in &delete {
            self.segments.remove(seg);
        }
        self.last_purged = Some(upto);
        delete
    }

    /// Evict the oldest cached entries that are already on disk until within budget.
    pub(crate) fn evict(&mut self, max_entries: usize, max_bytes: usize) {
        while let Some(front) = self.cache.front() {
            let over = self.cache.len() > max_entries || self.cache_bytes > max_bytes;
            if !over || front.seq > self.completed_seq {
                break;
            }
            self.cache_bytes -= front.bytes;
            self.cache.pop_front();
        }
    }
}
