//! The member link: Raft, read indexes and forwarded writes between members, on one tonic
//! bidirectional stream per (caller, member) pair (`proto/raft_peer.proto`), snapshots on a
//! call of their own.
//!
//! ```text
//!  openraft replication ─┐                         ┌─▶ Raft::append_entries / vote / ...
//!  ReadIndex, Propose ───┼─▶ client::Conn ══ gRPC stream ══▶ server::PeerService
//!                        │   (ids match answers,    │   (each request a task, at most
//!                        │    ≤ MAX_IN_FLIGHT)      │    MAX_IN_FLIGHT per stream)
//!  snapshot ─────────────┴─▶ InstallSnapshot(stream of chunks) ─▶ Raft::install_full_snapshot
//! ```
//!
//! Every call carries a handshake in its metadata, checked on both sides: the cluster id and
//! the member ids (see [`Identity`]). A member of another cluster (another
//! `--initial-cluster-token` or member list), or one the member does not know, is refused
//! with a message naming both, as etcd refuses a peer whose cluster id differs.

pub(crate) mod client;
pub(crate) mod network;
pub(crate) mod server;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::Status;

use super::NodeId;

/// Largest message either way. An append larger than [`APPEND_BUDGET`] goes in parts; a single
/// entry is at most a client request (etcd's 1.5 MiB) or a batch of writes (1 MiB).
pub(crate) const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Entries of one append request are cut after this many encoded bytes.
pub(crate) const APPEND_BUDGET: usize = 4 * 1024 * 1024;

/// Requests on their way to one member (client side) or being handled for one stream (server
/// side) at once; more wait (back-pressure) instead of queueing without bound.
pub(crate) const MAX_IN_FLIGHT: usize = 256;

/// Bytes of snapshot data per chunk.
pub(crate) const SNAPSHOT_CHUNK: usize = 1024 * 1024;

/// Largest snapshot a member accepts (it is held in memory to be installed).
pub(crate) const MAX_SNAPSHOT: u64 = 8 * 1024 * 1024 * 1024;

const CLUSTER: &str = "x-raft-cluster";
const FROM: &str = "x-raft-from";
const TO: &str = "x-raft-to";
const MEMBER: &str = "x-raft-member";

/// Who is talking: the cluster id and this member's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) cluster_id: u64,
    pub(crate) member_id: NodeId,
}

fn hex(v: u64) -> MetadataValue<tonic::metadata::Ascii> {
    // A hex number is always valid ASCII metadata.
    MetadataValue::try_from(format!("{v:x}")).unwrap_or_else(|_| MetadataValue::from_static("0"))
}

fn read_hex(md: &MetadataMap, key: &str) -> Option<u64> {
    let v = md.get(key)?.to_str().ok()?;
    u64::from_str_radix(v, 16).ok()
}

impl Identity {
    /// The caller's side of the handshake, for a call to member `to`.
    pub(crate) fn stamp_request(&self, md: &mut MetadataMap, to: NodeId) {
        md.insert(CLUSTER, hex(self.cluster_id));
        md.insert(FROM, hex(self.member_id));
        md.insert(TO, hex(to));
    }

    /// The answering member's side: it says who it is.
    pub(crate) fn stamp_response(&self, md: &mut MetadataMap) {
        md.insert(CLUSTER, hex(self.cluster_id));
        md.insert(MEMBER, hex(self.member_id));
    }

    /// Checks a call's handshake on the member asked; returns the caller's id. `known` says
    /// whether a member id belongs to this cluster.
    pub(crate) fn check_request(
        &self,
        md: &MetadataMap,
        known: impl Fn(NodeId) -> bool,
    ) -> Result<NodeId, Status> {
        let (Some(cluster), Some(from), Some(to)) =
            (read_hex(md, CLUSTER), read_hex(md, FROM), read_hex(md, TO))
        else {
            return Err(Status::invalid_argument(
                "peer handshake missing: x-raft-cluster, x-raft-from and x-raft-to are required",
            ));
        };
        if cluster != self.cluster_id {
            return Err(Status::failed_precondition(format!(
                "cluster id mismatch: member {from:x} of cluster {cluster:x} called member \
                 {:x} of cluster {:x}",
                self.member_id, self.cluster_id
            )));
        }
        if to != self.member_id {
            return Err(Status::failed_precondition(format!(
                "member {from:x} called member {to:x}, but this is member {:x} (cluster {:x})",
                self.member_id, self.cluster_id
            )));
        }
        if !known(from) {
            return Err(Status::permission_denied(format!(
                "member {from:x} is not a member of cluster {:x}",
                self.cluster_id
            )));
        }
        Ok(from)
    }

    /// Checks the answering member's handshake on the caller.
    pub(crate) fn check_response(&self, md: &MetadataMap, to: NodeId) -> Result<(), String> {
        let (Some(cluster), Some(member)) = (read_hex(md, CLUSTER), read_hex(md, MEMBER)) else {
            return Err(format!("member {to:x} answered without a peer handshake"));
        };
        if cluster != self.cluster_id {
            return Err(format!(
                "cluster id mismatch: member {member:x} of cluster {cluster:x} answered member \
                 {:x} of cluster {:x}",
                self.member_id, self.cluster_id
            ));
        }
        if member != to {
            return Err(format!(
                "member {member:x} answered at the address of member {to:x}"
            ));
        }
        Ok(())
    }
}

/// The member link against strangers and floods, on a real in-process cluster.
#[cfg(test)]
mod link_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const A: Identity = Identity {
        cluster_id: 0xc1,
        member_id: 1,
    };

    #[test]
    fn a_handshake_of_the_same_cluster_passes_both_ways() {
        let mut md = MetadataMap::new();
        A.stamp_request(&mut md, 2);
        let b = Identity {
            cluster_id: 0xc1,
            member_id: 2,
        };
        assert_eq!(b.check_request(&md, |id| id == 1).expect("accepted"), 1);
        let mut back = MetadataMap::new();
        b.stamp_response(&mut back);
        A.check_response(&back, 2).expect("accepted");
        assert!(
            A.check_response(&back, 3).is_err(),
            "another member at that address"
        );
    }

    #[test]
    fn another_cluster_or_an_unknown_member_is_refused_naming_both() {
        let mut md = MetadataMap::new();
        A.stamp_request(&mut md, 2);
        let other = Identity {
            cluster_id: 0xc2,
            member_id: 2,
        };
        let e = other.check_request(&md, |_| true).expect_err("refused");
        assert!(
            e.message().contains("cluster c1") && e.message().contains("cluster c2"),
            "{e:?}"
        );
        let mut back = MetadataMap::new();
        other.stamp_response(&mut back);
        let e = A.check_response(&back, 2).expect_err("refused");
        assert!(e.contains("cluster c2") && e.contains("cluster c1"), "{e}");
        let b = Identity {
            cluster_id: 0xc1,
            member_id: 2,
        };
        let e = b.check_request(&md, |_| false).expect_err("unknown member");
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let e = Identity {
            cluster_id: 0xc1,
            member_id: 3,
        }
        .check_request(&md, |_| true)
        .expect_err("addressed to another member");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        let e = b
            .check_request(&MetadataMap::new(), |_| true)
            .expect_err("no handshake");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
}
