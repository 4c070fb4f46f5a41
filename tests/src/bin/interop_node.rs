//! `interop_node greeter srv|api --name one [go-micro flags]` and `interop_node gateway
//! [gateway flags]`: the greeter roles and the gateway as the real binaries run them, stopped
//! gracefully by SIGTERM (as `greeter` and `micro api` are), for the interop tests
//! (`tests/tests/interop_*.rs`), which send that signal with calls in flight. Each also stops
//! when its standard input closes, so nothing outlives the test process that started it.

use clap::Parser;
use tokio::io::AsyncReadExt;

#[derive(Debug, Parser)]
#[command(about = "A greeter role or the gateway, for the interop tests")]
enum Cli {
    /// A greeter role (`greeter`'s arguments).
    Greeter {
        #[command(subcommand)]
        role: greeter::Role,
    },
    /// The HTTP API gateway (`micro api`'s flags).
    Gateway(gateway::GatewayArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    micro::process::init_logging();
    let cli = Cli::parse();
    // Ctrl-C or SIGTERM, as the real binaries.
    let shutdown = micro::process::shutdown_on_signal();
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
        Cli::Greeter { role } => greeter::run(role, shutdown).await,
        Cli::Gateway(args) => gateway::run(args, shutdown).await,
    }
}
