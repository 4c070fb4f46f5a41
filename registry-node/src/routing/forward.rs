//! Follower writes sent on to the leader in batches, over the peer link.
//!
//! A KV write (put, delete range, txn, compaction) that reaches a follower used to be re-sent
//! to the leader's client API as its own gRPC call. etcd's followers forward proposals inside
//! their Raft message stream instead; here every write queued on a follower while earlier
//! batches are on their way goes in ONE `RaftPeer.Propose` call (at most [`MAX_IN_FLIGHT`]
//! calls at once). The leader proposes each request through its own proposal queue (so they
//! share Raft entries with its local writes) and answers each one, in order: the etcd
//! response, the gRPC status the leader would have returned, or "not the leader".
//!
//! ```text
//!  follower: write ─┐                          leader: Propose ─▶ propose(r1) ┐
//!            write ─┼─▶ queue ─▶ Propose(r1..rn)                   propose(r2) ├─▶ results
//!            write ─┘                                              ...         ┘
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proto::registrypb::propose_result::Result as Outcome;
use proto::registrypb::{
    InternalRequest, ProposeError, ProposeRequest, ProposeResponse, ProposeResult,
};
use tokio::sync::oneshot;
use tonic::{Code, Status};

use super::Redirect;
use super::Router;
use crate::batching::Batching;
use crate::errors as error;
use crate::raft::peer::client::PeerNetwork;
use crate::raft::NodeId;

/// `Propose` calls of one follower on their way at once.
pub(crate) const MAX_IN_FLIGHT: usize = 4;
/// At most this many writes in one call.
pub(crate) const MAX_BATCH: usize = 256;
/// How long a follower waits for the leader's answers.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);

type Waiter = (InternalRequest, oneshot::Sender<Result<Outcome, Redirect>>);

/// The queue of writes a follower sends on to the leader.
#[derive(Clone)]
pub(crate) struct ForwardQueue {
    /// Queued writes with the leader's peer URL they are meant for.
    queue: Batching<(Leader, Waiter)>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    writes: AtomicU64,
}

/// How many `Propose` calls a follower made and how many writes they carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardCounts {
    pub calls: u64,
    pub writes: u64,
}

impl Default for ForwardQueue {
    fn default() -> Self {
        ForwardQueue {
            queue: Batching::new(MAX_IN_FLIGHT),
            stats: Default::default(),
        }
    }
}

impl ForwardQueue {
    /// Calls made and writes sent so far.
    pub(crate) fn counts(&self) -> ForwardCounts {
        ForwardCounts {
            calls: self.stats.calls.load(Ordering::Relaxed),
            writes: self.stats.writes.load(Ordering::Relaxed),
        }
    }

    /// Sends `req` to the leader at `peer_url` with the writes queued alongside it and waits
    /// for its answer. `Redirect::NoLeader` when the member asked is not (or no longer) the
    /// leader or could not be reached before sending; a failure after sending is returned as
    /// it is, since the write may have been applied.
    pub(crate) async fn send(
        &self,
        peers: &PeerNetwork,
        leader: NodeId,
        peer_url: &str,
        req: InternalRequest,
    ) -> Result<Outcome, Redirect> {
        let (tx, rx) = oneshot::channel();
        // A lone write with a free slot is sent from the caller's task: no driver task and
        // no hand-off on the path of a single client's write.
        if let Some(permit) = self.queue.direct() {
            let to = (leader, peer_url.to_owned());
            send_batch(peers, &to, vec![(req, tx)], &self.stats).await;
            drop(permit);
        } else {
            let (peers, stats) = (peers.clone(), self.stats.clone());
            self.queue.push(
                ((leader, peer_url.to_owned()), (req, tx)),
                take_batch,
                move |(to, batch)| {
                    let (peers, stats) = (peers.clone(), stats.clone());
                    async move { send_batch(&peers, &to, batch, &stats).await }
                },
            );
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(Redirect::Fail(error::stopped())),
        }
    }
}

/// The oldest writes for the same leader as the first one, up to [`MAX_BATCH`].
fn take_batch(waiting: &mut Vec<(Leader, Waiter)>) -> (Leader, Vec<Waiter>) {
    let to = waiting[0].0.clone();
    let mut batch = Vec::new();
    let mut rest = Vec::new();
    for (u, w) in waiting.drain(..) {
        if u == to && batch.len() < MAX_BATCH {
            batch.push(w);
        } else {
            rest.push((u, w));
        }
    }
    *waiting = rest;
    (to, batch)
}

