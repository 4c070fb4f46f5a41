//! A member's integration tests: in-process clusters and processes, `etcdctl` and etcd3gw
//! against ours and a real etcd 3.4, membership, snapshot and restore, TLS, auth, alarms.
//!
//! One integration-test binary for the whole package (each file under tests/ used to be its
//! own binary, each linking the whole dependency graph): a module per former file, so
//! `cargo test -p registry-node --test it <module>::` selects one of them.
//! The member link's own tests (strangers, floods) are unit tests beside it
//! (`src/raft/peer/link_tests.rs`): they use the crate's internals.

mod auth;
mod cluster;
mod common;
mod compaction;
mod corrupt_alarm;
mod etcdctl;
mod follower_read;
mod health_metrics;
mod http_api;
mod lease_edges;
mod lease_watch;
mod lock_election;
mod maintenance_hash;
mod membership;
mod process;
mod quota_alarm;
mod scale;
mod snapshot_restore;
mod tls;
mod watch_api;
