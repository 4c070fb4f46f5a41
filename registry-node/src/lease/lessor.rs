//! The lessor's bookkeeping, as etcd's: when each lease expires, on the leader only. Pure: the
//! clock is passed in (milliseconds on a monotonic clock), nothing here deletes keys or talks
//! to Raft — expired ids are handed to the caller, which proposes their revoke.
//!
//! - [`Lessor::promote`] on gaining leadership gives every lease a fresh TTL (its checkpointed
//!   remaining TTL, or its full TTL) plus an extension, before any can expire: an election never
//!   kills a lease that was being kept alive.
//! - [`Lessor::demote`] on losing it forgets every expiry: a member that is not leader neither
//!   expires leases nor renews them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use crate::store::LeaseChange;

/// Milliseconds on the caller's monotonic clock.
pub(crate) type Millis = u64;

/// A lease as the replicated store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseTtl {
    pub(crate) id: i64,
    pub(crate) ttl: i64,
    /// Checkpointed remaining TTL in seconds (0: none).
    pub(crate) remaining: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Lessor {
    primary: bool,
    expiry: HashMap<i64, (Millis, i64)>,
    /// Min-heap of (expiry, id); stale entries are skipped when popped.
    queue: BinaryHeap<Reverse<(Millis, i64)>>,
    /// Expired ids whose revoke is proposed but not yet applied.
    revoking: HashSet<i64>,
}

fn secs(s: i64) -> Millis {
    (s.max(0) as Millis).saturating_mul(1000)
}

impl Lessor {
    pub(crate) fn is_primary(&self) -> bool {
        self.primary
    }

    /// Becomes primary: every lease gets `now + extend + (remaining or ttl)`.
    pub(crate) fn promote(
        &mut self,
        now: Millis,
        extend: Millis,
        leases: impl IntoIterator<Item = LeaseTtl>,
    ) {
        self.demote();
        self.primary = true;
        for l in leases {
            let left = if l.remaining > 0 { l.remaining } else { l.ttl };
            self.set(l.id, now + extend + secs(left), l.ttl);
        }
    }

    /// Stops being primary: no expiry, no renewal.
    pub(crate) fn demote(&mut self) {
        self.primary = false;
        self.expiry.clear();
        self.queue.clear();
        self.revoking.clear();
    }

    fn set(&mut self, id: i64, at: Millis, ttl: i64) {
        self.expiry.insert(id, (at, ttl));
        self.queue.push(Reverse((at, id)));
    }

    /// Brings the expiry table in line with the store's leases: new ones (granted since) start
    /// their full TTL now, gone ones (revoked) are dropped.
    pub(crate) fn sync(&mut self, now: Millis, leases: impl IntoIterator<Item = LeaseTtl>) {
        if !self.primary {
            return;
        }
        let mut live = HashSet::new();
        for l in leases {
            live.insert(l.id);
            if !self.expiry.contains_key(&l.id) {
                self.set(l.id, now + secs(l.ttl), l.ttl);
            }
        }
        self.expiry.retain(|id, _| live.contains(id));
        self.revoking.retain(|id| live.contains(id));
    }

    /// Follows the grants and revokes the store applied since the last call (the state
    /// machine's lease feed): O(changes), where [`Lessor::sync`] is O(leases).
    pub(crate) fn apply_changes(&mut self, now: Millis, changes: &[LeaseChange]) {
        for c in changes {
            match *c {
                LeaseChange::Granted { id, ttl } => self.granted(id, ttl, now),
                LeaseChange::Revoked { id } => {
                    self.expiry.remove(&id);
                    self.revoking.remove(&id);
                }
            }
        }
    }

    /// A grant was applied on this member as primary: the lease's TTL starts now, as etcd's
    /// lessor starts it when it applies the grant (not at the next [`Lessor::sync`]).
    pub(crate) fn granted(&mut self, id: i64, ttl: i64, now: Millis) {
        if self.primary && !self.expiry.contains_key(&id) {
            self.set(id, now + secs(ttl), ttl);
        }
    }

    /// A keep-alive: the lease's TTL restarts now. `None` if not primary, or the lease is
    /// being revoked, or the store no longer holds it (`store_ttl` is `None`: revoked since
    /// the last [`Lessor::sync`], which is then forgotten at once — a client must learn that
    /// its lease is gone, etcd answers TTL 0). `store_ttl` also covers a lease granted so
    /// recently that this table has not seen it yet.
    pub(crate) fn renew(&mut self, id: i64, now: Millis, store_ttl: Option<i64>) -> Option<i64> {
        if !self.primary || self.revoking.contains(&id) {
            return None;
        }
        let Some(store_ttl) = store_ttl else {
            self.expiry.remove(&id);
            return None;
        };
        let ttl = self.expiry.get(&id).map_or(store_ttl, |(_, ttl)| *ttl);
        self.set(id, now + secs(ttl), ttl);
        Some(ttl)
    }

