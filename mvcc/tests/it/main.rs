//! The state machine's integration tests: etcd's semantics applied to a pure Store.
//!
//! One integration-test binary for the whole package (each file under tests/ used to be its
//! own binary, each linking the whole dependency graph): a module per former file, so
//! `cargo test -p mvcc --test it <module>::` selects one of them.

mod alarm;
mod auth;
mod common;
mod compact;
mod hash;
mod kv;
mod lease;
mod range;
mod snapshot;
mod txn;
mod txn_checks;
