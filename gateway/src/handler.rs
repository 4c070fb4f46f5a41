//! The one HTTP handler: every path goes through it.
//!
//! ```text
//!   HTTP ─► decode + clean path ─(400)─► resolve ─(500 not found)─► read body ≤ limit ─(413)─►
//!        registry lookup (cache) ─(500 not found)─► go.api.Request ─► Client::call (random
//!        node, pooled channels, one retry elsewhere if unreachable) ─(service error: its code;
//!        timeout: 408)─► go.api.Response ─► HTTP
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;
use micro::selector;
use micro::Client;
use proto::go_api;
use tokio::time::Instant;

use crate::cors::{Cors, Decision};
use crate::error::GatewayError;
use crate::proxy::Proxy;
use crate::rpc::{self, Rpc};
use crate::{request, resolve, response};

/// How much of an oversized body is still read (and dropped) before answering 413, so that the
/// client has finished sending and reads the answer instead of a connection reset.
const DRAIN_LIMIT: usize = 4 * 1024 * 1024;
/// How long draining may take.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// What the handler needs; clones share the client (its cache and its connections).
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    namespace: String,
    max_body_bytes: usize,
    cors: Cors,
    mode: Mode,
}

/// Which handler answers (`--handler`).
#[derive(Debug)]
pub enum Mode {
    /// `api`: `go.api.Request` → `go.api.Response`.
    Api,
    /// `rpc`: JSON → the endpoint's own messages, by reflection.
    Rpc(Arc<Rpc>),
    /// `http` / `proxy`: the request as it is, to a node's HTTP address.
    Http(Box<Proxy>),
}

impl Gateway {
    /// A gateway calling services of `namespace` (`go.micro.api`) through `client`, refusing
    /// request bodies over `max_body_bytes`; no CORS.
    pub fn new(client: Client, namespace: impl Into<String>, max_body_bytes: usize) -> Self {
        Self::with_cors(client, namespace, max_body_bytes, Cors::default())
    }

    /// [`Gateway::new`] with CORS settings.
    pub fn with_cors(
        client: Client,
        namespace: impl Into<String>,
        max_body_bytes: usize,
        cors: Cors,
    ) -> Self {
        Self::build(client, namespace, max_body_bytes, cors, Mode::Api)
    }

