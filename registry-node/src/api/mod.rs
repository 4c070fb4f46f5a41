//! The etcd v3 gRPC services, one file each, thin: decode, validate, route (through Raft, a
//! read barrier, or a local read) and map errors. The routing itself lives in [`route`].

pub mod auth;
pub mod auth_check;
pub mod auth_login;
pub mod cluster;
pub mod election;
pub mod error;
pub mod forward;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod route;
pub mod unary;
pub mod watch;
