//! Generated protocol types of the workspace.
//!
//! - [`mvccpb`] and [`etcdserverpb`]: the etcd v3.4 API subset the registry serves, with etcd's
//!   package names and field numbers so that `etcdctl` and other etcd clients interoperate.
//! - [`authpb`]: etcd's users and roles, for the Auth service of [`etcdserverpb`].
//! - [`v3lockpb`], [`v3electionpb`]: etcd's Lock and Election services.
//! - [`registrypb`]: the registry's cluster-internal messages (Raft log commands, read index and
//!   forwarded proposals).
//! - [`raftpb`]: the member link, Raft between members (our own messages, see raft_peer.proto).
//! - [`greeter`]: the demo backend service `go.micro.srv.greeter` (`Say.Hello`).
//! - [`go_api`]: go-micro's `go.api` Request/Response/Pair, what the API gateway sends.

#![allow(clippy::all, missing_docs)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
    include!(concat!(env!("OUT_DIR"), "/mvccpb.serde.rs"));
}

/// etcd's users, roles and permissions (`auth/authpb`).
pub mod authpb {
    tonic::include_proto!("authpb");
    include!(concat!(env!("OUT_DIR"), "/authpb.serde.rs"));
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.serde.rs"));
}

/// etcd's lock service (`etcdctl lock`).
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.serde.rs"));
}

/// etcd's election service (`etcdctl elect`).
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.serde.rs"));
}

pub mod registrypb {
    tonic::include_proto!("registrypb");
}

pub mod raftpb {
    tonic::include_proto!("raftpb");
}

pub mod greeter {
    tonic::include_proto!("go.micro.srv.greeter");
}

pub mod go_api {
    tonic::include_proto!("go.api");
}
