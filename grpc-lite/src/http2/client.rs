//! The client end: unary gRPC calls on hyperium's `h2`, one driver task per connection.
//!
//! ```text
//!   Connection::unary ─► SendRequest (a clone per call) ─► HEADERS + DATA (END_STREAM)
//!   driver task: h2::client::Connection (frames, HPACK, flow control, SETTINGS, GOAWAY)
//!   the caller reads the answer: HEADERS, DATA ([`Frames`]), trailers
//! ```
//!
//! A caller that gives up (its future dropped) drops its stream handles, and h2 resets the
//! stream (CANCEL). Calls beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS wait in h2 for
//! a free stream. A transport failure is UNAVAILABLE, as is a call the server did not take
//! (REFUSED_STREAM, or above the last stream id of its GOAWAY), so the caller may try another
//! node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use h2::client::SendRequest;
use h2::Reason;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use prost::bytes::Bytes;
use tokio::net::TcpStream;
use tonic::{Code, Status};

use crate::grpc::{Direction, Frames};

/// Flow-control windows we open to a server (per stream, per connection); answers are taken
/// (and their window given back) as they arrive.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// Largest header list we take from a server (a status's details travel in it).
const MAX_HEADER_LIST: u32 = 1024 * 1024;

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

/// A client connection to one server; clones share it. It closes when every clone is dropped
/// and its calls have been answered, or when the server goes.
#[derive(Debug, Clone)]
pub struct Connection {
    send: SendRequest<Bytes>,
    authority: Authority,
    /// The driver task has ended.
    closed: Arc<AtomicBool>,
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
        Connection::start(io, address).await
    }

    /// A connection on an established socket; `authority` is sent as every call's `:authority`.
    pub async fn start(io: TcpStream, authority: &str) -> std::io::Result<Connection> {
        let authority = Authority::try_from(authority)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .enable_push(false)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(std::io::Error::other)?;
        let closed = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&closed);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended");
            }
            done.store(true, Ordering::Release);
        });
        Ok(Connection {
            send,
            authority,
            closed,
        })
    }

    /// No new call can go out on this connection (it ended, or the server said GOAWAY).
    pub fn is_closed(&self) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return true;
        }
        // A fresh handle is ready at once unless the connection has failed or is going away.
        let mut probe = self.send.clone();
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        matches!(probe.poll_ready(&mut cx), Poll::Ready(Err(_)))
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
        let path = PathAndQuery::try_from(path)
            .map_err(|e| Status::internal(format!("bad method path: {e}")))?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        let uri = Uri::from_parts(parts).map_err(|e| Status::internal(e.to_string()))?;
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = HeaderMap::clone(&headers);

        let mut send = self.send.clone();
        std::future::poll_fn(|cx| send.poll_ready(cx))
            .await
            .map_err(status)?;
        let (response, mut body) = send.send_request(request, false).map_err(status)?;
        body.send_data(frame, true).map_err(status)?;
        let (head, mut recv) = response.await.map_err(status)?.into_parts();
        if recv.is_end_stream() {
            // Trailers-only: the status is in the headers.
            return Ok(Reply {
                status: head.status,
                headers: head.headers,
                message: Ok(None),
                trailers: None,
            });
        }
        let mut frames = Frames::new(Direction::Response(head.status));
        while let Some(data) = recv.data().await {
            let data = data.map_err(status)?;
            let _ = recv.flow_control().release_capacity(data.len());
            // A malformed answer fails the call; dropping `recv` resets the stream.
            frames.push(data)?;
        }
        let trailers = recv.trailers().await.map_err(status)?;
        Ok(Reply {
            status: head.status,
            headers: head.headers,
            message: frames.finish(),
            trailers,
        })
    }
}

/// An h2 error as the status tonic gives it: a stream the server reset by its error code, a
/// call the server never took or a failed connection as UNAVAILABLE.
fn status(error: h2::Error) -> Status {
    match error.reason() {
        Some(reason) if error.is_reset() && error.is_remote() => reset_status(reason),
        _ if error.is_go_away() && error.is_remote() => {
            unavailable(format!("server going away: {error}"))
        }
        _ => unavailable(error),
    }
}

/// A RST_STREAM's error code as the status tonic gives it.
fn reset_status(reason: Reason) -> Status {
    let (code, what) = match reason {
        Reason::REFUSED_STREAM => (
            Code::Unavailable,
            "refused stream before processing any application logic",
        ),
        Reason::CANCEL => (Code::Cancelled, "operation was canceled"),
        Reason::ENHANCE_YOUR_CALM => (
            Code::ResourceExhausted,
            "detected excessive load generating behavior",
        ),
        Reason::INADEQUATE_SECURITY => (Code::PermissionDenied, "security too weak"),
        _ if u32::from(reason) <= 0xd => (Code::Internal, "stream reset"),
        _ => (Code::Unknown, "stream reset"),
    };
    Status::new(
        code,
        format!(
            "h2 protocol error: stream error received: {what} ({:#x})",
            u32::from(reason)
        ),
    )
}
