//! The gateway as a public edge (issue 19 part 5), with raw TCP clients: a slowloris head and
//! a stalled body get 408 and the connection closed, an oversized head 431, a connection past
//! `--max_connections` 503, a call past `--write_timeout` 504, each in go-micro's error body.
//! Timeouts run on tokio's paused clock (the runtime's clock jumps to the next timer whenever
//! every task waits), so they take no real time and nothing depends on the machine's speed.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use gateway::Limits;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longer than every server-side limit used here, so a paused clock reaches those first.
const DEADLINE: Duration = Duration::from_secs(600);

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    gateway: gateway::GatewayArgs,
}

/// A gateway on a free port under `limits`; `flags` are extra gateway flags.
async fn start(limits: Limits, flags: &[&str]) -> (SocketAddr, CancellationToken) {
    let args = [&["gateway"][..], flags].concat();
    let cli = Cli::try_parse_from(args).expect("flags");
    let gateway = gateway::gateway(&cli.gateway).expect("gateway");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    tokio::spawn(gateway::serve_with(listener, gateway, limits, stop.clone()));
    (address, stop)
}

/// Everything the server sends until it closes the connection: `(status line, body)` of its
/// one answer, or `None` if it closed without one.
async fn answer_then_close(socket: &mut TcpStream) -> Option<(String, Value)> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("the server closes the connection");
    let text = String::from_utf8(seen).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n")?;
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let status = head.lines().next().unwrap_or_default().to_owned();
    Some((status, serde_json::from_str(body).expect("a JSON body")))
}

/// go-micro's error body from the gateway itself.
fn assert_error(answer: &(String, Value), status: &str, code: u16) {
    assert_eq!(answer.0, format!("HTTP/1.1 {code} {status}"), "{answer:?}");
    assert_eq!(answer.1["id"], "go.micro.api", "{answer:?}");
    assert_eq!(answer.1["code"], code, "{answer:?}");
    assert_eq!(answer.1["status"], status, "{answer:?}");
}

fn limits(read_timeout: Duration) -> Limits {
    Limits {
        read_timeout,
        ..Limits::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_slowloris_head_gets_408_and_is_closed() {
    let read_timeout = Duration::from_secs(5);
    let (address, _stop) = start(limits(read_timeout), &[]).await;
    let mut socket = TcpStream::connect(address).await.expect("connect");
    let began = Instant::now();
    socket
        .write_all(b"GET /greeter/say/hello HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // One more header line a second, each well inside the timeout, the head never finished.
    let drip = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let line = format!("X-Drip-{i}: a\r\n");
            if socket.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(read_timeout * 2, drip).await;
    let answer = answer_then_close(&mut socket)
        .await
        .expect("an answer before the close");
    assert_error(&answer, "Request Timeout", 408);
    assert!(began.elapsed() >= read_timeout, "{:?}", began.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_gets_408() {
    let (address, _stop) = start(limits(Duration::from_secs(5)), &[]).await;
    let mut socket = TcpStream::connect(address).await.expect("connect");
    // Ten bytes announced, two sent: hyper reads the body, which never completes.
    socket
        .write_all(b"POST /greeter/say/hello HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhi")
        .await
        .expect("write");
    let answer = answer_then_close(&mut socket).await.expect("an answer");
    assert_error(&answer, "Request Timeout", 408);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_without_an_answer() {
    let (address, _stop) = start(limits(Duration::from_secs(5)), &[]).await;
    let mut socket = TcpStream::connect(address).await.expect("connect");
    assert_eq!(answer_then_close(&mut socket).await, None);
}

#[tokio::test]
async fn an_oversized_head_gets_431() {
    let limits = Limits {
        max_header_bytes: 1024,
        ..Limits::default()
    };
    let (address, _stop) = start(limits, &[]).await;
    let big = "a".repeat(2000);
    for request in [
        // The gateway's own path, a body (hyper's), and a head still arriving.
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"),
        format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nX-Big: {big}\r\n\r\nhi"),
        format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}"),
    ] {
        let mut socket = TcpStream::connect(address).await.expect("connect");
        socket.write_all(request.as_bytes()).await.expect("write");
        let answer = answer_then_close(&mut socket).await.expect("an answer");
        assert_error(&answer, "Request Header Fields Too Large", 431);
    }
    // Within the limit: served (go-micro's "not found" for a path naming no service).
    let mut socket = TcpStream::connect(address).await.expect("connect");
    let small = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Small: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(500)
    );
    socket.write_all(small.as_bytes()).await.expect("write");
    let answer = answer_then_close(&mut socket).await.expect("an answer");
    assert_eq!(answer.1["detail"], "not found", "{answer:?}");
}

/// One keep-alive request on `socket`: the status line of its answer.
async fn served(socket: &mut TcpStream) -> String {
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        // The whole answer: its JSON body ends in `}`.
        while !seen.ends_with(b"}") {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("an answer in time");
    let text = String::from_utf8_lossy(&seen).to_string();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn connections_past_the_cap_get_503() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let (address, _stop) = start(limits, &[]).await;
    let mut first = TcpStream::connect(address).await.expect("connect");
    let mut second = TcpStream::connect(address).await.expect("connect");
    // Both are being served (an answer each, and they stay open).
    for socket in [&mut first, &mut second] {
        assert_eq!(served(socket).await, "HTTP/1.1 500 Internal Server Error");
    }
    let mut third = TcpStream::connect(address).await.expect("connect");
    let _ = third.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = answer_then_close(&mut third).await.expect("an answer");
    assert_error(&answer, "Service Unavailable", 503);
    assert_eq!(
        answer.1["detail"],
        "too many connections (at most 2); try again later"
    );
    // A place frees up when a connection ends: a new one is served again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut next = TcpStream::connect(address).await.expect("connect");
        next.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = answer_then_close(&mut next).await.expect("an answer");
        if answer.1["code"] == 500 {
            break;
        }
        assert_error(&answer, "Service Unavailable", 503);
        assert!(Instant::now() < deadline, "no place freed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        served(&mut second).await,
        "HTTP/1.1 500 Internal Server Error"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_past_the_write_timeout_gets_504() {
    // A "registry" that accepts connections and never answers: the service lookup hangs
    // (until the registry client's own 3 s timeout, after the gateway's 1 s).
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let registry = format!("--registry_address={}", silent.local_addr().expect("addr"));
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let limits = Limits {
        write_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (address, _stop) = start(limits, &[&registry]).await;
    let mut socket = TcpStream::connect(address).await.expect("connect");
    socket
        .write_all(
            b"GET /greeter/say/hello?name=John HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("write");
    let answer = answer_then_close(&mut socket).await.expect("an answer");
    assert_error(&answer, "Gateway Timeout", 504);
    assert_eq!(answer.1["detail"], "no answer within 1s");
    held.abort();
}
