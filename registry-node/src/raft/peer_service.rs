//! Server side of the peer transport (cluster-internal, on each member's peer URL): decodes
//! openraft requests, hands them to the local Raft, and encodes the `Result` back; and answers
//! followers' `ReadIndex` requests with the member's batched leadership check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use proto::registrypb::raft_peer_server::{RaftPeer, RaftPeerServer};
use proto::registrypb::{
    ProposeRequest, ProposeResponse, RaftMessage, ReadIndexRequest, ReadIndexResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::network::MAX_PEER_MESSAGE;
use super::{codec, Raft};
use crate::api::{error, route::Redirect};
use crate::node::Core;

/// The `RaftPeer` gRPC service of one member.
pub struct PeerService {
    raft: Raft,
    isolated: Arc<AtomicBool>,
    /// For `ReadIndex`: the member's batched leadership check.
    core: Option<Arc<Core>>,
}

impl PeerService {
    pub fn new(raft: Raft, isolated: Arc<AtomicBool>) -> Self {
        PeerService {
            raft,
            isolated,
            core: None,
        }
    }

    /// Serves `ReadIndex` with `core`'s leadership checks (without it, `ReadIndex` is
    /// UNIMPLEMENTED and followers forward their reads instead).
    pub fn with_core(mut self, core: Arc<Core>) -> Self {
        self.core = Some(core);
        self
    }

    pub fn into_server(self) -> RaftPeerServer<Self> {
        RaftPeerServer::new(self)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE)
    }

    fn decode<T: DeserializeOwned>(&self, req: Request<RaftMessage>) -> Result<T, Status> {
        if self.isolated.load(Ordering::Relaxed) {
            return Err(Status::unavailable("member isolated"));
        }
        bincode::serde::decode_from_slice(&req.into_inner().data, codec())
            .map(|(v, _)| v)
            .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Response<RaftMessage>, Status> {
    bincode::serde::encode_to_vec(value, codec())
        .map(|data| Response::new(RaftMessage { data }))
        .map_err(|e| Status::internal(format!("encode raft reply: {e}")))
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(req)?;
        encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(req)?;
        encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(req)?;
        encode(&self.raft.install_snapshot(rpc).await)
    }

    async fn read_index(
        &self,
        _req: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        if self.isolated.load(Ordering::Relaxed) {
            return Err(Status::unavailable("member isolated"));
        }
        let Some(core) = &self.core else {
            return Err(Status::unimplemented("read index not served here"));
        };
        match core.leader_read_index().await {
            Ok(ri) => {
                core.read_stats
                    .read_index_served
                    .fetch_add(1, Ordering::Relaxed);
                Ok(Response::new(ReadIndexResponse {
                    index: ri.index,
                    term: ri.term,
                    leader_id: ri.leader_id,
                }))
            }
            Err(Redirect::Leader(_)) => Err(error::leader_changed()),
            Err(Redirect::NoLeader) => Err(error::no_leader()),
            Err(Redirect::Fail(s)) => Err(s),
        }
    }

    async fn propose(
        &self,
        req: Request<ProposeRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        if self.isolated.load(Ordering::Relaxed) {
            return Err(Status::unavailable("member isolated"));
        }
        let Some(core) = &self.core else {
            return Err(Status::unimplemented("propose not served here"));
        };
        Ok(Response::new(
            crate::api::forward::serve(core, req.into_inner()).await,
        ))
    }
}
