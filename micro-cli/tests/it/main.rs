//! The `micro` command end to end: `micro up` and the demo over real processes, failover, the
//! etcd backend, TLS, go-micro's global flags, reflection, `--handler=rpc/http`, the seed's
//! command lines verbatim, and the dashboard in a real browser.
//!
//! One integration-test binary for the whole package (each file under tests/ used to be its
//! own binary, each linking the whole dependency graph): a module per former file, so
//! `cargo test -p micro-cli --test it <module>::` selects one of them.

mod call_reflection;
/// The `micro up` harness ([`common::Demo`]).
mod common;
mod demo;
mod etcd_backend;
mod failover;
mod global_flags;
mod health;
mod http_handler;
/// Processes started by hand, one terminal each ([`procs::Cluster`], [`procs::Proc`]).
mod procs;
mod seed_verbatim;
mod up_tls;
mod web_dashboard;
