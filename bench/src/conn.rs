//! Connections: one HTTP/2 channel per `--conns`, spread over the endpoints or all to the leader.

use anyhow::Context;
use proto::etcdserverpb::maintenance_client::MaintenanceClient;
use proto::etcdserverpb::StatusRequest;
use tonic::transport::{Channel, Endpoint};

use crate::Args;

/// Largest message either side may send (etcd's default limit plus headroom).
pub const MAX_MSG: usize = 4 * 1024 * 1024;

fn url(e: &str) -> String {
    if e.starts_with("http://") || e.starts_with("https://") {
        e.to_string()
    } else {
        format!("http://{e}")
    }
}

pub async fn channel(e: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(url(e))?
        .tcp_nodelay(true)
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connect {e}"))
}

/// The endpoint of the current leader: the one whose member id is the leader its status names.
pub async fn leader(endpoints: &[String]) -> anyhow::Result<String> {
    for e in endpoints {
        let Ok(ch) = channel(e).await else { continue };
        let Ok(s) = MaintenanceClient::new(ch).status(StatusRequest {}).await else {
            continue;
        };
        let s = s.into_inner();
        if s.header.map(|h| h.member_id) == Some(s.leader) && s.leader != 0 {
            return Ok(e.clone());
        }
    }
    anyhow::bail!("no endpoint of {endpoints:?} is the leader")
}

/// `--conns` channels, round-robin over the endpoints (or the leader's only).
pub async fn connect(args: &Args) -> anyhow::Result<Vec<Channel>> {
    let targets = if args.target_leader {
        vec![leader(&args.endpoints).await?]
    } else {
        args.endpoints.clone()
    };
    let mut out = Vec::new();
    for i in 0..args.conns.max(1) {
        out.push(channel(&targets[i % targets.len()]).await?);
    }
    Ok(out)
}
