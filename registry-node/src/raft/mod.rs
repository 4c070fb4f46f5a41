//! Raft plumbing: the openraft type configuration, proposal batching, and the member link
//! (the peer transport, [`peer`], with its wire format in [`wire`]).

pub(crate) mod batch;
pub(crate) mod peer;
pub(crate) mod types;
pub(crate) mod wire;

pub(crate) use types::{Command, CommandResult, MemberNode, NodeId, TypeConfig};

/// The openraft handle of a member (its state machine type is part of it since 0.10).
pub(crate) type Raft = openraft::Raft<TypeConfig, crate::store::StateMachine>;

/// bincode settings of the snapshot file's metadata.
pub(crate) fn codec() -> bincode::config::Configuration {
    bincode::config::standard()
}