/// The leader a write goes to: its member id and peer URL.
type Leader = (NodeId, String);

async fn send_batch(peers: &PeerNetwork, to: &Leader, batch: Vec<Waiter>, stats: &Stats) {
    let (reqs, txs): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let n = reqs.len();
    stats.calls.fetch_add(1, Ordering::Relaxed);
    stats.writes.fetch_add(n as u64, Ordering::Relaxed);
    match peers
        .propose(
            to.0,
            &to.1,
            ProposeRequest { requests: reqs },
            PROPOSE_TIMEOUT,
        )
        .await
    {
        Ok(ProposeResponse { results }) if results.len() == n => {
            for (tx, r) in txs.into_iter().zip(results) {
                let _ = tx.send(outcome_of(r));
            }
        }
        Ok(_) => {
            for tx in txs {
                let _ = tx.send(Err(Redirect::Fail(Status::internal(
                    "leader answered a different number of writes",
                ))));
            }
        }
        Err(e) => {
            // Not sent at all (link down, refused): the write can go again once a leader is
            // known. Anything else may have been applied and is answered as it is.
            let retry = e.not_sent();
            let s = e.into_status();
            for tx in txs {
                let _ = tx.send(Err(if retry {
                    Redirect::NoLeader
                } else {
                    Redirect::Fail(s.clone())
                }));
            }
        }
    }
}

fn outcome_of(r: ProposeResult) -> Result<Outcome, Redirect> {
    match r.result {
        Some(Outcome::Error(e)) if e.not_leader => Err(Redirect::NoLeader),
        Some(Outcome::Error(e)) => Err(Redirect::Fail(Status::new(
            Code::from_i32(e.code),
            e.message,
        ))),
        Some(o) => Ok(o),
        None => Err(Redirect::Fail(Status::internal(
            "empty answer from the leader",
        ))),
    }
}

/// The etcd response for a forwarded write's outcome.
pub(crate) fn response_of(o: Outcome) -> Option<mvcc::Response> {
    Some(match o {
        Outcome::Put(r) => mvcc::Response::Put(r),
        Outcome::DeleteRange(r) => mvcc::Response::DeleteRange(r),
        Outcome::Txn(r) => mvcc::Response::Txn(r),
        Outcome::Compaction(r) => mvcc::Response::Compaction(r),
        Outcome::Error(_) => return None,
    })
}

/// Leader side of `Propose`: every request proposed here (concurrently, so they share
/// entries), each answered in order.
pub(crate) async fn serve(router: &Router, req: ProposeRequest) -> ProposeResponse {
    use proto::registrypb::internal_request::Request as Kind;
    let results = futures::future::join_all(req.requests.iter().map(|r| async move {
        let is_kv_write = matches!(
            r.request,
            Some(Kind::Put(_) | Kind::DeleteRange(_) | Kind::Txn(_) | Kind::Compaction(_))
        );
        if !is_kv_write {
            return ProposeResult {
                result: Some(error_of(&Status::invalid_argument(
                    "only KV writes are forwarded",
                ))),
            };
        }
        let result = match router.propose(r).await {
            Ok(applied) => match &applied.response {
                mvcc::Response::Put(p) => Outcome::Put(p.clone()),
                mvcc::Response::DeleteRange(d) => Outcome::DeleteRange(d.clone()),
                mvcc::Response::Txn(t) => Outcome::Txn(t.clone()),
                mvcc::Response::Compaction(c) => Outcome::Compaction(*c),
                _ => error_of(&Status::invalid_argument("not a KV write")),
            },
            Err(Redirect::Fail(s)) => error_of(&s),
            Err(Redirect::Leader(_)) | Err(Redirect::NoLeader) => Outcome::Error(ProposeError {
                not_leader: true,
                ..Default::default()
            }),
        };
        ProposeResult {
            result: Some(result),
        }
    }))
    .await;
    ProposeResponse { results }
}

fn error_of(s: &Status) -> Outcome {
    Outcome::Error(ProposeError {
        code: s.code() as i32,
        message: s.message().to_string(),
        not_leader: false,
    })
}
