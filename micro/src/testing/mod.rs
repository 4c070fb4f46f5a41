//! Test support shared by this crate's tests and later ones (gateway, demo): a real etcd
//! cluster launcher ([`EtcdCluster`]), the [`Backend`] a suite runs against (real etcd, or our
//! in-process registry with the `embedded` feature), and deadline-bound waiting.
//!
//! Without an `etcd` binary, [`Backend::start`] of the etcd kind says so and returns `None`
//! (the test is skipped), or panics when the `CI` environment variable is set.

mod etcd;

use std::time::Duration;

use tokio::time::Instant;

pub use etcd::{etcd_binary, free_port, EtcdCluster};

/// Why a test cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no etcd binary on PATH (apt-get install etcd-server)")]
    NoEtcd,
    #[error("etcd member {member} did not become healthy; see {log}")]
    NotHealthy {
        member: String,
        log: std::path::PathBuf,
    },
    #[error("io")]
    Io(#[source] std::io::Error),
}

/// Which registry a suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// A real three-member etcd cluster (child processes).
    Etcd,
    /// Our in-process three-member registry (needs the `embedded` feature).
    Embedded,
}

/// A running three-member registry of either kind.
pub enum Backend {
    Etcd(EtcdCluster),
    #[cfg(feature = "embedded")]
    Embedded(registry_node::testing::TestCluster),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("kind", &self.kind())
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

impl Backend {
    /// Starts a three-member registry of `kind`; `None` if the test should be skipped.
    pub async fn start(kind: BackendKind) -> Option<Backend> {
        match kind {
            BackendKind::Etcd => {
                if etcd_binary().is_none() {
                    let ci = std::env::var_os("CI").is_some();
                    eprintln!("NOTICE: no `etcd` binary on PATH: the real-etcd test is skipped (install etcd-server)");
                    assert!(!ci, "CI is set and there is no `etcd` binary: failing");
                    return None;
                }
                match EtcdCluster::start(3).await {
                    Ok(c) => Some(Backend::Etcd(c)),
                    Err(e) => panic!("start a real etcd cluster: {e}"),
                }
            }
            #[cfg(feature = "embedded")]
            BackendKind::Embedded => {
                let cluster = registry_node::testing::TestCluster::start(3).await;
                if let Err(e) = cluster.wait_for_leader(Duration::from_secs(30)).await {
                    panic!("embedded registry has no leader: {e}");
                }
                Some(Backend::Embedded(cluster))
            }
            #[cfg(not(feature = "embedded"))]
            BackendKind::Embedded => {
                eprintln!("NOTICE: micro built without the `embedded` feature: test skipped");
                None
            }
        }
    }

    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Etcd(_) => BackendKind::Etcd,
            #[cfg(feature = "embedded")]
            Backend::Embedded(_) => BackendKind::Embedded,
        }
    }

    /// Client URLs of the three members.
    pub fn endpoints(&self) -> Vec<String> {
        match self {
            Backend::Etcd(c) => c.endpoints(),
            #[cfg(feature = "embedded")]
            Backend::Embedded(c) => c.endpoints(),
        }
    }

    /// Stops (kills) member `i`.
    pub async fn stop(&mut self, i: usize) {
        match self {
            Backend::Etcd(c) => c.stop(i).await,
            #[cfg(feature = "embedded")]
            Backend::Embedded(c) => c.stop(i).await,
        }
    }

    pub async fn shutdown(self) {
        match self {
            Backend::Etcd(c) => c.shutdown().await,
            #[cfg(feature = "embedded")]
            Backend::Embedded(c) => c.shutdown().await,
        }
    }
}

/// Polls `check` until it returns `Some`, or panics naming `what` once `timeout` has passed.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
