//! The HTTP API gateway, go-micro's `micro api --handler=api`: an HTTP request to
//! `/greeter/say/hello?name=John` becomes a `go.api.Request` RPC to `Say.Hello` of a random node
//! of `go.micro.api.greeter` (the cache selector follows the registry with a watch), and the
//! `go.api.Response` becomes the HTTP answer.
//!
//! - [`serve`]: the accept loop; [`http1`]: each connection, plain HTTP/1.1 requests without a
//!   body on the gateway's own fast path, everything else (bodies, HTTP/2) on hyper;
//! - [`resolve`]: path → (service, endpoint), go-micro's rules (pure);
//! - [`request`] / [`response`]: the HTTP ↔ `go.api` mapping;
//! - [`handler`]: [`Gateway`], whose `answer` serves every request on both paths; [`router`]
//!   mounts it in axum;
//! - [`error`]: [`GatewayError`], rendered as go-micro's JSON error body;
//! - [`limits`]: the public edge's bounds (connections 503, head size 431, read time 408,
//!   call time 504);
//! - [`cors`]: CORS as micro's cors plugin configures it;
//! - [`rpc`]: `--handler=rpc`, JSON to any service's own messages, found by [`reflect`]ion;
//! - [`proxy`]: `--handler=http` (or `proxy`), a reverse proxy to a service's HTTP nodes.
//!
//! [`run`] also registers the gateway itself as `go.micro.api` (or `--server_name`), as
//! `micro api` does, with its own lease, and deregisters it on the way out.

pub mod cors;
pub mod error;
pub mod handler;
pub mod http1;
pub mod limits;
pub mod proxy;
pub mod reflect;
pub mod request;
pub mod resolve;
pub mod response;
pub mod rpc;

use std::net::SocketAddr;
use std::time::Duration;

use micro::config::MicroArgs;
use micro::registry::Registry;
use micro::{Client, Selector};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use cors::Cors;
pub use error::{GatewayError, API_ID};
pub use handler::{router, Gateway, Mode};
pub use limits::Limits;

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

/// Why the gateway could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported handler {0:?}: supported are api, rpc, http, proxy")]
    Handler(String),
    #[error("invalid listen address {0:?}")]
    Address(String),
    #[error("bind {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("registry client")]
    Registry(#[from] micro::registry::Error),
    #[error("register the gateway")]
    Register(#[from] micro::service::Error),
    #[error("serve HTTP")]
    Serve(#[source] std::io::Error),
}

/// The addresses to try for a listen address: `:8080` means every interface (IPv6 and IPv4,
/// falling back to IPv4 only).
pub fn listen_candidates(address: &str) -> Result<Vec<String>, Error> {
    let address = address.trim();
    if let Some(port) = address.strip_prefix(':') {
        port.parse::<u16>()
            .map_err(|_| Error::Address(address.to_owned()))?;
        return Ok(vec![format!("[::]:{port}"), format!("0.0.0.0:{port}")]);
    }
    match address.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            Ok(vec![address.to_owned(), format!("0.0.0.0:{}", addr.port())])
        }
        Ok(_) => Ok(vec![address.to_owned()]),
        // A host name (`localhost:8080`): resolved by bind.
        Err(_)
            if address
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
        {
            Ok(vec![address.to_owned()])
        }
        Err(_) => Err(Error::Address(address.to_owned())),
    }
}

