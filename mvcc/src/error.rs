//! The errors a request can fail with, with etcd's exact texts. The gRPC code of each is the
//! caller's business (etcd: INVALID_ARGUMENT for the first four, OUT_OF_RANGE for `Compacted`,
//! `FutureRev` and `LeaseTTLTooLarge`, NOT_FOUND for `LeaseNotFound`, FAILED_PRECONDITION for
//! `LeaseExists`). A failed request changes nothing.

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// A put, range, delete or compare with an empty key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value`/`ignore_lease` on an absent key; also an empty `RequestOp` in a txn and
    /// an empty `InternalRequest` (etcd answers both so).
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// A txn branch (or its compares) longer than `max_txn_ops`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// The same key written twice in one txn branch.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// The revision asked for has been compacted away.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    /// The revision asked for does not exist yet.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    /// The lease does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A lease with this id already exists.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// TTL above [`crate::MAX_LEASE_TTL`].
    #[error("etcdserver: too large lease TTL")]
    LeaseTTLTooLarge,
    /// A write while the NOSPACE alarm is raised (etcd: RESOURCE_EXHAUSTED).
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// An auth request or permission check failed (etcd's auth errors, `auth.rs`).
    #[error(transparent)]
    Auth(#[from] crate::AuthError),
    /// A write, compaction, lease grant or revoke while the CORRUPT alarm is raised (etcd:
    /// DATA_LOSS, `applierV3Corrupt`).
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
}
