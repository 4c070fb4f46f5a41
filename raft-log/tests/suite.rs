//! openraft's storage conformance suite, run against `LogStore` paired with a tiny in-memory
//! state machine (the suite needs both).

mod common;

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use common::TestConfig;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use raft_log::{LogOptions, LogStore};
use tempfile::TempDir;

type Nid = u64;

#[derive(Default)]
struct SmInner {
    last_applied: Option<LogId<Nid>>,
    membership: StoredMembership<Nid, BasicNode>,
    data: Vec<u64>,
    snapshot: Option<(SnapshotMeta<Nid, BasicNode>, Vec<u8>)>,
    snapshot_count: u64,
}

/// Minimal in-memory state machine: remembers applied payloads and membership.
#[derive(Clone, Default)]
struct MemSm(Arc<Mutex<SmInner>>);

fn sm_err(e: impl std::fmt::Display) -> StorageError<Nid> {
    StorageIOError::write_state_machine(openraft::AnyError::error(e)).into()
}

impl RaftSnapshotBuilder<TestConfig> for MemSm {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TestConfig>, StorageError<Nid>> {
        let mut g = self.0.lock().map_err(sm_err)?;
        g.snapshot_count += 1;
        let data =
            bincode::serde::encode_to_vec(&g.data, bincode::config::standard()).map_err(sm_err)?;
        let meta = SnapshotMeta {
            last_log_id: g.last_applied,
            last_membership: g.membership.clone(),
            snapshot_id: format!("snap-{}", g.snapshot_count),
        };
        g.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TestConfig> for MemSm {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<Nid>>, StoredMembership<Nid, BasicNode>), StorageError<Nid>> {
        let g = self.0.lock().map_err(sm_err)?;
        Ok((g.last_applied, g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<Nid>>
    where
        I: IntoIterator<Item = openraft::Entry<TestConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut g = self.0.lock().map_err(sm_err)?;
        let mut out = Vec::new();
        for e in entries {
            g.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(x) => g.data.push(x),
                EntryPayload::Membership(m) => {
                    g.membership = StoredMembership::new(Some(e.log_id), m)
                }
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<Nid>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<Nid, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<Nid>> {
        let bytes = snapshot.into_inner();
        let (data, _): (Vec<u64>, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .map_err(sm_err)?;
        let mut g = self.0.lock().map_err(sm_err)?;
        g.data = data;
        g.last_applied = meta.last_log_id;
        g.membership = meta.last_membership.clone();
        g.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TestConfig>>, StorageError<Nid>> {
        let g = self.0.lock().map_err(sm_err)?;
        Ok(g.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}

struct Builder {
    opts: LogOptions,
}

impl StoreBuilder<TestConfig, LogStore<TestConfig>, MemSm, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore<TestConfig>, MemSm), StorageError<Nid>> {
        let dir = tempfile::tempdir().map_err(sm_err)?;
        let store = LogStore::open(dir.path(), self.opts.clone()).map_err(sm_err)?;
        Ok((dir, store, MemSm::default()))
    }
}

#[test]
fn openraft_suite_default_options() {
    Suite::test_all(Builder {
        opts: LogOptions::default(),
    })
    .expect("suite");
}

/// Same suite with one entry per segment and no entry cache: exercises segment rolling,
/// whole-segment truncation/purge and reading everything back from disk.
#[test]
fn openraft_suite_tiny_segments_no_cache() {
    Suite::test_all(Builder {
        opts: LogOptions {
            segment_bytes: 1,
            cache_entries: 0,
            cache_bytes: 0,
        },
    })
    .expect("suite");
}
