//! Crate-level tests of the WAL: persistence across reopen, truncate, purge, segment roll,
//! torn-tail recovery, vote/committed persistence, callback ordering and group commit.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::*;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::RaftLogReader;
use raft_log::{Error, LogOptions};

#[tokio::test]
async fn append_read_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path(), LogOptions::default());
        for chunk in 0..10u64 {
            // Readable as soon as append_with returns, before durability is reported.
            let (tx, rx) = tokio::sync::oneshot::channel();
            store
                .append_with(ents(1, chunk * 10..chunk * 10 + 10), move |r| {
                    let _ = tx.send(r);
                })
                .expect("append");
            let got = store.read_range(chunk * 10, chunk * 10 + 10).expect("read");
            assert_eq!(summary(&got), expected(1, chunk * 10..chunk * 10 + 10));
            rx.await.expect("cb").expect("io");
        }
        assert_eq!(
            summary(&store.read_range(0, 1000).expect("read")),
            expected(1, 0..100)
        );
    }
    let mut store = open(dir.path(), LogOptions::default());
    let st = store.get_log_state().await.expect("state");
    assert_eq!(st.last_purged_log_id, None);
    assert_eq!(st.last_log_id, Some(log_id(1, 99)));
    let got = store.try_get_log_entries(0..).await.expect("read");
    assert_eq!(summary(&got), expected(1, 0..100));
    let got = store.try_get_log_entries(40..=45).await.expect("read");
    assert_eq!(summary(&got), expected(1, 40..46));
    // Continue appending after reopen.
    append(&store, ents(2, 100..110)).await;
    drop(store);
    let store = open(dir.path(), LogOptions::default());
    let got = store.read_range(95, 105).expect("read");
    let mut want = expected(1, 95..100);
    want.extend(expected(2, 100..105));
    assert_eq!(summary(&got), want);
}

#[tokio::test]
async fn openraft_append_via_log_flushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(dir.path(), LogOptions::default());
        store.blocking_append(ents(1, 0..5)).await.expect("append");
        store.blocking_append(ents(1, 5..6)).await.expect("append");
        store
            .blocking_append(Vec::new())
            .await
            .expect("empty append");
    }
    let mut store = open(dir.path(), LogOptions::default());
    let got = store.try_get_log_entries(0..10).await.expect("read");
    assert_eq!(summary(&got), expected(1, 0..6));
}

#[tokio::test]
async fn truncate_then_append_then_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    // ~3 records per segment so truncation crosses segment boundaries.
    let opts = small_segments(64);
    {
        let mut store = open(dir.path(), opts.clone());
        append(&store, ents(1, 0..50)).await;
        let segs_before = segment_files(dir.path()).len();
        // Keeps 29 and everything before it.
        store
            .truncate_after(Some(log_id(1, 29)))
            .await
            .expect("truncate");
        let st = store.get_log_state().await.expect("state");
        assert_eq!(st.last_log_id, Some(log_id(1, 29)));
        assert_eq!(contents(&store), expected(1, 0..30));
        assert!(
            segment_files(dir.path()).len() < segs_before,
            "later segments deleted"
        );
        // Truncating after the last entry, or past it, removes nothing.
        let (segs, syncs) = (segment_files(dir.path()), store.stats().syncs);
        for last in [29, 30, 100] {
            store
                .truncate_after(Some(log_id(1, last)))
                .await
                .expect("no-op truncate");
        }
        assert_eq!(contents(&store), expected(1, 0..30));
        assert_eq!(
            (segment_files(dir.path()), store.stats().syncs),
            (segs, syncs)
        );
        append(&store, ents(2, 30..40)).await;
        // Truncate exactly at a segment start and in the middle of one.
        store
            .truncate_after(Some(log_id(2, 34)))
            .await
            .expect("truncate");
        append(&store, ents(3, 35..37)).await;
    }
    let mut store = open(dir.path(), opts.clone());
    let st = store.get_log_state().await.expect("state");
    assert_eq!(st.last_log_id, Some(log_id(3, 36)));
    let mut want = expected(1, 0..30);
    want.extend(expected(2, 30..35));
    want.extend(expected(3, 35..37));
    assert_eq!(contents(&store), want);

    // Truncate everything.
    store.truncate_after(None).await.expect("truncate all");
    assert_eq!(
        store.get_log_state().await.expect("state").last_log_id,
        None
    );
    assert!(segment_files(dir.path()).is_empty());
    drop(store);
    let mut store = open(dir.path(), opts);
    let st = store.get_log_state().await.expect("state");
    assert_eq!((st.last_purged_log_id, st.last_log_id), (None, None));
    append(&store, ents(4, 0..3)).await;
    assert_eq!(
        summary(&store.read_range(0, 10).expect("read")),
        expected(4, 0..3)
    );
}

