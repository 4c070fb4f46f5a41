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
mod secure;
mod types;
mod watch;

use std::time::Duration;

pub use etcd::Registry;
pub use health::{member_healthy, member_healthy_with};
pub use pool::{normalize, normalize_for};
pub use register::{RegisterOptions, Registration};
pub use secure::{Credentials, Pem, TlsOptions};
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
    /// TLS towards the members (go-micro's `Secure` / `TLSConfig`); `None`: TLS only for
    /// `https://` addresses, checked against the system's roots.
    pub tls: Option<TlsOptions>,
    /// An etcd user to authenticate as (go-micro's `Auth`); `None`: no token.
    pub auth: Option<Credentials>,
}

impl RegistryOptions {
    pub fn new(addresses: Vec<String>) -> Self {
        RegistryOptions {
            addresses,
            dial_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(3),
            prefix: PREFIX.to_owned(),
            tls: None,
            auth: None,
        }
    }

    /// Whether the members are spoken to over TLS: TLS options given, or an `https://` address.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
            || self
                .addresses
                .iter()
                .any(|a| a.trim().starts_with("https://"))
    }

    /// tonic's TLS settings for the members, if TLS is used (files read now).
    pub(crate) fn tls_config(&self) -> Result<Option<tonic::transport::ClientTlsConfig>, Error> {
        if !self.uses_tls() {
            return Ok(None);
        }
        self.tls
            .clone()
            .unwrap_or_default()
            .client_config()
            .map(Some)
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
    #[error(
        "registry {op}: every member closed the TLS connection without answering: a member \
         run with --client-cert-auth wants a client certificate (--registry_tls_cert and \
         --registry_tls_key): {status}"
    )]
    ClientCertificate {
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
    #[error("registry TLS: {0}")]
    TlsConfig(String),
    #[error("registry TLS: cannot read the {what} {}", path.display())]
    TlsFile {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registry authentication as user {user:?} failed: {}", status.message())]
    Auth {
        user: String,
        #[source]
        status: tonic::Status,
    },
}
