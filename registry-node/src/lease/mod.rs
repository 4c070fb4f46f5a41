//! Lease life on a member: the [`Lessor`] bookkeeping behind a lock, and the task that drives
//! it — promote on gaining leadership, demote on losing it, confirm leadership with a quorum
//! before acting, propose the revoke of expired leases (many to one Raft entry) and checkpoint
//! remaining TTLs so that a full restart neither expires every lease at once nor keeps dead
//! ones forever.

pub(crate) mod lessor;

use openraft::async_runtime::WatchReceiver;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::ServerState;
use proto::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest};
use proto::registrypb::internal_request::Request as Ir;
use proto::registrypb::{InternalRequest, LeaseRevokeBatch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use lessor::{LeaseTtl, Lessor, Millis};

use crate::routing::Router;
use crate::store::Drained;

/// Not the member that may answer for leases now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NotPrimary;

/// The lessor of one member and the clock it runs on.
pub(crate) struct LeaseManager {
    lessor: Mutex<Lessor>,
    epoch: Instant,
    /// When a quorum last confirmed this member as leader (ms since `epoch`, 0: never).
    confirmed_at: AtomicU64,
    /// How long a confirmation stays good: the election timeout.
    confirm_window: Millis,
}

impl LeaseManager {
    pub(crate) fn new(election_timeout_ms: u64) -> Self {
        LeaseManager {
            lessor: Mutex::new(Lessor::default()),
            epoch: Instant::now(),
            confirmed_at: AtomicU64::new(0),
            confirm_window: election_timeout_ms,
        }
    }

    pub(crate) fn now(&self) -> Millis {
        self.epoch.elapsed().as_millis() as Millis + 1
    }

    fn instant_of(&self, at: Millis) -> Instant {
        self.epoch + Duration::from_millis(at.saturating_sub(1))
    }

    /// Waits (bounded by the election timeout) until this member, as leader, has had its
    /// leadership confirmed; true if it now serves leases.
    pub(crate) async fn wait_serving(&self) -> bool {
        let deadline = Instant::now() + Duration::from_millis(self.confirm_window);
        loop {
            if self.serving(&self.lessor(), self.now()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(TICK / 4).await;
        }
    }

    fn lessor(&self) -> std::sync::MutexGuard<'_, Lessor> {
        self.lessor.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Primary and confirmed by a quorum within the election timeout.
    fn serving(&self, lessor: &Lessor, now: Millis) -> bool {
        let at = self.confirmed_at.load(Ordering::Acquire);
        lessor.is_primary() && at > 0 && now.saturating_sub(at) < self.confirm_window
    }

    /// Renews `id`: its TTL, 0 for an unknown lease, or `NotPrimary` to forward the call.
    pub(crate) fn keep_alive(&self, router: &Router, id: i64) -> Result<i64, NotPrimary> {
        let now = self.now();
        let store_ttl = router.sm().read(|s| s.lease(id).map(|l| l.ttl));
        let mut lessor = self.lessor();
        if !self.serving(&lessor, now) {
            return Err(NotPrimary);
        }
        Ok(lessor.renew(id, now, store_ttl).unwrap_or(0))
    }

    /// A grant this member applied as leader: its TTL starts now (etcd starts it at apply).
    pub(crate) fn granted(&self, id: i64, ttl: i64) {
        let now = self.now();
        self.lessor().granted(id, ttl, now);
    }

    /// Seconds left for `id` per this member's lessor, or `NotPrimary`.
    pub(crate) fn remaining(&self, id: i64) -> Result<Option<i64>, NotPrimary> {
        let now = self.now();
        let lessor = self.lessor();
        if !self.serving(&lessor, now) {
            return Err(NotPrimary);
        }
        Ok(lessor.remaining(id, now))
    }
}

fn store_leases(router: &Router) -> Vec<LeaseTtl> {
    router.sm().read(|s| {
        s.leases()
            .map(|l| LeaseTtl {
                id: l.id,
                ttl: l.ttl,
                remaining: l.remaining_ttl,
            })
            .collect()
    })
}

/// How often the lessor looks at the clock and the Raft state.
const TICK: Duration = Duration::from_millis(200);
/// How often remaining TTLs are checkpointed through Raft.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

/// Drives the lessor `mgr` until `shutdown`: promotes as soon as this member becomes
/// leader (so leases granted in its term start their TTL at once), and every tick — or when the
/// next lease is due — confirms leadership with a quorum before expiring anything.
pub(crate) async fn run(
    router: Arc<Router>,
    mgr: Arc<LeaseManager>,
    election_timeout_ms: u64,
    shutdown: CancellationToken,
) {
    let mgr = &*mgr;
    let mut metrics = router.raft().metrics();
    let mut next_work = Instant::now();
    let mut next_checkpoint = Instant::now() + CHECKPOINT_EVERY;
    loop {
        let due = mgr.lessor().next_expiry().map(|at| mgr.instant_of(at));
        let wake = due
            .map_or(next_work, |d| d.min(next_work))
            .max(Instant::now());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = metrics.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(wake) => {}
        }
        let (state, leader, term) = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_leader, m.current_term)
        };
        if state != ServerState::Leader || leader != Some(router.member_id()) {
            if mgr.lessor().is_primary() {
                tracing::info!("lessor demoted");
                mgr.lessor().demote();
                router.sm().lease_feed().stop();
            }
            mgr.confirmed_at.store(0, Ordering::Release);
            // Nothing to do until the Raft state changes (which wakes the loop at once).
            next_work = Instant::now() + TICK;
            continue;
        }
        if !mgr.lessor().is_primary() {
            // Listen before scanning: every apply after the scan began is in the feed.
            router.sm().lease_feed().listen();
            let leases = store_leases(&router);
            let mut lessor = mgr.lessor();
            lessor.promote(mgr.now(), election_timeout_ms, leases);
            tracing::info!(leases = lessor.len(), "lessor promoted");
            // Confirm the new leadership at once: keep-alives wait for it.
            next_work = Instant::now();
        }
        let now_instant = Instant::now();
        if now_instant < next_work && due.is_none_or(|d| now_instant < d) {
            continue;
        }
        next_work = now_instant + TICK;
        // A leader acts on leases only while a quorum still follows it (etcd #15247), and
        // only once its store has applied everything committed before the check: a new leader
        // must not renew a lease whose revoke it has not applied yet, nor answer TTL 0 for a
        // lease whose grant it has not applied yet. The confirmation counts from when the check
        // began, the latest moment the quorum is known to have followed.
        let started = mgr.now();
        let confirmed = tokio::time::timeout(Duration::from_millis(mgr.confirm_window), async {
            let ri = router.leader_read_index().await.ok()?;
            router.wait_applied(ri.index, None).await.ok()
        })
        .await;
        if !matches!(confirmed, Ok(Some(()))) {
            continue;
        }
        mgr.confirmed_at.store(started, Ordering::Release);
        // The grants and revokes applied since the last round (a rescan only after a snapshot
        // install replaced the store): no copy of the whole lease table per round.
        let changes = match router.sm().lease_feed().drain() {
            Drained::Changes(c) => Ok(c),
            Drained::Reset => Err(store_leases(&router)),
        };
        let now = mgr.now();
        let expired = {
            let mut lessor = mgr.lessor();
            match changes {
                Ok(c) => lessor.apply_changes(now, &c),
                Err(leases) => lessor.sync(now, leases),
            }
            lessor.take_expired(now, REVOKE_PER_ROUND)
        };
        if !expired.is_empty() {
            revoke(&router, mgr, term, expired).await;
        }
        if Instant::now() >= next_checkpoint {
            next_checkpoint = Instant::now() + CHECKPOINT_EVERY;
            checkpoint(&router, mgr).await;
        }
    }
}

