//! openraft's messages ⇄ our protobuf messages of the member link (`proto/raft_peer.proto`).
//!
//! The wire is ours, so an openraft upgrade changes this file, not the bytes between members.
//! Decoding checks what protobuf cannot: required fields present, membership configs valid.

use std::collections::{BTreeMap, BTreeSet};

use openraft::impls::leader_id_adv::LeaderId;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, TransferLeaderRequest, VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, Membership};
use proto::raftpb as pb;

use super::{Command, MemberNode, NodeId, TypeConfig};
use crate::types::{Entry, LogId, StoredMembership, Vote};

pub(crate) type TransferLeaderResponse = openraft::raft::TransferLeaderResponse<TypeConfig>;
type TransferLeaderError = openraft::raft::TransferLeaderError<TypeConfig>;

/// A message from a peer that does not make sense.
#[derive(Debug, thiserror::Error)]
#[error("malformed peer message: {0}")]
pub(crate) struct Malformed(pub String);

fn missing(what: &str) -> Malformed {
    Malformed(format!("{what} missing"))
}

pub(crate) fn log_id(l: &LogId) -> pb::LogId {
    pb::LogId {
        term: l.leader_id.term,
        leader: l.leader_id.node_id,
        index: l.index,
    }
}

pub(crate) fn log_id_opt(l: &Option<LogId>) -> Option<pb::LogId> {
    l.as_ref().map(log_id)
}

pub(crate) fn from_log_id(l: pb::LogId) -> LogId {
    LogId::new(
        LeaderId {
            term: l.term,
            node_id: l.leader,
        },
        l.index,
    )
}

fn from_log_id_opt(l: Option<pb::LogId>) -> Option<LogId> {
    l.map(from_log_id)
}

pub(crate) fn vote(v: &Vote) -> pb::Vote {
    pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.node_id,
        committed: v.committed,
    }
}

pub(crate) fn from_vote(v: Option<pb::Vote>) -> Result<Vote, Malformed> {
    let v = v.ok_or_else(|| missing("vote"))?;
    Ok(if v.committed {
        Vote::new_committed(v.term, v.node_id)
    } else {
        Vote::new(v.term, v.node_id)
    })
}

pub(crate) fn membership(m: &Membership<NodeId, MemberNode>) -> pb::Membership {
    pb::Membership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|set| pb::NodeSet {
                ids: set.iter().copied().collect(),
            })
            .collect(),
        nodes: m
            .nodes()
            .map(|(id, n)| {
                let member = pb::Member {
                    name: n.name.clone(),
                    peer_url: n.peer_url.clone(),
                    client_url: n.client_url.clone(),
                };
                (*id, member)
            })
            .collect(),
    }
}

pub(crate) fn from_membership(
    m: Option<pb::Membership>,
) -> Result<Membership<NodeId, MemberNode>, Malformed> {
    let m = m.ok_or_else(|| missing("membership"))?;
    let configs: Vec<BTreeSet<NodeId>> = m
        .configs
        .into_iter()
        .map(|s| s.ids.into_iter().collect())
        .collect();
    let nodes: BTreeMap<NodeId, MemberNode> = m
        .nodes
        .into_iter()
        .map(|(id, n)| {
            let node = MemberNode {
                name: n.name,
                peer_url: n.peer_url,
                client_url: n.client_url,
            };
            (id, node)
        })
        .collect();
    Membership::new(configs, nodes).map_err(|e| Malformed(format!("membership: {e}")))
}

pub(crate) fn stored_membership(m: &StoredMembership) -> (Option<pb::LogId>, pb::Membership) {
    (log_id_opt(m.log_id()), membership(m.membership()))
}

pub(crate) fn from_stored_membership(
    log_id: Option<pb::LogId>,
    m: Option<pb::Membership>,
) -> Result<StoredMembership, Malformed> {
    Ok(StoredMembership::new(
        from_log_id_opt(log_id),
        from_membership(m)?,
    ))
}

pub(crate) fn entry(e: &Entry) -> pb::Entry {
    use pb::entry::Payload;
    let payload = match &e.payload {
        EntryPayload::Blank => Payload::Blank(pb::Blank {}),
        EntryPayload::Normal(cmd) => Payload::Normal(cmd.0.clone()),
        EntryPayload::Membership(m) => Payload::Membership(membership(m)),
    };
    pb::Entry {
        log_id: Some(log_id(&e.log_id)),
        payload: Some(payload),
    }
}

pub(crate) fn from_entry(e: pb::Entry) -> Result<Entry, Malformed> {
    use pb::entry::Payload;
    let log_id = from_log_id(e.log_id.ok_or_else(|| missing("entry log id"))?);
    let payload = match e.payload.ok_or_else(|| missing("entry payload"))? {
        Payload::Blank(_) => EntryPayload::Blank,
        Payload::Normal(bytes) => EntryPayload::Normal(Command(bytes)),
        Payload::Membership(m) => EntryPayload::Membership(from_membership(Some(m))?),
    };
    Ok(Entry { log_id, payload })
}

pub(crate) fn append_request(r: &AppendEntriesRequest<TypeConfig>) -> pb::AppendRequest {
    pb::AppendRequest {
        vote: Some(vote(&r.vote)),
        prev_log_id: log_id_opt(&r.prev_log_id),
        entries: r.entries.iter().map(entry).collect(),
        leader_commit: log_id_opt(&r.leader_commit),
    }
}

