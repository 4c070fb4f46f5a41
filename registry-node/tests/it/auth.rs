//! etcd's authentication and roles with the real `etcdctl --user`, side by side with a real
//! etcd 3.4: the same script must print the same answers on both. Then what only a cluster of
//! ours shows: a token issued through one member works on the others, and the auth state
//! survives a restart of every member and a member catching up through a snapshot.

use std::time::Duration;

use crate::common::{etcdctl, wait_for, RealEtcd};
use proto::authpb::permission::Type as PermType;
use proto::authpb::Permission;
use proto::etcdserverpb::auth_client::AuthClient;
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::maintenance_client::MaintenanceClient;
use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::watch_request::RequestUnion;
use proto::etcdserverpb::*;
use proto::v3electionpb::election_client::ElectionClient;
use proto::v3electionpb::{CampaignRequest, LeaderRequest, ResignRequest};
use proto::v3lockpb::lock_client::LockClient;
use proto::v3lockpb::{LockRequest, UnlockRequest};
use registry_node::testing::TestCluster;
use tonic::transport::Channel;
use tonic::{Code, Request};

const ROOT: &str = "--user=root:rootpw";
const SVC: &str = "--user=svc:svcpw";
const OTHER: &str = "--user=other:otherpw";
/// A token no member issued.
const BOGUS: &str = "bogus.1";

/// The script; `{lease}` is replaced by the id the step marked `grant` printed.
fn script() -> Vec<Vec<&'static str>> {
    vec![
        vec!["put", "/micro-registry/x", "v"],
        vec!["auth", "enable"],
        vec!["user", "add", "root:rootpw"],
        vec!["auth", "enable"],
        vec!["put", "/micro-registry/x", "v"],
        vec!["get", "/micro-registry/x"],
        vec![ROOT, "role", "add", "registry"],
        vec![ROOT, "role", "add", "registry"],
        vec![
            ROOT,
            "role",
            "grant-permission",
            "registry",
            "--prefix=true",
            "readwrite",
            "/micro-registry/",
        ],
        vec![ROOT, "user", "add", "svc:svcpw"],
        vec![ROOT, "user", "add", "svc:again"],
        vec![ROOT, "user", "grant-role", "svc", "registry"],
        vec![ROOT, "user", "grant-role", "svc", "nope"],
        vec![ROOT, "user", "add", "other:otherpw"],
        vec![SVC, "put", "/micro-registry/go.micro.srv.greeter/n1", "{}"],
        vec![SVC, "get", "/micro-registry/", "--prefix"],
        vec![SVC, "put", "/outside", "v"],
        vec![SVC, "get", "/outside"],
        vec![SVC, "get", "", "--prefix"],
        vec![SVC, "get", "/micro-registry/", "--prefix", "--rev=2"],
        vec![SVC, "txn"],
        vec![SVC, "lease", "grant", "60"],
        vec![
            SVC,
            "put",
            "--lease={lease}",
            "/micro-registry/svc/n2",
            "{}",
        ],
        vec![
            OTHER,
            "put",
            "--lease={lease}",
            "/micro-registry/svc/n3",
            "{}",
        ],
        vec![OTHER, "put", "/micro-registry/svc/n3", "{}"],
        vec![OTHER, "lease", "revoke", "{lease}"],
        vec![OTHER, "get", "/micro-registry/", "--prefix", "--keys-only"],
        vec![SVC, "del", "/micro-registry/go.micro.srv.greeter/n1"],
        vec!["--user=svc:wrong", "get", "/micro-registry/x"],
        vec!["--user=ghost:pw", "get", "/micro-registry/x"],
        vec![SVC, "user", "list"],
        vec![SVC, "user", "get", "svc"],
        vec![SVC, "user", "get", "root"],
        vec![SVC, "role", "get", "registry"],
        vec![SVC, "auth", "disable"],
        vec![SVC, "defrag"],
        vec![ROOT, "defrag"],
        // Membership changes and Snapshot are root's (etcd 3.4's checkMembershipOperationPermission
        // and authMaintenanceServer); Alarm needs no permission; etcdctl's lock and elect
        // (clientv3/concurrency on the client side) need the keys' permissions.
        vec!["member", "add", "m4", "--peer-urls=http://127.0.0.1:1"],
        vec![SVC, "member", "add", "m4", "--peer-urls=http://127.0.0.1:1"],
        vec![SVC, "member", "remove", "1234"],
        vec![
            SVC,
            "member",
            "update",
            "1234",
            "--peer-urls=http://127.0.0.1:1",
        ],
        vec![SVC, "member", "promote", "1234"],
        vec![ROOT, "member", "remove", "1234"],
        vec![
            ROOT,
            "member",
            "update",
            "1234",
            "--peer-urls=http://127.0.0.1:1",
        ],
        vec![ROOT, "member", "promote", "1234"],
        vec![SVC, "snapshot", "save", "{tmp}/svc.db"],
        vec![ROOT, "snapshot", "save", "{tmp}/root.db"],
        vec![SVC, "alarm", "list"],
        vec![SVC, "lock", "/micro-registry/lk", "echo", "locked"],
        vec![SVC, "lock", "/outside", "echo", "locked"],
        vec![SVC, "elect", "/outside", "p1"],
        vec![ROOT, "user", "list"],
        vec![ROOT, "user", "get", "root"],
        vec![ROOT, "role", "list"],
        vec![ROOT, "role", "get", "registry"],
        vec![ROOT, "role", "get", "nope"],
        vec![ROOT, "user", "delete", "root"],
        vec![ROOT, "role", "delete", "root"],
        vec![ROOT, "user", "revoke-role", "other", "registry"],
        vec![ROOT, "role", "revoke-permission", "registry", "/nothing"],
        vec![ROOT, "user", "passwd", "other", "--interactive=false"],
        vec!["--user=other:otherpw", "get", "/micro-registry/x"],
        vec!["--user=other:newpw", "get", "/micro-registry/x"],
        vec![ROOT, "get", "", "--prefix", "--keys-only"],
        vec![ROOT, "auth", "disable"],
        vec!["put", "/outside", "v"],
        vec![SVC, "get", "/outside"],
        vec!["user", "list"],
    ]
}

