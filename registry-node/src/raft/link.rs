//! The members' own link between each other: framed messages on one TCP connection per peer,
//! in the spirit of etcd's rafthttp streams (etcd's members do not use gRPC among themselves
//! either).
//!
//! ```text
//!   connection = MAGIC, then frames both ways
//!   frame      = len: u32 BE (bytes after this field) | id: u64 BE | kind: u8 | body
//!   request    kind = Kind (append, vote, snapshot, read index, propose), body = the request
//!   answer     same id; kind 0: body = the reply, kind 1: body = code: u8 | UTF-8 message
//! ```
//!
//! A unary RPC over HTTP/2 cost the leader a stream, HPACK, trailers and 2–3 writes per
//! request and per answer, plus tonic's buffer task; on a put with one client that was a third
//! of the Raft thread's time (bench/findings.md, fourth round). Here a call is one frame out
//! and one frame back; every frame queued while the connection writes goes out in the next
//! write. Answers are matched by id, so calls on one connection do not wait for each other.
//!
//! The peer port still serves the gRPC `RaftPeer` service: a connection that does not start
//! with [`MAGIC`] is handed to tonic with its first bytes put back ([`Rewind`]).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grpc_lite::rewind::Rewind;
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

/// What a connection of the link starts with (an HTTP/2 client starts with `PRI * HTTP/2.0`).
pub const MAGIC: &[u8; 8] = b"RAFTLNK1";
/// `len` counts the id and the kind too.
const HEAD: usize = 8 + 1;
/// Frames queued while a write is under way go out together, up to this many bytes.
const WRITE_BATCH: usize = 256 * 1024;
/// How long an accepted connection may take to send its first 8 bytes.
const SNIFF_TIMEOUT: Duration = Duration::from_secs(10);

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Append = 1,
    Vote = 2,
    Snapshot = 3,
    ReadIndex = 4,
    Propose = 5,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Append,
            2 => Kind::Vote,
            3 => Kind::Snapshot,
            4 => Kind::ReadIndex,
            5 => Kind::Propose,
            _ => return None,
        })
    }
}

const ANSWER_OK: u8 = 0;
const ANSWER_STATUS: u8 = 1;

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Not sent: no connection could be made (safe to send again).
    #[error("connect {0}: {1}")]
    Connect(String, String),
    /// The connection ended before the answer came (the request may have been acted on).
    #[error("link to {0} closed before the answer")]
    Closed(String),
    #[error("no answer from {0} within {1:?}")]
    Timeout(String, Duration),
    /// The peer answered with a status.
    #[error("{0}")]
    Status(Status),
}

impl From<CallError> for Status {
    fn from(e: CallError) -> Status {
        match e {
            CallError::Status(s) => s,
            // "connect …": `api::error::safe_to_retry` reads it as "not sent".
            e => Status::unavailable(e.to_string()),
        }
    }
}

/// A frame's header and room for its body: `len` is filled in by [`finish`].
pub fn frame(id: u64, kind: u8, body_hint: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(4 + HEAD + body_hint);
    buf.put_u32(0);
    buf.put_u64(id);
    buf.put_u8(kind);
    buf
}

/// Writes the length of a frame started with [`frame`]; fails if it is over `max` bytes.
fn finish(mut buf: Vec<u8>, max: usize) -> Result<Bytes, Status> {
    let len = buf.len() - 4;
    if len - HEAD > max {
        return Err(Status::resource_exhausted(format!(
            "peer message of {} bytes is over the limit of {max}",
            len - HEAD
        )));
    }
    // Below `max` (a few hundred MiB at most), so it fits.
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(Bytes::from(buf))
}

/// A status as an answer's body.
fn status_body(id: u64, status: &Status) -> Bytes {
    let message = status.message().as_bytes();
    let mut buf = frame(id, ANSWER_STATUS, 1 + message.len());
    buf.put_u8(status.code() as i32 as u8);
    buf.put_slice(message);
    // A status message is short; a longer one is cut rather than refused.
    finish(buf, usize::MAX).unwrap_or_default()
}

