//! `etcdctl endpoint hashkv`, `etcdctl defrag` and Maintenance.Hash against three members of
//! ours, beside a real etcd: every member at the same revision gives the same HashKV, a
//! write changes it, a compacted revision is refused as etcd refuses it.

use std::time::Duration;

use crate::common::{etcdctl, etcdctl_ok, wait_for, RealEtcd};
use registry_node::testing::TestCluster;

/// `url, hash` lines of `etcdctl endpoint hashkv` as (url, hash).
fn hashes(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (url, hash) = l
                .split_once(", ")
                .unwrap_or_else(|| panic!("a hashkv line: {l}"));
            (url.to_owned(), hash.trim().parse().expect("a hash"))
        })
        .collect()
}

/// Waits until every member reports the same HashKV at the current revision; returns it.
async fn agreed_hash(eps: &[String]) -> u64 {
    wait_for(
        "every member's hashkv to agree",
        Duration::from_secs(10),
        || {
            let eps = eps.to_vec();
            async move {
                let out = etcdctl(&eps, &["endpoint", "hashkv"], None).await;
                let all = hashes(&out.stdout);
                (out.ok && all.len() == eps.len() && all.iter().all(|(_, h)| *h == all[0].1))
                    .then(|| all[0].1)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hashkv_agrees_across_members_and_defrag_answers_as_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = RealEtcd::start(dir.path()).await;
    let cluster = TestCluster::start(3).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let eps = cluster.endpoints();
    let etcd_eps = vec![etcd.endpoint.clone()];
    for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
        etcdctl_ok(&eps, &["put", k, v]).await;
        etcdctl_ok(&etcd_eps, &["put", k, v]).await;
    }
    let first = agreed_hash(&eps).await;
    etcdctl_ok(&eps, &["put", "c", "4"]).await;
    let second = agreed_hash(&eps).await;
    assert_ne!(first, second, "a write changes the hash");
    // The hash of an older revision stays what it was.
    let at4 = etcdctl_ok(&eps, &["endpoint", "hashkv", "--rev=4"]).await;
    assert!(hashes(&at4).iter().all(|(_, h)| *h == first), "{at4}");

    // Same shape of answers as etcd's (urls and numbers aside).
    let theirs = etcdctl_ok(&etcd_eps, &["endpoint", "hashkv"]).await;
    assert_eq!(hashes(&theirs).len(), 1);
    let ours = etcdctl_ok(&eps[..1], &["defrag"]).await;
    let etcds = etcdctl_ok(&etcd_eps, &["defrag"]).await;
    assert_eq!(
        ours.replace(&eps[0], "URL"),
        etcds.replace(&etcd.endpoint, "URL"),
        "defrag's answer"
    );
    assert_eq!(
        ours.trim(),
        format!("Finished defragmenting etcd member[{}]", eps[0])
    );
    etcdctl_ok(&eps, &["compact", "4"]).await;
    etcdctl_ok(&etcd_eps, &["compact", "3"]).await;
    let refused = etcdctl(&eps[..1], &["endpoint", "hashkv", "--rev=2"], None).await;
    let refused_etcd = etcdctl(&etcd_eps, &["endpoint", "hashkv", "--rev=2"], None).await;
    assert!(!refused.ok && !refused_etcd.ok);
    assert!(
        refused
            .stderr
            .contains("required revision has been compacted"),
        "{}",
        refused.stderr
    );
    assert!(refused_etcd
        .stderr
        .contains("required revision has been compacted"));
    // Compaction drops history, so the hash changes, the same on every member; the JSON
    // answer carries the compact revision, as etcd's.
    let compacted = agreed_hash(&eps).await;
    assert_ne!(compacted, second);
    let json = etcdctl_ok(&eps[..1], &["endpoint", "hashkv", "-w", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v[0]["HashKV"]["compact_revision"], 4, "{json}");
    assert_eq!(v[0]["HashKV"]["hash"], compacted);
    cluster.shutdown().await;
}

/// Times member `i` answered HashKV, from its `/metrics`.
async fn hashkv_answered(url: &str) -> f64 {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("{url}/metrics")])
        .kill_on_drop(true)
        .output()
        .await
        .expect("curl runs");
    let page = String::from_utf8_lossy(&out.stdout).into_owned();
    page.lines()
        .filter(|l| {
            l.starts_with("grpc_server_handled_total") && l.contains("grpc_method=\"HashKV\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn periodic_corruption_check_asks_every_member_and_finds_none() {
    let cluster = TestCluster::start_with(3, |r| r.corrupt_check_ms = 100).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let eps = cluster.endpoints();
    for i in 0..20 {
        etcdctl_ok(&eps, &["put", &format!("k{i}"), "v"]).await;
    }
    // Each follower is asked, several times, while writes come and go.
    for i in (0..3).filter(|&i| i != leader) {
        let url = cluster.client_url(i);
        wait_for(
            "the leader's HashKV checks",
            Duration::from_secs(10),
            || {
                let url = url.clone();
                async move { (hashkv_answered(&url).await >= 3.0).then_some(()) }
            },
        )
        .await;
    }
    let listed = etcdctl_ok(&eps, &["alarm", "list"]).await;
    assert_eq!(listed.trim(), "", "no CORRUPT alarm on a healthy cluster");
    cluster.shutdown().await;
}
