//! Raft plumbing: the running openraft handle, proposal batching, and the member link (the
//! peer transport, [`peer`], with its wire format in [`wire`]). The type configuration is
//! [`crate::types`] (the state machine in `store` uses it without depending on this module).

pub(crate) mod batch;
pub(crate) mod peer;
pub(crate) mod wire;

pub(crate) use crate::types::{Command, CommandResult, MemberNode, NodeId, TypeConfig};

/// The openraft handle of a member (its state machine type is part of it since 0.10).
pub(crate) type Raft = openraft::Raft<TypeConfig, crate::store::StateMachine>;
