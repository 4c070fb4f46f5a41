//! The framework's integration tests: registration, failover, health and metrics, the secure
//! registry client and the wrappers, against a real etcd and our embedded registry.
//!
//! One integration-test binary for the whole package (each file under tests/ used to be its
//! own binary, each linking the whole dependency graph): a module per former file, so
//! `cargo test -p micro --test it <module>::` selects one of them.

/// Holds `slot()`: one limit of two clusters at once for all the modules, as each former
/// binary had for itself (the binaries ran one after another).
mod common;
mod failover;
mod health_metrics;
mod registration;
mod registry_secure;
mod wrappers;
