//! The gateway's connections: a fast path for plain HTTP/1.1 requests without a body, hyper for
//! everything else.
//!
//! ```text
//!   accept ─► read ─► complete HTTP/1.1 head, no body, no upgrade? ─► Gateway::answer ─► write
//!                 └─► anything else (a body, HTTP/1.0, HTTP/2's preface, HEAD, Expect, a bad
//!                     or oversized head) ─► hyper's HTTP/1 + HTTP/2 connection for the rest of
//!                     the connection, the bytes already read put back in front
//! ```
//!
//! hyper's HTTP/1 dispatcher costs about as much per request as everything the gateway does
//! (its reads, head parsing, header map and response encoding run through several layers and
//! a timer per request); `GET /greeter/say/hello?name=John` is answered here with one parse
//! (httparse, which hyper uses too), one header map, and one write of head and body. Every
//! case the fast path does not take is hyper's, with hyper's answers (400, 431, 505, chunked
//! bodies, 100-continue, HTTP/2 prior knowledge), so both paths answer alike (a differential
//! test sends the same bytes to both, [`differential`]).
//!
//! The edge limits ([`crate::limits`]): from the moment a connection is ready for its next
//! request (accepted, or its last answer written), the request's head must be complete within
//! `read_timeout`: a connection that has sent nothing of a request by then is closed (the idle
//! keep-alive timeout), one with a head still incomplete (a slowloris) gets 408 and is closed.
//! A head over `max_header_bytes` gets 431 and the connection is closed. Once a connection is
//! hyper's, hyper applies the same two limits (`header_read_timeout`, closing without an
//! answer; `max_buf_size`, 431).

use std::net::IpAddr;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};
use bytes::{Buf, BufMut, BytesMut};
use grpc_lite::rewind::Rewind;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use micro::server::Closer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::limits::{self, Limits};
use crate::{Gateway, GatewayError};

/// Headers the fast path parses (hyper's default limit is 100 too).
const MAX_HEADERS: usize = 100;

/// Requests answered by the fast path (all connections, since start).
static FAST_ANSWERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many requests the fast path has answered in this process.
pub fn fast_answers() -> u64 {
    FAST_ANSWERS.load(std::sync::atomic::Ordering::Relaxed)
}

/// What the buffer holds. (Returned by value once per request: boxing the large variant
/// would cost an allocation per request.)
#[allow(clippy::large_enum_variant)]
enum Parsed {
    /// A complete request the fast path answers: its head's length, the request, and whether
    /// the client asked to close after it.
    Fast(usize, Request<Empty<Bytes>>, bool),
    /// Not complete yet.
    Partial,
    /// Hyper's.
    Other,
}

/// Serves one accepted connection from `remote` until it closes or `closer` says to close,
/// under `limits`.
pub async fn serve_connection(
    mut stream: TcpStream,
    remote: IpAddr,
    gateway: Gateway,
    builder: auto::Builder<TokioExecutor>,
    mut closer: Closer,
    limits: Limits,
) {
    // Responses are one write each; nothing to gain from Nagle.
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(4 * 1024);
    let mut out = BytesMut::with_capacity(1024);
    // One timer for the connection, moved on after each answer.
    let mut deadline = tokio::time::Instant::now() + limits.read_timeout;
    let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline));
    let too_large = GatewayError::HeaderTooLarge {
        limit: limits.max_header_bytes,
    };
    loop {
        match parse(&buf) {
            Parsed::Fast(len, ..) if len > limits.max_header_bytes => {
                return refuse(stream, too_large).await
            }
            Parsed::Fast(len, request, close) => {
                buf.advance(len);
                FAST_ANSWERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // No body to time: only the call is bounded.
                let answer = gateway.answer(request, Some(remote));
                let response = limits::within_write_timeout(&limits, answer).await;
                let Ok(close) = encode(response, close, &mut out).await else {
                    return;
                };
                if stream.write_all(&out).await.is_err() || close {
                    let _ = stream.shutdown().await;
                    return;
                }
                deadline = tokio::time::Instant::now() + limits.read_timeout;
                continue;
            }
            Parsed::Other if head_end(&buf).is_some_and(|end| end > limits.max_header_bytes) => {
                return refuse(stream, too_large).await
            }
            Parsed::Other => {
                return hand_over(stream, buf, remote, gateway, builder, closer, limits).await
            }
            Parsed::Partial if buf.len() > limits.max_header_bytes => {
                return refuse(stream, too_large).await
            }
            Parsed::Partial => {}
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4 * 1024);
        }
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        let idle = buf.is_empty();
        tokio::select! {
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            // Idle between requests: a graceful stop closes it at once.
            _ = closer.closing(), if idle => return,
            // Idle: closed without an answer, as hyper does. A head begun and not finished
            // (a slowloris): 408, then closed.
            _ = timer.as_mut() => {
                if idle {
                    let _ = stream.shutdown().await;
                    return;
                }
                return refuse(stream, GatewayError::ReadTimeout).await;
            }
        }
    }
}

