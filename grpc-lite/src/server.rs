//! The services' gRPC server: routes of unary handlers only on h2 directly
//! ([`crate::http2::server`]), routes with tonic services on hyper's HTTP/2 connection:
//!
//! ```text
//!   TCP accept (connection cap) ─► hyper http2 connection ─► dispatch on the path `/<Service>/<Method>`
//!        ├─ a unary handler: grpc-timeout? ─► read the frames ─► handler(bytes) ─► frame + trailers
//!        ├─ a tonic service added with `Routes::tonic` (fallback, e.g. generated servers)
//!        └─ nothing: UNIMPLEMENTED (trailers-only)
//! ```
//!
//! With an HTTP handler ([`Routes::http`]) a connection may also speak HTTP/1.1 (hyper-util
//! tells the two apart by the HTTP/2 preface), and requests that are not gRPC go to it: etcd
//! serves its JSON gateway, `/metrics` and `/health` on its gRPC port the same way.
//!
//! It answers as tonic's server did: `content-type: application/grpc`, one DATA frame, trailers
//! `grpc-status: 0`; a failure is a trailers-only response with `grpc-status`, `grpc-message`
//! and `grpc-status-details-bin` (tonic's own encoding of a [`Status`]); a `grpc-timeout` that
//! expires answers CANCELLED `Timeout expired`; malformed frames get tonic's statuses
//! ([`crate::grpc`]). tonic's server stack (its tower layers, the axum router behind its
//! `Routes`, a boxed body per message) is what this replaces: per request it cost more than the
//! handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prost::bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::grpc::{self, Direction, Frames};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The body of a plain HTTP answer ([`Routes::http`]).
pub type HttpBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers the requests that are not gRPC: HTTP/1.x requests, and HTTP/2 requests without a
/// `application/grpc` content type (etcd serves its JSON gateway and `/metrics` on the same
/// port as gRPC).
pub type HttpHandler =
    Arc<dyn Fn(Request<Incoming>) -> BoxFuture<Response<HttpBody>> + Send + Sync>;

/// Told of each gRPC call: its path with `None` when it starts, then with its status code when
/// it ends (for metrics such as grpc-go's `grpc_server_started_total` and
/// `grpc_server_handled_total`). A stream ends when its trailers are sent.
pub type Observer = Arc<dyn Fn(&str, Option<tonic::Code>) + Send + Sync>;

/// A unary method on encoded messages: the request's headers (its metadata) and message
/// (without prefix) in, the response as one gRPC frame ([`grpc::encode`]) or a status out.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, headers: HeaderMap, message: Bytes) -> BoxFuture<Result<Bytes, Status>>;
}

/// An async function on prost messages as a [`Handler`]; its error (e.g. a [`crate::Error`])
/// becomes the status.
struct Unary<F, Req, Resp> {
    f: Arc<F>,
    _types: std::marker::PhantomData<fn(Req) -> Resp>,
}

impl<F, Req, Resp, E, Fut> Handler for Unary<F, Req, Resp>
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
    E: Into<Status>,
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    fn call(&self, _headers: HeaderMap, message: Bytes) -> BoxFuture<Result<Bytes, Status>> {
        let request = grpc::decode::<Req>(message);
        let f = Arc::clone(&self.f);
        Box::pin(async move {
            let response = f(request?).await.map_err(Into::into)?;
            Ok(grpc::encode(&response))
        })
    }
}

/// What a server answers: unary handlers by gRPC path, and optionally tonic services for every
/// other path.
#[derive(Clone)]
pub struct Routes {
    pub(crate) handlers: HashMap<String, Arc<dyn Handler>>,
    fallback: Option<tonic::service::Routes>,
    /// Largest request message the handlers accept (tonic's `max_decoding_message_size`).
    pub(crate) max_message: usize,
    /// The answer to a call whose `grpc-timeout` expires (tonic's by default).
    pub(crate) expired: fn() -> Status,
    /// Plain HTTP requests; without it every connection is HTTP/2.
    http: Option<HttpHandler>,
    observer: Option<Observer>,
}

/// tonic's answer to an expired `grpc-timeout`.
fn tonic_expired() -> Status {
    Status::cancelled("Timeout expired")
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            handlers: HashMap::new(),
            fallback: None,
            max_message: grpc::MAX_MESSAGE_SIZE,
            expired: tonic_expired,
            http: None,
            observer: None,
        }
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut paths: Vec<_> = self.handlers.keys().collect();
        paths.sort();
        f.debug_struct("Routes")
            .field("unary", &paths)
            .field("tonic", &self.fallback.is_some())
            .finish()
    }
}

impl Routes {
    pub fn new() -> Self {
        Routes::default()
    }

