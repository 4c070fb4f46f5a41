//! The registry's pure, deterministic state machine: etcd v3.4's revisioned key space (MVCC),
//! lease table, alarms (NOSPACE, CORRUPT) and auth (users, roles, permissions, tokens). No I/O,
//! no clocks, no async: every replica that applies the same commands in the same order ends in
//! the same state.
//!
//! ```text
//!  Raft entry ──InternalRequest──▶ Store::apply ──▶ Applied { response, revision, events,
//!                                      │                       compacted, changes }
//!                                      ├── index.rs      per-key revision history (+ values)
//!                                      ├── lease.rs      lease table (ttl, checkpoint, key sets)
//!                                      ├── lease_ops.rs  grant, revoke, checkpoint, batch revoke
//!                                      ├── write.rs      one write revision: puts, deletes, events
//!                                      ├── txn.rs        txn validation, compares, execution
//!                                      ├── range.rs      reads at any retained revision
//!                                      ├── alarm.rs      alarms and the requests they refuse
//!                                      └── auth.rs, auth_ops.rs  users, roles, permission checks
//!  Store::range / Store::events_since ◀── readers (any revision ≥ compact revision)
//!  snapshot.rs: full snapshot (prost) + incremental `Change` records for a key-value store
//!               (registry-node persists whole snapshots and turns the changes off)
//! ```
//!
//! Headers of responses carry only `revision`; the caller fills cluster/member id and term.

mod alarm;
mod auth;
mod auth_ops;
mod error;
mod hash;
mod index;
mod lease;
mod lease_ops;
mod range;
mod snapshot;
mod store;
mod txn;
mod write;

pub use auth::{Auth, AuthError, AuthSnapshot, Need, ROOT};
pub use auth_ops::AuthResponse;
pub use error::Error;
pub use index::Revision;
pub use lease::{Lease, MAX_LEASE_TTL};
pub use prost::DecodeError;
pub use snapshot::{revision_key, Change, KeyRecord, LeaseRecord, Snapshot};
pub use store::{Applied, Response, Store};

use proto::etcdserverpb::ResponseHeader;

/// Limits the state machine enforces; every replica must use the same values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Most operations (or compares) in one branch of a txn (etcd `--max-txn-ops`).
    pub max_txn_ops: usize,
    /// Leases granted with a smaller TTL (seconds) get this one instead.
    pub min_lease_ttl: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_txn_ops: 128,
            min_lease_ttl: 2,
        }
    }
}

/// A response header with only the revision set.
pub(crate) fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// `usize` → `i64` for counts, saturating (never fails in practice).
pub(crate) fn count_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
