//! Where a request is served: writes go through Raft on the leader; linearizable reads are
//! served by the member that received them once it has applied up to a read index confirmed
//! by the leader after the read arrived (the leader checks its leadership itself, a follower
//! asks it with `RaftPeer.ReadIndex`; both batched, as etcd's read loop); serializable reads
//! are local. A member that cannot serve a call carries it to the leader's client URL, once (a
//! forwarded call is never forwarded again), and waits for an election when there is no
//! leader, up to the request's deadline.

mod call;
mod forward;
mod peer_side;
mod reads;

pub(crate) use call::{
    forwarded_request, requires_leader, CallCtx, Redirect, DEFAULT_DEADLINE, FORWARDED, TOKEN,
};
pub use forward::ForwardCounts;
pub(crate) use forward::{response_of, ForwardQueue};
pub use reads::ReadCounts;
pub(crate) use reads::ReadStats;

use openraft::async_runtime::WatchReceiver;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use prost::Message;
use proto::etcdserverpb::ResponseHeader;
use proto::registrypb::InternalRequest;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Status;

use crate::errors as error;
use crate::raft::batch::ProposalBatch;
use crate::raft::peer::client::PeerNetwork;
use crate::raft::{CommandResult, MemberNode, NodeId, Raft, TypeConfig};
use crate::store::StateMachine;
use crate::tls::ClientTls;

/// Where each call of a member is served, and what that needs: its Raft and state machine,
/// the batches that share Raft entries and leadership checks, the member link for read
/// indexes and forwarded writes, and channels to the other members' client URLs. Every etcd
/// service holds one (shared), plus whatever else that service alone uses.
pub(crate) struct Router {
    raft: Raft,
    sm: StateMachine,
    cluster_id: u64,
    member_id: NodeId,
    /// How long a follower may wait to apply up to a read index before the read goes to the
    /// leader instead (an election timeout).
    read_patience: Duration,
    /// Calls forwarded to other members' client URLs: TLS settings and cached channels.
    client_tls: ClientTls,
    channels: Mutex<HashMap<String, Channel>>,
    /// Linearizable reads waiting for a shared leadership check.
    reads: reads::ReadBatch,
    /// Linearizable reads of a follower waiting for a read index from the leader.
    follower_reads: reads::FollowerReads,
    /// Proposals waiting to share a Raft entry.
    proposals: ProposalBatch,
    /// KV writes this member, as a follower, sends on to the leader in batches.
    forward: ForwardQueue,
    /// Where linearizable reads were served (local or forwarded).
    read_stats: Arc<ReadStats>,
    /// The member link (shared with Raft), for read indexes and forwarded writes.
    peers: PeerNetwork,
}

/// What a [`Router`] is built from.
pub(crate) struct RouterParts {
    pub(crate) raft: Raft,
    pub(crate) sm: StateMachine,
    pub(crate) cluster_id: u64,
    pub(crate) member_id: NodeId,
    pub(crate) election_timeout_ms: u64,
    pub(crate) proposals_in_flight: usize,
    pub(crate) client_tls: ClientTls,
    pub(crate) peers: PeerNetwork,
}

