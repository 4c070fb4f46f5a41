//! The service runner: go-micro's `micro.NewService(...).Run()`.
//!
//! [`Service::start`] binds the gRPC server ([`crate::server`]: free port or `--server_address`), registers one node
//! with the given endpoints and keeps it alive. [`Running::stop`] deregisters first, so callers
//! stop choosing the node, and then drains in-flight calls; [`Service::run`] does that on Ctrl-C,
//! SIGTERM or a cancelled token. [`Running::kill`] simulates a crash (no deregistration).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;

use crate::handler::{Layered, Mount};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::registry::{self, Endpoint, Metadata, Node, RegisterOptions, Registration, Registry};
use crate::server::{self, Routes};
use crate::wrapper::{ServerCall, ServerStack, StoredLayer};

/// What a service is and how it registers.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// `go.micro.srv.greeter`.
    pub name: String,
    pub version: String,
    pub metadata: Metadata,
    /// Where to listen; `None`: a free loopback port.
    pub address: Option<SocketAddr>,
    /// The host to register when listening on an unspecified address (default `127.0.0.1`).
    pub advertise_host: Option<String>,
    /// The whole `host:port` to register instead of the bound address (go-micro's
    /// `--server_advertise`); wins over `advertise_host`.
    pub advertise: Option<String>,
    pub register: RegisterOptions,
    /// Where to serve Prometheus `/metrics` (`--metrics_address`); `None`: not served.
    pub metrics_address: Option<SocketAddr>,
    /// How long a stopping service keeps serving after it deregistered and answers health
    /// checks NOT_SERVING, for callers and load balancers to notice (default: none).
    pub drain_grace: Duration,
}

impl ServiceOptions {
    pub fn new(name: impl Into<String>) -> Self {
        ServiceOptions {
            name: name.into(),
            version: "latest".to_owned(),
            metadata: Metadata::new(),
            address: None,
            advertise_host: None,
            advertise: None,
            register: RegisterOptions::default(),
            metrics_address: None,
            drain_grace: Duration::ZERO,
        }
    }
}

