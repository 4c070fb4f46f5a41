//! Locks and elections with two contenders, against a three-member cluster of ours and a real
//! etcd 3.4 side by side: `etcdctl lock` / `etcdctl elect` (clientv3/concurrency on our KV,
//! lease and watch) and the Lock and Election gRPC services (`v3lockpb`, `v3electionpb`).

use std::time::Duration;

use crate::common::{etcdctl_ok, wait_for, RealEtcd};
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest};
use proto::v3electionpb::election_client::ElectionClient;
use proto::v3electionpb::{CampaignRequest, LeaderRequest, ProclaimRequest, ResignRequest};
use proto::v3lockpb::lock_client::LockClient;
use proto::v3lockpb::{LockRequest, UnlockRequest};
use registry_node::testing::TestCluster;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// A long-running etcdctl (lock, elect) whose stdout is collected; killed on drop.
struct Background {
    child: tokio::process::Child,
    out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Background {
    fn spawn(eps: &[String], args: &[&str]) -> Background {
        use tokio::io::AsyncReadExt;
        let mut child = tokio::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", eps.join(",")))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("etcdctl is installed");
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stdout.take().expect("stdout piped");
        let sink = out.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().expect("lock").push_str(&text);
            }
        });
        Background { child, out }
    }

    fn text(&self) -> String {
        self.out.lock().expect("lock").clone()
    }

    async fn wait_for_text(&self, needle: &str, timeout: Duration) {
        let out = self.out.clone();
        wait_for(&format!("etcdctl to print {needle:?}"), timeout, || {
            let found = out.lock().expect("lock").contains(needle);
            async move { found.then_some(()) }
        })
        .await
    }
}

