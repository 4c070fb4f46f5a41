//! The soak (issue 18 part 1): an hour of go-micro churn compressed into minutes, with the
//! members' memory sampled over time, to show it stays flat once auto-compaction runs.
//!
//! The seed's traffic, `--speed` times faster: `--instances` services (the seed: 4) register
//! as go-micro's etcd registry does (lease grant with `--ttl`, put of the node's JSON under
//! `/micro-registry/<service>/<node id>` on it), renew every `--renew` seed seconds
//! (clientv3's `KeepAliveOnce`), and restart every `--restart` seed seconds (revoke, then a
//! fresh registration under a new node id, and a cache-selector client reading the
//! service: client churn); meanwhile plain puts overwrite keys of a `--keys` space at
//! `--puts` per seed second. Lease TTLs stay real seconds (only the rates are compressed).
//! Every `--sample` real seconds a [`sample::Sample`] is taken; the result line holds them
//! all, and `bench soak-report` (`report.rs`) turns the lines of both sides into the table
//! and the verdict of `bench/soak.md`. Auto-compaction is the servers' own (the script
//! starts both with the same `--auto-compaction-*`).

pub mod report;
pub mod sample;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::Args;

#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// Seed seconds simulated (3600: an hour).
    #[arg(long, default_value_t = 3600)]
    pub sim_secs: u64,
    /// Seed seconds per real second (20: the hour in three minutes).
    #[arg(long, default_value_t = 20)]
    pub speed: u64,
    /// Service instances (the seed's four: two srv, two api).
    #[arg(long, default_value_t = 4)]
    pub instances: u64,
    /// go-micro's `--register_ttl`, real seconds.
    #[arg(long, default_value_t = 30)]
    pub ttl: i64,
    /// go-micro's `--register_interval`, seed seconds between keep-alives.
    #[arg(long, default_value_t = 10)]
    pub renew: u64,
    /// Seed seconds between two restarts of an instance (staggered over the instances).
    #[arg(long, default_value_t = 60)]
    pub restart: u64,
    /// Plain puts per seed second.
    #[arg(long, default_value_t = 50)]
    pub puts: u64,
    /// Keys the plain puts overwrite.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Real seconds between two samples.
    #[arg(long, default_value_t = 5.0)]
    pub sample: f64,
    /// Most plain puts in flight; past it a put due is skipped and counted as behind.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
}

/// What the churn did, counted as it goes.
#[derive(Default)]
struct Counts {
    registrations: AtomicU64,
    register_errors: AtomicU64,
    renewals: AtomicU64,
    renew_lost: AtomicU64,
    renew_errors: AtomicU64,
    revokes: AtomicU64,
    revoke_errors: AtomicU64,
    reads: AtomicU64,
    puts: AtomicU64,
    put_errors: AtomicU64,
    puts_behind: AtomicU64,
}

fn node_json(service: &str, node: &str, i: u64) -> String {
    json!({
        "name": service, "version": "latest", "metadata": {},
        "endpoints": [{"name": "Say.Hello",
            "request": {"name": "Request", "type": "Request",
                "values": [{"name": "name", "type": "string", "values": null}]},
            "response": {"name": "Response", "type": "Response",
                "values": [{"name": "msg", "type": "string", "values": null}]},
            "metadata": {"stream": "false"}}],
        "nodes": [{"id": node, "address": format!("127.0.0.1:{}", 40000 + i),
            "metadata": {"broker": "http", "protocol": "grpc", "registry": "etcd",
                "server": "grpc", "transport": "grpc"}}],
    })
    .to_string()
}

/// clientv3's `KeepAliveOnce`: a fresh stream, one request, one answer; the TTL granted.
async fn keep_alive_once(ch: Channel, id: i64) -> Result<i64, tonic::Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let _ = tx.send(LeaseKeepAliveRequest { id }).await;
    let mut resp = LeaseClient::new(ch)
        .lease_keep_alive(ReceiverStream::new(rx))
        .await?
        .into_inner();
    match resp.next().await {
        Some(r) => Ok(r?.ttl),
        None => Err(tonic::Status::unavailable("keep-alive stream ended")),
    }
}

/// Registers as go-micro does; the lease id.
async fn register(ch: &Channel, w: &SoakArgs, i: u64, gen: u64) -> Result<i64, tonic::Status> {
    let service = format!("go.micro.srv.soak{}", i % 4);
    let node = format!("{service}-{i:04}-{gen:06}-{:08x}", rand::random::<u32>());
    let lease = LeaseClient::new(ch.clone())
        .lease_grant(LeaseGrantRequest { ttl: w.ttl, id: 0 })
        .await?
        .into_inner()
        .id;
    let put = PutRequest {
        key: format!("/micro-registry/{service}/{node}").into_bytes(),
        value: node_json(&service, &node, i).into_bytes(),
        lease,
        ..Default::default()
    };
    KvClient::new(ch.clone()).put(put).await?;
    Ok(lease)
}

