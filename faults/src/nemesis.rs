//! The nemesis: one fault at a time, each kind once per cycle in a random order, with random
//! durations, each followed by a heal and a wait until the cluster is healthy again. Every
//! fault is logged (stderr and the run's fault list) with its time on the run's clock.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use tokio::time::Instant;

use crate::client::Recorder;
use crate::cluster::Cluster;
use crate::history::{Kind, Outcome};
use crate::ops::Conn;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// `kill -9` of the leader, restart after 0.2-4 s.
    KillLeader,
    /// `kill -9` of the leader, restart after 0.2 s and at once linearizable reads to it
    /// (each after a write acknowledged through another member).
    QuickRestartLeader,
    /// `kill -9` of a random member, restart after 0.2-4 s.
    KillRandom,
    /// `kill -9` of two members at once (no quorum), restart after 0.2-4 s.
    KillTwo,
    /// SIGSTOP of a random member for 1.5-3 s (longer than the election timeout), SIGCONT.
    Pause,
    /// The leader cut off from both peers for 2-5 s (clients still reach it).
    PartitionLeader,
    /// One chosen member cut off from its peers for 4 s (the negative control's fault).
    Isolate,
}

impl FaultKind {
    /// The kinds of a normal run.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::KillLeader,
        FaultKind::QuickRestartLeader,
        FaultKind::KillRandom,
        FaultKind::KillTwo,
        FaultKind::Pause,
        FaultKind::PartitionLeader,
    ];
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct FaultEvent {
    pub kind: FaultKind,
    /// When it was injected (ns on the run's clock).
    pub at: u64,
    /// When it was healed.
    pub healed: u64,
    pub members: Vec<usize>,
    /// Whether the leader was among the victims (these give the failover times).
    pub leader_victim: bool,
    /// How long the cluster took to be healthy again after the heal, if it did within 30 s.
    pub recovered_after: Option<Duration>,
    /// What else was seen (the quick restart's reads).
    pub note: String,
}

/// The client ids of the quick-restart reads and writes (sequential clients across faults).
pub const BURST_READER: u32 = 1000;
pub const BURST_WRITER: u32 = 1001;

/// Injects faults into `cluster` until `end`. `isolate`: the negative control's member,
/// which then is the only victim (of [`FaultKind::Isolate`]).
pub async fn run(
    cluster: &mut Cluster,
    rec: &Arc<Recorder>,
    keys: &[String],
    rng: &mut StdRng,
    end: Instant,
    isolate: Option<usize>,
) -> Vec<FaultEvent> {
    let mut events = Vec::new();
    let mut queue: Vec<FaultKind> = Vec::new();
    let mut burst_n = 0u64;
    let n = cluster.len();
    loop {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1000..2500))).await;
        if Instant::now() + Duration::from_secs(5) > end {
            break;
        }
        let kind = match isolate {
            Some(_) => FaultKind::Isolate,
            None => {
                if queue.is_empty() {
                    queue = FaultKind::ALL.to_vec();
                    queue.shuffle(rng);
                }
                queue.pop().unwrap_or(FaultKind::KillRandom)
            }
        };
        let Ok(leader) = cluster.wait_healthy(Duration::from_secs(30)).await else {
            log(
                rec,
                "cluster not healthy before the next fault; healing everything",
            );
            let _ = cluster.heal_all();
            continue;
        };
        let random = rng.random_range(0..n);
        let downtime = Duration::from_millis(rng.random_range(200..4000));
        // When the fault took effect: set by each branch right after injecting it, so that a
        // write that slipped in before (e.g. while iptables was starting) does not count.
        let at;
        let mut note = String::new();
        let members = match kind {
            FaultKind::KillLeader | FaultKind::KillRandom => {
                let victim = if kind == FaultKind::KillLeader {
                    leader
                } else {
                    random
                };
                cluster.kill9(victim);
                at = rec.now();
                log(rec, &format!("{kind:?}: kill -9 member {victim} (leader {leader}), restart in {downtime:?}"));
                tokio::time::sleep(downtime).await;
                restart(cluster, rec, victim);
                vec![victim]
            }
            FaultKind::QuickRestartLeader => {
                cluster.kill9(leader);
                at = rec.now();
                log(
                    rec,
                    &format!(
                        "{kind:?}: kill -9 leader {leader}, restart in 200ms, then reads to it"
                    ),
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                restart(cluster, rec, leader);
                let other = (leader + 1) % n;
                note = burst(cluster, rec, keys, rng, leader, other, &mut burst_n).await;
                log(rec, &format!("{kind:?}: {note}"));
                vec![leader]
            }
            FaultKind::KillTwo => {
                let a = random;
                let b = (a + rng.random_range(1..n)) % n;
                cluster.kill9(a);
                cluster.kill9(b);
                at = rec.now();
                log(rec, &format!("{kind:?}: kill -9 members {a} and {b} (leader {leader}), restart in {downtime:?}"));
                tokio::time::sleep(downtime).await;
                restart(cluster, rec, a);
                restart(cluster, rec, b);
                vec![a, b]
            }
            FaultKind::Pause => {
                let pause = Duration::from_millis(rng.random_range(1500..3000));
                cluster.pause(random, true);
                at = rec.now();
                log(
                    rec,
                    &format!("{kind:?}: SIGSTOP member {random} (leader {leader}) for {pause:?}"),
                );
                tokio::time::sleep(pause).await;
                cluster.pause(random, false);
                vec![random]
            }
            FaultKind::PartitionLeader | FaultKind::Isolate => {
                let victim = isolate.unwrap_or(leader);
                let hold = match kind {
                    FaultKind::Isolate => Duration::from_secs(4),
                    _ => Duration::from_millis(rng.random_range(2000..5000)),
                };
                let peers: Vec<usize> = (0..n).filter(|&p| p != victim).collect();
                if let Err(e) = cluster.net.partition(victim, &peers) {
                    log(rec, &format!("{kind:?}: partition failed: {e:#}"));
                }
                at = rec.now();
                log(rec, &format!("{kind:?}: member {victim} cut off from {peers:?} (leader {leader}) for {hold:?}"));
                tokio::time::sleep(hold).await;
                if let Err(e) = cluster.net.heal(victim) {
                    log(rec, &format!("{kind:?}: heal failed: {e:#}"));
                }
                vec![victim]
            }
        };
        let healed = rec.now();
        let recovered_after = match cluster.wait_healthy(Duration::from_secs(30)).await {
            Ok(_) => Some(Duration::from_nanos(rec.now() - healed)),
            Err(e) => {
                log(
                    rec,
                    &format!("{kind:?}: NOT RECOVERED: {e:#}; healing everything"),
                );
                let _ = cluster.heal_all();
                None
            }
        };
        log(
            rec,
            &format!("{kind:?}: healed; healthy again after {recovered_after:?}"),
        );
        events.push(FaultEvent {
            kind,
            at,
            healed,
            leader_victim: members.contains(&leader),
            members,
            recovered_after,
            note,
        });
    }
    events
}

