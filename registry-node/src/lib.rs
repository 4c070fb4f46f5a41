//! The registry node: one member of a Raft cluster that serves the etcd v3 API.
//!
//! ```text
//!  etcd clients ──gRPC──▶ api (kv, cluster, maintenance) ──▶ route: leader? ─┬─ propose via Raft
//!                                                                            └─ forward to leader
//!  peers ◀──gRPC (raft::peer_service / raft::network)──▶ openraft ──▶ raft-log (WAL)
//!                                                                └──▶ store (mvcc + snapshot file)
//! ```

// openraft's error types are large by design; boxing them everywhere buys nothing here.
#![allow(clippy::result_large_err)]

pub mod api;
pub mod batching;
pub mod cli;
pub mod config;
pub mod lease;
mod logging;
pub mod node;
pub mod raft;
pub mod store;
pub mod testing;
pub mod watch;

pub use config::{ClusterFile, ConfigError, NodeConfig};
pub use node::{Node, NodeError, NodeHandle};
