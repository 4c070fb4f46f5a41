//! The key index and in-memory backend in one: for every key, its retained history of
//! revisions (ascending), each with the value written then. This plays the roles of etcd's
//! `treeIndex` (generations of revisions per key) and of bolt's "key" bucket (values by
//! revision): a generation is the run of puts from a create up to a tombstone.

use std::collections::BTreeMap;
use std::ops::Bound;

use proto::mvccpb::{event::EventType, Event, KeyValue};

/// A revision: `main` is the store revision of a write request, `sub` orders the changes
/// made within it (0, 1, 2, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

/// One revision of one key: a put (value and metadata) or a tombstone (delete). Kept small,
/// since every revision of every key stays in memory until compaction: 56 bytes plus the
/// value's own allocation (a tombstone is `value: None`, not a flag next to an empty value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) rev: Revision,
    pub(crate) create_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
    value: Option<Box<[u8]>>,
}

impl Record {
    pub(crate) fn put(
        rev: Revision,
        create_revision: i64,
        version: i64,
        lease: i64,
        value: Box<[u8]>,
    ) -> Self {
        Record {
            rev,
            create_revision,
            version,
            lease,
            value: Some(value),
        }
    }

    pub(crate) fn tombstone(rev: Revision) -> Self {
        Record {
            rev,
            create_revision: 0,
            version: 0,
            lease: 0,
            value: None,
        }
    }

    pub(crate) fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The value written (empty for a tombstone).
    pub(crate) fn value(&self) -> &[u8] {
        self.value.as_deref().unwrap_or_default()
    }

    /// The record as etcd's `KeyValue`; a tombstone gives only key and `mod_revision`, as in
    /// etcd's DELETE events.
    pub(crate) fn to_kv(&self, key: &[u8], keys_only: bool) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.rev.main,
            version: self.version,
            value: if keys_only {
                Vec::new()
            } else {
                self.value().to_vec()
            },
            lease: self.lease,
        }
    }

    /// The watch event this record stands for, with the previous record as `prev_kv`.
    pub(crate) fn to_event(&self, key: &[u8], prev: Option<&Record>) -> Event {
        let kind = if self.is_tombstone() {
            EventType::Delete
        } else {
            EventType::Put
        };
        Event {
            r#type: kind as i32,
            kv: Some(self.to_kv(key, false)),
            prev_kv: prev
                .filter(|p| !p.is_tombstone())
                .map(|p| p.to_kv(key, false)),
        }
    }
}

/// Which keys a request addresses, from etcd's `key`/`range_end` convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeySpan<'a> {
    /// `range_end` empty: just `key`.
    Single(&'a [u8]),
    /// `[start, end)`, or every key `>= start` when `end` is `None` (`range_end == "\0"`).
    From(&'a [u8], Option<&'a [u8]>),
    /// `range_end <= key`: nothing.
    Empty,
}

impl<'a> KeySpan<'a> {
    pub(crate) fn new(key: &'a [u8], range_end: &'a [u8]) -> Self {
        if range_end.is_empty() {
            KeySpan::Single(key)
        } else if range_end == [0] {
            KeySpan::From(key, None)
        } else if range_end <= key {
            KeySpan::Empty
        } else {
            KeySpan::From(key, Some(range_end))
        }
    }

    pub(crate) fn contains(&self, k: &[u8]) -> bool {
        match *self {
            KeySpan::Single(key) => k == key,
            KeySpan::From(start, None) => k >= start,
            KeySpan::From(start, Some(end)) => k >= start && k < end,
            KeySpan::Empty => false,
        }
    }
}

/// The record of `history` visible at revision `rev`: the latest with `main <= rev`, unless
/// that is a tombstone.
fn visible(history: &[Record], rev: i64) -> Option<&Record> {
    let n = history.partition_point(|r| r.rev.main <= rev);
    let r = history.get(n.checked_sub(1)?)?;
    (!r.is_tombstone()).then_some(r)
}

/// Histories up to this many records grow by exactly one slot per revision.
const EXACT_GROWTH_UP_TO: usize = 8;

/// Every key's retained history, ordered by key.
#[derive(Debug, Default)]
pub(crate) struct Index {
    keys: BTreeMap<Box<[u8]>, Vec<Record>>,
}

impl Index {
    /// The live record of `key` now (including writes of the revision being built).
    pub(crate) fn latest(&self, key: &[u8]) -> Option<&Record> {
        self.keys.get(key)?.last().filter(|r| !r.is_tombstone())
    }

