//! Auto-compaction, as etcd's `--auto-compaction-mode` and `--auto-compaction-retention`:
//! without it every revision of every key stays in memory forever. The [`Compactor`] decides
//! (pure: the clock and the revision are passed in); [`run`] samples the store, and proposes
//! the compaction through Raft while this member leads, as etcd's compactor runs on the leader.
//!
//! - `periodic` with a duration R keeps about R of history: the revision is sampled every R/10
//!   (R ≥ 1 h: every 6 min), and once R has passed the store is compacted to the revision it
//!   had R ago, at most every R (every hour past 1 h), as etcd 3.4's periodic compactor.
//! - `revision` with a count N compacts to `current - N` every 5 minutes.
//!
//! On by default, periodic with 5 minutes: how often Kubernetes' API server compacts its etcd;
//! a watcher that resumes from a revision older than that gets etcd's "required revision has
//! been compacted" and lists again, which go-micro's registry watcher does.

use openraft::async_runtime::WatchReceiver;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use proto::etcdserverpb::CompactionRequest;
use proto::registrypb::internal_request::Request as Ir;
use proto::registrypb::InternalRequest;
use tokio_util::sync::CancellationToken;

use crate::config::Policy;
use crate::routing::Router;

const HOUR: Duration = Duration::from_secs(3600);
/// etcd's revision-mode interval.
const REVISION_EVERY: Duration = Duration::from_secs(300);

/// When to compact to what.
#[derive(Debug)]
pub(crate) struct Compactor {
    policy: Policy,
    /// (when, revision) samples, oldest first.
    samples: VecDeque<(Duration, i64)>,
    /// No compaction before this time (the interval since the last one).
    not_before: Duration,
    /// The last revision compacted to.
    last: i64,
}

impl Compactor {
    /// A compactor started at `now` (any monotonic origin).
    pub(crate) fn new(policy: Policy, now: Duration) -> Self {
        let not_before = match policy {
            // The first compaction needs a sample from R ago.
            Policy::Periodic(r) => now + r,
            Policy::Revision(_) => now + REVISION_EVERY,
            Policy::Off => Duration::MAX,
        };
        Compactor {
            policy,
            samples: VecDeque::new(),
            not_before,
            last: 0,
        }
    }

    /// How often [`Compactor::tick`] wants to be called.
    pub(crate) fn step(&self) -> Duration {
        match self.policy {
            Policy::Periodic(r) => r.min(HOUR) / 10,
            Policy::Revision(_) => REVISION_EVERY / 10,
            Policy::Off => HOUR,
        }
    }

    /// Records the store's revision at `now`; the revision to compact to, if it is time.
    pub(crate) fn tick(&mut self, now: Duration, revision: i64) -> Option<i64> {
        let target = match self.policy {
            Policy::Off => return None,
            Policy::Periodic(r) => {
                self.samples.push_back((now, revision));
                // Keep the newest sample at least R old at the front.
                while self.samples.get(1).is_some_and(|(t, _)| *t + r <= now) {
                    self.samples.pop_front();
                }
                match self.samples.front() {
                    Some((t, rev)) if *t + r <= now => *rev,
                    _ => return None,
                }
            }
            Policy::Revision(keep) => revision - keep,
        };
        (now >= self.not_before && target > self.last.max(1)).then_some(target)
    }

    /// The store was compacted to `revision` at `now` (by us or by anyone).
    pub(crate) fn compacted(&mut self, now: Duration, revision: i64) {
        self.last = self.last.max(revision);
        self.not_before = now
            + match self.policy {
                Policy::Periodic(r) => r.min(HOUR),
                Policy::Revision(_) => REVISION_EVERY,
                Policy::Off => HOUR,
            };
    }
}

/// Samples the store and, while this member leads, proposes the compactions the policy asks
/// for, until `shutdown`.
pub(crate) async fn run(router: Arc<Router>, policy: Policy, shutdown: CancellationToken) {
    let epoch = tokio::time::Instant::now();
    let mut compactor = Compactor::new(policy, Duration::ZERO);
    let mut every = tokio::time::interval(compactor.step());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        let (revision, done) = router.sm().read(|s| (s.revision(), s.compact_revision()));
        let now = epoch.elapsed();
        if done > 0 {
            compactor.last = compactor.last.max(done);
        }
        let Some(target) = compactor.tick(now, revision) else {
            continue;
        };
        if router.raft().metrics().borrow_watched().state != ServerState::Leader {
            continue;
        }
        let req = InternalRequest {
            request: Some(Ir::Compaction(CompactionRequest {
                revision: target,
                physical: false,
            })),
        };
        match router.propose(&req).await {
            Ok(_) => {
                tracing::info!(revision = target, "auto-compacted");
                compactor.compacted(now, target);
            }
            Err(_) => tracing::debug!(revision = target, "auto-compaction not committed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CompactionSection;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn section(mode: &str, retention: &str) -> Result<Policy, String> {
        CompactionSection {
            mode: mode.into(),
            retention: retention.into(),
        }
        .policy()
    }

    #[test]
    fn reads_etcds_settings() {
        assert_eq!(section("periodic", "5m"), Ok(Policy::Periodic(secs(300))));
        assert_eq!(section("periodic", "1"), Ok(Policy::Periodic(secs(3600))));
        assert_eq!(section("periodic", "0"), Ok(Policy::Off));
        assert_eq!(section("revision", "1000"), Ok(Policy::Revision(1000)));
        assert_eq!(section("off", ""), Ok(Policy::Off));
        assert!(section("revision", "5m").is_err());
        assert!(section("periodic", "5x").is_err());
        assert!(section("weekly", "1").is_err());
        assert_eq!(
            CompactionSection::default().policy(),
            Ok(Policy::Periodic(secs(300)))
        );
    }

    #[test]
    fn periodic_keeps_the_retention_of_history() {
        // R = 100 s: samples every 10 s; revision = 10 × seconds.
        let mut c = Compactor::new(Policy::Periodic(secs(100)), secs(0));
        assert_eq!(c.step(), secs(10));
        for t in (0..100).step_by(10) {
            assert_eq!(
                c.tick(secs(t), 10 * t as i64),
                None,
                "nothing is R old yet at {t}"
            );
        }
        // At 100 s the sample of 0 s is R old, but revision 0 is nothing to compact.
        assert_eq!(c.tick(secs(100), 1_000), None);
        assert_eq!(
            c.tick(secs(110), 1_100),
            Some(100),
            "the revision of 10 s ago"
        );
        c.compacted(secs(110), 100);
        // Not again before R has passed.
        for t in (120..210).step_by(10) {
            assert_eq!(c.tick(secs(t), 10 * t as i64), None);
        }
        assert_eq!(c.tick(secs(210), 2_100), Some(1_100));
    }

    #[test]
    fn revision_mode_keeps_the_last_n() {
        let mut c = Compactor::new(Policy::Revision(1_000), secs(0));
        assert_eq!(c.tick(secs(299), 5_000), None, "every 5 minutes");
        assert_eq!(c.tick(secs(300), 5_000), Some(4_000));
        c.compacted(secs(300), 4_000);
        assert_eq!(c.tick(secs(400), 9_000), None);
        assert_eq!(c.tick(secs(600), 4_500), None, "nothing newer to drop");
        assert_eq!(c.tick(secs(610), 6_000), Some(5_000));
    }

    #[test]
    fn off_never_compacts() {
        let mut c = Compactor::new(Policy::Off, secs(0));
        assert_eq!(c.tick(secs(1_000_000), 1_000_000), None);
    }
}
