//! The server end: unary gRPC calls of one connection, answered from one task.
//!
//! ```text
//!   read ─► HEADERS: route by :path (UNIMPLEMENTED at once if none), grpc-timeout
//!        ─► DATA: gRPC frames ([`Frames`], the route's message limit)
//!        ─► END_STREAM: handler future (under the deadline) ─► set of running calls
//!   running call done ─► HEADERS :status 200 + DATA + trailers (or trailers-only status)
//!   everything ready is answered, then one write
//! ```
//!
//! The handlers of a connection run inside its task (a future each, not a task each): a call
//! costs no spawn and no cross-task hand-off, and the answers of many calls leave in one write.
//! A RST_STREAM from the client drops its call's future, as hyper did.

use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{AbortHandle, Abortable};
use futures::stream::{FuturesUnordered, StreamExt};
use http::HeaderMap;
use prost::bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tonic::Status;

use super::conn::{ConnError, Core, Event, Role};
use super::frame::code;
use super::hpack;
use crate::grpc::{self, Direction, Frames};
use crate::server::{Closer, Handler, Routes};

/// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS, hyper's default);
/// more are refused.
const MAX_STREAMS: u32 = 200;

type Call = Pin<Box<dyn Future<Output = (u32, Result<Bytes, Status>)> + Send>>;

/// A request whose message is still arriving.
struct Incoming {
    handler: Arc<dyn Handler>,
    headers: HeaderMap,
    frames: Frames,
    deadline: Option<Instant>,
}

/// The header block of every successful answer: `:status 200`, `content-type`.
fn response_head() -> Bytes {
    let mut block = BytesMut::new();
    hpack::status(&mut block, http::StatusCode::OK);
    hpack::literal_with_name(&mut block, hpack::CONTENT_TYPE, b"application/grpc");
    block.freeze()
}

/// The trailers of every successful answer: `grpc-status: 0`.
fn ok_trailers() -> Bytes {
    let mut block = BytesMut::new();
    hpack::literal(&mut block, b"grpc-status", b"0");
    block.freeze()
}

/// `status` as a trailers-only answer, with tonic's headers (`grpc-status`, `grpc-message`,
/// `grpc-status-details-bin`).
fn status_block(status: &Status) -> BytesMut {
    let mut headers = HeaderMap::with_capacity(3);
    if let Err(status) = status.add_header(&mut headers) {
        // A message that cannot be a header value: tonic's own fallback status.
        let _ = status.add_header(&mut headers);
    }
    let mut block = BytesMut::with_capacity(64);
    hpack::status(&mut block, http::StatusCode::OK);
    hpack::literal_with_name(&mut block, hpack::CONTENT_TYPE, b"application/grpc");
    hpack::fields(&mut block, &headers);
    block
}

struct Connection {
    core: Core,
    routes: Arc<Routes>,
    incoming: HashMap<u32, Incoming>,
    running: FuturesUnordered<Abortable<Call>>,
    aborts: HashMap<u32, AbortHandle>,
    events: Vec<Event>,
    /// Highest stream id accepted.
    last_stream: u32,
    /// A GOAWAY has gone out: no new streams.
    closing: bool,
    /// Nothing more will be read (end of stream or a protocol error).
    read_done: bool,
    head: Bytes,
    trailers: Bytes,
}

/// Serves the unary handlers of `routes` on `io` until the client goes, the connection fails,
/// or `closer` says to close: then GOAWAY, the calls in flight finish, and it returns.
pub async fn serve_connection(io: TcpStream, routes: Arc<Routes>, mut closer: Closer) {
    let window = u32::try_from(routes.max_message + 64 * 1024)
        .unwrap_or(u32::MAX)
        .clamp(super::conn::STREAM_WINDOW, super::frame::MAX_WINDOW as u32);
    let mut conn = Connection {
        core: Core::new(io, Role::Server, MAX_STREAMS, window),
        routes,
        incoming: HashMap::new(),
        running: FuturesUnordered::new(),
        aborts: HashMap::new(),
        events: Vec::new(),
        last_stream: 0,
        closing: false,
        read_done: false,
        head: response_head(),
        trailers: ok_trailers(),
    };
    let mut close = pin!(closer.closing());
    std::future::poll_fn(|cx| {
        if !conn.closing && close.as_mut().poll(cx).is_ready() {
            conn.close();
        }
        conn.poll(cx)
    })
    .await
}

