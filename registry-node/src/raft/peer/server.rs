//! Answering side of the member link: the `raftpb.RaftPeer` service on the peer URL. Each
//! request of a stream is handled in a task of its own (a slow proposal does not hold up a
//! heartbeat), at most [`MAX_IN_FLIGHT`] per stream: past that the stream is not read, so a
//! flooding peer is slowed down instead of growing a queue.

use openraft::async_runtime::WatchReceiver;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::Stream;
use proto::raftpb::peer_request::Body as Req;
use proto::raftpb::peer_response::Body as Resp;
use proto::raftpb::raft_peer_server::{RaftPeer, RaftPeerServer};
use proto::raftpb::{
    snapshot_chunk, Failure, PeerRequest, PeerResponse, SnapshotChunk, SnapshotReply,
};
use proto::registrypb::{ProposeRequest, ProposeResponse, ReadIndexResponse};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{Identity, MAX_IN_FLIGHT, MAX_MESSAGE, MAX_SNAPSHOT};
use crate::raft::{wire, NodeId, Raft};
use crate::types::{Snapshot, SnapshotMeta};

/// The peer service of one member.
#[derive(Clone)]
pub(crate) struct PeerService {
    me: Identity,
    raft: Raft,
    isolated: Arc<AtomicBool>,
    /// Read indexes and forwarded writes, answered by the client side.
    leader_side: Arc<dyn LeaderSide>,
    /// Members of the cluster file, accepted before the Raft membership knows them (a member
    /// that has not formed the cluster yet has an empty membership).
    configured: Arc<Vec<NodeId>>,
}

/// What the member link asks of the client side of a member: a read index for a follower's
/// linearizable reads, and writes a follower forwards. The routing layer implements it
/// (`crate::routing`), so the link does not depend on how requests are routed.
#[tonic::async_trait]
pub(crate) trait LeaderSide: Send + Sync + 'static {
    /// A read index confirmed by a leadership check that started after the request arrived.
    async fn read_index(&self) -> Result<ReadIndexResponse, Status>;
    /// Proposes the forwarded writes and answers each.
    async fn propose(&self, req: ProposeRequest) -> ProposeResponse;
}

type AnswerStream = Pin<Box<dyn Stream<Item = Result<PeerResponse, Status>> + Send>>;

impl PeerService {
    pub(crate) fn new(
        me: Identity,
        raft: Raft,
        isolated: Arc<AtomicBool>,
        configured: Vec<NodeId>,
        leader_side: Arc<dyn LeaderSide>,
    ) -> Self {
        PeerService {
            me,
            raft,
            isolated,
            leader_side,
            configured: Arc::new(configured),
        }
    }