/// Writes `error` as the connection's last answer and closes it.
async fn refuse(mut stream: TcpStream, error: GatewayError) {
    tracing::debug!(%error, "request refused at the edge");
    let _ = stream.write_all(&limits::raw_answer(error)).await;
    let _ = stream.shutdown().await;
}

/// The length of the head at the start of `buf` (through its empty line), if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The connection goes to hyper (HTTP/1 and HTTP/2) for the rest of its life, starting with
/// the bytes already read.
async fn hand_over(
    stream: TcpStream,
    read: BytesMut,
    remote: IpAddr,
    gateway: Gateway,
    builder: auto::Builder<TokioExecutor>,
    closer: Closer,
    limits: Limits,
) {
    let io = Rewind::new(read.freeze(), stream);
    let service = hyper::service::service_fn(move |req| {
        let gateway = gateway.clone();
        // hyper has read the head: the body gets a read timeout of its own from here.
        let read_deadline = tokio::time::Instant::now() + limits.read_timeout;
        async move {
            let answer =
                limits::answer_within(&gateway, req, Some(remote), &limits, read_deadline).await;
            Ok::<_, std::convert::Infallible>(answer)
        }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    closer.serve(connection, |c| c.graceful_shutdown()).await;
}

/// A request the fast path takes: HTTP/1.1, complete, valid, with no body and nothing that
/// changes how the connection is read (`content-length` other than 0, `transfer-encoding`,
/// `expect`, `upgrade`), and not HEAD or CONNECT (whose answers differ in shape).
fn parse(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some(method), Some(path), Some(1)) = (parsed.method, parsed.path, parsed.version) else {
        return Parsed::Other;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Other;
    };
    if method == Method::HEAD || method == Method::CONNECT {
        return Parsed::Other;
    }
    let Ok(uri) = Uri::from_maybe_shared(Bytes::copy_from_slice(path.as_bytes())) else {
        return Parsed::Other;
    };
    let mut map = HeaderMap::with_capacity(parsed.headers.len());
    let mut close = false;
    for header in parsed.headers.iter() {
        let name = header.name.as_bytes();
        let body_or_upgrade = name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
            || (name.eq_ignore_ascii_case(b"content-length") && header.value != b"0");
        if body_or_upgrade {
            return Parsed::Other;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") {
                    return Parsed::Other;
                }
            }
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(header.value),
        ) else {
            return Parsed::Other;
        };
        map.append(name, value);
    }
    let mut request = Request::new(Empty::new());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = map;
    Parsed::Fast(len, request, close)
}

/// `response` as HTTP/1.1 bytes in `out`: status line, its headers, `content-length`, `date`
/// (as hyper adds it), `connection: close` if the connection ends after it, then the body.
/// Returns whether the connection ends after it. As hyper does: 204 and 304 carry neither
/// `content-length` nor a body, and a 1xx status (which a service may name in its
/// `go.api.Response`) cannot be a final answer: it becomes an empty 500 and the connection ends.
async fn encode(
    response: axum::response::Response,
    mut close: bool,
    out: &mut BytesMut,
) -> Result<bool, axum::Error> {
    let (mut head, body) = response.into_parts();
    let mut body = body.collect().await?.to_bytes();
    if head.status.is_informational() {
        head.status = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        head.headers.clear();
        body = Bytes::new();
        close = true;
    }
    let bodiless = matches!(
        head.status,
        axum::http::StatusCode::NO_CONTENT | axum::http::StatusCode::NOT_MODIFIED
    );
    out.clear();
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(head.status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(head.status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    let mut dated = false;
    for (name, value) in &head.headers {
        if name == axum::http::header::CONTENT_LENGTH
            || name == axum::http::header::TRANSFER_ENCODING
            || name == axum::http::header::CONNECTION
        {
            continue;
        }
        dated |= name == axum::http::header::DATE;
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if !bodiless {
        out.put_slice(b"content-length: ");
        out.put_slice(body.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
    }
    if !dated {
        out.put_slice(b"date: ");
        date(out);
        out.put_slice(b"\r\n");
    }
    if close {
        out.put_slice(b"connection: close\r\n");
    }
    out.put_slice(b"\r\n");
    if !bodiless {
        out.put_slice(&body);
    }
    Ok(close)
}

/// The current time as an HTTP date, formatted once per second per thread.
fn date(out: &mut BytesMut) {
    use std::cell::RefCell;
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second || cached.1.is_empty() {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        out.put_slice(cached.1.as_bytes());
    });
}

#[cfg(test)]
mod differential;

#[cfg(test)]
mod tests;
