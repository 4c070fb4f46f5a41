//! Linearizable reads through followers (etcd's ReadIndex): a follower asks the leader for a
//! read index, waits until it has applied that far and serves the read from its own store.
//! Read-your-writes holds across members, the read is served locally (counted, not timed),
//! and a member cut off from the leader gives no stale answer.

use std::time::Duration;

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::*;
use registry_node::testing::TestCluster;
use tonic::transport::Channel;
use tonic::Code;

const LEADER_WAIT: Duration = Duration::from_secs(20);

fn client(url: String) -> KvClient<Channel> {
    KvClient::new(Channel::from_shared(url).expect("url").connect_lazy())
}

fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

fn get_req(k: &str) -> tonic::Request<RangeRequest> {
    let mut req = tonic::Request::new(RangeRequest {
        key: k.into(),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(10));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_serves_linearizable_reads_from_its_own_store() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let follower = (leader + 1) % 3;
    let mut lkv = client(c.client_url(leader));
    let mut fkv = client(c.client_url(follower));
    let before_f = c.node(follower).read_counts();
    let before_l = c.node(leader).read_counts();
    const N: u64 = 40;
    for i in 0..N {
        let put = lkv
            .put(put_req("/fr/key", &format!("v{i}")))
            .await
            .expect("put on the leader")
            .into_inner();
        let put_rev = put.header.expect("header").revision;
        let got = fkv
            .range(get_req("/fr/key"))
            .await
            .expect("linearizable read on a follower")
            .into_inner();
        let kv = got.kvs.first().expect("key present");
        assert_eq!(kv.value, format!("v{i}").into_bytes(), "read {i} is stale");
        assert_eq!(kv.mod_revision, put_rev);
        assert!(got.header.expect("header").revision >= put_rev);
    }
    let after_f = c.node(follower).read_counts();
    let after_l = c.node(leader).read_counts();
    assert_eq!(after_f.local - before_f.local, N, "{after_f:?}");
    assert_eq!(after_f.forwarded, before_f.forwarded, "{after_f:?}");
    assert!(after_f.read_index_sent > before_f.read_index_sent);
    assert!(after_l.read_index_served > before_l.read_index_served);
    // The leader confirmed leadership for the follower but served none of the reads.
    assert_eq!(after_l.local, before_l.local, "{after_l:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_see_writes_acknowledged_by_any_other_member() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let before: Vec<_> = (0..3).map(|i| c.node(i).read_counts()).collect();
    const TASKS: usize = 12;
    const ROUNDS: usize = 25;
    let clients: Vec<KvClient<Channel>> = (0..3).map(|i| client(c.client_url(i))).collect();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let clients = clients.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("/ryw/{t}");
            for i in 0..ROUNDS {
                // Written through one member, read through another (either may be a follower).
                let w = (t + i) % 3;
                let r = (t + i + 1 + i % 2) % 3;
                let value = format!("{t}-{i}");
                let put = clients[w]
                    .clone()
                    .put(put_req(&key, &value))
                    .await
                    .unwrap_or_else(|e| panic!("put {key} via {w}: {e:?}"))
                    .into_inner();
                let rev = put.header.expect("header").revision;
                let got = clients[r]
                    .clone()
                    .range(get_req(&key))
                    .await
                    .unwrap_or_else(|e| panic!("get {key} via {r}: {e:?}"))
                    .into_inner();
                let kv = got
                    .kvs
                    .first()
                    .unwrap_or_else(|| panic!("{key} missing via {r}"));
                assert_eq!(
                    String::from_utf8_lossy(&kv.value),
                    value,
                    "stale read of {key} via member {r} after a write via {w}"
                );
                assert_eq!(kv.mod_revision, rev);
            }
        }));
    }
    for t in tasks {
        t.await.expect("reader task");
    }
    let after: Vec<_> = (0..3).map(|i| c.node(i).read_counts()).collect();
    let total: u64 = (0..3).map(|i| after[i].local - before[i].local).sum();
    let forwarded: u64 = (0..3)
        .map(|i| after[i].forwarded - before[i].forwarded)
        .sum();
    assert_eq!(total + forwarded, (TASKS * ROUNDS) as u64);
    // Reads are served by the member they reached, followers included (a read is carried
    // to the leader only as a fallback, e.g. a follower stalled for an election timeout on
    // an overloaded machine).
    assert!(forwarded * 10 <= total, "{after:?}");
    for f in (0..3).filter(|i| *i != leader) {
        assert!(after[f].local > before[f].local, "follower {f}: {after:?}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cut_off_follower_serves_no_linearizable_read_from_its_stale_store() {
    // Slow elections so that the cut-off member keeps believing in the old leader meanwhile.
    let c = TestCluster::start_with(3, |r| {
        r.heartbeat_ms = 100;
        r.election_timeout_ms = 3_000;
    })
    .await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let follower = (leader + 1) % 3;
    let mut lkv = client(c.client_url(leader));
    lkv.put(put_req("/cut", "old")).await.expect("put old");
    let mut fkv = client(c.client_url(follower));
    let first = fkv.range(get_req("/cut")).await.expect("read").into_inner();
    assert_eq!(first.kvs[0].value, b"old");
    c.isolate(follower);
    lkv.put(put_req("/cut", "new")).await.expect("put new");
    let before = c.node(follower).read_counts();
    // Linearizable reads on the cut-off member: either fresh (carried to the leader) or an
    // error, never the old value from its own store.
    for _ in 0..5 {
        let mut req = get_req("/cut");
        req.set_timeout(Duration::from_secs(2));
        match fkv.range(req).await {
            Ok(r) => assert_eq!(r.into_inner().kvs[0].value, b"new", "stale read"),
            Err(s) => assert_eq!(s.code(), Code::Unavailable, "{s:?}"),
        }
    }
    let after = c.node(follower).read_counts();
    assert_eq!(
        after.local, before.local,
        "served locally while cut off: {after:?}"
    );
    // A serializable read is local and may be stale; that is what it promises.
    let mut req = get_req("/cut");
    req.get_mut().serializable = true;
    let s = fkv
        .range(req)
        .await
        .expect("serializable read")
        .into_inner();
    assert_eq!(s.kvs[0].value, b"old");
    c.heal(follower);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lone_member_answers_linearizable_reads_with_etcds_errors() {
    let mut c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let survivor = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut skv = client(c.client_url(survivor));
    client(c.client_url(leader))
        .put(put_req("/lone", "v"))
        .await
        .expect("put");
    // A follower read works while the cluster is whole.
    let got = skv
        .range(get_req("/lone"))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(got.kvs[0].value, b"v");
    c.stop(leader).await;
    c.stop(other).await;
    // No quorum: no linearizable read, whether the survivor still believes in the old leader
    // or already knows there is none; the answer is one of etcd's errors, in time.
    for _ in 0..3 {
        let mut req = get_req("/lone");
        req.set_timeout(Duration::from_secs(2));
        let err = tokio::time::timeout(Duration::from_secs(5), skv.range(req))
            .await
            .expect("an answer within 5 s of a 2 s deadline")
            .expect_err("a linearizable read without a quorum");
        // The member keeps trying until the deadline; then either its own answer or tonic's
        // enforcement of `grpc-timeout` (CANCELLED) arrives first. Go clients enforce the
        // deadline themselves and see DEADLINE_EXCEEDED, as with etcd.
        assert!(
            matches!(
                err.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
            ),
            "{err:?}"
        );
        if err.code() == Code::Unavailable {
            assert!(
                err.message() == "etcdserver: no leader"
                    || err.message() == "etcdserver: request timed out"
                    || err.message() == "etcdserver: leader changed",
                "{err:?}"
            );
        }
    }
    // Serializable reads are still served from the survivor's store.
    let mut req = get_req("/lone");
    req.get_mut().serializable = true;
    let s = skv.range(req).await.expect("serializable").into_inner();
    assert_eq!(s.kvs[0].value, b"v");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_sends_concurrent_writes_to_the_leader_in_batches() {
    let c = TestCluster::start(3).await;
    let leader = c
        .wait_for_leader(Duration::from_secs(20))
        .await
        .expect("leader");
    let follower = (leader + 1) % 3;
    let before = c.node(follower).forward_counts();
    // 200 puts through the follower, 50 at a time.
    let url = c.client_url(follower);
    let revs = futures::future::join_all((0..4).map(|t| {
        let url = url.clone();
        async move {
            let mut kv = client(url);
            let mut revs = Vec::new();
            for n in 0..50 {
                let r = kv
                    .put(put_req(&format!("/fw/{t}/{n:02}"), "v"))
                    .await
                    .expect("put through the follower")
                    .into_inner();
                revs.push(r.header.expect("header").revision);
            }
            revs
        }
    }))
    .await;
    let mut all: Vec<i64> = revs.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 200, "every put got its own revision");
    let after = c.node(follower).forward_counts();
    assert_eq!(
        after.writes - before.writes,
        200,
        "every put went over the peer link"
    );
    assert!(after.calls > before.calls, "{before:?} -> {after:?}");
    // The leader has them all.
    let got = client(c.client_url(leader))
        .range(RangeRequest {
            key: b"/fw/".to_vec(),
            range_end: b"/fw0".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await
        .expect("count")
        .into_inner()
        .count;
    assert_eq!(got, 200);
    // A Txn and a delete go the same way and answer like the leader would.
    let mut kv = client(url);
    let d = kv
        .delete_range(DeleteRangeRequest {
            key: b"/fw/0/".to_vec(),
            range_end: b"/fw/00".to_vec(),
            ..Default::default()
        })
        .await
        .expect("delete through the follower")
        .into_inner();
    assert_eq!(d.deleted, 50);
    let e = kv
        .put(PutRequest {
            key: b"/fw/x".to_vec(),
            value: b"v".to_vec(),
            lease: 12345,
            ..Default::default()
        })
        .await
        .expect_err("unknown lease");
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(e.message(), "etcdserver: requested lease not found");
    c.shutdown().await;
}