/// stdin for the steps that read it.
fn stdin_of(args: &[&str]) -> Option<&'static str> {
    match args.get(1) {
        Some(&"txn") => Some("\nput /micro-registry/t v\n\nput /outside v\n\n"),
        Some(&"user") if args.contains(&"passwd") => Some("newpw\n"),
        _ => None,
    }
}

/// Runs the script against one endpoint per step (cycling through `eps`), returning each
/// step's success, stdout (lease ids and `tmp` masked) and `Error:` lines.
async fn run(eps: &[String], tmp: &std::path::Path) -> Vec<(bool, String, Vec<String>)> {
    let tmp = tmp.to_str().expect("utf-8 temp dir");
    let mut lease = String::new();
    let mut out = Vec::new();
    for (i, s) in script().into_iter().enumerate() {
        let args: Vec<String> = s
            .iter()
            .map(|a| a.replace("{lease}", &lease).replace("{tmp}", tmp))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ep = std::slice::from_ref(&eps[i % eps.len()]);
        let o = etcdctl(ep, &args, stdin_of(&s)).await;
        let mut stdout = o.stdout.trim().to_owned();
        if s.contains(&"grant") && s.contains(&"lease") {
            lease = stdout.split_whitespace().nth(1).unwrap_or("0").to_owned();
        }
        if !lease.is_empty() {
            stdout = stdout.replace(&lease, "<lease>");
        }
        stdout = stdout.replace(&ep[0], "<ep>").replace(tmp, "<tmp>");
        let errors = o
            .stderr
            .lines()
            .filter(|l| l.starts_with("Error") || l.starts_with("Failed"))
            .map(|l| l.replace(&ep[0], "<ep>"))
            .collect();
        out.push((o.ok, stdout, errors));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_auth_answers_as_etcd() {
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = RealEtcd::start(dir.path()).await;
    let ours = TestCluster::start(3).await;
    ours.wait_for_leader(Duration::from_secs(20))
        .await
        .expect("leader");
    let (their_tmp, my_tmp) = (dir.path().join("theirs"), dir.path().join("mine"));
    for d in [&their_tmp, &my_tmp] {
        std::fs::create_dir(d).expect("snapshot dir");
    }
    let theirs = run(std::slice::from_ref(&etcd.endpoint), &their_tmp).await;
    // Every member in turn: followers forward, and check tokens issued through others.
    let mine = run(&ours.endpoints(), &my_tmp).await;
    for (i, (s, (m, t))) in script().iter().zip(mine.iter().zip(&theirs)).enumerate() {
        assert_eq!(
            m, t,
            "step {i} {s:?}: ours (left) differs from etcd (right)"
        );
    }
    // The script did what it is for (a sanity check on etcd's answers themselves).
    let denied = theirs
        .iter()
        .filter(|(_, _, e)| e.iter().any(|l| l.contains("permission denied")))
        .count();
    assert!(denied >= 5, "permission denials seen: {theirs:#?}");
    ours.shutdown().await;
}

/// `GET /health` with curl: the body.
async fn health(url: &str) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--max-time", "5", &format!("{url}/health")])
        .output()
        .await
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn channel(url: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("token", token.parse().expect("ascii token"));
    req
}

async fn token(url: &str, name: &str, password: &str) -> Result<String, tonic::Status> {
    let req = AuthenticateRequest {
        name: name.into(),
        password: password.into(),
    };
    Ok(AuthClient::new(channel(url).await)
        .authenticate(req)
        .await?
        .into_inner()
        .token)
}

async fn put(url: &str, token: Option<&str>, key: &str) -> Result<(), tonic::Status> {
    let msg = PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    let req = match token {
        Some(t) => with_token(msg, t),
        None => Request::new(msg),
    };
    KvClient::new(channel(url).await).put(req).await.map(drop)
}

/// Sets up root and `svc` (readwrite on `/micro-registry/`) and enables auth, over gRPC.
async fn secure(url: &str) -> String {
    let mut a = AuthClient::new(channel(url).await);
    for (name, pw) in [("root", "rootpw"), ("svc", "svcpw")] {
        a.user_add(AuthUserAddRequest {
            name: name.into(),
            password: pw.into(),
            ..Default::default()
        })
        .await
        .expect("user add");
    }
    a.role_add(AuthRoleAddRequest {
        name: "registry".into(),
    })
    .await
    .expect("role add");
    a.role_grant_permission(AuthRoleGrantPermissionRequest {
        name: "registry".into(),
        perm: Some(Permission {
            perm_type: PermType::Readwrite as i32,
            key: b"/micro-registry/".to_vec(),
            range_end: b"/micro-registry0".to_vec(),
        }),
    })
    .await
    .expect("grant permission");
    for (user, role) in [("root", "root"), ("svc", "registry")] {
        a.user_grant_role(AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        })
        .await
        .expect("grant role");
    }
    a.auth_enable(AuthEnableRequest {}).await.expect("enable");
    token(url, "root", "rootpw").await.expect("root token")
}

/// What a watch created with `token` answers first: (created, canceled, id, reason).
async fn watch_answer(url: &str, token: &str, key: &str, end: &str) -> (bool, bool, i64, String) {
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.into(),
            range_end: end.into(),
            ..Default::default()
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(create).await.expect("queue create");
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut resp = WatchClient::new(channel(url).await)
        .watch(with_token(stream, token))
        .await
        .expect("watch stream")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), resp.message())
        .await
        .expect("watch answers")
        .expect("watch message")
        .expect("not closed");
    drop(tx);
    (
        first.created,
        first.canceled,
        first.watch_id,
        first.cancel_reason,
    )
}

