//! Membership at run time, as etcd 3.4's: MemberAdd (also as a learner), MemberRemove,
//! MemberUpdate, MemberPromote, MoveLeader, and a new member publishing its name and client URL
//! once it runs (etcd's `publish`). Every change is one openraft membership change on the
//! leader ([`change`]); etcd's checks come first ([`checks`]), on the membership the change is
//! then conditioned on (openraft's `LastMembershipLogId` precondition), so two concurrent
//! changes cannot both pass a check meant for one.
//!
//! A member added at run time is "unstarted" (empty name and client URLs, as etcd lists it)
//! until it starts with `--initial-cluster-state existing`, learns its id from the running
//! cluster ([`join`]) and publishes itself ([`join::publish_loop`]).

pub(crate) mod checks;
pub(crate) mod join;

use openraft::async_runtime::WatchReceiver;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::raft::Precondition;
use openraft::ChangeMembers;
use proto::etcdserverpb::Member;
use tokio::time::Instant;
use tonic::Status;

use crate::errors as error;
use crate::raft::{MemberNode, NodeId, TypeConfig};
use crate::routing::Router;
use crate::routing::{CallCtx, Redirect};

/// The Raft membership of the registry.
pub(crate) type Membership = openraft::Membership<NodeId, MemberNode>;
type Metrics = openraft::RaftMetrics<TypeConfig>;

/// The members as etcd lists them, by id: a member that has not published itself yet has an
/// empty name and no client URLs ("unstarted" in `etcdctl member list`).
pub(crate) fn members_of(m: &Membership) -> Vec<Member> {
    let learners: BTreeSet<NodeId> = m.learner_ids().collect();
    m.nodes()
        .map(|(id, node)| Member {
            id: *id,
            name: node.name.clone(),
            peer_urls: vec![node.peer_url.clone()],
            client_urls: if node.client_url.is_empty() {
                Vec::new()
            } else {
                vec![node.client_url.clone()]
            },
            is_learner: learners.contains(id),
        })
        .collect()
}

/// This member's current view of the membership.
pub(crate) fn current_members(router: &Router) -> Vec<Member> {
    members_of(
        router
            .raft()
            .metrics()
            .borrow_watched()
            .membership_config
            .membership(),
    )
}

/// Where a membership request goes when this member is not the leader.
fn not_leader(m: &Metrics) -> Option<Redirect> {
    if m.current_leader == Some(m.id) && m.state.is_leader() {
        return None;
    }
    let node = m
        .current_leader
        .and_then(|l| m.membership_config.membership().get_node(&l).cloned())
        // A leader that has not published its client URL yet cannot be called; wait.
        .filter(|n| !n.client_url.is_empty());
    Some(node.map(Redirect::Leader).unwrap_or(Redirect::NoLeader))
}

/// Runs one membership change on the leader: `plan` checks the request against the current
/// membership (etcd's errors) and says what to change; the change is proposed only if the
/// membership is still that one, else planned again. Returns the membership after the change.
pub(crate) async fn change<P>(
    router: &Router,
    ctx: &CallCtx,
    plan: P,
) -> Result<Vec<Member>, Redirect>
where
    P: Fn(&Metrics) -> Result<ChangeMembers<NodeId, MemberNode>, Status>,
{
    loop {
        let (changes, observed) = {
            let m = router.raft().metrics().borrow_watched().clone();
            if let Some(r) = not_leader(&m) {
                return Err(r);
            }
            let changes = plan(&m).map_err(Redirect::Fail)?;
            (changes, *m.membership_config.log_id())
        };
        let pre = [Precondition::LastMembershipLogId {
            last_membership_log_id: observed,
        }];
        match router
            .raft()
            .change_membership_if(changes, false, pre)
            .await
        {
            Ok(resp) => {
                let members = match &resp.membership {
                    Some(m) => members_of(m),
                    None => current_members(router),
                };
                return Ok(members);
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                return Err(match f.leader_node {
                    Some(n) if !n.client_url.is_empty() => Redirect::Leader(n),
                    _ => Redirect::NoLeader,
                });
            }
            // Another change is on its way or came in between: plan again once it is done.
            Err(RaftError::APIError(ClientWriteError::PreconditionFailed(_)))
            | Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            ))) => {
                if Instant::now() >= ctx.deadline {
                    return Err(Redirect::Fail(ctx.expired()));
                }
                router.wait_for_leader_change(ctx.deadline).await;
            }
            Err(RaftError::APIError(e)) => {
                return Err(Redirect::Fail(Status::internal(format!(
                    "membership change: {e}"
                ))))
            }
            Err(RaftError::Fatal(_)) => return Err(Redirect::Fail(error::stopped())),
        }
    }
}

