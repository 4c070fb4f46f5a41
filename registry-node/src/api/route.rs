//! Where a request is served: writes go through Raft on the leader, linearizable reads wait for
//! a read barrier on the leader, serializable reads are local. A member that is not the leader
//! carries the call to the leader's client URL, once (a forwarded call is never forwarded
//! again), and waits for an election when there is no leader, up to the request's deadline.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use prost::Message;
use proto::registrypb::InternalRequest;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::error;
use crate::node::Core;
use crate::raft::{CommandResult, MemberNode, NodeId};

/// Metadata key marking a call carried from a follower to the leader.
pub const FORWARDED: &str = "x-registry-forwarded";

/// How long a request may wait for a leader or a forwarded answer without a client deadline.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Why a request could not be served here.
#[derive(Clone)]
pub enum Redirect {
    Leader(MemberNode),
    NoLeader,
    Fail(Status),
}

/// Linearizable reads waiting for a leadership check, as etcd's read loop batches them: a read
/// joins the next check that has not started yet, so the read index it gets was taken after
/// it arrived, and 64 concurrent reads cost one heartbeat round instead of 64.
#[derive(Default)]
pub struct ReadBatch(Arc<Mutex<ReadBatchState>>);

#[derive(Default)]
struct ReadBatchState {
    /// Whether a [`drive_reads`] task is running.
    running: bool,
    waiting: Vec<oneshot::Sender<Result<(), Redirect>>>,
}

/// Runs leadership checks while reads wait, each answering every read queued before it began.
async fn drive_reads(raft: crate::raft::Raft, state: Arc<Mutex<ReadBatchState>>) {
    loop {
        let batch = {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            if st.waiting.is_empty() {
                st.running = false;
                return;
            }
            std::mem::take(&mut st.waiting)
        };
        let result = match raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => Err(redirect_of(f)),
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(Redirect::NoLeader)
            }
            Err(RaftError::Fatal(_)) => Err(Redirect::Fail(error::stopped())),
        };
        for tx in batch {
            let _ = tx.send(result.clone());
        }
    }
}

/// Context of one client call.
pub struct CallCtx {
    pub forwarded: bool,
    pub deadline: Instant,
}

impl CallCtx {
    pub fn of<T>(req: &Request<T>) -> Self {
        let forwarded = req.metadata().contains_key(FORWARDED);
        let timeout = req
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .unwrap_or(DEFAULT_DEADLINE);
        CallCtx {
            forwarded,
            deadline: Instant::now() + timeout.min(Duration::from_secs(60)),
        }
    }
}

/// `grpc-timeout` header: digits followed by a unit letter.
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Marks `req` as forwarded and gives it what is left of the caller's deadline.
pub fn forwarded_request<T>(msg: T, ctx: &CallCtx) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    req.set_timeout(ctx.deadline.saturating_duration_since(Instant::now()));
    req
}

fn redirect_of(f: ForwardToLeader<NodeId, MemberNode>) -> Redirect {
    match f.leader_node {
        Some(node) => Redirect::Leader(node),
        None => Redirect::NoLeader,
    }
}

impl Core {
    /// Proposes `req` through Raft on this member (which must be the leader) and waits for it
    /// to be applied. Concurrent proposals share one entry (see [`crate::raft::batch`]).
    pub async fn propose(&self, req: &InternalRequest) -> Result<Arc<mvcc::Applied>, Redirect> {
        let Some(outcome) = self
            .proposals
            .propose(&self.raft, req.encode_to_vec())
            .await
        else {
            return Err(Redirect::Fail(error::stopped()));
        };
        match outcome {
            Ok(data) => match data {
                CommandResult::Applied(a) => Ok(a),
                CommandResult::Rejected(e) => Err(Redirect::Fail(error::status_of(&e))),
                other => Err(Redirect::Fail(Status::internal(format!(
                    "unexpected apply result {other:?}"
                )))),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(redirect_of(f)),
            Err(RaftError::APIError(e)) => Err(Redirect::Fail(Status::internal(e.to_string()))),
            Err(RaftError::Fatal(_)) => Err(Redirect::Fail(error::stopped())),
        }
    }

    /// Waits until this member, as leader, has applied everything committed before the call
    /// (openraft's read index), so a local read that follows is linearizable. Concurrent
    /// calls share one leadership check (see [`ReadBatch`]).
    pub async fn read_barrier(&self) -> Result<(), Redirect> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut st = self.reads.0.lock().unwrap_or_else(|p| p.into_inner());
            st.waiting.push(tx);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            tokio::spawn(drive_reads(self.raft.clone(), self.reads.0.clone()));
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(Redirect::Fail(error::stopped())),
        }
    }

    /// Runs `local` here, or `remote` against the leader's client channel when `local` says to,
    /// retrying while there is no leader or the leader changed, until the deadline.
    pub async fn route<T, L, LF, R, RF>(
        &self,
        ctx: &CallCtx,
        mut local: L,
        mut remote: R,
    ) -> Result<T, Status>
    where
        L: FnMut() -> LF,
        LF: Future<Output = Result<T, Redirect>>,
        R: FnMut(Channel) -> RF,
        RF: Future<Output = Result<T, Status>>,
    {
        loop {
            let failure = match local().await {
                Ok(v) => return Ok(v),
                Err(Redirect::Fail(s)) => return Err(s),
                Err(Redirect::Leader(_)) if ctx.forwarded => return Err(error::leader_changed()),
                Err(Redirect::Leader(node)) => match self.client_channel(&node.client_url) {
                    Ok(ch) => match remote(ch).await {
                        Ok(v) => return Ok(v),
                        Err(s) if error::safe_to_retry(&s) => s,
                        Err(s) => return Err(s),
                    },
                    Err(s) => return Err(s),
                },
                Err(Redirect::NoLeader) => error::no_leader(),
            };
            if Instant::now() >= ctx.deadline {
                return Err(if failure.message() == error::NO_LEADER {
                    failure
                } else {
                    error::timed_out()
                });
            }
            self.wait_for_leader_change(ctx.deadline).await;
        }
    }

    /// Waits (bounded) for the Raft metrics to change, e.g. a leader to be elected.
    pub async fn wait_for_leader_change(&self, deadline: Instant) {
        let mut metrics = self.raft.metrics();
        let step = Instant::now() + Duration::from_millis(100);
        let _ = tokio::time::timeout_at(step.min(deadline), metrics.changed()).await;
    }
}
