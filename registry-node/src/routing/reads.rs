//! Linearizable reads: the leader confirms its leadership with a quorum (batched in rounds,
//! as etcd's read loop); a follower asks the leader for a read index (`RaftPeer.ReadIndex`,
//! batched too) and serves the read once it has applied that far.

use openraft::async_runtime::WatchReceiver;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{LinearizableReadError, RaftError};
use openraft::ReadPolicy;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::call::{CallCtx, Redirect};
use super::{redirect_of, Router};
use crate::errors as error;
use crate::raft::peer::client::{PeerError, PeerNetwork};
use crate::raft::NodeId;

/// Callers waiting for the next round of one shared operation: a caller joins the next round
/// that has not started yet, so the answer it gets was obtained after it arrived, and one round
/// answers every caller queued before it began (etcd's read loop). Used for the leader's
/// leadership checks ([`ReadBatch`]: 64 concurrent reads cost one heartbeat round instead of
/// 64; followers' `ReadIndex` requests join the same checks) and for a follower's `ReadIndex`
/// requests to the leader ([`FollowerReads`]).
pub(crate) struct Rounds<T>(Arc<Mutex<RoundsState<T>>>);

struct RoundsState<T> {
    /// Whether a driver task is running.
    running: bool,
    waiting: Vec<oneshot::Sender<T>>,
}

impl<T> Default for Rounds<T> {
    fn default() -> Self {
        Rounds(Arc::new(Mutex::new(RoundsState {
            running: false,
            waiting: Vec::new(),
        })))
    }
}

impl<T: Clone + Send + 'static> Rounds<T> {
    /// Joins the next round; `round` runs it (a driver task is started if none is running).
    /// `None` if the driver went away.
    async fn join<F, Fut>(&self, round: F) -> Option<T>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
            st.waiting.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            tokio::spawn(drive_rounds(self.0.clone(), round));
        }
        rx.await.ok()
    }
}

/// Runs rounds while callers wait, each answering every caller queued before it began.
async fn drive_rounds<T, F, Fut>(state: Arc<Mutex<RoundsState<T>>>, mut round: F)
where
    T: Clone,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    loop {
        let batch = {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            if st.waiting.is_empty() {
                st.running = false;
                return;
            }
            std::mem::take(&mut st.waiting)
        };
        let result = round().await;
        for tx in batch {
            let _ = tx.send(result.clone());
        }
    }
}

/// Linearizable reads on the leader waiting for a leadership check (see [`Rounds`]).
pub(crate) type ReadBatch = Rounds<Result<ReadIndex, Redirect>>;

/// Linearizable reads of a follower waiting for a read index from the leader (see [`Rounds`]).
pub(crate) type FollowerReads = Rounds<Result<ReadIndex, Redirect>>;

/// A read index the leader confirmed: reads served from a state machine that has applied
/// `index` are linearizable.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadIndex {
    pub(crate) index: u64,
    pub(crate) term: u64,
    pub(crate) leader_id: NodeId,
}

/// One leadership check with a quorum: the read index for every read that joined it.
async fn check_leadership(raft: crate::raft::Raft) -> Result<ReadIndex, Redirect> {
    // ReadIndex, not LeaseRead: a leader's lease rests on clocks, etcd's reads do not.
    match raft.get_read_log_id(ReadPolicy::ReadIndex).await {
        Ok((read_log_id, _applied)) => {
            let m = raft.metrics();
            let m = m.borrow_watched();
            Ok(ReadIndex {
                index: read_log_id.index(),
                term: m.current_term,
                leader_id: m.id,
            })
        }
        Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => Err(redirect_of(f)),
        Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(_))) => {
            Err(Redirect::NoLeader)
        }
        Err(RaftError::Fatal(_)) => Err(Redirect::Fail(error::stopped())),
    }
}

/// How many reads were served where, for tests and diagnostics.
#[derive(Default, Debug)]
pub(crate) struct ReadStats {
    /// Linearizable reads served from this member's own state machine.
    pub(crate) local: AtomicU64,
    /// Linearizable reads carried to the leader's client URL.
    pub(crate) forwarded: AtomicU64,
    /// `ReadIndex` requests this member sent to a leader.
    pub(crate) read_index_sent: AtomicU64,
    /// `ReadIndex` requests this member answered as leader.
    pub(crate) read_index_served: AtomicU64,
}

/// A snapshot of [`ReadStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounts {
    pub local: u64,
    pub forwarded: u64,
    pub read_index_sent: u64,
    pub read_index_served: u64,
}

impl ReadStats {
    pub(crate) fn counts(&self) -> ReadCounts {
        ReadCounts {
            local: self.local.load(Ordering::Relaxed),
            forwarded: self.forwarded.load(Ordering::Relaxed),
            read_index_sent: self.read_index_sent.load(Ordering::Relaxed),
            read_index_served: self.read_index_served.load(Ordering::Relaxed),
        }
    }
}

/// Most log entries a follower may lag behind a read index and still wait to serve the read
/// itself; further behind (e.g. it is about to receive a snapshot), the read goes to the leader.
const MAX_READ_LAG: u64 = 10_000;

impl Router {
    /// Waits until this member, as leader, has applied everything committed before the call
    /// (openraft's read index), so a local read that follows is linearizable. Concurrent
    /// calls share one leadership check (see [`ReadBatch`]).
    pub(crate) async fn read_barrier(&self) -> Result<(), Redirect> {
        let ri = self.leader_read_index().await?;
        self.wait_applied(ri.index, None).await
    }

