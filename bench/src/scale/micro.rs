//! Row 5: a go-micro-shaped load. `--watchers` cache-selector clients each watch the whole
//! `/micro-registry/` prefix with `prev_kv` (go-micro's etcd watcher; the cache selector watches
//! every service); `--instances` service instances register as go-micro's etcd registry does (a
//! lease grant with the register TTL, then a put of the node's JSON under
//! `/micro-registry/<service>/<node id>` on that lease), and from then on each renews every
//! `--renew` seconds with one keep-alive on a fresh stream (clientv3's `KeepAliveOnce`, what
//! go-micro calls when the node is unchanged). Measured: registrations/s, the registry's CPU
//! (from `/proc` of the member processes) while registering and then for `--hold` seconds of
//! renewals alone, and the watch fan-out latency (a put's send to its event at each watcher).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::watch_request::RequestUnion;
use proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, WatchCreateRequest, WatchRequest,
};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::watchers::Sent;
use crate::stats::{self, merge};
use crate::{procs, Args};

#[derive(clap::Args, Debug, Clone)]
pub struct MicroScaleArgs {
    #[arg(long, default_value_t = 10_000)]
    pub instances: u64,
    /// Services the instances belong to (instance `i` to service `i % services`).
    #[arg(long, default_value_t = 100)]
    pub services: u64,
    #[arg(long, default_value_t = 1_000)]
    pub watchers: usize,
    /// go-micro's `--register_ttl`, seconds.
    #[arg(long, default_value_t = 30)]
    pub ttl: i64,
    /// go-micro's `--register_interval`, seconds.
    #[arg(long, default_value_t = 10)]
    pub renew: u64,
    /// Seconds of renewal after every instance has registered.
    #[arg(long, default_value_t = 20)]
    pub hold: u64,
    /// Give up waiting for the watchers' events this many seconds after the last registration.
    #[arg(long, default_value_t = 120)]
    pub wait: u64,
}

const PREFIX: &str = "/micro-registry/";

fn node_json(service: &str, node: &str, i: u64) -> String {
    json!({
        "name": service, "version": "latest", "metadata": {},
        "endpoints": [{"name": "Say.Hello",
            "request": {"name": "Request", "type": "Request",
                "values": [{"name": "name", "type": "string", "values": null}]},
            "response": {"name": "Response", "type": "Response",
                "values": [{"name": "msg", "type": "string", "values": null}]},
            "metadata": {"stream": "false"}}],
        "nodes": [{"id": node, "address": format!("10.0.{}.{}:{}", i / 250 % 250, i % 250, 40000 + i % 20000),
            "metadata": {"broker": "http", "protocol": "grpc", "registry": "etcd",
                "server": "grpc", "transport": "grpc"}}],
    })
    .to_string()
}

/// One cache-selector client's watch: this run's events (node ids carry `tag`) until `stop`;
/// its latencies and count, also added to `total` as they come.
async fn watcher(
    ch: Channel,
    tag: String,
    sent: Arc<Sent>,
    total: Arc<AtomicU64>,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> (hdrhistogram::Histogram<u64>, u64, bool) {
    let (mut h, mut got) = (stats::hist(), 0u64);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: PREFIX.as_bytes().to_vec(),
            range_end: super::prefix_end(PREFIX.as_bytes()),
            prev_kv: true,
            ..Default::default()
        })),
    };
    if tx.send(create).await.is_err() {
        return (h, got, false);
    }
    let call = WatchClient::new(ch)
        .max_decoding_message_size(crate::conn::MAX_MSG)
        .watch(ReceiverStream::new(rx))
        .await;
    let Ok(resp) = call else {
        return (h, got, false);
    };
    let mut resp = resp.into_inner();
    loop {
        let r = tokio::select! {
            _ = stop.wait_for(|s| *s) => return (h, got, true),
            r = resp.next() => r,
        };
        let Some(Ok(r)) = r else {
            return (h, got, false);
        };
        if r.created {
            let _ = ready.send(()).await;
        }
        let now = sent.base.elapsed().as_nanos() as u64;
        for ev in r.events {
            let Some(kv) = ev.kv else { continue };
            let i: Option<usize> = std::str::from_utf8(&kv.key)
                .ok()
                .and_then(|k| k.rsplit_once(&tag))
                .and_then(|(_, n)| n.parse().ok());
            if let Some(d) = i.and_then(|i| sent.since(i, now)) {
                stats::record(&mut h, d);
                got += 1;
                total.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// clientv3's `KeepAliveOnce`: a fresh keep-alive stream, one request, one answer; its TTL.
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

#[derive(Default)]
struct Renewals {
    hist: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    ttl_zero: AtomicU64,
    errors: AtomicU64,
}

/// An instance's renewals: every `every` from its registration until `stop`, as go-micro's
/// register loop does.
fn renew_loop(
    ch: Channel,
    id: i64,
    every: Duration,
    r: Arc<Renewals>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            let t = Instant::now();
            match keep_alive_once(ch.clone(), id).await {
                Ok(ttl) if ttl > 0 => {
                    let mut h = r.hist.lock().unwrap_or_else(|p| p.into_inner());
                    stats::record(h.get_or_insert_with(stats::hist), t.elapsed());
                }
                Ok(_) => drop(r.ttl_zero.fetch_add(1, Ordering::Relaxed)),
                Err(_) => drop(r.errors.fetch_add(1, Ordering::Relaxed)),
            }
        }
    });
}

