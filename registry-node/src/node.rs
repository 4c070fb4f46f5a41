//! Assembles a member: storage, Raft, the peer service and the etcd client services.
//! [`Node::serve`] is the one entry (listeners given, so tests bind port 0); [`Node::start`]
//! binds the configured addresses and calls it.

use openraft::async_runtime::WatchReceiver;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tracing::Instrument;

use crate::api::{
    cluster::ClusterService,
    kv::KvService,
    lease::LeaseService,
    maintenance::MaintenanceService,
    watch::{WatchService, WatchSettings},
};
use crate::config::NodeConfig;
use crate::http::MemberDisk;
use crate::lease::LeaseManager;
use crate::membership::join::Publish;
use crate::raft::peer::client::PeerNetwork;
use crate::raft::peer::server::PeerService;
use crate::raft::peer::Identity;
use crate::raft::{MemberNode, NodeId, Raft, TypeConfig};
use crate::routing::{Router, RouterParts};
use crate::store::StateMachine;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("tls: {0}")]
    Tls(String),
    #[error("raft log: {0}")]
    Log(#[from] raft_log::Error),
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("raft config: {0}")]
    RaftConfig(#[from] openraft::ConfigError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("raft thread: {0}")]
    Runtime(std::io::Error),
    #[error("joining the cluster: {0}")]
    Join(String),
}

/// A member's Raft state at one moment: log indexes and who leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: NodeId,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub applied: Option<u64>,
    /// Up to where the log was purged (compacted into a snapshot).
    pub purged: Option<u64>,
    /// The index of the snapshot this member holds.
    pub snapshot: Option<u64>,
}

/// A running member.
pub struct NodeHandle {
    pub(crate) router: Arc<Router>,
    config: NodeConfig,
    client_tls: bool,
    pub client_addr: std::net::SocketAddr,
    pub peer_addr: std::net::SocketAddr,
    isolated: Arc<AtomicBool>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    raft_rt: RaftThread,
}

/// The thread that runs this member's Raft: openraft's core, its state-machine worker and the
/// replication tasks, on one single-threaded runtime. A write passes from the core to the
/// replication task, to the peer connection and back, and to the state machine: on one thread
/// each of those steps is a queue push instead of a wake-up of another tokio worker (on this
/// 2-core machine, put latency 1 client: see bench/findings.md, third round). The peer server
/// and the peer connections run here too; client gRPC serving stays on the process's
/// multi-threaded runtime.
struct RaftThread {
    handle: tokio::runtime::Handle,
    /// Ends the thread (and drops whatever still runs on it) when cancelled or dropped.
    stop: tokio_util::sync::DropGuard,
}

impl RaftThread {
    fn start(name: &str) -> Result<Self, NodeError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(NodeError::Runtime)?;
        let handle = rt.handle().clone();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name(format!("raft-{name}"))
            .spawn(move || {
                let _span = span.entered();
                rt.block_on(stopped.cancelled());
            })
            .map_err(NodeError::Runtime)?;
        Ok(RaftThread {
            handle,
            stop: stop.drop_guard(),
        })
    }
}

pub struct Node;

