//! The go-micro demo's services, as one binary with a role each:
//!
//! - `greeter srv --name one`: the backend `go.micro.srv.greeter` ([`srv`]);
//! - `greeter api --name one`: the API service `go.micro.api.greeter` ([`api`]) that the gateway
//!   calls, and that calls a backend through the cache selector;
//! - `greeter catalog --name one`: `go.micro.srv.catalog` ([`catalog`]), nested and repeated
//!   messages, found by gRPC server reflection (`micro call`, the gateway's `--handler=rpc`);
//! - `greeter web --name one`: `go.micro.web.greeter` ([`web`]), an HTTP service for the
//!   gateway's `--handler=http`.
//!
//! Each instance registers one node (key `/micro-registry/<service>/<service>-<uuid>`, its own
//! lease of `--register_ttl` seconds, renewed every `--register_interval`) and deregisters when
//! [`run`]'s token is cancelled (the binary cancels it on Ctrl-C or SIGTERM). Each logs one line
//! when registered (`registered go.micro.srv.greeter-<uuid> at 127.0.0.1:PORT`) and one when
//! stopped.

pub mod api;
pub mod catalog;
/// Hand-written unary routes, for tests' ad-hoc services (the greeter's own are generated).
pub mod rpc;
pub mod srv;
pub mod web;

use std::net::SocketAddr;

use micro::config::MicroArgs;
use micro::registry::{self, Node, Registry};
use micro::{Client, Running, Selector, Service};
use tokio_util::sync::CancellationToken;

/// The `greeter` command line.
#[derive(Debug, clap::Parser)]
#[command(name = "greeter", about = "The go-micro demo's greeter services")]
pub struct GreeterCli {
    #[command(subcommand)]
    pub role: Role,
}

/// Which service this process is.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Role {
    /// The backend `go.micro.srv.greeter` (`Say.Hello`).
    Srv(InstanceArgs),
    /// The API service `go.micro.api.greeter` (`Say.Hello` on `go.api.Request`).
    Api(InstanceArgs),
    /// A second backend, `go.micro.srv.catalog` (`Catalog.Find`), found by gRPC reflection.
    Catalog(InstanceArgs),
    /// An HTTP service, `go.micro.web.greeter`, for the gateway's `--handler=http`.
    Web(InstanceArgs),
}

/// One instance's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct InstanceArgs {
    /// Which instance this is (`one`, `two`): it appears in every answer.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub micro: MicroArgs,
}

impl Role {
    pub fn args(&self) -> &InstanceArgs {
        match self {
            Role::Srv(args) | Role::Api(args) | Role::Catalog(args) | Role::Web(args) => args,
        }
    }

    /// The service this role registers.
    pub fn service_name(&self) -> &'static str {
        match self {
            Role::Srv(_) => srv::SERVICE,
            Role::Api(_) => api::SERVICE,
            Role::Catalog(_) => catalog::SERVICE,
            Role::Web(_) => web::SERVICE,
        }
    }
}

/// Why an instance could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--name must not be empty")]
    EmptyName,
    #[error("registry client")]
    Registry(#[from] registry::Error),
    #[error("route")]
    Route(#[from] rpc::RouteError),
    #[error("greeter web is an HTTP service: run it with greeter::run")]
    NotGrpc,
    #[error("reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    #[error(transparent)]
    Service(#[from] micro::service::Error),
}

/// A started instance: serving and registered.
#[derive(Debug)]
pub struct Instance {
    running: Running,
}

impl Instance {
    /// Binds, serves and registers the instance `role` describes.
    pub async fn start(role: Role) -> Result<Instance, Error> {
        let service_name = role.service_name();
        let args = role.args();
        if args.name.trim().is_empty() {
            return Err(Error::EmptyName);
        }
        let registry = Registry::new(&args.micro.registry_options())?;
        // go-micro's flags (`--server_name`, `--server_address`, `--server_advertise`,
        // `--register_ttl`, `--register_interval`) over the service's own name.
        let options = args.micro.service_options(service_name);
        let service = Service::new(options, registry.clone());
        let service = match &role {
            Role::Srv(args) => srv::register_say_handler(service, srv::Greeter::new(&args.name)),
            Role::Web(_) => return Err(Error::NotGrpc),
            Role::Catalog(args) => catalog::Catalog::new(&args.name).register(service)?,
            Role::Api(args) => {
                let selector = Selector::new(registry, args.micro.selector_options());
                let client = Client::new(selector, args.micro.client_options());
                api::register_say_handler(service, api::Api::new(&args.name, client))
            }
        };
        let running = service.start().await?;
        let node = running.node();
        tracing::info!("registered {} at {}", node.id, node.address);
        Ok(Instance { running })
    }

    /// The registered node (id `<service>-<uuid>`, address `host:port`).
    pub fn node(&self) -> &Node {
        self.running.node()
    }

    /// The registered value.
    pub fn service(&self) -> &registry::Service {
        self.running.service()
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.running.address()
    }

    /// The registry keys this instance holds.
    pub fn keys(&self) -> Vec<String> {
        self.running.registration().keys()
    }

    /// Graceful stop: deregister first (callers stop choosing it), then drain in-flight calls.
    pub async fn stop(self) -> Result<(), Error> {
        let id = self.running.node().id.clone();
        let result = self.running.stop().await;
        match &result {
            Ok(()) => tracing::info!("deregistered {id}, stopped"),
            Err(error) => tracing::warn!(%error, "stopped {id}, deregistration incomplete"),
        }
        Ok(result?)
    }

    /// Crash: stop serving and heartbeating, leave the key to expire with its lease.
    pub async fn kill(self) {
        self.running.kill().await;
    }
}

/// Runs one instance until `shutdown` is cancelled, then deregisters and stops.
pub async fn run(role: Role, shutdown: CancellationToken) -> anyhow::Result<()> {
    if let Role::Web(args) = &role {
        if args.name.trim().is_empty() {
            return Err(Error::EmptyName.into());
        }
        return web::run(&args.name, &args.micro, shutdown).await;
    }
    let instance = Instance::start(role).await?;
    shutdown.cancelled().await;
    instance.stop().await?;
    Ok(())
}