fn status_of(mut body: Bytes) -> Status {
    if body.is_empty() {
        return Status::internal("peer answered an empty status");
    }
    let code = Code::from_i32(i32::from(body.get_u8()));
    Status::new(code, String::from_utf8_lossy(&body).into_owned())
}

/// Reads frames off one side of a connection, refusing any over `max` bytes.
struct FrameReader {
    rd: OwnedReadHalf,
    buf: BytesMut,
    max: usize,
}

impl FrameReader {
    /// The next frame's id, kind and body; `None` at a clean end of the connection.
    async fn next(&mut self) -> io::Result<Option<(u64, u8, Bytes)>> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if len < HEAD || len - HEAD > self.max {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad peer frame length {len} (limit {})", self.max),
                    ));
                }
                if self.buf.len() >= 4 + len {
                    self.buf.advance(4);
                    let mut frame = self.buf.split_to(len).freeze();
                    let id = frame.get_u64();
                    let kind = frame.get_u8();
                    return Ok(Some((id, kind, frame)));
                }
                // Room for the rest, in steps: a large announced length is not allocated
                // before its bytes arrive.
                let missing = 4 + len - self.buf.len();
                self.buf.reserve(missing.min(1 << 20));
            } else {
                self.buf.reserve(64 * 1024);
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }
}