impl Node {
    /// Binds the configured client and peer addresses and serves.
    pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
        let bind = |addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Bind { addr, source })
        };
        let client = bind(config.client_addr).await?;
        let peer = bind(config.peer_addr).await?;
        Self::serve(config, client, peer).await
    }

    /// Opens storage, starts Raft (forming the cluster on first start) and serves clients and
    /// peers on the given listeners until [`NodeHandle::shutdown`].
    pub async fn serve(
        config: NodeConfig,
        client: TcpListener,
        peer: TcpListener,
    ) -> Result<NodeHandle, NodeError> {
        let span = tracing::info_span!("member", name = %config.name);
        async move {
            let config = crate::membership::join::prepare(config)
                .await
                .map_err(NodeError::Join)?;
            let data = &config.data_dir;
            std::fs::create_dir_all(data).map_err(|source| NodeError::DataDir {
                path: data.clone(),
                source,
            })?;
            let tls = Arc::new(crate::tls::Tls::build(&config).map_err(NodeError::Tls)?);
            let log_dir = data.join("log");
            let log_opts = raft_log::LogOptions {
                cache_entries: config.raft.log_cache_entries,
                cache_bytes: config.raft.log_cache_bytes,
                ..Default::default()
            };
            let log = tokio::task::spawn_blocking(move || {
                raft_log::LogStore::<TypeConfig>::open(&log_dir, log_opts)
            })
            .await
            .map_err(|e| NodeError::DataDir {
                path: data.join("log"),
                source: std::io::Error::other(e),
            })??;
            let wal_fsync = log.fsync_times();
            let mvcc_config = mvcc::Config {
                max_txn_ops: config.raft.max_txn_ops,
                min_lease_ttl: config.min_lease_ttl(),
            };
            let sm = StateMachine::open(&data.join("state"), mvcc_config)?;
            let raft_rt = RaftThread::start(&config.name)?;
            let me = Identity {
                cluster_id: config.cluster_id,
                member_id: config.id,
            };
            let network = PeerNetwork::new(me, Some(raft_rt.handle.clone()))
                .with_tls(tls.peer_client.clone());
            let isolated = network.isolated.clone();
            let peers = network.clone();
            let raft = {
                let (id, rc, sm) = (config.id, Arc::new(raft_config(&config)?), sm.clone());
                // Raft::new spawns openraft's core and state-machine worker on the runtime it
                // runs on, and the core spawns the replication tasks there too.
                raft_rt
                    .handle
                    .spawn(async move { Raft::new(id, rc, network, log, sm).await })
                    .await
                    .map_err(|e| NodeError::Runtime(std::io::Error::other(e)))?
                    .map_err(|e| NodeError::Raft(e.to_string()))?
            };
            let shutdown = CancellationToken::new();
            let router = Arc::new(Router::new(RouterParts {
                raft: raft.clone(),
                sm,
                cluster_id: config.cluster_id,
                member_id: config.id,
                election_timeout_ms: config.raft.election_timeout_ms,
                proposals_in_flight: config.raft.proposals_in_flight,
                client_tls: tls.client_client.clone(),
                peers,
            }));
            let leases = Arc::new(LeaseManager::new(config.raft.election_timeout_ms));
            let client_addr = client.local_addr().map_err(|source| NodeError::Bind {
                addr: config.client_addr,
                source,
            })?;
            let peer_addr = peer.local_addr().map_err(|source| NodeError::Bind {
                addr: config.peer_addr,
                source,
            })?;
            // The peer port: the member link (`raftpb.RaftPeer`), served on the Raft thread
            // so that peer requests (append-entries above all) are handled next to the core
            // they go to.
            let configured = config.members.iter().map(|m| m.id).collect();
            let peer_service =
                PeerService::new(me, raft.clone(), isolated.clone(), configured, router.clone());
            let peer_tls = tls.peer_server.clone();
            let peer = peer.into_std().map_err(|source| NodeError::Bind {
                addr: config.peer_addr,
                source,
            })?;
            let peer_stop = shutdown.clone();
            let peer_members = ClusterService::new(router.clone());
            let peer_server = async move {
                let peer = match TcpListener::from_std(peer) {
                    Ok(peer) => peer,
                    Err(e) => return tracing::error!(error = %e, "peer listener"),
                };
                // Plain TCP, or TLS for an https:// peer URL.
                let incoming = crate::tls::peer_incoming(peer, peer_tls, peer_stop.clone());
                let served = Server::builder()
                    .http2_keepalive_interval(Some(Duration::from_secs(1)))
                    .http2_keepalive_timeout(Some(Duration::from_secs(3)))
                    .add_service(peer_service.into_server())
                    // A member started with --initial-cluster-state existing asks for its id here.
                    .add_service(peer_members)
                    .serve_with_incoming_shutdown(incoming, peer_stop.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "peer server stopped");
                }
            };
            // The client API: KV's busiest methods as unary handlers straight on hyper
            // (`grpc-lite`), everything else (watch and lease streams included) through tonic.
            // Not gRPC: the JSON gateway, /metrics, /health (etcd serves them on this port).
            let disk = MemberDisk {
                data_dir: config.data_dir.clone(),
                wal_fsync,
            };
            let http = crate::http::start(
                router.clone(),
                client_addr,
                tls.loopback(client_addr),
                disk,
                shutdown.clone(),
            );
            let kv = KvService::new(router.clone(), config.raft.max_request_bytes);
            let watch = WatchSettings {
                progress_notify: Duration::from_millis(config.raft.progress_notify_ms),
                election_timeout: Duration::from_millis(config.raft.election_timeout_ms),
                stopping: shutdown.clone(),
            };
            let client_routes = kv
                .routes()
                .merge(crate::api::cluster::routes(router.clone()))
                .tonic(kv.server())
                .tonic(LeaseService::new(router.clone(), leases.clone(), shutdown.clone()))
                .tonic(WatchService::new(router.clone(), watch))
                .tonic(ClusterService::new(router.clone()))
                .tonic(MaintenanceService::new(router.clone(), config.data_dir.clone()))
                .tonic(crate::api::auth::AuthService::new(router.clone()))
                .tonic(http.health)
                .tonic(crate::api::lock::LockService::new(http.channel.clone()))
                .tonic(crate::api::election::ElectionService::new(http.channel.clone()))
                .http(http.handler)
                .observe(http.observer)
                .on_deadline(crate::errors::deadline_exceeded);
            let client_server = crate::tls::serve_client(
                client,
                client_routes,
                tls.client_server.clone(),
                shutdown.clone(),
            );
            let publish = Publish {
                name: config.name.clone(),
                client_url: config
                    .member(config.id)
                    .map(|m| m.client_url.clone())
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| format!("http://{}", config.client_addr)),
                publish: {
                    let router = router.clone();
                    Box::new(move |id, name, url| {
                        let router = router.clone();
                        Box::pin(async move {
                            crate::api::cluster::publish(&router, id, &name, &url).await
                        })
                    })
                },
            };
            let span = tracing::Span::current();
            let background = [
                tokio::spawn(client_server.instrument(span.clone())),
                tokio::spawn(crate::lease::run(
                    router.clone(),
                    leases,
                    config.raft.election_timeout_ms,
                    shutdown.clone(),
                ).instrument(span.clone())),
                tokio::spawn(crate::compaction::run(
                    router.clone(),
                    config.compaction,
                    shutdown.clone(),
                ).instrument(span.clone())),
                // etcd's backend quota and its periodic corruption check, on the leader.
                tokio::spawn(crate::api::maintenance::watch_quota(
                    router.clone(),
                    config.raft.quota_backend_bytes,
                    shutdown.clone(),
                ).instrument(span.clone())),
                tokio::spawn(crate::api::maintenance::check_corruption(
                    router.clone(),
                    Duration::from_millis(config.raft.corrupt_check_ms),
                    shutdown.clone(),
                ).instrument(span.clone())),
                tokio::spawn(crate::membership::join::publish_loop(
                    router.clone(),
                    publish,
                    tls.peer_client.clone(),
                    shutdown.clone(),
                ).instrument(span.clone())),
            ];
            let mut tasks = vec![raft_rt.handle.spawn(peer_server.instrument(span.clone()))];
            tasks.extend(background);
            if config.initial_cluster_state == crate::config::ClusterState::New {
                form_cluster(&raft, &config).await;
            }
            tracing::info!(%client_addr, %peer_addr, id = %format!("{:x}", config.id), "member started");
            Ok(NodeHandle {
                router,
                config,
                client_tls: tls.client_server.is_some(),
                client_addr,
                peer_addr,
                isolated,
                shutdown,
                tasks,
                raft_rt,
            })
        }
        .instrument(span)
        .await
    }
}