    /// Whole seconds left for `id`, truncated as etcd's `TimeToLive` does
    /// (`int64(Remaining().Seconds())`), if primary and known. The clock is in whole
    /// milliseconds, so the true time is up to 1 ms past `now`: a lease asked about in the
    /// millisecond of its grant has 29.999… s of 30 left, 29 as etcd says.
    pub(crate) fn remaining(&self, id: i64, now: Millis) -> Option<i64> {
        if !self.primary {
            return None;
        }
        let (at, _) = self.expiry.get(&id)?;
        Some((at.saturating_sub(now).saturating_sub(1) / 1000) as i64)
    }

    /// Up to `max` leases expired at `now` and not yet being revoked (the earliest first),
    /// marked as being revoked; the rest stay queued for a later call.
    pub(crate) fn take_expired(&mut self, now: Millis, max: usize) -> Vec<i64> {
        let mut out = Vec::new();
        if !self.primary {
            return out;
        }
        while let Some(Reverse((at, id))) = self.queue.peek().copied() {
            if at > now || out.len() >= max {
                break;
            }
            self.queue.pop();
            // Skip heap entries made stale by a renewal or a revoke.
            if self.expiry.get(&id).map(|(a, _)| *a) == Some(at) && self.revoking.insert(id) {
                out.push(id);
            }
        }
        out
    }

    /// A proposed revoke failed: the ids may be expired again on a later tick.
    pub(crate) fn revoke_failed(&mut self, ids: &[i64], now: Millis) {
        for id in ids {
            if self.revoking.remove(id) {
                if let Some((_, ttl)) = self.expiry.get(id).copied() {
                    self.set(*id, now, ttl);
                }
            }
        }
    }

    /// Remaining TTLs of the leases whose TTL is above `min_ttl` seconds and that were not
    /// renewed for at least `unrenewed` ms, for a checkpoint (seconds, at least 1). Short leases
    /// are not checkpointed (as in etcd): a new leader gives them their full TTL, which is
    /// already short. Nor are leases renewed lately: a new leader's full TTL is within
    /// `unrenewed` of their true remaining TTL, so the checkpoint would change little — and a
    /// checkpoint of every kept-alive lease made one Raft entry of 100,000 ids every round
    /// (issue 21). What checkpoints are for is the lease nobody renews any more: it must not
    /// get its full TTL back at every election.
    pub(crate) fn checkpoints(
        &self,
        now: Millis,
        min_ttl: i64,
        unrenewed: Millis,
    ) -> Vec<(i64, i64)> {
        let mut v: Vec<(i64, i64)> = self
            .expiry
            .iter()
            .filter(|(_, (at, ttl))| {
                *ttl > min_ttl && at.saturating_sub(now).saturating_add(unrenewed) <= secs(*ttl)
            })
            .map(|(id, (at, _))| (*id, (at.saturating_sub(now).div_ceil(1000) as i64).max(1)))
            .collect();
        v.sort_unstable();
        v
    }

