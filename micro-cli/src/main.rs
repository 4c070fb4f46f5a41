//! `micro`: every role of the demo in one binary, and the command that runs them all.
//!
//! | command | what it runs |
//! | --- | --- |
//! | `micro up [--config cluster.toml]` | the whole system as child processes of this binary |
//! | `micro registry-node --config F --name cd0` | one registry member |
//! | `micro greeter srv\|api\|catalog\|web --name one` | a demo service instance |
//! | `micro api --handler=api\|rpc\|http [--address ..]` | the HTTP gateway (go-micro's spelling) |
//! | `micro list services`, `micro get service S`, `micro call S E '{json}'` | registry and RPC tools |
//!
//! go-micro's flags (`--registry=etcdv3`, `--registry_address`, ...) go before or after any of
//! them; `micro up` hands those given on its line to its services and gateway.

mod cmd;
mod up;

use std::io::Read;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use micro::MicroArgs;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc's malloc: every role here allocates and frees small buffers per
/// request (HTTP/2 frames, gRPC messages, header maps) from several threads, where glibc's
/// arenas took about a quarter of the gateway chain's CPU samples (bench/gateway.sh under perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// go-micro's `micro` command, with the registry built in.
///
/// go-micro's flags (`--registry`, `--registry_address`, `--selector`, ...) go before the
/// command, as go-micro's users type them (`micro --registry=etcdv3 list services`), or after it.
// Each command flattens its own copy of the flags; clap copies a global argument's value between
// the levels that define it, the one nearest the command winning.
#[derive(Debug, Parser)]
#[command(name = "micro", version, about)]
struct Cli {
    /// Defines go-micro's flags at the top level; every command reads its own copy, which clap
    /// fills from here.
    #[command(flatten)]
    #[allow(dead_code)]
    micro: MicroArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the registry, the services and the gateway from a cluster file.
    Up(up::UpArgs),
    /// Run registry members (etcd v3 compatible).
    RegistryNode(registry_node::cli::NodeArgs),
    /// Run a demo service: `greeter srv|api|catalog|web --name one`.
    Greeter {
        #[command(subcommand)]
        role: greeter::Role,
    },
    /// Run the HTTP API gateway (`micro api --handler=api|rpc|http`).
    Api(gateway::GatewayArgs),
    /// List registry entries: `micro list services`.
    List {
        #[command(subcommand)]
        what: ListWhat,
    },
    /// Show a registry entry: `micro get service <name>`.
    Get {
        #[command(subcommand)]
        what: GetWhat,
    },
    /// Serve the dashboard in the browser (`micro web --address :8082`).
    Web(cmd::web::WebArgs),
    /// Check every node of a service (grpc.health.v1): `micro health go.micro.srv.greeter`.
    Health {
        service: String,
        #[command(flatten)]
        micro: MicroArgs,
    },
    /// Call a service endpoint with a JSON request: `micro call S Say.Hello '{"name":"John"}'`.
    Call {
        service: String,
        endpoint: String,
        #[arg(default_value = "{}")]
        request: String,
        #[command(flatten)]
        micro: MicroArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ListWhat {
    /// Every registered service name.
    Services {
        #[command(flatten)]
        micro: MicroArgs,
    },
}

#[derive(Debug, Subcommand)]
enum GetWhat {
    /// A service's nodes and endpoints.
    Service {
        name: String,
        #[command(flatten)]
        micro: MicroArgs,
    },
}

/// Worker threads of a service's or the gateway's runtime: unset or empty, tokio's default (one
/// per core); `1`, a single-threaded runtime (no cross-thread wake-ups: the cheapest when several
/// such processes share a few cores, as in `bench/gateway.sh`); `N`, N workers.
const WORKER_THREADS_ENV: &str = "MICRO_WORKER_THREADS";

fn main() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let flags = given_micro_flags(&matches);
    runtime(&cli.command)?.block_on(run(cli, flags))
}

/// go-micro's flags given on this command line (not from the environment or defaults), as
/// `--name=value` words: what `micro up` hands on to its services and gateway.
fn given_micro_flags(matches: &ArgMatches) -> Vec<String> {
    let definitions = MicroArgs::augment_args(clap::Command::new("micro"));
    definitions
        .get_arguments()
        .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|arg| {
            let values: Vec<String> = matches
                .get_raw(arg.get_id().as_str())?
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            Some(format!("--{}={}", arg.get_long()?, values.join(",")))
        })
        .collect()
}

