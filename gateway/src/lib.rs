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
//! - [`GatewayArgs`]: the command line (`micro api`'s flags, cors, the edge's limits).
//!
//! [`run`] also registers the gateway itself as `go.micro.api` (or `--server_name`), as
//! `micro api` does, with its own lease, and deregisters it on the way out.

mod args;
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

use micro::registry::Registry;
use micro::{Client, Selector};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use args::GatewayArgs;
pub use cors::Cors;
pub use error::{GatewayError, API_ID};
pub use handler::{router, Gateway, Mode};
pub use limits::Limits;

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
    use crate::args::tests::Cli;
    use clap::Parser;

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
