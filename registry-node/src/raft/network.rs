//! Client side of the peer transport: openraft's `RaftNetwork` over tonic, one lazily
//! connected channel per peer. Payloads are openraft's own types in bincode.

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
use proto::registrypb::raft_peer_client::RaftPeerClient;
use proto::registrypb::{
    ProposeRequest, ProposeResponse, RaftMessage, ReadIndexRequest, ReadIndexResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::{codec, MemberNode, NodeId, TypeConfig};

/// Largest peer message accepted either way (log batches and snapshot chunks).
pub const MAX_PEER_MESSAGE: usize = 256 * 1024 * 1024;

/// Hands openraft one [`PeerClient`] per target member.
#[derive(Clone, Default)]
pub struct PeerNetwork {
    /// Whether to cut every link (test isolation); shared with the peer server.
    pub isolated: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// One channel (HTTP/2 connection) per peer URL. openraft asks for a new client for every
    /// leadership check (each linearizable read): without this each one dialled a new TCP
    /// connection to every follower.
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Where the channels' connection tasks run (the member's Raft thread, see
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

    fn channel(&self, url: &str) -> Result<Channel, String> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = map.get(url) {
            return Ok(ch.clone());
        }
        let _rt = self.runtime.as_ref().map(|h| h.enter());
        let ch = Endpoint::from_shared(url.to_owned())
            .map(|e| {
                e.connect_timeout(Duration::from_secs(1))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .connect_lazy()
            })
            .map_err(|e| e.to_string())?;
        map.insert(url.to_owned(), ch.clone());
        Ok(ch)
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
        if self.isolated.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(tonic::Status::unavailable("link cut (member isolated)"));
        }
        let channel = self.channel(peer_url).map_err(tonic::Status::internal)?;
        let mut request = tonic::Request::new(ReadIndexRequest {});
        request.set_timeout(timeout);
        let reply = RaftPeerClient::new(channel).read_index(request).await?;
        Ok(reply.into_inner())
    }

    /// Sends a batch of client writes to the member at `peer_url` (the leader) to be proposed
    /// there (see [`crate::api::forward`]). Fails at once while this member is isolated.
    pub async fn propose(
        &self,
        peer_url: &str,
        req: ProposeRequest,
        timeout: Duration,
    ) -> Result<ProposeResponse, tonic::Status> {
        if self.isolated.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(tonic::Status::unavailable("link cut (member isolated)"));
        }
        let channel = self.channel(peer_url).map_err(tonic::Status::internal)?;
        let mut request = tonic::Request::new(req);
        request.set_timeout(timeout);
        let reply = RaftPeerClient::new(channel).propose(request).await?;
        Ok(reply.into_inner())
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &MemberNode) -> PeerClient {
        let channel = self.channel(&node.peer_url);
        PeerClient {
            target,
            node: node.clone(),
            channel,
            isolated: self.isolated.clone(),
        }
    }
}

/// The link to one peer.
pub struct PeerClient {
    target: NodeId,
    node: MemberNode,
    channel: Result<Channel, String>,
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
    Rpc(#[from] tonic::Status),
}

impl PeerClient {
    /// Sends one request and decodes the remote `Result`; transport failures become
    /// `Unreachable` (openraft backs off) and remote Raft errors `RemoteError`.
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, MemberNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let res: Result<Result<Resp, RaftError<NodeId, E>>, LinkError> =
            self.roundtrip(method, req, option.hard_ttl()).await;
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
        method: Method,
        req: &Req,
        ttl: Duration,
    ) -> Result<Out, LinkError> {
        if self.isolated.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(LinkError::Isolated);
        }
        let channel = self.channel.clone().map_err(LinkError::BadUrl)?;
        let mut client = RaftPeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        let data = bincode::serde::encode_to_vec(req, codec())?;
        let mut request = tonic::Request::new(RaftMessage { data });
        request.set_timeout(ttl);
        let reply = match method {
            Method::Append => client.append_entries(request).await?,
            Method::Vote => client.vote(request).await?,
            Method::Snapshot => client.install_snapshot(request).await?,
        };
        let (out, _) = bincode::serde::decode_from_slice(&reply.into_inner().data, codec())?;
        Ok(out)
    }
}

#[derive(Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>>
    {
        self.call(Method::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, MemberNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Method::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, MemberNode, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