/// The runtime for `command`: the greeter roles and the gateway honour [`WORKER_THREADS_ENV`];
/// everything else (registry members, `micro up`, the tools) runs on tokio's default.
fn runtime(command: &Command) -> anyhow::Result<tokio::runtime::Runtime> {
    let setting = match command {
        Command::Greeter { .. } | Command::Api(_) => std::env::var(WORKER_THREADS_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty()),
        _ => None,
    };
    let threads = match setting {
        Some(v) => Some(
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    anyhow::anyhow!("{WORKER_THREADS_ENV}={v:?}: expected a positive number")
                })?,
        ),
        None => None,
    };
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    Ok(builder.enable_all().build()?)
}

async fn run(cli: Cli, flags: Vec<String>) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up::run(args, &flags).await,
        Command::RegistryNode(args) => {
            registry_node::cli::init_logging();
            // Members outlive the services when the parent dies, so those can deregister.
            registry_node::cli::run(args, role_shutdown(MEMBER_ORPHAN_DELAY)?).await
        }
        Command::Greeter { role } => {
            registry_node::cli::init_logging();
            greeter::run(role, role_shutdown(Duration::ZERO)?).await
        }
        Command::Api(args) => {
            registry_node::cli::init_logging();
            gateway::run(args, role_shutdown(Duration::ZERO)?).await
        }
        Command::Web(args) => {
            registry_node::cli::init_logging();
            cmd::web::run(args, role_shutdown(Duration::ZERO)?).await
        }
        Command::List {
            what: ListWhat::Services { micro },
        } => cmd::registry::list_services(&micro).await,
        Command::Get {
            what: GetWhat::Service { name, micro },
        } => cmd::registry::get_service(&micro, &name).await,
        Command::Health { service, micro } => cmd::health::health(&micro, &service).await,
        Command::Call {
            service,
            endpoint,
            request,
            micro,
        } => cmd::call::call(&micro, &service, &endpoint, &request).await,
    }
}

/// How long a registry member keeps serving after its parent (`micro up`) is gone.
const MEMBER_ORPHAN_DELAY: Duration = Duration::from_secs(3);

/// How long an orphaned role may take to stop gracefully before it exits anyway.
const ORPHAN_STOP_BOUND: Duration = Duration::from_secs(15);

/// The shutdown token of a long-running role: Ctrl-C, SIGTERM, and, when started by
/// `micro up`, the end of stdin (the parent is gone), acted on after `delay`. An orphan that has
/// not stopped [`ORPHAN_STOP_BOUND`] later exits regardless, so nothing outlives `micro up`.
fn role_shutdown(delay: Duration) -> anyhow::Result<CancellationToken> {
    let token = registry_node::cli::signal_token()?;
    if std::env::var_os(up::PARENT_PIPE_ENV).is_some() {
        let t = token.clone();
        // A plain thread: tokio's stdin would hold runtime shutdown until the read returns.
        std::thread::spawn(move || {
            let mut sink = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            // Our stdout and stderr were pipes to the parent: writing there now fails, and a
            // failed `eprintln!` (tracing's fallback) panics.
            if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(&null);
            }
            std::thread::sleep(delay);
            t.cancel();
            std::thread::sleep(ORPHAN_STOP_BOUND);
            std::process::exit(2);
        });
    }
    Ok(token)
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
