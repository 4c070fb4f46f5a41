//! `gateway [--address [::]:8080] [--handler api] [--namespace go.micro.api] [go-micro flags]`:
//! the HTTP API gateway; Ctrl-C or SIGTERM stops it after in-flight requests.

use clap::Parser;
use gateway::GatewayArgs;

#[derive(Parser)]
#[command(name = "gateway", about = "HTTP API gateway (micro api --handler=api)")]
struct Cli {
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    micro::process::init_logging();
    let cli = Cli::parse();
    let shutdown = micro::process::shutdown_on_signal();
    gateway::run(cli.gateway, shutdown).await
}
