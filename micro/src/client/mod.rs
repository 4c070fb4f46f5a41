//! The RPC client: go-micro's `client.Call` over gRPC.
//!
//! `call("go.micro.srv.greeter", "Say.Hello", req)` picks a node through the [`Selector`], sends
//! `/go.micro.srv.greeter.Say/Hello` on that node's HTTP/2 connection ([`conn`]: one per address,
//! reused, redialled once closed), bounded by the request timeout. A node that cannot be reached (refused, reset, UNAVAILABLE from the
//! transport) is retried on another node, up to `retries` times; an error the service itself
//! returned never is. Every failure is a go-micro [`Error`].

mod codec;
mod conn;
mod stream;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::bytes::Bytes;

use crate::errors::Error;
use crate::selector::{self, Selector};
use crate::wrapper::{ClientCall, ClientStack};

/// The id of errors raised by the client itself (not by a service), as in go-micro.
pub const CLIENT_ID: &str = "go.micro.client";

/// Client settings (go-micro's defaults).
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Bound on one attempt (go-micro: 5 s).
    pub request_timeout: Duration,
    /// Extra attempts on other nodes when a node is unreachable (go-micro: 1).
    pub retries: u32,
    /// Bound on connecting to a node.
    pub dial_timeout: Duration,
    /// HTTP/2 connections per node address (go-micro's `--client_pool_size`); calls take them
    /// in turn. One multiplexes every call; more spread a busy caller's calls over several
    /// connections (and so over several of the callee's connection tasks).
    pub pool_size: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(5),
            retries: 1,
            dial_timeout: Duration::from_secs(1),
            pool_size: 1,
        }
    }
}

/// An RPC client; clones share the connections and counters.
#[derive(Debug, Clone)]
pub struct Client {
    selector: Selector,
    options: ClientOptions,
    /// The headers of every call (`te`, `content-type`, `grpc-timeout`: the request timeout).
    headers: Arc<http::HeaderMap>,
    /// `pool_size` independent pools: pool `i` holds each address's `i`-th connection.
    connections: Arc<[conn::Pool]>,
    /// Which pool the next call takes.
    turn: Arc<AtomicUsize>,
    retried: Arc<AtomicU64>,
    /// The layers every unary call goes through (`Client::layer`); none: straight to a node.
    stack: Option<ClientStack>,
    /// tonic channels for streaming calls, by node address.
    channels: Arc<stream::Channels>,
}

/// How one attempt ended.
enum Attempt<T> {
    Done(Result<T, Error>),
    /// The node could not be reached: another may be tried.
    Unreachable(Error),
}

/// The gRPC path of a go-micro endpoint: `Say.Hello` of `S` → `/S.Say/Hello`. Built on every
/// call, so without `format!`; refused if it would not be a plain path (visible ASCII, no `?`
/// or `#`).
pub fn grpc_path(service: &str, endpoint: &str) -> Result<String, Error> {
    let bad = || Error::bad_request(CLIENT_ID, format!("invalid endpoint {endpoint:?}"));
    let (handler, method) = endpoint.rsplit_once('.').ok_or_else(bad)?;
    if handler.is_empty() || method.is_empty() {
        return Err(bad());
    }
    let mut path = String::with_capacity(service.len() + endpoint.len() + 2);
    for part in ["/", service, ".", handler, "/", method] {
        path.push_str(part);
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        return Err(bad());
    }
    Ok(path)
}

impl Client {
    pub fn new(selector: Selector, options: ClientOptions) -> Self {
        Client {
            selector,
            headers: Arc::new(codec::call_headers(&crate::grpc::timeout_value(
                options.request_timeout,
            ))),
            options,
            connections: (0..options.pool_size.max(1))
                .map(|_| conn::Pool::default())
                .collect(),
            turn: Arc::default(),
            retried: Arc::default(),
            stack: None,
            channels: Arc::default(),
        }
    }

    /// Wraps every unary call of this client (and of its clones made afterwards) in `layer`
    /// (go-micro's `client.Wrap`); the last layer added is the outermost. See
    /// [`crate::wrapper`].
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<ClientStack> + Send + Sync + 'static,
        L::Service: tower::Service<ClientCall, Response = Bytes, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<ClientCall>>::Future: Send + 'static,
    {
        let inner = match self.stack.take() {
            Some(stack) => stack,
            None => {
                let client = self.clone();
                ClientStack::new(tower::service_fn(move |call: ClientCall| {
                    let client = client.clone();
                    async move { client.call_unwrapped(call).await }
                }))
            }
        };
        self.stack = Some(ClientStack::new(layer.layer(inner)));
        self
    }

    /// The pool of this call: the only one, or the next in turn.
    fn pool(&self) -> &conn::Pool {
        let index = match self.connections.len() {
            1 => 0,
            n => self.turn.fetch_add(1, Ordering::Relaxed) % n,
        };
        &self.connections[index]
    }

    pub fn selector(&self) -> &Selector {
        &self.selector
    }

    /// How many attempts were repeated on another node because one was unreachable.
    pub fn retries(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    /// Calls `endpoint` (`Handler.Method`) of `service` with `request`.
    pub async fn call<Req, Resp>(
        &self,
        service: &str,
        endpoint: &str,
        request: Req,
    ) -> Result<Resp, Error>
    where
        Req: prost::Message,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        // Encoded once, as a gRPC frame: a retry resends the same bytes.
        let call = ClientCall {
            service: Arc::from(service),
            endpoint: Arc::from(endpoint),
            message: crate::grpc::encode(&request),
        };
        let response = match &self.stack {
            Some(stack) => {
                use tower::ServiceExt as _;
                stack.clone().oneshot(call).await?
            }
            None => self.call_unwrapped(call).await?,
        };
        crate::grpc::decode(response).map_err(|status| Error::from_status(service, &status))
    }