/// On a member's first start (empty log) every member of the file is written into the initial
/// membership; every member doing so with the same list is safe in openraft.
async fn form_cluster(raft: &Raft, config: &NodeConfig) {
    match raft.is_initialized().await {
        Ok(true) | Err(_) => return,
        Ok(false) => {}
    }
    let members: BTreeMap<NodeId, MemberNode> = config
        .members
        .iter()
        .map(|m| {
            let node = MemberNode {
                name: m.name.clone(),
                peer_url: m.peer_url.clone(),
                client_url: m.client_url.clone(),
            };
            (m.id, node)
        })
        .collect();
    if let Err(e) = raft.initialize(members).await {
        tracing::debug!(error = %e, "cluster already formed");
    }
}

fn raft_config(config: &NodeConfig) -> Result<openraft::Config, openraft::ConfigError> {
    let r = &config.raft;
    openraft::Config {
        cluster_name: format!("registry-{:x}", config.cluster_id),
        heartbeat_interval: r.heartbeat_ms,
        // etcd's --election-timeout E: a follower that hears nothing for a random [E, 2E)
        // campaigns. openraft (0.9 and 0.10) makes a follower that had a leader wait its leader lease
        // (= election_timeout_max) plus its election timeout (random in [min, max), drawn once
        // per process; checked on a tick of 1.5 heartbeats), and a voter refuses a candidate
        // within that lease. With both taken as E (the old setting) failover took 2.5–3 s
        // where etcd takes 1–2 s. With max = 3E/5 and min = 2E/5 a follower campaigns after
        // [E, 1.2E): never before etcd's earliest, the timeouts of two members still differ by
        // up to E/5 (so they rarely split a vote), and the lease is 6 heartbeats by default.
        election_timeout_min: (r.election_timeout_ms * 2 / 5).max(r.heartbeat_ms + 1),
        election_timeout_max: (r.election_timeout_ms * 3 / 5).max(r.heartbeat_ms + 2),
        install_snapshot_timeout: 10_000,
        max_payload_entries: 1_000,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_logs),
        max_in_snapshot_log_to_keep: r.logs_to_keep,
        purge_batch_size: 256,
        // The leader replicates its entries as soon as they are submitted to its log, not
        // after its own fsync (leader and follower syncs overlap); the leader still counts
        // itself toward a commit only once its flush is done.
        broadcast_submitted_on_append: Some(true),
        // A member that was leader when it stopped comes back as a follower and must win an
        // election before it leads again. A restored leader may lack entries of its own term
        // that followers hold and acknowledged (it replicated them before its own flush): it
        // would serve linearizable reads at a stale committed index (found by the fault suite,
        // issue 13) and could append entries whose (term, index) collide with those.
        enable_leader_restore: Some(false),
        ..Default::default()
    }
    .validate()
}

