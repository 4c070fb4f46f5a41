//! `faults`: the fault-injection run (see README.md), and the `member` role it starts its
//! registry members with (registry-node's own entry point, so a run needs no other binary).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use faults::cluster::Target;
use faults::run::{run, Config};
use faults::summary::side_by_side;

#[derive(Parser, Debug)]
#[command(about = "Jepsen-style fault injection against our registry or a real etcd")]
struct Cli {
    #[command(subcommand)]
    command: Option<Role>,
    /// ours, etcd, or both (one after the other, with the failover times side by side).
    #[arg(long, default_value = "ours")]
    target: String,
    /// How long the nemesis runs: 300s, 5m, or plain seconds.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    duration: Duration,
    /// Seed of the fault schedule and the clients' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Concurrent clients, spread over the three members.
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Each client's pause between operations, in milliseconds.
    #[arg(long, default_value_t = 10)]
    think_ms: u64,
    /// A `registry-node` binary for ours' members (e.g. an older build), instead of this
    /// binary's `member` role.
    #[arg(long)]
    registry_node: Option<PathBuf>,
    /// The negative control: serializable reads on an isolated member (must be flagged).
    #[arg(long)]
    control: bool,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// Runs a registry member (what `registry-node` runs), as the suite starts them.
    Member(registry_node::cli::NodeArgs),
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: e.g. 300s or 5m"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("bad duration unit in {s:?}: s, m or ms")),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    match cli.command {
        Some(Role::Member(args)) => runtime.block_on(async {
            registry_node::cli::init_logging();
            registry_node::cli::run(args, registry_node::cli::signal_token()?).await
        }),
        // Ctrl-C drops the run, whose drop kills the members and removes the network.
        None => runtime.block_on(async {
            tokio::select! {
                done = faults_run(cli) => done,
                _ = tokio::signal::ctrl_c() => bail!("interrupted"),
            }
        }),
    }
}

async fn faults_run(cli: Cli) -> anyhow::Result<()> {
    let targets = match cli.target.as_str() {
        "both" => vec![Target::Ours, Target::Etcd],
        t => vec![t.parse::<Target>().map_err(anyhow::Error::msg)?],
    };
    let member_bin: PathBuf = std::env::current_exe().context("path of this binary")?;
    let mut summaries = Vec::new();
    for target in targets {
        let mut cfg = Config::new(target, cli.duration, cli.seed, member_bin.clone());
        cfg.clients = cli.clients;
        cfg.think = Duration::from_millis(cli.think_ms);
        cfg.control = cli.control;
        if let Some(bin) = &cli.registry_node {
            cfg.member_bin = bin.clone();
            cfg.member_prefix = Vec::new();
        }
        let summary = run(&cfg, &faults::check_history).await?;
        println!("{summary}");
        summaries.push(summary);
    }
    if let [a, b] = &summaries[..] {
        println!(
            "failover times, {} vs {}:\n{}",
            a.target,
            b.target,
            side_by_side(a, b)
        );
    }
    let failed: Vec<&str> = summaries
        .iter()
        .filter(|s| {
            if s.control {
                !s.verdict.violation
            } else {
                !s.passed()
            }
        })
        .map(|s| s.target.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}
