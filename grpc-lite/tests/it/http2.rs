//! grpc-lite's unary gRPC on h2 (`http2`) end to end over loopback: its client against its own
//! server and against hyper's (with tonic's generated server behind it), large messages under
//! the peers' flow-control windows, the server's stream limit, callers that give up, graceful
//! stops, and peers that send garbage.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_lite::grpc;
use grpc_lite::http2::client::{Connection, Reply};
use grpc_lite::server::{serve, Routes};
use http::{HeaderMap, HeaderValue};
use prost::bytes::Bytes;
use proto::greeter::{Request as Hello, Response as Answer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

const HELLO: &str = "/go.micro.srv.greeter.Say/Hello";
const DEADLINE: Duration = Duration::from_secs(20);

/// Handlers still running (a "slow" call sleeps until dropped or a minute has passed).
#[derive(Clone, Default)]
struct Running(Arc<AtomicUsize>);

struct Guard(Running);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Running {
    fn enter(&self) -> Guard {
        self.0.fetch_add(1, Ordering::SeqCst);
        Guard(self.clone())
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Echoes the name; "slow" sleeps for a minute, "pause" for 300 ms, "panic" panics.
fn echo(running: &Running) -> Routes {
    let running = running.clone();
    Routes::new().unary(HELLO, move |req: Hello| {
        let guard = running.enter();
        async move {
            let _guard = guard;
            match req.name.as_str() {
                "slow" => tokio::time::sleep(Duration::from_secs(60)).await,
                "pause" => tokio::time::sleep(Duration::from_millis(300)).await,
                "panic" => panic!("the handler panics"),
                _ => {}
            }
            Ok::<_, Status>(Answer { msg: req.name })
        }
    })
}

/// tonic's generated server: served by hyper, as the fallback of routes without handlers.
struct Tonic;

#[tonic::async_trait]
impl proto::greeter::say_server::Say for Tonic {
    async fn hello(
        &self,
        request: tonic::Request<Hello>,
    ) -> Result<tonic::Response<Answer>, Status> {
        Ok(tonic::Response::new(Answer {
            msg: request.into_inner().name,
        }))
    }
}

struct Server {
    address: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(routes: Routes) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve(listener, routes, stop.clone()));
    Server {
        address,
        stop,
        task,
    }
}

fn headers() -> Arc<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert("te", HeaderValue::from_static("trailers"));
    headers.insert("content-type", grpc::CONTENT_TYPE);
    Arc::new(headers)
}

/// The message of a reply, or its status.
fn message(reply: Reply) -> Result<String, Status> {
    if let Some(status) = grpc::status_from_headers(&reply.headers) {
        return Err(status);
    }
    let message = reply.message?;
    grpc::final_status(reply.trailers.as_ref(), reply.status)?;
    let answer: Answer = grpc::decode(message.expect("a message"))?;
    Ok(answer.msg)
}

async fn call(conn: &Connection, name: &str) -> Result<String, Status> {
    let frame = grpc::encode(&Hello { name: name.into() });
    let reply = conn.unary(HELLO.into(), headers(), frame).await?;
    message(reply)
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Each scenario runs on a single-threaded runtime (the server polls a connection's calls in its
// own task) and on a multi-threaded one (each call is a task).

#[tokio::test]
async fn many_concurrent_calls_share_one_connection() {
    let _process = common::beside_others().await;
    many_concurrent_calls().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_share_one_connection_multi_threaded() {
    let _process = common::beside_others().await;
    many_concurrent_calls().await;
}

async fn many_concurrent_calls() {
    let server = start(echo(&Running::default())).await;
    let conn = Connection::connect(&server.address, DEADLINE)
        .await
        .expect("connect");
    // The first answer brings the server's SETTINGS (at most 200 streams); the other 1,499
    // calls then wait for free streams instead of being refused.
    assert_eq!(call(&conn, "first").await.expect("call"), "first");
    let calls = (0..1500).map(|i| {
        let conn = conn.clone();
        async move { (i, call(&conn, &format!("n{i}")).await) }
    });
    for (i, result) in futures::future::join_all(calls).await {
        assert_eq!(result.expect("answered"), format!("n{i}"));
    }
}

#[tokio::test]
async fn large_messages_wait_for_the_peers_windows() {
    let _process = common::beside_others().await;
    let big = "x".repeat(3 * 1024 * 1024);
    // hyper's server opens 1 MiB per stream and connection: the client must wait for its
    // WINDOW_UPDATEs. Ours answers a hyper client the same way (tests in server.rs).
    for (engine, routes) in [
        ("own", echo(&Running::default())),
        (
            "hyper",
            Routes::from(tonic::service::Routes::new(
                proto::greeter::say_server::SayServer::new(Tonic),
            )),
        ),
    ] {
        let server = start(routes).await;
        let conn = Connection::connect(&server.address, DEADLINE)
            .await
            .expect("connect");
        let calls = (0..4).map(|i| {
            let conn = conn.clone();
            let name = format!("{i}{big}");
            async move { (name.clone(), call(&conn, &name).await) }
        });
        let answers = tokio::time::timeout(DEADLINE, futures::future::join_all(calls))
            .await
            .unwrap_or_else(|_| panic!("{engine}: large calls stalled"));
        for (name, answer) in answers {
            assert!(answer.expect(engine) == name, "{engine}: echo differs");
        }
        // Over the 4 MiB limit: refused with tonic's status, and the connection lives on.
        let huge = "y".repeat(5 * 1024 * 1024);
        let status = call(&conn, &huge).await.expect_err("too large");
        assert_eq!(status.code(), Code::OutOfRange, "{engine}: {status:?}");
        assert_eq!(call(&conn, "after").await.expect(engine), "after");
    }
}

#[tokio::test]
async fn a_caller_that_gives_up_cancels_the_handler() {
    let _process = common::beside_others().await;
    giving_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_cancels_the_handler_multi_threaded() {
    let _process = common::beside_others().await;
    giving_up().await;
}

async fn giving_up() {
    let running = Running::default();
    let server = start(echo(&running)).await;
    let conn = Connection::connect(&server.address, DEADLINE)
        .await
        .expect("connect");
    let gave_up = tokio::time::timeout(Duration::from_millis(200), call(&conn, "slow")).await;
    assert!(gave_up.is_err(), "the slow call cannot have finished");
    // RST_STREAM(CANCEL) reaches the server, which drops the handler's future.
    until("the handler is dropped", || running.count() == 0).await;
    assert_eq!(call(&conn, "still").await.expect("call"), "still");
}

#[tokio::test]
async fn a_graceful_stop_finishes_calls_then_refuses() {
    let _process = common::beside_others().await;
    let running = Running::default();
    let server = start(echo(&running)).await;
    let conn = Connection::connect(&server.address, DEADLINE)
        .await
        .expect("connect");
    assert_eq!(call(&conn, "a").await.expect("call"), "a");
    let in_flight = {
        let conn = conn.clone();
        tokio::spawn(async move { call(&conn, "pause").await })
    };
    until("the call is running", || running.count() == 1).await;
    server.stop.cancel();
    assert_eq!(in_flight.await.expect("join").expect("finished"), "pause");
    tokio::time::timeout(DEADLINE, server.task)
        .await
        .expect("the server stops")
        .expect("join");
    until("the client sees the close", || conn.is_closed()).await;
    let status = call(&conn, "late").await.expect_err("closed");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn a_server_that_hangs_up_is_unavailable() {
    let _process = common::beside_others().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        // Takes the connection, reads a little, hangs up.
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 64];
            let _ = socket.read(&mut buf).await;
        }
    });
    let conn = Connection::connect(&address, DEADLINE)
        .await
        .expect("connect");
    let status = call(&conn, "x").await.expect_err("no server");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    until("closed", || conn.is_closed()).await;
    // Nothing listens here any more.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("address").to_string()
    };
    assert!(Connection::connect(&closed, DEADLINE).await.is_err());
}

#[tokio::test]
async fn garbage_ends_only_its_own_connection() {
    let _process = common::beside_others().await;
    let server = start(echo(&Running::default())).await;
    // Not HTTP/2 at all: h2 ends the handshake (it sends no GOAWAY before a preface).
    let mut socket = TcpStream::connect(&server.address).await.expect("connect");
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let code = common::goaway_then_close(socket, DEADLINE).await;
    assert!(code.is_none_or(|c| c == common::PROTOCOL_ERROR), "{code:?}");

    // A header block HPACK cannot decode (an index overflowing its integer): the connection
    // ends with an error (h2 says PROTOCOL_ERROR where RFC 7541 names COMPRESSION_ERROR).
    let mut socket = TcpStream::connect(&server.address).await.expect("connect");
    let mut out = common::preface();
    let flags = common::END_HEADERS | common::END_STREAM;
    common::frame(&mut out, common::HEADERS, flags, 1, &[0xff; 6]);
    socket.write_all(&out).await.expect("write");
    let code = common::goaway_then_close(socket, DEADLINE).await;
    assert!(
        matches!(
            code,
            Some(common::PROTOCOL_ERROR | common::COMPRESSION_ERROR)
        ),
        "{code:?}"
    );

    // A frame over the 16 KiB we accept.
    let mut socket = TcpStream::connect(&server.address).await.expect("connect");
    let mut out = common::preface();
    common::frame(&mut out, common::DATA, 0, 1, &[0; 20_000]);
    socket.write_all(&out).await.expect("write");
    assert_eq!(
        common::goaway_then_close(socket, DEADLINE).await,
        Some(common::FRAME_SIZE_ERROR)
    );

    // Frames on stream 0 that belong to streams, a bad WINDOW_UPDATE, a short PING; and DATA
    // on a stream never opened.
    for (kind, payload, stream) in [
        (common::DATA, &b"x"[..], 0),
        (common::HEADERS, &[0x88][..], 0),
        (common::WINDOW_UPDATE, &[0, 0, 0, 0][..], 0),
        (common::RST_STREAM, &[0, 0][..], 0),
        (common::PING, &[1, 2, 3][..], 0),
        (common::DATA, &b"x"[..], 7),
    ] {
        let mut socket = TcpStream::connect(&server.address).await.expect("connect");
        let mut out = common::preface();
        common::frame(&mut out, kind, common::END_HEADERS, stream, payload);
        socket.write_all(&out).await.expect("write");
        let code = common::goaway_then_close(socket, DEADLINE).await;
        assert!(
            code.is_some_and(|c| c != common::NO_ERROR),
            "kind {kind} on {stream}: {code:?}"
        );
    }

    // The server still serves everyone else.
    let conn = Connection::connect(&server.address, DEADLINE)
        .await
        .expect("connect");
    assert_eq!(call(&conn, "fine").await.expect("call"), "fine");
}

#[tokio::test]
async fn unknown_paths_and_statuses_reach_the_caller() {
    let _process = common::beside_others().await;
    let server = start(
        echo(&Running::default()).unary("/t.T/Fail", |_: Hello| async move {
            Err::<Answer, _>(Status::with_details(
                Code::NotFound,
                "no such thing",
                Bytes::from_static(b"details"),
            ))
        }),
    )
    .await;
    let conn = Connection::connect(&server.address, DEADLINE)
        .await
        .expect("connect");
    let frame = grpc::encode(&Hello { name: "x".into() });
    for (path, code, text) in [
        ("/t.T/Nope", Code::Unimplemented, ""),
        ("/t.T/Fail", Code::NotFound, "no such thing"),
    ] {
        let reply = conn
            .unary(path.into(), headers(), frame.clone())
            .await
            .expect("a reply");
        assert!(reply.trailers.is_none(), "{path}: trailers-only");
        let status = message(reply).expect_err(path);
        assert_eq!((status.code(), status.message()), (code, text), "{path}");
        if code == Code::NotFound {
            assert_eq!(status.details(), b"details");
        }
    }
}

#[tokio::test]
async fn a_panicking_handler_fails_only_its_call() {
    let _process = common::beside_others().await;
    panicking().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_only_its_call_multi_threaded() {
    let _process = common::beside_others().await;
    panicking().await;
}

async fn panicking() {
    let server = start(echo(&Running::default())).await;
    let conn = Connection::connect(&server.address, DEADLINE)
        .await
        .expect("connect");
    let status = call(&conn, "panic").await.expect_err("panicked");
    assert_eq!(
        (status.code(), status.message()),
        (Code::Internal, "handler panicked")
    );
    assert_eq!(call(&conn, "next").await.expect("call"), "next");
}
