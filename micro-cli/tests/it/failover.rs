//! `micro up` under failures: a crashed srv (its lease expires), a stopped api (it deregisters
//! at once), a killed registry leader (requests go on).

use std::time::Duration;

use crate::common::{have_etcdctl, hello_many, Demo, Options};
use nix::sys::signal::Signal;
use tokio::time::Instant;

const SRV_PREFIX: &str = "/micro-registry/go.micro.srv.greeter/";
const API_PREFIX: &str = "/micro-registry/go.micro.api.greeter/";

/// A short TTL so the crashed srv's lease expires quickly (the TTL-30 check is in `demo.rs`).
fn short_ttl() -> Vec<String> {
    vec![
        "--register_ttl=5".to_owned(),
        "--register_interval=1".to_owned(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_srv_expires_and_stopped_api_leaves_at_once() {
    if !have_etcdctl() {
        return;
    }
    let mut demo = Demo::up(Options {
        srv_args: short_ttl(),
        ..Options::default()
    })
    .await;
    let crashed = demo.node_id("srv-one");
    assert!(demo
        .keys(SRV_PREFIX)
        .await
        .iter()
        .any(|k| k.ends_with(&crashed)));

    // --- SIGKILL srv-one: no deregistration; requests go on (the api retries on srv-two)
    demo.signal("srv-one", Signal::SIGKILL);
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(5 + 15);
    let mut requests = 0;
    loop {
        let (_, srv) = demo
            .hello()
            .await
            .unwrap_or_else(|e| panic!("request {requests} after the kill: {e}"));
        assert_eq!(srv, "two", "only srv two is alive");
        requests += 1;
        if !demo
            .keys(SRV_PREFIX)
            .await
            .iter()
            .any(|k| k.ends_with(&crashed))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "srv-one's key outlived its 5 s TTL by 15 s"
        );
    }
    eprintln!(
        "srv-one's key gone {:?} after the kill, {requests} requests all 200",
        killed.elapsed()
    );
    demo.wait_log("the exit report", Duration::from_secs(5), |l| {
        l.starts_with("[up] srv-one (pid") && l.contains("exited")
    })
    .await;

    // --- from now on only srv-two is ever chosen, and nothing fails
    let seen = hello_many(&demo, 20).await;
    assert!(seen.keys().all(|(_, srv)| srv == "two"), "{seen:?}");
    let keys = demo.keys(SRV_PREFIX).await;
    assert_eq!(keys.len(), 1, "{keys:?}");

    // --- SIGTERM api-one: it deregisters before it stops serving
    let leaving = demo.node_id("api-one");
    demo.signal("api-one", Signal::SIGTERM);
    let termed = Instant::now();
    while demo
        .keys(API_PREFIX)
        .await
        .iter()
        .any(|k| k.ends_with(&leaving))
    {
        assert!(
            termed.elapsed() < Duration::from_secs(2),
            "api-one's key is gone at once"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("api-one's key gone {:?} after SIGTERM", termed.elapsed());
    let seen = hello_many(&demo, 20).await;
    assert!(
        seen.keys().all(|(api, srv)| api == "two" && srv == "two"),
        "{seen:?}"
    );
    demo.shutdown().await;
}

/// `(endpoint URL of the leader)` from `etcdctl endpoint status -w json`.
async fn leader_url(demo: &Demo) -> String {
    let out = demo.etcdctl(&["endpoint", "status", "-w", "json"]).await;
    let statuses: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    statuses
        .as_array()
        .expect("one status per endpoint")
        .iter()
        .find(|s| s["Status"]["header"]["member_id"] == s["Status"]["leader"])
        .and_then(|s| s["Endpoint"].as_str())
        .unwrap_or_else(|| panic!("no endpoint is the leader: {out}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_registry_leader_keeps_requests_succeeding() {
    if !have_etcdctl() {
        return;
    }
    let demo = Demo::up(Options {
        srv_args: short_ttl(),
        api_args: short_ttl(),
        ..Options::default()
    })
    .await;
    let leader = leader_url(&demo).await;
    let i = demo
        .endpoints
        .iter()
        .position(|u| *u == leader)
        .expect("a member");
    let member = format!("cd{i}");

    // --- a request loop runs while the leader is SIGKILLed and for a while after: leases are
    //     kept alive through the new leader (several 1 s heartbeats and a 5 s TTL go by)
    let demo = std::sync::Arc::new(demo);
    let looping = demo.clone();
    let requests = tokio::spawn(async move {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_secs(16) {
            looping
                .hello()
                .await
                .unwrap_or_else(|e| panic!("request {n} ({:?} in): {e}", start.elapsed()));
            n += 1;
        }
        n
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    demo.signal(&member, Signal::SIGKILL);
    let n = requests.await.expect("every request answered 200");
    eprintln!("killed leader {member}; {n} requests, all 200");

    // --- the survivors still hold all five registrations (four instances and the gateway)
    let survivors: Vec<String> = demo
        .endpoints
        .iter()
        .filter(|u| **u != leader)
        .cloned()
        .collect();
    let out = tokio::process::Command::new("etcdctl")
        .arg(format!("--endpoints={}", survivors.join(",")))
        .args(["get", "--prefix", "/micro-registry/", "--keys-only"])
        .output()
        .await
        .expect("etcdctl");
    let keys = String::from_utf8_lossy(&out.stdout);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 5, "{keys}");
    let demo = std::sync::Arc::into_inner(demo).expect("the loop is done");
    demo.shutdown().await;
}

/// Whether `pid` is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_micro_up_leaves_no_process_behind() {
    let mut demo = Demo::up(Options::default()).await;
    let pids = demo.child_pids();
    assert_eq!(pids.len(), 8, "3 members, 4 services, the gateway");

    // --- SIGKILL: no orderly stop; each child sees its stdin pipe close and stops itself
    demo.kill_up().await;
    let start = Instant::now();
    while pids.iter().any(|p| alive(*p)) {
        let left: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "still running: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "every child gone {:?} after micro up was killed",
        start.elapsed()
    );
}
