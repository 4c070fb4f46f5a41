//! Independent Go implementations against ours: etcd's own client (clientv3 3.4 and its
//! concurrency package) against a real three-member etcd and against our three-member
//! registry, with the same checks, which must pass on both; and grpc-go against our greeter
//! srv. The Go programs live in `tests/go/src/` and are built offline from Debian's packages;
//! without Go or those packages these tests fail (they never skip).

use std::path::Path;
use std::time::Duration;

use micro::testing::EtcdCluster;
use system_tests::go::{self, NoKills};
use system_tests::processes::{GreeterSrv, OurCluster};

/// Every check etcdcompat prints; failover last: it asks for the member of the first endpoint of
/// its client, the leader, to be killed.
const CLIENTV3_CHECKS: [&str; 19] = [
    "kv-put-get",
    "kv-range-prefix",
    "kv-delete",
    "txn-compare-value",
    "txn-compare-version",
    "txn-compare-create-revision",
    "lease-grant-ttl-keys",
    "lease-keepalive-once",
    "lease-keepalive-stream",
    "lease-list",
    "lease-revoke",
    "lease-keepalive-after-revoke",
    "lease-remaining-ttl-truncated",
    "watch-from-revision-prefix-prev-kv",
    "watch-live-and-cancel",
    "mutex-two-contenders",
    "mutex-exclusion-under-contention",
    "election-campaign-resign-handover",
    "failover-kv-and-keepalive",
];

const GRPC_CHECKS: [&str; 7] = [
    "unary",
    "hpack-fresh-connections-large-answers",
    "concurrent-2000-one-connection",
    "message-3mib",
    "deadline-1ms-then-channel-works",
    "unknown-method-unimplemented",
    "metadata-ascii-and-binary",
];

/// A whole program's budget (its checks have their own, shorter ones).
const RUN: Duration = Duration::from_secs(240);

fn node_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_compat-node"))
}

async fn program(name: &str) -> go::GoProgram {
    go::build(name, Path::new(env!("CARGO_TARGET_TMPDIR")))
        .await
        .unwrap_or_else(|e| panic!("building the Go program {name}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_clientv3_checks_pass_against_a_real_etcd() {
    let program = program("etcdcompat").await;
    let mut etcd = EtcdCluster::start(3)
        .await
        .unwrap_or_else(|e| panic!("a real three-member etcd (etcd-server): {e}"));
    let endpoints = etcd.endpoints().join(",");
    let run = go::run(&program, &["-endpoints", &endpoints], &mut etcd, RUN).await;
    run.assert_passed("etcdcompat against etcd", &CLIENTV3_CHECKS);
    etcd.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_clientv3_checks_pass_against_our_registry() {
    let program = program("etcdcompat").await;
    let mut cluster = OurCluster::start(node_binary(), 3)
        .await
        .unwrap_or_else(|e| panic!("our three-member registry: {e}"));
    let endpoints = cluster.endpoints().join(",");
    let run = go::run(&program, &["-endpoints", &endpoints], &mut cluster, RUN).await;
    if run.status.is_none_or(|s| !s.success()) {
        // The members' logs say what the client could not.
        for i in 0..3 {
            let log = cluster.dir().join(format!("cd{i}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "--- cd{i}\n{}",
                lines[lines.len().saturating_sub(20)..].join("\n")
            );
        }
    }
    run.assert_passed("etcdcompat against our registry", &CLIENTV3_CHECKS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_go_calls_our_greeter_srv() {
    let program = program("grpccompat").await;
    let cluster = OurCluster::start(node_binary(), 3)
        .await
        .unwrap_or_else(|e| panic!("our three-member registry: {e}"));
    let srv = GreeterSrv::start(node_binary(), "one", &cluster.endpoints())
        .await
        .unwrap_or_else(|e| panic!("greeter srv: {e}"));
    let args = ["-addr", srv.address(), "-instance", "one"];
    let run = go::run(&program, &args, &mut NoKills, RUN).await;
    if run.status.is_none_or(|s| !s.success()) {
        eprintln!("--- greeter srv\n{}", srv.log());
    }
    run.assert_passed("grpccompat against our greeter srv", &GRPC_CHECKS);
}
