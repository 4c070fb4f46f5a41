//! go-micro's registry over the etcd v3 API: works the same against our registry and real etcd.
//!
//! ```text
//!   Registry ──(Pool: failover over members)──► etcd v3 KV / Lease / Watch
//!     ├─ register()  → Registration (heartbeat task: keep-alive, re-put, re-grant)
//!     ├─ get_service() / list_services()   (counted in reads())
//!     └─ watch()     → Watcher (create / update / delete, Resync after a re-created watch)
//! ```

mod etcd;
mod health;
mod pool;
mod register;
mod types;
mod watch;

use std::time::Duration;

pub use etcd::Registry;
pub use health::member_healthy;
pub use pool::normalize;
pub use register::{RegisterOptions, Registration};
pub use types::{
    group_by_version, node_key, node_key_in, prefix_end, service_prefix, service_prefix_in,
    split_key, split_key_in, Endpoint, Metadata, Node, Service, Value, PREFIX,
};
pub use watch::{WatchEvent, Watcher};

/// How to reach the registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Member addresses, `host:port` or URLs.
    pub addresses: Vec<String>,
    /// Bound on connecting to one member.
    pub dial_timeout: Duration,
    /// Bound on one unary call to one member before the next is tried.
    pub request_timeout: Duration,
    /// Key prefix of every registration, ending in `/` ([`PREFIX`]: go-plugins' etcdv3;
    /// `/micro/registry/`: go-micro's built-in etcd registry from v1.14).
    pub prefix: String,
}

impl RegistryOptions {
    pub fn new(addresses: Vec<String>) -> Self {
        RegistryOptions {
            addresses,
            dial_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
            prefix: PREFIX.to_owned(),
        }
    }
}

/// What can go wrong talking to the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no registry address given")]
    NoEndpoints,
    #[error("bad registry address {address}")]
    Address {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("registry {op}: every member is unavailable: {status}")]
    Unavailable {
        op: &'static str,
        #[source]
        status: tonic::Status,
    },
    #[error("registry {op}: {status}")]
    Status {
        op: &'static str,
        #[source]
        status: tonic::Status,
    },
    #[error("registry {op}: the stream ended without an answer")]
    StreamEnded { op: &'static str },
    #[error("encode service {name}")]
    Encode {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("service {0} has no node to register")]
    NoNode(String),
    #[error("lease grant refused: {0}")]
    Grant(String),
}