/// Writes the frames sent to `rx` until it closes or a write fails; frames that queued up while
/// a write was under way go out in one write.
async fn write_frames(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut batch = BytesMut::new();
    while let Some(first) = rx.recv().await {
        let result = match rx.try_recv() {
            Err(_) => wr.write_all(&first).await,
            Ok(second) => {
                batch.clear();
                batch.extend_from_slice(&first);
                batch.extend_from_slice(&second);
                while batch.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(more) => batch.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                wr.write_all(&batch).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "peer link write failed");
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Client side

/// The link to one peer: one connection, dialled by the first call and again after it ends.
pub struct Link {
    addr: String,
    max: usize,
    /// Where the connection's task runs (the member's Raft thread); `None`: the caller's.
    runtime: Option<tokio::runtime::Handle>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    /// How long a connection may read nothing while calls wait (see [`Conn`]).
    silence: Duration,
}

/// Default [`Link::silence`]: HTTP/2 keep-alive's order of magnitude (the old transport pinged
/// every 5 s); heartbeats go every 100 ms, so a live peer answers far sooner.
const SILENCE: Duration = Duration::from_secs(10);

/// The calls waiting for an answer, by request id; `None` once the connection has ended.
type Pending = Option<HashMap<u64, oneshot::Sender<(u8, Bytes)>>>;

/// One open connection: the queue of frames to write and the calls waiting for an answer
/// (`None` once the connection has ended).
struct Conn {
    out: mpsc::UnboundedSender<Bytes>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    /// When the connection opened, and milliseconds from then to the last frame read: with
    /// calls waiting and nothing read for [`Link::silence`], the peer is taken to be gone
    /// without a reset (e.g. a partition) and the connection is dropped.
    opened: std::time::Instant,
    last_read_ms: AtomicU64,
}

/// Takes a call's entry out of the waiting calls when the call ends, also when its future is
/// dropped (openraft cancels an append at its own timeout).
struct Waiting<'a> {
    conn: &'a Conn,
    id: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(pending) = self.conn.lock().as_mut() {
            pending.remove(&self.id);
        }
    }
}

impl Conn {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_now(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_read_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether calls are waiting and nothing has been read for `silence`.
    fn is_stalled(&self, silence: Duration) -> bool {
        let waiting = self.lock().as_ref().is_some_and(|p| !p.is_empty());
        let last = Duration::from_millis(self.last_read_ms.load(Ordering::Relaxed));
        waiting && self.opened.elapsed().saturating_sub(last) > silence
    }

    fn is_closed(&self) -> bool {
        self.lock().is_none() || self.out.is_closed()
    }

    /// Ends every waiting call (their senders drop: "closed before the answer").
    fn close(&self) {
        self.lock().take();
    }
}

impl Link {
    /// A link to `addr` (`host:port`) whose connection task runs on `runtime`.
    pub fn new(addr: String, max: usize, runtime: Option<tokio::runtime::Handle>) -> Self {
        Link {
            addr,
            max,
            runtime,
            conn: tokio::sync::Mutex::new(None),
            silence: SILENCE,
        }
    }

    /// Drops the connection when calls wait and nothing is read for `silence`.
    pub fn with_silence(mut self, silence: Duration) -> Self {
        self.silence = silence;
        self
    }

    /// Sends a request (a frame from [`frame`] with the id left 0 and the body written) and
    /// waits up to `timeout` for its answer's body.
    pub async fn call(&self, mut request: Vec<u8>, timeout: Duration) -> Result<Bytes, CallError> {
        if request.len() < 4 + HEAD {
            return Err(CallError::Status(Status::internal(
                "peer request without a frame header",
            )));
        }
        let conn = self.connection().await?;
        let id = conn.next_id.fetch_add(1, Ordering::Relaxed);
        request[4..12].copy_from_slice(&id.to_be_bytes());
        let request = finish(request, self.max).map_err(CallError::Status)?;
        let (tx, rx) = oneshot::channel();
        match conn.lock().as_mut() {
            Some(pending) => {
                pending.insert(id, tx);
            }
            None => return Err(CallError::Closed(self.addr.clone())),
        }
        let _waiting = Waiting { conn: &conn, id };
        if conn.out.send(request).is_err() {
            conn.close();
            return Err(CallError::Closed(self.addr.clone()));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok((ANSWER_OK, body))) => Ok(body),
            Ok(Ok((_, body))) => Err(CallError::Status(status_of(body))),
            Ok(Err(_)) => Err(CallError::Closed(self.addr.clone())),
            Err(_) => Err(CallError::Timeout(self.addr.clone(), timeout)),
        }
    }

    /// The open connection, or a new one (one dial at a time; bounded by one second).
    async fn connection(&self) -> Result<Arc<Conn>, CallError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            if !conn.is_closed() {
                return Ok(Arc::clone(conn));
            }
        }
        *slot = None;
        let addr = self.addr.clone();
        let (max, silence) = (self.max, self.silence);
        let dial = async move {
            let stream = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&addr))
                .await
                .map_err(|_| "timed out after 1s".to_string())?
                .map_err(|e| e.to_string())?;
            let _ = stream.set_nodelay(true);
            let (rd, mut wr) = stream.into_split();
            wr.write_all(MAGIC).await.map_err(|e| e.to_string())?;
            let (out, rx) = mpsc::unbounded_channel();
            let conn = Arc::new(Conn {
                out,
                pending: Mutex::new(Some(HashMap::new())),
                next_id: AtomicU64::new(1),
                opened: std::time::Instant::now(),
                last_read_ms: AtomicU64::new(0),
            });
            let reader = FrameReader {
                rd,
                buf: BytesMut::new(),
                max,
            };
            tokio::spawn(run_client(Arc::clone(&conn), reader, wr, rx, addr, silence));
            Ok::<_, String>(conn)
        };
        let conn = match &self.runtime {
            Some(rt) => rt
                .spawn(dial)
                .await
                .map_err(|e| CallError::Connect(self.addr.clone(), e.to_string()))?,
            None => dial.await,
        }
        .map_err(|e| CallError::Connect(self.addr.clone(), e))?;
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }
}

/// Drives one client connection: writes the queued requests, hands each answer to its caller;
/// when either side ends, fails the calls still waiting.
async fn run_client(
    conn: Arc<Conn>,
    mut reader: FrameReader,
    wr: OwnedWriteHalf,
    rx: mpsc::UnboundedReceiver<Bytes>,
    addr: String,
    silence: Duration,
) {
    let watchdog = async {
        let mut tick = tokio::time::interval((silence / 4).max(Duration::from_millis(10)));
        loop {
            tick.tick().await;
            if conn.is_stalled(silence) {
                tracing::debug!(%addr, "peer silent for {silence:?} with calls waiting: dropping the link");
                return;
            }
        }
    };
    let read = async {
        loop {
            match reader.next().await {
                Ok(Some((id, kind, body))) => {
                    conn.read_now();
                    let waiter = conn.lock().as_mut().and_then(|p| p.remove(&id));
                    // A call that timed out is no longer waiting.
                    if let Some(tx) = waiter {
                        let _ = tx.send((kind, body));
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "peer link read failed");
                    return;
                }
            }
        }
    };
    tokio::select! {
        () = read => {}
        () = write_frames(wr, rx) => {}
        () = watchdog => {}
    }
    conn.close();
}

