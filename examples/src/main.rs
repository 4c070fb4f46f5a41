//! `shop [go-micro flags]`: runs `go.micro.srv.shop` until Ctrl-C or SIGTERM.

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    micro: micro::MicroArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    micro::process::init_logging();
    let args = Args::parse();
    let registry = micro::Registry::new(&args.micro.registry_options())?;
    let options = args.micro.service_options(examples::SERVICE);
    let service = examples::service(micro::Service::new(options, registry))?;
    service.run(micro::process::shutdown_on_signal()).await?;
    Ok(())
}