    /// Serves `path` (`/go.micro.srv.greeter.Say/Hello`) with an async function of the decoded
    /// request; its error is sent as a status (a [`crate::Error`] as go-micro's JSON).
    pub fn unary<F, Req, Resp, E, Fut>(self, path: impl Into<String>, f: F) -> Self
    where
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, E>> + Send + 'static,
        E: Into<Status>,
        Req: prost::Message + Default + 'static,
        Resp: prost::Message + 'static,
    {
        self.handler(
            path,
            Arc::new(Unary {
                f: Arc::new(f),
                _types: std::marker::PhantomData,
            }),
        )
    }

    /// Refuses request messages over `bytes` to the unary handlers, with tonic's OUT_OF_RANGE
    /// (default [`grpc::MAX_MESSAGE_SIZE`]); tonic services keep their own limits.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// What a call whose `grpc-timeout` expires is answered, instead of tonic's CANCELLED
    /// `Timeout expired` (an etcd server answers DEADLINE_EXCEEDED, as grpc-go does).
    pub fn on_deadline(mut self, expired: fn() -> Status) -> Self {
        self.expired = expired;
        self
    }

    /// Serves the requests that are not gRPC with `handler`: the connections then speak
    /// HTTP/1.1 or HTTP/2 as the client starts (hyper-util's auto detection), on hyper.
    pub fn http(mut self, handler: HttpHandler) -> Self {
        self.http = Some(handler);
        self
    }

    /// Tells `observer` how every gRPC call ended.
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Serves `path` with `handler`.
    pub fn handler(mut self, path: impl Into<String>, handler: Arc<dyn Handler>) -> Self {
        self.handlers.insert(path.into(), handler);
        self
    }

    /// Adds a tonic service (e.g. a generated `SayServer`), for the paths no handler serves.
    pub fn tonic<S>(mut self, svc: S) -> Self
    where
        S: tonic::codegen::Service<
                Request<tonic::body::Body>,
                Response = Response<tonic::body::Body>,
                Error = Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.fallback = Some(match self.fallback.take() {
            Some(routes) => routes.add_service(svc),
            None => tonic::service::Routes::new(svc),
        });
        self
    }

    /// Both sets of routes (`other`'s handler wins on a path both serve).
    pub fn merge(mut self, other: Routes) -> Self {
        self.handlers.extend(other.handlers);
        self.fallback = match (self.fallback, other.fallback) {
            (Some(a), Some(b)) => {
                // Both answer UNIMPLEMENTED for unknown paths; axum refuses two fallbacks.
                let b = b.into_axum_router().reset_fallback();
                let router = a.into_axum_router().merge(b);
                Some(tonic::service::Routes::from(router))
            }
            (a, b) => a.or(b),
        };
        self.http = other.http.or(self.http);
        self.observer = other.observer.or(self.observer);
        self
    }

    /// The paths served by unary handlers.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

impl From<tonic::service::Routes> for Routes {
    fn from(routes: tonic::service::Routes) -> Self {
        Routes {
            fallback: Some(routes),
            ..Routes::default()
        }
    }
}

/// A response body: one gRPC frame then `grpc-status: 0`, nothing (trailers-only responses),
/// or a tonic service's body.
#[derive(Debug, Default)]
pub struct ResponseBody(Kind);

#[derive(Debug, Default)]
enum Kind {
    #[default]
    Empty,
    Message {
        frame: Option<Bytes>,
        trailers: bool,
    },
    Tonic(tonic::body::Body, Option<Watched>),
    Http(HttpBody),
}

/// A streamed gRPC answer whose status the observer is told when its trailers pass.
struct Watched {
    path: String,
    observer: Observer,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").field("path", &self.path).finish()
    }
}

impl Watched {
    fn tell(self, code: tonic::Code) {
        (self.observer)(&self.path, Some(code));
        std::mem::forget(self);
    }
}

/// A stream dropped before its trailers (the client reset it, the connection broke) ends
/// CANCELLED, as grpc-go counts it.
impl Drop for Watched {
    fn drop(&mut self) {
        (self.observer)(&self.path, Some(tonic::Code::Cancelled));
    }
}

impl ResponseBody {
    fn message(frame: Bytes) -> Self {
        ResponseBody(Kind::Message {
            frame: Some(frame),
            trailers: true,
        })
    }
}

