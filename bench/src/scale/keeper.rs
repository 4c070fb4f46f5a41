//! Keep-alive streams for many leases that survive a member's death: each keeper owns a shard
//! of the lease table and re-sends it every `every`; when its stream breaks it moves to the next
//! endpoint and re-sends what was still unanswered with the ORIGINAL send instant, so a
//! keep-alive's latency is what a client waiting for it would see, failover included.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::LeaseKeepAliveRequest;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::stats;

/// What every keeper shares: the leases, when each was last renewed, the counters.
pub struct Shared {
    pub base: Instant,
    pub ids: Arc<Vec<AtomicI64>>,
    /// Per lease index: nanoseconds since `base` of its last answer with TTL > 0 (0: none).
    pub last_ok: Vec<AtomicU64>,
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    /// Answers with TTL 0: the member says the lease is gone.
    pub expired: AtomicU64,
    pub stream_errors: AtomicU64,
    hist: Mutex<Histogram<u64>>,
    /// While set: every answer's (sent, answered), ns since `base` (row 3 relates them to
    /// the moment writes were accepted again).
    pub record_answers: AtomicBool,
    answers: Mutex<Vec<(u64, u64)>>,
}

impl Shared {
    pub fn new(ids: Arc<Vec<AtomicI64>>) -> Arc<Self> {
        Arc::new(Shared {
            base: Instant::now(),
            last_ok: (0..ids.len()).map(|_| AtomicU64::new(0)).collect(),
            ids,
            sent: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            stream_errors: AtomicU64::new(0),
            hist: Mutex::new(stats::hist()),
            record_answers: AtomicBool::new(false),
            answers: Mutex::new(Vec::new()),
        })
    }

    /// The keep-alive latencies recorded since the last call (and starts a new record).
    pub fn take_hist(&self) -> Histogram<u64> {
        let mut h = self.hist.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *h, stats::hist())
    }

    /// The (sent, answered) pairs recorded while `record_answers` was set.
    pub fn take_answers(&self) -> Vec<(u64, u64)> {
        std::mem::take(&mut *self.answers.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Nanoseconds since `base`.
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// How many leases had an answer with TTL > 0 after `ns` (nanoseconds since `base`).
    pub fn renewed_after(&self, ns: u64) -> usize {
        self.last_ok
            .iter()
            .filter(|t| t.load(Ordering::Relaxed) > ns)
            .count()
    }
}

type Pending = Arc<Mutex<HashMap<i64, (usize, Instant)>>>;

/// Running keepers; [`Pool::stop`] ends them.
pub struct Pool {
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Pool {
    /// `streams` keepers, keeper `k` starting on endpoint `k % endpoints.len()`, each renewing
    /// the lease indices `i % streams == k` once every `every`, paced: its shard is cut into
    /// `slices` parts, one sent every `every / slices` (the first at once). A client renewing
    /// many leases renews each at its own time; one burst of every lease would measure the
    /// burst's queue instead. `slices = 1`: everything at once.
    pub fn start(
        shared: Arc<Shared>,
        endpoints: &[String],
        streams: usize,
        every: Duration,
        slices: usize,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let endpoints = Arc::new(endpoints.to_vec());
        let n = streams.max(1);
        let tasks = (0..n)
            .map(|k| {
                let (sh, eps, rx) = (shared.clone(), endpoints.clone(), stop_rx.clone());
                tokio::spawn(keeper(sh, eps, (k, n), every, slices.max(1), rx))
            })
            .collect();
        Pool {
            shared,
            stop,
            tasks,
        }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

struct Stream {
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    reader: JoinHandle<()>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn open(sh: &Arc<Shared>, endpoint: &str, pending: &Pending) -> anyhow::Result<Stream> {
    let ch = tokio::time::timeout(Duration::from_secs(2), crate::conn::channel(endpoint))
        .await
        .map_err(|_| anyhow::anyhow!("connect {endpoint}: timed out"))??;
    let (tx, rx) = mpsc::channel(8192);
    let (sh, pending) = (sh.clone(), pending.clone());
    // The call runs in its own task: a grpc-go server (etcd) sends the response headers only
    // with its first answer, which needs a first request from the keeper.
    let reader = tokio::spawn(async move {
        let mut lc = LeaseClient::new(ch);
        let Ok(resp) = lc.lease_keep_alive(ReceiverStream::new(rx)).await else {
            return;
        };
        let mut resp = resp.into_inner();
        while let Some(Ok(r)) = resp.next().await {
            let Some((idx, at)) = pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&r.id)
            else {
                continue;
            };
            if r.ttl > 0 {
                sh.last_ok[idx].store(sh.now_ns(), Ordering::Relaxed);
                sh.answered.fetch_add(1, Ordering::Relaxed);
                if sh.record_answers.load(Ordering::Relaxed) {
                    let sent = at.saturating_duration_since(sh.base).as_nanos() as u64;
                    let mut a = sh.answers.lock().unwrap_or_else(|p| p.into_inner());
                    a.push((sent, sh.now_ns()));
                }
                let mut h = sh.hist.lock().unwrap_or_else(|p| p.into_inner());
                stats::record(&mut h, at.elapsed());
            } else {
                sh.expired.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok(Stream { tx, reader })
}

async fn keeper(
    sh: Arc<Shared>,
    endpoints: Arc<Vec<String>>,
    (k, n): (usize, usize),
    every: Duration,
    slices: usize,
    mut stop: watch::Receiver<bool>,
) {
    let pending: Pending = Arc::default();
    let mut ep = k % endpoints.len();
    let mut stream: Option<Stream> = None;
    let mut slice = 0usize;
    let mut tick = tokio::time::interval(every / slices as u32);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            return;
        }
        let Some(s) = stream.as_mut() else {
            match open(&sh, &endpoints[ep], &pending).await {
                Ok(s) => {
                    // What the broken stream left unanswered goes again, keeping its send time.
                    let again: Vec<i64> = pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .keys()
                        .copied()
                        .collect();
                    let mut ok = true;
                    for id in again {
                        ok = ok && s.tx.send(LeaseKeepAliveRequest { id }).await.is_ok();
                    }
                    if ok {
                        stream = Some(s);
                    } else {
                        ep = (ep + 1) % endpoints.len();
                    }
                }
                Err(_) => {
                    ep = (ep + 1) % endpoints.len();
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
            continue;
        };
        tokio::select! {
            _ = stop.changed() => {}
            _ = &mut s.reader => {
                sh.stream_errors.fetch_add(1, Ordering::Relaxed);
                stream = None;
                ep = (ep + 1) % endpoints.len();
            }
            _ = tick.tick() => {
                let mut ok = true;
                let this = slice;
                slice = (slice + 1) % slices;
                for (p, i) in (k..sh.ids.len()).step_by(n).enumerate() {
                    if p % slices != this {
                        continue;
                    }
                    let id = sh.ids[i].load(Ordering::Relaxed);
                    if id == 0 {
                        continue;
                    }
                    let fresh = {
                        let mut p = pending.lock().unwrap_or_else(|p| p.into_inner());
                        // Still unanswered: not sent twice, its wait keeps counting.
                        match p.entry(id) {
                            Entry::Vacant(v) => {
                                v.insert((i, Instant::now()));
                                true
                            }
                            Entry::Occupied(_) => false,
                        }
                    };
                    if fresh {
                        if s.tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                            ok = false;
                            break;
                        }
                        sh.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if !ok {
                    sh.stream_errors.fetch_add(1, Ordering::Relaxed);
                    stream = None;
                    ep = (ep + 1) % endpoints.len();
                }
            }
        }
    }
}