/// etcd's MemberAdd on the leader: the new member, unstarted, as a voter or a learner.
pub(crate) async fn add(
    router: &Router,
    ctx: &CallCtx,
    peer_urls: &[String],
    is_learner: bool,
) -> Result<(Member, Vec<Member>), Redirect> {
    let peer_url = checks::one_peer_url(peer_urls).map_err(Redirect::Fail)?;
    let id = checks::new_member_id(&peer_url, router.cluster_id());
    let node = MemberNode {
        name: String::new(),
        peer_url: peer_url.clone(),
        client_url: String::new(),
    };
    let members = change(router, ctx, |m| {
        let ms = m.membership_config.membership();
        checks::may_add(ms, id, &peer_url, is_learner)?;
        let nodes = BTreeMap::from([(id, node.clone())]);
        Ok(if is_learner {
            ChangeMembers::AddNodes(nodes)
        } else {
            ChangeMembers::AddVoters(nodes)
        })
    })
    .await?;
    let added = Member {
        id,
        peer_urls: vec![peer_url.clone()],
        is_learner,
        ..Default::default()
    };
    Ok((added, members))
}

/// etcd's MemberRemove on the leader (the leader itself too: openraft hands leadership to
/// another voter once the change is committed).
pub(crate) async fn remove(
    router: &Router,
    ctx: &CallCtx,
    id: NodeId,
) -> Result<Vec<Member>, Redirect> {
    change(router, ctx, |m| {
        let ms = m.membership_config.membership();
        let learner = checks::may_remove(ms, id)?;
        let ids = BTreeSet::from([id]);
        Ok(if learner {
            ChangeMembers::RemoveNodes(ids)
        } else {
            ChangeMembers::RemoveVoters(ids)
        })
    })
    .await
}

/// etcd's MemberUpdate on the leader: new peer URLs, name and client URLs kept.
pub(crate) async fn update(
    router: &Router,
    ctx: &CallCtx,
    id: NodeId,
    peer_urls: &[String],
) -> Result<Vec<Member>, Redirect> {
    let peer_url = checks::one_peer_url(peer_urls).map_err(Redirect::Fail)?;
    change(router, ctx, |m| {
        let ms = m.membership_config.membership();
        let node = checks::may_update(ms, id, &peer_url)?;
        Ok(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
    })
    .await
}

/// etcd's MemberPromote on the leader (only the leader knows how far a learner is).
pub(crate) async fn promote(
    router: &Router,
    ctx: &CallCtx,
    id: NodeId,
) -> Result<Vec<Member>, Redirect> {
    change(router, ctx, |m| {
        let ms = m.membership_config.membership();
        let matched = m
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map(|l| l.index());
        checks::may_promote(ms, id, matched, m.last_log_index.unwrap_or(0))?;
        Ok(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
    })
    .await
}

/// A started member's name and client URL into its membership record (etcd's publish).
pub(crate) async fn publish(
    router: &Router,
    ctx: &CallCtx,
    id: NodeId,
    name: &str,
    client_url: &str,
) -> Result<Vec<Member>, Redirect> {
    if name.is_empty() {
        return Err(Redirect::Fail(Status::invalid_argument(
            "registry: a member publishes a non-empty name",
        )));
    }
    change(router, ctx, |m| {
        let ms = m.membership_config.membership();
        let Some(old) = ms.get_node(&id) else {
            return Err(checks::member_not_found());
        };
        let node = MemberNode {
            name: name.to_owned(),
            peer_url: old.peer_url.clone(),
            client_url: client_url.to_owned(),
        };
        Ok(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
    })
    .await
}

/// etcd's `etcdserver: not leader` (MoveLeader on a follower; etcdctl finds the leader itself).
pub(crate) fn not_leader_status() -> Status {
    Status::failed_precondition("etcdserver: not leader")
}

/// etcd's MoveLeader: only on the leader; the target must be a voting member. Waits until the
/// target leads, as etcd does, up to the call's deadline.
pub(crate) async fn move_leader(
    router: &Router,
    ctx: &CallCtx,
    target: NodeId,
) -> Result<(), Status> {
    let me = {
        let m = router.raft().metrics().borrow_watched().clone();
        if not_leader(&m).is_some() {
            return Err(not_leader_status());
        }
        let ms = m.membership_config.membership();
        if ms.get_node(&target).is_none() || !ms.voter_ids().any(|v| v == target) {
            return Err(Status::failed_precondition(
                "etcdserver: bad leader transferee",
            ));
        }
        m.id
    };
    if target == me {
        return Ok(());
    }
    router
        .raft()
        .trigger()
        .transfer_leader(target)
        .await
        .map_err(|_| error::stopped())?;
    let mut metrics = router.raft().metrics();
    loop {
        if metrics.borrow_watched().current_leader == Some(target) {
            return Ok(());
        }
        let step = (Instant::now() + Duration::from_millis(200)).min(ctx.deadline);
        if Instant::now() >= ctx.deadline {
            // etcd's ErrTimeoutLeaderTransfer, which its gRPC layer passes on as UNKNOWN.
            return Err(Status::unknown(
                "etcdserver: request timed out, leader transfer took too long",
            ));
        }
        let _ = tokio::time::timeout_at(step, metrics.changed()).await;
    }
}
