//! The client end: unary gRPC calls over one connection, driven by one task.
//!
//! ```text
//!   Connection::unary(head, frame) ─► channel ─► connection task: HEADERS + DATA (END_STREAM)
//!   connection task: HEADERS / DATA / trailers by stream ─► Reply ─► the caller's oneshot
//! ```
//!
//! Calls queued while the task was busy go out in one write; replies read in one read are
//! handed out together. A caller that gives up (its future dropped) resets its stream.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use prost::bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tonic::{Code, Status};

use super::conn::{ConnError, Core, Event, Role, STREAM_WINDOW};
use super::frame::code;
use super::headers::Headers;
use crate::grpc::{Direction, Frames};

/// Streams we would take from a server (we open none of its pushes; it opens none).
const MAX_STREAMS: u32 = 100;

/// A unary call's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The first message, or why the DATA was not a valid gRPC message.
    pub message: Result<Option<Bytes>, Status>,
    /// `None` for a trailers-only answer (the status is in `headers`).
    pub trailers: Option<HeaderMap>,
}

enum Message {
    Call(Call),
    /// The caller with this key gave up.
    Cancel(u64),
}

struct Call {
    key: u64,
    path: String,
    headers: Arc<HeaderMap>,
    frame: Bytes,
    reply: oneshot::Sender<Result<Reply, Status>>,
}

/// A client connection to one server; clones share it. It closes when every clone is dropped
/// and its calls have been answered, or when the server goes.
#[derive(Debug, Clone)]
pub struct Connection {
    calls: mpsc::UnboundedSender<Message>,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The server said GOAWAY, or the connection ended: no new calls.
    closed: AtomicBool,
    keys: AtomicU64,
}

/// A transport failure, as the status the caller reads as "unreachable".
fn unavailable(what: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("transport: {what}"))
}

impl Connection {
    /// Dials `address` (`host:port`, also the calls' `:authority`) within `timeout` and starts
    /// the connection's task.
    pub async fn connect(address: &str, timeout: Duration) -> std::io::Result<Connection> {
        let io = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))??;
        // Small request/response frames: no Nagle delay waiting for an ACK.
        let _ = io.set_nodelay(true);
        Ok(Connection::start(io, address))
    }

    /// A connection on an established socket; `authority` is sent as every call's `:authority`.
    pub fn start(io: TcpStream, authority: &str) -> Connection {
        let (calls, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(State::default());
        let mut task = Task {
            core: Core::new(io, Role::Client, MAX_STREAMS, STREAM_WINDOW),
            receiver,
            receiving: true,
            read_done: false,
            next_stream: 1,
            streams: HashMap::new(),
            waiting: VecDeque::new(),
            going_away: false,
            state: Arc::clone(&state),
            events: Vec::new(),
            authority: Bytes::copy_from_slice(authority.as_bytes()),
        };
        tokio::spawn(async move {
            std::future::poll_fn(|cx| task.poll(cx)).await;
        });
        Connection { calls, state }
    }

    /// No new call can go out on this connection.
    pub fn is_closed(&self) -> bool {
        self.state.closed.load(Ordering::Acquire) || self.calls.is_closed()
    }

    /// Sends one request to `path` (`/package.Service/Method`) with `headers` after the
    /// pseudo-headers (`te`, `content-type`, `grpc-timeout`, metadata) and `frame` (an encoded
    /// gRPC message) as its body, and waits for the answer. A transport failure is UNAVAILABLE.
    pub async fn unary(
        &self,
        path: String,
        headers: Arc<HeaderMap>,
        frame: Bytes,
    ) -> Result<Reply, Status> {
        let key = self.state.keys.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let call = Call {
            key,
            path,
            headers,
            frame,
            reply,
        };
        self.calls
            .send(Message::Call(call))
            .map_err(|_| unavailable("connection closed"))?;
        let mut guard = CancelOnDrop {
            key,
            calls: &self.calls,
            armed: true,
        };
        let result = answer.await;
        guard.armed = false;
        result.map_err(|_| unavailable("connection closed"))?
    }
}

/// Resets the stream of a call whose caller stopped waiting.
struct CancelOnDrop<'a> {
    key: u64,
    calls: &'a mpsc::UnboundedSender<Message>,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.calls.send(Message::Cancel(self.key));
        }
    }
}

