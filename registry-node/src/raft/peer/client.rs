//! Caller side of the member link: openraft's `RaftNetworkV2` and the registry's own peer
//! calls (read index, forwarded writes) over one multiplexed stream per member.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::raftpb::peer_request::Body as Req;
use proto::raftpb::peer_response::Body as Resp;
use proto::raftpb::raft_peer_client::RaftPeerClient;
use proto::raftpb::{PeerRequest, PeerResponse};
use proto::registrypb::{ProposeRequest, ProposeResponse, ReadIndexRequest, ReadIndexResponse};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Status;

use super::{Identity, MAX_IN_FLIGHT, MAX_MESSAGE};
use crate::raft::NodeId;

/// Why a peer call failed. Whether the request may have reached the member decides whether
/// a write can be sent again ([`PeerError::not_sent`]).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PeerError {
    #[error("link cut (member isolated)")]
    Isolated,
    #[error("bad peer url {0}")]
    BadUrl(String),
    /// The member refused the handshake, or answered as someone else.
    #[error("peer handshake refused: {0}")]
    Refused(String),
    /// No stream to the member (connect failed, or it broke before the request went out).
    #[error("member {0:x} unreachable: {1}")]
    Unreachable(NodeId, String),
    /// The request went out; no answer came in time or the stream broke meanwhile.
    #[error("no answer from member {0:x}: {1}")]
    NoAnswer(NodeId, String),
    /// The member answered with an error.
    #[error("member {0:x} answered: {1}")]
    Remote(NodeId, Status),
    #[error("member {0:x} sent a malformed answer: {1}")]
    Malformed(NodeId, String),
}

impl PeerError {
    /// The request never left this member: sending it again cannot apply it twice.
    pub(crate) fn not_sent(&self) -> bool {
        matches!(
            self,
            PeerError::Isolated
                | PeerError::BadUrl(_)
                | PeerError::Refused(_)
                | PeerError::Unreachable(..)
        )
    }

    /// As a gRPC status for the registry's own callers; the member's own answer as it is.
    pub(crate) fn into_status(self) -> Status {
        match self {
            PeerError::Remote(_, s) => s,
            PeerError::Malformed(..) => Status::internal(self.to_string()),
            e => Status::unavailable(e.to_string()),
        }
    }
}

/// The calls waiting for answers on one stream, by request id.
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Resp, PeerError>>>>>;

/// One open stream to a member.
struct Mux {
    tx: mpsc::Sender<PeerRequest>,
    pending: Pending,
    /// Set when the stream ended; the next call opens a new one.
    dead: Arc<AtomicBool>,
    /// When the last answer arrived (a stream that answers nothing is abandoned).
    last_answer: Arc<Mutex<Instant>>,
}

/// The link to one member: a lazily connected channel and the stream on it.
pub(crate) struct Conn {
    me: Identity,
    target: NodeId,
    channel: Channel,
    mux: tokio::sync::Mutex<Option<Arc<Mux>>>,
    in_flight: Semaphore,
    next_id: AtomicU64,
    /// Where the stream's reader task runs (the member's Raft thread).
    runtime: Option<tokio::runtime::Handle>,
}

impl Conn {
    pub(crate) fn new(
        me: Identity,
        target: NodeId,
        url: &str,
        runtime: Option<tokio::runtime::Handle>,
        tls: &crate::tls::ClientTls,
    ) -> Result<Conn, PeerError> {
        // TLS for an https:// peer URL (crate::tls).
        let endpoint = tls
            .endpoint(url)
            .map_err(PeerError::BadUrl)?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            // A member that vanished without closing the connection (host down, cable cut)
            // is noticed by PING, and the next call dials again.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3))
            .keep_alive_while_idle(true);
        let channel = match &runtime {
            // The connection task is spawned where the channel is made.
            Some(rt) => {
                let _guard = rt.enter();
                endpoint.connect_lazy()
            }
            None => endpoint.connect_lazy(),
        };
        Ok(Conn {
            me,
            target,
            channel,
            mux: tokio::sync::Mutex::new(None),
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            next_id: AtomicU64::new(1),
            runtime,
        })
    }

