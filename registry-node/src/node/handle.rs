//! A running member as its owner sees it ([`NodeHandle`]), and the thread its Raft runs on.

use openraft::async_runtime::WatchReceiver;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::NodeError;
use crate::config::NodeConfig;
use crate::raft::{NodeId, Raft};
use crate::routing::Router;

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
    pub(super) config: NodeConfig,
    pub(super) client_tls: bool,
    pub client_addr: std::net::SocketAddr,
    pub peer_addr: std::net::SocketAddr,
    pub(super) isolated: Arc<AtomicBool>,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) raft_rt: RaftThread,
}

/// The thread that runs this member's Raft: openraft's core, its state-machine worker and the
/// replication tasks, on one single-threaded runtime. A write passes from the core to the
/// replication task, to the peer connection and back, and to the state machine: on one thread
/// each of those steps is a queue push instead of a wake-up of another tokio worker (on this
/// 2-core machine, put latency 1 client: see bench/findings.md, third round). The peer server
/// and the peer connections run here too; client gRPC serving stays on the process's
/// multi-threaded runtime.
pub(super) struct RaftThread {
    pub(super) handle: tokio::runtime::Handle,
    /// Ends the thread (and drops whatever still runs on it) when cancelled or dropped.
    stop: tokio_util::sync::DropGuard,
}

impl RaftThread {
    pub(super) fn start(name: &str) -> Result<Self, NodeError> {
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
