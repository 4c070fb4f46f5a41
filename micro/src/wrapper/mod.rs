//! Middleware, as go-micro's wrappers: tower layers around every unary call, on the client
//! ([`crate::Client::layer`]) and on the server ([`crate::Service::layer`]).
//!
//! ```text
//!   Client::call ─► [client layers, last added outermost] ─► selector + node attempts ─► wire
//!   wire ─► grpc-lite ─► [metrics] ─► [server layers, last added outermost] ─► handler
//! ```
//!
//! A layer is any `tower::Layer` whose service takes a [`ClientCall`] (answering the encoded
//! response, or a go-micro [`crate::Error`]) or a [`ServerCall`] (answering the encoded
//! response frame, or a [`tonic::Status`]). Shipped: [`Logging`] and
//! [`crate::metrics::Metrics`] (both sides), [`Retry`] with exponential backoff and
//! [`Breaker`] (circuit breaker) on the client. Streams are not wrapped.

mod breaker;
mod logging;
mod retry;

use std::sync::Arc;

use http::HeaderMap;
use prost::bytes::Bytes;
use tonic::Status;
use tower::util::BoxCloneSyncService;

pub use breaker::{Breaker, BreakerOptions};
pub use logging::Logging;
pub use retry::{Retry, RetryOptions};

/// One unary call as a client layer sees it.
#[derive(Debug, Clone)]
pub struct ClientCall {
    /// The callee: `go.micro.srv.greeter`.
    pub service: Arc<str>,
    /// `Say.Hello`.
    pub endpoint: Arc<str>,
    /// The request as one gRPC frame (sent as is, and again on a retry).
    pub message: Bytes,
}

/// One unary call as a server layer sees it.
#[derive(Debug, Clone)]
pub struct ServerCall {
    /// The service answering: `go.micro.srv.greeter`.
    pub service: Arc<str>,
    /// `Say.Hello`.
    pub endpoint: Arc<str>,
    /// The request's metadata.
    pub headers: HeaderMap,
    /// The request message (without gRPC prefix).
    pub message: Bytes,
}

/// The client's call chain: an encoded request in, the encoded response message out.
pub type ClientStack = BoxCloneSyncService<ClientCall, Bytes, crate::Error>;

/// A server handler's chain: the response frame out, or the status sent.
pub type ServerStack = BoxCloneSyncService<ServerCall, Bytes, Status>;

/// What the shipped layers need of a call of either side.
pub trait Call {
    /// `client` or `server`.
    const SIDE: &'static str;
    fn service(&self) -> &str;
    fn endpoint(&self) -> &str;
}

impl Call for ClientCall {
    const SIDE: &'static str = "client";
    fn service(&self) -> &str {
        &self.service
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Call for ServerCall {
    const SIDE: &'static str = "server";
    fn service(&self) -> &str {
        &self.service
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// A layer stored to be applied later (once per server handler, or once to the client).
pub(crate) type StoredLayer<S> = Arc<dyn Fn(S) -> S + Send + Sync>;

/// Stores `layer` so it can wrap a boxed stack.
pub(crate) fn store<L, Req, Resp, E>(layer: L) -> StoredLayer<BoxCloneSyncService<Req, Resp, E>>
where
    L: tower::Layer<BoxCloneSyncService<Req, Resp, E>> + Send + Sync + 'static,
    L::Service: tower::Service<Req, Response = Resp, Error = E> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<Req>>::Future: Send + 'static,
    Req: 'static,
    Resp: 'static,
    E: 'static,
{
    Arc::new(move |inner| BoxCloneSyncService::new(layer.layer(inner)))
}
