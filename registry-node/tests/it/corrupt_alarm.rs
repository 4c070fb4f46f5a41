//! The CORRUPT alarm's consequences, as etcd 3.4's `applierV3Corrupt`: once raised (here
//! through `Maintenance.Alarm`, the request the periodic corruption check proposes), every
//! write through Raft fails with `etcdserver: corrupt cluster` (DATA_LOSS): put, del, a txn
//! that writes, compaction, lease grant and revoke; reads, read-only txns, keep-alives and
//! TTLs still answer, every member lists the alarm, and after `etcdctl alarm disarm` writes
//! pass again. The same script runs against a real etcd 3.4 and must print the same.

use std::time::Duration;

use crate::common::{etcdctl, etcdctl_ok, wait_for, RealEtcd};
use proto::etcdserverpb::alarm_request::AlarmAction;
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::maintenance_client::MaintenanceClient;
use proto::etcdserverpb::{AlarmRequest, AlarmType, PutRequest, StatusRequest};
use registry_node::testing::TestCluster;

const CORRUPT: &str = "etcdserver: corrupt cluster";

/// What one etcdctl command did: succeeded, or the last line it printed on stderr.
#[derive(Debug, PartialEq)]
enum Seen {
    Ok,
    Failed(String),
}

async fn run(eps: &[String], args: &[&str], stdin: Option<&str>) -> Seen {
    let out = etcdctl(eps, args, stdin).await;
    if out.ok {
        Seen::Ok
    } else {
        Seen::Failed(out.stderr.trim().lines().last().unwrap_or("").to_owned())
    }
}

/// The member id the endpoint answers with.
async fn member_id(url: &str) -> u64 {
    let mut m = MaintenanceClient::connect(url.to_owned())
        .await
        .expect("connect");
    let s = m
        .status(StatusRequest {})
        .await
        .expect("status")
        .into_inner();
    s.header.expect("a header").member_id
}

/// Raises CORRUPT against `member` through `url`, as the corruption check does.
async fn raise(url: &str, member: u64) {
    let mut m = MaintenanceClient::connect(url.to_owned())
        .await
        .expect("connect");
    let req = AlarmRequest {
        action: AlarmAction::Activate as i32,
        member_id: member,
        alarm: AlarmType::Corrupt as i32,
    };
    let listed = m.alarm(req).await.expect("alarm raised").into_inner();
    assert_eq!(listed.alarms.len(), 1, "{listed:?}");
}

/// The whole script against one cluster: `write_eps` for the commands (ours: a follower, so
/// the refusals come back through forwarding), `all_eps` for the alarm list on every member.
/// Returns the transcript, lease ids left out so both sides compare.
async fn script(write_eps: &[String], all_eps: &[String], url: &str) -> Vec<(String, Seen)> {
    etcdctl_ok(write_eps, &["put", "a", "1"]).await;
    let granted = etcdctl_ok(write_eps, &["lease", "grant", "60"]).await;
    let lease = granted
        .split_whitespace()
        .nth(1)
        .expect("lease <id> granted ...")
        .to_owned();
    let member = member_id(url).await;
    raise(url, member).await;
    let expected = format!("memberID:{member} alarm:CORRUPT");
    for ep in all_eps {
        wait_for(
            "CORRUPT listed on every member",
            Duration::from_secs(10),
            || {
                let (ep, expected) = (ep.clone(), expected.clone());
                async move {
                    let listed = etcdctl_ok(&[ep], &["alarm", "list"]).await;
                    (listed.trim() == expected).then_some(())
                }
            },
        )
        .await;
    }
    let commands: [(&str, Vec<&str>, Option<&str>); 11] = [
        ("put", vec!["put", "k", "v"], None),
        ("del", vec!["del", "a"], None),
        ("txn put", vec!["txn"], Some("\nput t 1\n\n\n")),
        ("compaction", vec!["compaction", "1"], None),
        ("lease grant", vec!["lease", "grant", "60"], None),
        ("lease revoke", vec!["lease", "revoke", &lease], None),
        ("get", vec!["get", "a"], None),
        (
            "get serializable",
            vec!["get", "a", "--consistency=s"],
            None,
        ),
        ("txn get", vec!["txn"], Some("\nget a\n\n\n")),
        (
            "keep-alive",
            vec!["lease", "keep-alive", "--once", &lease],
            None,
        ),
        ("timetolive", vec!["lease", "timetolive", &lease], None),
    ];
    let mut seen = Vec::new();
    for (name, args, stdin) in commands {
        seen.push((name.to_owned(), run(write_eps, &args, stdin).await));
    }
    // The gRPC code, as a client library sees it.
    let mut kv = KvClient::connect(url.to_owned()).await.expect("connect");
    let put = PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let status = kv.put(put).await.expect_err("put refused");
    seen.push((
        "grpc put".into(),
        Seen::Failed(format!("{:?}: {}", status.code(), status.message())),
    ));
    let disarmed = etcdctl_ok(write_eps, &["alarm", "disarm"]).await;
    assert_eq!(disarmed.trim(), expected);
    seen.push((
        "put after disarm".into(),
        run(write_eps, &["put", "k", "v"], None).await,
    ));
    seen.push((
        "lease revoke after disarm".into(),
        run(write_eps, &["lease", "revoke", &lease], None).await,
    ));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_refuses_writes_until_disarmed_as_etcd() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let follower = cluster.client_url((leader + 1) % 3);
    let ours = script(
        std::slice::from_ref(&follower),
        &cluster.endpoints(),
        &follower,
    )
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = RealEtcd::start(dir.path()).await;
    let eps = vec![etcd.endpoint.clone()];
    let theirs = script(&eps, &eps, &etcd.endpoint).await;
    assert_eq!(ours, theirs, "ours (left), etcd 3.4 (right)");

    for (name, seen) in &ours[..6] {
        assert!(
            matches!(seen, Seen::Failed(e) if e.starts_with("Error: ") && e.contains(CORRUPT)),
            "{name} is refused: {seen:?}"
        );
    }
    for (name, seen) in &ours[6..11] {
        assert_eq!(seen, &Seen::Ok, "{name} is served");
    }
    assert_eq!(ours[11].1, Seen::Failed(format!("DataLoss: {CORRUPT}")));
    assert_eq!(ours[12].1, Seen::Ok);
    assert_eq!(ours[13].1, Seen::Ok);
    cluster.shutdown().await;
}
