//! How long the writer's `fdatasync`s take, as etcd's `etcd_disk_wal_fsync_duration_seconds`
//! histogram counts them: the same buckets (0.001 s · 2^k, k = 0..13, then +Inf), kept in
//! atomics the writer thread bumps and a metrics page reads without a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// etcd's bucket count: `prometheus.ExponentialBuckets(0.001, 2, 14)`.
pub const FSYNC_BUCKETS: usize = 14;

/// The upper bound of bucket `k` in seconds.
pub(crate) fn fsync_bucket_bound(k: usize) -> f64 {
    0.001 * f64::from(1u32 << k.min(31))
}

/// Durations of the log's data syncs (segment files only: the directory fsyncs are not in
/// etcd's figure either).
#[derive(Debug, Default)]
pub struct FsyncTimes {
    /// Observations per bucket (not cumulative); the last one is +Inf.
    buckets: [AtomicU64; FSYNC_BUCKETS + 1],
    sum_nanos: AtomicU64,
}

/// A reading of [`FsyncTimes`].
#[derive(Debug, Clone, PartialEq)]
pub struct FsyncSnapshot {
    /// `(upper bound in seconds, observations in that bucket)`, ending with `(+Inf, n)`; the
    /// counts are per bucket, not cumulative.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl FsyncTimes {
    pub(crate) fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let k = (0..FSYNC_BUCKETS)
            .find(|&k| secs <= fsync_bucket_bound(k))
            .unwrap_or(FSYNC_BUCKETS);
        self.buckets[k].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> FsyncSnapshot {
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(k, n)| {
                let bound = if k < FSYNC_BUCKETS {
                    fsync_bucket_bound(k)
                } else {
                    f64::INFINITY
                };
                (bound, n.load(Ordering::Relaxed))
            })
            .collect();
        FsyncSnapshot {
            count: buckets.iter().map(|b| b.1).sum(),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_etcds() {
        let t = FsyncTimes::default();
        t.record(Duration::from_micros(500)); // <= 0.001
        t.record(Duration::from_millis(1)); // <= 0.001 (le is inclusive)
        t.record(Duration::from_millis(3)); // <= 0.004
        t.record(Duration::from_secs(20)); // +Inf
        let s = t.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), 15);
        assert_eq!(s.buckets[0], (0.001, 2));
        assert_eq!(s.buckets[2], (0.004, 1));
        assert_eq!(s.buckets[13].0, 8.192);
        assert_eq!(s.buckets[14], (f64::INFINITY, 1));
        assert!((s.sum_seconds - 20.0045).abs() < 1e-9);
    }
}