    /// One call without the layers: a node from the selector, another one if it cannot be
    /// reached (up to `retries` times).
    async fn call_unwrapped(&self, call: ClientCall) -> Result<Bytes, Error> {
        let service = &*call.service;
        let request = call.message;
        let path = grpc_path(service, &call.endpoint)?;
        let mut tried: Vec<String> = Vec::new();
        let mut last = None;
        let pool = self.pool();
        for attempt in 0..=self.options.retries {
            if attempt > 0 {
                self.retried.fetch_add(1, Ordering::Relaxed);
            }
            let picked = self
                .selector
                .select_with(service, &tried, |n| (n.id.clone(), n.address.clone()))
                .await;
            let (id, address) = match picked {
                Ok(node) => node,
                Err(e) => return Err(last.unwrap_or_else(|| selection_error(service, e))),
            };
            match self
                .attempt(pool, &address, &path, request.clone(), service)
                .await
            {
                Attempt::Done(result) => return result,
                Attempt::Unreachable(error) => {
                    tracing::debug!(service, node = %id, %error, "node unreachable");
                    pool.forget(&address);
                    last = Some(error);
                }
            }
            tried.push(id);
        }
        Err(last.unwrap_or_else(|| Error::internal_server_error(CLIENT_ID, "no attempt made")))
    }

    async fn attempt(
        &self,
        pool: &conn::Pool,
        address: &str,
        path: &str,
        request: Bytes,
        service: &str,
    ) -> Attempt<Bytes> {
        let timeout = self.options.request_timeout;
        let dial_timeout = self.options.dial_timeout;
        let call = async move {
            let connection = pool.get(address, dial_timeout).await.map_err(|e| {
                Attempt::<Bytes>::Unreachable(Error::internal_server_error(
                    CLIENT_ID,
                    e.to_string(),
                ))
            })?;
            codec::unary(&connection, path, request, &self.headers)
                .await
                .map_err(|status| {
                    // A deadline enforced by the server (it answers CANCELLED "Timeout expired",
                    // as tonic's does) is the client's timeout, as go-micro reports it.
                    let deadline = matches!(
                        status.code(),
                        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                    ) && !Error::is_carried_by(&status);
                    if deadline {
                        return Attempt::Done(Err(Error::timeout(CLIENT_ID, status.message())));
                    }
                    let error = Error::from_status(service, &status);
                    if status.code() == tonic::Code::Unavailable && !Error::is_carried_by(&status) {
                        Attempt::Unreachable(error)
                    } else {
                        Attempt::Done(Err(error))
                    }
                })
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(response)) => Attempt::Done(Ok(response)),
            Ok(Err(attempt)) => attempt,
            Err(_) => Attempt::Done(Err(Error::timeout(
                CLIENT_ID,
                format!("call {service} timed out after {timeout:?}"),
            ))),
        }
    }
}

/// go-micro's client errors for a failed selection, in its words: `service
/// go.micro.srv.greeter: not found` (the selector's error already names the service, so it is
/// not named twice), `error getting next go.micro.srv.greeter node: none available`.
///
/// Both are go-micro's InternalServerError (500), as its client answers them.
fn selection_error(service: &str, error: selector::Error) -> Error {
    match error {
        selector::Error::NotFound(_) => Error::internal_server_error(CLIENT_ID, error.to_string()),
        selector::Error::NoneAvailable(_) => Error::internal_server_error(
            CLIENT_ID,
            format!("error getting next {service} node: none available"),
        ),
        selector::Error::Registry(e) => {
            Error::internal_server_error(CLIENT_ID, format!("error selecting {service} node: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_micro_naming() {
        let path = grpc_path("go.micro.srv.greeter", "Say.Hello").expect("valid");
        assert_eq!(path, "/go.micro.srv.greeter.Say/Hello");
        assert!(grpc_path("s", "Hello").is_err());
        assert!(grpc_path("s", ".Hello").is_err());
        assert!(grpc_path("a b", "Say.Hello").is_err());
        assert!(grpc_path("s", "Say.Hello?x").is_err());
    }

    #[test]
    fn selection_errors_are_go_micros_without_repetition() {
        let svc = "go.micro.srv.greeter";
        let e = selection_error(svc, selector::Error::NotFound(svc.to_owned()));
        assert_eq!(
            e.to_json(),
            r#"{"id":"go.micro.client","code":500,"detail":"service go.micro.srv.greeter: not found","status":"Internal Server Error"}"#
        );
        let e = selection_error(svc, selector::Error::NoneAvailable(svc.to_owned()));
        assert_eq!(
            (e.code, e.detail.as_str()),
            (
                500,
                "error getting next go.micro.srv.greeter node: none available"
            )
        );
    }

    #[tokio::test]
    async fn pool_size_gives_that_many_pools_taken_in_turn() {
        let registry =
            crate::Registry::new(&crate::RegistryOptions::new(vec!["127.0.0.1:1".to_owned()]))
                .expect("registry client");
        let selector = Selector::new(registry, crate::SelectorOptions::default());
        let client = Client::new(
            selector,
            ClientOptions {
                pool_size: 3,
                ..ClientOptions::default()
            },
        );
        assert_eq!(client.connections.len(), 3);
        let picked: Vec<*const conn::Pool> = (0..6).map(|_| client.pool() as *const _).collect();
        assert_eq!(picked[0], picked[3]);
        assert_ne!(picked[0], picked[1]);
        assert_ne!(picked[1], picked[2]);
    }
}
