//! Header blocks reach the wire in the order their HPACK encoding changed the peer's dynamic
//! table. An answer's trailers wait behind its DATA when the client's window is spent; if they
//! were encoded at once (adding `grpc-status: 0` to the table) while a later answer's HEADERS,
//! encoded against that table, went out first, the client read an index it did not have yet and
//! closed the connection (grpc-go: "HPACK decode error ... invalid indexed representation index
//! 63"). The client here is h2's, with its default 65,535-byte windows and 4,096-byte table,
//! like grpc-go's 64 KiB connection window.

use crate::common;
use std::time::Duration;

use grpc_lite::grpc;
use grpc_lite::server::{serve, Routes};
use prost::bytes::{Bytes, BytesMut};
use proto::greeter::{Request as Hello, Response as Answer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tonic::Status;

const HELLO: &str = "/go.micro.srv.greeter.Say/Hello";
const DEADLINE: Duration = Duration::from_secs(20);
/// Larger than the client's 65,535-byte connection window: the answer's tail and trailers wait.
const BIG: usize = 70 * 1024;

/// "big" is answered with BIG bytes, anything else is echoed.
fn routes() -> Routes {
    Routes::new().unary(HELLO, |req: Hello| async move {
        let msg = match req.name.as_str() {
            "big" => "x".repeat(BIG),
            _ => req.name,
        };
        Ok::<_, Status>(Answer { msg })
    })
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

/// Sends a call for `name`; returns its response future.
fn send(
    client: &mut h2::client::SendRequest<Bytes>,
    authority: &str,
    name: &str,
) -> h2::client::ResponseFuture {
    let (response, mut body) = client
        .send_request(request(authority), false)
        .expect("send request");
    let frame = grpc::encode(&Hello { name: name.into() });
    body.send_data(frame, true).expect("send body");
    response
}

/// Reads an answer's body (giving the window back as it goes) and trailers: its message.
async fn read(response: http::Response<h2::RecvStream>) -> String {
    let mut body = response.into_body();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body
        .trailers()
        .await
        .expect("trailers")
        .expect("some trailers");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    let mut frames = grpc::Frames::new(grpc::Direction::Response(http::StatusCode::OK));
    frames.push(data.freeze()).expect("gRPC frame");
    let message = frames.finish().expect("complete").expect("a message");
    grpc::decode::<Answer>(message).expect("answer").msg
}

#[tokio::test]
async fn trailers_queued_behind_data_do_not_reorder_the_hpack_table() {
    let _process = common::beside_others().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, routes(), stop.clone()));

    let io = TcpStream::connect(&address).await.expect("connect");
    let (mut client, connection) = h2::client::Builder::new()
        .initial_window_size(65_535)
        .initial_connection_window_size(65_535)
        .header_table_size(4096)
        .handshake::<_, Bytes>(io)
        .await
        .expect("handshake");
    let connection = tokio::spawn(connection);

    // The first answer fills the connection window; its HEADERS arrive, and by then the server
    // has also decided its trailers (they wait behind the DATA the window holds back).
    let first = send(&mut client, &address, "big");
    let first = tokio::time::timeout(DEADLINE, first)
        .await
        .expect("first answer in time")
        .expect("first answer's headers");
    // The second answer's HEADERS go out at once while the first's trailers still wait: they
    // must be decodable with the table as the client has it now.
    let second = send(&mut client, &address, "second");
    let second = tokio::time::timeout(DEADLINE, second)
        .await
        .expect("second answer in time")
        .expect("second answer's headers (an HPACK error ends the connection here)");
    assert_eq!(second.status(), http::StatusCode::OK);

    let first = tokio::time::timeout(DEADLINE, read(first))
        .await
        .expect("first body in time");
    assert_eq!(first.len(), BIG);
    let second = tokio::time::timeout(DEADLINE, read(second))
        .await
        .expect("second body in time");
    assert_eq!(second, "second");
    // A third call on the same connection: the tables still agree.
    let third = send(&mut client, &address, "third");
    let third = tokio::time::timeout(DEADLINE, third)
        .await
        .expect("third answer in time")
        .expect("third answer's headers");
    assert_eq!(read(third).await, "third");

    drop(client);
    stop.cancel();
    let ended = tokio::time::timeout(DEADLINE, connection)
        .await
        .expect("connection ends");
    ended
        .expect("connection task")
        .expect("no connection error");
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("server stops")
        .expect("server task");
}