    pub(crate) fn client(&self) -> RaftPeerClient<Channel> {
        RaftPeerClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }

    pub(crate) fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        self.me.stamp_request(req.metadata_mut(), self.target);
        req
    }

    pub(crate) fn check_answer(&self, md: &tonic::metadata::MetadataMap) -> Result<(), PeerError> {
        self.me
            .check_response(md, self.target)
            .map_err(PeerError::Refused)
    }

    /// Maps a failed call of the member: a refused handshake, or the member unreachable.
    pub(crate) fn call_failed(&self, s: Status) -> PeerError {
        match s.code() {
            tonic::Code::FailedPrecondition
            | tonic::Code::PermissionDenied
            | tonic::Code::InvalidArgument => PeerError::Refused(s.message().to_owned()),
            _ => PeerError::Unreachable(self.target, s.message().to_owned()),
        }
    }

    /// The open stream, or a new one.
    async fn mux(&self) -> Result<Arc<Mux>, PeerError> {
        let mut slot = self.mux.lock().await;
        if let Some(m) = slot.as_ref().filter(|m| !m.dead.load(Ordering::Acquire)) {
            return Ok(Arc::clone(m));
        }
        *slot = None;
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        let resp = self
            .client()
            .stream(self.request(ReceiverStream::new(rx)))
            .await
            .map_err(|s| self.call_failed(s))?;
        self.check_answer(resp.metadata())?;
        let mux = Arc::new(Mux {
            tx,
            pending: Default::default(),
            dead: Arc::new(AtomicBool::new(false)),
            last_answer: Arc::new(Mutex::new(Instant::now())),
        });
        let reader = read_answers(self.target, resp.into_inner(), Arc::clone(&mux));
        match &self.runtime {
            Some(rt) => rt.spawn(reader),
            None => tokio::spawn(reader),
        };
        *slot = Some(Arc::clone(&mux));
        Ok(mux)
    }

    /// Sends one request and waits up to `timeout` for its answer.
    pub(crate) async fn call(&self, body: Req, timeout: Duration) -> Result<Resp, PeerError> {
        let deadline = Instant::now() + timeout;
        let in_time = |e: &str| PeerError::Unreachable(self.target, e.to_owned());
        let _permit = tokio::time::timeout_at(deadline, self.in_flight.acquire())
            .await
            .map_err(|_| in_time("too many calls in flight"))?
            .map_err(|_| in_time("link closed"))?;
        let mux = tokio::time::timeout_at(deadline, self.mux())
            .await
            .map_err(|_| in_time("connect timed out"))??;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&mux.pending).insert(id, tx);
        let sent = mux
            .tx
            .send(PeerRequest {
                id,
                body: Some(body),
            })
            .await;
        if sent.is_err() {
            lock(&mux.pending).remove(&id);
            mux.dead.store(true, Ordering::Release);
            return Err(in_time("stream closed"));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(PeerError::NoAnswer(self.target, "stream closed".into())),
            Err(_) => {
                lock(&mux.pending).remove(&id);
                // A stream that has answered nothing for as long is stuck (a stopped
                // process, a one-way partition): the next call opens a new one.
                if lock(&mux.last_answer).elapsed() >= timeout {
                    mux.dead.store(true, Ordering::Release);
                }
                Err(PeerError::NoAnswer(self.target, "timed out".into()))
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hands each answer to its caller; when the stream ends, fails every call still waiting.
async fn read_answers(target: NodeId, mut answers: tonic::Streaming<PeerResponse>, mux: Arc<Mux>) {
    let why = loop {
        match answers.message().await {
            Ok(Some(PeerResponse { id, body })) => {
                *lock(&mux.last_answer) = Instant::now();
                let answer = match body {
                    Some(Resp::Failure(f)) => Err(PeerError::Remote(
                        target,
                        Status::new(tonic::Code::from_i32(f.code), f.message),
                    )),
                    Some(b) => Ok(b),
                    None => Err(PeerError::Malformed(target, "empty answer".into())),
                };
                if let Some(tx) = lock(&mux.pending).remove(&id) {
                    let _ = tx.send(answer);
                }
            }
            Ok(None) => break "stream ended".to_owned(),
            Err(s) => break s.message().to_owned(),
        }
    };
    mux.dead.store(true, Ordering::Release);
    for (_, tx) in lock(&mux.pending).drain() {
        let _ = tx.send(Err(PeerError::NoAnswer(target, why.clone())));
    }
}

type Conns = HashMap<(NodeId, String), Arc<Conn>>;

/// The member's links to every other member, shared by openraft's network and the registry's
/// own peer calls.
#[derive(Clone)]
pub(crate) struct PeerNetwork {
    /// Whether to cut every link (test isolation); shared with the peer server.
    pub(crate) isolated: Arc<AtomicBool>,
    me: Identity,
    /// One link per member id and URL (a member whose URL changes gets a new one).
    conns: Arc<Mutex<Conns>>,
    /// Where the links' tasks run (the member's Raft thread, see `node::RaftThread`); `None`:
    /// the caller's runtime.
    runtime: Option<tokio::runtime::Handle>,
    /// How https:// peer URLs are dialled ([`PeerNetwork::with_tls`]).
    tls: Arc<crate::tls::ClientTls>,
}

impl PeerNetwork {
    pub(crate) fn new(me: Identity, runtime: Option<tokio::runtime::Handle>) -> Self {
        PeerNetwork {
            isolated: Default::default(),
            me,
            conns: Default::default(),
            runtime,
            tls: Default::default(),
        }
    }

    /// Dials https:// peer URLs with `tls` (the member's --peer-* files).
    pub(crate) fn with_tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.tls = Arc::new(tls);
        self
    }

    pub(crate) fn conn(&self, target: NodeId, url: &str) -> Result<Arc<Conn>, PeerError> {
        if self.isolated.load(Ordering::Relaxed) {
            return Err(PeerError::Isolated);
        }
        let mut map = lock(&self.conns);
        let key = (target, url.to_owned());
        if let Some(c) = map.get(&key) {
            return Ok(Arc::clone(c));
        }
        let conn = Arc::new(Conn::new(
            self.me,
            target,
            url,
            self.runtime.clone(),
            &self.tls,
        )?);
        map.insert(key, Arc::clone(&conn));
        Ok(conn)
    }

    /// Asks member `target` (the leader) for a read index (see
    /// `crate::routing`'s follower reads).
    pub(crate) async fn read_index(
        &self,
        target: NodeId,
        peer_url: &str,
        timeout: Duration,
    ) -> Result<ReadIndexResponse, PeerError> {
        let conn = self.conn(target, peer_url)?;
        match conn
            .call(Req::ReadIndex(ReadIndexRequest {}), timeout)
            .await?
        {
            Resp::ReadIndex(r) => Ok(r),
            other => Err(unexpected(target, &other)),
        }
    }

    /// Sends a batch of client writes to member `target` (the leader) to be proposed there
    /// (see `crate::routing::ForwardQueue`).
    pub(crate) async fn propose(
        &self,
        target: NodeId,
        peer_url: &str,
        req: ProposeRequest,
        timeout: Duration,
    ) -> Result<ProposeResponse, PeerError> {
        let conn = self.conn(target, peer_url)?;
        match conn.call(Req::Propose(req), timeout).await? {
            Resp::Propose(r) => Ok(r),
            other => Err(unexpected(target, &other)),
        }
    }
}

pub(crate) fn unexpected(target: NodeId, got: &Resp) -> PeerError {
    let kind = match got {
        Resp::Append(_) => "append",
        Resp::Vote(_) => "vote",
        Resp::ReadIndex(_) => "read index",
        Resp::Propose(_) => "propose",
        Resp::TransferLeader(_) => "transfer leader",
        Resp::Failure(_) => "failure",
    };
    PeerError::Malformed(target, format!("unexpected {kind} answer"))
}
