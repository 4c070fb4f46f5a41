//! The registry node: one member of a Raft cluster that serves the etcd v3 API (binary
//! `registry-node`; `micro registry-node` runs the same [`cli::run`]).
//!
//! ```text
//!  etcd clients ──gRPC──▶ api: one service struct each (kv on grpc-lite handlers; lease,
//!                         watch, cluster, maintenance, auth, lock, election on tonic)
//!                           └─ routing::Router, shared by every service: on the leader a
//!                              write is proposed through Raft (raft::batch); a follower
//!                              sends it on (routing::ForwardQueue); a linearizable read
//!                              waits for a read index, then reads locally
//!  peers ◀──member link (raft::peer: one tonic stream per peer, handshake checked both
//!           ways; raft::wire converts openraft's messages)──▶ openraft 0.10 ──▶ raft-log (WAL)
//!           read indexes and forwarded writes: raft::peer::server::LeaderSide,   └──▶ store
//!           implemented by routing                                  (mvcc + snapshot)
//!  lease: the lessor on the leader, fed the grants and revokes by the state machine
//!         (store::LeaseFeed); expiries and checkpoints are proposed through Raft
//!  watch: every member streams the events it applies (the hub: watch::WatchStream,
//!         watch::Watcher)
//!  auth (api::auth*; access: every call's permission check; mvcc's auth), membership
//!  (member add/remove/..., joining a running cluster), tls (etcd's TLS flags, both ports), restore (--restore FILE), http (JSON
//!  gateway, /metrics, /health), compaction (auto-compaction), errors (the one mapping to
//!  etcd's gRPC errors), types (openraft's type configuration), config (cluster.toml and
//!  its sections)
//! ```
//!
//! The top-level modules form no cycle (checked by the `layering` test): `types`, `config`,
//! `errors` at the bottom; `store`, `raft`, `routing` above them; `access`, `watch`, `lease`,
//! `membership`, then `api` and `http` above those; `node` assembles a member ([`Node::serve`]);
//! [`testing::TestCluster`] runs several in one process. ARCHITECTURE.md, at the repository
//! root, follows a request through these modules.

// openraft's error types are large by design; boxing them everywhere buys nothing here.
#![allow(clippy::result_large_err)]

// The public API is small: a member ([`Node`], [`NodeConfig`], the cluster file), the
// command line ([`cli`]) and in-process clusters for tests ([`testing`]). Everything else is
// this crate's own business (`unreachable_pub` is warned in the workspace).
mod access;
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
mod types;
mod watch;

#[cfg(test)]
mod layering;

pub use config::Policy as CompactionPolicy;
pub use config::{
    ClusterFile, ClusterSection, ClusterState, CompactionSection, ConfigError, MemberSection,
    MemberSpec, NodeConfig, RaftSection, TlsSection,
};
pub use node::{Node, NodeError, NodeHandle, RaftStatus};
pub use routing::{ForwardCounts, ReadCounts};
pub use tls::TlsArgs;
