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
//! bench --pids P0,P1,P2 scale-leases|scale-expiry|scale-failover|scale-watch|scale-micro ...
//! bench --pids P0,P1,P2 soak --sim-secs 3600 --speed 20   (go-micro churn, memory over time)
//! bench soak-report --input results.jsonl                 (the soak's table and verdict)
//! ```
//!
//! The `scale-*` workloads (issue 21, `scale/`) take `--pids`: the member processes behind the
//! endpoints, in the same order, for their memory and CPU (`/proc`) and, in `scale-failover`,
//! for the leader to kill with SIGKILL.
//!
//! Connections are spread round-robin over the endpoints (or all go to the leader with
//! `--target-leader`); clients share the connections round-robin, as etcd's benchmark does.

pub mod conn;
pub mod http;
pub mod lease;
pub mod procs;
pub mod put;
pub mod range;
pub mod scale;
pub mod soak;
pub mod stats;
pub mod watch;

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
    /// Process ids of the members behind `--endpoints`, same order (scale workloads: memory,
    /// CPU, the leader to kill).
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
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
    /// Scale row 1: N leases with a key each, granted and kept alive; memory per member.
    ScaleLeases(scale::LeaseScaleArgs),
    /// Scale row 2: N leases left to expire at once; time until every key is gone.
    ScaleExpiry(scale::LeaseScaleArgs),
    /// Scale row 3: the leader killed (SIGKILL) with N live leases; time until writes resume.
    ScaleFailover(scale::LeaseScaleArgs),
    /// Scale row 4: W watchers on the connections, P puts; delivery and memory per watcher.
    ScaleWatch(scale::watchers::WatchScaleArgs),
    /// Scale row 5: go-micro-shaped registrations, renewals and cache-selector watchers.
    ScaleMicro(scale::micro::MicroScaleArgs),
    /// The soak: an hour of go-micro churn compressed, memory sampled over time (`soak/`).
    Soak(soak::SoakArgs),
    /// The soak's Markdown table and verdict from its result lines (no endpoints used).
    SoakReport(soak::report::ReportArgs),
    /// A bare HTTP hello-world server (the gateway benchmark's ceiling); runs until killed.
    Hello(http::HelloArgs),
    /// Closed-loop HTTP GETs of one URL over N connections (the gateway benchmark).
    Http(http::HttpArgs),
}
