//! `greeter srv|api --name one|two [go-micro flags]`: one demo service instance; Ctrl-C or
//! SIGTERM deregisters it and stops.

use clap::Parser;
use greeter::GreeterCli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    micro::process::init_logging();
    let cli = GreeterCli::parse();
    let shutdown = micro::process::shutdown_on_signal();
    greeter::run(cli.role, shutdown).await
}