/// Why a service could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bind {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error("server task")]
    Join(#[from] tokio::task::JoinError),
    #[error("signal handler")]
    Signal(#[source] std::io::Error),
    #[error("handler {0}: {1}")]
    Mount(String, crate::Error),
    #[error("metrics address {address}")]
    Metrics {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A service being assembled: options, registry, gRPC handlers and their endpoints.
pub struct Service {
    options: ServiceOptions,
    registry: Registry,
    routes: Routes,
    endpoints: Vec<Endpoint>,
    /// Generated handlers (`micro-build`), served under the service's name at start.
    mounts: Vec<Mount>,
    /// Server layers, first added innermost.
    layers: Vec<StoredLayer<ServerStack>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("options", &self.options)
            .field("routes", &self.routes)
            .field("mounts", &self.mounts)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

/// A started service: serving and registered.
#[derive(Debug)]
pub struct Running {
    service: registry::Service,
    address: SocketAddr,
    registration: Registration,
    stop_server: CancellationToken,
    server: JoinHandle<()>,
    health: Health,
    metrics_address: Option<SocketAddr>,
    drain_grace: Duration,
}

impl Service {
    pub fn new(options: ServiceOptions, registry: Registry) -> Self {
        Service {
            options,
            registry,
            routes: Routes::default(),
            endpoints: Vec::new(),
            mounts: Vec::new(),
            layers: Vec::new(),
            metrics: Metrics::new(),
        }
    }

    /// Adds a generated handler (`register_say_handler` from `micro-build` calls this): its
    /// methods are served under this service's name, its endpoints registered.
    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Wraps every unary call of the mounted handlers in `layer` (go-micro's
    /// `server.WrapHandler`); the last added is the outermost, inside the metrics layer. See
    /// [`crate::wrapper`].
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<ServerStack> + Send + Sync + 'static,
        L::Service: tower::Service<ServerCall, Response = prost::bytes::Bytes, Error = tonic::Status>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<ServerCall>>::Future: Send + 'static,
    {
        self.layers.push(crate::wrapper::store(layer));
        self
    }

    /// This service's metrics (served at `metrics_address`); give it to a client as a layer
    /// to count the calls this service makes too.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The mounted handlers as routes under `name`, with the health check; their endpoints
    /// and the health of the names served.
    fn mounted(&mut self) -> Result<(Routes, Health), Error> {
        let name = self.options.name.clone();
        let service: Arc<str> = Arc::from(name.as_str());
        let mut routes = Routes::new();
        let mut streams = Vec::new();
        let mut names = vec![name.clone()];
        for mount in std::mem::take(&mut self.mounts) {
            names.push(format!("{name}.{}", mount.handler));
            for (method, handler) in mount.unary {
                let endpoint = format!("{}.{method}", mount.handler);
                let path = crate::client::grpc_path(&name, &endpoint)
                    .map_err(|e| Error::Mount(endpoint.clone(), e))?;
                let mut stack = crate::handler::innermost(handler);
                for layer in &self.layers {
                    stack = layer(stack);
                }
                stack = ServerStack::new(tower::Layer::layer(&self.metrics, stack));
                let layered = Layered {
                    service: Arc::clone(&service),
                    endpoint: Arc::from(endpoint),
                    stack,
                };
                routes = routes.handler(path, Arc::new(layered));
            }
            for (method, route) in mount.streams {
                let endpoint = format!("{}.{method}", mount.handler);
                let path = crate::client::grpc_path(&name, &endpoint)
                    .map_err(|e| Error::Mount(endpoint.clone(), e))?;
                streams.push((path, route));
            }
            self.endpoints.extend(mount.endpoints);
        }
        if !streams.is_empty() {
            routes = routes.merge(Routes::from(crate::stream::routes(streams)));
        }
        let health = Health::new(names);
        Ok((routes.merge(health.routes()), health))
    }

    /// Adds a tonic-generated service (e.g. `SayServer::new(handler)`) and the go-micro endpoints
    /// it serves (registered with the node). It is served through tonic's router, for paths no
    /// [`Routes`] handler serves; [`Service::routes`] with unary handlers is the lean path.
    pub fn handle<S>(mut self, svc: S, endpoints: impl IntoIterator<Item = Endpoint>) -> Self
    where
        S: tonic::codegen::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes = self.routes.tonic(svc);
        self.endpoints.extend(endpoints);
        self
    }

    /// Adds prepared routes ([`Routes`], or tonic's) and their endpoints.
    pub fn routes(
        mut self,
        routes: impl Into<Routes>,
        endpoints: impl IntoIterator<Item = Endpoint>,
    ) -> Self {
        self.routes = self.routes.merge(routes.into());
        self.endpoints.extend(endpoints);
        self
    }

    /// Binds, serves and registers.
    pub async fn start(mut self) -> Result<Running, Error> {
        let (mounted, health) = self.mounted()?;
        // The service's own routes win on a path both serve.
        self.routes = mounted.merge(std::mem::take(&mut self.routes));
        let bind = self
            .options
            .address
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| Error::Bind {
                address: bind.to_string(),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| Error::Bind {
            address: bind.to_string(),
            source,
        })?;
        let host = match (&self.options.advertise_host, address.ip().is_unspecified()) {
            (Some(host), _) => host.clone(),
            (None, true) => "127.0.0.1".to_owned(),
            (None, false) => address.ip().to_string(),
        };
        let advertised = match &self.options.advertise {
            Some(advertise) => advertise.clone(),
            None => format!("{host}:{}", address.port()),
        };
        let node = Node::new(&self.options.name, advertised);
        let service = registry::Service {
            name: self.options.name.clone(),
            version: self.options.version.clone(),
            metadata: self.options.metadata.clone(),
            endpoints: self.endpoints,
            nodes: vec![node],
        };

        let stop_server = CancellationToken::new();
        let metrics_address = match self.options.metrics_address {
            Some(address) => Some(
                self.metrics
                    .clone()
                    .spawn(address, stop_server.clone())
                    .await
                    .map_err(|source| Error::Metrics { address, source })?,
            ),
            None => None,
        };
        let server = tokio::spawn(server::serve(listener, self.routes, stop_server.clone()));
        health.set_serving(true);
        let registration = match self
            .registry
            .register(&service, self.options.register)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                stop_server.cancel();
                let _ = server.await;
                return Err(e.into());
            }
        };
        tracing::info!(service = %service.name, %address, "service started");
        if let Some(metrics) = metrics_address {
            tracing::info!(service = %service.name, "metrics on http://{metrics}/metrics");
        }
        Ok(Running {
            service,
            address,
            registration,
            stop_server,
            server,
            health,
            metrics_address,
            drain_grace: self.options.drain_grace,
        })
    }

    /// Starts, then stops gracefully on Ctrl-C, SIGTERM or `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let running = self.start().await?;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            r = crate::process::terminate_signal() => r.map_err(Error::Signal)?,
        }
        running.stop().await
    }
}

impl Running {
    /// The registered value: this service with its one node.
    pub fn service(&self) -> &registry::Service {
        &self.service
    }

    pub fn node(&self) -> &Node {
        &self.service.nodes[0]
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The registration (keys, current lease).
    pub fn registration(&self) -> &Registration {
        &self.registration
    }

    /// The health the service answers (`grpc.health.v1`).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// Graceful stop: answer health checks NOT_SERVING, deregister, keep serving for the
    /// drain grace (if any), then let in-flight calls finish and close.
    pub async fn stop(self) -> Result<(), Error> {
        self.health.set_serving(false);
        let deregistered = self.registration.deregister().await;
        if !self.drain_grace.is_zero() {
            tokio::time::sleep(self.drain_grace).await;
        }
        self.stop_server.cancel();
        let served = self.server.await;
        tracing::info!(service = %self.service.name, "service stopped");
        deregistered?;
        served?;
        Ok(())
    }

    /// Crash: stop heartbeating and serving, leave the registration to expire with its lease.
    pub async fn kill(self) {
        self.health.set_serving(false);
        self.registration.abort().await;
        self.stop_server.cancel();
        let _ = self.server.await;
    }
}
