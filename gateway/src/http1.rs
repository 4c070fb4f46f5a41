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
//! Timeouts as hyper's `header_read_timeout`: from the moment a connection is ready for its
//! next request (accepted, or its last answer written), the request's head must be complete
//! within [`HEAD_TIMEOUT`], or the connection is closed (without an answer, as hyper closes
//! it): this is the idle keep-alive timeout and the header read timeout.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

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

use crate::Gateway;

/// Headers the fast path parses (hyper's default limit is 100 too).
const MAX_HEADERS: usize = 100;
/// A head still incomplete at this size goes to hyper (which answers 431 past its own limit).
const MAX_HEAD: usize = 64 * 1024;
/// A request head must be complete this long after the connection is ready for it (hyper's
/// `header_read_timeout` default): the idle keep-alive timeout and the header read timeout.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Serves one accepted connection from `remote` until it closes or `closer` says to close.
pub async fn serve_connection(
    stream: TcpStream,
    remote: IpAddr,
    gateway: Gateway,
    builder: auto::Builder<TokioExecutor>,
    closer: Closer,
) {
    serve_timed(stream, remote, gateway, builder, closer, HEAD_TIMEOUT).await
}

/// [`serve_connection`] with `head_timeout` in place of [`HEAD_TIMEOUT`] (hyper's part has
/// the one set in `builder`).
async fn serve_timed(
    mut stream: TcpStream,
    remote: IpAddr,
    gateway: Gateway,
    builder: auto::Builder<TokioExecutor>,
    mut closer: Closer,
    head_timeout: Duration,
) {
    // Responses are one write each; nothing to gain from Nagle.
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(4 * 1024);
    let mut out = BytesMut::with_capacity(1024);
    // One timer for the connection, moved on after each answer.
    let mut deadline = tokio::time::Instant::now() + head_timeout;
    let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline));
    loop {
        match parse(&buf) {
            Parsed::Fast(len, request, close) => {
                buf.advance(len);
                FAST_ANSWERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let response = gateway.answer(request, Some(remote)).await;
                let Ok(close) = encode(response, close, &mut out).await else {
                    return;
                };
                if stream.write_all(&out).await.is_err() || close {
                    let _ = stream.shutdown().await;
                    return;
                }
                deadline = tokio::time::Instant::now() + head_timeout;
                continue;
            }
            Parsed::Other => return hand_over(stream, buf, remote, gateway, builder, closer).await,
            Parsed::Partial if buf.len() > MAX_HEAD => {
                return hand_over(stream, buf, remote, gateway, builder, closer).await
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
            // An idle connection, or a head still incomplete: closed without an answer, as
            // hyper does.
            _ = timer.as_mut() => {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
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
) {
    let io = Rewind::new(read.freeze(), stream);
    let service = hyper::service::service_fn(move |req| {
        let gateway = gateway.clone();
        async move { Ok::<_, std::convert::Infallible>(gateway.answer(req, Some(remote)).await) }
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
mod tests {
    use clap::Parser;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;

    const DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);
    /// go-micro's answer for a path that names no service: no registry call is needed.
    const NOT_FOUND: &str =
        r#"{"id":"go.micro.api","code":500,"detail":"not found","status":"Internal Server Error"}"#;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gateway: crate::GatewayArgs,
    }

    struct Served {
        address: std::net::SocketAddr,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), crate::Error>>,
    }

    async fn start() -> Served {
        let cli = Cli::try_parse_from(["gateway"]).expect("parse");
        let gateway = crate::gateway(&cli.gateway).expect("gateway");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let stop = CancellationToken::new();
        let task = tokio::spawn(crate::serve(listener, gateway, stop.clone()));
        Served {
            address,
            stop,
            task,
        }
    }

    /// Reads one response: status line, headers (lower-cased names), body by content-length.
    async fn response(
        socket: &mut TcpStream,
        pending: &mut Vec<u8>,
    ) -> (String, Vec<(String, String)>, String) {
        let read = async {
            loop {
                if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8(pending[..end].to_vec()).expect("utf-8 head");
                    let mut lines = head.split("\r\n");
                    let status = lines.next().expect("status line").to_owned();
                    let headers: Vec<(String, String)> = lines
                        .map(|l| {
                            let (n, v) = l.split_once(':').expect("header");
                            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                        })
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .map(|(_, v)| v.parse().expect("length"))
                        .unwrap_or(0);
                    let body_end = end + 4 + len;
                    if pending.len() >= body_end {
                        let body =
                            String::from_utf8(pending[end + 4..body_end].to_vec()).expect("utf-8");
                        pending.drain(..body_end);
                        return (status, headers, body);
                    }
                }
                let mut buf = [0u8; 4096];
                let n = socket.read(&mut buf).await.expect("read");
                assert!(
                    n > 0,
                    "connection closed before a full response: {pending:?}"
                );
                pending.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(DEADLINE, read)
            .await
            .expect("a response in time")
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    async fn closed(socket: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(DEADLINE, socket.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn keep_alive_pipelining_and_split_heads() {
        let served = start().await;
        let mut socket = TcpStream::connect(served.address).await.expect("connect");
        let mut pending = Vec::new();
        let fast = super::fast_answers();
        let get = b"GET / HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        for _ in 0..3 {
            socket.write_all(get).await.expect("write");
            let (status, headers, body) = response(&mut socket, &mut pending).await;
            assert_eq!(status, "HTTP/1.1 500 Internal Server Error", "{body}");
            assert_eq!(body, NOT_FOUND);
            assert_eq!(header(&headers, "content-type"), Some("application/json"));
            assert!(header(&headers, "date").is_some_and(|d| d.ends_with("GMT")));
            assert_eq!(header(&headers, "connection"), None);
        }
        // Two requests in one write: two answers, in order.
        let two = [&get[..], b"GET /?second=1 HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
        socket.write_all(&two).await.expect("write");
        for _ in 0..2 {
            let (status, _, body) = response(&mut socket, &mut pending).await;
            assert_eq!(
                (status.as_str(), body.as_str()),
                ("HTTP/1.1 500 Internal Server Error", NOT_FOUND)
            );
        }
        // A head that arrives in pieces.
        for piece in [&b"GET / HT"[..], b"TP/1.1\r\nHo", b"st: x\r\n\r\n"] {
            socket.write_all(piece).await.expect("write");
            socket.flush().await.expect("flush");
            tokio::task::yield_now().await;
        }
        let (status, _, _) = response(&mut socket, &mut pending).await;
        assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
        // `Connection: close` is honoured.
        socket
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let (_, headers, _) = response(&mut socket, &mut pending).await;
        assert_eq!(header(&headers, "connection"), Some("close"));
        assert!(closed(&mut socket).await);
        // All seven were the fast path's (other tests only add to the count).
        assert!(super::fast_answers() >= fast + 7);
    }

    #[tokio::test]
    async fn everything_else_is_hypers_on_the_same_connection() {
        let served = start().await;
        let mut socket = TcpStream::connect(served.address).await.expect("connect");
        let mut pending = Vec::new();
        socket
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (status, _, _) = response(&mut socket, &mut pending).await;
        assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
        // A body: hyper reads it (and every later request on this connection).
        socket
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .expect("write");
        let (status, headers, body) = response(&mut socket, &mut pending).await;
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 500 Internal Server Error", NOT_FOUND)
        );
        assert!(header(&headers, "date").is_some());
        socket
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let (status, _, body) = response(&mut socket, &mut pending).await;
        assert_eq!(
            (status.as_str(), body.as_str()),
            ("HTTP/1.1 500 Internal Server Error", NOT_FOUND)
        );

        // HTTP/1.0, HEAD, chunked bodies and garbage get hyper's answers.
        for (request, expect) in [
            (&b"GET / HTTP/1.0\r\n\r\n"[..], "HTTP/1.0 500 Internal Server Error"),
            (b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 500 Internal Server Error"),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                "HTTP/1.1 500 Internal Server Error",
            ),
            (b"NOT HTTP AT ALL\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ] {
            let mut socket = TcpStream::connect(served.address).await.expect("connect");
            socket.write_all(request).await.expect("write");
            let mut pending = Vec::new();
            let (status, _, _) = if request.starts_with(b"HEAD") {
                // No body follows a HEAD answer, whatever its content-length says.
                let (status, headers, _) = {
                    let mut buf = vec![0u8; 4096];
                    let n = tokio::time::timeout(DEADLINE, socket.read(&mut buf))
                        .await
                        .expect("in time")
                        .expect("read");
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    let status = text.lines().next().unwrap_or_default().to_owned();
                    (status, Vec::new(), text)
                };
                (status, headers, String::new())
            } else {
                response(&mut socket, &mut pending).await
            };
            assert_eq!(status, expect, "{}", String::from_utf8_lossy(request));
        }
    }

    #[tokio::test]
    async fn statuses_without_a_body_and_1xx_are_encoded_as_hyper_does() {
        use axum::response::IntoResponse;
        let text = |out: &bytes::BytesMut| String::from_utf8_lossy(out).to_string();
        let mut out = bytes::BytesMut::new();
        for status in [204, 304] {
            let status = axum::http::StatusCode::from_u16(status).expect("status");
            let close = super::encode((status, "ignored").into_response(), false, &mut out)
                .await
                .expect("encoded");
            let text = text(&out);
            assert!(!close);
            assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
            assert!(!text.contains("content-length"), "{text}");
            assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
        }
        let informational = (axum::http::StatusCode::CONTINUE, "x").into_response();
        let close = super::encode(informational, false, &mut out)
            .await
            .expect("encoded");
        assert!(close);
        let text = text(&out);
        assert!(
            text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{text}"
        );
        assert!(
            text.contains("content-length: 0\r\n") && text.ends_with("connection: close\r\n\r\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn http2_prior_knowledge_still_works() {
        let served = start().await;
        let stream = TcpStream::connect(served.address).await.expect("connect");
        let (mut send, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("handshake");
        tokio::spawn(connection);
        let request = axum::http::Request::get(format!("http://{}/", served.address))
            .body(http_body_util::Empty::<axum::body::Bytes>::new())
            .expect("request");
        let response = send.send_request(request).await.expect("response");
        assert_eq!(response.status(), 500);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, NOT_FOUND.as_bytes());
    }

    #[tokio::test]
    async fn a_stop_closes_idle_connections_and_ends_the_server() {
        let served = start().await;
        let mut socket = TcpStream::connect(served.address).await.expect("connect");
        let mut pending = Vec::new();
        socket
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        response(&mut socket, &mut pending).await;
        served.stop.cancel();
        assert!(closed(&mut socket).await, "the idle connection is closed");
        tokio::time::timeout(DEADLINE, served.task)
            .await
            .expect("the server ends")
            .expect("join")
            .expect("served");
    }
}
