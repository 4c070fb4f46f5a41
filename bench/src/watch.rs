//! `watch`: W watchers (one watch stream each) on a prefix, then P puts under it; for every
//! event at every watcher, the delivery latency from the moment its put was sent.

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

use crate::stats;
use crate::Args;

#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    #[arg(long, default_value_t = 200)]
    pub watchers: usize,
    #[arg(long, default_value_t = 1000)]
    pub puts: u64,
    /// Concurrent putters (each put waits for its answer).
    #[arg(long, default_value_t = 1)]
    pub put_clients: usize,
    #[arg(long, default_value_t = 64)]
    pub val_size: usize,
    /// Give up waiting for deliveries after this many seconds past the last put.
    #[arg(long, default_value_t = 30)]
    pub wait: u64,
}

/// Send instants of the puts, as nanoseconds since `base` (0 = not sent yet).
struct Sent {
    base: Instant,
    at: Vec<AtomicU64>,
}

type WatcherResult = (hdrhistogram::Histogram<u64>, u64);

async fn watcher(
    ch: Channel,
    prefix: Vec<u8>,
    puts: u64,
    sent: Arc<Sent>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<WatcherResult> {
    let mut end = prefix.clone();
    *end.last_mut().expect("non-empty prefix") += 1;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: prefix.clone(),
            range_end: end,
            ..Default::default()
        })),
    })
    .await?;
    let mut stream = WatchClient::new(ch)
        .max_decoding_message_size(crate::conn::MAX_MSG)
        .watch(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut h = stats::hist();
    let mut got = 0u64;
    let mut created = false;
    while let Some(r) = stream.next().await {
        let r = r?;
        if r.created && !created {
            created = true;
            let _ = ready.send(()).await;
        }
        let now = sent.base.elapsed().as_nanos() as u64;
        for ev in r.events {
            let Some(kv) = ev.kv else { continue };
            let idx: Option<usize> = std::str::from_utf8(&kv.key[prefix.len()..])
                .ok()
                .and_then(|s| s.parse().ok());
            if let Some(at) = idx.and_then(|i| sent.at.get(i)) {
                let at = at.load(Ordering::Acquire);
                stats::record(&mut h, Duration::from_nanos(now.saturating_sub(at)));
                got += 1;
            }
        }
        if got >= puts {
            break;
        }
    }
    drop(tx);
    Ok((h, got))
}

pub async fn run(_args: &Args, w: &WatchArgs, chans: &[Channel]) -> anyhow::Result<Value> {
    let prefix = format!("/bench/watch/{:08x}/", rand::random::<u32>()).into_bytes();
    let sent = Arc::new(Sent {
        base: Instant::now(),
        at: (0..w.puts).map(|_| AtomicU64::new(0)).collect(),
    });
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(w.watchers.max(1));
    let watchers: Vec<_> = (0..w.watchers)
        .map(|i| {
            let ch = chans[i % chans.len()].clone();
            tokio::spawn(watcher(
                ch,
                prefix.clone(),
                w.puts,
                sent.clone(),
                ready_tx.clone(),
            ))
        })
        .collect();
    drop(ready_tx);
    let setup = Instant::now();
    for _ in 0..w.watchers {
        if ready_rx.recv().await.is_none() {
            break;
        }
    }
    eprintln!(
        "watch: {} watchers ready in {:.2}s",
        w.watchers,
        setup.elapsed().as_secs_f64()
    );

    let value = vec![b'v'; w.val_size];
    let (ph, perr, ptime, plast) = stats::closed_loop(w.put_clients, w.puts, |c| {
        let kv = KvClient::new(chans[c % chans.len()].clone());
        let (prefix, value, sent) = (prefix.clone(), value.clone(), sent.clone());
        move |i| {
            let mut kv = kv.clone();
            let mut key = prefix.clone();
            key.extend_from_slice(i.to_string().as_bytes());
            let req = PutRequest {
                key,
                value: value.clone(),
                ..Default::default()
            };
            let sent = sent.clone();
            async move {
                let t = sent.base.elapsed().as_nanos() as u64;
                sent.at[i as usize].store(t.max(1), Ordering::Release);
                kv.put(req).await.map(|_| ())
            }
        }
    })
    .await;

    let mut h = stats::hist();
    let mut delivered = 0u64;
    let mut watch_errors = 0u64;
    let deadline = Instant::now() + Duration::from_secs(w.wait);
    for t in watchers {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, t).await {
            Ok(Ok(Ok((wh, got)))) => {
                h.add(wh).expect("same histogram bounds");
                delivered += got;
            }
            _ => watch_errors += 1,
        }
    }
    let expected = w.puts * w.watchers as u64;
    Ok(stats::merge(
        stats::merge(
            json!({
                "workload": "watch",
                "watchers": w.watchers,
                "puts": w.puts,
                "expected": expected,
                "delivered": delivered,
                "all_delivered": delivered == expected,
                "watch_errors": watch_errors,
                "put_errors": perr,
                "put_last_error": plast,
                "put_s": (ptime.as_secs_f64() * 1000.0).round() / 1000.0,
            }),
            stats::latency(&ph, "put_"),
        ),
        stats::latency(&h, ""),
    ))
}
