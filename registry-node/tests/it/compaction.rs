//! Auto-compaction as etcd's `--auto-compaction-mode periodic`: the leader compacts the
//! history older than the retention, so a read at an old revision gets etcd's "compacted"
//! answer on every member while the current value stays.

use std::time::Duration;

use crate::common::wait_for;
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::{PutRequest, RangeRequest};
use registry_node::testing::TestCluster;
use registry_node::CompactionSection;
use registry_node::RaftSection;
use tonic::transport::Channel;
use tonic::Code;

fn kv(url: String) -> KvClient<Channel> {
    KvClient::new(Channel::from_shared(url).expect("url").connect_lazy())
}

async fn put(kv: &mut KvClient<Channel>, value: &str) -> i64 {
    kv.put(PutRequest {
        key: b"/compact/k".to_vec(),
        value: value.as_bytes().to_vec(),
        ..Default::default()
    })
    .await
    .expect("put")
    .into_inner()
    .header
    .map_or(0, |h| h.revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn periodic_auto_compaction_drops_history_older_than_the_retention() {
    let compaction = CompactionSection {
        mode: "periodic".into(),
        retention: "2s".into(),
    };
    let c = TestCluster::start_configured(3, RaftSection::default(), compaction).await;
    let leader = c
        .wait_for_leader(Duration::from_secs(20))
        .await
        .expect("leader");
    let mut writer = kv(c.client_url((leader + 1) % 3));
    let first = put(&mut writer, "v0").await;
    let old_read = RangeRequest {
        key: b"/compact/k".to_vec(),
        revision: first,
        ..Default::default()
    };
    assert_eq!(
        writer
            .range(old_read.clone())
            .await
            .expect("history kept")
            .into_inner()
            .kvs[0]
            .value,
        b"v0"
    );
    // Writes go on; within a few retentions the revision of the first is compacted away.
    let mut n = 0;
    wait_for("auto-compaction", Duration::from_secs(30), || {
        n += 1;
        let (mut w, req) = (writer.clone(), old_read.clone());
        async move {
            put(&mut w, &format!("v{n}")).await;
            match w.range(req).await {
                Err(s) if s.code() == Code::OutOfRange => Some(s),
                _ => None,
            }
        }
    })
    .await;
    for i in 0..3 {
        let mut r = kv(c.client_url(i));
        let err = r.range(old_read.clone()).await.expect_err("compacted");
        assert_eq!(
            (err.code(), err.message()),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted"
            ),
            "member {i}"
        );
        let now = r
            .range(RangeRequest {
                key: b"/compact/k".to_vec(),
                ..Default::default()
            })
            .await
            .expect("current value")
            .into_inner();
        assert_eq!(now.kvs.len(), 1, "member {i}");
    }
    c.shutdown().await;
}
