//! Raft plumbing: the openraft type configuration and the peer transport (the member link,
//! and the `RaftPeer` gRPC service on the same port).

pub mod batch;
pub mod link;
pub mod network;
pub mod peer_service;
pub mod types;

pub use types::{Command, CommandResult, MemberNode, NodeId, TypeConfig};

/// The openraft handle of a member.
pub type Raft = openraft::Raft<TypeConfig>;

/// bincode settings shared by both ends of the peer transport.
pub(crate) fn codec() -> bincode::config::Configuration {
    bincode::config::standard()
}