impl Router {
    pub(crate) fn new(p: RouterParts) -> Self {
        Router {
            raft: p.raft,
            sm: p.sm,
            cluster_id: p.cluster_id,
            member_id: p.member_id,
            read_patience: Duration::from_millis(p.election_timeout_ms.max(100)),
            client_tls: p.client_tls,
            channels: Mutex::new(HashMap::new()),
            reads: Default::default(),
            follower_reads: Default::default(),
            proposals: ProposalBatch::new(p.proposals_in_flight),
            forward: Default::default(),
            read_stats: Default::default(),
            peers: p.peers,
        }
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    pub(crate) fn sm(&self) -> &StateMachine {
        &self.sm
    }

    pub(crate) fn member_id(&self) -> NodeId {
        self.member_id
    }

    pub(crate) fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub(crate) fn peers(&self) -> &PeerNetwork {
        &self.peers
    }

    pub(crate) fn forward_queue(&self) -> &ForwardQueue {
        &self.forward
    }

    pub(crate) fn read_stats(&self) -> &ReadStats {
        &self.read_stats
    }

    /// etcd's response header for this member at `revision`.
    pub(crate) fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term: self.raft.metrics().borrow_watched().current_term,
        }
    }

    /// Keeps the revision of `h` (set where the request was applied) and stamps this member.
    pub(crate) fn restamp(&self, h: Option<ResponseHeader>) -> ResponseHeader {
        let revision = h
            .map(|h| h.revision)
            .unwrap_or_else(|| self.sm.read(|s| s.revision()));
        self.header(revision)
    }

    /// A (cached, lazily connected) channel to another member's client URL.
    pub(crate) fn client_channel(&self, url: &str) -> Result<Channel, Status> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = map.get(url) {
            return Ok(ch.clone());
        }
        let ch = self
            .client_tls
            .endpoint(url)
            .map_err(|e| Status::internal(format!("member url {url}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        map.insert(url.to_owned(), ch.clone());
        Ok(ch)
    }

    /// Proposes `req` through Raft on this member (which must be the leader) and waits for it
    /// to be applied. Concurrent proposals share one entry (see [`crate::raft::batch`]).
    pub(crate) async fn propose(
        &self,
        req: &InternalRequest,
    ) -> Result<Arc<mvcc::Applied>, Redirect> {
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

    /// The leader as this member's Raft metrics know it, when that is another member.
    pub(crate) fn known_leader(&self) -> Option<MemberNode> {
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        let leader = m.current_leader.filter(|l| *l != m.id)?;
        m.membership_config.membership().get_node(&leader).cloned()
    }

    /// The id of `node` in the Raft membership.
    pub(crate) fn member_id_of(&self, node: &MemberNode) -> Option<NodeId> {
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        let found = m
            .membership_config
            .membership()
            .nodes()
            .find(|(_, n)| *n == node)
            .map(|(id, _)| *id);
        found
    }

    /// Every other member of the Raft membership with a client URL: (id, client URL).
    pub(crate) fn other_members(&self) -> Vec<(NodeId, String)> {
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        let others = m
            .membership_config
            .membership()
            .nodes()
            .filter(|(id, n)| **id != self.member_id && !n.client_url.is_empty())
            .map(|(id, n)| (*id, n.client_url.clone()))
            .collect();
        others
    }

    /// The Raft membership's record of member `id`.
    pub(crate) fn member(&self, id: NodeId) -> Option<MemberNode> {
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        m.membership_config.membership().get_node(&id).cloned()
    }

    /// Runs `local` here, or `remote` against the leader's client channel when `local` says to,
    /// retrying while there is no leader or the leader changed, until the deadline.
    pub(crate) async fn route<T, L, LF, R, RF>(
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
                // The client's own deadline is always DEADLINE_EXCEEDED (what grpc-go's
                // client reports too); past ours, "no leader" says more than a timeout.
                return Err(
                    if failure.message() == error::NO_LEADER && !ctx.client_deadline {
                        failure
                    } else {
                        ctx.expired()
                    },
                );
            }
            self.wait_for_leader_change(ctx.deadline).await;
        }
    }

    /// Where the leader is, if it is not this member.
    pub(crate) fn leader_redirect(&self) -> Option<Redirect> {
        let m = self.raft.metrics().borrow_watched().clone();
        match m.current_leader {
            Some(id) if id == self.member_id => None,
            Some(id) => Some(
                m.membership_config
                    .membership()
                    .get_node(&id)
                    .cloned()
                    .map(Redirect::Leader)
                    .unwrap_or(Redirect::NoLeader),
            ),
            None => Some(Redirect::NoLeader),
        }
    }

    /// Waits (bounded) for the Raft metrics to change, e.g. a leader to be elected.
    pub(crate) async fn wait_for_leader_change(&self, deadline: Instant) {
        let mut metrics = self.raft.metrics();
        let step = Instant::now() + Duration::from_millis(100);
        let _ = tokio::time::timeout_at(step.min(deadline), metrics.changed()).await;
    }
}

fn redirect_of(f: ForwardToLeader<TypeConfig>) -> Redirect {
    match f.leader_node {
        Some(node) => Redirect::Leader(node),
        None => Redirect::NoLeader,
    }
}
