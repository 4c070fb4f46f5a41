//! Shared test helpers: a test `TypeConfig`, entry constructors and an awaited append.
#![allow(dead_code)]

use std::path::Path;

use openraft::entry::RaftEntry;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::EntryPayload;
use raft_log::{LogOptions, LogStore};

openraft::declare_raft_types!(
    /// Type config used by the tests (openraft's default leader id, log id and vote types,
    /// as registry-node uses them).
    pub TestConfig: D = u64, R = ()
);

pub(crate) type Store = LogStore<TestConfig>;
pub(crate) type Entry = EntryOf<TestConfig>;
pub(crate) type Vote = VoteOf<TestConfig>;

pub(crate) fn log_id(term: u64, index: u64) -> LogIdOf<TestConfig> {
    LogIdOf::<TestConfig>::new(LeaderId { term, node_id: 0 }, index)
}

/// A normal entry whose payload is `index * 1000 + term` (so content is checkable).
pub(crate) fn ent(term: u64, index: u64) -> Entry {
    Entry::new_normal(log_id(term, index), index * 1000 + term)
}

pub(crate) fn ents(term: u64, range: std::ops::Range<u64>) -> Vec<Entry> {
    range.map(|i| ent(term, i)).collect()
}

pub(crate) fn open(dir: &Path, opts: LogOptions) -> Store {
    LogStore::open(dir, opts).expect("open log store")
}

pub(crate) fn small_segments(bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes: bytes,
        ..LogOptions::default()
    }
}

/// Append and wait for the durability callback.
pub(crate) async fn append(store: &Store, entries: Vec<Entry>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store
        .append_with(entries, move |r| {
            let _ = tx.send(r);
        })
        .expect("append");
    rx.await.expect("callback dropped").expect("append io");
}

/// `(term, index, payload)` of entries, for compact assertions.
pub(crate) fn summary(entries: &[Entry]) -> Vec<(u64, u64, Option<u64>)> {
    entries
        .iter()
        .map(|e| {
            let p = match &e.payload {
                EntryPayload::Normal(x) => Some(*x),
                _ => None,
            };
            (e.log_id.leader_id.term, e.log_id.index, p)
        })
        .collect()
}

/// [`summary`] of everything the store holds (the tests write well under 100 entries).
pub(crate) fn contents(store: &Store) -> Vec<(u64, u64, Option<u64>)> {
    summary(&store.read_range(0, 100).expect("read"))
}

pub(crate) fn expected(term: u64, range: std::ops::Range<u64>) -> Vec<(u64, u64, Option<u64>)> {
    summary(&ents(term, range))
}

/// Segment file names in `dir`, sorted.
pub(crate) fn segment_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    v.sort();
    v
}