/// Sends SIGINT to the etcdctl of `bg` (it then releases what it holds, as on Ctrl-C).
fn interrupt(bg: &Background) {
    let pid = bg.child.id().expect("etcdctl runs");
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// How many keys start with `prefix`.
async fn count(eps: &[String], prefix: &str) -> usize {
    etcdctl_ok(eps, &["get", prefix, "--prefix", "--keys-only"])
        .await
        .lines()
        .filter(|l| !l.is_empty())
        .count()
}

async fn etcdctl_lock_and_elect(eps: Vec<String>) {
    let t = Duration::from_secs(15);
    // Lock: the first holds, the second waits with its key in place, then gets it on SIGINT.
    let first = Background::spawn(&eps, &["lock", "job", "--ttl=30"]);
    first.wait_for_text("job/", t).await;
    let second = Background::spawn(&eps, &["lock", "job", "--ttl=30"]);
    wait_for("both contenders' keys", t, || {
        let eps = eps.clone();
        async move { (count(&eps, "job/").await == 2).then_some(()) }
    })
    .await;
    assert_eq!(
        second.text(),
        "",
        "the second holds nothing while the first does"
    );
    interrupt(&first);
    second.wait_for_text("job/", t).await;
    // Handover by lease: a third waits; revoking the holder's lease gives it the lock.
    let third = Background::spawn(&eps, &["lock", "job", "--ttl=30"]);
    wait_for("the third contender's key", t, || {
        let eps = eps.clone();
        async move { (count(&eps, "job/").await == 2).then_some(()) }
    })
    .await;
    assert_eq!(third.text(), "");
    let holder = second.text().lines().next().expect("the key").to_owned();
    let lease = holder.trim_start_matches("job/");
    etcdctl_ok(&eps, &["lease", "revoke", lease]).await;
    third.wait_for_text("job/", t).await;
    interrupt(&third);
    wait_for("the lock free", t, || {
        let eps = eps.clone();
        async move { (count(&eps, "job/").await == 0).then_some(()) }
    })
    .await;

    // Election: an observer sees a1, then b1 once a resigns (SIGINT).
    let observer = Background::spawn(&eps, &["elect", "-l", "pick"]);
    let a = Background::spawn(&eps, &["elect", "pick", "a1"]);
    a.wait_for_text("a1", t).await;
    observer.wait_for_text("a1", t).await;
    let b = Background::spawn(&eps, &["elect", "pick", "b1"]);
    wait_for("both candidates' keys", t, || {
        let eps = eps.clone();
        async move { (count(&eps, "pick/").await == 2).then_some(()) }
    })
    .await;
    assert_eq!(b.text(), "", "b is not leader while a is");
    interrupt(&a);
    b.wait_for_text("b1", t).await;
    observer.wait_for_text("b1", t).await;
    interrupt(&b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_lock_and_elect_as_with_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = RealEtcd::start(dir.path()).await;
    etcdctl_lock_and_elect(vec![etcd.endpoint.clone()]).await;
    let cluster = TestCluster::start(3).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    etcdctl_lock_and_elect(cluster.endpoints()).await;
    cluster.shutdown().await;
}

async fn grant(ch: &Channel) -> i64 {
    LeaseClient::new(ch.clone())
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
        .await
        .expect("grant")
        .into_inner()
        .id
}

/// The value of the next observed proclamation.
async fn next_value(observe: &mut tonic::Streaming<proto::v3electionpb::LeaderResponse>) -> String {
    let item = tokio::time::timeout(Duration::from_secs(10), observe.next())
        .await
        .expect("observed");
    let kv = item.expect("open").expect("ok").kv.expect("kv");
    String::from_utf8(kv.value).expect("utf-8")
}

/// The Lock and Election services with two contenders; returns what must match etcd's.
async fn services(url: String) -> Vec<String> {
    let ch = Channel::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut out = Vec::new();
    let (l1, l2) = (grant(&ch).await, grant(&ch).await);
    let mut lock = LockClient::new(ch.clone());
    let held = lock
        .lock(LockRequest {
            name: b"svc".to_vec(),
            lease: l1,
        })
        .await
        .expect("lock")
        .into_inner();
    assert_eq!(held.key, format!("svc/{l1:x}").into_bytes());
    let mut waiting = LockClient::new(ch.clone());
    let second = tokio::spawn(async move {
        waiting
            .lock(LockRequest {
                name: b"svc".to_vec(),
                lease: l2,
            })
            .await
    });
    let keys = |ch: Channel| async move {
        use proto::etcdserverpb::{kv_client::KvClient, RangeRequest};
        KvClient::new(ch)
            .range(RangeRequest {
                key: b"svc/".to_vec(),
                range_end: b"svc0".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner()
            .count
    };
    wait_for(
        "the second contender's key",
        Duration::from_secs(10),
        || {
            let ch = ch.clone();
            async move { (keys(ch).await == 2).then_some(()) }
        },
    )
    .await;
    assert!(
        !second.is_finished(),
        "the second waits while the first holds"
    );
    LeaseClient::new(ch.clone())
        .lease_revoke(LeaseRevokeRequest { id: l1 })
        .await
        .expect("revoke");
    let got = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("handed over")
        .expect("task")
        .expect("lock")
        .into_inner();
    assert_eq!(got.key, format!("svc/{l2:x}").into_bytes());
    lock.unlock(UnlockRequest { key: got.key })
        .await
        .expect("unlock");
    out.push(format!("lock keys left: {}", keys(ch.clone()).await));

    let mut el = ElectionClient::new(ch.clone());
    let none = el
        .leader(LeaderRequest {
            name: b"el".to_vec(),
        })
        .await
        .expect_err("none yet");
    out.push(format!("{:?} {}", none.code(), none.message()));
    let (c1, c2) = (grant(&ch).await, grant(&ch).await);
    let leader1 = el
        .campaign(CampaignRequest {
            name: b"el".to_vec(),
            lease: c1,
            value: b"v1".to_vec(),
        })
        .await
        .expect("campaign")
        .into_inner()
        .leader
        .expect("a leader key");
    // grpc-go sends a stream's headers with its first message: observe once there is one.
    let mut observe = el
        .observe(LeaderRequest {
            name: b"el".to_vec(),
        })
        .await
        .expect("observe")
        .into_inner();
    out.push(format!("observed {}", next_value(&mut observe).await));
    let mut el2 = ElectionClient::new(ch.clone());
    let contender = tokio::spawn(async move {
        el2.campaign(CampaignRequest {
            name: b"el".to_vec(),
            lease: c2,
            value: b"v2".to_vec(),
        })
        .await
    });
    el.proclaim(ProclaimRequest {
        leader: Some(leader1.clone()),
        value: b"v1b".to_vec(),
    })
    .await
    .expect("proclaim");
    out.push(format!("observed {}", next_value(&mut observe).await));
    assert!(!contender.is_finished(), "the second candidate waits");
    let mut stale = leader1.clone();
    stale.rev += 1000;
    let refused = el
        .proclaim(ProclaimRequest {
            leader: Some(stale),
            value: b"x".to_vec(),
        })
        .await
        .expect_err("not leader");
    out.push(format!("{:?} {}", refused.code(), refused.message()));
    let missing = el
        .resign(ResignRequest { leader: None })
        .await
        .expect_err("no leader key");
    out.push(format!("{:?} {}", missing.code(), missing.message()));
    el.resign(ResignRequest {
        leader: Some(leader1),
    })
    .await
    .expect("resign");
    let leader2 = tokio::time::timeout(Duration::from_secs(10), contender)
        .await
        .expect("elected")
        .expect("task")
        .expect("campaign")
        .into_inner()
        .leader
        .expect("a leader key");
    out.push(format!(
        "second leader key {}",
        leader2.key == format!("el/{c2:x}").into_bytes()
    ));
    out.push(format!("observed {}", next_value(&mut observe).await));
    let now = el
        .leader(LeaderRequest {
            name: b"el".to_vec(),
        })
        .await
        .expect("leader")
        .into_inner();
    out.push(format!("leader {:?}", now.kv.map(|kv| kv.value)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_and_election_services_as_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = RealEtcd::start(dir.path()).await;
    let theirs = services(etcd.endpoint.clone()).await;
    let cluster = TestCluster::start(3).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    // On a follower: the services' own KV calls are forwarded like any client's.
    let mine = services(cluster.client_url((leader + 1) % 3)).await;
    assert_eq!(theirs, mine, "etcd (left) and ours (right) differ");
    cluster.shutdown().await;
}
