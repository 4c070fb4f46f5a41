//! Leases and watches with etcd's semantics, checked with the real `etcdctl` (and side by side
//! with a real etcd where the answers are deterministic).

use crate::common;

use std::time::Duration;

use crate::common::{etcdctl, etcdctl_ok, Background, RealEtcd};
use registry_node::testing::TestCluster;

const LEADER_WAIT: Duration = Duration::from_secs(20);

/// The hex id in "lease 694d77aa9e38260f granted with TTL(30s)".
fn lease_id(grant_output: &str) -> String {
    grant_output
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no lease id in {grant_output:?}"))
        .to_owned()
}

/// The remaining TTL in "... remaining(27s) ...".
fn remaining(ttl_output: &str) -> i64 {
    let start = ttl_output.find("remaining(").expect("remaining(") + "remaining(".len();
    let end = ttl_output[start..].find('s').expect("s)") + start;
    ttl_output[start..end].parse().expect("a number")
}

async fn key_exists(eps: &[String], key: &str) -> bool {
    !etcdctl_ok(eps, &["get", key, "--keys-only"])
        .await
        .trim()
        .is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seed_lease_check_with_etcdctl() {
    let c = TestCluster::start(3).await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    // Through a follower, so grant, time-to-live and keep-alive are carried to the leader.
    let eps = vec![c.client_url((leader + 1) % 3)];

    let grant = etcdctl_ok(&eps, &["lease", "grant", "30"]).await;
    assert!(grant.contains("granted with TTL(30s)"), "{grant}");
    let id = lease_id(&grant);
    let key = "/micro-registry/go.micro.srv.greeter/go.micro.srv.greeter-1";
    etcdctl_ok(&eps, &["put", &format!("--lease={id}"), key, "{}"]).await;

    let ttl = etcdctl_ok(&eps, &["lease", "timetolive", &id, "--keys"]).await;
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(30s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.contains(&format!("attached keys([{key}])")), "{ttl}");
    let first = remaining(&ttl);
    assert!((28..=30).contains(&first), "{ttl}");

    let list = etcdctl_ok(&eps, &["lease", "list"]).await;
    assert_eq!(list.trim(), format!("found 1 leases\n{id}"));

    // --- remaining falls ...
    common::wait_for("remaining TTL to fall", Duration::from_secs(10), || {
        let eps = eps.clone();
        let id = id.clone();
        async move {
            let t = etcdctl_ok(&eps, &["lease", "timetolive", &id]).await;
            (remaining(&t) < first).then_some(())
        }
    })
    .await;
    // --- ... and a keep-alive puts it back to 30
    let ka = etcdctl_ok(&eps, &["lease", "keep-alive", "--once", &id]).await;
    assert_eq!(ka.trim(), format!("lease {id} keepalived with TTL(30)"));
    let after = remaining(&etcdctl_ok(&eps, &["lease", "timetolive", &id]).await);
    assert!(
        after >= 29,
        "remaining back to 30 after keep-alive, got {after}"
    );

    // --- revoke: the key is gone
    let revoke = etcdctl_ok(&eps, &["lease", "revoke", &id]).await;
    assert_eq!(revoke.trim(), format!("lease {id} revoked"));
    assert!(!key_exists(&eps, key).await);
    let gone = etcdctl_ok(&eps, &["lease", "timetolive", &id]).await;
    assert_eq!(gone.trim(), format!("lease {id} already expired"));
    let e = etcdctl(&eps, &["put", &format!("--lease={id}"), "k", "v"], None).await;
    assert!(
        !e.ok && e.stderr.contains("etcdserver: requested lease not found"),
        "{e:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unrenewed_lease_expires_and_renewed_one_survives_a_leader_kill() {
    // A 3 s lease renewed every second rides through a failover only if the new leader
    // answers within the client's 3 s: faster timers than the default 1 s election timeout
    // keep that true on a loaded machine (what is tested is promotion and forwarding).
    let mut c = TestCluster::start_with(3, |r| {
        r.heartbeat_ms = 50;
        r.election_timeout_ms = 500;
    })
    .await;
    let leader = c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let eps = c.endpoints();

    // --- a 3 s lease nobody keeps alive: gone within 3 s plus one second
    let dead = lease_id(&etcdctl_ok(&eps, &["lease", "grant", "3"]).await);
    etcdctl_ok(&eps, &["put", &format!("--lease={dead}"), "/dead", "x"]).await;
    let granted = tokio::time::Instant::now();

    // --- a 3 s lease kept alive every second by `etcdctl lease keep-alive`
    let live = lease_id(&etcdctl_ok(&eps, &["lease", "grant", "3"]).await);
    etcdctl_ok(&eps, &["put", &format!("--lease={live}"), "/live", "x"]).await;
    let mut keeper = Background::spawn(&eps, &["lease", "keep-alive", &live]);

    // The deadline counts from the grant: gone within its 3 s TTL plus one second.
    common::wait_for(
        "the unrenewed key to expire within 4 s of its grant",
        Duration::from_secs(4).saturating_sub(granted.elapsed()),
        || {
            let eps = eps.clone();
            async move { (!key_exists(&eps, "/dead").await).then_some(()) }
        },
    )
    .await;

    // --- kill the leader during the 15 s
    // Let a few renewals reach the old leader first.
    let out = keeper.output.clone();
    common::wait_for(
        "three renewals before the kill",
        Duration::from_secs(10),
        || {
            let n = out.lock().expect("lock").matches("keepalived").count();
            async move { (n >= 3).then_some(()) }
        },
    )
    .await;
    c.stop(leader).await;
    c.wait_for_leader(LEADER_WAIT).await.expect("new leader");
    let survivors: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| c.client_url(i))
        .collect();
    let until = granted + Duration::from_secs(15);
    while tokio::time::Instant::now() < until {
        assert!(
            key_exists(&survivors, "/live").await,
            "kept-alive key vanished; keeper output:\n{}",
            keeper.text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(keeper.running(), "keep-alive client still running");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_watch_sees_puts_deletes_expiry_and_replays_history() {
    let c = TestCluster::start(3).await;
    c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let eps = c.endpoints();
    let watch = Background::spawn(&eps[2..3], &["watch", "--prefix", "/micro-registry/"]);
    // The watch is live once a put made after it shows up.
    common::wait_for("watch to be established", Duration::from_secs(10), || {
        let eps = eps.clone();
        let w = &watch;
        async move {
            etcdctl_ok(&eps, &["put", "/micro-registry/probe", "p"]).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            w.text().contains("/micro-registry/probe").then_some(())
        }
    })
    .await;

    etcdctl_ok(&eps, &["put", "/micro-registry/a", "1"]).await;
    watch
        .wait_for_text("PUT\n/micro-registry/a\n1\n", Duration::from_secs(5))
        .await;
    etcdctl_ok(&eps, &["del", "/micro-registry/a"]).await;
    watch
        .wait_for_text("DELETE\n/micro-registry/a\n", Duration::from_secs(5))
        .await;
    let id = lease_id(&etcdctl_ok(&eps, &["lease", "grant", "2"]).await);
    etcdctl_ok(
        &eps,
        &[
            "put",
            &format!("--lease={id}"),
            "/micro-registry/leased",
            "x",
        ],
    )
    .await;
    watch
        .wait_for_text("DELETE\n/micro-registry/leased\n", Duration::from_secs(6))
        .await;
    etcdctl_ok(&eps, &["put", "/other", "not watched"]).await;

    // --- a watch from an old revision replays the history
    let replay = Background::spawn(
        &eps[0..1],
        &["watch", "--prefix", "/micro-registry/a", "--rev=1"],
    );
    let text = replay
        .wait_for_text("DELETE\n/micro-registry/a\n", Duration::from_secs(5))
        .await;
    assert!(
        text.starts_with("PUT\n/micro-registry/a\n1\nDELETE\n/micro-registry/a\n"),
        "{text}"
    );
    assert!(!watch.text().contains("/other"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_from_a_compacted_revision_ends_like_etcd() {
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = RealEtcd::start(dir.path()).await;
    let c = TestCluster::start(3).await;
    c.wait_for_leader(LEADER_WAIT).await.expect("leader");
    let mut outputs = Vec::new();
    for eps in [vec![etcd.endpoint.clone()], c.endpoints()] {
        for n in 0..5 {
            etcdctl_ok(&eps, &["put", "w", &n.to_string()]).await;
        }
        etcdctl_ok(&eps, &["compaction", "4"]).await;
        let mut w = Background::spawn(&eps, &["watch", "w", "--rev=2"]);
        assert!(
            w.wait_exit(Duration::from_secs(10)).await,
            "watch ends on compaction"
        );
        let replay = Background::spawn(&eps, &["watch", "w", "--rev=4"]);
        let text = replay
            .wait_for_text("PUT\nw\n4\n", Duration::from_secs(5))
            .await;
        outputs.push((w.text(), text));
    }
    assert!(
        outputs[0]
            .0
            .contains("required revision has been compacted"),
        "{:?}",
        outputs[0]
    );
    assert_eq!(outputs[1], outputs[0], "ours vs etcd");
    c.shutdown().await;
}
