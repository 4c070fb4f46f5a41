//! The gateway's command line: go-micro's `micro api` flags with their `MICRO_API_*` variables,
//! micro's cors plugin's, the body limit and the edge's [`Limits`].

use std::time::Duration;

use micro::config::MicroArgs;

use crate::Limits;

/// The gateway's flags (go-micro's `micro api` ones and their `MICRO_API_*` variables, micro's
/// cors plugin's, plus the body limit).
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Listen address: `[::]:8080`, `:8080` (every interface), `127.0.0.1:8080`.
    #[arg(long, env = "MICRO_API_ADDRESS", default_value = "[::]:8080")]
    pub address: String,
    /// Request handler: `api` (go.api.Request/Response), `rpc` (JSON to the endpoint's own
    /// messages, by the service's gRPC reflection), `http` or `proxy` (reverse proxy to a node).
    #[arg(long, env = "MICRO_API_HANDLER", default_value = "api")]
    pub handler: String,
    /// Namespace joined in front of the resolved service name.
    #[arg(long, env = "MICRO_API_NAMESPACE", default_value = "go.micro.api")]
    pub namespace: String,
    /// Comma-separated origins allowed by CORS (`*`: any); CORS is off without it.
    #[arg(
        long = "cors-allowed-origins",
        env = "CORS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_allowed_origins: Vec<String>,
    /// Comma-separated methods allowed by CORS (default GET, POST, HEAD).
    #[arg(
        long = "cors-allowed-methods",
        env = "CORS_ALLOWED_METHODS",
        value_delimiter = ','
    )]
    pub cors_allowed_methods: Vec<String>,
    /// Comma-separated request headers allowed by CORS (`*`: any; default Origin, Accept,
    /// Content-Type, X-Requested-With).
    #[arg(
        long = "cors-allowed-headers",
        env = "CORS_ALLOWED_HEADERS",
        value_delimiter = ','
    )]
    pub cors_allowed_headers: Vec<String>,
    /// Largest request body accepted (bytes); larger ones are answered 413.
    #[arg(long, alias = "max_body_bytes", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long = "max_connections", env = "MICRO_API_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections, value_parser = at_least(1))]
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; larger ones are answered 431
    /// (Go's `http.Server.MaxHeaderBytes`).
    #[arg(long = "max_header_bytes", env = "MICRO_API_MAX_HEADER_BYTES", default_value_t = Limits::default().max_header_bytes, value_parser = at_least(256))]
    pub max_header_bytes: usize,
    /// Time to read a request, head and body, and to wait for the next on a kept-alive
    /// connection (Go's spelling: 30s); a request not read in time is answered 408.
    #[arg(long = "read_timeout", env = "MICRO_API_READ_TIMEOUT", value_parser = positive_duration, default_value = "30s")]
    pub read_timeout: Duration,
    /// Time for the whole call once the request head is read; past it: 504.
    #[arg(long = "write_timeout", env = "MICRO_API_WRITE_TIMEOUT", value_parser = positive_duration, default_value = "60s")]
    pub write_timeout: Duration,
    #[command(flatten)]
    pub micro: MicroArgs,
}

impl GatewayArgs {
    /// The edge limits the flags give.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            read_timeout: self.read_timeout,
            write_timeout: self.write_timeout,
        }
    }
}

/// A count of at least `min`.
fn at_least(min: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(min..)
}

/// A Go duration above zero (a zero limit would refuse every request).
fn positive_duration(text: &str) -> Result<Duration, String> {
    match micro::config::parse_go_duration(text)? {
        d if d.is_zero() => Err(format!("{text:?}: must be above zero, e.g. 30s")),
        d => Ok(d),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    /// The flags as a command line of their own.
    #[derive(Parser)]
    pub(crate) struct Cli {
        #[command(flatten)]
        pub(crate) gateway: GatewayArgs,
    }

    #[test]
    fn defaults_are_micro_apis() {
        let cli = Cli::try_parse_from(["gateway"]).expect("parse");
        assert_eq!(cli.gateway.address, "[::]:8080");
        assert_eq!(cli.gateway.handler, "api");
        assert_eq!(cli.gateway.namespace, "go.micro.api");
        assert_eq!(cli.gateway.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(cli.gateway.limits(), Limits::default());
        assert!(cli.gateway.cors_allowed_origins.is_empty());
    }

    #[test]
    fn limit_flags() {
        let cli = Cli::try_parse_from([
            "gateway",
            "--max_connections=10",
            "--max_header_bytes=4096",
            "--read_timeout=1m30s",
            "--write_timeout=500ms",
        ])
        .expect("parse");
        let limits = cli.gateway.limits();
        assert_eq!(
            (limits.max_connections, limits.max_header_bytes),
            (10, 4096)
        );
        assert_eq!(limits.read_timeout, Duration::from_secs(90));
        assert_eq!(limits.write_timeout, Duration::from_millis(500));
        for bad in [
            "--max_connections=0",
            "--max_header_bytes=10",
            "--read_timeout=0s",
            "--write_timeout=soon",
        ] {
            assert!(Cli::try_parse_from(["gateway", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn cors_flags_are_comma_separated_lists() {
        let cli = Cli::try_parse_from([
            "gateway",
            "--cors-allowed-origins=http://a.example,http://b.example",
            "--cors-allowed-methods",
            "GET,PUT",
            "--cors-allowed-headers=X-Token",
        ])
        .expect("parse");
        assert_eq!(
            cli.gateway.cors_allowed_origins,
            ["http://a.example", "http://b.example"]
        );
        assert_eq!(cli.gateway.cors_allowed_methods, ["GET", "PUT"]);
        assert_eq!(cli.gateway.cors_allowed_headers, ["X-Token"]);
    }
}