    /// Histories of the keys in `span` (including keys deleted now), in key order.
    pub(crate) fn histories<'s>(
        &'s self,
        span: &KeySpan<'_>,
    ) -> impl Iterator<Item = (&'s [u8], &'s [Record])> + 's {
        let (single, ranged) = match *span {
            KeySpan::Single(key) => (self.keys.get_key_value(key), None),
            KeySpan::From(start, end) => {
                let end = end.map_or(Bound::Unbounded, Bound::Excluded);
                let r = self.keys.range::<[u8], _>((Bound::Included(start), end));
                (None, Some(r))
            }
            KeySpan::Empty => (None, None),
        };
        single
            .into_iter()
            .chain(ranged.into_iter().flatten())
            .map(|(k, h)| (&**k, h.as_slice()))
    }

    /// Keys of `span` live at `rev`, with their records, in key order.
    pub(crate) fn range<'s>(
        &'s self,
        span: &KeySpan<'_>,
        rev: i64,
    ) -> impl Iterator<Item = (&'s [u8], &'s Record)> + 's {
        self.histories(span)
            .filter_map(move |(k, h)| visible(h, rev).map(|r| (k, r)))
    }

    /// Appends a record (its revision is above every one of the key so far).
    pub(crate) fn push(&mut self, key: &[u8], record: Record) {
        match self.keys.get_mut(key) {
            Some(h) => {
                // Most keys keep a handful of revisions: grow those one at a time rather than
                // to 4, 8, ... slots (a put and its tombstone would take 4 slots, not 2).
                if h.len() < EXACT_GROWTH_UP_TO {
                    h.reserve_exact(1);
                }
                h.push(record);
            }
            None => {
                self.keys.insert(key.into(), vec![record]);
            }
        }
    }

    /// Drops history before `at`: of each key's records with `main <= at` only the latest is
    /// kept, and not even that if it is a tombstone. Dropped revisions go to `removed`.
    pub(crate) fn compact(&mut self, at: i64, removed: &mut Vec<Revision>) {
        self.keys.retain(|_, h| {
            let n = h.partition_point(|r| r.rev.main <= at);
            let keep_from = match h.get(n.wrapping_sub(1)) {
                Some(r) if !r.is_tombstone() => n - 1,
                _ => n,
            };
            removed.extend(h.drain(..keep_from).map(|r| r.rev));
            if h.len() < h.capacity() / 2 {
                h.shrink_to_fit();
            }
            !h.is_empty()
        });
    }

    /// Events of every retained revision `>= from` of the keys in `span`, in revision order.
    pub(crate) fn events_since(&self, span: &KeySpan<'_>, from: i64) -> Vec<Event> {
        let mut found: Vec<(Revision, Event)> = Vec::new();
        for (key, h) in self.histories(span) {
            let first = h.partition_point(|r| r.rev.main < from);
            for i in first..h.len() {
                let prev = i.checked_sub(1).and_then(|p| h.get(p));
                if let Some(r) = h.get(i) {
                    found.push((r.rev, r.to_event(key, prev)));
                }
            }
        }
        found.sort_by_key(|(rev, _)| *rev);
        found.into_iter().map(|(_, e)| e).collect()
    }

    /// Every retained record, by key then revision.
    pub(crate) fn records(&self) -> impl Iterator<Item = (&[u8], &Record)> {
        self.keys
            .iter()
            .flat_map(|(k, h)| h.iter().map(move |r| (&**k, r)))
    }

    /// Rebuilds an index from records in any order (a later duplicate revision of a key wins).
    pub(crate) fn from_records(records: impl IntoIterator<Item = (Vec<u8>, Record)>) -> Self {
        let mut keys: BTreeMap<Box<[u8]>, Vec<Record>> = BTreeMap::new();
        for (key, r) in records {
            keys.entry(key.into_boxed_slice()).or_default().push(r);
        }
        for h in keys.values_mut() {
            h.reverse();
            h.sort_by_key(|r| r.rev);
            h.dedup_by_key(|r| r.rev);
            h.shrink_to_fit();
        }
        Index { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(main: i64) -> Revision {
        Revision { main, sub: 0 }
    }

    #[test]
    fn a_record_stays_small() {
        // Every retained revision costs this much besides its value: it must not regrow.
        assert!(
            std::mem::size_of::<Record>() <= 56,
            "{}",
            std::mem::size_of::<Record>()
        );
    }

    #[test]
    fn short_histories_take_only_the_slots_they_use() {
        let mut index = Index::default();
        index.push(b"k", Record::put(rev(2), 2, 1, 0, Box::from(&b"v"[..])));
        index.push(b"k", Record::tombstone(rev(3)));
        let h = index.keys.get(&b"k"[..]).expect("history");
        assert_eq!((h.len(), h.capacity()), (2, 2));
        for main in 4..40 {
            index.push(b"k", Record::put(rev(main), 4, 1, 0, Box::default()));
        }
        let mut removed = Vec::new();
        index.compact(38, &mut removed);
        let h = index.keys.get(&b"k"[..]).expect("history");
        assert_eq!(h.len(), 2);
        assert!(h.capacity() <= 4, "{}", h.capacity());
    }
}