    /// Confirms, as leader, leadership with a quorum in a check that starts after the call
    /// and returns the read index; shared by concurrent callers (see [`ReadBatch`]).
    pub(crate) async fn leader_read_index(&self) -> Result<ReadIndex, Redirect> {
        let raft = self.raft.clone();
        self.reads
            .join(move || check_leadership(raft.clone()))
            .await
            .unwrap_or_else(|| Err(Redirect::Fail(error::stopped())))
    }

    /// Makes a local read that follows linearizable, on any member: the leader confirms its
    /// leadership itself; a follower gets a read index from the leader (`ReadIndex`, batched)
    /// and waits until it has applied that far (etcd's follower read). A forwarded call is
    /// served only by the leader. When the leader cannot be asked, or this member lags too
    /// far, the answer is [`Redirect::Leader`] so that the caller forwards the read.
    pub(crate) async fn linearizable_barrier(&self, ctx: &CallCtx) -> Result<(), Redirect> {
        let (me, leader) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            (m.id, m.current_leader)
        };
        let Some(leader) = leader.filter(|l| *l != me) else {
            // This member is the leader, or there is none (the check says which).
            return self.read_barrier().await;
        };
        // Where the read goes when it cannot be served here (looked up only then).
        let to_leader = || {
            self.member(leader)
                .map(Redirect::Leader)
                .unwrap_or(Redirect::NoLeader)
        };
        if ctx.forwarded {
            return Err(to_leader());
        }
        let ri = match self.follower_read_index().await {
            Ok(ri) => ri,
            Err(Redirect::Fail(s)) if s.message() == error::STOPPED => {
                return Err(Redirect::Fail(s))
            }
            Err(Redirect::NoLeader) => return Err(Redirect::NoLeader),
            // Could not ask (link down, leader changed): carry the read to the leader.
            Err(_) => return Err(to_leader()),
        };
        let applied = *self.sm.applied_index().borrow();
        if ri.index > applied.saturating_add(MAX_READ_LAG) {
            return Err(to_leader());
        }
        // Waiting longer than an election timeout means this member is not keeping up
        // (or is cut off from the log): the leader can answer instead.
        let patience = self.read_patience;
        match self
            .wait_applied(ri.index, Some(ctx.deadline.min(Instant::now() + patience)))
            .await
        {
            Ok(()) => Ok(()),
            Err(_) if Instant::now() < ctx.deadline => Err(to_leader()),
            Err(Redirect::Fail(s)) if s.message() == error::TIMED_OUT => {
                Err(Redirect::Fail(ctx.expired()))
            }
            Err(e) => Err(e),
        }
    }

    /// A read index from the leader, asked on behalf of every read queued before the request
    /// was sent (see [`FollowerReads`]).
    async fn follower_read_index(&self) -> Result<ReadIndex, Redirect> {
        let (raft, peers, stats) = (
            self.raft.clone(),
            self.peers.clone(),
            self.read_stats.clone(),
        );
        self.follower_reads
            .join(move || {
                let (raft, peers, stats) = (raft.clone(), peers.clone(), stats.clone());
                async move { ask_read_index(&raft, &peers, &stats).await }
            })
            .await
            .unwrap_or_else(|| Err(Redirect::Fail(error::stopped())))
    }

    /// Waits until the local state machine has applied `index`, up to `deadline` (then etcd's
    /// "request timed out").
    pub(crate) async fn wait_applied(
        &self,
        index: u64,
        deadline: Option<Instant>,
    ) -> Result<(), Redirect> {
        let mut rx = self.sm.applied_index();
        if *rx.borrow_and_update() >= index {
            return Ok(());
        }
        let wait = rx.wait_for(|a| *a >= index);
        let reached = match deadline {
            Some(d) => match tokio::time::timeout_at(d, wait).await {
                Ok(r) => r.is_ok(),
                Err(_) => return Err(Redirect::Fail(error::timed_out())),
            },
            None => wait.await.is_ok(),
        };
        if reached {
            Ok(())
        } else {
            Err(Redirect::Fail(error::stopped()))
        }
    }
}

/// How long a follower waits for the leader's answer to `ReadIndex`.
const READ_INDEX_TIMEOUT: Duration = Duration::from_secs(2);

/// One `ReadIndex` request to the leader, for every follower read that joined it.
async fn ask_read_index(
    raft: &crate::raft::Raft,
    peers: &PeerNetwork,
    stats: &ReadStats,
) -> Result<ReadIndex, Redirect> {
    let (leader, term) = {
        let m = raft.metrics();
        let m = m.borrow_watched();
        let leader = m.current_leader.and_then(|id| {
            let node = m.membership_config.membership().get_node(&id)?;
            Some((id, node.clone()))
        });
        (leader, m.current_term)
    };
    let Some((leader_id, node)) = leader else {
        return Err(Redirect::NoLeader);
    };
    stats.read_index_sent.fetch_add(1, Ordering::Relaxed);
    match peers
        .read_index(leader_id, &node.peer_url, READ_INDEX_TIMEOUT)
        .await
    {
        // The answer must come from the member asked, in a term no older than this member
        // knew when it asked: anything else is a leader change, and the read is retried.
        Ok(r) if r.leader_id == leader_id && r.term >= term => Ok(ReadIndex {
            index: r.index,
            term: r.term,
            leader_id: r.leader_id,
        }),
        Ok(_) => Err(Redirect::Fail(error::leader_changed())),
        Err(PeerError::Remote(_, s)) if s.message() == error::NO_LEADER => Err(Redirect::NoLeader),
        Err(e) => Err(Redirect::Fail(e.into_status())),
    }
}
