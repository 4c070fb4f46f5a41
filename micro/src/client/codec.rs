//! One unary gRPC exchange on a connection, as tonic's client did it on the wire: `POST` of one
//! frame with `te: trailers`, `content-type: application/grpc` and `grpc-timeout`; the answer is
//! a trailers-only status or one frame and `grpc-status` trailers ([`crate::grpc`]).
//!
//! The request goes out already encoded (a retry resends the same bytes); every failure is a
//! [`Status`] that `Client` maps as before: a transport failure is UNAVAILABLE ("unreachable").

use http::header::{CONTENT_TYPE, TE};
use http::uri::{Parts, PathAndQuery};
use http::{HeaderValue, Method, Request, Uri, Version};
use http_body_util::BodyExt;
use hyper::client::conn::http2::SendRequest;
use prost::bytes::Bytes;
use tonic::Status;

use super::conn::Body;
use crate::grpc::{self, Direction, Frames};

/// A transport failure, as the status the client reads as "unreachable".
fn unavailable(error: hyper::Error) -> Status {
    Status::unavailable(format!("transport: {error}"))
}

/// `origin` (`http://host:port`) with `path`.
fn uri(origin: &Uri, path: PathAndQuery) -> Result<Uri, Status> {
    let mut parts = Parts::default();
    parts.scheme = origin.scheme().cloned();
    parts.authority = origin.authority().cloned();
    parts.path_and_query = Some(path);
    Uri::from_parts(parts).map_err(|e| Status::internal(format!("request URI: {e}")))
}

/// Sends `frame` (an encoded request) to `path` and reads the one response message.
pub(crate) async fn unary<Resp: prost::Message + Default>(
    send: &mut SendRequest<Body>,
    origin: &Uri,
    path: PathAndQuery,
    frame: Bytes,
    timeout: &HeaderValue,
) -> Result<Resp, Status> {
    let mut request = Request::new(Body::new(frame));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri(origin, path)?;
    *request.version_mut() = Version::HTTP_2;
    let headers = request.headers_mut();
    headers.reserve(3);
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(CONTENT_TYPE, grpc::CONTENT_TYPE);
    headers.insert(grpc::GRPC_TIMEOUT, timeout.clone());

    let response = send.send_request(request).await.map_err(unavailable)?;
    let (head, mut body) = response.into_parts();
    if let Some(status) = grpc::unsupported_encoding(&head.headers) {
        return Err(status);
    }
    // Trailers-only: the status is in the headers and there is no message.
    if let Some(status) = grpc::status_from_headers(&head.headers) {
        return Err(match status.code() {
            tonic::Code::Ok => Status::internal("Missing response message."),
            _ => status,
        });
    }
    let mut frames = Frames::new(Direction::Response(head.status));
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Status::from_error(Box::new(e)))?;
        match frame.into_data() {
            Ok(data) => frames.push(data)?,
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    let message = frames.finish()?;
    grpc::final_status(trailers.as_ref(), head.status)?;
    let message = message.ok_or_else(|| Status::internal("Missing response message."))?;
    grpc::decode(message)
}
