//! The `registry-node` command line, as a library function so that other binaries (the
//! `micro` command) can run a member too.

use std::path::PathBuf;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::{ClusterFile, Node, NodeConfig};

#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// The cluster file.
    #[arg(long, default_value = "cluster.toml")]
    pub config: PathBuf,
    /// etcd's TLS flags (--cert-file, --peer-auto-tls, ...); they override the file's [tls].
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// Member to run; every member of the file when absent.
    #[arg(long)]
    pub name: Option<String>,
    /// Data directory of this member (needs --name); overrides `<cluster.data_dir>/<name>`.
    #[arg(long, requires = "name")]
    pub data_dir: Option<PathBuf>,
    /// Client address to listen on, e.g. 127.0.0.1:2379 (needs --name).
    #[arg(long, requires = "name")]
    pub listen_client: Option<std::net::SocketAddr>,
    /// Peer address to listen on, e.g. 127.0.0.1:2380 (needs --name).
    #[arg(long, requires = "name")]
    pub listen_peer: Option<std::net::SocketAddr>,
    /// etcd's --auto-compaction-mode: periodic, revision or off (default: the file's
    /// [compaction] section, else periodic).
    #[arg(long)]
    pub auto_compaction_mode: Option<String>,
    /// etcd's --auto-compaction-retention: a duration (5m, 1h; a plain number is hours) for
    /// periodic, a count of revisions for revision; 0 turns it off.
    #[arg(long)]
    pub auto_compaction_retention: Option<String>,
    /// etcd's --quota-backend-bytes: the store size past which NOSPACE is raised (default: the
    /// file's [raft] quota_backend_bytes, else 2 GiB).
    #[arg(long)]
    pub quota_backend_bytes: Option<u64>,
    /// etcd's --experimental-corrupt-check-time: how often the leader compares every member's
    /// HashKV (e.g. 5m, 30s; 0 turns it off, the default).
    #[arg(long, value_parser = go_duration_ms)]
    pub experimental_corrupt_check_time: Option<u64>,
    /// etcd's --initial-cluster: NAME=PEER_URL,... (needs --name); replaces the file's member
    /// list (client URLs: the file's member of that name, else published by each member).
    #[arg(long, requires = "name")]
    pub initial_cluster: Option<String>,
    /// etcd's --initial-cluster-state: new (form the cluster) or existing (join a running
    /// cluster that lists this member after `etcdctl member add`).
    #[arg(long, value_enum, default_value = "new")]
    pub initial_cluster_state: crate::config::ClusterState,
    /// A file of `etcdctl snapshot save` to restore into the (absent or empty) data dirs of
    /// the members run, as a new cluster with the file's members (see `restore.rs`); then run.
    #[arg(long)]
    pub restore: Option<PathBuf>,
}

impl NodeArgs {
    /// The configs of the members to run.
    pub fn configs(&self) -> anyhow::Result<Vec<NodeConfig>> {
        let mut file = ClusterFile::load(&self.config)?;
        self.tls.apply(&mut file.tls)?;
        if let Some(m) = &self.auto_compaction_mode {
            file.compaction.mode = m.clone();
        }
        if let Some(r) = &self.auto_compaction_retention {
            file.compaction.retention = r.clone();
        }
        if let Some(q) = self.quota_backend_bytes {
            file.raft.quota_backend_bytes = q;
        }
        if let Some(ms) = self.experimental_corrupt_check_time {
            file.raft.corrupt_check_ms = ms;
        }
        file.compaction
            .policy()
            .map_err(|e| anyhow::anyhow!("--auto-compaction-*: {e}"))?;
        Ok(match &self.name {
            Some(name) => {
                let mut c = match &self.initial_cluster {
                    Some(ic) => crate::membership::join::config_with_initial_cluster(
                        &file,
                        &self.config,
                        name,
                        ic,
                        self.listen_client,
                    )?,
                    None => file.node_config(&self.config, name)?,
                };
                c.initial_cluster_state = self.initial_cluster_state;
                if let Some(d) = &self.data_dir {
                    c.data_dir = d.clone();
                }
                if let Some(a) = self.listen_client {
                    c.client_addr = a;
                }
                if let Some(a) = self.listen_peer {
                    c.peer_addr = a;
                }
                vec![c]
            }
            None => file
                .members
                .iter()
                .map(|m| file.node_config(&self.config, &m.name))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Runs the members `args` names until `shutdown` is cancelled.
pub async fn run(args: NodeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut nodes = Vec::new();
    let configs = args.configs()?;
    if let Some(file) = &args.restore {
        crate::restore::restore(file, &configs)?;
    }
    for c in configs {
        let name = c.name.clone();
        nodes.push(
            Node::start(c)
                .await
                .with_context(|| format!("member {name}"))?,
        );
    }
    // A member removed from the cluster stops the process, as etcd's does.
    let removed = nodes.iter().map(|n| n.stopping()).collect();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = crate::membership::join::any_stopped(removed) => {}
    }
    tracing::info!("shutting down");
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

/// Cancels the returned token on Ctrl-C or SIGTERM.
pub fn signal_token() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        t.cancel();
    });
    Ok(token)
}

/// The tracing subscriber binaries use: `RUST_LOG`, default info with openraft quiet, and
/// repeated warnings and errors held back (see [`crate::logging`]).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with(tracing_subscriber::fmt::layer())
        .with(crate::logging::Repeats::new(crate::logging::WINDOW))
        .init();
}

/// A Go duration of one unit (`90s`, `5m`, `1h`, `500ms`, `0`) in milliseconds.
fn go_duration_ms(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 5m)"))?;
    let per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" if n == 0 => 1,
        _ => return Err(format!("{s:?}: unit ms, s, m or h expected")),
    };
    Ok(n.saturating_mul(per))
}
