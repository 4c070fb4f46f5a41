//! The cluster as the scale rows watch it: who leads, in which term (elections), and a probe
//! that keeps writing so that the rows can say how long writes were refused or slow.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::maintenance_client::MaintenanceClient;
use proto::etcdserverpb::{PutRequest, StatusRequest};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::stats;

/// One member's view: its id, the leader it knows, its Raft term.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub member: u64,
    pub leader: u64,
    pub term: u64,
}

/// The status of every endpoint (None: unreachable within a second).
pub async fn views(endpoints: &[String]) -> Vec<Option<View>> {
    let mut out = Vec::new();
    for e in endpoints {
        let v = tokio::time::timeout(Duration::from_secs(1), async {
            let ch = crate::conn::channel(e).await.ok()?;
            let s = MaintenanceClient::new(ch)
                .status(StatusRequest {})
                .await
                .ok()?
                .into_inner();
            Some(View {
                member: s.header.map(|h| h.member_id).unwrap_or(0),
                leader: s.leader,
                term: s.raft_term,
            })
        })
        .await
        .ok()
        .flatten();
        out.push(v);
    }
    out
}

/// The highest term any endpoint reports (0: none answered).
pub fn max_term(views: &[Option<View>]) -> u64 {
    views.iter().flatten().map(|v| v.term).max().unwrap_or(0)
}

/// The index of the endpoint every reachable member names as leader, if they agree on one.
pub fn agreed_leader(views: &[Option<View>]) -> Option<usize> {
    let live: Vec<&View> = views.iter().flatten().collect();
    let leader = live.first()?.leader;
    if leader == 0 || live.iter().any(|v| v.leader != leader) {
        return None;
    }
    views
        .iter()
        .position(|v| v.is_some_and(|v| v.member == leader))
}

/// Waits until the reachable members agree on a leader other than `not`; its index.
pub async fn wait_leader(
    endpoints: &[String],
    not: Option<usize>,
    within: Duration,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(i) = agreed_leader(&views(endpoints).await) {
            if Some(i) != not {
                return Ok(i);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no agreed leader within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One probe write: when it was sent and, if it succeeded, when its answer came.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub sent: Instant,
    pub done: Option<Instant>,
}

/// A put every `every` on its own task (so a stalled write does not hold back the next),
/// each with a `timeout`, round-robin over `chans`, until [`Prober::stop`].
pub struct Prober {
    log: Arc<Mutex<Vec<Probe>>>,
    task: JoinHandle<()>,
}

impl Prober {
    pub fn start(chans: Vec<Channel>, every: Duration, timeout: Duration) -> Self {
        let log: Arc<Mutex<Vec<Probe>>> = Arc::default();
        let l = log.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for i in 0u64.. {
                tick.tick().await;
                let mut kv = KvClient::new(chans[i as usize % chans.len()].clone());
                let l = l.clone();
                tokio::spawn(async move {
                    let sent = Instant::now();
                    let req = PutRequest {
                        key: format!("/bench/probe/{}", i % 1000).into_bytes(),
                        value: b"p".to_vec(),
                        ..Default::default()
                    };
                    let r = tokio::time::timeout(timeout, kv.put(req)).await;
                    let done = matches!(r, Ok(Ok(_))).then(Instant::now);
                    l.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Probe { sent, done });
                });
            }
        });
        Prober { log, task }
    }

    /// The probes so far (those still in flight are not in it).
    pub fn probes(&self) -> Vec<Probe> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stop(self) -> Vec<Probe> {
        self.task.abort();
        self.probes()
    }
}

/// The latencies of the successful probes sent in `[from, to)`, and how many of those failed.
pub fn probe_latency(probes: &[Probe], from: Instant, to: Instant) -> (Histogram<u64>, u64) {
    let mut h = stats::hist();
    let mut failed = 0;
    for p in probes.iter().filter(|p| p.sent >= from && p.sent < to) {
        match p.done {
            Some(d) => stats::record(&mut h, d - p.sent),
            None => failed += 1,
        }
    }
    (h, failed)
}
