//! The gateway as a public edge (issue 19 part 5): bounds on connections, request heads and
//! time, each answered with go-micro's JSON error body.
//!
//! | limit | flag | default | past it |
//! | --- | --- | --- | --- |
//! | open connections | `--max_connections` | 4096 | 503, connection closed |
//! | request head (request line and headers) | `--max_header_bytes` | 64 KiB | 431, connection closed |
//! | reading a request (head, then body) | `--read_timeout` | 30s | 408, connection closed |
//! | the whole call, from the head read to the answer | `--write_timeout` | 60s | 504 |
//!
//! `--read_timeout` is also the idle keep-alive timeout: a connection with no request started
//! is closed without an answer when it runs out. The names are Go's `http.Server` fields
//! (`MaxHeaderBytes`, `ReadTimeout`, `WriteTimeout`), which `micro api` serves with.

use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::{Gateway, GatewayError};

/// The edge limits of one gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Largest request head (request line and headers) accepted, in bytes; larger: 431.
    pub max_header_bytes: usize,
    /// Time to read a request once its connection is ready for it (head, then body): 408.
    pub read_timeout: Duration,
    /// Time for the whole call after the head was read: 504.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_header_bytes: 64 * 1024,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// hyper refuses a read buffer limit below this (it panics).
const HYPER_MIN_BUF: usize = 8192;

impl Limits {
    /// hyper's read buffer for the connections it serves: as large as a head may be (hyper
    /// answers 431 past it).
    pub(crate) fn hyper_buf(&self) -> usize {
        self.max_header_bytes.max(HYPER_MIN_BUF)
    }
}

/// Admission of connections: at most `max_connections` served, and a bounded number of
/// refusals being written (past both, a connection is closed at once).
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    served: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
}

/// Refusals written at once; past that an extra connection is just closed, so a flood costs
/// no more than this many small tasks.
const MAX_REFUSING: usize = 256;

/// How long a refused connection's request is read (and dropped) after the 503, so that the
/// close does not turn into a reset that would destroy the answer before the client reads it.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

impl Gate {
    pub(crate) fn new(limits: &Limits) -> Self {
        Gate {
            served: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        }
    }

    /// A permit for one more served connection, or `None` when the gateway is full.
    pub(crate) fn enter(&self) -> Option<OwnedSemaphorePermit> {
        self.served.clone().try_acquire_owned().ok()
    }

    /// Answers `stream` 503 and closes it, in the background.
    pub(crate) fn refuse(&self, mut stream: TcpStream, max_connections: usize) {
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else {
            return;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let error = GatewayError::Overloaded { max_connections };
            let _ = stream.write_all(&raw_answer(error)).await;
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 4096];
            let drain = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
            let _ = tokio::time::timeout(REFUSAL_LINGER, drain).await;
        });
    }
}

/// `error` as a complete HTTP/1.1 answer that closes the connection: for the refusals written
/// before (or instead of) a request is read.
pub(crate) fn raw_answer(error: GatewayError) -> Vec<u8> {
    let code = error.to_micro().code;
    let status = axum::http::StatusCode::from_u16(u16::try_from(code).unwrap_or(500))
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let body = error.to_micro().to_json();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// [`Gateway::answer`] under the limits: the request's body must arrive by `read_deadline`
/// (408), and the answer be ready within `write_timeout` (504).
pub(crate) async fn answer_within<B>(
    gateway: &Gateway,
    request: axum::http::Request<B>,
    remote: Option<IpAddr>,
    limits: &Limits,
    read_deadline: Instant,
) -> Response
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    let request = request.map(|body| TimedBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep_until(read_deadline)),
    });
    within_write_timeout(limits, gateway.answer(request, remote)).await
}

/// `answer`, or 504 once `write_timeout` has passed (for requests without a body, which
/// need no read deadline: the fast path's).
pub(crate) async fn within_write_timeout(
    limits: &Limits,
    answer: impl std::future::Future<Output = Response>,
) -> Response {
    match tokio::time::timeout(limits.write_timeout, answer).await {
        Ok(response) => response,
        Err(_) => GatewayError::CallTimeout {
            limit: limits.write_timeout,
        }
        .into_response(),
    }
}

/// A request body that fails with [`BodyTimeout`] once its deadline has passed.
pub(crate) struct TimedBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
}

/// The request body did not arrive in time (`--read_timeout`).
#[derive(Debug, thiserror::Error)]
#[error("the request was not read within the read timeout")]
pub struct BodyTimeout;

impl<B> http_body::Body for TimedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_go_micros_body_and_close() {
        let text = String::from_utf8(raw_answer(GatewayError::HeaderTooLarge { limit: 10 }))
            .expect("utf-8");
        assert!(
            text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{text}"
        );
        assert!(text.contains("connection: close\r\n"), "{text}");
        let body = text.split("\r\n\r\n").nth(1).expect("body");
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["id"], "go.micro.api");
        assert_eq!(json["code"], 431);
        assert_eq!(json["status"], "Request Header Fields Too Large");
        let length = format!("content-length: {}\r\n", body.len());
        assert!(text.contains(&length), "{text}");
    }

    #[test]
    fn hyper_gets_a_buffer_it_accepts() {
        let small = Limits {
            max_header_bytes: 100,
            ..Limits::default()
        };
        assert_eq!(small.hyper_buf(), HYPER_MIN_BUF);
        assert_eq!(Limits::default().hyper_buf(), 64 * 1024);
    }
}
