//! What the state machine tells the lessor: the leases granted and revoked by each apply, so the
//! leader's expiry table follows the store without copying the whole lease table every tick
//! (issue 21: with 100,000 leases that copy was most of the leader's CPU while idle).
//!
//! The feed records only while the lessor listens ([`LeaseFeed::listen`], on promotion), so a
//! follower keeps nothing; the lessor drains it every tick, so what it holds is bounded by the
//! grants and revokes of one tick. A snapshot install replaces the store wholesale: the feed
//! then says [`Drained::Reset`] and the lessor rescans once.

use std::sync::Mutex;

/// One change to the store's lease table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseChange {
    Granted { id: i64, ttl: i64 },
    Revoked { id: i64 },
}

/// What the lessor gets when it drains the feed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Drained {
    /// The changes applied since the last drain, in apply order.
    Changes(Vec<LeaseChange>),
    /// The store was replaced (snapshot install) or the feed was not listening: rescan it.
    Reset,
}

#[derive(Debug, Default)]
struct Inner {
    listening: bool,
    reset: bool,
    changes: Vec<LeaseChange>,
}

#[derive(Debug, Default)]
pub(crate) struct LeaseFeed {
    inner: Mutex<Inner>,
}

impl LeaseFeed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts recording, forgetting anything older. Call it BEFORE scanning the store: every
    /// apply after the scan began is then in the feed (an apply seen by both is harmless, a
    /// grant and a revoke are idempotent for the lessor).
    pub(crate) fn listen(&self) {
        let mut g = self.lock();
        g.listening = true;
        g.reset = false;
        g.changes.clear();
    }

    /// Stops recording (the member is no longer the lessor's primary).
    pub(crate) fn stop(&self) {
        let mut g = self.lock();
        g.listening = false;
        g.reset = false;
        g.changes = Vec::new();
    }

    /// Records the changes of one apply (called by the state machine under its write lock).
    pub(crate) fn record(&self, changes: Vec<LeaseChange>) {
        if changes.is_empty() {
            return;
        }
        let mut g = self.lock();
        if g.listening && !g.reset {
            g.changes.extend(changes);
        }
    }

    /// The store was replaced: the lessor must rescan it.
    pub(crate) fn reset(&self) {
        let mut g = self.lock();
        if g.listening {
            g.reset = true;
            g.changes = Vec::new();
        }
    }

    /// Takes what was recorded since the last drain.
    pub(crate) fn drain(&self) -> Drained {
        let mut g = self.lock();
        if !g.listening || std::mem::take(&mut g.reset) {
            return Drained::Reset;
        }
        Drained::Changes(std::mem::take(&mut g.changes))
    }
}

/// The lease changes `response` (the result of applying one request) made to the store.
pub(crate) fn changes_of(
    req: &proto::registrypb::InternalRequest,
    response: &mvcc::Response,
) -> Vec<LeaseChange> {
    use proto::registrypb::internal_request::Request as Ir;
    match (response, &req.request) {
        (mvcc::Response::LeaseGrant(r), _) => vec![LeaseChange::Granted {
            id: r.id,
            ttl: r.ttl,
        }],
        (mvcc::Response::LeaseRevoke(_), Some(Ir::LeaseRevoke(r))) => {
            vec![LeaseChange::Revoked { id: r.id }]
        }
        (mvcc::Response::LeaseRevokeBatch { revoked }, _) => revoked
            .iter()
            .map(|&id| LeaseChange::Revoked { id })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_while_listening_and_drains_once() {
        let f = LeaseFeed::default();
        f.record(vec![LeaseChange::Revoked { id: 1 }]);
        assert_eq!(f.drain(), Drained::Reset, "not listening: rescan");
        f.listen();
        f.record(vec![LeaseChange::Granted { id: 2, ttl: 30 }]);
        f.record(vec![LeaseChange::Revoked { id: 2 }]);
        assert_eq!(
            f.drain(),
            Drained::Changes(vec![
                LeaseChange::Granted { id: 2, ttl: 30 },
                LeaseChange::Revoked { id: 2 }
            ])
        );
        assert_eq!(f.drain(), Drained::Changes(vec![]));
        f.stop();
        f.record(vec![LeaseChange::Revoked { id: 3 }]);
        f.listen();
        assert_eq!(
            f.drain(),
            Drained::Changes(vec![]),
            "nothing kept while stopped"
        );
    }

    #[test]
    fn a_reset_asks_for_one_rescan() {
        let f = LeaseFeed::default();
        f.listen();
        f.record(vec![LeaseChange::Revoked { id: 1 }]);
        f.reset();
        f.record(vec![LeaseChange::Revoked { id: 2 }]);
        assert_eq!(f.drain(), Drained::Reset);
        f.record(vec![LeaseChange::Revoked { id: 3 }]);
        assert_eq!(
            f.drain(),
            Drained::Changes(vec![LeaseChange::Revoked { id: 3 }])
        );
    }
}
