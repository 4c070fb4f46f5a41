//! Row 4: W watchers on the connections (`--conns`), P puts. Watcher `j` lives on stream
//! `j % S` (S = connections × `--streams-per-conn`) and watches prefix `(j / S) % prefixes`, so
//! every stream holds watchers of many prefixes; put `i` goes to prefix `i % prefixes`. Each
//! put therefore reaches W / prefixes watchers (with the defaults 10,000 × 100 = 1,000,000
//! deliveries: every watcher on one prefix would be 10^8, more than this machine can carry in a
//! sane time). Measured: all delivered, delivery latency from the put's send, and the members'
//! memory before and after the watchers exist (per watcher).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::watch_request::RequestUnion;
use proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::stats::{self, merge};
use crate::{procs, Args};

#[derive(clap::Args, Debug, Clone)]
pub struct WatchScaleArgs {
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    #[arg(long, default_value_t = 100)]
    pub prefixes: usize,
    #[arg(long, default_value_t = 10_000)]
    pub puts: u64,
    /// Watch streams per connection; the watchers are spread over all streams.
    #[arg(long, default_value_t = 1)]
    pub streams_per_conn: usize,
    /// Concurrent putters.
    #[arg(long, default_value_t = 8)]
    pub put_clients: usize,
    #[arg(long, default_value_t = 64)]
    pub val_size: usize,
    /// Give up waiting for deliveries this many seconds after the last put.
    #[arg(long, default_value_t = 120)]
    pub wait: u64,
}

/// Send instants of the puts, nanoseconds since `base` (0: not sent yet).
pub(crate) struct Sent {
    pub base: Instant,
    pub at: Vec<AtomicU64>,
}

impl Sent {
    pub(crate) fn new(n: usize) -> Arc<Self> {
        Arc::new(Sent {
            base: Instant::now(),
            at: (0..n).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Marks put `i` as sent now.
    pub(crate) fn mark(&self, i: usize) {
        let t = self.base.elapsed().as_nanos() as u64;
        if let Some(a) = self.at.get(i) {
            a.store(t.max(1), Ordering::Release);
        }
    }

    /// How long ago put `i` was sent, if it was.
    pub(crate) fn since(&self, i: usize, now_ns: u64) -> Option<Duration> {
        let at = self.at.get(i)?.load(Ordering::Acquire);
        (at > 0).then(|| Duration::from_nanos(now_ns.saturating_sub(at)))
    }
}

fn prefix_of(base: &str, p: usize) -> String {
    format!("{base}{p:03}/")
}

/// One stream with its watchers: created, then counts its deliveries up to `expected`.
async fn stream(
    ch: Channel,
    prefixes: Vec<String>,
    expected: u64,
    sent: Arc<Sent>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, u64)> {
    let (tx, rx) = tokio::sync::mpsc::channel(prefixes.len().max(1));
    for p in &prefixes {
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: p.clone().into_bytes(),
                range_end: super::prefix_end(p.as_bytes()),
                ..Default::default()
            })),
        })
        .await?;
    }
    let mut resp = WatchClient::new(ch)
        .max_decoding_message_size(crate::conn::MAX_MSG)
        .watch(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let (mut h, mut got, mut created) = (stats::hist(), 0u64, 0usize);
    while got < expected || created < prefixes.len() {
        let Some(r) = resp.next().await else { break };
        let r = r?;
        if r.created {
            created += 1;
            if created == prefixes.len() {
                let _ = ready.send(()).await;
            }
        }
        let now = sent.base.elapsed().as_nanos() as u64;
        for ev in r.events {
            let Some(kv) = ev.kv else { continue };
            let i: Option<usize> = std::str::from_utf8(&kv.key)
                .ok()
                .and_then(|k| k.rsplit('/').next())
                .and_then(|s| s.parse().ok());
            if let Some(d) = i.and_then(|i| sent.since(i, now)) {
                stats::record(&mut h, d);
                got += 1;
            }
        }
    }
    drop(tx);
    Ok((h, got))
}

