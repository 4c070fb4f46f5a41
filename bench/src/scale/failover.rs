//! Row 3: the leader killed with N live leases. After [`super::setup`] and `--hold` seconds of
//! steady keep-alive, a probe writes every 10 ms to the other members, the leader's process is
//! killed (SIGKILL, `--pids`), and the run measures: how long until a write sent after the kill
//! succeeds, until the survivors agree on a new leader, how long keep-alives waited for their
//! answer (failover included: a keeper whose stream died re-sends on another member), whether
//! every lease was renewed after the kill, and whether every key is still there on its lease.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tonic::transport::Channel;

use super::cluster::{self, Prober};
use super::LeaseScaleArgs;
use crate::stats::{self, merge};
use crate::Args;

/// Kills the member behind endpoint `index`.
pub type Killer =
    Box<dyn FnOnce(usize) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send>;

/// SIGKILL to the process behind the endpoint (`pids` in the endpoints' order).
pub fn sigkill(pids: Vec<u32>) -> Killer {
    Box::new(move |i| {
        Box::pin(async move {
            let pid = *pids
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("no pid for endpoint {i}: pass --pids"))?;
            let pid = i32::try_from(pid)?;
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )?;
            Ok(())
        })
    })
}

/// The longest wait, in ns, of the keep-alives answered after `killed_ns`, counted from
/// `back_ns` for those sent before it (`answers`: (sent, answered) ns).
fn beyond(answers: &[(u64, u64)], killed_ns: u64, back_ns: u64) -> u64 {
    answers
        .iter()
        .filter(|(_, answered)| *answered > killed_ns)
        .map(|(sent, answered)| answered.saturating_sub((*sent).max(back_ns)))
        .max()
        .unwrap_or(0)
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

pub async fn run(
    args: &Args,
    w: &LeaseScaleArgs,
    chans: &[Channel],
    kill: Killer,
) -> anyhow::Result<Value> {
    let (l, out) = super::setup(args, w, chans).await?;
    let sh = l.pool.shared.clone();
    tokio::time::sleep(Duration::from_secs(w.hold)).await;
    let steady = sh.take_hist();
    let before = cluster::views(&args.endpoints).await;
    let term_before = cluster::max_term(&before);
    let old = cluster::agreed_leader(&before)
        .ok_or_else(|| anyhow::anyhow!("no agreed leader before the kill: {before:?}"))?;
    let mut survivors = Vec::new();
    for (i, e) in args.endpoints.iter().enumerate() {
        if i != old {
            survivors.push(crate::conn::channel(e).await?);
        }
    }
    let survivor_idx: Vec<usize> = (0..args.endpoints.len()).filter(|i| *i != old).collect();
    let survivor_eps: Vec<String> = survivor_idx
        .iter()
        .map(|i| args.endpoints[*i].clone())
        .collect();
    let prober = Prober::start(
        survivors.clone(),
        Duration::from_millis(10),
        Duration::from_secs(5),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired0 = sh.expired.load(Ordering::Relaxed);
    let _ = sh.take_hist();

    let killed_ns = sh.now_ns();
    let killed = Instant::now();
    sh.record_answers.store(true, Ordering::Relaxed);
    kill(old).await?;
    eprintln!("scale-failover: killed the leader (endpoint {old})");
    let new = cluster::wait_leader(&survivor_eps, None, Duration::from_secs(30)).await?;
    let leader_s = secs(killed.elapsed());
    // Writes resumed: the first write sent after the kill that succeeded, at its answer.
    let deadline = killed + Duration::from_secs(30);
    let writes_back = loop {
        let first = prober
            .probes()
            .iter()
            .filter(|p| p.sent >= killed)
            .filter_map(|p| p.done)
            .min();
        if first.is_some() || Instant::now() >= deadline {
            break first;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Every lease due for renewal: one keeper round after the kill, plus slack.
    let every = Duration::from_millis((w.ttl.max(1) as u64) * 1000 / 3);
    let window = every + Duration::from_secs(3);
    let renew_deadline = killed + window + Duration::from_secs(w.ttl.max(1) as u64);
    let n = l.ids.len();
    tokio::time::sleep_until((killed + window).into()).await;
    while sh.renewed_after(killed_ns) < n && Instant::now() < renew_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let renewed = sh.renewed_after(killed_ns);
    let ka = sh.take_hist();
    sh.record_answers.store(false, Ordering::Relaxed);
    let after_writes = writes_back.map(|t| {
        let back_ns = t.saturating_duration_since(sh.base).as_nanos() as u64;
        beyond(&sh.take_answers(), killed_ns, back_ns)
    });
    let probes = prober.stop();
    let (wh, wfail) = cluster::probe_latency(&probes, killed, killed + window);
    let (present, wrong) = super::check_keys(&survivors[new], &l.prefix, &l.ids).await?;
    let term_after = cluster::max_term(&cluster::views(&survivor_eps).await);
    l.pool.stop().await;
    let out = merge(
        merge(
            merge(out, stats::latency(&steady, "steady_keepalive_")),
            stats::latency(&ka, "failover_keepalive_"),
        ),
        stats::latency(&wh, "failover_write_"),
    );
    Ok(merge(
        out,
        json!({
            "workload": "scale-failover",
            "killed_endpoint": old,
            "new_leader_endpoint": survivor_idx[new],
            "new_leader_s": leader_s,
            "writes_back_s": writes_back.map(|t| secs(t - killed)),
            // The longest a keep-alive waited once writes were accepted again: no member can
            // answer a keep-alive before there is a leader, and followers wait an election
            // timeout before they elect one, so this is the wait the lessor adds (etcd's O(n)
            // promotion, #9496, shows here).
            "failover_keepalive_after_writes_max_ms": after_writes.map(|d| (d as f64 / 1e4).round() / 100.0),
            "failover_write_failed": wfail,
            "window_s": secs(window),
            "renewed_after_kill": renewed,
            "all_renewed": renewed == n,
            "keepalives_expired_after_kill": sh.expired.load(Ordering::Relaxed) - expired0,
            "keepalive_stream_errors": sh.stream_errors.load(Ordering::Relaxed),
            "keys_left": present,
            "lost": (n as u64).saturating_sub(present),
            "wrong_lease": wrong,
            "term_before": term_before,
            "term_after": term_after,
        }),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn waits_count_from_when_writes_came_back() {
        // killed at 100, writes back at 1_000: sent at 50 answered at 1_300 waited 300 past
        // it; sent at 1_100 answered at 1_150 waited 50; answered before the kill: ignored.
        let a = [(50, 1_300), (1_100, 1_150), (10, 90)];
        assert_eq!(super::beyond(&a, 100, 1_000), 300);
        assert_eq!(super::beyond(&[], 100, 1_000), 0);
    }
}
