//! The scale workloads with small counts against an in-process cluster (`TestCluster`): every
//! mode runs to its end and its checks come out right. The members share this process, so
//! `--pids` names it three times (the memory figures are then this process's, only exercised);
//! in `scale-failover` the leader is stopped through the cluster handle instead of SIGKILL.

use std::sync::Arc;
use std::time::Duration;

use bench::{conn, scale, Args, Workload};
use clap::Parser;
use registry_node::testing::TestCluster;
use serde_json::Value;

async fn cluster() -> TestCluster {
    let c = TestCluster::start(3).await;
    c.wait_for_leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    c
}

fn args(c: &TestCluster, rest: &[&str]) -> Args {
    let me = std::process::id().to_string();
    let pids = format!("{me},{me},{me}");
    let eps = c.endpoints().join(",");
    let mut v = vec!["bench", "--endpoints", &eps, "--pids", &pids];
    v.extend_from_slice(rest);
    Args::try_parse_from(v).expect("valid arguments")
}

fn lease_args(a: &Args) -> &scale::LeaseScaleArgs {
    match &a.workload {
        Workload::ScaleLeases(w) | Workload::ScaleExpiry(w) | Workload::ScaleFailover(w) => w,
        other => panic!("not a lease workload: {other:?}"),
    }
}

fn num(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is a number in {v}"))
}

const LEASE_ROW: &[&str] = &["--clients", "8", "--conns", "3"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_kept_alive_then_expired_at_once() {
    let c = cluster().await;
    let mut rest = LEASE_ROW.to_vec();
    rest.extend([
        "scale-expiry",
        "--leases",
        "300",
        "--ttl",
        "3",
        "--hold",
        "2",
    ]);
    rest.extend(["--streams", "3", "--expire-wait", "60"]);
    let a = args(&c, &rest);
    let chans = conn::connect(&a).await.expect("connections");
    let v = scale::expiry::run(&a, lease_args(&a), &chans)
        .await
        .expect("scale-expiry runs");
    eprintln!("{v}");
    assert_eq!(num(&v, "granted"), 300.0, "{v}");
    assert_eq!(num(&v, "lost"), 0.0, "kept alive: no key lost: {v}");
    assert_eq!(num(&v, "wrong_lease"), 0.0, "{v}");
    assert!(
        num(&v, "keepalive_count") > 0.0,
        "keep-alives answered: {v}"
    );
    assert_eq!(num(&v, "renewed_in_last_round"), 300.0, "{v}");
    assert_eq!(v["all_gone"], Value::Bool(true), "every key expired: {v}");
    assert!(num(&v, "rss_sum_mib") > 0.0, "{v}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_stopped_under_live_leases() {
    let c = cluster().await;
    let mut rest = LEASE_ROW.to_vec();
    rest.extend([
        "scale-failover",
        "--leases",
        "300",
        "--ttl",
        "3",
        "--hold",
        "1",
    ]);
    rest.extend(["--streams", "3"]);
    let a = args(&c, &rest);
    let chans = conn::connect(&a).await.expect("connections");
    let c = Arc::new(tokio::sync::Mutex::new(c));
    let c2 = c.clone();
    let kill: scale::failover::Killer = Box::new(move |i| {
        Box::pin(async move {
            c2.lock().await.stop(i).await;
            Ok(())
        })
    });
    let v = scale::failover::run(&a, lease_args(&a), &chans, kill)
        .await
        .expect("scale-failover runs");
    eprintln!("{v}");
    assert!(num(&v, "writes_back_s") > 0.0, "writes resumed: {v}");
    assert_ne!(v["killed_endpoint"], v["new_leader_endpoint"], "{v}");
    assert_eq!(num(&v, "lost"), 0.0, "no lease lost: {v}");
    assert_eq!(num(&v, "wrong_lease"), 0.0, "{v}");
    assert_eq!(
        v["all_renewed"],
        Value::Bool(true),
        "every lease renewed after: {v}"
    );
    assert_eq!(num(&v, "keepalives_expired_after_kill"), 0.0, "{v}");
    let c = Arc::into_inner(c).expect("the killer is gone").into_inner();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_watchers_on_few_connections() {
    let c = cluster().await;
    let rest = [
        "--conns",
        "4",
        "scale-watch",
        "--watchers",
        "200",
        "--prefixes",
        "10",
        "--puts",
        "200",
        "--wait",
        "60",
    ];
    let a = args(&c, &rest);
    let Workload::ScaleWatch(w) = &a.workload else {
        panic!("scale-watch")
    };
    let chans = conn::connect(&a).await.expect("connections");
    let v = scale::watchers::run(&a, w, &chans)
        .await
        .expect("scale-watch runs");
    eprintln!("{v}");
    assert_eq!(
        num(&v, "expected"),
        200.0 * 20.0,
        "each put reaches 20 watchers: {v}"
    );
    assert_eq!(v["all_delivered"], Value::Bool(true), "{v}");
    assert_eq!(num(&v, "count"), num(&v, "expected"), "{v}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn go_micro_shaped_registrations() {
    let c = cluster().await;
    let rest = [
        "--clients",
        "8",
        "--conns",
        "3",
        "scale-micro",
        "--instances",
        "100",
        "--services",
        "7",
        "--watchers",
        "5",
        "--renew",
        "1",
        "--hold",
        "2",
        "--wait",
        "60",
    ];
    let a = args(&c, &rest);
    let Workload::ScaleMicro(w) = &a.workload else {
        panic!("scale-micro")
    };
    let chans = conn::connect(&a).await.expect("connections");
    let v = scale::micro::run(&a, w, &chans)
        .await
        .expect("scale-micro runs");
    eprintln!("{v}");
    assert_eq!(num(&v, "registered"), 100.0, "{v}");
    assert_eq!(v["all_delivered"], Value::Bool(true), "{v}");
    assert!(num(&v, "renew_count") > 0.0, "renewals answered: {v}");
    assert_eq!(
        num(&v, "renew_errors") + num(&v, "renew_ttl_zero"),
        0.0,
        "{v}"
    );
    c.shutdown().await;
}
