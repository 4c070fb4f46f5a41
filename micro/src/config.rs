//! go-micro's command-line flags and environment variables, as a clap [`Args`] struct that
//! binaries flatten into their own (`#[command(flatten)] micro: MicroArgs`).
//!
//! | flag | environment | default |
//! | --- | --- | --- |
//! | `--registry` | `MICRO_REGISTRY` | `etcd` |
//! | `--registry_address` | `MICRO_REGISTRY_ADDRESS` | our three members |
//! | `--register_ttl` | `MICRO_REGISTER_TTL` | 30 (seconds) |
//! | `--register_interval` | `MICRO_REGISTER_INTERVAL` | 10 (seconds) |
//! | `--selector` | `MICRO_SELECTOR` | `cache` |
//! | `--server_address` | `MICRO_SERVER_ADDRESS` | a free port |

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::registry::{RegisterOptions, RegistryOptions};
use crate::selector::{Kind, SelectorOptions, Strategy};

/// The registry members of `cluster.toml`: cd0, cd1, cd2.
pub const DEFAULT_REGISTRY_ADDRESS: &str = "127.0.0.1:2379,127.0.0.1:2479,127.0.0.1:2579";

/// Which registry implementation (go-micro's `--registry`); only etcd v3 is spoken, by our
/// registry and by real etcd alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RegistryKind {
    #[default]
    Etcd,
}

/// go-micro's flags.
#[derive(Debug, Clone, Args)]
pub struct MicroArgs {
    /// Registry implementation.
    #[arg(long = "registry", env = "MICRO_REGISTRY", value_enum, default_value_t = RegistryKind::Etcd)]
    pub registry: RegistryKind,
    /// Comma-separated registry members, `host:port` (`http://` optional).
    #[arg(
        long = "registry_address",
        env = "MICRO_REGISTRY_ADDRESS",
        value_delimiter = ',',
        default_value = DEFAULT_REGISTRY_ADDRESS
    )]
    pub registry_address: Vec<String>,
    /// Registration TTL in seconds.
    #[arg(
        long = "register_ttl",
        env = "MICRO_REGISTER_TTL",
        default_value_t = 30
    )]
    pub register_ttl: u64,
    /// Interval in seconds between re-registrations (heartbeats).
    #[arg(
        long = "register_interval",
        env = "MICRO_REGISTER_INTERVAL",
        default_value_t = 10
    )]
    pub register_interval: u64,
    /// Node selection: `cache` (watch-driven) or `registry` (ask every time).
    #[arg(long = "selector", env = "MICRO_SELECTOR", value_enum, default_value_t = Kind::Cache)]
    pub selector: Kind,
    /// Selection strategy.
    #[arg(long = "selector_strategy", env = "MICRO_SELECTOR_STRATEGY", value_enum, default_value_t = Strategy::Random)]
    pub selector_strategy: Strategy,
    /// Address the server binds, e.g. `0.0.0.0:9090`; a free port if not given.
    #[arg(long = "server_address", env = "MICRO_SERVER_ADDRESS")]
    pub server_address: Option<SocketAddr>,
}

impl MicroArgs {
    /// Registry member URLs.
    pub fn registry_endpoints(&self) -> Vec<String> {
        self.registry_address
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(crate::registry::normalize)
            .collect()
    }

    pub fn registry_options(&self) -> RegistryOptions {
        RegistryOptions::new(self.registry_endpoints())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        micro: MicroArgs,
    }

    #[test]
    fn defaults_are_go_micros_and_our_members() {
        let cli = Cli::try_parse_from(["x"]).expect("parse");
        assert_eq!(
            cli.micro.registry_endpoints(),
            [
                "http://127.0.0.1:2379",
                "http://127.0.0.1:2479",
                "http://127.0.0.1:2579"
            ]
        );
        assert_eq!(cli.micro.register_options().ttl, Duration::from_secs(30));
        assert_eq!(
            cli.micro.register_options().interval,
            Duration::from_secs(10)
        );
        assert_eq!(cli.micro.selector, Kind::Cache);
    }

    #[test]
    fn go_micro_flag_names() {
        let cli = Cli::try_parse_from([
            "x",
            "--registry_address",
            "http://10.0.0.1:2379,10.0.0.2:2379",
            "--register_ttl=3",
            "--register_interval=1",
            "--selector=registry",
            "--server_address=127.0.0.1:9090",
            "--registry=etcd",
        ])
        .expect("parse");
        assert_eq!(
            cli.micro.registry_endpoints(),
            ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(cli.micro.register_ttl, 3);
        assert_eq!(cli.micro.selector, Kind::Registry);
        assert_eq!(
            cli.micro.server_address,
            Some("127.0.0.1:9090".parse().expect("addr"))
        );
    }
}
