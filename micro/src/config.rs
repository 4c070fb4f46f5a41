//! go-micro's command-line flags and environment variables, as a clap [`Args`] struct that
//! binaries flatten into their own (`#[command(flatten)] micro: MicroArgs`).
//!
//! Every flag is `global`: flattened into a top-level command (as `micro` does), it is accepted
//! before or after the subcommand (`micro --registry=etcdv3 list services` and
//! `micro list services --registry=etcdv3`), as go-micro's global flags are.
//!
//! | flag | environment | default |
//! | --- | --- | --- |
//! | `--registry` | `MICRO_REGISTRY` | `etcd` (`etcdv3` is the same: both speak etcd v3) |
//! | `--registry_address` | `MICRO_REGISTRY_ADDRESS` | our three members |
//! | `--registry_prefix` | `MICRO_REGISTRY_PREFIX` | `/micro-registry/` (go-plugins' etcdv3) |
//! | `--register_ttl` | `MICRO_REGISTER_TTL` | 30 (seconds) |
//! | `--register_interval` | `MICRO_REGISTER_INTERVAL` | 10 (seconds) |
//! | `--selector` | `MICRO_SELECTOR` | `cache` (or `registry`) |
//! | `--selector_strategy` | `MICRO_SELECTOR_STRATEGY` | `random` (or `round-robin`) |
//! | `--server_name` | `MICRO_SERVER_NAME` | the service's own name |
//! | `--server_address` | `MICRO_SERVER_ADDRESS` | a free loopback port |
//! | `--server_advertise` | `MICRO_SERVER_ADVERTISE` | the bound address |
//! | `--client_retries` | `MICRO_CLIENT_RETRIES` | 1 |
//! | `--client_request_timeout` | `MICRO_CLIENT_REQUEST_TIMEOUT` | `5s` (Go's spelling) |
//! | `--client_pool_size` | `MICRO_CLIENT_POOL_SIZE` | 1 (connections per node) |
//! | `--metrics_address` | `MICRO_METRICS_ADDRESS` | off (`ip:port` or `:port`: Prometheus `/metrics` there) |
//!
//! The registry's TLS and auth flags (`--registry_tls_ca`, `--registry_username`, ...) are in
//! [`security`].

mod duration;
pub mod security;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

pub use duration::parse_go_duration;
pub use security::RegistrySecurityArgs;

use crate::client::ClientOptions;
use crate::registry::{RegisterOptions, RegistryOptions, PREFIX};
use crate::selector::{Kind, SelectorOptions, Strategy};
use crate::service::ServiceOptions;

/// The registry members of `cluster.toml`: cd0, cd1, cd2.
pub const DEFAULT_REGISTRY_ADDRESS: &str = "127.0.0.1:2379,127.0.0.1:2479,127.0.0.1:2579";

/// The names `--registry` accepts, each meaning the etcd v3 registry: `etcd` is go-micro's
/// built-in name, `etcdv3` go-plugins' (the one the seed's `micro` was built with).
pub const REGISTRY_NAMES: [&str; 2] = ["etcd", "etcdv3"];

/// Which registry implementation (go-micro's `--registry`); only etcd v3 is spoken, by our
/// registry and by real etcd alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistryKind {
    #[default]
    Etcd,
}

fn parse_registry(name: &str) -> Result<RegistryKind, String> {
    if REGISTRY_NAMES.contains(&name.trim()) {
        return Ok(RegistryKind::Etcd);
    }
    Err(format!(
        "unsupported registry {name:?}: accepted are {} (both the etcd v3 registry, ours or a real etcd)",
        REGISTRY_NAMES.join(", ")
    ))
}

fn parse_seconds(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a whole number of seconds of at least 1 \
             (a registration needs a lease that expires and a heartbeat that renews it)"
        )),
    }
}

fn parse_pool_size(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?}: expected a number of connections from 1 to 64"
        )),
    }
}

/// go-micro's `--server_address`: `host:port`, or `:port` for every interface.
fn parse_server_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix(':') {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
        }
    }
    text.parse()
        .map_err(|_| format!("{text:?}: expected ip:port or :port, e.g. 127.0.0.1:9090"))
}

/// go-micro's `--server_advertise`: the `host:port` registered instead of the bound address.
fn parse_advertise(text: &str) -> Result<String, String> {
    let text = text.trim();
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(text.to_owned())
        }
        _ => Err(format!("{text:?}: expected host:port, e.g. 10.0.0.5:9090")),
    }
}

/// The key prefix; a missing trailing `/` is added, so `/micro/registry` works as typed.
fn parse_prefix(text: &str) -> Result<String, String> {
    let text = text.trim();
    if !text.starts_with('/') {
        return Err(format!(
            "{text:?}: a registry prefix starts with '/', e.g. {PREFIX} or /micro/registry/"
        ));
    }
    Ok(if text.ends_with('/') {
        text.to_owned()
    } else {
        format!("{text}/")
    })
}

