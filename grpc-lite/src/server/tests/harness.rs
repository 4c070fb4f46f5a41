//! The tests' server and client: routes with a unary handler (and a tonic service on hyper's
//! engine), served on a local port, called over a hyper HTTP/2 client connection.

use std::time::Duration;

use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::bytes::Bytes;
use proto::greeter::{Request as Hello, Response as Reply};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

use crate::grpc;
use crate::server::{serve, Routes};

pub(super) const HELLO: &str = "/go.micro.srv.greeter.Say/Hello";

/// The answer: HTTP status, headers, the body's bytes, the trailers.
pub(super) struct Answer {
    pub(super) status: http::StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
    pub(super) trailers: Option<HeaderMap>,
}

impl Answer {
    /// The gRPC status, from the trailers or (trailers-only) the headers.
    pub(super) fn grpc(&self) -> Status {
        let map = self.trailers.as_ref().unwrap_or(&self.headers);
        grpc::status_from_headers(map).expect("a grpc-status")
    }
}

fn routes() -> Routes {
    unary_routes().tonic(proto::greeter::say_server::SayServer::new(Tonic))
}

fn unary_routes() -> Routes {
    Routes::new().unary(HELLO, |req: Hello| async move {
        match req.name.as_str() {
            "" => Err(blank_name()),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok(Reply { msg: "late".into() })
            }
            name => Ok(Reply {
                msg: format!("Hello {name}"),
            }),
        }
    })
}

/// go-micro's error JSON, carried as micro's `Error` carries it (message and details).
pub(super) const BLANK: &str = r#"{"id":"go.micro.srv.greeter","code":400,"detail":"Name cannot be blank","status":"Bad Request"}"#;

fn blank_name() -> Status {
    Status::with_details(
        Code::InvalidArgument,
        BLANK,
        Bytes::from_static(BLANK.as_bytes()),
    )
}

/// A tonic-generated service on another path, served through the fallback.
pub(super) struct Tonic;

#[tonic::async_trait]
impl proto::greeter::say_server::Say for Tonic {
    async fn hello(
        &self,
        request: tonic::Request<Hello>,
    ) -> Result<tonic::Response<Reply>, Status> {
        Ok(tonic::Response::new(Reply {
            msg: format!("tonic {}", request.into_inner().name),
        }))
    }
}

/// Which connection serves the routes: hyper's (routes with a tonic service) or h2 driven
/// directly (unary handlers only). Each test of the unary handlers runs on both.
#[derive(Debug, Clone, Copy)]
pub(super) enum Engine {
    Hyper,
    Own,
}

pub(super) const ENGINES: [Engine; 2] = [Engine::Hyper, Engine::Own];

pub(super) async fn start(
    engine: Engine,
) -> (
    SendRequest<Full<Bytes>>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    let routes = match engine {
        Engine::Hyper => routes(),
        Engine::Own => unary_routes(),
    };
    let server = tokio::spawn(serve(listener, routes, stop.clone()));
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    (send, stop, server)
}

pub(super) async fn call(
    send: &mut SendRequest<Full<Bytes>>,
    path: &str,
    headers: &[(&'static str, &'static str)],
    body: Vec<u8>,
) -> Answer {
    let mut request = Request::post(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    send.ready().await.expect("ready");
    let response = send.send_request(request).await.expect("response");
    let (head, mut incoming) = response.into_parts();
    let mut body = Vec::new();
    let mut trailers = None;
    while let Some(frame) = incoming.frame().await {
        let frame = frame.expect("frame");
        match frame.into_data() {
            Ok(data) => body.extend_from_slice(&data),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    Answer {
        status: head.status,
        headers: head.headers,
        body,
        trailers,
    }
}

pub(super) fn framed(message: &impl prost::Message) -> Vec<u8> {
    grpc::encode(message).to_vec()
}

pub(super) fn hello(name: &str) -> Vec<u8> {
    framed(&Hello { name: name.into() })
}