/// A call on the wire.
struct Open {
    key: u64,
    reply: oneshot::Sender<Result<Reply, Status>>,
    /// Set by the response's HEADERS.
    response: Option<(StatusCode, HeaderMap, Frames)>,
}

struct Task {
    core: Core,
    receiver: mpsc::UnboundedReceiver<Message>,
    /// Some clone of the `Connection` is alive.
    receiving: bool,
    read_done: bool,
    next_stream: u32,
    streams: HashMap<u32, Open>,
    /// Calls beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS.
    waiting: VecDeque<Call>,
    going_away: bool,
    state: Arc<State>,
    events: Vec<Event>,
    /// Every call's `:authority` (shared, not copied, by each call's header block).
    authority: Bytes,
}

/// A RST_STREAM's error code as the status tonic gives it.
fn reset_status(reset: u32) -> Status {
    let (code, what) = match reset {
        code::REFUSED_STREAM => (
            Code::Unavailable,
            "refused stream before processing any application logic",
        ),
        code::CANCEL => (Code::Cancelled, "operation was canceled"),
        code::ENHANCE_YOUR_CALM => (
            Code::ResourceExhausted,
            "detected excessive load generating behavior",
        ),
        code::INADEQUATE_SECURITY => (Code::PermissionDenied, "security too weak"),
        0..=0xd => (Code::Internal, "stream reset"),
        _ => (Code::Unknown, "stream reset"),
    };
    Status::new(
        code,
        format!("h2 protocol error: stream error received: {what} ({reset:#x})"),
    )
}

impl Task {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut busy = false;
            while self.receiving {
                match self.receiver.poll_recv(cx) {
                    Poll::Ready(Some(Message::Call(call))) => {
                        busy = true;
                        self.submit(call);
                    }
                    Poll::Ready(Some(Message::Cancel(key))) => {
                        busy = true;
                        self.cancel(key);
                    }
                    Poll::Ready(None) => self.receiving = false,
                    Poll::Pending => break,
                }
            }
            if !self.read_done {
                match self.core.poll_read(cx, &mut self.events) {
                    Poll::Ready(Ok(more)) => {
                        busy = true;
                        let mut events = std::mem::take(&mut self.events);
                        for event in events.drain(..) {
                            self.event(event);
                        }
                        self.events = events;
                        if !more {
                            self.end(unavailable("connection closed by the server"));
                        }
                    }
                    Poll::Ready(Err(error)) => {
                        let io = matches!(error, ConnError::Io(_));
                        self.end(unavailable(error));
                        if io {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Pending => {}
                }
            }
            match self.core.poll_flush(cx) {
                Poll::Ready(Err(error)) => {
                    self.end(unavailable(error));
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(())) => {
                    let idle = self.streams.is_empty() && self.waiting.is_empty();
                    if self.read_done || idle && (!self.receiving || self.going_away) {
                        self.state.closed.store(true, Ordering::Release);
                        return Poll::Ready(());
                    }
                }
                Poll::Pending => {}
            }
            if !busy {
                return Poll::Pending;
            }
        }
    }

    /// Every call still waiting fails with `status`; nothing more is read.
    fn end(&mut self, status: Status) {
        self.read_done = true;
        self.state.closed.store(true, Ordering::Release);
        for (_, open) in self.streams.drain() {
            let _ = open.reply.send(Err(status.clone()));
        }
        for call in self.waiting.drain(..) {
            let _ = call.reply.send(Err(status.clone()));
        }
    }

    fn submit(&mut self, call: Call) {
        if self.going_away || self.read_done {
            let _ = call.reply.send(Err(unavailable("connection closing")));
            return;
        }
        if self.streams.len() >= self.core.peer_max_streams {
            self.waiting.push_back(call);
            return;
        }
        let stream = self.next_stream;
        if stream > frame_max_stream() {
            // Stream ids are spent: this connection takes no more calls.
            self.going_away = true;
            self.state.closed.store(true, Ordering::Release);
            let _ = call
                .reply
                .send(Err(unavailable("connection out of stream ids")));
            return;
        }
        self.next_stream += 2;
        let headers = Headers::Request {
            path: call.path,
            authority: self.authority.clone(),
            fields: call.headers,
        };
        // A new stream has nothing queued: its block is encoded and written now, in order.
        self.core.send_headers(stream, headers, false);
        self.core.send_data(stream, call.frame, true);
        self.streams.insert(
            stream,
            Open {
                key: call.key,
                reply: call.reply,
                response: None,
            },
        );
    }

