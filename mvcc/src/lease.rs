//! The lease table: granted TTL, the last checkpointed remaining TTL and the set of keys
//! attached to each lease. There is no clock here: the node tracks expiry and proposes
//! `LeaseRevokeBatch`/`LeaseCheckpoint` commands.
//!
//! Lease ids chosen by the store (grant with id 0) are derived from the Raft log index of the
//! granting entry: `splitmix64(index)` masked to a positive `i64`, re-mixed on a collision, so
//! every replica picks the same id without any extra state.

use std::collections::{BTreeMap, BTreeSet};

use crate::Error;

/// Largest TTL (seconds) a lease may be granted with (etcd's `MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// One lease as the state machine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    /// Granted TTL in seconds (already raised to the configured minimum).
    pub ttl: i64,
    /// Remaining TTL recorded by the last checkpoint; 0 = none.
    pub remaining_ttl: i64,
    /// Keys currently attached to the lease.
    pub keys: BTreeSet<Vec<u8>>,
}

/// All leases, by id.
#[derive(Debug, Default)]
pub(crate) struct LeaseTable {
    leases: BTreeMap<i64, Lease>,
}

impl LeaseTable {
    pub(crate) fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub(crate) fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Validates a grant and returns the lease to create (not inserted yet).
    pub(crate) fn prepare_grant(
        &self,
        index: u64,
        id: i64,
        ttl: i64,
        min_ttl: i64,
    ) -> Result<Lease, Error> {
        if ttl > MAX_LEASE_TTL {
            return Err(Error::LeaseTTLTooLarge);
        }
        let id = if id == 0 { self.pick_id(index) } else { id };
        if self.contains(id) {
            return Err(Error::LeaseExists);
        }
        Ok(Lease {
            id,
            ttl: ttl.max(min_ttl),
            remaining_ttl: 0,
            keys: BTreeSet::new(),
        })
    }

    pub(crate) fn insert(&mut self, lease: Lease) {
        self.leases.insert(lease.id, lease);
    }

    pub(crate) fn remove(&mut self, id: i64) -> Option<Lease> {
        self.leases.remove(&id)
    }

    /// Records a checkpoint; false if the lease does not exist.
    pub(crate) fn checkpoint(&mut self, id: i64, remaining_ttl: i64) -> bool {
        match self.leases.get_mut(&id) {
            Some(l) => {
                l.remaining_ttl = remaining_ttl;
                true
            }
            None => false,
        }
    }

    /// Attaches `key` to lease `id` (no-op for an unknown lease).
    pub(crate) fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.to_vec());
        }
    }

    pub(crate) fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }

    /// A positive id not in use, derived from `index` only (plus the table on collisions).
    pub(crate) fn pick_id(&self, index: u64) -> i64 {
        let mut seed = index;
        for _ in 0..16 {
            let id = mix(seed);
            if id > 0 && !self.contains(id) {
                return id;
            }
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        }
        // Practically unreachable: the smallest free positive id.
        let mut candidate: i64 = 1;
        for &used in self.leases.range(1..).map(|(id, _)| id) {
            if used != candidate {
                break;
            }
            candidate = candidate.saturating_add(1);
        }
        candidate
    }
}

/// splitmix64's finalizer, masked to a non-negative `i64`.
fn mix(x: u64) -> i64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    i64::try_from(z & (i64::MAX as u64)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ids_are_positive_deterministic_and_free() {
        let mut t = LeaseTable::default();
        let a = t.pick_id(7);
        assert!(a > 0);
        assert_eq!(a, LeaseTable::default().pick_id(7));
        t.insert(Lease {
            id: a,
            ttl: 5,
            remaining_ttl: 0,
            keys: BTreeSet::new(),
        });
        let b = t.pick_id(7);
        assert!(b > 0 && b != a);
    }

    #[test]
    fn grant_validation() {
        let t = LeaseTable::default();
        assert_eq!(
            t.prepare_grant(1, 5, MAX_LEASE_TTL + 1, 2),
            Err(Error::LeaseTTLTooLarge)
        );
        let l = t.prepare_grant(1, 5, -3, 2).expect("grant");
        assert_eq!((l.id, l.ttl), (5, 2));
        let l = t.prepare_grant(1, 5, MAX_LEASE_TTL, 2).expect("grant");
        assert_eq!(l.ttl, MAX_LEASE_TTL);
    }
}
