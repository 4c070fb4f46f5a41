//! The etcd v3 gRPC services, one file each, thin: decode, validate, route (through Raft, a
//! read barrier, or a local read) and map errors. The routing itself lives in [`route`].

pub(crate) mod auth;
pub(crate) mod auth_login;
pub(crate) mod cluster;
pub(crate) mod election;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod lock;
pub(crate) mod maintenance;
pub(crate) mod unary;
pub(crate) mod watch;

/// Largest client request accepted on the wire (etcd: max request bytes + 512 KiB overhead).
pub(crate) const MAX_CLIENT_MESSAGE: usize = 3 * 512 * 1024 + 512 * 1024;
