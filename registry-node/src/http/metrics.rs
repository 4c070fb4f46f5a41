//! `/metrics` in the Prometheus (OpenMetrics) text format, with etcd's metric names where ours
//! mean the same, and the grpc.health.v1 status of the client port.
//!
//! Gauges are read when scraped (Raft's metrics, the store); counters are kept as things
//! happen: leader changes by [`follow`], gRPC calls by the server's observer
//! ([`Metrics::observer`], grpc-go's `grpc_server_started_total` / `grpc_server_handled_total`).
//! `proposals_committed_total` is openraft's quorum-granted commit index and `proposals_pending` the
//! entries the leader appended but has not applied. `etcd_disk_wal_fsync_duration_seconds` is
//! the Raft log's `fdatasync`s (raft-log times them, with etcd's buckets);
//! `etcd_mvcc_db_total_size_in_use_in_bytes` is the store's size estimate (what the quota
//! compares), while `..._db_total_size_in_bytes` is the data directory on disk. etcd's
//! `etcd_disk_backend_commit_duration_seconds` has no counterpart: the store lives in memory
//! and nothing is committed to a backend file.

use openraft::async_runtime::WatchReceiver;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use grpc_lite::server::{HttpBody, Observer};
use http::{Response, StatusCode};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use raft_log::FsyncSnapshot;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::routing::Router;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrpcLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: String,
    grpc_method: String,
    grpc_code: &'static str,
}

/// The Raft log's fsync histogram as last read (at each scrape, from [`MemberDisk::wal_fsync`]).
#[derive(Clone, Debug, Default)]
struct WalFsync(Arc<Mutex<Option<FsyncSnapshot>>>);

impl EncodeMetric for WalFsync {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let read = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let s = read.unwrap_or_else(|| raft_log::FsyncTimes::default().snapshot());
        encoder.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &s.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Where a member keeps what `/metrics` reports about its disk.
pub(crate) struct MemberDisk {
    /// The data directory (etcd_mvcc_db_total_size_in_bytes: its size).
    pub(crate) data_dir: std::path::PathBuf,
    /// The Raft log's fsync durations (etcd_disk_wal_fsync_duration_seconds).
    pub(crate) wal_fsync: Arc<raft_log::FsyncTimes>,
}

pub(crate) struct Metrics {
    disk: MemberDisk,
    registry: Registry,
    wal_fsync: WalFsync,
    db_in_use: Gauge,
    has_leader: Gauge,
    is_leader: Gauge,
    leader_changes: Counter,
    committed: Gauge,
    applied: Gauge,
    pending: Gauge,
    failed: Counter,
    db_size: Gauge,
    keys: Gauge,
    leases: Gauge,
    watch_streams: Gauge,
    health_success: Counter,
    health_failures: Counter,
    started: Family<GrpcLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    /// Watch streams opened and ended, for the gauge.
    watch_opened: AtomicU64,
    watch_ended: AtomicU64,
}

impl Metrics {
    pub(crate) fn new(disk: MemberDisk) -> Self {
        let mut m = Metrics {
            disk,
            registry: Registry::default(),
            wal_fsync: WalFsync::default(),
            db_in_use: Gauge::default(),
            has_leader: Gauge::default(),
            is_leader: Gauge::default(),
            leader_changes: Counter::default(),
            committed: Gauge::default(),
            applied: Gauge::default(),
            pending: Gauge::default(),
            failed: Counter::default(),
            db_size: Gauge::default(),
            keys: Gauge::default(),
            leases: Gauge::default(),
            watch_streams: Gauge::default(),
            health_success: Counter::default(),
            health_failures: Counter::default(),
            started: Family::default(),
            handled: Family::default(),
            watch_opened: AtomicU64::new(0),
            watch_ended: AtomicU64::new(0),
        };
        let r = &mut m.registry;
        r.register(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not",
            m.has_leader.clone(),
        );
        r.register(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise",
            m.is_leader.clone(),
        );
        // Counters get their `_total` from the encoder.
        r.register(
            "etcd_server_leader_changes_seen",
            "The number of leader changes seen",
            m.leader_changes.clone(),
        );
        r.register(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed",
            m.committed.clone(),
        );
        r.register(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied",
            m.applied.clone(),
        );
        r.register(
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit",
            m.pending.clone(),
        );
        r.register("etcd_server_proposals_failed", "The total number of failed proposals seen (writes answered unavailable or past their deadline)", m.failed.clone());
        r.register(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes",
            m.db_size.clone(),
        );
        r.register(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes",
            m.db_in_use.clone(),
        );
        r.register(
            "etcd_disk_wal_fsync_duration_seconds",
            "The latency distributions of fsync called by WAL.",
            m.wal_fsync.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_keys_total",
            "Total number of keys",
            m.keys.clone(),
        );
        r.register(
            "etcd_debugging_lease_total",
            "Number of leases the store holds",
            m.leases.clone(),
        );
        r.register(
            "etcd_debugging_mvcc_watch_stream_total",
            "Total number of watch streams",
            m.watch_streams.clone(),
        );
        r.register(
            "etcd_server_health_success",
            "The total number of successful health checks",
            m.health_success.clone(),
        );
        r.register(
            "etcd_server_health_failures",
            "The total number of failed health checks",
            m.health_failures.clone(),
        );
        r.register(
            "grpc_server_started",
            "Total number of RPCs started on the server",
            m.started.clone(),
        );
        r.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            m.handled.clone(),
        );
        m
    }
}

