//! One run: start the cluster, the clients and the invariant watchers, let the nemesis loose
//! for the duration, heal everything, take the final reads, check the history and the
//! invariants, and summarise.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{run_client, ClientSpec, Recorder};
use crate::cluster::{Cluster, Target};
use crate::history::{Kind, Op};
use crate::invariants::{self, LeaseLog, WatchLog};
use crate::nemesis;
use crate::ops::Conn;
use crate::summary::{Invariant, Summary, Verdict};

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    /// How long the nemesis runs (setup and final checks come on top).
    pub duration: Duration,
    pub seed: u64,
    pub clients: u32,
    pub keys: usize,
    /// Each client's pause between operations.
    pub think: Duration,
    /// The program the members of ours run: the `faults` binary (whose `member` role runs
    /// registry-node's entry point), or a `registry-node` binary.
    pub member_bin: PathBuf,
    /// Arguments before `--config ... --name ...`: `["member"]` for the `faults` binary.
    pub member_prefix: Vec<String>,
    /// The negative control: a serializable reader on a member the nemesis isolates.
    pub control: bool,
}

impl Config {
    pub fn new(target: Target, duration: Duration, seed: u64, member_bin: PathBuf) -> Config {
        Config {
            target,
            duration,
            seed,
            clients: 8,
            keys: 5,
            think: Duration::from_millis(10),
            member_bin,
            member_prefix: vec!["member".into()],
            control: false,
        }
    }
}

/// The client id of the final reads.
pub const FINAL_CLIENT: u32 = 2000;
const PREFIX: &str = "/faults/";
const LEASE_KEY: &str = "/faults-lease/key";

/// Runs `cfg`, judging the history with `check` (the linearizability checker).
pub async fn run(cfg: &Config, check: &dyn Fn(&[Op]) -> Verdict) -> anyhow::Result<Summary> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut cluster = Cluster::start(cfg.target, &cfg.member_bin, &cfg.member_prefix).await?;
    let urls = cluster.endpoints.clone();
    let rec = Recorder::new();
    let keys: Vec<String> = (0..cfg.keys).map(|k| format!("{PREFIX}k{k}")).collect();
    // The clients stop before the final reads; the lease and watch tasks only after the
    // final checks (the watcher must still catch up then).
    let stop = Arc::new(AtomicBool::new(false));
    let stop_observers = Arc::new(AtomicBool::new(false));
    let mut invariants = Vec::new();
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();

    // The invariant watchers (not in the control, whose point is the checker alone).
    let lease_log = Arc::new(LeaseLog::default());
    let watch_log = Arc::new(WatchLog::default());
    let (_, head) = Conn::new(&urls[0])?
        .read_prefix(PREFIX)
        .await
        .context("first read")?;
    let watch_start = head + 1;
    if !cfg.control {
        let lease = invariants::grant(&urls, LEASE_KEY)
            .await
            .context("grant the kept-alive lease")?;
        tasks.push(tokio::spawn(invariants::keep_alive(
            urls.clone(),
            lease,
            lease_log.clone(),
            rec.clone(),
            stop_observers.clone(),
        )));
        tasks.push(tokio::spawn(invariants::watch_key(
            urls.clone(),
            LEASE_KEY.into(),
            lease_log.clone(),
            rec.clone(),
            stop_observers.clone(),
        )));
        tasks.push(tokio::spawn(invariants::watcher(
            urls.clone(),
            PREFIX.into(),
            watch_start,
            watch_log.clone(),
            stop_observers.clone(),
        )));
    }

    // The clients, spread over the members; in the control, a serializable reader on the
    // member that will be isolated and writers on the others.
    let leader = cluster.wait_healthy(Duration::from_secs(30)).await?;
    let isolated = cfg.control.then_some((leader + 1) % cluster.len());
    let mut clients = Vec::new();
    for id in 0..cfg.clients {
        let (member, reader) = match isolated {
            Some(x) if id == 0 => (x, true),
            Some(x) => (
                (x + 1 + id as usize % (cluster.len() - 1)) % cluster.len(),
                false,
            ),
            None => (id as usize % cluster.len(), false),
        };
        let spec = ClientSpec {
            id,
            url: urls[member].clone(),
            keys: keys.clone(),
            serializable_reads_only: reader,
            writes_only: isolated.is_some() && !reader,
            think: cfg.think,
            seed: cfg.seed,
        };
        clients.push(tokio::spawn(run_client(spec, rec.clone(), stop.clone())));
    }

    eprintln!(
        "[faults] {} run: {:?}, seed {}, members {urls:?}",
        cfg.target, cfg.duration, cfg.seed
    );
    let end = Instant::now() + cfg.duration;
    let faults = nemesis::run(&mut cluster, &rec, &keys, &mut rng, end, isolated).await;
    tokio::time::sleep_until(end).await;

    // Heal everything, then stop the clients.
    cluster.heal_all()?;
    let healthy = cluster.wait_healthy(Duration::from_secs(60)).await;
    invariants.push(Invariant::new(
        "recovers after every fault",
        match (
            &healthy,
            faults
                .iter()
                .filter(|f| f.recovered_after.is_none())
                .count(),
        ) {
            (Ok(_), 0) => Ok(format!("{} faults, healthy again after each", faults.len())),
            (Ok(_), n) => Err(format!(
                "{n} faults left the cluster unhealthy for over 30 s"
            )),
            (Err(e), _) => Err(format!("not healthy 60 s after the final heal: {e:#}")),
        },
    ));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
    }

    // A final linearizable read of each key: the checker then also proves that no
    // acknowledged write was lost.
    for key in &keys {
        final_read(&urls, &rec, key).await;
    }

    if !cfg.control {
        invariants.push(lease_invariant(&urls, &lease_log).await);
        invariants.push(watch_invariant(&urls, watch_start, &watch_log, &rec).await);
    }
    stop_observers.store(true, Ordering::SeqCst);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }

    let history = rec.history();
    let started = std::time::Instant::now();
    let verdict = check(&history);
    let check_time = started.elapsed();
    let mut summary = Summary::new(cfg, &history, faults, verdict, invariants, check_time);
    let passed = if cfg.control {
        summary.verdict.violation
    } else {
        summary.passed()
    };
    if !passed {
        summary.kept_dir = Some(cluster.keep_dir());
    }
    Ok(summary)
}

