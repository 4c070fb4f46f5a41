//! openraft's network over the member link: one [`PeerClient`] per target member, on the
//! shared [`PeerNetwork`] links.

use std::sync::Arc;

use futures::stream;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    VoteRequest, VoteResponse,
};
use openraft::OptionalSend;
use prost::Message;
use proto::raftpb::peer_request::Body as Req;
use proto::raftpb::peer_response::Body as Resp;
use proto::raftpb::{snapshot_chunk, SnapshotChunk, SnapshotHead};

use super::client::{unexpected, Conn, PeerError, PeerNetwork};
use super::{APPEND_BUDGET, SNAPSHOT_CHUNK};
use crate::raft::{wire, MemberNode, NodeId, TypeConfig};
use crate::types::{Snapshot, SnapshotData, Vote};

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> PeerClient {
        PeerClient {
            target,
            url: node.peer_url.clone(),
            net: self.clone(),
        }
    }
}

/// openraft's client for one member.
pub(crate) struct PeerClient {
    target: NodeId,
    url: String,
    net: PeerNetwork,
}

impl PeerError {
    /// Garbled answers are worth an immediate retry; anything else means the member is not
    /// there or not working, and openraft backs off.
    fn into_rpc(self) -> RPCError<TypeConfig> {
        match self {
            e @ PeerError::Malformed(..) => RPCError::Network(NetworkError::new(&e)),
            e => RPCError::Unreachable(Unreachable::new(&e)),
        }
    }

    fn into_streaming(self) -> StreamingError<TypeConfig> {
        match self {
            e @ PeerError::Malformed(..) => StreamingError::Network(NetworkError::new(&e)),
            e => StreamingError::Unreachable(Unreachable::new(&e)),
        }
    }
}

impl PeerClient {
    fn conn(&self) -> Result<Arc<Conn>, PeerError> {
        self.net.conn(self.target, &self.url)
    }

    async fn call(&self, body: Req, option: &RPCOption) -> Result<Resp, PeerError> {
        self.conn()?.call(body, option.hard_ttl()).await
    }

    async fn vote_call(
        &self,
        rpc: &VoteRequest<TypeConfig>,
        pre_vote: bool,
        option: &RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let body = Req::Vote(wire::vote_request(rpc, pre_vote));
        match self.call(body, option).await.map_err(PeerError::into_rpc)? {
            Resp::Vote(v) => wire::from_vote_response(v)
                .map_err(|e| PeerError::Malformed(self.target, e.to_string()).into_rpc()),
            other => Err(unexpected(self.target, &other).into_rpc()),
        }
    }
}

/// How many of `entries` fit in one message ([`APPEND_BUDGET`]); at least one.
fn fitting(entries: &[proto::raftpb::Entry]) -> usize {
    let mut bytes = 0;
    entries
        .iter()
        .take_while(|e| {
            let first = bytes == 0;
            bytes += e.encoded_len();
            first || bytes <= APPEND_BUDGET
        })
        .count()
        .max(1)
        .min(entries.len())
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    /// Sends the entries that fit in one message; when some are left over, a full success is
    /// reported as a partial one up to the last entry sent, and openraft sends the rest next.
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let mut req = wire::append_request(&rpc);
        let n = fitting(&req.entries);
        let cut = n < req.entries.len();
        if cut {
            req.entries.truncate(n);
        }
        let resp = match self.call(Req::Append(req), &option).await {
            Ok(Resp::Append(a)) => wire::from_append_response(a)
                .map_err(|e| PeerError::Malformed(self.target, e.to_string()).into_rpc())?,
            Ok(other) => return Err(unexpected(self.target, &other).into_rpc()),
            Err(e) => return Err(e.into_rpc()),
        };
        Ok(match resp {
            AppendEntriesResponse::Success if cut => {
                AppendEntriesResponse::PartialSuccess(Some(rpc.entries[n - 1].log_id))
            }
            r => r,
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_call(&rpc, false, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.vote_call(&rpc, true, &option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<wire::TransferLeaderResponse, RPCError<TypeConfig>> {
        let body = Req::TransferLeader(wire::transfer_request(&req));
        match self
            .call(body, &option)
            .await
            .map_err(PeerError::into_rpc)?
        {
            Resp::TransferLeader(t) => wire::from_transfer_response(t)
                .map_err(|e| PeerError::Malformed(self.target, e.to_string()).into_rpc()),
            other => Err(unexpected(self.target, &other).into_rpc()),
        }
    }

    /// The snapshot in chunks of [`SNAPSHOT_CHUNK`] on an `InstallSnapshot` call of its own;
    /// replication closing meanwhile abandons it.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let conn = self.conn().map_err(PeerError::into_streaming)?;
        let (membership_log_id, membership) =
            wire::stored_membership(&snapshot.meta.last_membership);
        let data = snapshot.snapshot;
        let head = SnapshotHead {
            vote: Some(wire::vote(&vote)),
            last_log_id: wire::log_id_opt(&snapshot.meta.last_log_id),
            membership_log_id,
            membership: Some(membership),
            size: data.len() as u64,
        };
        let chunks: Vec<SnapshotChunk> = std::iter::once(snapshot_chunk::Part::Head(head))
            .chain(
                data.chunks(SNAPSHOT_CHUNK)
                    .map(|c| snapshot_chunk::Part::Data(c.to_vec())),
            )
            .map(|p| SnapshotChunk { part: Some(p) })
            .collect();
        let target = self.target;
        let send = async {
            let resp = conn
                .client()
                .install_snapshot(conn.request(stream::iter(chunks)))
                .await
                .map_err(|s| conn.call_failed(s))?;
            conn.check_answer(resp.metadata())?;
            let reply = resp.into_inner();
            wire::from_vote(reply.vote)
                .map(SnapshotResponse::new)
                .map_err(|e| PeerError::Malformed(target, e.to_string()))
        };
        tokio::select! {
            r = tokio::time::timeout(option.hard_ttl(), send) => match r {
                Ok(r) => r.map_err(PeerError::into_streaming),
                Err(_) => Err(PeerError::NoAnswer(target, "snapshot timed out".into())
                    .into_streaming()),
            },
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_cut_to_the_budget_but_never_empty() {
        let entry = |len: usize| proto::raftpb::Entry {
            log_id: None,
            payload: Some(proto::raftpb::entry::Payload::Normal(vec![0; len])),
        };
        assert_eq!(fitting(&[]), 0);
        assert_eq!(fitting(&[entry(10), entry(10)]), 2);
        let big = APPEND_BUDGET / 2;
        assert_eq!(fitting(&[entry(big), entry(big), entry(big)]), 1);
        assert_eq!(
            fitting(&[entry(APPEND_BUDGET * 2), entry(1)]),
            1,
            "alone if it must"
        );
    }
}