/// Most leases one Raft entry revokes. Applying the entry holds the state machine's write lock
/// while every key of those leases is deleted, and every write and keep-alive of the member
/// waits: 100,000 leases in one entry held them ~1.2 s (bench `scale-expiry`). In entries of
/// this size the other writes get in between.
const REVOKE_CHUNK: usize = 1_000;
/// Most leases revoked per round of the lessor: every round confirms leadership first, so a
/// mass expiry never outlasts the confirmation that keep-alives wait for.
const REVOKE_PER_ROUND: usize = 10_000;

/// Proposes the revoke of the expired leases, `REVOKE_CHUNK` per entry, one entry after the
/// other, while this member is still the leader of `term` (a member that lost and regained
/// leadership must promote again before it expires anything). What is not revoked goes back.
async fn revoke(router: &Router, mgr: &LeaseManager, term: u64, ids: Vec<i64>) {
    tracing::info!(count = ids.len(), first = ids[0], "revoking expired leases");
    for (n, chunk) in ids.chunks(REVOKE_CHUNK).enumerate() {
        let still_leader = {
            let m = router.raft().metrics();
            let m = m.borrow_watched();
            m.state == ServerState::Leader && m.current_term == term
        };
        let req = InternalRequest {
            request: Some(Ir::LeaseRevokeBatch(LeaseRevokeBatch {
                ids: chunk.to_vec(),
            })),
        };
        if !still_leader || router.propose(&req).await.is_err() {
            let rest = &ids[n * REVOKE_CHUNK..];
            mgr.lessor().revoke_failed(rest, mgr.now());
            return;
        }
    }
}

async fn checkpoint(router: &Router, mgr: &LeaseManager) {
    let checkpoints: Vec<LeaseCheckpoint> = {
        let now = mgr.now();
        mgr.lessor()
            .checkpoints(
                now,
                2 * CHECKPOINT_EVERY.as_secs() as i64,
                2 * CHECKPOINT_EVERY.as_millis() as Millis,
            )
            .into_iter()
            .map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
            .collect()
    };
    if checkpoints.is_empty() {
        return;
    }
    let req = InternalRequest {
        request: Some(Ir::LeaseCheckpoint(LeaseCheckpointRequest { checkpoints })),
    };
    if router.propose(&req).await.is_err() {
        tracing::debug!("lease checkpoint not committed");
    }
}