impl NodeHandle {
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub(crate) fn raft(&self) -> &Raft {
        self.router.raft()
    }

    /// Cancelled when the member stops (also when it finds itself removed from the cluster).
    pub(crate) fn stopping(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What this member's Raft knows now (openraft's metrics, in plain numbers).
    pub fn raft_status(&self) -> RaftStatus {
        let m = self.router.raft().metrics();
        let m = m.borrow_watched();
        RaftStatus {
            id: m.id,
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            applied: m.last_applied.map(|l| l.index()),
            purged: m.purged.map(|l| l.index()),
            snapshot: m.snapshot.map(|l| l.index()),
        }
    }

    /// Where this member served linearizable reads so far (tests of follower reads).
    pub fn read_counts(&self) -> crate::routing::ReadCounts {
        self.router.read_stats().counts()
    }

    /// How many writes this member, as a follower, carried to the leader and in how many calls.
    pub fn forward_counts(&self) -> crate::routing::ForwardCounts {
        self.router.forward_queue().counts()
    }

    /// `http://<client addr>` (`https://` with TLS), for clients.
    pub fn client_url(&self) -> String {
        let tls = self.client_tls;
        format!(
            "{}://{}",
            if tls { "https" } else { "http" },
            self.client_addr
        )
    }

    /// Cuts (or restores) every Raft link of this member, both ways.
    pub fn set_isolated(&self, isolated: bool) {
        self.isolated
            .store(isolated, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_isolated(&self) -> bool {
        self.isolated.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops serving and stops Raft; the data directory is kept.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if let Err(e) = self.router.raft().shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        drop(self.raft_rt.stop);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
