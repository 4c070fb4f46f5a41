//! The connection loop over real sockets: the fast path, hyper's part, and the limits.

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
