//! The server on both engines (hyper's and h2 driven directly): answers, statuses, the tonic
//! fallback, limits, timeouts and graceful stop.

use std::time::Duration;

use http::Request;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::bytes::Bytes;
use proto::greeter::Response as Reply;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

use super::{serve, Routes};
use crate::grpc;

mod harness;
use harness::*;

#[tokio::test]
async fn answers_one_frame_then_ok_trailers() {
    for engine in ENGINES {
        let (mut send, _stop, _server) = start(engine).await;
        let answer = call(&mut send, HELLO, &[], hello("John")).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.headers["content-type"], "application/grpc");
        assert!(
            answer.headers.get("grpc-status").is_none(),
            "not trailers-only"
        );
        let trailers = answer.trailers.as_ref().expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert!(trailers.get("grpc-message").is_none());
        assert_eq!(answer.body[0], 0, "uncompressed");
        let len = u32::from_be_bytes(answer.body[1..5].try_into().expect("prefix")) as usize;
        assert_eq!(len, answer.body.len() - 5);
        let reply: Reply = grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("reply");
        assert_eq!(reply.msg, "Hello John");
    }
}

#[tokio::test]
async fn a_handlers_error_travels_in_trailers_only() {
    for engine in ENGINES {
        let (mut send, _stop, _server) = start(engine).await;
        let answer = call(&mut send, HELLO, &[], hello("")).await;
        assert_eq!(answer.status, 200);
        assert!(
            answer.body.is_empty() && answer.trailers.is_none(),
            "trailers-only"
        );
        assert_eq!(answer.headers["content-type"], "application/grpc");
        let status = answer.grpc();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), BLANK);
        // Percent-encoded JSON in grpc-message, base64 JSON in the details, as tonic sends them.
        assert!(answer.headers["grpc-message"]
            .to_str()
            .expect("ascii")
            .starts_with("%7B%22id%22"));
        assert_eq!(status.details(), BLANK.as_bytes());
    }
}

#[tokio::test]
async fn unknown_methods_are_unimplemented() {
    for engine in ENGINES {
        let (mut send, _stop, _server) = start(engine).await;
        for path in ["/go.micro.srv.greeter.Say/Nope", "/x", "/"] {
            let answer = call(&mut send, path, &[], hello("John")).await;
            assert_eq!(answer.status, 200, "{path}");
            assert_eq!(answer.grpc().code(), Code::Unimplemented, "{path}");
        }
        // A unary handler wins over a tonic service on the same path.
        let answer = call(&mut send, HELLO, &[], hello("x")).await;
        let reply: Reply = grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("reply");
        assert_eq!(reply.msg, "Hello x");
    }
}

#[tokio::test]
async fn tonic_services_serve_the_paths_no_handler_serves() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    let only_tonic = Routes::new().tonic(proto::greeter::say_server::SayServer::new(Tonic));
    tokio::spawn(serve(listener, only_tonic, stop.clone()));
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (mut send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let answer = call(&mut send, HELLO, &[], hello("John")).await;
    let reply: Reply = grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("reply");
    assert_eq!(reply.msg, "tonic John");
    let answer = call(&mut send, "/go.micro.srv.greeter.Say/Nope", &[], hello("x")).await;
    assert_eq!(answer.grpc().code(), Code::Unimplemented);
    stop.cancel();
}

/// A second tonic service, for routes holding several.
struct Peer;

use proto::etcdserverpb::cluster_server::{Cluster, ClusterServer};
use proto::etcdserverpb::{MemberListRequest, MemberListResponse, ResponseHeader};