pub async fn run(args: &Args, w: &MicroScaleArgs, chans: &[Channel]) -> anyhow::Result<Value> {
    anyhow::ensure!(
        !chans.is_empty() && w.services > 0,
        "no connections or no services"
    );
    let pids = &args.pids;
    let tag = format!("-{:08x}-", rand::random::<u32>());
    let sent = Sent::new(w.instances as usize);
    let total = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(w.watchers.max(1));
    let watchers: Vec<_> = (0..w.watchers)
        .map(|i| {
            let ch = chans[i % chans.len()].clone();
            let (tag, sent, total) = (tag.clone(), sent.clone(), total.clone());
            tokio::spawn(watcher(
                ch,
                tag,
                sent,
                total,
                ready_tx.clone(),
                stop.clone(),
            ))
        })
        .collect();
    drop(ready_tx);
    for _ in 0..w.watchers {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    eprintln!("scale-micro: {} watchers ready", w.watchers);

    let renewals = Arc::new(Renewals::default());
    let every = Duration::from_secs(w.renew.max(1));
    let cpu = procs::CpuMark::now(pids);
    let (rh, rerr, rtime, rlast) = stats::closed_loop(args.clients, w.instances, |c| {
        let ch = chans[c % chans.len()].clone();
        let (tag, sent, ttl, services) = (tag.clone(), sent.clone(), w.ttl, w.services);
        let (renewals, stop) = (renewals.clone(), stop.clone());
        move |i| {
            let (mut lc, mut kv) = (LeaseClient::new(ch.clone()), KvClient::new(ch.clone()));
            let service = format!("go.micro.srv.scale{}", i % services);
            let node = format!("{service}{tag}{i}");
            let key = format!("{PREFIX}{service}/{node}");
            let value = node_json(&service, &node, i).into_bytes();
            let (sent, ch, renewals, stop) =
                (sent.clone(), ch.clone(), renewals.clone(), stop.clone());
            async move {
                let grant = LeaseGrantRequest { ttl, id: 0 };
                let id = lc.lease_grant(grant).await?.into_inner().id;
                sent.mark(i as usize);
                let req = PutRequest {
                    key: key.into_bytes(),
                    value,
                    lease: id,
                    ..Default::default()
                };
                kv.put(req).await?;
                renew_loop(ch, id, every, renewals, stop);
                Ok(())
            }
        }
    })
    .await;
    let reg_cpu = cpu.since(pids, "register_");
    eprintln!(
        "scale-micro: {} registered in {:.1}s",
        rh.len(),
        rtime.as_secs_f64()
    );

    // Every registration at every watcher, or give up after `--wait`.
    let expected = rh.len() * w.watchers as u64;
    let deadline = Instant::now() + Duration::from_secs(w.wait);
    while total.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // From the first registration until every event was in (or the wait gave up).
    let delivered_after_s = rtime.as_secs_f64()
        + (deadline - Duration::from_secs(w.wait))
            .elapsed()
            .as_secs_f64();
    // --- renewals alone for `hold` seconds
    let cpu = procs::CpuMark::now(pids);
    tokio::time::sleep(Duration::from_secs(w.hold)).await;
    let renew_cpu = cpu.since(pids, "renew_");
    let _ = stop_tx.send(true);
    let (mut fh, mut delivered, mut broken) = (stats::hist(), 0u64, 0u64);
    for t in watchers {
        if let Ok((h, got, ok)) = t.await {
            fh.add(h).expect("same histogram bounds");
            delivered += got;
            broken += u64::from(!ok);
        }
    }
    let kh = renewals
        .hist
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or_else(stats::hist);
    let out = json!({
        "workload": "scale-micro",
        "instances": w.instances,
        "services": w.services,
        "watchers": w.watchers,
        "registered": rh.len(),
        "register_errors": rerr,
        "register_last_error": rlast,
        "register_s": (rtime.as_secs_f64() * 1000.0).round() / 1000.0,
        "registrations_per_s": (rh.len() as f64 / rtime.as_secs_f64().max(1e-3)).round(),
        "expected_events": expected,
        "delivered": delivered,
        "all_delivered": delivered == expected && rerr == 0,
        "all_delivered_after_s": (delivered_after_s * 1000.0).round() / 1000.0,
        "broken_watches": broken,
        "renew_errors": renewals.errors.load(Ordering::Relaxed),
        "renew_ttl_zero": renewals.ttl_zero.load(Ordering::Relaxed),
    });
    let out = merge(
        merge(out, stats::latency(&rh, "register_")),
        stats::latency(&fh, "fanout_"),
    );
    let out = merge(merge(out, stats::latency(&kh, "renew_")), reg_cpu);
    Ok(merge(merge(out, renew_cpu), procs::rss_json(pids)))
}
