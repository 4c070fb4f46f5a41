//! `/version`, `/health`, `/livez`, `/readyz`, `/metrics` and grpc.health.v1 on the client
//! port, beside a real etcd 3.4 where it serves them; an isolated member reports no leader.

use crate::common;

use std::time::Duration;

use crate::common::{wait_for, RealEtcd};
use registry_node::testing::TestCluster;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

async fn get(url: &str) -> (u16, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", url])
        .kill_on_drop(true)
        .output()
        .await
        .expect("curl is installed (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl printed the status");
    (code.parse().expect("a status code"), body.to_owned())
}

/// The value of an unlabelled metric in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn grpc_health(url: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("a URL")
        .connect()
        .await
        .ok()?;
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(answer.into_inner().status).ok()
}

/// etcd's metric names that ours serve with the same meaning.
const SHARED: &[&str] = &[
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_disk_wal_fsync_duration_seconds_count",
    "etcd_disk_wal_fsync_duration_seconds_sum",
];

const FSYNC_COUNT: &str = "etcd_disk_wal_fsync_duration_seconds_count";

/// The `le` bounds of a histogram's buckets, in page order.
fn bucket_bounds(page: &str, name: &str) -> Vec<String> {
    let prefix = format!("{name}_bucket{{le=\"");
    page.lines()
        .filter_map(|l| Some(l.strip_prefix(&prefix)?.split_once('"')?.0.to_owned()))
        .collect()
}

/// The WAL fsync count of each page at `urls`.
async fn fsync_counts(urls: &[String]) -> Vec<f64> {
    let mut out = Vec::new();
    for u in urls {
        let page = get(&format!("{u}/metrics")).await.1;
        out.push(metric(&page, FSYNC_COUNT).expect("the fsync count is served"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn probes_and_metrics_as_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = RealEtcd::start(dir.path()).await;
    let cluster = TestCluster::start(3).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let ours = cluster.client_url(0);
    for path in ["/version", "/health"] {
        let theirs = get(&format!("{}{path}", etcd.endpoint)).await;
        let mine = get(&format!("{ours}{path}")).await;
        assert_eq!(theirs, mine, "{path}: etcd (left), ours (right)");
    }
    assert_eq!(
        get(&format!("{ours}/version")).await.1,
        r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#
    );
    // etcd 3.5's probes (3.4 has none).
    assert_eq!(get(&format!("{ours}/livez")).await, (200, "ok".into()));
    assert_eq!(get(&format!("{ours}/readyz")).await, (200, "ok".into()));
    // A write and a watch to count.
    common::etcdctl_ok(&cluster.endpoints(), &["put", "k", "v"]).await;
    let (_, theirs) = get(&format!("{}/metrics", etcd.endpoint)).await;
    let (status, mine) = get(&format!("{ours}/metrics")).await;
    assert_eq!(status, 200);
    for name in SHARED {
        assert!(metric(&theirs, name).is_some(), "etcd serves {name}");
        assert!(metric(&mine, name).is_some(), "we serve {name}:\n{mine}");
    }
    assert_eq!(metric(&mine, "etcd_server_has_leader"), Some(1.0));
    assert_eq!(metric(&theirs, "etcd_server_has_leader"), Some(1.0));
    assert!(metric(&mine, "etcd_debugging_mvcc_keys_total") >= Some(1.0));
    assert!(metric(&mine, "etcd_server_proposals_applied_total") >= Some(1.0));
    assert!(metric(&mine, "etcd_server_leader_changes_seen_total") >= Some(1.0));
    let put = r#"grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"}"#;
    let handled = |page: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix(put)?.trim().parse::<f64>().ok())
    };
    // etcdctl put goes to one member; count it on whichever answered.
    let mut total = 0.0;
    for i in 0..3 {
        total +=
            handled(&get(&format!("{}/metrics", cluster.client_url(i))).await.1).unwrap_or(0.0);
    }
    assert!(total >= 1.0, "the put was counted");
    // The WAL fsync histogram: etcd's buckets, and every member's count moves with writes
    // (each member syncs its own log before acknowledging an append), on both sides.
    let bounds = bucket_bounds(&theirs, "etcd_disk_wal_fsync_duration_seconds");
    assert_eq!(bounds.len(), 15, "etcd: 14 buckets and +Inf: {bounds:?}");
    assert_eq!(
        bucket_bounds(&mine, "etcd_disk_wal_fsync_duration_seconds"),
        bounds
    );
    let urls: Vec<String> = (0..3).map(|i| cluster.client_url(i)).collect();
    let sides = [(vec![etcd.endpoint.clone()], "etcd"), (urls, "ours")];
    for (urls, side) in &sides {
        let before = fsync_counts(urls).await;
        for i in 0..5 {
            let eps: Vec<String> = urls.clone();
            common::etcdctl_ok(&eps, &["put", &format!("fsync/{i}"), "v"]).await;
        }
        // Followers sync after the leader acknowledged: wait for every member's count.
        wait_for(
            "fsyncs counted on every member",
            Duration::from_secs(10),
            || {
                let (urls, before) = (urls.clone(), before.clone());
                async move {
                    let after = fsync_counts(&urls).await;
                    after
                        .iter()
                        .zip(&before)
                        .all(|(a, b)| a >= &(b + 1.0))
                        .then_some(())
                }
            },
        )
        .await;
        let page = get(&format!("{}/metrics", urls[0])).await.1;
        let sum = metric(&page, "etcd_disk_wal_fsync_duration_seconds_sum");
        assert!(sum > Some(0.0), "{side}: fsync time is summed: {sum:?}");
    }
    assert_eq!(grpc_health(&ours).await, Some(ServingStatus::Serving));
    assert_eq!(
        grpc_health(&etcd.endpoint).await,
        Some(ServingStatus::Serving)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_member_reports_no_leader() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let i = (leader + 1) % 3;
    let url = cluster.client_url(i);
    cluster.isolate(i);
    wait_for(
        "the isolated member to lose its leader",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            async move {
                let (_, page) = get(&format!("{url}/metrics")).await;
                (metric(&page, "etcd_server_has_leader") == Some(0.0)).then_some(())
            }
        },
    )
    .await;
    assert_eq!(
        get(&format!("{url}/health")).await,
        (503, "{\"health\":\"false\"}\n".into())
    );
    assert_eq!(get(&format!("{url}/readyz")).await.0, 503);
    assert_eq!(get(&format!("{url}/livez")).await.0, 200);
    wait_for("grpc health NOT_SERVING", Duration::from_secs(10), || {
        let url = url.clone();
        async move { (grpc_health(&url).await == Some(ServingStatus::NotServing)).then_some(()) }
    })
    .await;
    cluster.heal(i);
    wait_for(
        "the healed member to see a leader",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            async move {
                let (_, page) = get(&format!("{url}/metrics")).await;
                let back = metric(&page, "etcd_server_has_leader") == Some(1.0);
                let health = get(&format!("{url}/health")).await;
                (back && health == (200, r#"{"health":"true"}"#.into())).then_some(())
            }
        },
    )
    .await;
    assert_eq!(grpc_health(&url).await, Some(ServingStatus::Serving));
    cluster.shutdown().await;
}