pub async fn run(args: &Args, w: &WatchScaleArgs, chans: &[Channel]) -> anyhow::Result<Value> {
    anyhow::ensure!(
        w.prefixes > 0 && !chans.is_empty(),
        "no prefixes or no connections"
    );
    let pids = &args.pids;
    let base = format!("/bench/scalewatch/{:08x}/", rand::random::<u32>());
    let streams = chans.len() * w.streams_per_conn.max(1);
    let puts_on = |p: usize| (w.puts + (w.prefixes - 1 - p) as u64) / w.prefixes as u64;
    let sent = Sent::new(w.puts as usize);
    let rss_before = procs::rss_sum_kib(pids);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(streams);
    let mut tasks = Vec::new();
    let mut expected = 0u64;
    for s in 0..streams {
        let ps: Vec<usize> = (s..w.watchers)
            .step_by(streams)
            .map(|j| (j / streams) % w.prefixes)
            .collect();
        if ps.is_empty() {
            continue;
        }
        let exp: u64 = ps.iter().map(|p| puts_on(*p)).sum();
        expected += exp;
        let names = ps.iter().map(|p| prefix_of(&base, *p)).collect();
        let ch = chans[s % chans.len()].clone();
        tasks.push(tokio::spawn(stream(
            ch,
            names,
            exp,
            sent.clone(),
            ready_tx.clone(),
        )));
    }
    drop(ready_tx);
    let setup = Instant::now();
    for _ in 0..tasks.len() {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    let setup_s = setup.elapsed().as_secs_f64();
    eprintln!(
        "scale-watch: {} watchers on {streams} streams in {setup_s:.1}s",
        w.watchers
    );
    let rss_watching = procs::rss_sum_kib(pids);

    let value = vec![b'v'; w.val_size];
    let cpu = procs::CpuMark::now(pids);
    let (ph, perr, ptime, plast) = stats::closed_loop(w.put_clients, w.puts, |c| {
        let kv = KvClient::new(chans[c % chans.len()].clone());
        let (base, value, sent, np) = (base.clone(), value.clone(), sent.clone(), w.prefixes);
        move |i| {
            let mut kv = kv.clone();
            let req = PutRequest {
                key: format!("{}{i}", prefix_of(&base, i as usize % np)).into_bytes(),
                value: value.clone(),
                ..Default::default()
            };
            sent.mark(i as usize);
            async move { kv.put(req).await.map(|_| ()) }
        }
    })
    .await;
    let (mut h, mut delivered, mut errors) = (stats::hist(), 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(w.wait);
    for t in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, t).await {
            Ok(Ok(Ok((sh, got)))) => {
                h.add(sh).expect("same histogram bounds");
                delivered += got;
            }
            _ => errors += 1,
        }
    }
    let cpu = cpu.since(pids, "");
    let delivered_s = setup.elapsed().as_secs_f64() - setup_s;
    let per_watcher = |after: u64| {
        (!pids.is_empty())
            .then(|| (after.saturating_sub(rss_before) as f64 * 1024.0 / w.watchers as f64).round())
    };
    let out = merge(
        merge(
            json!({
                "workload": "scale-watch",
                "watchers": w.watchers,
                "streams": streams,
                "prefixes": w.prefixes,
                "puts": w.puts,
                "expected": expected,
                "delivered": delivered,
                "all_delivered": delivered == expected,
                "stream_errors": errors,
                "setup_s": (setup_s * 1000.0).round() / 1000.0,
                "puts_and_delivery_s": (delivered_s * 1000.0).round() / 1000.0,
                "put_s": (ptime.as_secs_f64() * 1000.0).round() / 1000.0,
                "put_errors": perr,
                "put_last_error": plast,
                "rss_sum_before_mib": (rss_before as f64 / 1024.0 * 10.0).round() / 10.0,
                "bytes_per_watcher": per_watcher(rss_watching),
                "bytes_per_watcher_after_puts": per_watcher(procs::rss_sum_kib(pids)),
            }),
            stats::latency(&ph, "put_"),
        ),
        stats::latency(&h, ""),
    );
    Ok(merge(merge(out, procs::rss_json(pids)), cpu))
}
