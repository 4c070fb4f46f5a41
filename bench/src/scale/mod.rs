//! Scale workloads (issue 21): many leases (granted and kept alive, left to expire at once, a
//! leader killed under them), many watchers, a go-micro-shaped registration load. Each prints
//! one JSON line like every other workload; `bench/scale.sh` runs them against etcd and ours.
//!
//! Rows 1–3 share [`setup`]: N leases granted, one key each (`<prefix><index:06>`), kept alive
//! by [`keeper::Pool`] from before the first grant.

pub mod cluster;
pub mod expiry;
pub mod failover;
pub mod keeper;
pub mod micro;
pub mod watchers;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::{LeaseGrantRequest, PutRequest, RangeRequest};
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::stats::{self, merge};
use crate::{procs, Args};

#[derive(clap::Args, Debug, Clone)]
pub struct LeaseScaleArgs {
    #[arg(long, default_value_t = 100_000)]
    pub leases: u64,
    /// TTL of each lease, seconds; keep-alives go every TTL / 3.
    #[arg(long, default_value_t = 30)]
    pub ttl: i64,
    /// Seconds of steady keep-alive after the last key is written (row 1: the keep-alive
    /// latency is measured over this; row 3: before the kill).
    #[arg(long, default_value_t = 15)]
    pub hold: u64,
    /// Keep-alive streams (one connection each), spread over the endpoints.
    #[arg(long, default_value_t = 12)]
    pub streams: usize,
    #[arg(long, default_value_t = 64)]
    pub val_size: usize,
    /// Row 2: give up waiting for the keys to be gone after this many seconds past the TTL.
    #[arg(long, default_value_t = 300)]
    pub expire_wait: u64,
}

/// Each keeper renews its shard in this many parts spread over the renewal period.
const SLICES: usize = 20;

/// The leases of a run and the keepers renewing them.
pub struct Leases {
    pub prefix: String,
    pub ids: Arc<Vec<AtomicI64>>,
    pub pool: keeper::Pool,
}

pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// Grants `w.leases` leases and puts one key on each (closed loop, `--clients`), with the
/// keepers running from before the first grant.
pub async fn setup(
    args: &Args,
    w: &LeaseScaleArgs,
    chans: &[Channel],
) -> anyhow::Result<(Leases, Value)> {
    anyhow::ensure!(
        !chans.is_empty() && w.leases > 0,
        "no connections or no leases"
    );
    let n = w.leases as usize;
    let prefix = format!("/bench/scale/{:08x}/", rand::random::<u32>());
    let ids: Arc<Vec<AtomicI64>> = Arc::new((0..n).map(|_| AtomicI64::new(0)).collect());
    let shared = keeper::Shared::new(ids.clone());
    let every = Duration::from_millis((w.ttl.max(1) as u64) * 1000 / 3);
    let pool = keeper::Pool::start(shared, &args.endpoints, w.streams, every, SLICES);

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
    eprintln!("scale: granted {} in {:.1}s", gh.len(), gtime.as_secs_f64());
    let value = vec![b'v'; w.val_size];
    let (ph, perr, ptime, plast) = stats::closed_loop(args.clients, w.leases, |c| {
        let kv = KvClient::new(chans[c % chans.len()].clone());
        let (ids, prefix, value) = (ids.clone(), prefix.clone(), value.clone());
        move |i| {
            let mut kv = kv.clone();
            let lease = ids[i as usize].load(Ordering::Relaxed);
            let req = PutRequest {
                key: format!("{prefix}{i:06}").into_bytes(),
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
    eprintln!("scale: keys written in {:.1}s", ptime.as_secs_f64());
    let secs = |d: Duration| (d.as_secs_f64() * 1000.0).round() / 1000.0;
    let out = merge(
        merge(
            json!({
                "leases": w.leases,
                "ttl": w.ttl,
                "granted": gh.len(),
                "grant_errors": gerr,
                "grant_last_error": glast,
                "grant_s": secs(gtime),
                "grant_per_s": (gh.len() as f64 / gtime.as_secs_f64().max(1e-3)).round(),
                "put_s": secs(ptime),
                "put_errors": perr,
                "put_last_error": plast,
            }),
            stats::latency(&gh, "grant_"),
        ),
        stats::latency(&ph, "put_"),
    );
    Ok((Leases { prefix, ids, pool }, out))
}

/// Every key under `prefix` read in pages: how many are there, and how many of them are not
/// attached to the lease granted for their index.
pub async fn check_keys(
    ch: &Channel,
    prefix: &str,
    ids: &[AtomicI64],
) -> anyhow::Result<(u64, u64)> {
    let end = prefix_end(prefix.as_bytes());
    let mut from = prefix.as_bytes().to_vec();
    let (mut present, mut wrong) = (0u64, 0u64);
    let mut kv = KvClient::new(ch.clone()).max_decoding_message_size(crate::conn::MAX_MSG);
    loop {
        let r = kv
            .range(RangeRequest {
                key: from.clone(),
                range_end: end.clone(),
                limit: 10_000,
                ..Default::default()
            })
            .await?
            .into_inner();
        for k in &r.kvs {
            present += 1;
            let idx: Option<usize> = std::str::from_utf8(&k.key[prefix.len()..])
                .ok()
                .and_then(|s| s.parse().ok());
            let want = idx
                .and_then(|i| ids.get(i))
                .map(|a| a.load(Ordering::Relaxed));
            if want != Some(k.lease) {
                wrong += 1;
            }
        }
        match r.kvs.last() {
            Some(last) if r.more => {
                from = last.key.clone();
                from.push(0);
            }
            _ => return Ok((present, wrong)),
        }
    }
}

/// How many keys are under `prefix` (a count-only range).
pub async fn count(ch: &Channel, prefix: &str) -> anyhow::Result<i64> {
    Ok(KvClient::new(ch.clone())
        .range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            count_only: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .count)
}

/// Row 1's measurements over `--hold` seconds of steady keep-alive: keep-alive latency, every
/// key there on its lease, each member's memory and CPU.
pub async fn hold(
    args: &Args,
    w: &LeaseScaleArgs,
    chans: &[Channel],
    l: &Leases,
) -> anyhow::Result<Value> {
    let sh = l.pool.shared.clone();
    let _ = sh.take_hist();
    let (sent0, expired0) = (
        sh.sent.load(Ordering::Relaxed),
        sh.expired.load(Ordering::Relaxed),
    );
    let cpu = procs::CpuMark::now(&args.pids);
    tokio::time::sleep(Duration::from_secs(w.hold)).await;
    let h = sh.take_hist();
    let cpu = cpu.since(&args.pids, "hold_");
    let (present, wrong) = check_keys(&chans[0], &l.prefix, &l.ids).await?;
    let out = merge(
        stats::latency(&h, "keepalive_"),
        json!({
            "hold_s": w.hold,
            "keepalives_sent_in_hold": sh.sent.load(Ordering::Relaxed) - sent0,
            "keepalives_expired_in_hold": sh.expired.load(Ordering::Relaxed) - expired0,
            "keepalive_stream_errors": sh.stream_errors.load(Ordering::Relaxed),
            "keys_left": present,
            "lost": w.leases.saturating_sub(present),
            "wrong_lease": wrong,
        }),
    );
    Ok(merge(merge(out, procs::rss_json(&args.pids)), cpu))
}

/// Row 1: grant and put, then [`hold`].
pub async fn leases(args: &Args, w: &LeaseScaleArgs, chans: &[Channel]) -> anyhow::Result<Value> {
    let (l, out) = setup(args, w, chans).await?;
    let held = hold(args, w, chans, &l).await?;
    l.pool.stop().await;
    Ok(merge(merge(out, held), json!({"workload": "scale-leases"})))
}