    /// [`Gateway::with_cors`] with the handler `mode`.
    pub fn build(
        client: Client,
        namespace: impl Into<String>,
        max_body_bytes: usize,
        cors: Cors,
        mode: Mode,
    ) -> Self {
        Gateway {
            inner: Arc::new(Inner {
                client,
                namespace: namespace.into(),
                max_body_bytes,
                cors,
                mode,
            }),
        }
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Serves one request (the client's address from its `ConnectInfo` extension, if any);
    /// every failure is a [`GatewayError`].
    pub async fn serve(&self, req: Request) -> Result<Response, GatewayError> {
        let remote = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        self.serve_from(req, remote).await
    }

    /// The HTTP answer to a request from `remote`, errors rendered as go-micro's JSON, with
    /// the CORS headers the settings call for (a preflight is answered here).
    pub async fn answer<B>(&self, req: axum::http::Request<B>, remote: Option<IpAddr>) -> Response
    where
        B: http_body::Body<Data = Bytes> + Unpin,
        B::Error: Into<axum::BoxError>,
    {
        let cors = match self.inner.cors.decide(req.method(), req.headers()) {
            Decision::Preflight(headers) => {
                let mut response = Response::new(axum::body::Body::empty());
                *response.headers_mut() = headers;
                return response;
            }
            Decision::Serve(headers) => headers,
        };
        let mut response = match self.serve_from(req, remote).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        response.headers_mut().extend(cors);
        response
    }

    /// Serves one request from `remote`; every failure is a [`GatewayError`].
    #[tracing::instrument(level = "debug", skip_all, fields(method = %req.method(), uri = %req.uri()))]
    pub async fn serve_from<B>(
        &self,
        req: axum::http::Request<B>,
        remote: Option<IpAddr>,
    ) -> Result<Response, GatewayError>
    where
        B: http_body::Body<Data = Bytes> + Unpin,
        B::Error: Into<axum::BoxError>,
    {
        let path = resolve::decode(req.uri().path())?;
        let parts = resolve::clean(&path)?;
        if let Mode::Http(proxy) = &self.inner.mode {
            let service = resolve::proxy_route(&parts, &self.inner.namespace)
                .ok_or(GatewayError::NotFound)?;
            let (head, body) = req.into_parts();
            let body = read_body(&head, body, self.inner.max_body_bytes).await?;
            self.ensure_exists(&service).await?;
            return proxy.serve(&self.inner.client, &service, &head, body).await;
        }
        let (service, endpoint) =
            resolve::route(&parts, &self.inner.namespace).ok_or(GatewayError::NotFound)?;
        let (head, body) = req.into_parts();
        let body = read_body(&head, body, self.inner.max_body_bytes).await?;
        self.ensure_exists(&service).await?;
        if let Mode::Rpc(rpc) = &self.inner.mode {
            let payload = rpc::payload(head.uri.query(), &body)?;
            return rpc
                .serve(&self.inner.client, &service, &endpoint, &payload)
                .await;
        }
        let api_request = request::build(&head, &path, remote, &body);
        let answer: go_api::Response = self
            .inner
            .client
            .call(&service, &endpoint, api_request)
            .await
            .map_err(|e| call_error(&service, e))?;
        response::to_http(answer)
    }

    /// go-micro's router: a path naming no registered service is `not found`.
    async fn ensure_exists(&self, service: &str) -> Result<(), GatewayError> {
        match self.inner.client.selector().snapshot(service).await {
            Ok(_) => Ok(()),
            Err(selector::Error::NotFound(_) | selector::Error::NoneAvailable(_)) => {
                Err(GatewayError::NotFound)
            }
            Err(selector::Error::Registry(source)) => Err(GatewayError::Registry {
                service: service.to_owned(),
                source,
            }),
        }
    }
}

/// The gateway's view of a failed call.
fn call_error(service: &str, error: micro::Error) -> GatewayError {
    // tonic's server enforces the client's `grpc-timeout` itself and answers a bare CANCELLED
    // "Timeout expired", which micro's client labels with the callee's id; go-micro reports a
    // timed-out call as the client's own 408.
    const TONIC_TIMEOUT: &str = "Timeout expired";
    match error {
        e if e.id == service && e.code == 408 && e.detail == TONIC_TIMEOUT => {
            GatewayError::Service(micro::Error::timeout(
                micro::client::CLIENT_ID,
                format!("call {service} timed out"),
            ))
        }
        e => GatewayError::Service(e),
    }
}

/// The router: one fallback handler for every method and path.
pub fn router(gateway: Gateway) -> Router {
    Router::new().fallback(handle).with_state(gateway)
}

async fn handle(State(gateway): State<Gateway>, req: Request) -> Response {
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    gateway.answer(req, remote).await
}

/// The whole body if it is at most `limit` bytes; otherwise [`GatewayError::BodyTooLarge`],
/// after reading a bounded amount more so the client sees the answer.
async fn read_body<B>(
    head: &axum::http::request::Parts,
    mut body: B,
    limit: usize,
) -> Result<Bytes, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    let declared = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(DRAIN_LIMIT) as u64) {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    let mut collected: Vec<u8> = Vec::new();
    let mut seen: usize = 0;
    let mut drain_until: Option<Instant> = None;
    loop {
        let frame = match drain_until {
            None => body.frame().await,
            Some(deadline) => match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => break,
            },
        };
        let Some(frame) = frame else { break };
        let frame = match frame {
            Ok(frame) => frame,
            Err(_) if drain_until.is_some() => break,
            Err(e) => return Err(GatewayError::Body(axum::Error::new(e))),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            collected.extend_from_slice(&data);
        } else if drain_until.is_none() {
            collected = Vec::new();
            drain_until = Some(Instant::now() + DRAIN_TIME);
        }
        if seen > limit.saturating_add(DRAIN_LIMIT) {
            break;
        }
    }
    if seen > limit {
        return Err(GatewayError::BodyTooLarge { limit });
    }
    Ok(Bytes::from(collected))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;