    fn cancel(&mut self, key: u64) {
        if let Some(position) = self.waiting.iter().position(|c| c.key == key) {
            self.waiting.remove(position);
            return;
        }
        let found = self
            .streams
            .iter()
            .find(|(_, o)| o.key == key)
            .map(|(s, _)| *s);
        if let Some(stream) = found {
            self.streams.remove(&stream);
            self.core.reset(stream, code::CANCEL);
            self.next_waiting();
        }
    }

    /// A stream ended: a waiting call may take its place.
    fn next_waiting(&mut self) {
        while self.streams.len() < self.core.peer_max_streams {
            let Some(call) = self.waiting.pop_front() else {
                break;
            };
            self.submit(call);
        }
    }

    fn finish(&mut self, stream: u32, result: Result<Reply, Status>) {
        if let Some(open) = self.streams.remove(&stream) {
            let _ = open.reply.send(result);
        }
        if !self.waiting.is_empty() {
            self.next_waiting();
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Headers {
                stream,
                block,
                end_stream,
            } => {
                let Some(open) = self.streams.get_mut(&stream) else {
                    return;
                };
                match open.response.take() {
                    None => {
                        let Some(status) = block.status else {
                            self.core.reset(stream, code::PROTOCOL_ERROR);
                            let status = Status::internal("h2 protocol error: malformed headers");
                            return self.finish(stream, Err(status));
                        };
                        if status.is_informational() && !end_stream {
                            return; // 1xx: the real answer follows
                        }
                        if end_stream {
                            let reply = Reply {
                                status,
                                headers: block.fields,
                                message: Ok(None),
                                trailers: None,
                            };
                            return self.finish(stream, Ok(reply));
                        }
                        let frames = Frames::new(Direction::Response(status));
                        open.response = Some((status, block.fields, frames));
                    }
                    Some((status, headers, frames)) => {
                        if !end_stream {
                            self.core.reset(stream, code::PROTOCOL_ERROR);
                            let status =
                                Status::internal("h2 protocol error: trailers without END_STREAM");
                            return self.finish(stream, Err(status));
                        }
                        let reply = Reply {
                            status,
                            headers,
                            message: frames.finish(),
                            trailers: Some(block.fields),
                        };
                        self.finish(stream, Ok(reply));
                    }
                }
            }
            Event::Data {
                stream,
                data,
                end_stream,
            } => {
                let Some(open) = self.streams.get_mut(&stream) else {
                    return;
                };
                let Some((_, _, frames)) = open.response.as_mut() else {
                    self.core.reset(stream, code::PROTOCOL_ERROR);
                    let status = Status::internal("h2 protocol error: DATA before HEADERS");
                    return self.finish(stream, Err(status));
                };
                if let Err(status) = frames.push(data) {
                    self.core.reset(stream, code::CANCEL);
                    return self.finish(stream, Err(status));
                }
                if end_stream {
                    let Some((status, headers, frames)) = open.response.take() else {
                        return;
                    };
                    let reply = Reply {
                        status,
                        headers,
                        message: frames.finish(),
                        trailers: None,
                    };
                    self.finish(stream, Ok(reply));
                }
            }
            Event::Reset { stream, code } => self.finish(stream, Err(reset_status(code))),
            Event::GoAway { last_stream, code } => {
                self.going_away = true;
                self.state.closed.store(true, Ordering::Release);
                let unprocessed: Vec<u32> = self
                    .streams
                    .keys()
                    .copied()
                    .filter(|s| *s > last_stream)
                    .collect();
                for stream in unprocessed {
                    let status = unavailable(format!("server going away ({code:#x})"));
                    self.finish(stream, Err(status));
                }
                for call in self.waiting.drain(..) {
                    let _ = call.reply.send(Err(unavailable("server going away")));
                }
            }
        }
    }
}

/// The highest stream id a client may open.
const fn frame_max_stream() -> u32 {
    (1 << 31) - 1
}
