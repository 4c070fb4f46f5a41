//! What a member serves on its client port besides gRPC, as etcd 3.4 does on the same port:
//! the grpc-gateway JSON API (`/v3/...`, [`gateway`]), `/metrics` ([`metrics`]), `/health`,
//! `/livez`, `/readyz` and `/version`. grpc-lite hands every request that is not gRPC here
//! ([`grpc_lite::server::Routes::http`]).
//!
//! The JSON API calls this member's own gRPC services over a loopback channel (as etcd's
//! gateway dials its own gRPC server), so every rule (routing, forwarding, validation, errors)
//! lives in the services alone.

pub(crate) mod gateway;
pub(crate) mod metrics;

use openraft::async_runtime::WatchReceiver;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use grpc_lite::server::{HttpBody, HttpHandler};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use prost::bytes::Bytes;
use tonic::transport::{Channel, Endpoint};

use crate::api::maintenance::ETCD_VERSION;
use crate::routing::Router;

pub(crate) use metrics::{MemberDisk, Metrics};

/// etcd 3.4's cluster version as `/version` reports it.
pub(crate) const CLUSTER_VERSION: &str = "3.4.0";

/// What the HTTP side of a member shares.
pub(crate) struct Http {
    pub(crate) router: Arc<Router>,
    /// This member's own gRPC services.
    pub(crate) channel: Channel,
    pub(crate) metrics: Arc<Metrics>,
}

/// The HTTP handler of a member; `channel` reaches its own client port.
pub(crate) fn handler(router: Arc<Router>, channel: Channel, metrics: Arc<Metrics>) -> HttpHandler {
    let http = Arc::new(Http {
        channel,
        router,
        metrics,
    });
    Arc::new(move |request| {
        let http = Arc::clone(&http);
        Box::pin(async move { http.answer(request).await })
    })
}

/// A lazily connected channel to the member's own client port (loopback when it listens on
/// every address).
fn self_channel(local: SocketAddr) -> Channel {
    let ip = if local.ip().is_unspecified() {
        match local {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        }
    } else {
        local.ip()
    };
    let url = format!("http://{}", SocketAddr::new(ip, local.port()));
    Endpoint::from_shared(url)
        .expect("an http URL of a socket address is valid")
        .tcp_nodelay(true)
        .connect_lazy()
}

impl Http {
    async fn answer(self: Arc<Self>, request: Request<Incoming>) -> Response<HttpBody> {
        let path = request.uri().path().to_owned();
        if let Some(rest) = path.strip_prefix("/v3/") {
            if request.method() != Method::POST {
                return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
            }
            return gateway::answer(self, rest, request.into_body()).await;
        }
        let get_only = matches!(
            path.as_str(),
            "/metrics" | "/health" | "/livez" | "/readyz" | "/version"
        );
        if get_only && request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        }
        match path.as_str() {
            "/metrics" => self.metrics.render(&self.router),
            "/health" => self.health(request.uri().query()).await,
            // etcd 3.5's probes: alive while the process answers; ready when healthy.
            "/livez" => text(StatusCode::OK, "ok"),
            "/readyz" => match self.health(None).await.status() {
                StatusCode::OK => text(StatusCode::OK, "ok"),
                _ => text(StatusCode::SERVICE_UNAVAILABLE, "not ready"),
            },
            "/version" => json(
                StatusCode::OK,
                format!(r#"{{"etcdserver":"{ETCD_VERSION}","etcdcluster":"{CLUSTER_VERSION}"}}"#),
            ),
            _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
        }
    }

    /// etcd's `/health`: false while an alarm is raised (except those named by `?exclude=`),
    /// without a leader, or when a linearizable read does not finish within a second.
    async fn health(&self, query: Option<&str>) -> Response<HttpBody> {
        let excluded: Vec<String> = form_urlencoded_pairs(query.unwrap_or(""))
            .filter(|(k, _)| k == "exclude")
            .map(|(_, v)| v)
            .collect();
        let healthy = self.healthy(&excluded).await;
        self.metrics.health_checked(healthy);
        if healthy {
            json(StatusCode::OK, r#"{"health":"true"}"#.to_owned())
        } else {
            // etcd writes it with http.Error: text/plain and a newline.
            text(StatusCode::SERVICE_UNAVAILABLE, "{\"health\":\"false\"}\n")
        }
    }

    async fn healthy(&self, excluded: &[String]) -> bool {
        let mut maintenance =
            proto::etcdserverpb::maintenance_client::MaintenanceClient::new(self.channel.clone());
        let alarms = maintenance
            .alarm(proto::etcdserverpb::AlarmRequest::default())
            .await;
        let Ok(alarms) = alarms else {
            return false;
        };
        let raised = alarms.into_inner().alarms.iter().any(|a| {
            let name = proto::etcdserverpb::AlarmType::try_from(a.alarm)
                .map(|t| t.as_str_name().to_owned())
                .unwrap_or_default();
            !excluded.contains(&name)
        });
        if raised
            || self
                .router
                .raft()
                .metrics()
                .borrow_watched()
                .current_leader
                .is_none()
        {
            return false;
        }
        let mut kv = proto::etcdserverpb::kv_client::KvClient::new(self.channel.clone());
        let read = kv.range(proto::etcdserverpb::RangeRequest {
            key: b"health".to_vec(),
            ..Default::default()
        });
        // With auth on, the member's own read carries no token: refused means it answered
        // (etcd 3.5's checkV3Health; 3.4 reads through v2, outside auth).
        match tokio::time::timeout(Duration::from_secs(1), read).await {
            Ok(Ok(_)) => true,
            Ok(Err(s)) => s.message() == mvcc::AuthError::UserEmpty.to_string(),
            Err(_) => false,
        }
    }
}

/// `a=1&b=2` as pairs (no percent-decoding needed for alarm names).
fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (k.to_owned(), v.to_owned())
    })
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> HttpBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn respond(
    status: StatusCode,
    content_type: &str,
    body: HttpBody,
) -> Response<HttpBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<HttpBody> {
    respond(status, "text/plain; charset=utf-8", full(body))
}

pub(crate) fn json(status: StatusCode, body: String) -> Response<HttpBody> {
    respond(status, "application/json", full(body))
}

/// What the client port serves besides the etcd services, ready to add to its routes.
pub(crate) struct Served {
    /// A channel to the member's own gRPC services (the lock and election services use it).
    pub(crate) channel: Channel,
    pub(crate) handler: HttpHandler,
    pub(crate) observer: grpc_lite::server::Observer,
    pub(crate) health:
        tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
}

/// The HTTP side of the member whose client port is `local`, its metrics, and grpc.health.v1
/// (its status follows the leader until `stop`).
pub(crate) fn start(
    router: Arc<Router>,
    local: SocketAddr,
    loopback: Option<Channel>,
    disk: MemberDisk,
    stop: tokio_util::sync::CancellationToken,
) -> Served {
    let metrics = Arc::new(Metrics::new(disk));
    let reporter = tonic_health::server::HealthReporter::new();
    let health = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
    );
    tokio::spawn(metrics::follow(
        router.clone(),
        metrics.clone(),
        reporter,
        stop,
    ));
    let channel = loopback.unwrap_or_else(|| self_channel(local));
    Served {
        channel: channel.clone(),
        handler: handler(router, channel, metrics.clone()),
        observer: metrics.observer(),
        health,
    }
}
