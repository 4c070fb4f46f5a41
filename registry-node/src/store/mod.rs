//! The Raft state machine of a member: the pure [`mvcc::Store`] in memory, its snapshots in a
//! file (really synced, since a snapshot lets the Raft log behind it be purged), and the
//! applied index published for readers that wait on it.
//!
//! ```text
//!  openraft ──apply(entries)──▶ StateMachine ──▶ mvcc::Store (memory)
//!                 build/install snapshot ──▶ file state/snapshot (temp, fsync, rename)
//!  api readers ◀── read(|store| ..) / applied index watch
//! ```

mod lease_feed;
mod snapshot;

use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};

use futures::{FutureExt, Stream, StreamExt};
use openraft::storage::{ApplyResponder, EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use tokio::sync::{broadcast, watch};

use crate::types::{CommandResult, TypeConfig};
use crate::types::{Entry, LogId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership};
pub(crate) use lease_feed::{Drained, LeaseChange, LeaseFeed};
pub(crate) use snapshot::SnapshotStore;

/// What one applied entry tells the watch hub: the events of one revision, in order.
#[derive(Debug, Clone)]
pub(crate) struct AppliedEvents {
    pub(crate) events: Arc<Vec<proto::mvccpb::Event>>,
}

struct Inner {
    store: mvcc::Store,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// Shared handle: openraft drives it, API handlers read through it.
#[derive(Clone)]
pub(crate) struct StateMachine {
    inner: Arc<RwLock<Inner>>,
    mvcc_config: mvcc::Config,
    snapshots: SnapshotStore,
    applied_tx: Arc<watch::Sender<u64>>,
    events_tx: broadcast::Sender<AppliedEvents>,
    lease_feed: Arc<LeaseFeed>,
}

impl StateMachine {
    /// Opens the state folder `dir` and restores the latest snapshot, if any; openraft
    /// then re-applies the committed log entries after it.
    pub(crate) fn open(dir: &Path, mvcc_config: mvcc::Config) -> io::Result<Self> {
        let snapshots = SnapshotStore::open(dir)?;
        let mut inner = Inner {
            store: untracked(mvcc::Store::new(mvcc_config.clone())),
            last_applied: None,
            membership: StoredMembership::default(),
        };
        if let Some((meta, data)) = snapshots.load()? {
            inner.store = decode_store(&mvcc_config, &meta, &data)?;
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership;
        }
        let applied = inner.last_applied.map(|l| l.index).unwrap_or(0);
        let (events_tx, _) = broadcast::channel(4096);
        Ok(StateMachine {
            inner: Arc::new(RwLock::new(inner)),
            mvcc_config,
            snapshots,
            applied_tx: Arc::new(watch::channel(applied).0),
            events_tx,
            lease_feed: Arc::default(),
        })
    }

    /// Runs `f` on the current store (a consistent view: applies wait for it).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mvcc::Store) -> T) -> T {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        f(&inner.store)
    }

    /// The index of the last applied entry, as a watch so callers can wait for it.
    pub(crate) fn applied_index(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    /// Events of every applied write, for the watch hub.
    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<AppliedEvents> {
        self.events_tx.subscribe()
    }

    /// The leases granted and revoked by each apply, for the lessor.
    pub(crate) fn lease_feed(&self) -> &LeaseFeed {
        &self.lease_feed
    }

    fn apply_one(
        inner: &mut Inner,
        feed: &LeaseFeed,
        entry: Entry,
        events: &mut Vec<AppliedEvents>,
    ) -> CommandResult {
        inner.last_applied = Some(entry.log_id);
        let index = entry.log_id.index();
        match entry.payload {
            EntryPayload::Blank => CommandResult::Empty,
            EntryPayload::Membership(m) => {
                inner.membership = StoredMembership::new(Some(entry.log_id), m);
                CommandResult::Empty
            }
            EntryPayload::Normal(cmd) => {
                let Ok(reqs) = cmd.decode_all() else {
                    tracing::error!(index, "undecodable command skipped");
                    return CommandResult::Undecodable;
                };
                if !cmd.is_batch() {
                    return reqs
                        .first()
                        .map(|req| Self::apply_request(inner, feed, index, req, events))
                        .unwrap_or(CommandResult::Undecodable);
                }
                let results = reqs
                    .iter()
                    .enumerate()
                    .map(|(i, req)| {
                        Self::apply_request(inner, feed, sub_index(index, i), req, events)
                    })
                    .collect();
                CommandResult::Batch(results)
            }
        }
    }

    fn apply_request(
        inner: &mut Inner,
        feed: &LeaseFeed,
        index: u64,
        req: &proto::registrypb::InternalRequest,
        events: &mut Vec<AppliedEvents>,
    ) -> CommandResult {
        match inner.store.apply(index, req) {
            Ok(mut applied) => {
                feed.record(lease_feed::changes_of(req, &applied.response));
                // The events go to the watch hub (moved, not copied); the caller of the
                // proposal only reads the response.
                let applied_events = std::mem::take(&mut applied.events);
                if !applied_events.is_empty() {
                    events.push(AppliedEvents {
                        events: Arc::new(applied_events),
                    });
                }
                CommandResult::Applied(Arc::new(applied))
            }
            Err(e) => CommandResult::Rejected(e),
        }
    }
}

/// The `index` the store sees for the `i`th request of a batch entry. The store only uses it
/// to seed the id of a lease granted with id 0; the first request keeps the entry's index (as
/// a single-request entry does) and the others get distinct, deterministic seeds.
fn sub_index(index: u64, i: usize) -> u64 {
    index.wrapping_add((i as u64).wrapping_mul(0x5851_f42d_4c95_7f2d))
}

/// This member persists whole snapshots, not the per-apply [`mvcc::Change`]s (each of which
/// would copy the key and value written): the store is told not to report them.
fn untracked(mut store: mvcc::Store) -> mvcc::Store {
    store.set_track_changes(false);
    store
}

fn decode_store(
    config: &mvcc::Config,
    meta: &SnapshotMeta,
    data: &[u8],
) -> io::Result<mvcc::Store> {
    mvcc::Store::decode_snapshot(config.clone(), data)
        .map(untracked)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("snapshot at {:?}: {e}", meta.last_log_id),
            )
        })
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        Ok((inner.last_applied, inner.membership.clone()))
    }

    /// Applies what openraft has ready under one write lock, then publishes the events and the
    /// applied index, and only then answers the proposers (a proposer's next read must see its
    /// own write through the applied-index watch).
    async fn apply<S>(&mut self, mut entries: S) -> io::Result<()>
    where
        S: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        while let Some(first) = entries.next().await {
            let mut answers: Vec<(ApplyResponder<TypeConfig>, CommandResult)> = Vec::new();
            let mut batch_events = Vec::new();
            let applied = {
                let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
                let mut next = Some(first);
                while let Some(item) = next.take() {
                    let (entry, responder) = item?;
                    let result =
                        Self::apply_one(&mut inner, &self.lease_feed, entry, &mut batch_events);
                    if let Some(r) = responder {
                        answers.push((r, result));
                    }
                    // Whatever else is ready now joins this lock and this publication.
                    next = entries.next().now_or_never().flatten();
                }
                inner.last_applied.map(|l| l.index()).unwrap_or(0)
            };
            for ev in batch_events {
                // No subscriber is fine: nobody is watching.
                let _ = self.events_tx.send(ev);
            }
            self.applied_tx.send_replace(applied);
            for (responder, result) in answers {
                responder.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        data: SnapshotData,
    ) -> io::Result<()> {
        let store = decode_store(&self.mvcc_config, meta, &data)?;
        self.snapshots.save(meta, &data)?;
        let applied = {
            let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
            inner.store = store;
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            // Under the write lock: no apply on the new store is recorded before the reset.
            self.lease_feed.reset();
            inner.last_applied.map(|l| l.index()).unwrap_or(0)
        };
        tracing::info!(last = ?meta.last_log_id, "installed snapshot from leader");
        self.applied_tx.send_replace(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        Ok(self
            .snapshots
            .load()?
            .map(|(meta, snapshot)| Snapshot { meta, snapshot }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let (data, last_log_id, last_membership) = {
            let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
            (
                inner.store.encode_snapshot(),
                inner.last_applied,
                inner.membership.clone(),
            )
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
        };
        // Persisting is slow for a big store: keep it off the async workers.
        let store = self.snapshots.clone();
        let (meta, data) =
            tokio::task::spawn_blocking(move || store.save(&meta, &data).map(|()| (meta, data)))
                .await
                .map_err(io::Error::other)??;
        tracing::info!(last = ?meta.last_log_id, bytes = data.len(), "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

/// Bytes on disk under `path` (a member's data directory), 0 where it cannot be read.
pub(crate) fn disk_usage(path: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
