//! The backend quota and the NOSPACE alarm: past `quota_backend_bytes` writes fail with etcd's
//! `database space exceeded`, every member lists the alarm (it went through Raft), deletes
//! and compaction still work, and after `etcdctl compact`, `defrag` and `alarm disarm` writes
//! pass again. A real etcd with a tiny quota answers the same texts.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{etcdctl, etcdctl_ok, free_port, wait_for};
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::PutRequest;
use registry_node::testing::TestCluster;

const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

/// Puts 1 KiB values until one fails; returns the status of the failure.
async fn fill(url: String) -> tonic::Status {
    let mut kv = KvClient::connect(url).await.expect("connect");
    for i in 0..10_000 {
        let put = PutRequest {
            key: format!("fill/{i}").into_bytes(),
            value: vec![b'x'; 1024],
            ..Default::default()
        };
        if let Err(status) = kv.put(put).await {
            return status;
        }
    }
    panic!("10,000 puts of 1 KiB passed a 64 KiB quota");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_quota_writes_fail_until_disarmed() {
    let cluster = TestCluster::start_with(3, |r| r.quota_backend_bytes = 64 * 1024).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let eps = cluster.endpoints();
    let failed = fill(cluster.client_url((leader + 1) % 3)).await;
    assert_eq!(failed.code(), tonic::Code::ResourceExhausted);
    assert_eq!(failed.message(), NO_SPACE);
    let leader_id = cluster.config(leader).id;
    let expected = format!("memberID:{leader_id} alarm:NOSPACE");
    for ep in &eps {
        let listed = etcdctl_ok(std::slice::from_ref(ep), &["alarm", "list"]).await;
        assert_eq!(listed.trim(), expected, "alarm list on {ep}");
    }
    let put = etcdctl(&eps, &["put", "k", "v"], None).await;
    assert!(!put.ok && put.stderr.contains(NO_SPACE), "{}", put.stderr);
    let grant = etcdctl(&eps, &["lease", "grant", "60"], None).await;
    assert!(
        !grant.ok && grant.stderr.contains(NO_SPACE),
        "{}",
        grant.stderr
    );
    // Space can be freed while the alarm is raised.
    etcdctl_ok(&eps, &["del", "fill/", "--prefix"]).await;
    let status = etcdctl_ok(&eps[..1], &["endpoint", "status", "-w", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&status).expect("json");
    let revision = v[0]["Status"]["header"]["revision"].to_string();
    etcdctl_ok(&eps, &["compact", &revision]).await;
    etcdctl_ok(&eps, &["defrag"]).await;
    let disarmed = etcdctl_ok(&eps, &["alarm", "disarm"]).await;
    assert_eq!(disarmed.trim(), expected);
    for ep in &eps {
        wait_for("the alarm gone everywhere", Duration::from_secs(10), || {
            let ep = ep.clone();
            async move {
                let listed = etcdctl_ok(&[ep], &["alarm", "list"]).await;
                listed.trim().is_empty().then_some(())
            }
        })
        .await;
    }
    etcdctl_ok(&eps, &["put", "k", "v"]).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_answers_the_same_texts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, peer) = (free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let _etcd = tokio::process::Command::new("etcd")
        .arg("--name=e0")
        .arg(format!("--data-dir={}", dir.path().join("etcd").display()))
        .arg(format!("--listen-client-urls={endpoint}"))
        .arg(format!("--advertise-client-urls={endpoint}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=e0={peer_url}"))
        // Below the size of an empty bolt file: the first write raises NOSPACE.
        .arg("--quota-backend-bytes=1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("etcd is installed");
    let eps = vec![endpoint];
    wait_for("etcd to answer", Duration::from_secs(20), || {
        let eps = eps.clone();
        async move {
            etcdctl(&eps, &["endpoint", "health"], None)
                .await
                .ok
                .then_some(())
        }
    })
    .await;
    let put = etcdctl(&eps, &["put", "k", "v"], None).await;
    assert!(!put.ok && put.stderr.contains(NO_SPACE), "{}", put.stderr);
    let listed = etcdctl_ok(&eps, &["alarm", "list"]).await;
    assert!(
        listed.trim().starts_with("memberID:") && listed.trim().ends_with(" alarm:NOSPACE"),
        "{listed}"
    );
    let disarmed = etcdctl_ok(&eps, &["alarm", "disarm"]).await;
    assert_eq!(disarmed, listed);
}
