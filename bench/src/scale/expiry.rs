//! Row 2: N leases left to expire at once. After [`super::setup`] and row 1's
//! [`super::hold`] (the same leases) the keepers stop, one last
//! round renews every lease as fast as it can (so all fall due within that round's length),
//! and nothing renews them again. Measured: from when the first lease falls due (round start +
//! TTL) until no key is left; the latency of a probe write every 20 ms meanwhile; the Raft term
//! before and after (an increase is an election the expiry caused).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tonic::transport::Channel;

use super::cluster::{self, Prober};
use super::{keeper, LeaseScaleArgs};
use crate::stats::{self, merge};
use crate::{procs, Args};

/// One renewal of every lease, as fast as the streams go: (start, end, renewed with TTL > 0).
async fn last_round(
    args: &Args,
    w: &LeaseScaleArgs,
    ids: std::sync::Arc<Vec<std::sync::atomic::AtomicI64>>,
) -> anyhow::Result<(Instant, Instant, usize)> {
    let want = ids
        .iter()
        .filter(|i| i.load(Ordering::Relaxed) != 0)
        .count() as u64;
    let sh = keeper::Shared::new(ids);
    let start = Instant::now();
    // Every hour: the first tick (at once) is the only one.
    let pool = keeper::Pool::start(
        sh.clone(),
        &args.endpoints,
        w.streams,
        Duration::from_secs(3600),
        1,
    );
    // A saturated cluster may take longer than the TTL for the round: then the first leases
    // fall due before the last are renewed, which the figures show (`last_round_s`).
    let deadline = start + Duration::from_secs(w.expire_wait);
    while sh.answered.load(Ordering::Relaxed) + sh.expired.load(Ordering::Relaxed) < want
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end = Instant::now();
    pool.stop().await;
    Ok((start, end, sh.renewed_after(0)))
}

pub async fn run(args: &Args, w: &LeaseScaleArgs, chans: &[Channel]) -> anyhow::Result<Value> {
    let (l, out) = super::setup(args, w, chans).await?;
    // Row 1's figures come first: the same leases, kept alive for `--hold` seconds.
    let out = merge(out, super::hold(args, w, chans, &l).await?);
    l.pool.stop().await;
    let term_before = cluster::max_term(&cluster::views(&args.endpoints).await);
    let (start, end, renewed) = last_round(args, w, l.ids.clone()).await?;
    eprintln!(
        "scale-expiry: last round {:.1}s, {renewed} renewed; waiting for expiry",
        (end - start).as_secs_f64()
    );
    let ttl = Duration::from_secs(w.ttl.max(1) as u64);
    let first_due = start + ttl;
    let last_due = end + ttl;
    let n = l.ids.len() as i64;

    tokio::time::sleep_until((first_due - Duration::from_secs(1)).into()).await;
    let prober = Prober::start(
        chans.to_vec(),
        Duration::from_millis(20),
        Duration::from_secs(5),
    );
    let cpu = procs::CpuMark::now(&args.pids);
    let give_up = last_due + Duration::from_secs(w.expire_wait);
    let mut first_gone = None;
    let mut left = n;
    let mut peak_rss = 0u64;
    while left > 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Count on a member that answers; a busy one may time out.
        for ch in chans.iter().take(3) {
            if let Ok(Ok(c)) =
                tokio::time::timeout(Duration::from_secs(2), super::count(ch, &l.prefix)).await
            {
                left = c;
                break;
            }
        }
        if left < n && first_gone.is_none() {
            first_gone = Some(Instant::now());
        }
        peak_rss = peak_rss.max(procs::rss_sum_kib(&args.pids));
    }
    let gone_at = Instant::now();
    let cpu = cpu.since(&args.pids, "expiry_");
    let probes = prober.stop();
    let (wh, wfail) = cluster::probe_latency(&probes, first_due, gone_at);
    let views = cluster::views(&args.endpoints).await;
    let term_after = cluster::max_term(&views);
    // Seconds from `from` to `t`, negative if `t` came first.
    let after = |t: Instant, from: Instant| {
        let d = if t >= from {
            (t - from).as_secs_f64()
        } else {
            -(from - t).as_secs_f64()
        };
        (d * 1000.0).round() / 1000.0
    };
    let out = merge(
        merge(out, stats::latency(&wh, "write_")),
        json!({
            "workload": "scale-expiry",
            "last_round_s": after(end, start),
            "renewed_in_last_round": renewed,
            "all_gone": left == 0,
            "keys_left": left,
            "first_gone_after_due_s": first_gone.map(|t| after(t, first_due)),
            "all_gone_after_first_due_s": after(gone_at, first_due),
            "all_gone_after_last_due_s": after(gone_at, last_due),
            "write_failed": wfail,
            "term_before": term_before,
            "term_after": term_after,
            "elections": term_after.saturating_sub(term_before),
            "peak_rss_sum_mib": (peak_rss as f64 / 1024.0 * 10.0).round() / 10.0,
        }),
    );
    Ok(merge(out, cpu))
}
