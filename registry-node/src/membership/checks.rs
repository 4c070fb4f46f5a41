//! etcd 3.4's checks of a membership change (`etcdserver/server.go` `mayAddMember`,
//! `mayRemoveMember`, `mayPromoteMember`, `isLearnerReady`; `membership/cluster.go`
//! `ValidateConfigurationChange` and `IsReadyTo*`, with `--strict-reconfig-check` on, its
//! default), in etcd's order and with etcd's texts. Pure: the membership in, an error out.

use std::time::{SystemTime, UNIX_EPOCH};

use tonic::Status;

use super::Membership;
use crate::raft::{MemberNode, NodeId};

/// etcd allows one learner at a time (`maxLearners`).
const MAX_LEARNERS: usize = 1;

/// A learner may be promoted once it has this share of the leader's log (`readyPercent`).
const READY_PERCENT: f64 = 0.9;

pub(crate) fn member_not_found() -> Status {
    Status::not_found("etcdserver: member not found")
}

fn not_enough_started() -> Status {
    Status::failed_precondition(
        "etcdserver: re-configuration failed due to not enough started members",
    )
}

fn bad_urls() -> Status {
    Status::invalid_argument("etcdserver: given member URLs are invalid")
}

/// A member's peer URLs as given: etcd's URL rules (`http(s)://host:port`), and one URL, since a
/// member of this registry has one peer URL.
pub(crate) fn one_peer_url(urls: &[String]) -> Result<String, Status> {
    let [url] = urls else {
        if urls.is_empty() {
            return Err(bad_urls());
        }
        return Err(Status::invalid_argument(format!(
            "registry: a member has exactly one peer URL ({} given)",
            urls.len()
        )));
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(bad_urls)?;
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').ok_or_else(bad_urls)?;
    if host.is_empty() || hostport.contains('/') || port.parse::<u16>().is_err() {
        return Err(bad_urls());
    }
    Ok(url.clone())
}

/// A new member's id, as etcd makes one: from its peer URL, the cluster and the time.
pub(crate) fn new_member_id(peer_url: &str, cluster_id: u64) -> NodeId {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = peer_url
        .bytes()
        .chain(cluster_id.to_be_bytes())
        .chain(nanos.to_be_bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

fn started(ms: &Membership, id: NodeId) -> bool {
    ms.get_node(&id).is_some_and(|n| !n.name.is_empty())
}

/// Voting members other than `except`: (how many, how many started).
fn voters(ms: &Membership, except: Option<NodeId>) -> (usize, usize) {
    let ids: Vec<NodeId> = ms.voter_ids().filter(|v| Some(*v) != except).collect();
    let started = ids.iter().filter(|v| started(ms, **v)).count();
    (ids.len(), started)
}

/// MemberAdd: may member `id` with `peer_url` join?
pub(crate) fn may_add(
    ms: &Membership,
    id: NodeId,
    peer_url: &str,
    learner: bool,
) -> Result<(), Status> {
    if !learner {
        // IsReadyToAddVotingMember: the started voters must stay a quorum with the new one.
        let (n, s) = voters(ms, None);
        let members = n + 1;
        if !(s == 1 && members == 2) && s < members / 2 + 1 {
            return Err(not_enough_started());
        }
    }
    if ms.get_node(&id).is_some() {
        return Err(Status::failed_precondition(
            "etcdserver: member ID already exist",
        ));
    }
    if ms.nodes().any(|(_, n)| n.peer_url == peer_url) {
        return Err(Status::failed_precondition(
            "etcdserver: Peer URLs already exists",
        ));
    }
    if learner && ms.learner_ids().count() + 1 > MAX_LEARNERS {
        return Err(Status::failed_precondition(
            "etcdserver: too many learner members in cluster",
        ));
    }
    Ok(())
}

/// MemberRemove: may `id` go? Returns whether it is a learner.
pub(crate) fn may_remove(ms: &Membership, id: NodeId) -> Result<bool, Status> {
    if ms.get_node(&id).is_none() {
        return Err(member_not_found());
    }
    let learner = ms.learner_ids().any(|l| l == id);
    if !learner {
        // IsReadyToRemoveVotingMember: the started voters left must be a quorum of those left.
        let (n, s) = voters(ms, Some(id));
        if s < n / 2 + 1 {
            return Err(not_enough_started());
        }
    }
    Ok(learner)
}

/// MemberUpdate: the member's record with `peer_url`, unless another member has it.
pub(crate) fn may_update(
    ms: &Membership,
    id: NodeId,
    peer_url: &str,
) -> Result<MemberNode, Status> {
    let Some(node) = ms.get_node(&id) else {
        return Err(member_not_found());
    };
    if ms
        .nodes()
        .any(|(other, n)| *other != id && n.peer_url == peer_url)
    {
        return Err(Status::failed_precondition(
            "etcdserver: Peer URLs already exists",
        ));
    }
    Ok(MemberNode {
        peer_url: peer_url.to_owned(),
        ..node.clone()
    })
}

/// MemberPromote: `matched` is the learner's last replicated index the leader knows,
/// `leader_last` the leader's own last index.
pub(crate) fn may_promote(
    ms: &Membership,
    id: NodeId,
    matched: Option<u64>,
    leader_last: u64,
) -> Result<(), Status> {
    if ms.get_node(&id).is_none() {
        return Err(member_not_found());
    }
    if !ms.learner_ids().any(|l| l == id) {
        return Err(Status::failed_precondition(
            "etcdserver: can only promote a learner member",
        ));
    }
    if (matched.unwrap_or(0) as f64) < leader_last as f64 * READY_PERCENT {
        return Err(Status::failed_precondition(
            "etcdserver: can only promote a learner member which is in sync with leader",
        ));
    }
    // IsReadyToPromoteMember: the learner counts as a started voter.
    let (n, s) = voters(ms, None);
    let members = n + 1;
    if s + 1 < members / 2 + 1 {
        return Err(not_enough_started());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn node(name: &str, port: u16) -> MemberNode {
        MemberNode {
            name: name.into(),
            peer_url: format!("http://127.0.0.1:{port}"),
            client_url: if name.is_empty() {
                String::new()
            } else {
                format!("http://127.0.0.1:{}", port + 1)
            },
        }
    }

    /// Voters 1..=3 started (unless listed in `unstarted`), plus the given learners.
    fn cluster(voters: &[NodeId], unstarted: &[NodeId], learners: &[NodeId]) -> Membership {
        let mut nodes = BTreeMap::new();
        for id in voters.iter().chain(learners) {
            let name = if unstarted.contains(id) {
                String::new()
            } else {
                format!("m{id}")
            };
            nodes.insert(*id, node(&name, 2000 + *id as u16 * 10));
        }
        let voter_set: BTreeSet<NodeId> = voters.iter().copied().collect();
        Membership::new(vec![voter_set], nodes).expect("valid membership")
    }

    #[test]
    fn urls_are_checked_as_etcd_does() {
        let ok = one_peer_url(&["http://127.0.0.1:2380".into()]).expect("valid");
        assert_eq!(ok, "http://127.0.0.1:2380");
        for bad in [
            "127.0.0.1:2380",
            "http://127.0.0.1",
            "ftp://h:1",
            "http://:1",
        ] {
            let e = one_peer_url(&[bad.into()]).expect_err(bad);
            assert_eq!(
                e.message(),
                "etcdserver: given member URLs are invalid",
                "{bad}"
            );
        }
        assert_eq!(
            one_peer_url(&[]).expect_err("none").code(),
            tonic::Code::InvalidArgument
        );
        let two = one_peer_url(&["http://a:1".into(), "http://b:2".into()]).expect_err("two");
        assert!(two.message().contains("exactly one"), "{two:?}");
    }

    #[test]
    fn add_keeps_a_started_quorum_one_learner_and_unique_urls() {
        let ms = cluster(&[1, 2, 3], &[], &[]);
        may_add(&ms, 9, "http://127.0.0.1:9", false).expect("3 started of 4");
        let e = may_add(&ms, 9, "http://127.0.0.1:2010", false).expect_err("url taken");
        assert_eq!(e.message(), "etcdserver: Peer URLs already exists");
        let e = may_add(&ms, 1, "http://127.0.0.1:9", true).expect_err("id taken");
        assert_eq!(e.message(), "etcdserver: member ID already exist");
        // Two of four voters unstarted: a fifth voter would leave 2 started of 5.
        let ms = cluster(&[1, 2, 3, 4], &[3, 4], &[]);
        let e = may_add(&ms, 9, "http://127.0.0.1:9", false).expect_err("quorum");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().contains("not enough started members"), "{e:?}");
        may_add(&ms, 9, "http://127.0.0.1:9", true).expect("a learner needs no quorum");
        let ms = cluster(&[1, 2, 3], &[], &[5]);
        let e = may_add(&ms, 9, "http://127.0.0.1:9", true).expect_err("one learner");
        assert_eq!(
            e.message(),
            "etcdserver: too many learner members in cluster"
        );
    }

    #[test]
    fn remove_and_update_know_their_member() {
        let ms = cluster(&[1, 2, 3], &[], &[5]);
        assert_eq!(
            may_remove(&ms, 7).expect_err("unknown").code(),
            tonic::Code::NotFound
        );
        assert!(may_remove(&ms, 5).expect("learner"));
        assert!(!may_remove(&ms, 1).expect("voter"));
        let ms = cluster(&[1, 2, 3], &[2], &[]);
        let e = may_remove(&ms, 1).expect_err("1 started of 2 left");
        assert!(e.message().contains("not enough started members"), "{e:?}");
        let ms = cluster(&[1, 2, 3], &[], &[]);
        let n = may_update(&ms, 2, "http://127.0.0.1:7").expect("free url");
        assert_eq!(
            (n.name.as_str(), n.peer_url.as_str()),
            ("m2", "http://127.0.0.1:7")
        );
        may_update(&ms, 2, "http://127.0.0.1:2020").expect("its own url");
        let e = may_update(&ms, 2, "http://127.0.0.1:2010").expect_err("taken");
        assert_eq!(e.message(), "etcdserver: Peer URLs already exists");
        assert_eq!(
            may_update(&ms, 9, "http://x:1")
                .expect_err("unknown")
                .message(),
            "etcdserver: member not found"
        );
    }

    #[test]
    fn promote_only_a_learner_in_sync() {
        let ms = cluster(&[1, 2, 3], &[], &[5]);
        may_promote(&ms, 5, Some(95), 100).expect("in sync");
        let e = may_promote(&ms, 5, Some(50), 100).expect_err("behind");
        assert_eq!(
            e.message(),
            "etcdserver: can only promote a learner member which is in sync with leader"
        );
        let e = may_promote(&ms, 5, None, 100).expect_err("never replicated");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        let e = may_promote(&ms, 2, Some(100), 100).expect_err("voter");
        assert_eq!(e.message(), "etcdserver: can only promote a learner member");
        assert_eq!(
            may_promote(&ms, 8, None, 1).expect_err("unknown").code(),
            tonic::Code::NotFound
        );
    }

    #[test]
    fn new_ids_differ_by_url() {
        assert_ne!(
            new_member_id("http://a:1", 7),
            new_member_id("http://b:1", 7)
        );
        assert_ne!(new_member_id("http://a:1", 7), 0);
    }
}
