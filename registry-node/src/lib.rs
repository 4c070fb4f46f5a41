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

pub mod api;
pub mod batching;
pub mod cli;
pub mod compaction;
pub mod config;
pub mod http;
pub mod lease;
mod logging;
pub mod membership;
pub mod node;
pub mod raft;
pub mod restore;
pub mod store;
pub mod testing;
pub mod tls;
pub mod watch;

pub use config::{ClusterFile, ConfigError, NodeConfig};
pub use node::{Node, NodeError, NodeHandle};
