//! Assembles a member: storage, Raft, the peer service and the etcd client services.
//! [`Node::serve`] is the one entry (listeners given, so tests bind port 0); [`Node::start`]
//! binds the configured addresses and calls it.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tracing::Instrument;

mod handle;
mod raft_setup;

use handle::RaftThread;
pub use handle::{NodeHandle, RaftStatus};
use raft_setup::{form_cluster, raft_config};

use crate::api::{
    cluster::ClusterService, kv::KvService, lease::LeaseService, maintenance::MaintenanceService,
    watch::WatchService,
};
use crate::config::NodeConfig;
use crate::http::MemberDisk;
use crate::lease::LeaseManager;
use crate::membership::join::Publish;
use crate::raft::peer::client::PeerNetwork;
use crate::raft::peer::server::PeerService;
use crate::raft::peer::Identity;
use crate::raft::{Raft, TypeConfig};
use crate::routing::{Router, RouterParts};
use crate::store::StateMachine;
use crate::watch::WatchSettings;

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