    fn head(content_length: Option<usize>) -> axum::http::request::Parts {
        let mut b = HttpRequest::builder().method("POST").uri("/a/b");
        if let Some(n) = content_length {
            b = b.header(header::CONTENT_LENGTH, n);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn call_errors() {
        let svc = "go.micro.api.x";
        // The api could not find its backend: its error, passed through.
        let downstream = micro::Error::not_found(micro::client::CLIENT_ID, "service: not found");
        let GatewayError::Service(e) = call_error(svc, downstream.clone()) else {
            panic!("a service error")
        };
        assert_eq!(e, downstream);
        let expired = micro::Error::timeout(svc, "Timeout expired");
        let GatewayError::Service(e) = call_error(svc, expired) else {
            panic!("a service error")
        };
        assert_eq!((e.id.as_str(), e.code), (micro::client::CLIENT_ID, 408));
        let own = micro::Error::timeout(svc, "the database is slow");
        let GatewayError::Service(e) = call_error(svc, own.clone()) else {
            panic!("a service error")
        };
        assert_eq!(e, own, "a service's own 408 passes through");
    }

    /// A gateway whose registry is unreachable: enough for answers that need no service.
    fn cors_gateway() -> Gateway {
        let registry =
            micro::Registry::new(&micro::RegistryOptions::new(vec!["127.0.0.1:1".to_owned()]))
                .expect("registry client");
        let client = Client::new(
            micro::Selector::new(registry, micro::SelectorOptions::default()),
            micro::ClientOptions::default(),
        );
        let cors = Cors::new(&["http://app.example".to_owned()], &[], &[]);
        Gateway::with_cors(client, "go.micro.api", 1024, cors)
    }

    #[tokio::test]
    async fn cors_preflight_is_answered_and_answers_carry_the_origin() {
        let gateway = cors_gateway();
        let preflight = HttpRequest::builder()
            .method("OPTIONS")
            .uri("/greeter/say/hello")
            .header("origin", "http://app.example")
            .header("access-control-request-method", "POST")
            .body(Body::empty())
            .expect("request");
        let response = gateway.answer(preflight, None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "http://app.example"
        );
        assert_eq!(response.headers()["access-control-allow-methods"], "POST");

        // An error answer (no route for `/`, no registry needed) carries the header too.
        let get = HttpRequest::builder()
            .uri("/")
            .header("origin", "http://app.example")
            .body(Body::empty())
            .expect("request");
        let response = gateway.answer(get, None).await;
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "http://app.example"
        );
        let other = HttpRequest::builder()
            .uri("/")
            .header("origin", "http://evil.example")
            .body(Body::empty())
            .expect("request");
        let response = gateway.answer(other, None).await;
        assert!(response
            .headers()
            .get("access-control-allow-origin")
            .is_none());
    }

    #[tokio::test]
    async fn body_within_the_limit_is_read_whole() {
        let body = read_body(&head(None), Body::from(vec![7u8; 100]), 100)
            .await
            .expect("fits");
        assert_eq!(body.len(), 100);
    }

    #[tokio::test]
    async fn body_over_the_limit_is_refused() {
        let err = read_body(&head(None), Body::from(vec![7u8; 101]), 100)
            .await
            .expect_err("too large");
        assert!(matches!(err, GatewayError::BodyTooLarge { limit: 100 }));
        // Declared far over the limit: refused without reading.
        let err = read_body(&head(Some(DRAIN_LIMIT + 1000)), Body::empty(), 100)
            .await
            .expect_err("declared too large");
        assert!(matches!(err, GatewayError::BodyTooLarge { .. }));
    }
}