    /// When the next lease expires, if any (for the ticker).
    pub(crate) fn next_expiry(&self) -> Option<Millis> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    pub(crate) fn len(&self) -> usize {
        self.expiry.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(id: i64, ttl: i64) -> LeaseTtl {
        LeaseTtl {
            id,
            ttl,
            remaining: 0,
        }
    }

    #[test]
    fn only_the_primary_expires_and_renews() {
        let mut s = Lessor::default();
        s.sync(0, [l(1, 5)]);
        assert_eq!(s.renew(1, 0, Some(5)), None);
        assert!(s.take_expired(1_000_000, usize::MAX).is_empty());
        s.promote(0, 1000, [l(1, 5)]);
        assert_eq!(s.renew(1, 0, Some(5)), Some(5));
        s.demote();
        assert!(s.take_expired(1_000_000, usize::MAX).is_empty());
        assert_eq!(s.remaining(1, 0), None);
    }

    #[test]
    fn promote_extends_and_uses_checkpoints() {
        let mut s = Lessor::default();
        s.promote(
            10_000,
            1_000,
            [
                l(1, 30),
                LeaseTtl {
                    id: 2,
                    ttl: 30,
                    remaining: 3,
                },
            ],
        );
        assert_eq!(
            s.remaining(1, 10_000),
            Some(30),
            "30.999… s: truncated, as etcd"
        );
        assert_eq!(s.remaining(2, 9_999), Some(4));
        assert_eq!(s.remaining(2, 10_000), Some(3));
        assert!(s.take_expired(13_999, usize::MAX).is_empty());
        assert_eq!(s.take_expired(14_000, usize::MAX), vec![2]);
        // Already being revoked: not handed out twice, not renewable.
        assert!(s.take_expired(50_000, usize::MAX).contains(&1));
        assert_eq!(s.renew(2, 14_000, Some(30)), None);
    }

    #[test]
    fn renewal_moves_expiry_and_stale_heap_entries_are_skipped() {
        let mut s = Lessor::default();
        s.promote(0, 0, [l(1, 2)]);
        assert_eq!(s.renew(1, 1_500, Some(2)), Some(2));
        assert!(
            s.take_expired(2_000, usize::MAX).is_empty(),
            "renewed at 1.5 s: lives to 3.5 s"
        );
        assert_eq!(s.take_expired(3_500, usize::MAX), vec![1]);
    }

    #[test]
    fn sync_adds_new_and_drops_revoked() {
        let mut s = Lessor::default();
        s.promote(0, 0, [l(1, 2)]);
        s.sync(1_000, [l(2, 5)]);
        assert_eq!(s.remaining(1, 1_000), None);
        assert_eq!(s.remaining(2, 1_000), Some(4));
        // Granted but not yet synced: renew with the store's TTL.
        assert_eq!(s.renew(3, 1_000, Some(7)), Some(7));
        assert_eq!(s.remaining(3, 1_000), Some(6));
    }

    #[test]
    fn a_lease_gone_from_the_store_is_not_renewed() {
        let mut s = Lessor::default();
        s.promote(0, 0, [l(1, 30)]);
        // Revoked and applied, not yet synced: the store's word wins, at once.
        assert_eq!(s.renew(1, 100, None), None);
        assert_eq!(s.remaining(1, 100), None);
        assert_eq!(s.renew(1, 200, None), None);
    }

    #[test]
    fn a_grant_starts_its_ttl_when_applied() {
        let mut s = Lessor::default();
        s.granted(9, 30, 0);
        assert_eq!(s.remaining(9, 0), None, "not primary: nothing recorded");
        s.promote(0, 0, []);
        s.granted(9, 30, 1_000);
        assert_eq!(s.remaining(9, 1_500), Some(29));
        assert_eq!(s.remaining(9, 2_500), Some(28));
        // A later sync does not restart it.
        s.sync(2_600, [l(9, 30)]);
        assert_eq!(s.remaining(9, 2_600), Some(28));
    }

    #[test]
    fn changes_from_the_store_add_and_drop_leases() {
        let mut s = Lessor::default();
        s.apply_changes(0, &[LeaseChange::Granted { id: 1, ttl: 5 }]);
        assert_eq!(s.len(), 0, "not primary: nothing recorded");
        s.promote(0, 0, [l(1, 2)]);
        s.apply_changes(
            1_000,
            &[
                LeaseChange::Granted { id: 2, ttl: 5 },
                LeaseChange::Granted { id: 1, ttl: 2 },
                LeaseChange::Revoked { id: 3 },
            ],
        );
        assert_eq!(
            s.remaining(2, 1_000),
            Some(4),
            "a new grant starts its TTL now"
        );
        assert_eq!(
            s.remaining(1, 1_000),
            Some(0),
            "a known lease keeps its expiry"
        );
        assert_eq!(s.take_expired(2_000, usize::MAX), vec![1]);
        s.apply_changes(
            2_100,
            &[
                LeaseChange::Revoked { id: 1 },
                LeaseChange::Revoked { id: 2 },
            ],
        );
        assert_eq!(s.len(), 0);
        assert!(
            s.take_expired(60_000, usize::MAX).is_empty(),
            "revoked: never expired"
        );
    }

    #[test]
    fn failed_revoke_is_retried() {
        let mut s = Lessor::default();
        s.promote(0, 0, [l(1, 1)]);
        assert_eq!(s.take_expired(1_000, usize::MAX), vec![1]);
        s.revoke_failed(&[1], 1_000);
        assert_eq!(s.take_expired(1_000, usize::MAX), vec![1]);
    }

    #[test]
    fn many_leases_expire_together() {
        let mut s = Lessor::default();
        s.promote(0, 0, (0..10_000).map(|i| l(i, 3)));
        assert_eq!(
            s.take_expired(3_000, 4_000).len(),
            4_000,
            "at most max at a time"
        );
        assert_eq!(s.next_expiry(), Some(3_000), "the rest stay due");
        assert_eq!(s.take_expired(3_000, usize::MAX).len(), 6_000);
        assert!(s.take_expired(3_000, usize::MAX).is_empty());
        assert_eq!(s.checkpoints(0, 0, 0).len(), 10_000);
        assert!(s.checkpoints(0, 3, 0).is_empty());
    }

    #[test]
    fn only_unrenewed_leases_are_checkpointed() {
        let mut s = Lessor::default();
        s.promote(0, 0, [l(1, 30), l(2, 30)]);
        assert!(
            s.checkpoints(5_000, 10, 10_000).is_empty(),
            "both renewed 5 s ago"
        );
        assert_eq!(s.renew(2, 9_000, Some(30)), Some(30));
        assert_eq!(
            s.checkpoints(10_000, 10, 10_000),
            vec![(1, 20)],
            "lease 1 unrenewed for 10 s; lease 2 renewed 1 s ago"
        );
    }
}