// ---------------------------------------------------------------------------------------------
// Server side

/// What the server side does with a request: its answer's body, or a status.
pub trait Serve: Clone + Send + Sync + 'static {
    fn serve(
        &self,
        kind: Kind,
        body: Bytes,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, Status>> + Send;
}

/// Accepts peer connections until `stop`: link connections are served with `service`, any
/// other connection (gRPC) is sent to `grpc` with its first bytes put back.
pub async fn serve<S: Serve>(
    listener: TcpListener,
    service: S,
    max: usize,
    grpc: mpsc::UnboundedSender<io::Result<Rewind>>,
    stop: CancellationToken,
) {
    loop {
        let (stream, _) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: keep serving the connections we have.
                    tracing::warn!(error = %e, "peer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (service, grpc, stop) = (service.clone(), grpc.clone(), stop.clone());
        tokio::spawn(async move {
            let mut stream = stream;
            let mut first = [0u8; 8];
            match tokio::time::timeout(SNIFF_TIMEOUT, stream.read_exact(&mut first)).await {
                Ok(Ok(_)) => {}
                // Closed or silent before 8 bytes: nothing to serve.
                _ => return,
            }
            if &first == MAGIC {
                let (rd, wr) = stream.into_split();
                let reader = FrameReader {
                    rd,
                    buf: BytesMut::new(),
                    max,
                };
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = run_server(reader, wr, service, max) => {}
                }
            } else {
                let first = Bytes::copy_from_slice(&first);
                let _ = grpc.send(Ok(Rewind::new(first, stream)));
            }
        });
    }
}

/// Serves one link connection: every request is handled on its own task, so a slow one (an
/// append waiting for the disk) does not hold up the others; answers go out as they are ready.
async fn run_server<S: Serve>(mut reader: FrameReader, wr: OwnedWriteHalf, service: S, max: usize) {
    let (out, rx) = mpsc::unbounded_channel::<Bytes>();
    let read = async {
        loop {
            let (id, kind, body) = match reader.next().await {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "peer link read failed");
                    return;
                }
            };
            let (out, service) = (out.clone(), service.clone());
            tokio::spawn(async move {
                let answer = match Kind::from_u8(kind) {
                    None => Err(Status::unimplemented(format!(
                        "unknown peer request {kind}"
                    ))),
                    Some(kind) => service.serve(kind, body).await,
                };
                let frame = match answer {
                    // An answer not started with `answer()` has no header to fill in.
                    Ok(buf) if buf.len() < 4 + HEAD => status_body(
                        id,
                        &Status::internal("peer service answered without a frame header"),
                    ),
                    Ok(mut buf) => {
                        buf[4..12].copy_from_slice(&id.to_be_bytes());
                        finish(buf, max).unwrap_or_else(|s| status_body(id, &s))
                    }
                    Err(s) => status_body(id, &s),
                };
                let _ = out.send(frame);
            });
        }
    };
    tokio::select! {
        () = read => {}
        () = write_frames(wr, rx) => {}
    }
}

/// An answer's frame with the id left 0 (filled in by the server), for [`Serve::serve`].
pub fn answer(body_hint: usize) -> Vec<u8> {
    frame(0, ANSWER_OK, body_hint)
}

