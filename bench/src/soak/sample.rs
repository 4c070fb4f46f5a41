//! What the soak records over time: the store's revision and compacted revision (Status and
//! HashKV of the first endpoint), every member's resident memory (`/proc/<pid>/status`
//! VmRSS), and the sizes etcd reports on `/metrics` (ours serves the same names).

use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proto::etcdserverpb::maintenance_client::MaintenanceClient;
use proto::etcdserverpb::{HashKvRequest, StatusRequest};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::procs;

/// One reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Real seconds since the churn started.
    pub t: f64,
    /// The seed's seconds those stand for (`t · speed`).
    pub sim_s: f64,
    pub revision: i64,
    /// The store's compacted revision (0: never compacted).
    pub compact_revision: i64,
    /// VmRSS of each member in MiB, in `--pids` order (None: the process is gone).
    pub rss_mib: Vec<Option<f64>>,
    /// `etcd_mvcc_db_total_size_in_bytes` of the first endpoint, MiB.
    pub db_mib: Option<f64>,
    /// `etcd_mvcc_db_total_size_in_use_in_bytes` of the first endpoint, MiB.
    pub db_in_use_mib: Option<f64>,
}

impl Sample {
    /// The members' RSS summed (MiB); None if any member is gone.
    pub fn rss_sum(&self) -> Option<f64> {
        self.rss_mib.iter().copied().sum()
    }
}

fn mib(bytes: f64) -> f64 {
    (bytes / 1_048_576.0 * 100.0).round() / 100.0
}

/// The value of an unlabelled metric in a Prometheus text page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Reads the samples' sources: one gRPC channel and the `/metrics` URL of the first endpoint,
/// the member pids.
pub struct Sampler {
    ch: Channel,
    metrics_url: hyper::Uri,
    http: Client<HttpConnector, Empty<Bytes>>,
    pids: Vec<u32>,
    start: Instant,
    speed: f64,
}

impl Sampler {
    pub fn new(
        ch: Channel,
        endpoint: &str,
        pids: &[u32],
        start: Instant,
        speed: f64,
    ) -> anyhow::Result<Self> {
        let base = endpoint.trim_end_matches('/');
        let base = if base.starts_with("http://") {
            base.to_owned()
        } else {
            format!("http://{base}")
        };
        let metrics_url = format!("{base}/metrics").parse().context("metrics URL")?;
        Ok(Sampler {
            ch,
            metrics_url,
            http: Client::builder(TokioExecutor::new()).build_http(),
            pids: pids.to_vec(),
            start,
            speed,
        })
    }

    async fn metrics_page(&self) -> Option<String> {
        let get = self.http.get(self.metrics_url.clone());
        let resp = tokio::time::timeout(Duration::from_secs(5), get)
            .await
            .ok()?
            .ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        Some(String::from_utf8_lossy(&body).into_owned())
    }

    /// One sample now. The revision and compacted revision must answer (an error ends the
    /// soak: a figure that cannot be read is not guessed); the `/metrics` sizes may be absent.
    pub async fn take(&self) -> anyhow::Result<Sample> {
        let t = self.start.elapsed().as_secs_f64();
        let mut m = MaintenanceClient::new(self.ch.clone());
        let status = m.status(StatusRequest {}).await.context("Status")?;
        let revision = status.into_inner().header.map_or(0, |h| h.revision);
        // HashKV at the current revision answers the compacted revision with the hash.
        let hash = m
            .hash_kv(HashKvRequest { revision: 0 })
            .await
            .context("HashKV")?;
        let compact_revision = hash.into_inner().compact_revision;
        let page = self.metrics_page().await;
        let size = |name| page.as_deref().and_then(|p| metric(p, name)).map(mib);
        Ok(Sample {
            t: (t * 10.0).round() / 10.0,
            sim_s: (t * self.speed).round(),
            revision,
            compact_revision,
            rss_mib: self
                .pids
                .iter()
                .map(|p| procs::rss_kib(*p).map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0))
                .collect(),
            db_mib: size("etcd_mvcc_db_total_size_in_bytes"),
            db_in_use_mib: size("etcd_mvcc_db_total_size_in_use_in_bytes"),
        })
    }
}
