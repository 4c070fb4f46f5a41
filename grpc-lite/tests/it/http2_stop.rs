//! The server's connection lifecycle on h2: a graceful stop delivers every accepted answer in
//! full even while it waits on the client's flow-control window, idle connections are closed,
//! and the connection cap holds further clients back until a slot frees.

use crate::common;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grpc_lite::grpc;
use grpc_lite::http2::client::Connection;
use grpc_lite::server::{serve, serve_with, Limits, Routes};
use http::{HeaderMap, HeaderValue};
use prost::bytes::{Bytes, BytesMut};
use proto::greeter::{Request as Hello, Response as Answer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::Status;

const HELLO: &str = "/go.micro.srv.greeter.Say/Hello";
const DEADLINE: Duration = Duration::from_secs(20);
/// Each answer's message: 16 times the client's 64 KiB windows.
const BIG: usize = 1024 * 1024;

/// "big" is answered with BIG bytes, "pause" after 300 ms, anything else is echoed; `answered`
/// counts the handlers that have returned.
fn routes(answered: Arc<AtomicUsize>) -> Routes {
    Routes::new().unary(HELLO, move |req: Hello| {
        let answered = Arc::clone(&answered);
        async move {
            let msg = match req.name.as_str() {
                "big" => "x".repeat(BIG),
                "pause" => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    req.name
                }
                _ => req.name,
            };
            answered.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Status>(Answer { msg })
        }
    })
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn request(authority: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{authority}{HELLO}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request")
}

/// Reads an answer (giving the window back as it goes): its message and grpc-status.
async fn read(response: h2::client::ResponseFuture) -> (Answer, HeaderMap) {
    let (head, mut body) = response.await.expect("response").into_parts();
    assert_eq!(head.status, 200);
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        body.flow_control()
            .release_capacity(chunk.len())
            .expect("release");
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers").expect("some");
    let answer = grpc::decode(Bytes::from(data.split_off(grpc::PREFIX))).expect("message");
    (answer, trailers)
}

#[tokio::test]
async fn a_stop_delivers_every_accepted_answer_through_a_small_window() {
    let _process = common::beside_others().await;
    let answered = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, routes(Arc::clone(&answered)), stop.clone()));

    // h2's client with 64 KiB windows (grpc-go's and grpc-js's connection window).
    let socket = TcpStream::connect(&address).await.expect("connect");
    let (mut client, connection) = h2::client::Builder::new()
        .initial_window_size(65_535)
        .initial_connection_window_size(65_535)
        .handshake::<_, Bytes>(socket)
        .await
        .expect("handshake");
    let driver = tokio::spawn(connection);
    let mut responses = Vec::new();
    for _ in 0..8 {
        client = client.ready().await.expect("ready");
        let (response, mut body) = client.send_request(request(&address), false).expect("send");
        body.send_data(grpc::encode(&Hello { name: "big".into() }), true)
            .expect("body");
        responses.push(response);
    }
    // Every answer is made and waits on our window (8 MiB against 64 KiB) when the stop comes.
    until("8 answers made", || answered.load(Ordering::SeqCst) == 8).await;
    stop.cancel();
    let reads = responses.into_iter().map(read);
    let answers = tokio::time::timeout(DEADLINE, futures::future::join_all(reads))
        .await
        .expect("every answer arrives");
    for (answer, trailers) in answers {
        assert_eq!(answer.msg.len(), BIG);
        assert_eq!(trailers["grpc-status"], "0");
    }
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("the server stops once everything is delivered")
        .expect("join");
    // The server closed the connection cleanly: h2's driver ends without an error.
    let ended = tokio::time::timeout(DEADLINE, driver)
        .await
        .expect("the connection ends")
        .expect("join");
    assert!(ended.is_ok(), "{ended:?}");
}

fn headers() -> Arc<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert("te", HeaderValue::from_static("trailers"));
    headers.insert("content-type", grpc::CONTENT_TYPE);
    Arc::new(headers)
}

async fn call(conn: &Connection, name: &str) -> Result<String, Status> {
    let frame = grpc::encode(&Hello { name: name.into() });
    let reply = conn.unary(HELLO.into(), headers(), frame).await?;
    if let Some(status) = grpc::status_from_headers(&reply.headers) {
        return Err(status);
    }
    grpc::final_status(reply.trailers.as_ref(), reply.status)?;
    let answer: Answer = grpc::decode(reply.message?.expect("a message"))?;
    Ok(answer.msg)
}

async fn start(limits: Limits) -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let stop = CancellationToken::new();
    let routes = routes(Arc::new(AtomicUsize::new(0)));
    tokio::spawn(serve_with(listener, routes, limits, stop.clone()));
    (address, stop)
}

#[tokio::test]
async fn idle_connections_are_closed_but_not_under_a_call() {
    let _process = common::beside_others().await;
    let limits = Limits {
        idle_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let (address, _stop) = start(limits).await;
    let conn = Connection::connect(&address, DEADLINE)
        .await
        .expect("connect");
    // A call longer than the idle timeout is not cut.
    assert_eq!(call(&conn, "pause").await.expect("call"), "pause");
    assert_eq!(call(&conn, "a").await.expect("call"), "a");
    until("the idle connection is closed", || conn.is_closed()).await;
    // A new connection is served.
    let conn = Connection::connect(&address, DEADLINE)
        .await
        .expect("connect");
    assert_eq!(call(&conn, "b").await.expect("call"), "b");
}

#[tokio::test]
async fn the_connection_cap_holds_clients_back_until_a_slot_frees() {
    let _process = common::beside_others().await;
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let (address, _stop) = start(limits).await;
    let first = Connection::connect(&address, DEADLINE)
        .await
        .expect("connect");
    let second = Connection::connect(&address, DEADLINE)
        .await
        .expect("connect");
    assert_eq!(call(&first, "1").await.expect("call"), "1");
    assert_eq!(call(&second, "2").await.expect("call"), "2");
    // The third waits in the listen backlog: no answer while both slots are taken.
    let third = Connection::connect(&address, DEADLINE)
        .await
        .expect("connect");
    let held = tokio::time::timeout(Duration::from_millis(300), call(&third, "3")).await;
    assert!(held.is_err(), "served beyond the cap: {held:?}");
    // The first goes (its last handle dropped, h2 closes it): the third is served.
    drop(first);
    let served = tokio::time::timeout(DEADLINE, call(&third, "3"))
        .await
        .expect("served once a slot is free");
    assert_eq!(served.expect("call"), "3");
    assert_eq!(call(&second, "2").await.expect("call"), "2");
}
