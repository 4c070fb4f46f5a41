//! Generated protocol types of the workspace.
//!
//! - [`mvccpb`] and [`etcdserverpb`]: the etcd v3.4 API subset the registry serves, with etcd's
//!   package names and field numbers so that `etcdctl` and other etcd clients interoperate.
//! - [`registrypb`]: the registry's cluster-internal messages (Raft log commands, read index and
//!   forwarded proposals).
//! - [`raftpb`]: the member link, Raft between members (our own messages, see raft_peer.proto).
//! - [`greeter`]: the demo backend service `go.micro.srv.greeter` (`Say.Hello`).
//! - [`go_api`]: go-micro's `go.api` Request/Response/Pair, what the API gateway sends.

#![allow(clippy::all, missing_docs)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
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
