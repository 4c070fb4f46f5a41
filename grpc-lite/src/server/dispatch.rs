//! Answering one request: the HTTP handler for what is not gRPC, else a unary handler by path
//! (under the call's `grpc-timeout`), else the tonic services, else UNIMPLEMENTED; the
//! observer is told how each call ended.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use prost::bytes::Bytes;
use tonic::Status;

use super::body::{message_response, status_response, Kind, ResponseBody, Watched};
use super::{BoxFuture, Routes};
use crate::grpc::{self, Direction, Frames};

/// Runs `work` under the request's `grpc-timeout`; on expiry the routes' `expired` status.
async fn with_timeout<T>(
    timeout: Option<Duration>,
    expired: fn() -> Status,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match timeout {
        None => work.await,
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(result) => result,
            Err(_) => Err(expired()),
        },
    }
}

/// The request's one message: its DATA frames through [`Frames`]; a body error is mapped as
/// tonic maps it.
async fn read_message(mut body: Incoming, limit: usize) -> Result<Bytes, Status> {
    let mut frames = Frames::with_limit(Direction::Request, limit);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Status::from_error(Box::new(e)))?;
        if let Ok(data) = frame.into_data() {
            frames.push(data)?;
        }
    }
    frames
        .finish()?
        .ok_or_else(|| Status::internal("Missing request message."))
}

/// Whether `request` is a gRPC call: HTTP/2 with content type `application/grpc[+proto]`.
fn is_grpc(request: &Request<Incoming>) -> bool {
    request.version() == http::Version::HTTP_2
        && request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Answers one request.
async fn dispatch(routes: Arc<Routes>, request: Request<Incoming>) -> Response<ResponseBody> {
    if let Some(http) = &routes.http {
        if !is_grpc(&request) {
            return http(request)
                .await
                .map(|body| ResponseBody(Kind::Http(body)));
        }
    }
    let Some(observer) = routes.observer.clone() else {
        return dispatch_grpc(routes, request).await;
    };
    let path = request.uri().path().to_owned();
    observer(&path, None);
    let mut response = dispatch_grpc(routes, request).await;
    // A trailers-only answer carries its status in the headers; a stream in its trailers.
    match grpc::status_from_headers(response.headers()) {
        Some(status) => observer(&path, Some(status.code())),
        None => match &mut response.body_mut().0 {
            Kind::Tonic(_, watched) => *watched = Some(Watched { path, observer }),
            _ => observer(&path, Some(tonic::Code::Ok)),
        },
    }
    response
}

/// Answers one gRPC call.
async fn dispatch_grpc(routes: Arc<Routes>, request: Request<Incoming>) -> Response<ResponseBody> {
    let timeout = grpc::parse_timeout(request.headers());
    let Some(handler) = routes.handlers.get(request.uri().path()) else {
        return match routes.fallback.clone() {
            Some(fallback) => call_tonic(fallback, request, timeout, routes.expired).await,
            None => status_response(Status::unimplemented("")),
        };
    };
    let handler = Arc::clone(handler);
    let limit = routes.max_message;
    let work = async move {
        if let Some(status) = grpc::unsupported_encoding(request.headers()) {
            return Err(status);
        }
        let (head, body) = request.into_parts();
        let message = read_message(body, limit).await?;
        handler.call(head.headers, message).await
    };
    match with_timeout(timeout, routes.expired, work).await {
        Ok(frame) => message_response(frame),
        Err(status) => status_response(status),
    }
}

/// Hands a request to the tonic services (under the same `grpc-timeout`).
async fn call_tonic(
    mut routes: tonic::service::Routes,
    request: Request<Incoming>,
    timeout: Option<Duration>,
    expired: fn() -> Status,
) -> Response<ResponseBody> {
    use tonic::codegen::Service as _;
    let request = request.map(tonic::body::Body::new);
    let work = async move {
        let Ok(()) = std::future::poll_fn(|cx| {
            tonic::codegen::Service::<Request<tonic::body::Body>>::poll_ready(&mut routes, cx)
        })
        .await;
        let Ok(response) = routes.call(request).await;
        Ok::<_, Status>(response)
    };
    match with_timeout(timeout, expired, work).await {
        Ok(response) => response.map(|body| ResponseBody(Kind::Tonic(body, None))),
        Err(status) => status_response(status),
    }
}

/// The hyper service of one connection.
#[derive(Clone)]
pub(super) struct Dispatch(pub(super) Arc<Routes>);

impl hyper::service::Service<Request<Incoming>> for Dispatch {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<ResponseBody>, Infallible>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let routes = Arc::clone(&self.0);
        Box::pin(async move { Ok(dispatch(routes, request).await) })
    }
}
