//! etcd's authentication and roles with the real `etcdctl --user`, side by side with a real
//! etcd 3.4: the same script must print the same answers on both. Then what only a cluster of
//! ours shows: a token issued through one member works on the others, and the auth state
//! survives a restart of every member and a member catching up through a snapshot.

mod common;

use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use common::{etcdctl, wait_for, RealEtcd};
use proto::authpb::permission::Type as PermType;
use proto::authpb::Permission;
use proto::etcdserverpb::auth_client::AuthClient;
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::watch_request::RequestUnion;
use proto::etcdserverpb::*;
use registry_node::testing::TestCluster;
use tonic::transport::Channel;
use tonic::{Code, Request};

const ROOT: &str = "--user=root:rootpw";
const SVC: &str = "--user=svc:svcpw";
const OTHER: &str = "--user=other:otherpw";

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
/// step's success, stdout (lease ids masked) and `Error:` lines.
async fn run(eps: &[String]) -> Vec<(bool, String, Vec<String>)> {
    let mut lease = String::new();
    let mut out = Vec::new();
    for (i, s) in script().into_iter().enumerate() {
        let args: Vec<String> = s.iter().map(|a| a.replace("{lease}", &lease)).collect();
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
        stdout = stdout.replace(&ep[0], "<ep>");
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
    let theirs = run(std::slice::from_ref(&etcd.endpoint)).await;
    // Every member in turn: followers forward, and check tokens issued through others.
    let mine = run(&ours.endpoints()).await;
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
    vec![
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
    ]
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
    assert!(theirs[1].contains("permission denied"), "{theirs:?}");

    // --- a member catches up through a snapshot and knows users, roles and tokens made
    // while it was down
    let lead_url = c.client_url(leader);
    let root = token(&lead_url, "root", "rootpw")
        .await
        .expect("root token");
    let last = c.node(b).raft().metrics().borrow_watched().last_log_index;
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
            let m = c.node(leader).raft().metrics().borrow_watched().clone();
            async move { m.purged.filter(|p| p.index > purged_past) }
        },
    )
    .await;
    c.restart(b).await;
    wait_for(
        "the member to install a snapshot",
        Duration::from_secs(30),
        || {
            let snap = c.node(b).raft().metrics().borrow_watched().snapshot;
            async move { snap.filter(|s| s.index > purged_past) }
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
