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
//! On a single-threaded runtime the handlers of a connection run inside its task (a future
//! each, not a task each): a call costs no spawn and no cross-task hand-off. On a
//! multi-threaded runtime each call is a task, so one busy connection still uses every worker.
//! Either way the answers of many calls leave in one write. A RST_STREAM from the client drops
//! its call's future, as hyper did; a handler that panics fails only its call (INTERNAL).

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{AbortHandle, Abortable, Aborted, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use http::HeaderMap;
use prost::bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tonic::Status;

use super::conn::{ConnError, Core, Event, Role};
use super::frame::code;
use super::headers::Headers;
use crate::grpc::{self, Direction, Frames};
use crate::server::{Closer, Handler, Routes};

/// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS, hyper's default);
/// more are refused.
const MAX_STREAMS: u32 = 200;

/// A call in flight: its stream and answer, or `Aborted` once the client reset the stream.
type Call = Pin<Box<dyn Future<Output = Result<(u32, Result<Bytes, Status>), Aborted>> + Send>>;

/// A request whose message is still arriving.
struct Incoming {
    handler: Arc<dyn Handler>,
    headers: HeaderMap,
    frames: Frames,
    deadline: Option<Instant>,
}

struct Connection {
    core: Core,
    routes: Arc<Routes>,
    incoming: HashMap<u32, Incoming>,
    running: FuturesUnordered<Call>,
    /// Calls run as tasks of their own (multi-threaded runtime) rather than inside this one.
    parallel: bool,
    aborts: HashMap<u32, AbortHandle>,
    events: Vec<Event>,
    /// Highest stream id accepted.
    last_stream: u32,
    /// A GOAWAY has gone out: no new streams.
    closing: bool,
    /// Nothing more will be read (end of stream or a protocol error).
    read_done: bool,
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
        parallel: tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread,
        aborts: HashMap::new(),
        events: Vec::new(),
        last_stream: 0,
        closing: false,
        read_done: false,
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
        // A handler that panics fails its own call (INTERNAL), not the connection.
        let work = AssertUnwindSafe(incoming.handler.call(incoming.headers, message))
            .catch_unwind()
            .map(|result| result.unwrap_or_else(|_| Err(Status::internal("handler panicked"))));
        let deadline = incoming.deadline;
        let (abort, registration) = AbortHandle::new_pair();
        let call = Abortable::new(
            async move {
                let result = match deadline {
                    None => work.await,
                    Some(at) => match tokio::time::timeout_at(at, work).await {
                        Ok(result) => result,
                        Err(_) => Err(Status::cancelled("Timeout expired")),
                    },
                };
                (stream, result)
            },
            registration,
        );
        self.aborts.insert(stream, abort);
        if self.parallel {
            // A multi-threaded runtime: the call runs as its own task, so the handlers of one
            // connection use every worker; its answer still comes back to this task.
            let task = tokio::spawn(call);
            self.running.push(Box::pin(async move {
                task.await.unwrap_or(Err(futures::future::Aborted))
            }));
        } else {
            self.running.push(Box::pin(call));
        }
    }

    fn answer(&mut self, stream: u32, result: Result<Bytes, Status>) {
        match result {
            Ok(frame) => {
                self.core.send_headers(stream, Headers::Response, false);
                self.core.send_data(stream, frame, false);
                // The trailers may wait behind the DATA; they are encoded when written.
                self.core.send_headers(stream, Headers::Ok, true);
            }
            Err(status) => {
                // Trailers-only, with tonic's headers (`grpc-status`, `grpc-message`,
                // `grpc-status-details-bin`).
                let mut headers = HeaderMap::with_capacity(3);
                if let Err(fallback) = status.add_header(&mut headers) {
                    // A message that cannot be a header value: tonic's own fallback status.
                    let _ = fallback.add_header(&mut headers);
                }
                self.core
                    .send_headers(stream, Headers::TrailersOnly(headers), true);
            }
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