/// One instance's life until `end`: register, renew, restart (revoke, register again).
async fn instance(ch: Channel, w: SoakArgs, i: u64, end: Instant, c: Arc<Counts>) {
    let speed = w.speed.max(1) as f64;
    let renew = Duration::from_secs_f64(w.renew.max(1) as f64 / speed);
    let restart = Duration::from_secs_f64(w.restart.max(1) as f64 / speed);
    // Staggered: instance i restarts first after (i + 1) / n of a period.
    let first = restart.mul_f64((i + 1) as f64 / w.instances.max(1) as f64);
    let mut next_restart = Instant::now() + first;
    for gen in 0u64.. {
        if Instant::now() >= end {
            return;
        }
        let lease = match register(&ch, &w, i, gen).await {
            Ok(l) => l,
            Err(_) => {
                c.register_errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(renew).await;
                continue;
            }
        };
        c.registrations.fetch_add(1, Ordering::Relaxed);
        // A cache-selector client (re)reads the service, as one does on a restart.
        let prefix = format!("/micro-registry/go.micro.srv.soak{}/", i % 4);
        let read = RangeRequest {
            range_end: crate::scale::prefix_end(prefix.as_bytes()),
            key: prefix.into_bytes(),
            ..Default::default()
        };
        if KvClient::new(ch.clone()).range(read).await.is_ok() {
            c.reads.fetch_add(1, Ordering::Relaxed);
        }
        let stop = next_restart.min(end);
        while Instant::now() + renew < stop {
            tokio::time::sleep(renew).await;
            match keep_alive_once(ch.clone(), lease).await {
                Ok(ttl) if ttl > 0 => drop(c.renewals.fetch_add(1, Ordering::Relaxed)),
                Ok(_) => drop(c.renew_lost.fetch_add(1, Ordering::Relaxed)),
                Err(_) => drop(c.renew_errors.fetch_add(1, Ordering::Relaxed)),
            }
        }
        tokio::time::sleep_until(stop.into()).await;
        next_restart += restart;
        match LeaseClient::new(ch.clone())
            .lease_revoke(LeaseRevokeRequest { id: lease })
            .await
        {
            Ok(_) => drop(c.revokes.fetch_add(1, Ordering::Relaxed)),
            Err(_) => drop(c.revoke_errors.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

/// Plain puts at `puts · speed` per real second until `end`, in 10 ms ticks, at most
/// `--in-flight` at a time.
async fn putter(chans: Vec<Channel>, w: SoakArgs, end: Instant, c: Arc<Counts>) {
    let per_s = (w.puts * w.speed) as f64;
    let tick = Duration::from_millis(10);
    let gate = Arc::new(Semaphore::new(w.in_flight.max(1)));
    let value = Arc::new(vec![b'v'; w.val_size]);
    let (start, mut due, mut sent) = (Instant::now(), 0u64, 0u64);
    let mut tasks = tokio::task::JoinSet::new();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while Instant::now() < end {
        interval.tick().await;
        while tasks.try_join_next().is_some() {}
        let target = (start.elapsed().as_secs_f64() * per_s) as u64;
        while due < target {
            due += 1;
            let Ok(permit) = gate.clone().try_acquire_owned() else {
                c.puts_behind.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let mut kv = KvClient::new(chans[sent as usize % chans.len()].clone());
            let key = format!("/soak/keys/{:06}", rand::random::<u64>() % w.keys.max(1));
            let (value, c) = (value.clone(), c.clone());
            sent += 1;
            tasks.spawn(async move {
                let put = PutRequest {
                    key: key.into_bytes(),
                    value: value.to_vec(),
                    ..Default::default()
                };
                match kv.put(put).await {
                    Ok(_) => c.puts.fetch_add(1, Ordering::Relaxed),
                    Err(_) => c.put_errors.fetch_add(1, Ordering::Relaxed),
                };
                drop(permit);
            });
        }
    }
    while tasks.join_next().await.is_some() {}
}

pub async fn run(args: &Args, w: &SoakArgs, chans: &[Channel]) -> anyhow::Result<Value> {
    anyhow::ensure!(!chans.is_empty(), "no connections");
    anyhow::ensure!(
        w.speed > 0 && w.sim_secs > 0,
        "--speed and --sim-secs above 0"
    );
    let first = args
        .endpoints
        .first()
        .ok_or_else(|| anyhow::anyhow!("no endpoints"))?;
    let start = Instant::now();
    let real = Duration::from_secs_f64(w.sim_secs as f64 / w.speed as f64);
    let end = start + real;
    let sampler = sample::Sampler::new(chans[0].clone(), first, &args.pids, start, w.speed as f64)?;
    let mut samples = vec![sampler.take().await?];
    let counts = Arc::new(Counts::default());
    let mut churn = tokio::task::JoinSet::new();
    for i in 0..w.instances {
        let ch = chans[i as usize % chans.len()].clone();
        churn.spawn(instance(ch, w.clone(), i, end, counts.clone()));
    }
    churn.spawn(putter(chans.to_vec(), w.clone(), end, counts.clone()));
    let every = Duration::from_secs_f64(w.sample.max(0.1));
    let mut next = start + every;
    while next <= end {
        tokio::time::sleep_until(next.into()).await;
        let s = sampler.take().await?;
        eprintln!(
            "soak: t={:.0}s rev={} compacted={} rss={:?}",
            s.t, s.revision, s.compact_revision, s.rss_mib
        );
        samples.push(s);
        next += every;
    }
    while churn.join_next().await.is_some() {}
    samples.push(sampler.take().await?);
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let c = &counts;
    let verdict = report::verdict(&samples);
    Ok(json!({
        "workload": "soak",
        "sim_secs": w.sim_secs, "speed": w.speed, "real_s": (start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "instances": w.instances, "ttl": w.ttl, "renew": w.renew, "restart": w.restart,
        "puts_per_sim_s": w.puts, "keys": w.keys, "val_size": w.val_size,
        "registrations": n(&c.registrations), "register_errors": n(&c.register_errors),
        "renewals": n(&c.renewals), "renew_lost": n(&c.renew_lost), "renew_errors": n(&c.renew_errors),
        "revokes": n(&c.revokes), "revoke_errors": n(&c.revoke_errors), "reads": n(&c.reads),
        "puts": n(&c.puts), "put_errors": n(&c.put_errors), "puts_behind": n(&c.puts_behind),
        "flat": verdict.flat, "verdict": verdict.text,
        "samples": samples,
    }))
}
