//! One unary gRPC exchange on a connection, as tonic's client did it on the wire: `POST` of one
//! frame with `te: trailers`, `content-type: application/grpc` and `grpc-timeout`; the answer is
//! a trailers-only status or one frame and `grpc-status` trailers ([`crate::grpc`]).
//!
//! The request goes out already encoded (a retry resends the same bytes); every failure is a
//! [`Status`] that `Client` maps as before: a transport failure is UNAVAILABLE ("unreachable").

use std::sync::Arc;

use grpc_lite::http2::client::Connection;
use http::HeaderMap;
use prost::bytes::Bytes;
use tonic::Status;

use crate::grpc;

/// The headers every call sends after the pseudo-headers.
pub(crate) fn call_headers(timeout: &http::HeaderValue) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    headers.insert(http::header::CONTENT_TYPE, grpc::CONTENT_TYPE);
    headers.insert(grpc::GRPC_TIMEOUT, timeout.clone());
    headers
}

/// Sends `frame` (an encoded request) to `path` and reads the one response message, still
/// encoded (the client's layers see bytes; `Client::call` decodes).
pub(crate) async fn unary(
    connection: &Connection,
    path: &str,
    frame: Bytes,
    headers: &Arc<HeaderMap>,
) -> Result<Bytes, Status> {
    let reply = connection
        .unary(path.to_owned(), Arc::clone(headers), frame)
        .await?;
    if let Some(status) = grpc::unsupported_encoding(&reply.headers) {
        return Err(status);
    }
    // Trailers-only: the status is in the headers and there is no message.
    if let Some(status) = grpc::status_from_headers(&reply.headers) {
        return Err(match status.code() {
            tonic::Code::Ok => Status::internal("Missing response message."),
            _ => status,
        });
    }
    let message = reply.message?;
    grpc::final_status(reply.trailers.as_ref(), reply.status)?;
    message.ok_or_else(|| Status::internal("Missing response message."))
}
