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
//!
//! Here the routes (unary handlers by path, tonic services, limits, HTTP handler, observer);
//! `dispatch.rs` answers one request, `body.rs` is the response body, `serve.rs` the accept loop
//! and the connections' graceful close; `tests.rs` runs on both engines (`tests/harness.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use prost::bytes::Bytes;
use tonic::Status;

use crate::grpc;

mod body;
mod dispatch;
mod serve;
#[cfg(test)]
mod tests;

pub use crate::http2::server::Limits;
pub use body::ResponseBody;
pub(crate) use serve::serve_inner;
pub use serve::{serve, serve_with, Closer, Connections};

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
