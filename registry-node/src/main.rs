//! `registry-node`: runs one member of the registry cluster from `cluster.toml`, or every
//! member of the file in one process when no `--name` is given.

use clap::Parser;
use registry_node::cli::{self, NodeArgs};

#[derive(Parser, Debug)]
#[command(version, about = "A member of the etcd-compatible Raft registry")]
struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    cli::init_logging();
    let args = Args::parse();
    let shutdown = cli::signal_token()?;
    cli::run(args.node, shutdown).await
}
