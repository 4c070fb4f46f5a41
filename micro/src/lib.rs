//! go-micro's framework in Rust: what a service author uses to register a service, find others
//! and call them, against our registry or a real etcd cluster (both speak etcd v3).
//!
//! - [`registry`]: go-micro's registry over etcd v3 (key layout, JSON, leases, watch), over TLS
//!   and with etcd auth when configured (`--registry_tls_*`, `--registry_username`).
//! - [`selector`]: picks a node: `cache` (watch-driven) or `registry`; `random` or `round_robin`.
//! - [`client`]: gRPC calls with go-micro naming, per-call timeout, one retry on another node
//!   when a node cannot be reached; one `grpc-lite` HTTP/2 client connection per node.
//! - [`server`]: `grpc-lite`'s gRPC server, re-exported: unary handlers by path, tonic services
//!   as the fallback; the registry's client API uses it too.
//! - [`grpc`]: gRPC framing, `grpc-timeout` and status trailers, shared by server and client
//!   (`grpc-lite`).
//! - [`service`]: the runner: server, registration, heartbeat, graceful stop.
//! - [`handler`]: what `micro-build`'s generated code mounts (handlers, endpoint trees);
//!   [`stream`]: streaming RPCs both sides (tonic).
//! - [`wrapper`]: middleware as tower layers on client and server (logging, retry with
//!   backoff, circuit breaker); [`metrics`]: Prometheus per endpoint; [`health`]:
//!   `grpc.health.v1` served by every service.
//! - [`config`]: go-micro's flags and environment variables.
//! - [`errors`]: go-micro's `{id, code, detail, status}` error.
//! - [`process`]: what every binary starts with: logging, a Ctrl-C / SIGTERM shutdown token.
//! - [`testing`]: a real three-member etcd launcher and the backends the tests run against.

pub mod client;
pub mod config;
pub mod errors;
pub mod handler;
pub mod health;
pub mod metrics;
pub mod process;
pub mod registry;
pub mod selector;
pub mod service;
pub mod stream;
pub mod testing;
pub mod wrapper;

pub use grpc_lite::{grpc, server};
/// Includes the code `micro-build` generated for a proto package (tonic's macro: same file).
pub use tonic::include_proto;

pub use client::{Client, ClientOptions};
pub use config::MicroArgs;
pub use errors::Error;
pub use registry::{Registry, RegistryOptions};
pub use selector::{Selector, SelectorOptions};
pub use service::{Running, Service, ServiceOptions};