/// For 2.5 s from the quick restart of `restarted`: linearizable reads to it as fast as it
/// answers (from the moment it is started, so the first answers come while it is still
/// catching up), while another client keeps writing through `other`. A read that misses an
/// acknowledged write (before the kill or during the burst) is a stale read the checker
/// flags. Answers what the reads saw, for the fault's note.
async fn burst(
    cluster: &Cluster,
    rec: &Arc<Recorder>,
    keys: &[String],
    rng: &mut StdRng,
    restarted: usize,
    other: usize,
    n: &mut u64,
) -> String {
    let started = rec.now();
    let end = Instant::now() + Duration::from_millis(2500);
    let url = cluster.endpoints[restarted].clone();
    let reader_keys = keys.to_vec();
    let reader_rec = rec.clone();
    let reads = tokio::spawn(async move {
        let (mut first, mut answered, mut k) = (None, 0u32, 0usize);
        while Instant::now() < end {
            // A new connection after each failure: a refused connect is retried at once,
            // not after a channel's reconnect backoff.
            let Ok(conn) = Conn::new(&url) else { break };
            loop {
                k += 1;
                let key = &reader_keys[k % reader_keys.len()];
                let got = reader_rec
                    .perform(&conn, BURST_READER, key, Kind::Read, false)
                    .await;
                if got == Outcome::Unknown || Instant::now() >= end {
                    break;
                }
                answered += 1;
                first.get_or_insert(reader_rec.now());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (first, answered)
    });
    if let Ok(writer) = Conn::new(&cluster.endpoints[other]) {
        while Instant::now() < end {
            let key = &keys[rng.random_range(0..keys.len())];
            *n += 1;
            let value = format!("b-{n}");
            let put = rec
                .perform(&writer, BURST_WRITER, key, Kind::Write(value), false)
                .await;
            if put == Outcome::Unknown {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    match reads.await {
        Ok((Some(first), answered)) => format!(
            "{answered} reads answered by the restarted member, the first {} ms after its start",
            (first - started) / 1_000_000
        ),
        _ => "no read answered by the restarted member within 2.5 s".into(),
    }
}

/// Starts member `i` again; a failure is logged (the final heal retries, and the member's
/// absence shows in the checks).
fn restart(cluster: &mut Cluster, rec: &Recorder, i: usize) {
    if let Err(e) = cluster.start_member(i) {
        log(rec, &format!("restart of member {i} failed: {e:#}"));
    }
}

fn log(rec: &Recorder, what: &str) {
    eprintln!(
        "[faults {:8.3}s] {what}",
        Duration::from_nanos(rec.now()).as_secs_f64()
    );
}