/// The gRPC checks whose answers must equal etcd's: `issue` authenticates, `use_at` serves.
async fn grpc_checks(issue: &str, use_at: &str) -> Vec<String> {
    let root = secure(issue).await;
    let svc = token(issue, "svc", "svcpw").await.expect("svc token");
    let show = |r: Result<(), tonic::Status>| match r {
        Ok(()) => "ok".to_owned(),
        Err(s) => format!("{:?} {}", s.code(), s.message()),
    };
    let (mut kv, mut lease, mut m) = (
        KvClient::new(channel(use_at).await),
        LeaseClient::new(channel(use_at).await),
        MaintenanceClient::new(channel(use_at).await),
    );
    let compact = CompactionRequest {
        revision: 1,
        physical: false,
    };
    let grant = LeaseGrantRequest { ttl: 30, id: 0 };
    let alarms = AlarmRequest::default();
    // etcd looks up a token before proposing any Raft request: a bad one is refused even
    // where no permission is needed. Status proposes nothing and checks nothing.
    let raft_calls = vec![
        show(kv.compact(with_token(compact, BOGUS)).await.map(drop)),
        show(lease.lease_grant(with_token(grant, BOGUS)).await.map(drop)),
        show(lease.lease_grant(with_token(grant, &svc)).await.map(drop)),
        show(m.alarm(with_token(alarms, BOGUS)).await.map(drop)),
        show(m.alarm(with_token(alarms, &svc)).await.map(drop)),
        show(
            m.status(with_token(StatusRequest {}, BOGUS))
                .await
                .map(drop),
        ),
    ];
    let mut checks = vec![
        show(put(use_at, Some(&svc), "/micro-registry/a").await),
        show(put(use_at, Some(&svc), "/elsewhere").await),
        show(put(use_at, Some(&root), "/elsewhere").await),
        show(put(use_at, None, "/micro-registry/a").await),
        show(put(use_at, Some("bogus.1"), "/micro-registry/a").await),
        show(token(use_at, "svc", "bad").await.map(drop)),
        format!(
            "{:?}",
            watch_answer(use_at, &svc, "/micro-registry/", "/micro-registry0").await
        ),
        format!("{:?}", watch_answer(use_at, &svc, "/elsewhere", "").await),
        format!(
            "{:?}",
            watch_answer(use_at, &svc, "/micro-registry/", "\0").await
        ),
    ];
    checks.extend(raft_calls);
    checks.extend(lock_and_elect(use_at, &svc).await);
    checks
}