    pub(crate) fn into_server(self) -> RaftPeerServer<Self> {
        RaftPeerServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    /// The handshake and the isolation switch: every call passes here first.
    fn admit<T>(&self, req: &Request<T>) -> Result<NodeId, Status> {
        if self.isolated.load(Ordering::Relaxed) {
            return Err(Status::unavailable("member isolated"));
        }
        let known = |id: NodeId| {
            self.configured.contains(&id)
                || self
                    .raft
                    .metrics()
                    .borrow_watched()
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .is_some()
        };
        let from = self.me.check_request(req.metadata(), known);
        if let Err(s) = &from {
            tracing::warn!(error = %s.message(), "peer refused");
        }
        from
    }

    fn answer<T>(&self, msg: T) -> Response<T> {
        let mut resp = Response::new(msg);
        self.me.stamp_response(resp.metadata_mut());
        resp
    }

    async fn handle(&self, body: Req) -> Result<Resp, Status> {
        if self.isolated.load(Ordering::Relaxed) {
            return Err(Status::unavailable("member isolated"));
        }
        let malformed = |e: wire::Malformed| Status::invalid_argument(e.to_string());
        let fatal = |e: openraft::error::RaftError<crate::raft::TypeConfig>| {
            Status::unavailable(format!("raft: {e}"))
        };
        Ok(match body {
            Req::Append(a) => {
                let req = wire::from_append_request(a).map_err(malformed)?;
                let resp = self.raft.append_entries(req).await.map_err(fatal)?;
                Resp::Append(wire::append_response(&resp))
            }
            Req::Vote(v) => {
                let (req, pre_vote) = wire::from_vote_request(v).map_err(malformed)?;
                let resp = if pre_vote {
                    self.raft.pre_vote(req).await
                } else {
                    self.raft.vote(req).await
                };
                Resp::Vote(wire::vote_response(&resp.map_err(fatal)?))
            }
            Req::TransferLeader(t) => {
                let req = wire::from_transfer_request(t).map_err(malformed)?;
                let resp = self
                    .raft
                    .handle_transfer_leader(req)
                    .await
                    .map_err(|e| Status::unavailable(format!("raft: {e}")))?;
                Resp::TransferLeader(wire::transfer_response(&resp))
            }
            Req::ReadIndex(_) => Resp::ReadIndex(self.leader_side.read_index().await?),
            Req::Propose(p) => Resp::Propose(self.leader_side.propose(p).await),
        })
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    type StreamStream = AnswerStream;

    async fn stream(
        &self,
        req: Request<Streaming<PeerRequest>>,
    ) -> Result<Response<AnswerStream>, Status> {
        self.admit(&req)?;
        let mut requests = req.into_inner();
        let (tx, rx) = mpsc::channel::<Result<PeerResponse, Status>>(MAX_IN_FLIGHT);
        let service = self.clone();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            loop {
                // Taken before the next request is read: a full stream is not read.
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                let Ok(Some(PeerRequest { id, body })) = requests.message().await else {
                    break;
                };
                let (service, tx) = (service.clone(), tx.clone());
                tokio::spawn(async move {
                    let answer = match body {
                        Some(body) => service.handle(body).await,
                        None => Err(Status::invalid_argument("empty peer request")),
                    };
                    let body = answer.unwrap_or_else(|s| {
                        Resp::Failure(Failure {
                            code: s.code() as i32,
                            message: s.message().to_owned(),
                        })
                    });
                    // The caller may be gone; nothing to do then.
                    let _ = tx
                        .send(Ok(PeerResponse {
                            id,
                            body: Some(body),
                        }))
                        .await;
                    drop(slot);
                });
            }
        });
        Ok(self.answer(Box::pin(ReceiverStream::new(rx)) as AnswerStream))
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<SnapshotReply>, Status> {
        self.admit(&req)?;
        let mut chunks = req.into_inner();
        let bad = |what: &str| Status::invalid_argument(format!("snapshot: {what}"));
        let Some(SnapshotChunk {
            part: Some(snapshot_chunk::Part::Head(head)),
        }) = chunks.message().await?
        else {
            return Err(bad("the first chunk must be the head"));
        };
        if head.size > MAX_SNAPSHOT {
            return Err(Status::resource_exhausted(format!(
                "snapshot of {} bytes is over the limit of {MAX_SNAPSHOT}",
                head.size
            )));
        }
        let vote = wire::from_vote(head.vote).map_err(|e| bad(&e.to_string()))?;
        let last_membership = wire::from_stored_membership(head.membership_log_id, head.membership)
            .map_err(|e| bad(&e.to_string()))?;
        let meta = SnapshotMeta {
            last_log_id: head.last_log_id.map(wire::from_log_id),
            last_membership,
        };
        // Grows with what arrives, never past the size announced.
        let mut data = Vec::new();
        while let Some(chunk) = chunks.message().await? {
            let Some(snapshot_chunk::Part::Data(bytes)) = chunk.part else {
                return Err(bad("a second head"));
            };
            if data.len() as u64 + bytes.len() as u64 > head.size {
                return Err(bad("more data than announced"));
            }
            data.extend_from_slice(&bytes);
        }
        if data.len() as u64 != head.size {
            return Err(bad("less data than announced"));
        }
        if self.isolated.load(Ordering::Relaxed) {
            return Err(Status::unavailable("member isolated"));
        }
        let resp = self
            .raft
            .install_full_snapshot(
                vote,
                Snapshot {
                    meta,
                    snapshot: data,
                },
            )
            .await
            .map_err(|e| Status::unavailable(format!("raft: {e}")))?;
        Ok(self.answer(SnapshotReply {
            vote: Some(wire::vote(&resp.vote)),
        }))
    }
}
