//! The registry node: one member of a Raft cluster that serves the etcd v3 API (binary
//! `registry-node`; `micro registry-node` runs the same [`cli::run`]).
//!
//! ```text
//!  etcd clients ──gRPC──▶ api: kv (grpc-lite handlers), lease, watch, cluster, maintenance (tonic)
//!                           └─ api::route: on the leader, a write is proposed through Raft
//!                              (raft::batch); a follower sends it on (api::forward); a
//!                              linearizable read waits for a read index, then reads locally
//!  peers ◀──member link (raft::peer: one tonic stream per peer, handshake checked both
//!           ways; raft::wire converts openraft's messages)──▶ openraft 0.10 ──▶ raft-log (WAL)
//!                                                             └──▶ store (mvcc + snapshot)
//!  lease: the lessor on the leader, fed the grants and revokes by the state machine
//!         (store::LeaseFeed); expiries and checkpoints are proposed through Raft
//!  watch: every member streams the events it applies (api::watch, watch::Watcher)
//!  auth (api::auth*, mvcc's auth), membership (member add/remove/..., joining a running
//!  cluster), tls (etcd's TLS flags, both ports), restore (--restore FILE), http (JSON
//!  gateway, /metrics, /health), compaction (auto-compaction, quota, corruption check)
//! ```
//!
//! [`node`] assembles a member ([`Node::serve`]); [`testing::TestCluster`] runs several in one
//! process. ARCHITECTURE.md, at the repository root, follows a request through these modules.

// openraft's error types are large by design; boxing them everywhere buys nothing here.
#![allow(clippy::result_large_err)]

// The public API is small: a member ([`Node`], [`NodeConfig`], the cluster file), the
// command line ([`cli`]) and in-process clusters for tests ([`testing`]). Everything else is
// this crate's own business (`unreachable_pub` is warned in the workspace).
mod api;
mod batching;
pub mod cli;
mod compaction;
mod config;
mod errors;
mod http;
mod lease;
mod logging;
mod membership;
mod node;
mod raft;
mod restore;
mod routing;
mod store;
pub mod testing;
mod tls;
mod watch;

pub use compaction::CompactionSection;
pub use config::{
    ClusterFile, ClusterSection, ConfigError, MemberSection, MemberSpec, NodeConfig, RaftSection,
};
pub use membership::join::ClusterState;
pub use node::{Node, NodeError, NodeHandle, RaftStatus};
pub use routing::{ForwardCounts, ReadCounts};
pub use tls::{TlsArgs, TlsSection};
