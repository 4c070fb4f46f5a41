//! Durable Raft log and vote store for openraft 0.10 (`RaftLogStorage` / `RaftLogReader`,
//! generic over any `RaftTypeConfig` whose entry, log id and vote types are serde types).
//!
//! Layout of a log directory:
//!
//! * `<first_index:020>.wal` — segments: append-only files of `[len u32 LE][crc32 u32 LE]
//!   [bincode entry]` records, rolled over past [`LogOptions::segment_bytes`] (etcd-WAL style).
//! * `meta` — vote + last purged log id, replaced atomically and durably.
//! * `committed` — last committed log id, persisted lazily.
//!
//! The format is the one the openraft 0.9 build wrote: with openraft's default leader id the
//! serde layouts of `Vote`, `LogId` and `Entry` did not change, so a 0.9 directory opens as is
//! (pinned by `tests/it/format.rs`).
//!
//! Writes go through one background writer thread doing group commit: all queued appends
//! are written and then made durable with a single `fdatasync`, after which their
//! `IOFlushed` callbacks fire. On open, the segments are scanned and a torn tail of the last
//! segment is cut off. See [`LogStore`].
//!
//! Module map: [`store`](LogStore) (public handle, reads), `raft_impl` (openraft traits),
//! `options` (options, stats), `timing` (the fsync histogram), `state` (in-memory index + cache), `writer` (group commit
//! thread), `segment` (files, scan, reads), `record` (framing), `meta` (metadata files),
//! `recovery` (startup), `error`.

mod error;
mod meta;
mod options;
mod raft_impl;
mod record;
mod recovery;
mod segment;
mod state;
mod store;
mod timing;
mod writer;

pub use error::Error;
pub use options::{LogOptions, LogStats};
pub use store::LogStore;
pub use timing::{FsyncSnapshot, FsyncTimes, FSYNC_BUCKETS};
