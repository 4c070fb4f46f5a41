//! An in-process test cluster, after etcd's integration cluster helper: N members on free
//! loopback ports in a temporary directory, with stop (data kept), restart, isolate and heal.
//! Everything waits on conditions with deadlines; nothing sleeps for a fixed time.

use openraft::async_runtime::WatchReceiver;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::config::CompactionSection;
use crate::config::{ClusterFile, ClusterSection, MemberSection, NodeConfig, RaftSection};
use crate::node::{Node, NodeHandle};
use crate::raft::NodeId;

pub struct TestCluster {
    dir: tempfile::TempDir,
    configs: Vec<NodeConfig>,
    nodes: Vec<Option<NodeHandle>>,
}

/// A free loopback port for a server started later: below Linux's ephemeral range (32768+),
/// so no `bind(:0)` or outgoing connection takes it in the meantime, and never the same one
/// twice in a process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7_919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let _ = NEXT.compare_exchange(0, seed % SPAN + 1, Ordering::SeqCst, Ordering::SeqCst);
    (0..SPAN)
        .map(|_| (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below the ephemeral range")
}

/// Binds a listener on a free loopback port.
pub async fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free loopback port")
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

impl TestCluster {
    /// Starts `n` members with default timers.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, |_| {}).await
    }

    /// Starts `n` members after `tune` adjusted the Raft section.
    pub async fn start_with(n: usize, tune: impl FnOnce(&mut RaftSection)) -> Self {
        let mut raft = RaftSection::default();
        tune(&mut raft);
        Self::start_configured(n, raft, CompactionSection::default()).await
    }

    /// Starts `n` members with these Raft and auto-compaction sections.
    pub async fn start_configured(
        n: usize,
        raft: RaftSection,
        compaction: CompactionSection,
    ) -> Self {
        init_tracing();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut listeners = Vec::new();
        let mut members = Vec::new();
        for i in 0..n {
            let client = free_listener().await;
            let peer = free_listener().await;
            let url = |l: &TcpListener| format!("http://{}", l.local_addr().expect("addr"));
            members.push(MemberSection {
                name: format!("cd{i}"),
                client_url: url(&client),
                peer_url: url(&peer),
            });
            listeners.push((client, peer));
        }
        let file = ClusterFile {
            cluster: ClusterSection {
                token: "test-cluster".into(),
                data_dir: dir.path().to_owned(),
            },
            raft,
            compaction,
            tls: Default::default(),
            members,
            registry: None,
            services: None,
            gateway: None,
        };
        let path = dir.path().join("cluster.toml");
        let configs: Vec<NodeConfig> = (0..n)
            .map(|i| {
                file.node_config(&path, &format!("cd{i}"))
                    .expect("member config")
            })
            .collect();
        let mut nodes = Vec::new();
        for ((client, peer), config) in listeners.into_iter().zip(&configs) {
            let node = Node::serve(config.clone(), client, peer)
                .await
                .expect("start member");
            nodes.push(Some(node));
        }
        TestCluster {
            dir,
            configs,
            nodes,
        }
    }

    pub fn len(&self) -> usize {
        self.configs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn config(&self, i: usize) -> &NodeConfig {
        &self.configs[i]
    }

    /// A running member; panics if it is stopped.
    pub fn node(&self, i: usize) -> &NodeHandle {
        self.nodes[i].as_ref().expect("member is running")
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// Client URLs of every member (running or not).
    pub fn endpoints(&self) -> Vec<String> {
        self.configs
            .iter()
            .map(|c| format!("http://{}", c.client_addr))
            .collect()
    }

    pub fn client_url(&self, i: usize) -> String {
        format!("http://{}", self.configs[i].client_addr)
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.configs.iter().position(|c| c.id == id)
    }

    /// Waits until every running, connected member agrees on one leader that is running.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let views: Vec<Option<NodeId>> = self
                .nodes
                .iter()
                .flatten()
                .filter(|n| !n.is_isolated())
                .map(|n| n.raft().metrics().borrow_watched().current_leader)
                .collect();
            if let Some(Some(id)) = views.first() {
                if views.iter().all(|v| *v == Some(*id)) {
                    if let Some(i) = self.index_of(*id) {
                        if self.is_running(i) && !self.node(i).is_isolated() {
                            return Ok(i);
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no agreed leader within {timeout:?}: views {views:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until member `i` has applied at least `index`.
    pub async fn wait_applied(
        &self,
        i: usize,
        index: u64,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut rx = self.node(i).router.sm().applied_index();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|a| *a >= index))
            .await
            .map_err(|_| format!("member {i} did not apply index {index} within {timeout:?}"))?
            .map(|_| ())
            .map_err(|e| e.to_string());
        reached
    }

    /// Stops member `i`; its data directory stays.
    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown().await;
        }
    }

    /// Starts a stopped member again on its old addresses and data.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "member {i} is running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Node::start(self.configs[i].clone()).await {
                Ok(node) => {
                    self.nodes[i] = Some(node);
                    return;
                }
                // The old sockets may take a moment to be released.
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "restart retry");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("restart member {i}: {e}"),
            }
        }
    }

    /// Cuts every Raft link of member `i`.
    pub fn isolate(&self, i: usize) {
        self.node(i).set_isolated(true);
    }

    /// Restores the links of member `i`.
    pub fn heal(&self, i: usize) {
        self.node(i).set_isolated(false);
    }

    /// Stops every member and removes the data.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }
}
