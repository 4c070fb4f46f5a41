//! `lease`: grant N leases and put one key on each, keep them all alive for a while over
//! keep-alive streams, then count the keys that are gone (lost leases), and revoke the rest.
//!
//! Keepers run from before the first grant, each re-sending the ids it owns every `ttl / 3`,
//! so a lease is refreshed within a third of its TTL even while the grants are still going on.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest, RangeRequest,
};
use serde_json::{json, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::stats;
use crate::Args;

#[derive(clap::Args, Debug, Clone)]
pub struct LeaseArgs {
    #[arg(long, default_value_t = 10_000)]
    pub leases: u64,
    /// TTL asked for each lease, seconds.
    #[arg(long, default_value_t = 10)]
    pub ttl: i64,
    /// How long to keep them alive after the last key is written, seconds.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Keep-alive streams (default: one per connection).
    #[arg(long)]
    pub streams: Option<usize>,
    #[arg(long, default_value_t = 64)]
    pub val_size: usize,
}

#[derive(Default)]
struct KeepStats {
    sent: AtomicU64,
    alive: AtomicU64,
    expired: AtomicU64,
    stream_errors: AtomicU64,
}

/// One keep-alive stream: every `every`, sends the granted ids with `index % n == k`.
async fn keeper(
    ch: Channel,
    ids: Arc<Vec<AtomicI64>>,
    k: usize,
    n: usize,
    every: Duration,
    stop: tokio_util_stop::Stop,
    st: Arc<KeepStats>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    // The call is awaited in its own task: a grpc-go server (etcd) sends the response headers
    // only with its first answer, which needs a first request from the loop below.
    let st2 = st.clone();
    let reader = tokio::spawn(async move {
        let mut lease = LeaseClient::new(ch);
        let mut resp = match lease.lease_keep_alive(ReceiverStream::new(rx)).await {
            Ok(r) => r.into_inner(),
            Err(_) => {
                st2.stream_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        while let Some(r) = resp.next().await {
            match r {
                Ok(r) if r.ttl > 0 => st2.alive.fetch_add(1, Ordering::Relaxed),
                Ok(_) => st2.expired.fetch_add(1, Ordering::Relaxed),
                Err(_) => {
                    st2.stream_errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            };
        }
    });
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait() => break,
        }
        for i in (k..ids.len()).step_by(n) {
            let id = ids[i].load(Ordering::Relaxed);
            if id != 0 {
                if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                    break;
                }
                st.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
}

/// A tiny stop signal (a watch channel) so keepers end together.
mod tokio_util_stop {
    #[derive(Clone)]
    pub(super) struct Stop(pub tokio::sync::watch::Receiver<bool>);
    impl Stop {
        pub(super) async fn wait(&self) {
            let mut r = self.0.clone();
            let _ = r.wait_for(|v| *v).await;
        }
    }
}

pub async fn run(args: &Args, w: &LeaseArgs, chans: &[Channel]) -> anyhow::Result<Value> {
    let n = w.leases as usize;
    let prefix = format!("/bench/lease/{:08x}/", rand::random::<u32>());
    let ids: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
    let st = Arc::new(KeepStats::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let streams = w.streams.unwrap_or(chans.len()).max(1);
    let every = Duration::from_millis((w.ttl.max(1) as u64) * 1000 / 3);
    let keepers: Vec<_> = (0..streams)
        .map(|k| {
            let (ch, ids, st) = (chans[k % chans.len()].clone(), ids.clone(), st.clone());
            let stop = tokio_util_stop::Stop(stop_rx.clone());
            tokio::spawn(keeper(ch, ids, k, streams, every, stop, st))
        })
        .collect();

    // --- grant
    let ttl = w.ttl;
    let (gh, gerr, gtime, glast) = stats::closed_loop(args.clients, w.leases, |c| {
        let lc = LeaseClient::new(chans[c % chans.len()].clone());
        let ids = ids.clone();
        move |i| {
            let (mut lc, ids) = (lc.clone(), ids.clone());
            async move {
                let r = lc.lease_grant(LeaseGrantRequest { ttl, id: 0 }).await?;
                ids[i as usize].store(r.into_inner().id, Ordering::Relaxed);
                Ok(())
            }
        }
    })
    .await;
    eprintln!("lease: granted {} in {:.2}s", gh.len(), gtime.as_secs_f64());

    // --- one key per lease
    let value = vec![b'v'; w.val_size];
    let (ph, perr, ptime, _) = stats::closed_loop(args.clients, w.leases, |c| {
        let kv = KvClient::new(chans[c % chans.len()].clone());
        let (ids, prefix, value) = (ids.clone(), prefix.clone(), value.clone());
        move |i| {
            let mut kv = kv.clone();
            let lease = ids[i as usize].load(Ordering::Relaxed);
            let req = PutRequest {
                key: format!("{prefix}{i}").into_bytes(),
                value: value.clone(),
                lease,
                ..Default::default()
            };
            async move {
                if lease == 0 {
                    return Err(tonic::Status::failed_precondition("lease not granted"));
                }
                kv.put(req).await.map(|_| ())
            }
        }
    })
    .await;
    eprintln!(
        "lease: keys written in {:.2}s; keeping alive {}s",
        ptime.as_secs_f64(),
        w.duration
    );

    // --- keep alive, then count
    tokio::time::sleep(Duration::from_secs(w.duration)).await;
    let mut end = prefix.clone().into_bytes();
    *end.last_mut().expect("non-empty prefix") += 1;
    let count = KvClient::new(chans[0].clone())
        .range(RangeRequest {
            key: prefix.clone().into_bytes(),
            range_end: end,
            count_only: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .count;
    let _ = stop_tx.send(true);
    for k in keepers {
        let _ = k.await;
    }

    // --- revoke (not part of the figures that matter, reported for completeness)
    let t = Instant::now();
    let (_, rerr, _, _) = stats::closed_loop(args.clients, w.leases, |c| {
        let lc = LeaseClient::new(chans[c % chans.len()].clone());
        let ids = ids.clone();
        move |i| {
            let mut lc = lc.clone();
            let id = ids[i as usize].load(Ordering::Relaxed);
            async move { lc.lease_revoke(LeaseRevokeRequest { id }).await.map(|_| ()) }
        }
    })
    .await;
    let secs = gtime.as_secs_f64();
    Ok(stats::merge(
        stats::merge(
            json!({
                "workload": "lease",
                "leases": w.leases,
                "ttl": w.ttl,
                "duration_s": w.duration,
                "granted": gh.len(),
                "grant_errors": gerr,
                "grant_last_error": glast,
                "grant_s": (secs * 1000.0).round() / 1000.0,
                "grant_per_s": (gh.len() as f64 / secs).round(),
                "put_s": (ptime.as_secs_f64() * 1000.0).round() / 1000.0,
                "put_errors": perr,
                "put_p99_ms": ph.value_at_quantile(0.99) as f64 / 1000.0,
                "keys_left": count,
                "lost": w.leases as i64 - count,
                "keepalives_sent": st.sent.load(Ordering::Relaxed),
                "keepalives_alive": st.alive.load(Ordering::Relaxed),
                "keepalives_expired": st.expired.load(Ordering::Relaxed),
                "keepalive_stream_errors": st.stream_errors.load(Ordering::Relaxed),
                "revoke_s": (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
                "revoke_errors": rerr,
            }),
            stats::latency(&gh, ""),
        ),
        json!({}),
    ))
}