/// grpc-go's name of a code (its `Code.String()`), as grpc-prometheus labels it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The kind of call grpc-prometheus labels: the streaming methods the client port serves.
fn grpc_type(path: &str) -> &'static str {
    match path {
        "/etcdserverpb.Watch/Watch" | "/etcdserverpb.Lease/LeaseKeepAlive" => "bidi_stream",
        "/v3electionpb.Election/Observe"
        | "/etcdserverpb.Maintenance/Snapshot"
        | "/grpc.health.v1.Health/Watch" => "server_stream",
        _ => "unary",
    }
}

/// Writes that go through Raft: one that ends UNAVAILABLE or DEADLINE_EXCEEDED is counted as a
/// failed proposal (no leader, leader changed, timed out), as etcd counts them.
fn is_proposal(path: &str) -> bool {
    matches!(
        path,
        "/etcdserverpb.KV/Put"
            | "/etcdserverpb.KV/DeleteRange"
            | "/etcdserverpb.KV/Txn"
            | "/etcdserverpb.KV/Compact"
            | "/etcdserverpb.Lease/LeaseGrant"
            | "/etcdserverpb.Lease/LeaseRevoke"
    )
}

fn split(path: &str) -> (String, String) {
    let path = path.trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    (service.to_owned(), method.to_owned())
}

impl Metrics {
    /// The gRPC server's observer ([`grpc_lite::server::Routes::observe`]).
    pub(crate) fn observer(self: &Arc<Self>) -> Observer {
        let metrics = Arc::clone(self);
        Arc::new(move |path: &str, code: Option<Code>| metrics.observe(path, code))
    }

    fn observe(&self, path: &str, code: Option<Code>) {
        let (grpc_service, grpc_method) = split(path);
        let grpc_type = grpc_type(path);
        let watch = path == "/etcdserverpb.Watch/Watch";
        let Some(code) = code else {
            self.started
                .get_or_create(&GrpcLabels {
                    grpc_type,
                    grpc_service,
                    grpc_method,
                })
                .inc();
            if watch {
                self.watch_opened.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        if watch {
            self.watch_ended.fetch_add(1, Ordering::Relaxed);
        }
        if is_proposal(path) && matches!(code, Code::Unavailable | Code::DeadlineExceeded) {
            self.failed.inc();
        }
        let labels = HandledLabels {
            grpc_type,
            grpc_service,
            grpc_method,
            grpc_code: code_name(code),
        };
        self.handled.get_or_create(&labels).inc();
    }

    pub(crate) fn health_checked(&self, healthy: bool) {
        if healthy {
            self.health_success.inc();
        } else {
            self.health_failures.inc();
        }
    }

    /// Reads the gauges and encodes everything.
    pub(crate) fn render(&self, router: &Router) -> Response<HttpBody> {
        let m = router.raft().metrics().borrow_watched().clone();
        let applied = m.last_applied.map(|l| l.index).unwrap_or(0);
        self.has_leader.set(i64::from(m.current_leader.is_some()));
        self.is_leader
            .set(i64::from(m.current_leader == Some(router.member_id())));
        self.applied.set(applied as i64);
        self.committed
            .set(m.cluster_committed.map_or(applied, |l| l.index) as i64);
        let pending = if m.current_leader == Some(router.member_id()) {
            m.last_log_index.unwrap_or(0).saturating_sub(applied)
        } else {
            0
        };
        self.pending.set(pending as i64);
        self.db_size
            .set(crate::store::disk_usage(&self.disk.data_dir) as i64);
        *self.wal_fsync.0.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(self.disk.wal_fsync.snapshot());
        let (keys, leases, in_use) = router.sm().read(|s| {
            let all = proto::etcdserverpb::RangeRequest {
                key: vec![0],
                range_end: vec![0],
                count_only: true,
                ..Default::default()
            };
            let keys = s.range(&all).map(|r| r.count).unwrap_or(0);
            (keys, s.leases().count() as i64, s.size_bytes())
        });
        self.db_in_use
            .set(i64::try_from(in_use).unwrap_or(i64::MAX));
        self.keys.set(keys);
        self.leases.set(leases);
        let open = self.watch_opened.load(Ordering::Relaxed);
        let ended = self.watch_ended.load(Ordering::Relaxed);
        self.watch_streams.set(open.saturating_sub(ended) as i64);
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            return super::respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                super::full(format!("encoding metrics: {e}\n")),
            );
        }
        super::respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            super::full(text),
        )
    }
}

/// Counts leader changes and keeps the grpc.health.v1 status of the client port: SERVING
/// while a leader is known, NOT_SERVING otherwise. Runs until `stop`.
pub(crate) async fn follow(
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    health: HealthReporter,
    stop: CancellationToken,
) {
    let mut watch = router.raft().metrics();
    let mut last = None;
    loop {
        let leader = watch.borrow_and_update().current_leader;
        if leader != last {
            if leader.is_some() {
                metrics.leader_changes.inc();
            }
            let status = if leader.is_some() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            health.set_service_status("", status).await;
            last = leader;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = watch.changed() => if changed.is_err() { return },
        }
    }
}