#[tokio::test]
async fn purge_then_reopen_deletes_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = small_segments(200);
    {
        let mut store = open(dir.path(), opts.clone());
        append(&store, ents(1, 0..100)).await;
        let before = segment_files(dir.path());
        assert!(
            before.len() > 5,
            "expected many segments, got {}",
            before.len()
        );
        store.purge(log_id(1, 60)).await.expect("purge");
        let st = store.get_log_state().await.expect("state");
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 60)));
        assert_eq!(st.last_log_id, Some(log_id(1, 99)));
        let after = segment_files(dir.path());
        assert!(after.len() < before.len());
        // The first remaining segment must start at or before index 61, and all earlier ones
        // are gone.
        let first: u64 = after[0].trim_end_matches(".wal").parse().expect("name");
        assert!(first <= 61);
        let second: u64 = after[1].trim_end_matches(".wal").parse().expect("name");
        assert!(second > 61);
        assert_eq!(
            summary(&store.read_range(0, 1000).expect("read")),
            expected(1, 61..100)
        );
    }
    let mut store = open(dir.path(), opts.clone());
    let st = store.get_log_state().await.expect("state");
    assert_eq!(st.last_purged_log_id, Some(log_id(1, 60)));
    assert_eq!(st.last_log_id, Some(log_id(1, 99)));
    assert_eq!(
        summary(&store.read_range(0, 1000).expect("read")),
        expected(1, 61..100)
    );

    // Purge beyond the last entry: log becomes empty, last_log_id == last_purged.
    store.purge(log_id(2, 150)).await.expect("purge all");
    assert!(segment_files(dir.path()).is_empty());
    let st = store.get_log_state().await.expect("state");
    assert_eq!(st.last_purged_log_id, Some(log_id(2, 150)));
    assert_eq!(st.last_log_id, Some(log_id(2, 150)));
    drop(store);
    let mut store = open(dir.path(), opts.clone());
    let st = store.get_log_state().await.expect("state");
    assert_eq!(st.last_purged_log_id, Some(log_id(2, 150)));
    assert_eq!(st.last_log_id, Some(log_id(2, 150)));
    append(&store, ents(2, 151..160)).await;
    drop(store);
    let mut store = open(dir.path(), opts);
    let st = store.get_log_state().await.expect("state");
    assert_eq!(st.last_log_id, Some(log_id(2, 159)));
    assert_eq!(
        summary(&store.read_range(0, 1000).expect("read")),
        expected(2, 151..160)
    );
}

#[tokio::test]
async fn segments_roll_over_and_read_back_from_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        segment_bytes: 1024,
        cache_entries: 0,
        cache_bytes: 0,
    };
    {
        let store = open(dir.path(), opts.clone());
        for i in 0..50 {
            append(&store, ents(1, i * 4..i * 4 + 4)).await;
        }
        let stats = store.stats();
        assert!(stats.segments > 3, "segments: {}", stats.segments);
        assert_eq!(stats.segments, segment_files(dir.path()).len());
        assert_eq!(
            stats.cached_entries, 0,
            "cache budget 0 must be honoured once durable"
        );
        assert_eq!(
            summary(&store.read_range(0, 1000).expect("read")),
            expected(1, 0..200)
        );
        assert!(store.stats().disk_reads > 0);
    }
    let store = open(dir.path(), opts);
    assert_eq!(
        summary(&store.read_range(0, 1000).expect("read")),
        expected(1, 0..200)
    );
    assert_eq!(
        summary(&store.read_range(150, 152).expect("read")),
        expected(1, 150..152)
    );
}

