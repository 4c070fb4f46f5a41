//! The server end: the unary gRPC calls of one connection on hyperium's `h2`, driven by one task.
//!
//! ```text
//!   accept (h2: frames, HPACK, flow control, limits) ─► call: route by :path (UNIMPLEMENTED
//!   at once if none) ─► read the message ([`Frames`], the route's limit) ─► handler (under the
//!   grpc-timeout) ─► HEADERS :status 200 + DATA + trailers (or a trailers-only status)
//! ```
//!
//! hyper gives each stream a task, a service call and a body type between the handler and h2;
//! here the task that drives `h2::server::Connection` also polls the connection's calls (a
//! future each in a `FuturesUnordered`), so a call costs no spawn and no channel, and the
//! answers of many calls leave in one write. On a multi-threaded runtime a call is its own task,
//! so one busy connection still uses every worker. A RST_STREAM from the client drops its call's
//! future; a handler that panics fails only its call (INTERNAL).
//!
//! A graceful stop is h2's: GOAWAY with the largest stream id, then (a round trip later) the
//! final GOAWAY; the calls accepted until then are answered in full, flow control included
//! (h2 counts a stream until its last byte has been written); streams opened after it are
//! refused. Then our side of the socket is shut and we read until the client closes (bounded),
//! so requests it sent meanwhile do not make the kernel reset the connection under answers the
//! client has not read yet.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Request, Response};
use prost::bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::Status;

use crate::grpc::{self, Direction, Frames};
use crate::server::{Closer, Routes};

/// The limits and timers of the server's connections. Every h2 protection is set explicitly
/// (not left to h2's defaults), at hyper's values unless said otherwise.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are
    /// refused by h2.
    pub max_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE, advertised and enforced (hyper: 16 KiB).
    pub max_header_list: u32,
    /// SETTINGS_MAX_FRAME_SIZE (the protocol's minimum, 16 KiB).
    pub max_frame: u32,
    /// Flow-control window of each request stream and of the connection: what a client may
    /// send before we have taken its data.
    pub stream_window: u32,
    pub connection_window: u32,
    /// Data h2 buffers per stream before its flow control stops asking for more (hyper: 400 KiB).
    pub max_send_buffer: usize,
    /// Streams a client may reset before we accepted them (CVE-2023-44487; h2/hyper: 20), and
    /// streams we may reset for its protocol errors (hyper: 1,024), before GOAWAY.
    pub max_pending_accept_resets: usize,
    pub max_local_error_resets: usize,
    /// The client preface and SETTINGS must arrive within this.
    pub handshake_timeout: Duration,
    /// A connection without a call for this long is closed (gracefully).
    pub idle_timeout: Duration,
    /// A PING goes out this often; a connection whose PONG does not come back within
    /// `keepalive_timeout` is dropped (a dead peer, or one that does not read).
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// After our last byte: how long we read, waiting for the client to close.
    pub linger: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_streams: 200,
            max_header_list: 16 * 1024,
            max_frame: 16 * 1024,
            stream_window: 1024 * 1024,
            connection_window: 2 * 1024 * 1024,
            max_send_buffer: 400 * 1024,
            max_pending_accept_resets: 20,
            max_local_error_resets: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(20),
            linger: Duration::from_secs(2),
        }
    }
}

impl Limits {
    fn builder(&self) -> h2::server::Builder {
        let mut builder = h2::server::Builder::new();
        builder
            .max_concurrent_streams(self.max_streams)
            .max_header_list_size(self.max_header_list)
            .max_frame_size(self.max_frame)
            .initial_window_size(self.stream_window)
            .initial_connection_window_size(self.connection_window)
            .max_send_buffer_size(self.max_send_buffer)
            .max_pending_accept_reset_streams(self.max_pending_accept_resets)
            .max_local_error_reset_streams(Some(self.max_local_error_resets));
        builder
    }
}