/// Reads `key` until a member answers (rotating, up to 20 s), recording every attempt.
async fn final_read(urls: &[String], rec: &Recorder, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for url in urls.iter().cycle() {
        let Ok(conn) = Conn::new(url) else { continue };
        let outcome = rec
            .perform(&conn, FINAL_CLIENT, key, Kind::Read, false)
            .await;
        if outcome != crate::history::Outcome::Unknown || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn lease_invariant(urls: &[String], log: &LeaseLog) -> Invariant {
    let mut present = None;
    for url in urls {
        if let Ok(conn) = Conn::new(url) {
            if let Ok(v) = conn.read(LEASE_KEY, false).await {
                present = Some(v.is_some());
                break;
            }
        }
    }
    let violations = log
        .violations
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let checks = log.checks.load(Ordering::SeqCst);
    let keepalives = log.keepalives.load(Ordering::SeqCst);
    let result = if !violations.is_empty() {
        Err(format!(
            "{} violations: {}",
            violations.len(),
            violations
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ))
    } else if present != Some(true) {
        Err(format!(
            "at the end the leased key is {}",
            if present.is_none() {
                "unreadable"
            } else {
                "gone"
            }
        ))
    } else if checks == 0 || keepalives == 0 {
        Err(format!(
            "nothing observed ({checks} reads, {keepalives} keep-alives)"
        ))
    } else {
        Ok(format!(
            "present in all {checks} reads and at the end; {keepalives} keep-alives answered"
        ))
    };
    Invariant::new("kept-alive lease's key never disappears", result)
}

async fn watch_invariant(urls: &[String], start: i64, log: &WatchLog, rec: &Recorder) -> Invariant {
    let result = async {
        let mut last = None;
        for url in urls {
            let Ok(conn) = Conn::new(url) else { continue };
            if let Ok((keys, _)) = conn.read_prefix(PREFIX).await {
                last = Some(keys.iter().map(|k| k.1).max().unwrap_or(0));
                break;
            }
        }
        let last = last.ok_or("no member answered the final range of the prefix")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while log.last_revision() < last {
            if Instant::now() > deadline {
                return Err(format!(
                    "the watcher reached revision {} of {last} within 20 s",
                    log.last_revision()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reference = invariants::reference(urls, PREFIX, start, last).await?;
        let seen = log.events.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let problems = log
            .problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let reconnects = log.reconnects.load(Ordering::SeqCst);
        invariants::check_watch(&seen, &reference, &rec.history())
            .map(|ok| format!("{ok}; {reconnects} reconnections"))
    }
    .await;
    Invariant::new(
        "reconnecting watch sees every revision once, in order",
        result,
    )
}
