//! The member link refuses whoever is not a member of the cluster, says why on both sides, and
//! holds against a peer that sends too much.

use std::time::Duration;

use super::client::{PeerError, PeerNetwork};
use super::Identity;
use crate::testing::TestCluster;
use proto::raftpb::peer_request::Body as Req;
use proto::raftpb::raft_peer_client::RaftPeerClient;
use proto::raftpb::{PeerRequest, SnapshotChunk, SnapshotHead};
use proto::registrypb::ReadIndexRequest;

const WAIT: Duration = Duration::from_secs(10);

fn peer_url(c: &TestCluster, i: usize) -> String {
    format!("http://{}", c.node(i).peer_addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_cluster_is_refused_with_both_names() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(WAIT).await.expect("leader");
    let (cluster, id) = (c.config(leader).cluster_id, c.node(leader).id());

    // Another cluster: another --initial-cluster-token gives another cluster id.
    let stranger = PeerNetwork::new(
        Identity {
            cluster_id: cluster ^ 0xdead,
            member_id: 42,
        },
        None,
    );
    let e = stranger
        .read_index(id, &peer_url(&c, leader), WAIT)
        .await
        .expect_err("refused");
    let text = e.to_string();
    assert!(matches!(e, PeerError::Refused(_)), "{e:?}");
    assert!(
        text.contains(&format!("{:x}", cluster ^ 0xdead)) && text.contains(&format!("{cluster:x}")),
        "names both clusters: {text}"
    );
    assert!(e.not_sent(), "a refused call never reached Raft");

    // The same cluster id, but a member the cluster does not have.
    let unknown = PeerNetwork::new(
        Identity {
            cluster_id: cluster,
            member_id: 42,
        },
        None,
    );
    let e = unknown
        .read_index(id, &peer_url(&c, leader), WAIT)
        .await
        .expect_err("refused");
    assert!(e.to_string().contains("not a member"), "{e}");

    // A real member addressing another member at the leader's address.
    let other = (leader + 1) % 3;
    let member = PeerNetwork::new(
        Identity {
            cluster_id: cluster,
            member_id: c.node(other).id(),
        },
        None,
    );
    let wrong = c.node((leader + 2) % 3).id();
    let e = member
        .read_index(wrong, &peer_url(&c, leader), WAIT)
        .await
        .expect_err("refused");
    assert!(matches!(e, PeerError::Refused(_)), "{e:?}");

    // And the same member, addressing the leader properly, gets its read index.
    let ri = member
        .read_index(id, &peer_url(&c, leader), WAIT)
        .await
        .expect("a read index from the leader");
    assert_eq!(ri.leader_id, id);
    // A follower is not the leader: it says so (etcd's text), and the caller asks again.
    let follower = (leader + 2) % 3;
    let e = member
        .read_index(c.node(follower).id(), &peer_url(&c, follower), WAIT)
        .await
        .expect_err("a follower has no read index to give");
    match e {
        PeerError::Remote(_, s) => assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}"),
        e => panic!("{e:?}"),
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_handshake_or_too_large_are_refused_and_the_cluster_goes_on() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(WAIT).await.expect("leader");
    let mut raw = RaftPeerClient::connect(peer_url(&c, leader))
        .await
        .expect("connect")
        .max_encoding_message_size(64 * 1024 * 1024);
    let one = PeerRequest {
        id: 1,
        body: Some(Req::ReadIndex(ReadIndexRequest {})),
    };
    let e = raw
        .stream(tokio_stream::iter(vec![one]))
        .await
        .expect_err("no handshake");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // A snapshot that announces more than a member takes is refused before any data.
    let (cluster, id) = (c.config(leader).cluster_id, c.node(leader).id());
    let me = Identity {
        cluster_id: cluster,
        member_id: c.node((leader + 1) % 3).id(),
    };
    let head = SnapshotChunk {
        part: Some(proto::raftpb::snapshot_chunk::Part::Head(SnapshotHead {
            size: u64::MAX,
            ..Default::default()
        })),
    };
    let mut req = tonic::Request::new(tokio_stream::iter(vec![head]));
    me.stamp_request(req.metadata_mut(), id);
    let e = raw.install_snapshot(req).await.expect_err("too large");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");

    // One message over the limit: refused, the member stays up.
    let huge = SnapshotChunk {
        part: Some(proto::raftpb::snapshot_chunk::Part::Data(vec![
            0;
            20 * 1024
                * 1024
        ])),
    };
    let mut req = tonic::Request::new(tokio_stream::iter(vec![huge]));
    me.stamp_request(req.metadata_mut(), id);
    assert!(
        raw.install_snapshot(req).await.is_err(),
        "oversized message"
    );

    // The cluster still commits writes.
    let mut kv = proto::etcdserverpb::kv_client::KvClient::connect(c.client_url(leader))
        .await
        .expect("client");
    kv.put(proto::etcdserverpb::PutRequest {
        key: b"after".to_vec(),
        value: b"hostile peer".to_vec(),
        ..Default::default()
    })
    .await
    .expect("put after the hostile calls");
    c.shutdown().await;
}
