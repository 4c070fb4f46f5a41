//! Streaming RPCs (go-micro's `client.Stream` and stream handlers), on tonic's streaming
//! server and client: grpc-lite serves unary calls only, and routes with a streaming method
//! are served on hyper with tonic's services as the fallback (`Routes::tonic`).
//!
//! ```text
//!   server: /<service>.Say/List ─► axum route ─► tonic::server::Grpc (ProstCodec) ─► handler
//!   client: Client::server_stream ─► selector ─► tonic Channel (one per node) ─► Grpc::streaming
//! ```
//!
//! Server layers (`crate::wrapper`) wrap unary calls only; a stream is not retried.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt as _;
use tonic::Status;

pub use futures::Stream;

/// A stream of messages or go-micro errors, both ways: what a stream handler is given and
/// returns, and what a streaming client call yields.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, crate::Error>> + Send>>;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type HttpRequest = http::Request<tonic::body::Body>;
type HttpResponse = http::Response<tonic::body::Body>;

/// One streaming method, served from an HTTP request (the path is the route's).
pub(crate) type StreamRoute = Arc<dyn Fn(HttpRequest) -> BoxFuture<HttpResponse> + Send + Sync>;

/// The id of errors on a stream the caller sent that did not carry go-micro's own.
const SERVER_ID: &str = "go.micro.server";

/// Outgoing messages for tonic: go-micro errors as their statuses.
fn outgoing<T: Send + 'static>(
    stream: BoxStream<T>,
) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
    Box::pin(stream.map(|item| item.map_err(Status::from)))
}

/// Incoming messages from tonic: statuses as go-micro errors named after `id`.
pub(crate) fn incoming<T: Send + 'static>(stream: tonic::Streaming<T>, id: &str) -> BoxStream<T> {
    let id: Arc<str> = Arc::from(id);
    Box::pin(stream.map(move |item| item.map_err(|s| crate::Error::from_status(&id, &s))))
}

fn codec<Resp, Req>() -> tonic_prost::ProstCodec<Resp, Req> {
    tonic_prost::ProstCodec::default()
}

pub(crate) fn server_streaming<F, Fut, Req, Resp>(_handler: &str, f: F) -> StreamRoute
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<BoxStream<Resp>, crate::Error>> + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |request| {
        let f = Arc::clone(&f);
        Box::pin(async move {
            let service = tower::service_fn(move |request: tonic::Request<Req>| {
                let f = Arc::clone(&f);
                async move {
                    let stream = f(request.into_inner()).await.map_err(Status::from)?;
                    Ok::<_, Status>(tonic::Response::new(outgoing(stream)))
                }
            });
            tonic::server::Grpc::new(codec::<Resp, Req>())
                .server_streaming(service, request)
                .await
        })
    })
}

pub(crate) fn client_streaming<F, Fut, Req, Resp>(_handler: &str, f: F) -> StreamRoute
where
    F: Fn(BoxStream<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, crate::Error>> + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |request| {
        let f = Arc::clone(&f);
        Box::pin(async move {
            let service =
                tower::service_fn(move |request: tonic::Request<tonic::Streaming<Req>>| {
                    let f = Arc::clone(&f);
                    async move {
                        let requests = incoming(request.into_inner(), SERVER_ID);
                        let response = f(requests).await.map_err(Status::from)?;
                        Ok::<_, Status>(tonic::Response::new(response))
                    }
                });
            tonic::server::Grpc::new(codec::<Resp, Req>())
                .client_streaming(service, request)
                .await
        })
    })
}

pub(crate) fn bidi_streaming<F, Fut, Req, Resp>(_handler: &str, f: F) -> StreamRoute
where
    F: Fn(BoxStream<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<BoxStream<Resp>, crate::Error>> + Send + 'static,
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |request| {
        let f = Arc::clone(&f);
        Box::pin(async move {
            let service =
                tower::service_fn(move |request: tonic::Request<tonic::Streaming<Req>>| {
                    let f = Arc::clone(&f);
                    async move {
                        let requests = incoming(request.into_inner(), SERVER_ID);
                        let stream = f(requests).await.map_err(Status::from)?;
                        Ok::<_, Status>(tonic::Response::new(outgoing(stream)))
                    }
                });
            tonic::server::Grpc::new(codec::<Resp, Req>())
                .streaming(service, request)
                .await
        })
    })
}

/// The tonic routes serving `streams` (`(path, method)`), as grpc-lite's fallback.
pub(crate) fn routes(streams: Vec<(String, StreamRoute)>) -> tonic::service::Routes {
    let mut router = axum::Router::new();
    for (path, route) in streams {
        let service = tower::service_fn(move |request: http::Request<axum::body::Body>| {
            let route = Arc::clone(&route);
            async move { Ok::<_, Infallible>(route(request.map(tonic::body::Body::new)).await) }
        });
        router = router.route_service(&path, service);
    }
    // Unknown paths: UNIMPLEMENTED, as tonic's own routes answer (axum would say 404).
    let unimplemented = tower::service_fn(|_: http::Request<axum::body::Body>| async {
        Ok::<_, Infallible>(Status::unimplemented("").into_http::<tonic::body::Body>())
    });
    tonic::service::Routes::from(router.fallback_service(unimplemented))
}
