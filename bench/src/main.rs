//! `bench`: a benchmark client for any etcd v3 endpoints, in the spirit of etcd's
//! `tools/benchmark`. One run prints ONE JSON line on stdout (progress goes to stderr), so a
//! script can run the same workload against real etcd and against our registry and compare.
//!
//! ```text
//! bench --endpoints 127.0.0.1:2379,... [--conns M] [--clients N] [--target-leader] <workload>
//!   put   --total T --key-space K --key-size 8 --val-size 256
//!   range --total T --consistency l|s [--key foo]
//!   lease --leases N --ttl 10 --duration 30
//!   watch --watchers W --puts P
//! bench hello --address 127.0.0.1:8090          (bare HTTP hello-world, until killed)
//! bench http --url http://... --conns 64 --total T   (HTTP GET load)
//! ```
//!
//! Connections are spread round-robin over the endpoints (or all go to the leader with
//! `--target-leader`); clients share the connections round-robin, as etcd's benchmark does.

mod conn;
mod http;
mod lease;
mod put;
mod range;
mod stats;
mod watch;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug, Clone)]
#[command(about = "etcd v3 benchmark client: one JSON line per run")]
pub struct Args {
    /// Comma-separated client endpoints (host:port or http://host:port).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// gRPC connections (HTTP/2), spread over the endpoints.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Concurrent clients, sharing the connections.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Send everything to the current leader (found with Maintenance.Status).
    #[arg(long)]
    pub target_leader: bool,
    /// Free-form label copied into the output line (e.g. "etcd" or "ours").
    #[arg(long, default_value = "")]
    pub label: String,
    #[command(subcommand)]
    pub workload: Workload,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Workload {
    /// Puts of random keys from a key space.
    Put(put::PutArgs),
    /// Ranges of one key, linearizable or serializable.
    Range(range::RangeArgs),
    /// Grant leases with a key each, keep them alive, count lost keys.
    Lease(lease::LeaseArgs),
    /// Watchers on a prefix, puts under it, delivery latency.
    Watch(watch::WatchArgs),
    /// A bare HTTP hello-world server (the gateway benchmark's ceiling); runs until killed.
    Hello(http::HelloArgs),
    /// Closed-loop HTTP GETs of one URL over N connections (the gateway benchmark).
    Http(http::HttpArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Workload::Hello(w) = &args.workload {
        return http::hello(w).await;
    }
    if let Workload::Http(w) = &args.workload {
        let mut out = http::run(w).await?;
        if let Some(o) = out.as_object_mut() {
            o.insert("label".into(), args.label.clone().into());
        }
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    let channels = conn::connect(&args).await?;
    let mut out = match &args.workload {
        Workload::Put(w) => put::run(&args, w, &channels).await?,
        Workload::Range(w) => range::run(&args, w, &channels).await?,
        Workload::Lease(w) => lease::run(&args, w, &channels).await?,
        Workload::Watch(w) => watch::run(&args, w, &channels).await?,
        Workload::Hello(_) | Workload::Http(_) => unreachable!("handled above"),
    };
    if let Some(o) = out.as_object_mut() {
        o.insert("label".into(), args.label.clone().into());
        o.insert("endpoints".into(), args.endpoints.join(",").into());
        o.insert("conns".into(), args.conns.into());
        o.insert("clients".into(), args.clients.into());
        o.insert("target_leader".into(), args.target_leader.into());
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
