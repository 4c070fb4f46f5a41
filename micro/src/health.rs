//! gRPC health checking (`grpc.health.v1.Health/Check`), served by every [`crate::Service`],
//! with tonic-health's message types, and a client for it (`micro health`).
//!
//! A service answers SERVING once started and NOT_SERVING from the moment [`crate::Running::stop`]
//! begins (before it deregisters and drains), for the empty name, its registered name and each
//! mounted handler's gRPC name (`go.micro.srv.greeter.Say`); other names: NOT_FOUND.
//!
//! Only `Check` is served: it is a unary call, which keeps a service on grpc-lite's lean h2
//! path; `Watch`, a server stream, would move every service onto hyper (see `crate::stream`).
//! `Watch` is answered UNIMPLEMENTED, which health-checking clients treat as "use Check".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tonic::Status;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// A health answer (tonic-health's): SERVING, NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN.
pub use tonic_health::pb::health_check_response::ServingStatus;

use crate::server::Routes;

/// The path of `Check`.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// A service's health; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Health {
    serving: Arc<AtomicBool>,
    names: Arc<Vec<String>>,
}

impl Health {
    /// The health of a service known by `names` (besides the empty name), not serving yet.
    pub fn new(names: Vec<String>) -> Self {
        Health {
            serving: Arc::default(),
            names: Arc::new(names),
        }
    }

    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
    }

    /// The status of `service` (`""`: the whole server), `None` for a name not served here.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        if !service.is_empty() && !self.names.iter().any(|n| n == service) {
            return None;
        }
        Some(if self.serving.load(Ordering::SeqCst) {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        })
    }

    /// `Check` as a unary route.
    pub(crate) fn routes(&self) -> Routes {
        let health = self.clone();
        Routes::new().unary(CHECK_PATH, move |request: HealthCheckRequest| {
            let answer = match health.status(&request.service) {
                Some(status) => Ok(HealthCheckResponse {
                    status: status as i32,
                }),
                None => Err(Status::not_found("unknown service")),
            };
            std::future::ready(answer)
        })
    }
}

/// Asks the server at `address` (`host:port`) about `service` (`""`: the whole server), with
/// tonic's health client, bounded by `timeout`.
pub async fn check(
    address: &str,
    service: &str,
    timeout: Duration,
) -> Result<ServingStatus, Status> {
    use tonic_health::pb::health_client::HealthClient;
    let endpoint = tonic::transport::Endpoint::from_shared(crate::registry::normalize(address))
        .map_err(|e| Status::invalid_argument(format!("address {address:?}: {e}")))?
        .connect_timeout(timeout)
        .timeout(timeout);
    let ask = async {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Status::unavailable(format!("connect {address}: {e}")))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?;
        Ok(response.into_inner().status())
    };
    match tokio::time::timeout(timeout, ask).await {
        Ok(result) => result,
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer from {address} in {timeout:?}"
        ))),
    }
}