fn ok_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert(grpc::GRPC_STATUS, HeaderValue::from_static("0"));
    trailers
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match &mut self.0 {
            Kind::Empty => Poll::Ready(None),
            Kind::Message { frame, trailers } => {
                if let Some(data) = frame.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if std::mem::take(trailers) {
                    return Poll::Ready(Some(Ok(Frame::trailers(ok_trailers()))));
                }
                Poll::Ready(None)
            }
            Kind::Tonic(body, watched) => {
                let polled = Pin::new(body).poll_frame(cx);
                if watched.is_some() {
                    let code = match &polled {
                        Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(|t| {
                            grpc::status_from_headers(t)
                                .map(|s| s.code())
                                .unwrap_or(tonic::Code::Ok)
                        }),
                        Poll::Ready(Some(Err(status))) => Some(status.code()),
                        Poll::Ready(None) => Some(tonic::Code::Unknown),
                        Poll::Pending => None,
                    };
                    if let (Some(code), Some(w)) = (code, watched.take()) {
                        w.tell(code);
                    }
                }
                polled
            }
            Kind::Http(body) => Pin::new(body).poll_frame(cx).map_err(Status::from_error),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Empty => true,
            Kind::Message { frame, trailers } => frame.is_none() && !trailers,
            Kind::Tonic(body, _) => body.is_end_stream(),
            Kind::Http(body) => body.is_end_stream(),
        }
    }

    /// Unknown for a message, as tonic's streaming body: with an exact size hyper would add a
    /// `content-length` header, which tonic's responses did not carry (and which hpack never
    /// indexes, so it would cost a literal per response).
    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Message { .. } => SizeHint::default(),
            Kind::Tonic(body, _) => body.size_hint(),
            Kind::Http(body) => body.size_hint(),
        }
    }
}

/// `status` as a trailers-only response (tonic's `Status::into_http`).
fn status_response(status: Status) -> Response<ResponseBody> {
    status.into_http()
}

fn message_response(frame: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::message(frame));
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, grpc::CONTENT_TYPE);
    response
}

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
struct Dispatch(Arc<Routes>);

impl hyper::service::Service<Request<Incoming>> for Dispatch {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<ResponseBody>, Infallible>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let routes = Arc::clone(&self.0);
        Box::pin(async move { Ok(dispatch(routes, request).await) })
    }
}

/// HTTP/2 settings of the server's connections.
fn builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    // gRPC has no use for `date` (grpc-go sends none); it cost a header per response.
    builder.auto_date_header(false);
    builder
}

/// HTTP/1.1 and HTTP/2 (the latter set as [`builder`]), for routes with an HTTP handler.
fn auto_builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut auto = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    auto.http2()
        .timer(TokioTimer::new())
        .auto_date_header(false);
    auto.http1().timer(TokioTimer::new());
    auto
}

pub use crate::http2::server::Limits;

/// Serves `routes` on `listener` until `shutdown` is cancelled, then closes the listener, lets
/// every connection finish its in-flight calls (HTTP/2 GOAWAY) and returns.
pub async fn serve(listener: TcpListener, routes: Routes, shutdown: CancellationToken) {
    serve_with(listener, routes, Limits::default(), shutdown).await
}

/// [`serve`] with `limits`: routes without tonic services are served on h2 directly (one task
/// per connection, [`crate::http2::server`]) under all of them; routes with tonic services on
/// hyper, under the connection cap.
pub async fn serve_with(
    listener: TcpListener,
    routes: Routes,
    limits: Limits,
    shutdown: CancellationToken,
) {
    serve_inner(listener, routes, limits, None, shutdown).await
}