/// A request's frame with the id left 0 (filled in by [`Link::call`]).
pub fn request(kind: Kind, body_hint: usize) -> Vec<u8> {
    frame(0, kind as u8, body_hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Answers each request with its kind and body; `Vote` waits for its body's number of
    /// milliseconds first, `Snapshot` fails with NOT_FOUND, `ReadIndex` answers garbage.
    #[derive(Clone)]
    struct Echo;

    impl Serve for Echo {
        async fn serve(&self, kind: Kind, body: Bytes) -> Result<Vec<u8>, Status> {
            match kind {
                Kind::Snapshot => Err(Status::not_found("no such snapshot")),
                // A broken service: an answer without the frame header.
                Kind::ReadIndex => Ok(vec![1, 2]),
                Kind::Vote => {
                    let ms = String::from_utf8_lossy(&body).parse().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let mut out = answer(body.len());
                    out.extend_from_slice(&body);
                    Ok(out)
                }
                _ => {
                    let mut out = answer(1 + body.len());
                    out.push(kind as u8);
                    out.extend_from_slice(&body);
                    Ok(out)
                }
            }
        }
    }

    struct Server {
        addr: String,
        grpc: mpsc::UnboundedReceiver<io::Result<Rewind>>,
        stop: CancellationToken,
    }

    async fn server(max: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (tx, grpc) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, Echo, max, tx, stop.clone()));
        Server { addr, grpc, stop }
    }

    fn req(kind: Kind, body: &[u8]) -> Vec<u8> {
        let mut f = request(kind, body.len());
        f.extend_from_slice(body);
        f
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn concurrent_calls_get_their_own_answers() {
        let s = server(1 << 20).await;
        let link = Arc::new(Link::new(s.addr.clone(), 1 << 20, None));
        let calls = (0..200u32).map(|i| {
            let link = Arc::clone(&link);
            tokio::spawn(async move {
                let body = i.to_string().repeat(1 + i as usize % 50);
                let got = link.call(req(Kind::Append, body.as_bytes()), T).await;
                (body, got)
            })
        });
        for call in futures::future::join_all(calls).await {
            let (body, got) = call.expect("task");
            let got = got.expect("answer");
            assert_eq!(got[0], Kind::Append as u8);
            assert_eq!(&got[1..], body.as_bytes());
        }
        // A large message comes back whole.
        let big = vec![7u8; 600 * 1024];
        let got = link.call(req(Kind::Propose, &big), T).await.expect("big");
        assert_eq!((got[0], got.len()), (Kind::Propose as u8, big.len() + 1));
        s.stop.cancel();
    }

    #[tokio::test]
    async fn statuses_and_unknown_requests() {
        let s = server(1 << 20).await;
        let link = Link::new(s.addr.clone(), 1 << 20, None);
        match link.call(req(Kind::Snapshot, b""), T).await {
            Err(CallError::Status(st)) => {
                assert_eq!(
                    (st.code(), st.message()),
                    (Code::NotFound, "no such snapshot")
                )
            }
            other => panic!("expected NOT_FOUND, got {other:?}"),
        }
        match link.call(req(Kind::ReadIndex, b""), T).await {
            Err(CallError::Status(st)) => assert_eq!(st.code(), Code::Internal),
            other => panic!("expected INTERNAL, got {other:?}"),
        }
        match link.call(vec![0; 5], T).await {
            Err(CallError::Status(st)) => assert_eq!(st.code(), Code::Internal),
            other => panic!("expected INTERNAL, got {other:?}"),
        }
        match link.call(frame(0, 99, 0), T).await {
            Err(CallError::Status(st)) => {
                assert_eq!(st.code(), Code::Unimplemented);
                assert!(st.message().contains("99"), "{}", st.message());
            }
            other => panic!("expected UNIMPLEMENTED, got {other:?}"),
        }
        // Too large to send: refused before it leaves, and the link still works.
        let small = Link::new(s.addr.clone(), 16, None);
        match small.call(req(Kind::Append, &[0; 17]), T).await {
            Err(CallError::Status(st)) => assert_eq!(st.code(), Code::ResourceExhausted),
            other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
        }
        // (The answer carries the kind too: 16 bytes.)
        assert!(small.call(req(Kind::Append, &[0; 15]), T).await.is_ok());
        s.stop.cancel();
    }

    #[tokio::test]
    async fn a_bad_frame_ends_only_its_connection() {
        let s = server(1024).await;
        for garbage in [
            &[0u8, 0, 0, 3, 1, 2, 3][..],          // shorter than id + kind
            &[0u8, 0, 0x10, 0, 0, 0, 0, 0, 0][..], // over the limit
        ] {
            let mut raw = TcpStream::connect(&s.addr).await.expect("connect");
            raw.write_all(MAGIC).await.expect("magic");
            raw.write_all(garbage).await.expect("garbage");
            let mut rest = Vec::new();
            let n = tokio::time::timeout(T, raw.read_to_end(&mut rest))
                .await
                .expect("server closes the connection")
                .unwrap_or(0);
            assert_eq!(n, 0, "no answer to a bad frame");
        }
        let link = Link::new(s.addr.clone(), 1024, None);
        let got = link
            .call(req(Kind::Append, b"ok"), T)
            .await
            .expect("still served");
        assert_eq!(&got[1..], b"ok");
        s.stop.cancel();
    }

    #[tokio::test]
    async fn other_protocols_go_to_grpc_with_their_first_bytes() {
        let mut s = server(1024).await;
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        let mut raw = TcpStream::connect(&s.addr).await.expect("connect");
        raw.write_all(preface).await.expect("preface");
        let mut conn = tokio::time::timeout(T, s.grpc.recv())
            .await
            .expect("handed over")
            .expect("open")
            .expect("conn");
        let mut got = [0u8; 24];
        conn.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, preface);
        conn.write_all(b"hi").await.expect("write");
        let mut back = [0u8; 2];
        raw.read_exact(&mut back).await.expect("read back");
        assert_eq!(&back, b"hi");
        s.stop.cancel();
    }

    #[tokio::test]
    async fn timeouts_refusals_and_reconnects() {
        // Nothing listening: a connect error, which callers treat as "not sent".
        let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = gone.local_addr().expect("addr").to_string();
        drop(gone);
        let link = Link::new(addr.clone(), 1024, None);
        let err = link
            .call(req(Kind::Append, b"x"), T)
            .await
            .expect_err("refused");
        assert!(matches!(err, CallError::Connect(..)), "{err:?}");
        assert!(crate::api::error::safe_to_retry(&Status::from(err)));

        let s = server(1024).await;
        let link = Link::new(s.addr.clone(), 1024, None).with_silence(Duration::from_millis(300));
        // A slow answer: the call gives up at its timeout and leaves nothing waiting; the
        // connection stays, and later calls are answered on it.
        let started = Instant::now();
        let err = link
            .call(req(Kind::Vote, b"2000"), Duration::from_millis(100))
            .await
            .expect_err("times out");
        assert!(matches!(err, CallError::Timeout(..)), "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(1900));
        let conn = link.conn.lock().await.clone().expect("connection");
        assert!(
            conn.lock().as_ref().expect("open").is_empty(),
            "nothing waits"
        );
        // A call dropped before its answer (as openraft drops an append at its own timeout)
        // leaves nothing waiting either.
        let dropped = tokio::time::timeout(
            Duration::from_millis(50),
            link.call(req(Kind::Vote, b"2000"), T),
        );
        assert!(dropped.await.is_err());
        assert!(
            conn.lock().as_ref().expect("open").is_empty(),
            "nothing waits"
        );
        let got = link
            .call(req(Kind::Vote, b"1"), T)
            .await
            .expect("same link");
        assert_eq!(&got[..], b"1");
        assert!(Arc::ptr_eq(
            &conn,
            link.conn.lock().await.as_ref().expect("conn")
        ));

        // Calls waiting and nothing read for the silence: the connection is dropped, the
        // waiting call fails as closed well before its own timeout, the next call redials.
        let started = Instant::now();
        let err = link
            .call(req(Kind::Vote, b"5000"), Duration::from_secs(30))
            .await
            .expect_err("dropped");
        assert!(matches!(err, CallError::Closed(_)), "{err:?}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_secs(4), "{waited:?}");
        let got = link
            .call(req(Kind::Vote, b"1"), T)
            .await
            .expect("redialled");
        assert_eq!(&got[..], b"1");
        assert!(!Arc::ptr_eq(
            &conn,
            link.conn.lock().await.as_ref().expect("conn")
        ));

        // The server goes away: a waiting call fails as closed, not by its timeout.
        let slow = link.call(req(Kind::Vote, b"3000"), Duration::from_secs(30));
        let stop = s.stop.clone();
        let (res, ()) = tokio::join!(slow, async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        });
        assert!(matches!(res, Err(CallError::Closed(_))), "{res:?}");
    }
}
