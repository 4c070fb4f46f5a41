//! What generated code (`micro-build`) mounts on a [`crate::Service`]: one proto service's
//! methods as a [`Mount`], and the endpoint descriptions go-micro registers for them.
//!
//! ```text
//!   register_say_handler(service, impl SayHandler)
//!     └─ Mount "Say": Hello (unary), List (server stream), ...
//!          └─ Service::start: /<service name>.Say/Hello ─► server layers (metrics, user's) ─► handler
//!                             /<service name>.Say/List  ─► tonic's streaming server (no layers)
//! ```
//!
//! The paths are made at start from the name the service registers (go-micro's
//! `/<service>.<Handler>/<Method>`, as its gRPC client sends them), not from the proto
//! package, so one handler can be served under any service name (`--server_name`).

use std::future::Future;
use std::sync::Arc;

use http::HeaderMap;
use prost::bytes::Bytes;
use tonic::Status;

use crate::registry::{Endpoint, Metadata, Value};
use crate::server::Handler;
use crate::stream::{self, StreamRoute};
use crate::wrapper::{ServerCall, ServerStack};

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// One proto service's methods, ready to be served under a service's name.
pub struct Mount {
    /// The proto service's name: `Say`.
    pub(crate) handler: &'static str,
    pub(crate) unary: Vec<(&'static str, Arc<dyn Handler>)>,
    pub(crate) streams: Vec<(&'static str, StreamRoute)>,
    pub(crate) endpoints: Vec<Endpoint>,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("handler", &self.handler)
            .field("unary", &self.unary.iter().map(|m| m.0).collect::<Vec<_>>())
            .field(
                "streams",
                &self.streams.iter().map(|m| m.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Mount {
    /// An empty mount of the proto service `handler` registering `endpoints`.
    pub fn new(handler: &'static str, endpoints: Vec<Endpoint>) -> Self {
        Mount {
            handler,
            unary: Vec::new(),
            streams: Vec::new(),
            endpoints,
        }
    }

    /// `method` as a unary call of `f`; its [`crate::Error`] reaches the caller as go-micro's.
    pub fn unary<F, Fut, Req, Resp>(mut self, method: &'static str, f: F) -> Self
    where
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, crate::Error>> + Send + 'static,
        Req: prost::Message + Default + 'static,
        Resp: prost::Message + 'static,
    {
        let handler = Unary {
            f: Arc::new(f),
            _types: std::marker::PhantomData,
        };
        self.unary.push((method, Arc::new(handler)));
        self
    }

    /// `method` answering one request with a stream.
    pub fn server_stream<F, Fut, Req, Resp>(mut self, method: &'static str, f: F) -> Self
    where
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<stream::BoxStream<Resp>, crate::Error>> + Send + 'static,
        Req: prost::Message + Default + Send + 'static,
        Resp: prost::Message + Send + 'static,
    {
        self.streams
            .push((method, stream::server_streaming(self.handler, f)));
        self
    }

    /// `method` reading a stream of requests, answering one response.
    pub fn client_stream<F, Fut, Req, Resp>(mut self, method: &'static str, f: F) -> Self
    where
        F: Fn(stream::BoxStream<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, crate::Error>> + Send + 'static,
        Req: prost::Message + Default + Send + 'static,
        Resp: prost::Message + Send + 'static,
    {
        self.streams
            .push((method, stream::client_streaming(self.handler, f)));
        self
    }

    /// `method` with streams both ways.
    pub fn bidi_stream<F, Fut, Req, Resp>(mut self, method: &'static str, f: F) -> Self
    where
        F: Fn(stream::BoxStream<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<stream::BoxStream<Resp>, crate::Error>> + Send + 'static,
        Req: prost::Message + Default + Send + 'static,
        Resp: prost::Message + Send + 'static,
    {
        self.streams
            .push((method, stream::bidi_streaming(self.handler, f)));
        self
    }

    /// The proto service's name (`Say`).
    pub fn name(&self) -> &'static str {
        self.handler
    }

    /// The endpoints this mount registers.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }
}

/// A typed async function as grpc-lite's [`Handler`] on encoded messages.
struct Unary<F, Req, Resp> {
    f: Arc<F>,
    _types: std::marker::PhantomData<fn(Req) -> Resp>,
}

impl<F, Fut, Req, Resp> Handler for Unary<F, Req, Resp>
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, crate::Error>> + Send + 'static,
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    fn call(&self, _headers: HeaderMap, message: Bytes) -> BoxFuture<Result<Bytes, Status>> {
        let request = crate::grpc::decode::<Req>(message);
        let f = Arc::clone(&self.f);
        Box::pin(async move {
            let response = f(request?).await.map_err(Status::from)?;
            Ok(crate::grpc::encode(&response))
        })
    }
}

/// A unary handler behind a stack of server layers, as grpc-lite serves it.
pub(crate) struct Layered {
    pub(crate) service: Arc<str>,
    pub(crate) endpoint: Arc<str>,
    pub(crate) stack: ServerStack,
}

impl Handler for Layered {
    fn call(&self, headers: HeaderMap, message: Bytes) -> BoxFuture<Result<Bytes, Status>> {
        use tower::ServiceExt as _;
        let call = ServerCall {
            service: Arc::clone(&self.service),
            endpoint: Arc::clone(&self.endpoint),
            headers,
            message,
        };
        Box::pin(self.stack.clone().oneshot(call))
    }
}

/// The innermost service of a unary stack: the handler itself.
pub(crate) fn innermost(handler: Arc<dyn Handler>) -> ServerStack {
    ServerStack::new(tower::service_fn(move |call: ServerCall| {
        handler.call(call.headers, call.message)
    }))
}

/// A field tree node: `name`, go type `kind`, sub-fields `values` (generated code builds the
/// request and response trees with it).
pub fn value(name: &str, kind: &str, values: Vec<Value>) -> Value {
    Value {
        name: name.to_owned(),
        kind: kind.to_owned(),
        values,
    }
}

/// An endpoint as go-micro registers it: `Handler.Method`, its trees, `stream` metadata.
pub fn endpoint(name: &str, stream: bool, request: Value, response: Value) -> Endpoint {
    let metadata: Metadata = [("stream".to_owned(), stream.to_string())].into();
    Endpoint {
        name: name.to_owned(),
        request: Some(request),
        response: Some(response),
        metadata,
    }
}