impl Connection {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut busy = false;
            if !self.read_done {
                match self.core.poll_read(cx, &mut self.events) {
                    Poll::Ready(Ok(more)) => {
                        busy = true;
                        self.read_done = !more;
                        let mut events = std::mem::take(&mut self.events);
                        for event in events.drain(..) {
                            self.event(event);
                        }
                        self.events = events;
                    }
                    Poll::Ready(Err(ConnError::Io(error))) => {
                        tracing::debug!(%error, "connection ended");
                        return Poll::Ready(());
                    }
                    Poll::Ready(Err(error)) => {
                        // The GOAWAY is queued; calls in flight are dropped.
                        tracing::debug!(%error, "closing connection");
                        self.read_done = true;
                        self.incoming.clear();
                        self.running.clear();
                        self.aborts.clear();
                        busy = true;
                    }
                    Poll::Pending => {}
                }
            }
            while let Poll::Ready(Some(done)) = self.running.poll_next_unpin(cx) {
                busy = true;
                if let Ok((stream, result)) = done {
                    self.aborts.remove(&stream);
                    self.answer(stream, result);
                }
            }
            match self.core.poll_flush(cx) {
                Poll::Ready(Err(error)) => {
                    tracing::debug!(%error, "connection write failed");
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(())) => {
                    let idle = self.running.is_empty() && self.incoming.is_empty();
                    if self.read_done && self.running.is_empty() || self.closing && idle {
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

    /// Graceful close: GOAWAY naming the last stream taken; those finish.
    fn close(&mut self) {
        self.closing = true;
        self.core.goaway(self.last_stream);
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Headers {
                stream,
                block,
                end_stream,
            } => {
                if self.incoming.contains_key(&stream) {
                    // Request trailers: the message is complete.
                    if end_stream {
                        self.start(stream);
                    } else {
                        self.incoming.remove(&stream);
                        self.core.reset(stream, code::PROTOCOL_ERROR);
                    }
                    return;
                }
                if stream % 2 == 0 || stream <= self.last_stream {
                    // Not a new client stream: one we already answered or reset; ignored.
                    return;
                }
                self.last_stream = stream;
                if self.closing || self.incoming.len() + self.running.len() >= MAX_STREAMS as usize
                {
                    self.core.reset(stream, code::REFUSED_STREAM);
                    return;
                }
                let deadline = grpc::parse_timeout(&block.fields).map(|t| Instant::now() + t);
                let handler = block
                    .path
                    .as_deref()
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .and_then(|p| self.routes.handlers.get(p));
                let Some(handler) = handler else {
                    return self.answer_early(stream, end_stream, Status::unimplemented(""));
                };
                if let Some(status) = grpc::unsupported_encoding(&block.fields) {
                    return self.answer_early(stream, end_stream, status);
                }
                let incoming = Incoming {
                    handler: Arc::clone(handler),
                    headers: block.fields,
                    frames: Frames::with_limit(Direction::Request, self.routes.max_message),
                    deadline,
                };
                self.incoming.insert(stream, incoming);
                if end_stream {
                    self.start(stream);
                }
            }
            Event::Data {
                stream,
                data,
                end_stream,
            } => {
                // DATA of a stream already answered or reset is dropped.
                let Some(incoming) = self.incoming.get_mut(&stream) else {
                    return;
                };
                if let Err(status) = incoming.frames.push(data) {
                    self.incoming.remove(&stream);
                    return self.answer_early(stream, end_stream, status);
                }
                if end_stream {
                    self.start(stream);
                }
            }
            Event::Reset { stream, .. } => {
                self.incoming.remove(&stream);
                if let Some(abort) = self.aborts.remove(&stream) {
                    abort.abort();
                }
            }
            // The client closes; the calls it sent are still answered.
            Event::GoAway { .. } => {}
        }
    }

    /// The request on `stream` is complete: its handler starts.
    fn start(&mut self, stream: u32) {
        let Some(incoming) = self.incoming.remove(&stream) else {
            return;
        };
        let message = match incoming.frames.finish() {
            Ok(Some(message)) => message,
            Ok(None) => {
                return self.answer(stream, Err(Status::internal("Missing request message.")))
            }
            Err(status) => return self.answer(stream, Err(status)),
        };
        let work = incoming.handler.call(incoming.headers, message);
        let deadline = incoming.deadline;
        let call: Call = Box::pin(async move {
            let result = match deadline {
                None => work.await,
                Some(at) => match tokio::time::timeout_at(at, work).await {
                    Ok(result) => result,
                    Err(_) => Err(Status::cancelled("Timeout expired")),
                },
            };
            (stream, result)
        });
        let (abort, registration) = AbortHandle::new_pair();
        self.aborts.insert(stream, abort);
        self.running.push(Abortable::new(call, registration));
    }

    fn answer(&mut self, stream: u32, result: Result<Bytes, Status>) {
        match result {
            Ok(frame) => {
                self.core.send_headers(stream, &self.head, false);
                self.core.send_data(stream, frame, false);
                self.core.send_headers(stream, &self.trailers, true);
            }
            Err(status) => self.core.send_headers(stream, &status_block(&status), true),
        }
    }

    /// Answers before the request is complete; the client is told to stop sending.
    fn answer_early(&mut self, stream: u32, end_stream: bool, status: Status) {
        self.answer(stream, Err(status));
        if !end_stream {
            self.core.reset(stream, code::NO_ERROR);
        }
    }
}
