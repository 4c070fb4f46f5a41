//! openraft 0.10's storage conformance suite (`openraft::testing::log::Suite`), run against
//! `LogStore` paired with a tiny in-memory state machine (the suite needs both).

use std::io::{self, Cursor};
use std::sync::{Arc, Mutex};

use crate::common::TestConfig;
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::type_config::TypeConfigExt;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageError, StoredMembership};
use raft_log::{LogOptions, LogStore};
use tempfile::TempDir;

type Snap = SnapshotOf<TestConfig, Cursor<Vec<u8>>>;

#[derive(Default)]
struct SmInner {
    last_applied: Option<LogIdOf<TestConfig>>,
    membership: StoredMembershipOf<TestConfig>,
    data: Vec<u64>,
    snapshot: Option<(SnapshotMetaOf<TestConfig>, Vec<u8>)>,
}

/// Minimal in-memory state machine: remembers applied payloads and membership.
#[derive(Clone, Default)]
struct MemSm(Arc<Mutex<SmInner>>);

impl MemSm {
    fn lock(&self) -> Result<std::sync::MutexGuard<'_, SmInner>, io::Error> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("state machine lock poisoned"))
    }
}

impl RaftSnapshotBuilder<TestConfig> for MemSm {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<Snap, io::Error> {
        let mut g = self.lock()?;
        let data = bincode::serde::encode_to_vec(&g.data, bincode::config::standard())
            .map_err(io::Error::other)?;
        let meta = SnapshotMetaOf::<TestConfig> {
            last_log_id: g.last_applied,
            last_membership: g.membership.clone(),
        };
        g.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snap {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftStateMachine<TestConfig> for MemSm {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TestConfig>>, StoredMembershipOf<TestConfig>), io::Error> {
        let g = self.lock()?;
        Ok((g.last_applied, g.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TestConfig>, io::Error>> + Unpin + Send,
    {
        while let Some((e, responder)) = entries.try_next().await? {
            {
                let mut g = self.lock()?;
                g.last_applied = Some(e.log_id);
                match e.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(x) => g.data.push(x),
                    EntryPayload::Membership(m) => {
                        g.membership = StoredMembership::new(Some(e.log_id), m)
                    }
                }
            }
            if let Some(r) = responder {
                r.send(());
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TestConfig>,
        snapshot: Cursor<Vec<u8>>,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let (data, _): (Vec<u64>, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .map_err(io::Error::other)?;
        let mut g = self.lock()?;
        g.data = data;
        g.last_applied = meta.last_log_id;
        g.membership = meta.last_membership.clone();
        g.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snap>, io::Error> {
        let g = self.lock()?;
        Ok(g.snapshot.as_ref().map(|(meta, data)| Snap {
            meta: meta.clone(),
            snapshot: Cursor::new(data.clone()),
        }))
    }
}

struct Builder {
    opts: LogOptions,
}

fn build_err(e: impl std::fmt::Display) -> StorageError<TestConfig> {
    StorageError::write(TestConfig::err_from_string(e))
}

impl StoreBuilder<TestConfig, LogStore<TestConfig>, MemSm, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<TestConfig>, MemSm), StorageError<TestConfig>> {
        let dir = tempfile::tempdir().map_err(build_err)?;
        let store = LogStore::open(dir.path(), self.opts.clone()).map_err(build_err)?;
        Ok((dir, store, MemSm::default()))
    }
}

#[tokio::test]
async fn openraft_suite_default_options() {
    Suite::test_all(Builder {
        opts: LogOptions::default(),
    })
    .await
    .expect("suite");
}

/// Same suite with one entry per segment and no entry cache: exercises segment rolling,
/// whole-segment truncation/purge and reading everything back from disk.
#[tokio::test]
async fn openraft_suite_tiny_segments_no_cache() {
    Suite::test_all(Builder {
        opts: LogOptions {
            segment_bytes: 1,
            cache_entries: 0,
            cache_bytes: 0,
        },
    })
    .await
    .expect("suite");
}