#[tokio::test]
async fn cache_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LogOptions {
        cache_entries: 10,
        ..LogOptions::default()
    };
    let store = open(dir.path(), opts);
    append(&store, ents(1, 0..100)).await;
    store.sync().await.expect("sync");
    assert!(store.stats().cached_entries <= 10);
    assert_eq!(contents(&store), expected(1, 0..100));
}

fn last_segment(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(segment_files(dir).last().expect("a segment"))
}

#[tokio::test]
async fn torn_tail_is_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path(), LogOptions::default());
        append(&store, ents(1, 0..20)).await;
    }
    // Chop 3 bytes off the last record.
    let path = last_segment(dir.path());
    let len = std::fs::metadata(&path).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(len - 3)
        .expect("chop");
    {
        let mut store = open(dir.path(), LogOptions::default());
        let st = store.get_log_state().await.expect("state");
        assert_eq!(st.last_log_id, Some(log_id(1, 18)));
        assert_eq!(contents(&store), expected(1, 0..19));
        append(&store, ents(2, 19..21)).await;
    }
    // Garbage after the last good record.
    OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open")
        .write_all(&[0xAB; 37])
        .expect("garbage");
    {
        let store = open(dir.path(), LogOptions::default());
        let mut want = expected(1, 0..19);
        want.extend(expected(2, 19..21));
        assert_eq!(contents(&store), want);
        append(&store, ents(2, 21..22)).await;
    }
    // Zero-filled tail (file size extended but data never written).
    OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open")
        .write_all(&[0u8; 4096])
        .expect("zeros");
    let mut store = open(dir.path(), LogOptions::default());
    let st = store.get_log_state().await.expect("state");
    assert_eq!(st.last_log_id, Some(log_id(2, 21)));
    // Bit flip inside the last record: checksum catches it.
    drop(store);
    let mut bytes = std::fs::read(&path).expect("read");
    let n = bytes.len();
    bytes[n - 2] ^= 0x55;
    std::fs::write(&path, &bytes).expect("write");
    let mut store = open(dir.path(), LogOptions::default());
    let st = store.get_log_state().await.expect("state");
    assert_eq!(st.last_log_id, Some(log_id(2, 20)));
}

#[tokio::test]
async fn corruption_in_non_last_segment_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path(), small_segments(100));
        append(&store, ents(1, 0..30)).await;
    }
    let files = segment_files(dir.path());
    assert!(files.len() > 2);
    let path = dir.path().join(&files[0]);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[10] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    match raft_log::LogStore::<TestConfig>::open(dir.path(), small_segments(100)) {
        Err(Error::Corrupt(msg)) => assert!(msg.contains("non-last"), "{msg}"),
        other => panic!("expected corruption error, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_middle_segment_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path(), small_segments(100));
        append(&store, ents(1, 0..30)).await;
    }
    let files = segment_files(dir.path());
    std::fs::remove_file(dir.path().join(&files[1])).expect("rm");
    assert!(matches!(
        raft_log::LogStore::<TestConfig>::open(dir.path(), small_segments(100)),
        Err(Error::Corrupt(_))
    ));
}

#[tokio::test]
async fn vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(dir.path(), LogOptions::default());
        assert_eq!(store.read_vote().await.expect("vote"), None);
        store.save_vote(&Vote::new(3, 7)).await.expect("vote");
        store
            .save_vote(&Vote::new_committed(4, 7))
            .await
            .expect("vote");
        append(&store, ents(4, 0..5)).await;
        store.purge(log_id(4, 1)).await.expect("purge");
        store
            .save_committed(Some(log_id(4, 3)))
            .await
            .expect("committed");
        assert_eq!(
            store.read_vote().await.expect("vote"),
            Some(Vote::new_committed(4, 7))
        );
    }
    let mut store = open(dir.path(), LogOptions::default());
    assert_eq!(
        store.read_vote().await.expect("vote"),
        Some(Vote::new_committed(4, 7))
    );
    assert_eq!(store.read_committed().await.expect("c"), Some(log_id(4, 3)));
    // Purge must not lose the vote and vice versa (both live in `meta`).
    assert_eq!(
        store
            .get_log_state()
            .await
            .expect("state")
            .last_purged_log_id,
        Some(log_id(4, 1))
    );
}

