//! On-disk format pinned across the openraft 0.9 -> 0.10 upgrade: a log directory written
//! by the openraft 0.9 build of this crate opens unchanged, and 0.10 writes the same bytes.
//!
//! With openraft's default types (the "advanced" leader id: `(term, node_id)`) the serde
//! layouts did not change: `Vote { leader_id: { term, node_id }, committed }`,
//! `LogId { leader_id: { term, node_id }, index }`, `Entry { log_id, payload }` with
//! `EntryPayload::{Blank, Normal, Membership}` in that order. bincode is positional, so the
//! files are byte-identical and the format needs no new version.

use crate::common::*;
use openraft::storage::RaftLogStorage;
use openraft::RaftLogReader;
use raft_log::LogOptions;

/// The first two records of segment `00000000000000000000.wal` as the openraft 0.9 build
/// wrote them (`ent(1, 0)` and `ent(1, 1)` of the `TestConfig` with `D = u64`), copied from
/// a run of that build's crash test.
const SEGMENT_V09: [u8; 28] = [
    // len 5, crc32, payload: term 1, node 0, index 0, Normal, 1
    0x05, 0x00, 0x00, 0x00, 0x7a, 0xdf, 0x5e, 0x95, 0x01, 0x00, 0x00, 0x01, 0x01,
    // len 7, crc32, payload: term 1, node 0, index 1, Normal, 1001 (varint 0xfb u16 LE)
    0x07, 0x00, 0x00, 0x00, 0x31, 0x1f, 0xe3, 0x11, 0x01, 0x00, 0x01, 0x01, 0xfb, 0xe9, 0x03,
];

/// Frame a payload like a metadata file: `[len u32 LE][crc32 u32 LE][payload]`.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn log_written_by_openraft_09_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(format!("{:020}.wal", 0)),
        SEGMENT_V09.as_slice(),
    )
    .expect("segment");
    // meta: vote Some({term 4, node 7}, committed), last purged None.
    std::fs::write(dir.path().join("meta"), framed(&[1, 4, 7, 1, 0])).expect("meta");
    // committed: Some({term 1, node 0}, index 1).
    std::fs::write(dir.path().join("committed"), framed(&[1, 1, 0, 1])).expect("committed");

    let mut store = open(dir.path(), LogOptions::default());
    assert_eq!(
        store.read_vote().await.expect("vote"),
        Some(Vote::new_committed(4, 7))
    );
    assert_eq!(store.read_committed().await.expect("c"), Some(log_id(1, 1)));
    let st = store.get_log_state().await.expect("state");
    assert_eq!(
        (st.last_purged_log_id, st.last_log_id),
        (None, Some(log_id(1, 1)))
    );
    assert_eq!(contents(&store), expected(1, 0..2));
    append(&store, ents(1, 2..3)).await;
    drop(store);
    assert_eq!(
        contents(&open(dir.path(), LogOptions::default())),
        expected(1, 0..3)
    );
}

#[tokio::test]
async fn openraft_010_writes_the_09_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(dir.path(), LogOptions::default());
        append(&store, ents(1, 0..2)).await;
        store
            .save_vote(&Vote::new_committed(4, 7))
            .await
            .expect("vote");
    }
    let seg = std::fs::read(dir.path().join(format!("{:020}.wal", 0))).expect("segment");
    assert_eq!(seg, SEGMENT_V09);
    let meta = std::fs::read(dir.path().join("meta")).expect("meta");
    assert_eq!(meta, framed(&[1, 4, 7, 1, 0]));
}