/// [`serve_with`], each connection first through `tls` when given ([`crate::tls::serve_tls`]).
pub(crate) async fn serve_inner(
    listener: TcpListener,
    routes: Routes,
    limits: Limits,
    tls: Option<crate::tls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let service = Dispatch(Arc::new(routes));
    let builder = builder();
    let auto = auto_builder();
    let connections = Connections::default();
    // At the cap the loop stops accepting: further clients wait in the kernel's backlog.
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    loop {
        let accept = async {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return std::future::pending().await;
            };
            (slot, listener.accept().await)
        };
        let (slot, stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            (slot, accepted) = accept => match accepted {
                Ok((stream, remote)) => (slot, stream, remote),
                Err(error) => {
                    // Out of descriptors and the like: do not spin.
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Small frames both ways: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let closer = connections.closer();
        if let Some(tls) = &tls {
            // The handshake runs in the connection's task, not in the accept loop; a TLS
            // connection is always served on hyper (the h2-only engine wants a TcpStream).
            let (tls, service) = (tls.clone(), service.clone());
            let (auto, builder, timeout) =
                (auto.clone(), builder.clone(), limits.handshake_timeout);
            tokio::spawn(async move {
                if let Some(io) = crate::tls::accept(&tls, stream, remote, timeout).await {
                    serve_hyper(TokioIo::new(io), service, &auto, &builder, closer).await;
                }
                drop(slot);
            });
            continue;
        }
        if service.0.http.is_some() {
            // HTTP/1.1 or HTTP/2, told apart by the client's first bytes (the HTTP/2 preface).
            let connection = auto
                .serve_connection(TokioIo::new(stream), service.clone())
                .into_owned();
            tokio::spawn(async move {
                closer.serve(connection, |c| c.graceful_shutdown()).await;
                drop(slot);
            });
            continue;
        }
        if service.0.fallback.is_none() && service.0.observer.is_none() {
            let routes = Arc::clone(&service.0);
            let limits = Arc::clone(&limits);
            tokio::spawn(async move {
                crate::http2::server::serve_connection(stream, routes, limits, closer).await;
                drop(slot);
            });
            continue;
        }
        let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
        tokio::spawn(async move {
            closer.serve(connection, |c| c.graceful_shutdown()).await;
            drop(slot);
        });
    }
    drop(listener);
    connections.drain().await;
}

/// Serves one connection (any byte stream, e.g. TLS) on hyper: HTTP/1.1 or HTTP/2 when the
/// routes have an HTTP handler, else HTTP/2.
async fn serve_hyper<I>(
    io: TokioIo<I>,
    service: Dispatch,
    auto: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    builder: &http2::Builder<TokioExecutor>,
    closer: Closer,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if service.0.http.is_some() {
        let connection = auto.serve_connection(io, service).into_owned();
        closer.serve(connection, |c| c.graceful_shutdown()).await;
    } else {
        let connection = builder.serve_connection(io, service);
        closer.serve(connection, |c| c.graceful_shutdown()).await;
    }
}

/// The connections of a server, closed gracefully together ([`Connections::drain`]); the
/// gateway's HTTP server uses it too.
pub struct Connections {
    closing: tokio::sync::watch::Sender<()>,
    watch: tokio::sync::watch::Receiver<()>,
}

/// One connection's view of [`Connections`], to serve it with.
#[derive(Clone)]
pub struct Closer(tokio::sync::watch::Receiver<()>);

impl Default for Connections {
    fn default() -> Self {
        let (closing, watch) = tokio::sync::watch::channel(());
        Connections { closing, watch }
    }
}

impl Connections {
    pub fn closer(&self) -> Closer {
        Closer(self.watch.clone())
    }

    /// Tells every connection to close gracefully and waits until all have ended.
    pub async fn drain(self) {
        let _ = self.closing.send(());
        drop(self.watch);
        self.closing.closed().await;
    }
}

impl Closer {
    /// Returns once [`Connections::drain`] has begun (or the server is gone).
    pub async fn closing(&mut self) {
        let _ = self.0.changed().await;
    }

    /// Runs `connection` until it ends, or until [`Connections::drain`]: then `close` starts
    /// its graceful shutdown and it finishes its in-flight requests.
    pub async fn serve<C, E>(mut self, connection: C, close: impl FnOnce(Pin<&mut C>))
    where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended");
                }
                return;
            }
            _ = self.0.changed() => close(connection.as_mut()),
        }
        if let Err(error) = connection.await {
            tracing::debug!(%error, "connection ended while closing");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::client::conn::http2::SendRequest;
    use proto::greeter::{Request as Hello, Response as Reply};
    use tonic::Code;

    const HELLO: &str = "/go.micro.srv.greeter.Say/Hello";

    /// The answer: HTTP status, headers, the body's bytes, the trailers.
    struct Answer {
        status: http::StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
        trailers: Option<HeaderMap>,
    }

    impl Answer {
        /// The gRPC status, from the trailers or (trailers-only) the headers.
        fn grpc(&self) -> Status {
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
    const BLANK: &str = r#"{"id":"go.micro.srv.greeter","code":400,"detail":"Name cannot be blank","status":"Bad Request"}"#;

    fn blank_name() -> Status {
        Status::with_details(
            Code::InvalidArgument,
            BLANK,
            Bytes::from_static(BLANK.as_bytes()),
        )
    }

    /// A tonic-generated service on another path, served through the fallback.
    struct Tonic;

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
    enum Engine {
        Hyper,
        Own,
    }

    const ENGINES: [Engine; 2] = [Engine::Hyper, Engine::Own];

    async fn start(
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

    async fn call(
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

    fn framed(message: &impl prost::Message) -> Vec<u8> {
        grpc::encode(message).to_vec()
    }

    fn hello(name: &str) -> Vec<u8> {
        framed(&Hello { name: name.into() })
    }

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
            let reply: Reply =
                grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("reply");
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
            let reply: Reply =
                grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("reply");
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
            let (mut send, connection) =
                hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                    .handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let answer = call(&mut send, HELLO, &[], hello("John")).await;
            let reply: Reply =
                grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("reply");
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
            let reply: Reply =
                grpc::decode(Bytes::copy_from_slice(&answer.body[5..])).expect("reply");
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
            let slow =
                tokio::spawn(async move { call(&mut second, HELLO, &[], hello("slow")).await });
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
}
