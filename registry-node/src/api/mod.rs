//! The etcd v3 gRPC services, one file each, thin: decode, validate, route (through Raft, a
//! read barrier, or a local read) and map errors. The routing itself lives in [`route`].

pub(crate) mod auth;
pub(crate) mod auth_check;
pub(crate) mod auth_login;
pub(crate) mod cluster;
pub(crate) mod election;
pub(crate) mod error;
pub(crate) mod forward;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod lock;
pub(crate) mod maintenance;
pub(crate) mod route;
pub(crate) mod unary;
pub(crate) mod watch;
