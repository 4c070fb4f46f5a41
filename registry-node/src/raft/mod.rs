//! Raft plumbing: the openraft type configuration, proposal batching, and the member link
//! (the peer transport, [`peer`], with its wire format in [`wire`]).

pub mod batch;
pub mod peer;
pub mod types;
pub mod wire;

pub use types::{Command, CommandResult, MemberNode, NodeId, TypeConfig};

/// The openraft handle of a member (its state machine type is part of it since 0.10).
pub type Raft = openraft::Raft<TypeConfig, crate::store::StateMachine>;

/// bincode settings of the snapshot file's metadata.
pub(crate) fn codec() -> bincode::config::Configuration {
    bincode::config::standard()
}