/// go-micro's flags.
#[derive(Debug, Clone, Args)]
pub struct MicroArgs {
    /// Registry implementation: etcd or etcdv3 (the same etcd v3 registry).
    #[arg(long = "registry", env = "MICRO_REGISTRY", global = true, value_parser = parse_registry, default_value = "etcd")]
    pub registry: RegistryKind,
    /// Comma-separated registry members, `host:port` (`http://` optional).
    #[arg(
        long = "registry_address",
        env = "MICRO_REGISTRY_ADDRESS",
        global = true,
        value_delimiter = ',',
        default_value = DEFAULT_REGISTRY_ADDRESS
    )]
    pub registry_address: Vec<String>,
    /// Key prefix of every registration: /micro-registry/ (go-plugins' etcdv3, the seed's), or
    /// /micro/registry/ (go-micro's built-in etcd registry from v1.14).
    #[arg(long = "registry_prefix", env = "MICRO_REGISTRY_PREFIX", global = true, value_parser = parse_prefix, default_value = PREFIX)]
    pub registry_prefix: String,
    /// Registration TTL in seconds (the lease's).
    #[arg(long = "register_ttl", env = "MICRO_REGISTER_TTL", global = true, value_parser = parse_seconds, default_value = "30")]
    pub register_ttl: u64,
    /// Seconds between heartbeats (lease keep-alive and key check).
    #[arg(long = "register_interval", env = "MICRO_REGISTER_INTERVAL", global = true, value_parser = parse_seconds, default_value = "10")]
    pub register_interval: u64,
    /// Node selection: `cache` (watch-driven) or `registry` (ask every time).
    #[arg(long = "selector", env = "MICRO_SELECTOR", global = true, value_enum, default_value_t = Kind::Cache)]
    pub selector: Kind,
    /// Selection strategy.
    #[arg(long = "selector_strategy", env = "MICRO_SELECTOR_STRATEGY", global = true, value_enum, default_value_t = Strategy::Random)]
    pub selector_strategy: Strategy,
    /// Name to register instead of the service's own (go-micro's server.Name).
    #[arg(long = "server_name", env = "MICRO_SERVER_NAME", global = true)]
    pub server_name: Option<String>,
    /// Address the server binds, `ip:port` or `:port`; a free loopback port if not given.
    #[arg(long = "server_address", env = "MICRO_SERVER_ADDRESS", global = true, value_parser = parse_server_address)]
    pub server_address: Option<SocketAddr>,
    /// `host:port` registered instead of the bound address (behind NAT, in containers).
    #[arg(long = "server_advertise", env = "MICRO_SERVER_ADVERTISE", global = true, value_parser = parse_advertise)]
    pub server_advertise: Option<String>,
    /// Extra attempts on another node when one is unreachable.
    #[arg(
        long = "client_retries",
        env = "MICRO_CLIENT_RETRIES",
        global = true,
        default_value_t = 1
    )]
    pub client_retries: u32,
    /// Bound on one call attempt, Go's spelling: 500ms, 5s, 1m.
    #[arg(long = "client_request_timeout", env = "MICRO_CLIENT_REQUEST_TIMEOUT", global = true, value_parser = parse_go_duration, default_value = "5s")]
    pub client_request_timeout: Duration,
    /// Connections kept per node address; calls are spread over them.
    #[arg(long = "client_pool_size", env = "MICRO_CLIENT_POOL_SIZE", global = true, value_parser = parse_pool_size, default_value = "1")]
    pub client_pool_size: usize,
    /// Serve Prometheus metrics (`GET /metrics`) on this address, `ip:port` or `:port`
    /// (`127.0.0.1:0`: a free port); off if not given.
    #[arg(long = "metrics_address", env = "MICRO_METRICS_ADDRESS", global = true, value_parser = parse_server_address)]
    pub metrics_address: Option<SocketAddr>,
    /// TLS and etcd auth towards the registry.
    #[command(flatten)]
    pub registry_security: RegistrySecurityArgs,
}

impl MicroArgs {
    /// Registry member URLs (`host:port` becomes `https://` when a TLS flag is given).
    pub fn registry_endpoints(&self) -> Vec<String> {
        let tls = self.registry_security.tls().is_some();
        self.registry_address
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(|a| crate::registry::normalize_for(a, tls))
            .collect()
    }

    pub fn registry_options(&self) -> RegistryOptions {
        RegistryOptions {
            prefix: self.registry_prefix.clone(),
            tls: self.registry_security.tls(),
            auth: self.registry_security.credentials(),
            ..RegistryOptions::new(self.registry_endpoints())
        }
    }

    pub fn register_options(&self) -> RegisterOptions {
        RegisterOptions {
            ttl: Duration::from_secs(self.register_ttl),
            interval: Duration::from_secs(self.register_interval),
        }
    }

    pub fn selector_options(&self) -> SelectorOptions {
        SelectorOptions {
            kind: self.selector,
            strategy: self.selector_strategy,
            ..SelectorOptions::default()
        }
    }

    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            request_timeout: self.client_request_timeout,
            retries: self.client_retries,
            pool_size: self.client_pool_size,
            ..ClientOptions::default()
        }
    }

    /// The options of a service called `name` unless `--server_name` says otherwise: bind
    /// address, advertised address, TTL and interval from the flags.
    pub fn service_options(&self, name: &str) -> ServiceOptions {
        let name = self
            .server_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or(name);
        let mut options = ServiceOptions::new(name);
        options.address = self.server_address;
        options.advertise = self.server_advertise.clone();
        options.register = self.register_options();
        options.metrics_address = self.metrics_address;
        options
    }
}

#[cfg(test)]
mod tests;
