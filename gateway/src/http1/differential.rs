//! The fast path against plain hyper: the same request bytes to a gateway connection served by
//! [`super::serve_connection`] (fast path, hyper for the rest) and to one served by hyper alone
//! ([`super::hand_over`] from the first byte), the answers compared as parsed: status lines,
//! headers (the `date` value aside, order aside) and bodies, and where each connection ends.
//! The gateway has no registry here: the paths used are answered before any lookup.

use std::time::Duration;

use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(20);
/// The header read / idle timeout of both servers in the timeout cases.
const SHORT: Duration = Duration::from_millis(300);

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    gateway: crate::GatewayArgs,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Fast,
    Hyper,
}

/// A server of one side; `head_timeout` for both its fast path and its hyper builder.
async fn server(side: Side, head_timeout: Duration) -> std::net::SocketAddr {
    let cli = Cli::try_parse_from(["gateway"]).expect("parse");
    let gateway = crate::gateway(&cli.gateway).expect("gateway");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    // Never drained: the servers end with the test's runtime.
    let connections = micro::server::Connections::default();
    let closer = connections.closer();
    tokio::spawn(async move {
        let _connections = connections;
        while let Ok((stream, remote)) = listener.accept().await {
            let (gateway, builder, closer) = (gateway.clone(), builder.clone(), closer.clone());
            let ip = remote.ip();
            let limits = crate::Limits {
                read_timeout: head_timeout,
                ..crate::Limits::default()
            };
            tokio::spawn(async move {
                match side {
                    Side::Fast => {
                        super::serve_connection(stream, ip, gateway, builder, closer, limits).await
                    }
                    Side::Hyper => {
                        let empty = bytes::BytesMut::new();
                        super::hand_over(stream, empty, ip, gateway, builder, closer, limits).await
                    }
                }
            });
        }
    });
    address
}

/// One answer as parsed: status line, sorted headers (`date`'s value blanked), body.
type Answer = (String, Vec<(String, String)>, String);

/// Splits everything a server sent into answers (bodies by content-length).
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default().to_owned();
        let mut headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap_or((l, ""));
                let name = n.trim().to_ascii_lowercase();
                let value = if name == "date" { "*" } else { v.trim() };
                (name, value.to_owned())
            })
            .collect();
        headers.sort();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let body_end = (end + 4 + len).min(bytes.len());
        let body = String::from_utf8_lossy(&bytes[end + 4..body_end]).to_string();
        out.push((status, headers, body));
        bytes = &bytes[body_end..];
    }
    out
}

/// Writes `request` in `pieces` (a pause between them) and reads until the server closes.
async fn exchange(address: std::net::SocketAddr, pieces: &[&[u8]]) -> Vec<u8> {
    let mut socket = TcpStream::connect(address).await.expect("connect");
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            // Lets the server see a partial request.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        socket.write_all(piece).await.expect("write");
    }
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("the server closes the connection");
    seen
}

/// The last request of a keep-alive case: the server answers it and closes.
const CLOSE: &[u8] = b"GET /?last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn the_fast_path_answers_as_plain_hyper_does() {
    let fast = server(Side::Fast, crate::Limits::default().read_timeout).await;
    let hyper = server(Side::Hyper, crate::Limits::default().read_timeout).await;
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", CLOSE],
        vec![
            b"GET /?a=1&b=%20 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nUser-Agent: t\r\n\r\n",
            CLOSE,
        ],
        vec![b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
        vec![b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, Close\r\n\r\n"],
        vec![
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
            CLOSE,
        ],
        // Pipelined, and a head in pieces.
        vec![
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            CLOSE,
        ],
        vec![b"GET / HT", b"TP/1.1\r\nHo", b"st: x\r\n\r\n", CLOSE],
        // Paths the gateway refuses before any lookup.
        vec![b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", CLOSE],
        vec![b"GET //a/../../b HTTP/1.1\r\nHost: x\r\n\r\n", CLOSE],
        vec![
            b"DELETE /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            CLOSE,
        ],
        vec![b"get / HTTP/1.1\r\nHost: x\r\n\r\n", CLOSE],
        vec![b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", CLOSE],
        vec![b"GET / HTTP/1.1\r\n\r\n", CLOSE],
        vec![b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", CLOSE],
        vec![
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Two: 1\r\nX-Two: 2\r\n\r\n",
            CLOSE,
        ],
        // What the fast path hands to hyper: both must still agree.
        vec![b"GET / HTTP/1.0\r\n\r\n"],
        vec![
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
            CLOSE,
        ],
        vec![
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n",
            CLOSE,
        ],
        vec![b"NOT HTTP AT ALL\r\n\r\n"],
        vec![b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"],
    ];
    let fast_before = super::fast_answers();
    for pieces in cases {
        let what = String::from_utf8_lossy(&pieces.concat()).to_string();
        let (from_fast, from_hyper) = (
            exchange(fast, &pieces).await,
            exchange(hyper, &pieces).await,
        );
        let (a, b) = (answers(&from_fast), answers(&from_hyper));
        assert!(!b.is_empty(), "{what:?}: hyper answered nothing");
        assert_eq!(a, b, "{what:?}");
    }
    // The fast side did take the plain requests (other tests only add to the count).
    assert!(super::fast_answers() >= fast_before + 20);
}

#[tokio::test]
async fn idle_and_slow_heads_time_out() {
    let fast = server(Side::Fast, SHORT).await;
    let hyper = server(Side::Hyper, SHORT).await;
    // A connection that sends nothing at all: closed without an answer. (hyper's `auto`
    // builder waits for the first bytes, to tell HTTP/1 from HTTP/2, without a timer: it would
    // keep such a connection open for ever, so this case is the fast path's alone.)
    assert!(exchange(fast, &[]).await.is_empty());
    // One answer, then idle keep-alive: closed after the timeout, without another answer.
    let pieces = [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]];
    let (from_fast, from_hyper) = (
        exchange(fast, &pieces).await,
        exchange(hyper, &pieces).await,
    );
    assert_eq!(answers(&from_hyper).len(), 1, "hyper's answers");
    assert_eq!(answers(&from_fast), answers(&from_hyper));
    // A head that never completes (a slowloris): hyper closes without a word; the gateway's
    // own path answers 408 first, in go-micro's body (see `crate::limits`).
    let pieces = [&b"GET / HTTP/1.1\r\nHost"[..]];
    assert!(answers(&exchange(hyper, &pieces).await).is_empty());
    let from_fast = answers(&exchange(fast, &pieces).await);
    assert_eq!(from_fast.len(), 1, "{from_fast:?}");
    let (status, headers, body) = &from_fast[0];
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    assert!(
        headers.contains(&("connection".into(), "close".into())),
        "{headers:?}"
    );
    assert_eq!(
        body,
        r#"{"id":"go.micro.api","code":408,"detail":"the request was not read within the read timeout","status":"Request Timeout"}"#
    );
}
