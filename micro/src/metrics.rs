//! Prometheus metrics per endpoint (prometheus-client), counted by a layer on both sides and
//! served in the OpenMetrics text format on an HTTP port (`--metrics_address`; off unless
//! given):
//!
//! | metric | labels |
//! | --- | --- |
//! | `micro_server_requests_total`, `micro_server_errors_total` | `service`, `endpoint` |
//! | `micro_server_request_duration_seconds` (histogram) | `service`, `endpoint` |
//! | `micro_client_requests_total`, `micro_client_errors_total`, `micro_client_request_duration_seconds` | `service` (callee), `endpoint` |
//!
//! Every [`crate::Service`] counts its unary calls; a [`crate::Client`] counts its calls once
//! given `Metrics::clone()` as a layer.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::wrapper::Call;

/// The content type of the answer (OpenMetrics text, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    service: String,
    endpoint: String,
}

type Latency = Family<Labels, Histogram, fn() -> Histogram>;

/// 0.5 ms to ~16 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Debug)]
struct Side {
    calls: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: Latency,
}

impl Side {
    fn new() -> Self {
        Side {
            calls: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }

    fn register(&self, registry: &mut Registry, side: &str) {
        registry.register(
            format!("micro_{side}_requests"),
            format!("Unary calls ({side} side), by service and endpoint"),
            self.calls.clone(),
        );
        registry.register(
            format!("micro_{side}_errors"),
            format!("Unary calls that failed ({side} side)"),
            self.errors.clone(),
        );
        registry.register(
            format!("micro_{side}_request_duration_seconds"),
            format!("Latency of unary calls ({side} side)"),
            self.latency.clone(),
        );
    }
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    server: Side,
    client: Side,
}

/// A set of metrics and its registry; clones share them. As a tower layer it counts the
/// calls it wraps, on whichever side it is put.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let server = Side::new();
        let client = Side::new();
        server.register(&mut registry, "server");
        client.register(&mut registry, "client");
        Metrics {
            inner: Arc::new(Inner {
                registry,
                server,
                client,
            }),
        }
    }

    fn side(&self, side: &str) -> &Side {
        match side {
            "client" => &self.inner.client,
            _ => &self.inner.server,
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) =
            prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
        {
            tracing::warn!(%error, "encoding metrics");
        }
        text
    }

    /// Serves `GET /metrics` on `listener` until `shutdown` is cancelled.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        let metrics = self;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(http::header::CONTENT_TYPE, CONTENT_TYPE)],
                        metrics.encode(),
                    )
                }
            }),
        );
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "metrics server");
        }
    }

    /// Binds `address` and serves `/metrics` in a task; the bound address.
    pub async fn spawn(
        self,
        address: SocketAddr,
        shutdown: CancellationToken,
    ) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        tokio::spawn(self.serve(listener, shutdown));
        Ok(bound)
    }
}

impl<S> tower::Layer<S> for Metrics {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.clone(),
            last: Arc::default(),
        }
    }
}

/// One endpoint's metrics, taken from the families once.
#[derive(Debug, Clone)]
struct Handles {
    service: Arc<str>,
    endpoint: Arc<str>,
    calls: Counter,
    errors: Counter,
    latency: Histogram,
}

/// [`Metrics`]' service.
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Metrics,
    /// The last endpoint's handles: a server stack serves one endpoint, so after its first call
    /// it counts without building labels or looking them up (shared by clones of the stack).
    last: Arc<std::sync::RwLock<Option<Handles>>>,
}

impl<S> MetricsService<S> {
    fn handles(&self, side: &str, service: &str, endpoint: &str) -> Handles {
        let cached = self.last.read().ok().and_then(|last| {
            last.as_ref()
                .filter(|h| &*h.service == service && &*h.endpoint == endpoint)
                .cloned()
        });
        if let Some(handles) = cached {
            return handles;
        }
        let labels = Labels {
            service: service.to_owned(),
            endpoint: endpoint.to_owned(),
        };
        let side = self.metrics.side(side);
        let handles = Handles {
            service: Arc::from(service),
            endpoint: Arc::from(endpoint),
            calls: side.calls.get_or_create(&labels).clone(),
            errors: side.errors.get_or_create(&labels).clone(),
            latency: side.latency.get_or_create(&labels).clone(),
        };
        if let Ok(mut last) = self.last.write() {
            *last = Some(handles.clone());
        }
        handles
    }
}

impl<S, R> tower::Service<R> for MetricsService<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
    R: Call,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: R) -> Self::Future {
        let handles = self.handles(R::SIDE, call.service(), call.endpoint());
        let started = tokio::time::Instant::now();
        let future = self.inner.call(call);
        Box::pin(async move {
            let result = future.await;
            handles.calls.inc();
            if result.is_err() {
                handles.errors.inc();
            }
            handles.latency.observe(started.elapsed().as_secs_f64());
            result
        })
    }
}
