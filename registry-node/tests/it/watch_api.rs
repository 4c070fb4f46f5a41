//! The Watch API in detail, over gRPC: several watches on one stream, filters, `prev_kv`,
//! events of one revision in one response, cancel, progress requests, and a stalled old leader
//! that must stop renewing leases.

use crate::common;

use std::time::Duration;

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::watch_create_request::FilterType;
use proto::etcdserverpb::*;
use proto::mvccpb::event::EventType;
use registry_node::testing::TestCluster;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

const LEADER_WAIT: Duration = Duration::from_secs(20);

fn channel(url: String) -> Channel {
    Channel::from_shared(url).expect("url").connect_lazy()
}

fn create(key: &str, end: &str, f: impl FnOnce(&mut WatchCreateRequest)) -> WatchRequest {
    let mut c = WatchCreateRequest {
        key: key.into(),
        range_end: end.into(),
        ..Default::default()
    };
    f(&mut c);
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(c)),
    }
}

async fn next(s: &mut Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("a watch response within 10 s")
        .expect("stream ok")
        .expect("stream open")
}

fn put(k: &str, v: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_watches_on_one_stream() {
    let c = TestCluster::start(3).await;
    c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let ch = channel(c.client_url(1));
    let mut kv = KvClient::new(ch.clone());
    let first = kv
        .put(PutRequest {
            key: "/a/1".into(),
            value: "old".into(),
            ..Default::default()
        })
        .await
        .expect("put")
        .into_inner();
    // The watches start right after that put: the member serving them may apply it later than
    // the leader acknowledged it, and "from now" would then include it.
    let from = first.header.expect("header").revision + 1;

    let (tx, rx) = mpsc::channel(16);
    let mut s = WatchClient::new(ch)
        .watch(ReceiverStream::new(rx))
        .await
        .expect("watch")
        .into_inner();
    // --- watch 0: the prefix, with prev_kv; watch 1: deletes only
    tx.send(create("/a/", "/a0", |c| {
        c.prev_kv = true;
        c.start_revision = from;
    }))
    .await
    .expect("send");
    let r = next(&mut s).await;
    assert!(r.created);
    let w0 = r.watch_id;
    tx.send(create("/a/", "/a0", |c| {
        c.filters = vec![FilterType::Noput as i32];
        c.start_revision = from;
    }))
    .await
    .expect("send");
    let r = next(&mut s).await;
    assert!(r.created);
    let w1 = r.watch_id;
    assert_ne!(w0, w1);

    // --- one txn, three puts: one response with three events of one revision
    let txn = kv
        .txn(TxnRequest {
            success: vec![put("/a/1", "new"), put("/a/2", "x"), put("/a/3", "y")],
            ..Default::default()
        })
        .await
        .expect("txn")
        .into_inner();
    let rev = txn.header.expect("header").revision;
    let r = next(&mut s).await;
    assert_eq!(r.watch_id, w0);
    assert_eq!(r.events.len(), 3, "events of one revision arrive together");
    assert!(r
        .events
        .iter()
        .all(|e| e.kv.as_ref().map(|kv| kv.mod_revision) == Some(rev)));
    let prev = r.events[0].prev_kv.as_ref().expect("prev_kv asked for");
    assert_eq!(prev.value, b"old");

    // --- a delete goes to both watches; the NOPUT one saw none of the puts
    kv.delete_range(DeleteRangeRequest {
        key: "/a/2".into(),
        ..Default::default()
    })
    .await
    .expect("delete");
    let mut got = vec![next(&mut s).await, next(&mut s).await];
    got.sort_by_key(|r| r.watch_id);
    for r in &got {
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.events[0].r#type, EventType::Delete as i32);
    }
    assert!(
        got[1].events[0].prev_kv.is_none(),
        "no prev_kv unless asked"
    );

    // --- progress request: answered with watch_id -1 at the current revision
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            WatchProgressRequest {},
        )),
    })
    .await
    .expect("send");
    let r = next(&mut s).await;
    assert_eq!(r.watch_id, -1);
    assert_eq!(r.header.expect("header").revision, rev + 1);

    // --- cancel watch 0: confirmed, and no more events for it
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            WatchCancelRequest { watch_id: w0 },
        )),
    })
    .await
    .expect("send");
    let r = next(&mut s).await;
    assert!(r.canceled && r.watch_id == w0, "{r:?}");
    kv.delete_range(DeleteRangeRequest {
        key: "/a/3".into(),
        ..Default::default()
    })
    .await
    .expect("delete");
    let r = next(&mut s).await;
    assert_eq!(r.watch_id, w1, "only the remaining watch hears of it");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_old_leader_stops_renewing_and_expiring() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let old = channel(c.client_url(leader));
    let g = LeaseClient::new(old.clone())
        .lease_grant(LeaseGrantRequest { ttl: 5, id: 0 })
        .await
        .expect("grant")
        .into_inner();
    KvClient::new(old.clone())
        .put(PutRequest {
            key: "/held".into(),
            value: "x".into(),
            lease: g.id,
            ..Default::default()
        })
        .await
        .expect("put");

    // --- cut the leader off: it must stop answering keep-alives within an election timeout
    c.isolate(leader);
    let (tx, rx) = mpsc::channel(4);
    let mut answers = LeaseClient::new(old)
        .lease_keep_alive(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tx.send(LeaseKeepAliveRequest { id: g.id })
            .await
            .expect("send keep-alive");
        match tokio::time::timeout(Duration::from_millis(1500), answers.message()).await {
            Ok(Ok(Some(a))) if a.ttl > 0 => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "cut-off leader still renews"
                );
            }
            _ => break,
        }
    }

    // --- meanwhile the majority elects a new leader, which keeps the lease alive when asked
    let new_leader = common::wait_for("a new leader among the others", LEADER_WAIT, || {
        let views: Vec<Option<u64>> = (0..3)
            .filter(|i| *i != leader)
            .map(|i| c.node(i).raft_status().leader)
            .collect();
        let old_id = c.config(leader).id;
        async move {
            match views.as_slice() {
                [Some(a), Some(b)] if a == b && *a != old_id => Some(*a),
                _ => None,
            }
        }
    })
    .await;
    let i = (0..3)
        .find(|i| c.config(*i).id == new_leader)
        .expect("member");
    let (tx2, rx2) = mpsc::channel(4);
    let mut a2 = LeaseClient::new(channel(c.client_url(i)))
        .lease_keep_alive(ReceiverStream::new(rx2))
        .await
        .expect("stream")
        .into_inner();
    tx2.send(LeaseKeepAliveRequest { id: g.id })
        .await
        .expect("send");
    let a = tokio::time::timeout(Duration::from_secs(10), a2.message())
        .await
        .expect("answer")
        .expect("ok")
        .expect("open");
    assert_eq!(a.ttl, 5, "the new leader renews the lease");
    c.heal(leader);
    // The healed old leader must not have revoked the live lease.
    let r = KvClient::new(channel(c.client_url(i)))
        .range(RangeRequest {
            key: "/held".into(),
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(
        r.kvs.len(),
        1,
        "lease kept alive through the new leader survives"
    );
    c.shutdown().await;
}
