//! `compat-node member --config cluster.toml --name cd0` runs one registry member (as
//! `registry-node` does); `compat-node greeter srv --name one [go-micro flags]` runs the greeter
//! srv (as `greeter` does). The system tests start these as child processes so that a member
//! can be killed for real. Each stops when its standard input closes, so nothing outlives the
//! test process that started it, however that process ends.

use clap::Parser;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "A registry member or the greeter srv, for the system tests")]
enum Cli {
    /// One registry member (`registry-node`'s flags).
    Member(registry_node::cli::NodeArgs),
    /// A greeter role (`greeter`'s arguments).
    Greeter {
        #[command(subcommand)]
        role: greeter::Role,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    registry_node::cli::init_logging();
    let cli = Cli::parse();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        stop.cancel();
    });
    match cli {
        Cli::Member(args) => registry_node::cli::run(args, shutdown).await,
        Cli::Greeter { role } => greeter::run(role, shutdown).await,
    }
}