#[tonic::async_trait]
impl Cluster for Peer {
    async fn member_list(
        &self,
        _: tonic::Request<MemberListRequest>,
    ) -> Result<tonic::Response<MemberListResponse>, Status> {
        Ok(tonic::Response::new(MemberListResponse {
            header: Some(ResponseHeader {
                member_id: 7,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

#[tokio::test]
async fn several_tonic_services_added_or_merged() {
    let say = || proto::greeter::say_server::SayServer::new(Tonic);
    let peer = || ClusterServer::new(Peer);
    for routes in [
        Routes::new().tonic(say()).tonic(peer()),
        Routes::new()
            .tonic(say())
            .merge(Routes::new().tonic(peer())),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, routes, stop.clone()));
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let (mut send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let answer = call(&mut send, HELLO, &[], hello("John")).await;
        let reply: Reply = grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("reply");
        assert_eq!(reply.msg, "tonic John");
        let message = framed(&MemberListRequest::default());
        let answer = call(&mut send, "/etcdserverpb.Cluster/MemberList", &[], message).await;
        let reply: MemberListResponse =
            grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("peer reply");
        assert_eq!(reply.header.expect("header").member_id, 7);
        let answer = call(&mut send, "/nope.Nope/Nope", &[], hello("x")).await;
        assert_eq!(answer.grpc().code(), Code::Unimplemented);
        stop.cancel();
    }
}

#[tokio::test]
async fn large_messages_both_ways() {
    // 3 MiB each way: over hyper's default windows (the server must wait for the client's
    // WINDOW_UPDATEs before the rest of its answer goes out).
    let name = "z".repeat(3 * 1024 * 1024);
    for engine in ENGINES {
        let (mut send, _stop, _server) = start(engine).await;
        let answer = tokio::time::timeout(
            Duration::from_secs(20),
            call(&mut send, HELLO, &[], hello(&name)),
        )
        .await
        .unwrap_or_else(|_| panic!("{engine:?}: the large answer stalled"));
        assert_eq!(answer.trailers.expect("trailers")["grpc-status"], "0");
        let reply: Reply = grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("reply");
        assert!(reply.msg == format!("Hello {name}"), "{engine:?}");
    }
}

#[tokio::test]
async fn malformed_frames_get_statuses_not_panics() {
    for engine in ENGINES {
        let (mut send, _stop, _server) = start(engine).await;
        let mut compressed = hello("John");
        compressed[0] = 1;
        let mut bad_flag = hello("John");
        bad_flag[0] = 9;
        let mut truncated = hello("John");
        truncated.pop();
        let mut oversized = vec![0u8];
        oversized.extend_from_slice(&(grpc::MAX_MESSAGE_SIZE as u32 + 1).to_be_bytes());
        // Field 1 as a length-delimited string whose length runs past the end.
        let not_protobuf = vec![0, 0, 0, 0, 2, 0x0a, 0x05];
        for (what, body, code, message) in [
            (
                "compressed flag",
                compressed,
                Code::Internal,
                "compressed-flag",
            ),
            (
                "unknown flag",
                bad_flag,
                Code::Internal,
                "invalid compression flag: 9",
            ),
            ("truncated", truncated, Code::Internal, "Unexpected EOF"),
            ("oversized", oversized, Code::OutOfRange, "too large"),
            (
                "empty",
                Vec::new(),
                Code::Internal,
                "Missing request message.",
            ),
            (
                "half a prefix",
                vec![0, 0],
                Code::Internal,
                "Unexpected EOF",
            ),
            ("not protobuf", not_protobuf, Code::Internal, ""),
        ] {
            let answer = call(&mut send, HELLO, &[], body).await;
            let status = answer.grpc();
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert!(status.message().contains(message), "{what}: {status:?}");
        }
        let answer = call(
            &mut send,
            HELLO,
            &[("grpc-encoding", "gzip")],
            hello("John"),
        )
        .await;
        assert_eq!(answer.grpc().code(), Code::Unimplemented);
        let answer = call(
            &mut send,
            HELLO,
            &[("grpc-encoding", "identity")],
            hello("J"),
        )
        .await;
        assert_eq!(answer.trailers.expect("trailers")["grpc-status"], "0");
        // The server is still serving the same connection.
        let answer = call(&mut send, HELLO, &[], hello("again")).await;
        assert_eq!(answer.trailers.expect("trailers")["grpc-status"], "0");
    }
}

#[tokio::test]
async fn grpc_timeout_cancels_like_tonic() {
    for engine in ENGINES {
        let (mut send, _stop, _server) = start(engine).await;
        let started = std::time::Instant::now();
        let answer = call(&mut send, HELLO, &[("grpc-timeout", "100m")], hello("slow")).await;
        let status = answer.grpc();
        assert_eq!(
            (status.code(), status.message()),
            (Code::Cancelled, "Timeout expired")
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // A malformed timeout is ignored, as tonic does; a roomy one lets the call finish.
        let answer = call(&mut send, HELLO, &[("grpc-timeout", "bogus")], hello("a")).await;
        assert_eq!(answer.trailers.expect("trailers")["grpc-status"], "0");
        let answer = call(&mut send, HELLO, &[("grpc-timeout", "5S")], hello("a")).await;
        assert_eq!(answer.trailers.expect("trailers")["grpc-status"], "0");
    }
}

#[tokio::test]
async fn stopping_lets_in_flight_calls_finish() {
    for engine in ENGINES {
        let (mut send, stop, server) = start(engine).await;
        let mut second = send.clone();
        let slow = tokio::spawn(async move { call(&mut second, HELLO, &[], hello("slow")).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
        let answer = slow.await.expect("join");
        assert_eq!(answer.trailers.expect("trailers")["grpc-status"], "0");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server stops once the call is done")
            .expect("join");
        assert!(
            send.ready().await.is_err() || send.is_closed() || {
                // The connection may still look open; a new call must not be served.
                let request = Request::post(format!("http://localhost{HELLO}"))
                    .body(Full::new(Bytes::from(hello("late"))))
                    .expect("request");
                send.send_request(request).await.is_err()
            }
        );
    }
}
