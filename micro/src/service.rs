//! The service runner: go-micro's `micro.NewService(...).Run()`.
//!
//! [`Service::start`] binds the gRPC server ([`crate::server`]: free port or `--server_address`), registers one node
//! with the given endpoints and keeps it alive. [`Running::stop`] deregisters first, so callers
//! stop choosing the node, and then drains in-flight calls; [`Service::run`] does that on Ctrl-C,
//! SIGTERM or a cancelled token. [`Running::kill`] simulates a crash (no deregistration).

use std::convert::Infallible;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;

use crate::registry::{self, Endpoint, Metadata, Node, RegisterOptions, Registration, Registry};
use crate::server::{self, Routes};

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
}

/// A service being assembled: options, registry, gRPC handlers and their endpoints.
#[derive(Debug)]
pub struct Service {
    options: ServiceOptions,
    registry: Registry,
    routes: Routes,
    endpoints: Vec<Endpoint>,
}

/// A started service: serving and registered.
#[derive(Debug)]
pub struct Running {
    service: registry::Service,
    address: SocketAddr,
    registration: Registration,
    stop_server: CancellationToken,
    server: JoinHandle<()>,
}

impl Service {
    pub fn new(options: ServiceOptions, registry: Registry) -> Self {
        Service {
            options,
            registry,
            routes: Routes::default(),
            endpoints: Vec::new(),
        }
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
    pub async fn start(self) -> Result<Running, Error> {
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
        let server = tokio::spawn(server::serve(listener, self.routes, stop_server.clone()));
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
        Ok(Running {
            service,
            address,
            registration,
            stop_server,
            server,
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

    /// Graceful stop: deregister, then let in-flight calls finish and close.
    pub async fn stop(self) -> Result<(), Error> {
        let deregistered = self.registration.deregister().await;
        self.stop_server.cancel();
        let served = self.server.await;
        tracing::info!(service = %self.service.name, "service stopped");
        deregistered?;
        served?;
        Ok(())
    }

    /// Crash: stop heartbeating and serving, leave the registration to expire with its lease.
    pub async fn kill(self) {
        self.registration.abort().await;
        self.stop_server.cancel();
        let _ = self.server.await;
    }
}