type Call = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves the unary handlers of `routes` on `io` until the client goes, the connection fails,
/// or `closer` says to close: then a graceful stop (module docs), and it returns.
pub async fn serve_connection(
    mut io: TcpStream,
    routes: Arc<Routes>,
    limits: Arc<Limits>,
    mut closer: Closer,
) {
    let mut close = pin!(closer.closing());
    // h2 borrows the socket, so that it is ours again for the lingering close.
    let handshake = limits.builder().handshake::<_, Bytes>(&mut io);
    let mut conn = tokio::select! {
        conn = tokio::time::timeout(limits.handshake_timeout, handshake) => match conn {
            Ok(Ok(conn)) => conn,
            Ok(Err(error)) => return tracing::debug!(%error, "HTTP/2 handshake failed"),
            Err(_) => return tracing::debug!("HTTP/2 handshake timed out"),
        },
        _ = close.as_mut() => return,
    };
    let parallel = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread;
    let now = Instant::now();
    let mut state = Driver {
        routes,
        running: FuturesUnordered::new(),
        parallel,
        closing: false,
        idle_from: now,
        idle: Box::pin(tokio::time::sleep_until(now + limits.idle_timeout)),
        pings: conn.ping_pong(),
        awaiting_pong: false,
        keepalive: Box::pin(tokio::time::sleep_until(now + limits.keepalive_interval)),
        limits: Arc::clone(&limits),
    };
    let graceful = std::future::poll_fn(|cx| {
        if !state.closing && close.as_mut().poll(cx).is_ready() {
            state.closing = true;
            conn.graceful_shutdown();
        }
        state.poll(&mut conn, cx)
    })
    .await;
    drop(conn);
    if graceful {
        linger(&mut io, limits.linger).await;
    }
}

/// Shuts our side and reads (discarding) until the client closes or `limit` has passed.
async fn linger(io: &mut TcpStream, limit: Duration) {
    let drain = async {
        let _ = io.shutdown().await;
        let mut buf = [0u8; 4096];
        while let Ok(n) = io.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(limit, drain).await;
}

struct Driver {
    routes: Arc<Routes>,
    running: FuturesUnordered<Call>,
    /// Calls run as tasks of their own (multi-threaded runtime) rather than inside this one.
    parallel: bool,
    closing: bool,
    /// When the last call ended; `idle` fires at or before `idle_from + idle_timeout`.
    idle_from: Instant,
    idle: Pin<Box<Sleep>>,
    pings: Option<h2::PingPong>,
    awaiting_pong: bool,
    keepalive: Pin<Box<Sleep>>,
    limits: Arc<Limits>,
}

type Conn<'a> = h2::server::Connection<&'a mut TcpStream, Bytes>;

impl Driver {
    /// Ready(true) once the connection has ended cleanly (h2 wrote everything and shut the
    /// socket), Ready(false) when it failed or was dropped.
    fn poll(&mut self, conn: &mut Conn<'_>, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            // Every request h2 has read is taken first, and only then are the calls run: each
            // `poll_accept` also writes what is queued, so answering a call between two accepts
            // would cost a write per call instead of one for all of them.
            let mut accepted = false;
            loop {
                match conn.poll_accept(cx) {
                    Poll::Ready(Some(Ok((request, respond)))) => {
                        accepted = true;
                        let call = call(Arc::clone(&self.routes), request, respond);
                        if self.parallel {
                            let task = tokio::spawn(call);
                            self.running.push(Box::pin(task.map(|_| ())));
                        } else {
                            self.running.push(Box::pin(call));
                        }
                    }
                    Poll::Ready(Some(Err(error))) => {
                        tracing::debug!(%error, "connection ended");
                        return Poll::Ready(false);
                    }
                    Poll::Ready(None) => return Poll::Ready(true),
                    Poll::Pending => break,
                }
            }
            let had_calls = !self.running.is_empty();
            let mut answered = false;
            while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {
                answered = true;
            }
            if had_calls && self.running.is_empty() {
                self.idle_from = Instant::now();
            }
            // Answers were queued: the next `poll_accept` writes them (and reads what came).
            if !accepted && !answered {
                break;
            }
        }
        if self.timers(conn, cx) {
            return Poll::Ready(false);
        }
        Poll::Pending
    }

    /// The idle timeout and keep-alive PINGs; true when the connection is to be dropped.
    fn timers(&mut self, conn: &mut Conn<'_>, cx: &mut Context<'_>) -> bool {
        if !self.closing && self.running.is_empty() && self.idle.as_mut().poll(cx).is_ready() {
            let at = self.idle_from + self.limits.idle_timeout;
            if Instant::now() >= at {
                tracing::debug!("idle connection closed");
                self.closing = true;
                conn.graceful_shutdown();
                // Wakes this task again: h2 writes the GOAWAY.
                cx.waker().wake_by_ref();
            } else {
                self.idle.as_mut().reset(at);
                let _ = self.idle.as_mut().poll(cx);
            }
        }
        let Some(pings) = self.pings.as_mut() else {
            return false;
        };
        if self.awaiting_pong {
            if let Poll::Ready(result) = pings.poll_pong(cx) {
                self.awaiting_pong = false;
                if result.is_err() {
                    // The connection is ending; h2 reports how.
                    self.pings = None;
                    return false;
                }
                let next = Instant::now() + self.limits.keepalive_interval;
                self.keepalive.as_mut().reset(next);
            }
        }
        while self.keepalive.as_mut().poll(cx).is_ready() {
            if self.awaiting_pong {
                tracing::debug!("no PONG in time: connection dropped");
                return true;
            }
            if pings.send_ping(h2::Ping::opaque()).is_err() {
                self.pings = None;
                return false;
            }
            self.awaiting_pong = true;
            let _ = pings.poll_pong(cx);
            let deadline = Instant::now() + self.limits.keepalive_timeout;
            self.keepalive.as_mut().reset(deadline);
        }
        false
    }
}