#[tokio::test]
async fn callback_fires_only_after_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path(), LogOptions::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut rxs = Vec::new();
        for i in 0..20u64 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let probe = store.clone();
            let seen = seen.clone();
            store
                .append_with(vec![ent(1, i)], move |r| {
                    // Durable means: at least one fdatasync happened after the write.
                    let syncs = probe.stats().syncs;
                    // The last clone must be gone before the test learns of the callback: it
                    // holds the store (and its directory lock) open, and the store is reopened
                    // below as soon as every callback has been seen.
                    drop(probe);
                    if let Ok(mut s) = seen.lock() {
                        s.push((i, syncs));
                    }
                    let _ = tx.send(r);
                })
                .expect("append");
            rxs.push(rx);
        }
        for rx in rxs {
            rx.await.expect("cb").expect("io");
        }
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 20);
        assert!(seen.iter().all(|(_, syncs)| *syncs >= 1));
        // Callbacks fire in append order.
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    }
    let store = open(dir.path(), LogOptions::default());
    assert_eq!(contents(&store), expected(1, 0..20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), LogOptions::default());
    let next = Arc::new(Mutex::new(0u64));
    let failed = Arc::new(AtomicBool::new(false));
    let writers = 64;
    let per_writer = 50;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = store.clone();
        let next = next.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_writer {
                let (tx, rx) = tokio::sync::oneshot::channel();
                {
                    // Index assignment and enqueue must be atomic to keep the log ordered.
                    let mut n = next.lock().expect("lock");
                    store
                        .append_with(vec![ent(1, *n)], move |r| {
                            let _ = tx.send(r);
                        })
                        .expect("append");
                    *n += 1;
                }
                if !matches!(rx.await, Ok(Ok(()))) {
                    failed.store(true, Ordering::SeqCst);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert!(!failed.load(Ordering::SeqCst));
    let total = (writers * per_writer) as u64;
    let stats = store.stats();
    println!("{total} appends, {stats:?}");
    assert!(
        stats.syncs * 4 < total,
        "expected group commit: {} syncs for {total} appends",
        stats.syncs
    );
    assert_eq!(
        summary(&store.read_range(0, total).expect("read")),
        expected(1, 0..total)
    );
}

#[tokio::test]
async fn overlapping_append_overwrites_like_raft() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path(), small_segments(64));
        append(&store, ents(1, 0..10)).await;
        // Overlap without explicit truncate: entries >= 5 are replaced.
        append(&store, ents(2, 5..7)).await;
    }
    let mut store = open(dir.path(), small_segments(64));
    let mut want = expected(1, 0..5);
    want.extend(expected(2, 5..7));
    assert_eq!(contents(&store), want);
    assert_eq!(
        store.get_log_state().await.expect("state").last_log_id,
        Some(log_id(2, 6))
    );
}

#[tokio::test]
async fn leftover_temp_files_and_empty_segments_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(dir.path(), LogOptions::default());
        store.save_vote(&Vote::new(1, 1)).await.expect("vote");
        append(&store, ents(1, 0..3)).await;
    }
    std::fs::write(dir.path().join("meta.tmp"), b"half-written").expect("tmp");
    // An empty segment (created, crash before any data reached the disk).
    std::fs::write(dir.path().join(format!("{:020}.wal", 3)), b"").expect("empty seg");
    let mut store = open(dir.path(), LogOptions::default());
    assert_eq!(
        store.read_vote().await.expect("vote"),
        Some(Vote::new(1, 1))
    );
    assert_eq!(
        summary(&store.read_range(0, 10).expect("read")),
        expected(1, 0..3)
    );
    append(&store, ents(1, 3..5)).await;
    drop(store);
    let store = open(dir.path(), LogOptions::default());
    assert_eq!(
        summary(&store.read_range(0, 10).expect("read")),
        expected(1, 0..5)
    );
}

#[tokio::test]
async fn directory_is_locked_while_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), LogOptions::default());
    assert!(matches!(
        raft_log::LogStore::<TestConfig>::open(dir.path(), LogOptions::default()),
        Err(Error::Locked(_))
    ));
    let reader = store.clone();
    drop(store);
    // Still open through the clone.
    assert!(raft_log::LogStore::<TestConfig>::open(dir.path(), LogOptions::default()).is_err());
    drop(reader);
    let _reopened = open(dir.path(), LogOptions::default());
}
