//! `registry-node`: runs one member of the registry cluster from `cluster.toml`, or every
//! member of the file in one process when no `--name` is given.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use registry_node::{ClusterFile, Node, NodeConfig};

#[derive(Parser, Debug)]
#[command(version, about = "A member of the etcd-compatible Raft registry")]
struct Args {
    /// The cluster file.
    #[arg(long, default_value = "cluster.toml")]
    config: PathBuf,
    /// Member to run; every member of the file when absent.
    #[arg(long)]
    name: Option<String>,
    /// Data directory of this member (needs --name); overrides `<cluster.data_dir>/<name>`.
    #[arg(long, requires = "name")]
    data_dir: Option<PathBuf>,
    /// Client address to listen on, e.g. 127.0.0.1:2379 (needs --name).
    #[arg(long, requires = "name")]
    listen_client: Option<std::net::SocketAddr>,
    /// Peer address to listen on, e.g. 127.0.0.1:2380 (needs --name).
    #[arg(long, requires = "name")]
    listen_peer: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .init();
    let args = Args::parse();
    let file = ClusterFile::load(&args.config)?;
    let configs: Vec<NodeConfig> = match &args.name {
        Some(name) => {
            let mut c = file.node_config(&args.config, name)?;
            if let Some(d) = &args.data_dir {
                c.data_dir = d.clone();
            }
            if let Some(a) = args.listen_client {
                c.client_addr = a;
            }
            if let Some(a) = args.listen_peer {
                c.peer_addr = a;
            }
            vec![c]
        }
        None => file
            .members
            .iter()
            .map(|m| file.node_config(&args.config, &m.name))
            .collect::<Result<_, _>>()?,
    };
    let mut nodes = Vec::new();
    for c in configs {
        let name = c.name.clone();
        nodes.push(
            Node::start(c)
                .await
                .with_context(|| format!("member {name}"))?,
        );
    }
    wait_for_signal().await?;
    tracing::info!("shutting down");
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