pub(crate) fn from_append_request(
    r: pb::AppendRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, Malformed> {
    Ok(AppendEntriesRequest {
        vote: from_vote(r.vote)?,
        prev_log_id: from_log_id_opt(r.prev_log_id),
        entries: r
            .entries
            .into_iter()
            .map(from_entry)
            .collect::<Result<_, _>>()?,
        leader_commit: from_log_id_opt(r.leader_commit),
    })
}

pub(crate) fn append_response(r: &AppendEntriesResponse<TypeConfig>) -> pb::AppendResponse {
    use pb::append_response::Result as R;
    let result = match r {
        AppendEntriesResponse::Success => R::Accepted(pb::Accepted { last: None }),
        AppendEntriesResponse::PartialSuccess(last) => R::Accepted(pb::Accepted {
            // `None` here means "nothing of it"; keep it apart from "everything" (absent).
            last: Some(last.as_ref().map(log_id).unwrap_or(NOTHING)),
        }),
        AppendEntriesResponse::Conflict => R::Conflict(pb::Blank {}),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote(v)),
    };
    pb::AppendResponse {
        result: Some(result),
    }
}

/// Stands for `PartialSuccess(None)`: a log id no entry has (index 0 of term 0 by member 0
/// is before every real entry, and openraft's first entry has index 0 only with a term).
const NOTHING: pb::LogId = pb::LogId {
    term: 0,
    leader: 0,
    index: u64::MAX,
};

pub(crate) fn from_append_response(
    r: pb::AppendResponse,
) -> Result<AppendEntriesResponse<TypeConfig>, Malformed> {
    use pb::append_response::Result as R;
    Ok(match r.result.ok_or_else(|| missing("append result"))? {
        R::Accepted(pb::Accepted { last: None }) => AppendEntriesResponse::Success,
        R::Accepted(pb::Accepted { last: Some(l) }) if l == NOTHING => {
            AppendEntriesResponse::PartialSuccess(None)
        }
        R::Accepted(pb::Accepted { last: Some(l) }) => {
            AppendEntriesResponse::PartialSuccess(Some(from_log_id(l)))
        }
        R::Conflict(_) => AppendEntriesResponse::Conflict,
        R::HigherVote(v) => AppendEntriesResponse::HigherVote(from_vote(Some(v))?),
    })
}

pub(crate) fn vote_request(r: &VoteRequest<TypeConfig>, pre_vote: bool) -> pb::VoteRequest {
    pb::VoteRequest {
        vote: Some(vote(&r.vote)),
        last_log_id: log_id_opt(&r.last_log_id),
        leadership_transfer: r.leadership_transfer,
        pre_vote,
    }
}

/// The request, and whether it is a pre-vote.
pub(crate) fn from_vote_request(
    r: pb::VoteRequest,
) -> Result<(VoteRequest<TypeConfig>, bool), Malformed> {
    let mut req = VoteRequest::new(from_vote(r.vote)?, from_log_id_opt(r.last_log_id));
    req.leadership_transfer = r.leadership_transfer;
    Ok((req, r.pre_vote))
}

pub(crate) fn vote_response(r: &VoteResponse<TypeConfig>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: log_id_opt(&r.last_log_id),
    }
}

pub(crate) fn from_vote_response(
    r: pb::VoteResponse,
) -> Result<VoteResponse<TypeConfig>, Malformed> {
    Ok(VoteResponse::new(
        from_vote(r.vote)?,
        from_log_id_opt(r.last_log_id),
        r.vote_granted,
    ))
}

pub(crate) fn transfer_request(r: &TransferLeaderRequest<TypeConfig>) -> pb::TransferLeaderRequest {
    pb::TransferLeaderRequest {
        from_leader: Some(vote(r.from_leader())),
        to: *r.to_node_id(),
        last_log_id: r.last_log_id().map(log_id),
    }
}

pub(crate) fn from_transfer_request(
    r: pb::TransferLeaderRequest,
) -> Result<TransferLeaderRequest<TypeConfig>, Malformed> {
    Ok(TransferLeaderRequest::new(
        from_vote(r.from_leader)?,
        r.to,
        from_log_id_opt(r.last_log_id),
    ))
}

pub(crate) fn transfer_response(r: &TransferLeaderResponse) -> pb::TransferLeaderResponse {
    use pb::transfer_leader_response::Result as R;
    let result = match r {
        Ok(()) => R::Done(pb::Blank {}),
        Err(TransferLeaderError::VoteChanged { expected, actual }) => {
            R::VoteChanged(pb::VoteMismatch {
                expected: Some(vote(expected)),
                actual: Some(vote(actual)),
            })
        }
        Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
            R::LogNotFlushed(pb::LogMismatch {
                expected: log_id_opt(expected),
                actual: log_id_opt(actual),
            })
        }
    };
    pb::TransferLeaderResponse {
        result: Some(result),
    }
}

pub(crate) fn from_transfer_response(
    r: pb::TransferLeaderResponse,
) -> Result<TransferLeaderResponse, Malformed> {
    use pb::transfer_leader_response::Result as R;
    Ok(match r.result.ok_or_else(|| missing("transfer result"))? {
        R::Done(_) => Ok(()),
        R::VoteChanged(m) => Err(TransferLeaderError::VoteChanged {
            expected: from_vote(m.expected)?,
            actual: from_vote(m.actual)?,
        }),
        R::LogNotFlushed(m) => Err(TransferLeaderError::LogNotFlushed {
            expected: from_log_id_opt(m.expected),
            actual: from_log_id_opt(m.actual),
        }),
    })
}

#[cfg(test)]
mod tests;