/// Binds the first candidate of `address` that works.
pub async fn bind(address: &str) -> Result<TcpListener, Error> {
    let mut last = None;
    for candidate in listen_candidates(address)? {
        match TcpListener::bind(&candidate).await {
            Ok(listener) => return Ok(listener),
            Err(source) => {
                last = Some(Error::Bind {
                    address: candidate,
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Address(address.to_owned())))
}

/// The gateway state for `args`: a registry client, its selector and an RPC client.
pub fn gateway(args: &GatewayArgs) -> Result<Gateway, Error> {
    let timeout = args.micro.client_request_timeout;
    let mode = match args.handler.as_str() {
        "api" => Mode::Api,
        "rpc" => Mode::Rpc(rpc::Rpc::new(timeout)),
        "http" | "proxy" => Mode::Http(Box::new(proxy::Proxy::new(timeout))),
        other => return Err(Error::Handler(other.to_owned())),
    };
    let registry = Registry::new(&args.micro.registry_options())?;
    let selector = Selector::new(registry, args.micro.selector_options());
    let client = Client::new(selector, args.micro.client_options());
    let cors = Cors::new(
        &args.cors_allowed_origins,
        &args.cors_allowed_methods,
        &args.cors_allowed_headers,
    );
    Ok(Gateway::build(
        client,
        &args.namespace,
        args.max_body_bytes,
        cors,
        mode,
    ))
}

/// Registers the gateway as `go.micro.api` (or `--server_name`), as `micro api` does: a node
/// of its own gRPC server (free loopback port, or `--server_address`), which serves no endpoint,
/// on its own lease of `--register_ttl`.
pub async fn register_self(args: &GatewayArgs) -> Result<micro::Running, Error> {
    let registry = Registry::new(&args.micro.registry_options())?;
    let options = args.micro.service_options(API_ID);
    Ok(micro::Service::new(options, registry).start().await?)
}

/// [`serve_with`] under the default [`Limits`].
pub async fn serve(
    listener: TcpListener,
    gateway: Gateway,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    serve_with(listener, gateway, Limits::default(), shutdown).await
}

/// Serves `gateway` on `listener` under `limits` until `shutdown` is cancelled; in-flight
/// requests finish.
///
/// HTTP/1.1 and HTTP/2 (prior knowledge), every request to [`Gateway::answer`] (what
/// [`router`] does through axum's router and extractors, which cost more per request than they
/// do here): plain HTTP/1.1 requests without a body on the gateway's own fast path, everything
/// else on hyper ([`http1`]).
pub async fn serve_with(
    listener: TcpListener,
    gateway: Gateway,
    limits: Limits,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto;

    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The same head limits on the connections hyper serves (its header read timeout needs a
    // timer, as axum::serve sets).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        .max_buf_size(limits.hyper_buf());
    builder
        .http2()
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let gate = limits::Gate::new(&limits);
    let connections = micro::server::Connections::default();
    loop {
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: do not spin (axum::serve waits 1 s).
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(permit) = gate.enter() else {
            tracing::debug!(%remote, max = limits.max_connections, "connection refused: the gateway is full");
            gate.refuse(stream, limits.max_connections);
            continue;
        };
        let gateway = gateway.clone();
        let builder = builder.clone();
        let closer = connections.closer();
        tokio::spawn(async move {
            http1::serve_connection(stream, remote.ip(), gateway, builder, closer, limits).await;
            drop(permit);
        });
    }
    drop(listener);
    connections.drain().await;
    Ok(())
}

/// Runs the gateway until `shutdown` is cancelled; logs `HTTP API Listening on <address>` with
/// the address actually bound.
pub async fn run(args: GatewayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let gateway = gateway(&args)?;
    let listener = bind(&args.address).await?;
    let local = listener.local_addr().map_err(|source| Error::Bind {
        address: args.address.clone(),
        source,
    })?;
    tracing::info!("HTTP API Listening on {local}");
    let registered = register_self(&args).await?;
    let node = registered.node();
    tracing::info!("registered {} at {}", node.id, node.address);
    let served = serve_with(listener, gateway, args.limits(), shutdown).await;
    // Deregistered whatever ended serving, so no caller is sent to a gateway that is gone.
    let deregistered = registered.stop().await;
    served?;
    deregistered?;
    tracing::info!("HTTP API stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        gateway: GatewayArgs,
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

    #[test]
    fn listen_addresses() {
        let c = |a: &str| listen_candidates(a).expect(a);
        assert_eq!(c(":8080"), ["[::]:8080", "0.0.0.0:8080"]);
        assert_eq!(c("[::]:8080"), ["[::]:8080", "0.0.0.0:8080"]);
        assert_eq!(c("127.0.0.1:8080"), ["127.0.0.1:8080"]);
        assert_eq!(c("localhost:8080"), ["localhost:8080"]);
        for bad in ["8080", ":x", "", "host:", ":99999"] {
            assert!(listen_candidates(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_api_and_rpc_handlers() {
        let mut cli = Cli::try_parse_from(["gateway", "--handler", "web"]).expect("parse");
        let err = gateway(&cli.gateway).expect_err("web is not supported");
        assert_eq!(
            err.to_string(),
            "unsupported handler \"web\": supported are api, rpc, http, proxy"
        );
        for handler in ["api", "rpc", "http", "proxy"] {
            cli.gateway.handler = handler.into();
            assert!(gateway(&cli.gateway).is_ok(), "{handler}");
        }
    }

    #[tokio::test]
    async fn binds_a_free_port_and_reports_it() {
        let listener = bind("127.0.0.1:0").await.expect("bind");
        assert_ne!(listener.local_addr().expect("addr").port(), 0);
    }
}
