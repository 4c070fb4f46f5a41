//! Server side of the peer transport (cluster-internal, on each member's peer URL): decodes
//! openraft requests, hands them to the local Raft, and encodes the `Result` back; answers
//! followers' `ReadIndex` requests with the member's batched leadership check and proposes
//! their forwarded writes. Served on the member link and as the `RaftPeer` gRPC service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prost::bytes::Bytes;
use prost::Message;
use proto::registrypb::raft_peer_server::{RaftPeer, RaftPeerServer};
use proto::registrypb::{
    ProposeRequest, ProposeResponse, RaftMessage, ReadIndexRequest, ReadIndexResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use super::link::{self, Kind, Serve};
use super::network::MAX_PEER_MESSAGE;
use super::{codec, Raft};
use crate::api::{error, route::Redirect};
use crate::node::Core;

/// The peer service of one member, served on the member link ([`super::link`]) and as the
/// `RaftPeer` gRPC service; both call the same handlers.
#[derive(Clone)]
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

    fn check(&self) -> Result<(), Status> {
        if self.isolated.load(Ordering::Relaxed) {
            return Err(Status::unavailable("member isolated"));
        }
        Ok(())
    }

    fn core(&self, what: &str) -> Result<&Arc<Core>, Status> {
        self.core
            .as_ref()
            .ok_or_else(|| Status::unimplemented(format!("{what} not served here")))
    }

    /// An openraft request (bincode) handed to the local Raft; the answer is its `Result` in
    /// bincode, written after `head` (the link's frame header, or nothing for gRPC).
    async fn raft_call(&self, kind: Kind, data: &[u8], head: Vec<u8>) -> Result<Vec<u8>, Status> {
        self.check()?;
        match kind {
            Kind::Append => encode(head, &self.raft.append_entries(decode(data)?).await),
            Kind::Vote => encode(head, &self.raft.vote(decode(data)?).await),
            Kind::Snapshot => encode(head, &self.raft.install_snapshot(decode(data)?).await),
            Kind::ReadIndex | Kind::Propose => Err(Status::internal("not a raft call")),
        }
    }

    async fn read_index(&self) -> Result<ReadIndexResponse, Status> {
        self.check()?;
        let core = self.core("read index")?;
        match core.leader_read_index().await {
            Ok(ri) => {
                core.read_stats
                    .read_index_served
                    .fetch_add(1, Ordering::Relaxed);
                Ok(ReadIndexResponse {
                    index: ri.index,
                    term: ri.term,
                    leader_id: ri.leader_id,
                })
            }
            Err(Redirect::Leader(_)) => Err(error::leader_changed()),
            Err(Redirect::NoLeader) => Err(error::no_leader()),
            Err(Redirect::Fail(s)) => Err(s),
        }
    }

    async fn propose(&self, req: ProposeRequest) -> Result<ProposeResponse, Status> {
        self.check()?;
        let core = self.core("propose")?;
        Ok(crate::api::forward::serve(core, req).await)
    }
}

impl Serve for PeerService {
    async fn serve(&self, kind: Kind, body: Bytes) -> Result<Vec<u8>, Status> {
        match kind {
            Kind::ReadIndex => Ok(prost_answer(&self.read_index().await?)),
            Kind::Propose => {
                let req = ProposeRequest::decode(body)
                    .map_err(|e| Status::invalid_argument(format!("undecodable propose: {e}")))?;
                Ok(prost_answer(&self.propose(req).await?))
            }
            raft => self.raft_call(raft, &body, link::answer(256)).await,
        }
    }
}

fn prost_answer(m: &impl Message) -> Vec<u8> {
    let mut buf = link::answer(m.encoded_len());
    // Cannot fail: a Vec grows as needed.
    let _ = m.encode(&mut buf);
    buf
}

fn decode<T: DeserializeOwned>(data: &[u8]) -> Result<T, Status> {
    bincode::serde::decode_from_slice(data, codec())
        .map(|(v, _)| v)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: Serialize>(mut buf: Vec<u8>, value: &T) -> Result<Vec<u8>, Status> {
    bincode::serde::encode_into_std_write(value, &mut buf, codec())
        .map_err(|e| Status::internal(format!("encode raft reply: {e}")))?;
    Ok(buf)
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let data = self
            .raft_call(Kind::Append, &req.into_inner().data, Vec::new())
            .await?;
        Ok(Response::new(RaftMessage { data }))
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let data = self
            .raft_call(Kind::Vote, &req.into_inner().data, Vec::new())
            .await?;
        Ok(Response::new(RaftMessage { data }))
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let data = self
            .raft_call(Kind::Snapshot, &req.into_inner().data, Vec::new())
            .await?;
        Ok(Response::new(RaftMessage { data }))
    }

    async fn read_index(
        &self,
        _req: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        Ok(Response::new(PeerService::read_index(self).await?))
    }

    async fn propose(
        &self,
        req: Request<ProposeRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        Ok(Response::new(
            PeerService::propose(self, req.into_inner()).await?,
        ))
    }
}
