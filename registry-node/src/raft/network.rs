//! Client side of the peer transport: openraft's `RaftNetwork` over the member link
//! ([`super::link`]), one lazily connected link per peer. Payloads are openraft's own types in
//! bincode, and the `RaftPeer` messages in protobuf for read index and propose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use prost::Message;
use proto::registrypb::{ProposeRequest, ProposeResponse, ReadIndexResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::link::{self, CallError, Kind, Link};
use super::{codec, MemberNode, NodeId, TypeConfig};

/// Largest peer message accepted either way (log batches and snapshot chunks).
pub const MAX_PEER_MESSAGE: usize = 256 * 1024 * 1024;

/// Hands openraft one [`PeerClient`] per target member.
#[derive(Clone, Default)]
pub struct PeerNetwork {
    /// Whether to cut every link (test isolation); shared with the peer server.
    pub isolated: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// One link (TCP connection) per peer URL. openraft asks for a new client for every
    /// leadership check (each linearizable read): without this each one dialled a new TCP
    /// connection to every follower.
    links: Arc<Mutex<HashMap<String, Arc<Link>>>>,
    /// Where the links' connection tasks run (the member's Raft thread, see
    /// `node::RaftThread`); `None`: the caller's runtime.
    runtime: Option<tokio::runtime::Handle>,
}

impl PeerNetwork {
    /// A network whose connections run on `runtime`.
    pub fn on(runtime: tokio::runtime::Handle) -> Self {
        PeerNetwork {
            runtime: Some(runtime),
            ..Default::default()
        }
    }

    fn link(&self, url: &str) -> Result<Arc<Link>, String> {
        let mut map = self.links.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(link) = map.get(url) {
            return Ok(Arc::clone(link));
        }
        // Member URLs were checked with the same rule when the cluster file was read.
        let addr = crate::config::url_addr(url)?.to_string();
        let link = Arc::new(Link::new(addr, MAX_PEER_MESSAGE, self.runtime.clone()));
        map.insert(url.to_owned(), Arc::clone(&link));
        Ok(link)
    }
}

impl PeerNetwork {
    /// Asks the member at `peer_url` (the leader) for a read index (see
    /// [`crate::api::route::FollowerReads`]). Fails at once while this member is isolated.
    pub async fn read_index(
        &self,
        peer_url: &str,
        timeout: Duration,
    ) -> Result<ReadIndexResponse, tonic::Status> {
        self.prost_call(peer_url, Kind::ReadIndex, None::<&ProposeRequest>, timeout)
            .await
    }

    /// Sends a batch of client writes to the member at `peer_url` (the leader) to be proposed
    /// there (see [`crate::api::forward`]). Fails at once while this member is isolated.
    pub async fn propose(
        &self,
        peer_url: &str,
        req: ProposeRequest,
        timeout: Duration,
    ) -> Result<ProposeResponse, tonic::Status> {
        self.prost_call(peer_url, Kind::Propose, Some(&req), timeout)
            .await
    }

    async fn prost_call<Req: Message, Resp: Message + Default>(
        &self,
        peer_url: &str,
        kind: Kind,
        req: Option<&Req>,
        timeout: Duration,
    ) -> Result<Resp, tonic::Status> {
        if self.isolated.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(tonic::Status::unavailable("link cut (member isolated)"));
        }
        let link = self
            .link(peer_url)
            .map_err(|u| tonic::Status::internal(format!("bad peer url: {u}")))?;
        let mut frame = link::request(kind, req.map_or(0, Message::encoded_len));
        if let Some(req) = req {
            // Cannot fail: a Vec grows as needed.
            let _ = req.encode(&mut frame);
        }
        let body = link.call(frame, timeout).await?;
        Resp::decode(body)
            .map_err(|e| tonic::Status::internal(format!("undecodable peer answer: {e}")))
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> PeerClient {
        let link = self.link(&node.peer_url);
        PeerClient {
            target,
            node: node.clone(),
            link,
            isolated: self.isolated.clone(),
        }
    }
}

/// The link to one peer.
pub struct PeerClient {
    target: NodeId,
    node: MemberNode,
    link: Result<Arc<Link>, String>,
    isolated: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("bad peer url: {0}")]
    BadUrl(String),
    #[error("link cut (member isolated)")]
    Isolated,
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("rpc: {0}")]
    Rpc(#[from] CallError),
}

impl PeerClient {
    /// Sends one request and decodes the remote `Result`; transport failures become
    /// `Unreachable` (openraft backs off) and remote Raft errors `RemoteError`.
    async fn call<Req, Resp, E>(
        &mut self,
        kind: Kind,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, MemberNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let res: Result<Result<Resp, RaftError<NodeId, E>>, LinkError> =
            self.roundtrip(kind, req, option.hard_ttl()).await;
        match res {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))),
            Err(e @ (LinkError::Encode(_) | LinkError::Decode(_))) => {
                Err(RPCError::Network(NetworkError::new(&e)))
            }
            Err(e) => Err(RPCError::Unreachable(Unreachable::new(&e))),
        }
    }

    async fn roundtrip<Req: Serialize, Out: DeserializeOwned>(
        &mut self,
        kind: Kind,
        req: &Req,
        ttl: Duration,
    ) -> Result<Out, LinkError> {
        if self.isolated.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(LinkError::Isolated);
        }
        let link = self.link.clone().map_err(LinkError::BadUrl)?;
        let mut frame = link::request(kind, 256);
        bincode::serde::encode_into_std_write(req, &mut frame, codec())?;
        let body = link.call(frame, ttl).await?;
        let (out, _) = bincode::serde::decode_from_slice(&body, codec())?;
        Ok(out)
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>>
    {
        self.call(Kind::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, MemberNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Kind::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.call(Kind::Vote, &rpc, &option).await
    }
}
