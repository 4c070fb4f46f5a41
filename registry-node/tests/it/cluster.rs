//! Raft behaviour of an in-process three-member cluster: leader failover without losing
//! acknowledged writes, full restarts, a member catching up (also through a snapshot), and
//! etcd's errors for bad input.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::*;
use registry_node::testing::TestCluster;
use tonic::transport::Channel;
use tonic::Code;

const LEADER_WAIT: Duration = Duration::from_secs(20);

async fn client(url: String) -> KvClient<Channel> {
    let ch = Channel::from_shared(url).expect("url").connect_lazy();
    KvClient::new(ch)
}

fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Everything under `prefix` as key → (value, create, mod, version), read from member `i`.
async fn dump(
    c: &TestCluster,
    i: usize,
    prefix: &str,
    serializable: bool,
) -> BTreeMap<String, (String, i64, i64, i64)> {
    let mut kv = client(c.client_url(i)).await;
    let resp = kv
        .range(RangeRequest {
            key: prefix.into(),
            range_end: prefix_end(prefix.as_bytes()),
            serializable,
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    resp.kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                (
                    String::from_utf8_lossy(&kv.value).into_owned(),
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_keeps_acknowledged_writes() {
    let mut c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");

    // --- writes through every member, all acknowledged
    let mut acked = Vec::new();
    for n in 0..30 {
        let mut kv = client(c.client_url(n % 3)).await;
        let key = format!("/k/{n:03}");
        kv.put(put_req(&key, "v"))
            .await
            .expect("put before failover");
        acked.push(key);
    }

    // --- kill the leader
    c.stop(leader).await;
    let new_leader = c
        .wait_for_leader(LEADER_WAIT)
        .await
        .expect("a new leader is elected");
    assert_ne!(new_leader, leader);

    // --- writes through any surviving member succeed again
    for i in (0..3).filter(|i| *i != leader) {
        let mut kv = client(c.client_url(i)).await;
        for n in 0..10 {
            let key = format!("/k/after-{i}-{n}");
            kv.put(put_req(&key, "v"))
                .await
                .expect("put after failover");
            acked.push(key);
        }
    }

    // --- no acknowledged write is missing, on any surviving member
    for i in (0..3).filter(|i| *i != leader) {
        let all = dump(&c, i, "/k/", false).await;
        for key in &acked {
            assert!(all.contains_key(key), "member {i} lost acknowledged {key}");
        }
    }

    // --- the old leader comes back and catches up
    c.restart(leader).await;
    let want = dump(&c, new_leader, "/k/", false).await;
    common::wait_for("old leader to catch up", Duration::from_secs(20), || {
        let c = &c;
        let want = &want;
        async move { (dump(c, leader, "/k/", true).await == *want).then_some(()) }
    })
    .await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_restart_keeps_keys_revisions_and_versions() {
    let mut c = TestCluster::start(3).await;
    c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let mut kv = client(c.client_url(0)).await;
    for n in 0..20 {
        kv.put(put_req(&format!("/r/{}", n % 7), &format!("v{n}")))
            .await
            .expect("put");
    }
    kv.delete_range(DeleteRangeRequest {
        key: "/r/3".into(),
        ..Default::default()
    })
    .await
    .expect("delete");
    let before = dump(&c, 0, "/r/", false).await;
    let rev_before = kv
        .range(RangeRequest {
            key: "/r/0".into(),
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner()
        .header
        .expect("header")
        .revision;

    // --- stop all three, start them again
    for i in 0..3 {
        c.stop(i).await;
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    c.wait_for_leader(LEADER_WAIT)
        .await
        .expect("leader after restart");
    for i in 0..3 {
        assert_eq!(
            dump(&c, i, "/r/", false).await,
            before,
            "member {i} after restart"
        );
    }
    let mut kv = client(c.client_url(1)).await;
    let resp = kv
        .put(put_req("/r/new", "x"))
        .await
        .expect("put after restart")
        .into_inner();
    assert_eq!(
        resp.header.expect("header").revision,
        rev_before + 1,
        "revision continues"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_member_catches_up_through_a_snapshot() {
    let mut c = TestCluster::start_with(3, |r| {
        r.snapshot_logs = 50;
        r.logs_to_keep = 5;
    })
    .await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let lagger = (leader + 1) % 3;
    let lagger_last = c.node(lagger).raft_status().last_log_index.unwrap_or(0);
    c.stop(lagger).await;

    // --- writes continue while the member is down, past several snapshots
    let mut kv = client(c.client_url(leader)).await;
    for n in 0..300 {
        kv.put(put_req(&format!("/s/{n:04}"), "v"))
            .await
            .expect("put");
    }
    let purged = common::wait_for("leader to purge its log", Duration::from_secs(20), || {
        let purged = c.node(leader).raft_status().purged;
        async move { purged.filter(|p| *p > lagger_last + 5) }
    })
    .await;
    assert!(
        purged > lagger_last,
        "the log the lagger needs is gone: only a snapshot helps"
    );

    // --- it returns and catches up
    c.restart(lagger).await;
    let want = dump(&c, leader, "/s/", false).await;
    assert_eq!(want.len(), 300);
    common::wait_for(
        "lagging member to catch up",
        Duration::from_secs(30),
        || {
            let c = &c;
            let want = &want;
            async move { (dump(c, lagger, "/s/", true).await == *want).then_some(()) }
        },
    )
    .await;
    let snap = c.node(lagger).raft_status().snapshot;
    assert!(
        snap.is_some_and(|s| s > lagger_last),
        "lagger holds a snapshot: {snap:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_follower_serves_no_stale_linearizable_reads() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let follower = (leader + 1) % 3;
    c.isolate(follower);
    let mut kv = client(c.client_url(leader)).await;
    kv.put(put_req("/lin", "new"))
        .await
        .expect("put while a follower is cut off");
    // The cut-off member must not answer a linearizable read from its stale state.
    let mut fkv = client(c.client_url(follower)).await;
    let mut req = tonic::Request::new(RangeRequest {
        key: "/lin".into(),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(3));
    match fkv.range(req).await {
        Ok(r) => {
            let r = r.into_inner();
            assert_eq!(
                r.kvs.first().map(|kv| kv.value.clone()),
                Some(b"new".to_vec()),
                "stale read"
            );
        }
        Err(s) => assert_eq!(s.code(), Code::Unavailable, "{s:?}"),
    }
    c.heal(follower);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_etcds_errors() {
    let c = TestCluster::start(3).await;
    c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let mut kv = client(c.client_url(2)).await;

    let e = kv.put(put_req("", "v")).await.expect_err("empty key");
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let e = kv
        .range(RangeRequest::default())
        .await
        .expect_err("empty key range");
    assert_eq!(e.code(), Code::InvalidArgument);

    kv.put(put_req("a", "1")).await.expect("put");
    let e = kv
        .range(RangeRequest {
            key: "a".into(),
            revision: 1_000,
            ..Default::default()
        })
        .await
        .expect_err("future revision");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision"
        )
    );
    // A range whose end is before its start is empty, as in etcd.
    let r = kv
        .range(RangeRequest {
            key: "b".into(),
            range_end: "a".into(),
            ..Default::default()
        })
        .await
        .expect("backwards range")
        .into_inner();
    assert!(r.kvs.is_empty());

    let many: Vec<RequestOp> = (0..129)
        .map(|n| RequestOp {
            request: Some(request_op::Request::RequestPut(put_req(
                &format!("t{n}"),
                "v",
            ))),
        })
        .collect();
    let e = kv
        .txn(TxnRequest {
            success: many,
            ..Default::default()
        })
        .await
        .expect_err("too many ops");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
    let dup = vec![
        RequestOp {
            request: Some(request_op::Request::RequestPut(put_req("d", "1"))),
        },
        RequestOp {
            request: Some(request_op::Request::RequestPut(put_req("d", "2"))),
        },
    ];
    let e = kv
        .txn(TxnRequest {
            success: dup,
            ..Default::default()
        })
        .await
        .expect_err("dup");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request"
        )
    );
    let e = kv
        .put(PutRequest {
            key: "l".into(),
            lease: 12345,
            ..Default::default()
        })
        .await
        .expect_err("unknown lease");
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    let big = vec![b'x'; 1_600_000];
    let e = kv
        .put(PutRequest {
            key: "big".into(),
            value: big,
            ..Default::default()
        })
        .await
        .expect_err("too large");
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: request is too large")
    );
    // Over the wire limit (max request bytes + 512 KiB): refused before it is decoded.
    let e = kv
        .put(PutRequest {
            key: "bigger".into(),
            value: vec![b'x'; 3_000_000],
            ..Default::default()
        })
        .await
        .expect_err("over the message limit");
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("message length too large"), "{e:?}");

    kv.compact(CompactionRequest {
        revision: 2,
        ..Default::default()
    })
    .await
    .expect("compact");
    let e = kv
        .range(RangeRequest {
            key: "a".into(),
            revision: 1,
            ..Default::default()
        })
        .await
        .expect_err("compacted");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )
    );
    // Nothing above disturbed the store: one put of "a", revision 2.
    let r = kv
        .range(RangeRequest {
            key: "a".into(),
            ..Default::default()
        })
        .await
        .expect("range");
    let r = r.into_inner();
    assert_eq!(r.kvs.len(), 1);
    assert_eq!(r.header.expect("header").revision, 2);
    c.shutdown().await;
}