/// One call: route, read, handle, answer. A RST_STREAM from the client drops the work.
async fn call(routes: Arc<Routes>, request: Request<RecvStream>, mut respond: SendResponse<Bytes>) {
    let (head, mut body) = request.into_parts();
    let expired = routes.expired;
    let deadline = grpc::parse_timeout(&head.headers).map(|t| Instant::now() + t);
    let result = {
        let work = handle(&routes, head, &mut body);
        let work = async move {
            match deadline {
                None => work.await,
                Some(at) => tokio::time::timeout_at(at, work)
                    .await
                    .unwrap_or_else(|_| Err(expired())),
            }
        };
        let mut work = pin!(work);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(result) = work.as_mut().poll(cx) {
                return Poll::Ready(Some(result));
            }
            match respond.poll_reset(cx) {
                Poll::Ready(_) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    };
    if let Some(result) = result {
        answer(&mut respond, result);
    }
    // The request body lives until the answer is queued: a request still arriving is then
    // ended with RST_STREAM(NO_ERROR), as RFC 9113 §8.1 asks, rather than CANCEL.
    drop(body);
}

async fn handle(
    routes: &Routes,
    head: http::request::Parts,
    body: &mut RecvStream,
) -> Result<Bytes, Status> {
    let Some(handler) = routes.handlers.get(head.uri.path()) else {
        return Err(Status::unimplemented(""));
    };
    if let Some(status) = grpc::unsupported_encoding(&head.headers) {
        return Err(status);
    }
    let message = read_message(body, routes.max_message).await?;
    // A handler that panics (even while making its future) fails its own call, not the
    // connection.
    AssertUnwindSafe(async move { handler.call(head.headers, message).await })
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(Status::internal("handler panicked")))
}

/// The request's one message; its window is given back as the data is taken.
async fn read_message(body: &mut RecvStream, limit: usize) -> Result<Bytes, Status> {
    let mut frames = Frames::with_limit(Direction::Request, limit);
    while let Some(data) = body.data().await {
        let data = data.map_err(|e| Status::from_error(Box::new(e)))?;
        let _ = body.flow_control().release_capacity(data.len());
        frames.push(data)?;
    }
    frames
        .finish()?
        .ok_or_else(|| Status::internal("Missing request message."))
}

/// Queues the answer: HEADERS, the message, `grpc-status: 0` trailers; or, for a failure, a
/// trailers-only answer with tonic's headers (`grpc-status`, `grpc-message`,
/// `grpc-status-details-bin`). h2 writes it under the client's windows.
fn answer(respond: &mut SendResponse<Bytes>, result: Result<Bytes, Status>) {
    let mut response = Response::new(());
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, grpc::CONTENT_TYPE);
    let sent = match result {
        Ok(frame) => respond
            .send_response(response, false)
            .and_then(|mut stream| {
                stream.send_data(frame, false)?;
                let mut trailers = HeaderMap::with_capacity(1);
                trailers.insert(grpc::GRPC_STATUS, HeaderValue::from_static("0"));
                stream.send_trailers(trailers)
            }),
        Err(status) => {
            if let Err(fallback) = status.add_header(headers) {
                // A message that cannot be a header value: tonic's own fallback status.
                let _ = fallback.add_header(headers);
            }
            respond.send_response(response, true).map(drop)
        }
    };
    if let Err(error) = sent {
        // The stream or connection is gone: nobody is left to answer.
        tracing::debug!(%error, "answer not sent");
    }
}