/// The Lock and Election services with svc's token (etcdctl's `lock` and `elect` run
/// clientv3/concurrency on the client and never call them): their own KV, Lease and Watch
/// calls are made as the caller, so svc may lock and campaign on its prefix, not elsewhere,
/// and a call without a token is refused. Lease ids in keys masked.
async fn lock_and_elect(url: &str, svc: &str) -> Vec<String> {
    let show = |r: Result<String, tonic::Status>| match r {
        Ok(s) => s,
        Err(s) => format!("{:?} {}", s.code(), s.message()),
    };
    let grant = LeaseGrantRequest { ttl: 30, id: 0 };
    let lease = LeaseClient::new(channel(url).await)
        .lease_grant(with_token(grant, svc))
        .await
        .expect("svc grants a lease")
        .into_inner()
        .id;
    let masked = |key: &[u8]| {
        let key = String::from_utf8_lossy(key).into_owned();
        key.replace(&format!("{lease:x}"), "<lease>")
    };
    let (mut locks, mut elections) = (
        LockClient::new(channel(url).await),
        ElectionClient::new(channel(url).await),
    );
    let lock = |name: &str| LockRequest {
        name: name.into(),
        lease,
    };
    let mut out = Vec::new();
    let held = locks
        .lock(with_token(lock("/micro-registry/lk"), svc))
        .await;
    let key = held.as_ref().ok().map(|r| r.get_ref().key.clone());
    out.push(show(held.map(|r| masked(&r.into_inner().key))));
    if let Some(key) = key {
        let unlock = UnlockRequest { key };
        out.push(show(
            locks
                .unlock(with_token(unlock, svc))
                .await
                .map(|_| "unlocked".into()),
        ));
    }
    out.push(show(
        locks
            .lock(with_token(lock("/outside"), svc))
            .await
            .map(|_| "locked".into()),
    ));
    out.push(show(
        locks
            .lock(Request::new(lock("/micro-registry/lk")))
            .await
            .map(|_| "locked".into()),
    ));
    let campaign = CampaignRequest {
        name: b"/micro-registry/e".to_vec(),
        lease,
        value: b"p1".to_vec(),
    };
    let won = elections.campaign(with_token(campaign.clone(), svc)).await;
    let leader = won.as_ref().ok().and_then(|r| r.get_ref().leader.clone());
    out.push(show(won.map(|r| {
        r.into_inner()
            .leader
            .map(|l| masked(&l.key))
            .unwrap_or_default()
    })));
    let ask = LeaderRequest {
        name: b"/micro-registry/e".to_vec(),
    };
    let now = elections.leader(with_token(ask.clone(), svc)).await;
    out.push(show(now.map(|r| {
        r.into_inner()
            .kv
            .map(|kv| masked(&kv.value))
            .unwrap_or_default()
    })));
    let observed = async {
        let mut stream = elections.observe(with_token(ask, svc)).await?.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("no leader observed"))??;
        Ok(first
            .and_then(|r| r.kv)
            .map(|kv| masked(&kv.value))
            .unwrap_or_default())
    };
    out.push(show(observed.await));
    if let Some(leader) = leader {
        let resign = ResignRequest {
            leader: Some(leader),
        };
        out.push(show(
            elections
                .resign(with_token(resign, svc))
                .await
                .map(|_| "resigned".into()),
        ));
    }
    let outside = CampaignRequest {
        name: b"/outside".to_vec(),
        ..campaign
    };
    out.push(show(
        elections
            .campaign(with_token(outside, svc))
            .await
            .map(|_| "won".into()),
    ));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_work_on_every_member_and_auth_survives_restarts_and_snapshots() {
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = RealEtcd::start(dir.path()).await;
    let mut c = TestCluster::start_with(3, |r| {
        r.snapshot_logs = 50;
        r.logs_to_keep = 5;
    })
    .await;
    let leader = c
        .wait_for_leader(Duration::from_secs(20))
        .await
        .expect("leader");
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);

    // --- a token issued through one follower serves on the other, with etcd's answers
    let theirs = grpc_checks(&etcd.endpoint, &etcd.endpoint).await;
    let mine = grpc_checks(&c.client_url(a), &c.client_url(b)).await;
    assert_eq!(mine, theirs, "ours (left) vs etcd (right)");
    // /health stays true with auth on (the member's own read has no token).
    let ours_health = health(&c.client_url(b)).await;
    assert!(ours_health.contains("true"), "{ours_health}");
    assert_eq!(ours_health, health(&etcd.endpoint).await);
    assert_eq!(theirs[0], "ok");
    // MoveLeader is not root's in etcd 3.4 (authMaintenanceServer passes it through): svc
    // gets the leader's own answer, an unknown transferee.
    let move_leader = |url: String| async move {
        let o = etcdctl(&[url], &[SVC, "move-leader", "1234"], None).await;
        let errors: Vec<String> = o
            .stderr
            .lines()
            .filter(|l| l.starts_with("Error"))
            .map(str::to_owned)
            .collect();
        (o.ok, errors)
    };
    let their_move = move_leader(etcd.endpoint.clone()).await;
    let my_move = move_leader(c.client_url(leader)).await;
    assert_eq!(
        my_move, their_move,
        "MoveLeader as svc: ours (left) vs etcd (right)"
    );
    assert_eq!(
        their_move.1,
        ["Error: etcdserver: bad leader transferee"],
        "etcd's answer"
    );
    assert!(theirs[1].contains("permission denied"), "{theirs:?}");

    // --- a member catches up through a snapshot and knows users, roles and tokens made
    // while it was down
    let lead_url = c.client_url(leader);
    let root = token(&lead_url, "root", "rootpw")
        .await
        .expect("root token");
    let last = c.node(b).raft_status().last_log_index;
    c.stop(b).await;
    let mut admin = AuthClient::new(channel(&lead_url).await);
    admin
        .user_add(with_token(
            AuthUserAddRequest {
                name: "late".into(),
                password: "latepw".into(),
                ..Default::default()
            },
            &root,
        ))
        .await
        .expect("user add while a member is down");
    let grant = AuthUserGrantRoleRequest {
        user: "late".into(),
        role: "registry".into(),
    };
    admin
        .user_grant_role(with_token(grant, &root))
        .await
        .expect("grant role");
    let late = token(&lead_url, "late", "latepw")
        .await
        .expect("late token");
    // Past the purge batch (256 entries): the log the member needs is gone.
    for n in 0..400 {
        put(&lead_url, Some(&late), &format!("/micro-registry/s/{n}"))
            .await
            .expect("put through the leader");
    }
    let purged_past = last.unwrap_or(0) + 5;
    wait_for(
        "the leader to purge its log",
        Duration::from_secs(20),
        || {
            let purged = c.node(leader).raft_status().purged;
            async move { purged.filter(|p| *p > purged_past) }
        },
    )
    .await;
    c.restart(b).await;
    wait_for(
        "the member to install a snapshot",
        Duration::from_secs(30),
        || {
            let snap = c.node(b).raft_status().snapshot;
            async move { snap.filter(|s| *s > purged_past) }
        },
    )
    .await;
    // A serializable read is checked and served by the member alone.
    let url_b = c.client_url(b);
    let read = |key: &str, end: &str| RangeRequest {
        key: key.into(),
        range_end: end.into(),
        serializable: true,
        ..Default::default()
    };
    let mut kv_b = KvClient::new(channel(&url_b).await);
    wait_for(
        "late to read all 400 keys on the member that was down",
        Duration::from_secs(30),
        || {
            let (mut kv, req) = (
                kv_b.clone(),
                read("/micro-registry/s/", "/micro-registry/s0"),
            );
            let late = late.clone();
            async move {
                let got = kv
                    .range(with_token(req, &late))
                    .await
                    .expect("late may read");
                (got.into_inner().count == 400).then_some(())
            }
        },
    )
    .await;
    let denied = kv_b
        .range(with_token(read("/elsewhere", ""), &late))
        .await
        .expect_err("denied");
    assert_eq!(denied.code(), Code::PermissionDenied);
    put(&url_b, Some(&late), "/micro-registry/after")
        .await
        .expect("late writes through the member that was down");

    // --- every member restarts: auth stays on, users and permissions stay
    for i in 0..3 {
        c.stop(i).await;
    }
    for i in 0..3 {
        c.restart(i).await;
    }
    c.wait_for_leader(Duration::from_secs(30))
        .await
        .expect("leader after restart");
    for i in 0..3 {
        let url = c.client_url(i);
        let t = wait_for(
            "authenticate after restart",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move { token(&url, "svc", "svcpw").await.ok() }
            },
        )
        .await;
        put(&url, Some(&t), "/micro-registry/restarted")
            .await
            .expect("svc writes its prefix");
        let e = put(&url, None, "/micro-registry/restarted")
            .await
            .expect_err("no token");
        assert_eq!(e.message(), "etcdserver: user name is empty");
    }
    c.shutdown().await;
}
