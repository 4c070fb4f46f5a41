//! The client port's HTTP side, side by side with a real etcd 3.4: the grpc-gateway JSON API
//! with curl and with the etcd3gw Python client, `/version`, `/health`, `/metrics`, and
//! grpc.health.v1; `etcd_server_has_leader` and `/health` flip on an isolated member.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{wait_for, RealEtcd};
use registry_node::testing::TestCluster;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// One curl: HTTP status and body.
async fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("curl is installed (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl printed the status");
    (code.parse().expect("a status code"), body.to_owned())
}

async fn post(base: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = curl(&[&format!("{base}{path}"), "-d", body]).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (status, value)
}

/// What may differ between two servers: ids, terms, revisions, remaining TTLs.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for k in ["cluster_id", "member_id", "raft_term", "revision", "ID"] {
                map.remove(k);
            }
            if map.contains_key("grantedTTL") {
                map.remove("TTL");
            }
            for (k, child) in map.iter_mut() {
                if k.ends_with("_revision") || k == "lease" {
                    *child = Value::String("<n>".into());
                }
                normalize(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

/// The script of JSON calls; `{L}` is replaced by the lease granted first.
const SCRIPT: &[(&str, &str)] = &[
    ("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#),
    (
        "/v3/kv/put",
        r#"{"key":"Zm9vMQ==","value":"YmFyMQ==","prev_kv":true}"#,
    ),
    (
        "/v3/kv/put",
        r#"{"key":"Zm9vMQ==","value":"djI=","prev_kv":true}"#,
    ),
    ("/v3/kv/range", r#"{"key":"Zm9v"}"#),
    (
        "/v3/kv/range",
        r#"{"key":"Zm9v","range_end":"Zm9w","keys_only":true}"#,
    ),
    (
        "/v3/kv/range",
        r#"{"key":"Zm9v","range_end":"Zm9w","count_only":true}"#,
    ),
    (
        "/v3/kv/range",
        r#"{"key":"Zm9v","range_end":"Zm9w","limit":1,"sort_order":"DESCEND"}"#,
    ),
    ("/v3/kv/range", r#"{"key":"bm9uZQ=="}"#),
    ("/v3/kv/range", r#"{}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v","revision":"1000"}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v","limit":"x"}"#),
    ("/v3/kv/put", r#"{"key":"","value":"eA=="}"#),
    (
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"eA==","unknown_field":1}"#,
    ),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"target":"VALUE","key":"Zm9v","value":"eA=="}],"success":[{"request_range":{"key":"Zm9v"}},{"request_put":{"key":"dA==","value":"MQ=="}}],"failure":[{"request_delete_range":{"key":"Zm9v"}}]}"#,
    ),
    (
        "/v3/kv/txn",
        r#"{"compare":[{"target":"CREATE","key":"Zm9v","result":"GREATER","create_revision":"100000"}],"failure":[{"requestRange":{"key":"dA=="}}]}"#,
    ),
    ("/v3/kv/deleterange", r#"{"key":"Zm9vMQ==","prev_kv":true}"#),
    ("/v3/kv/deleterange", r#"{"key":"Zm9vMQ=="}"#),
    ("/v3/lease/grant", r#"{"TTL":"60"}"#),
    (
        "/v3/kv/put",
        r#"{"key":"bGVhc2Vk","value":"eA==","lease":"{L}"}"#,
    ),
    ("/v3/lease/timetolive", r#"{"ID":"{L}","keys":true}"#),
    ("/v3/kv/lease/timetolive", r#"{"ID":"{L}"}"#),
    ("/v3/lease/revoke", r#"{"ID":"{L}"}"#),
    ("/v3/kv/lease/revoke", r#"{"ID":"{L}"}"#),
    ("/v3/lease/timetolive", r#"{"ID":"{L}"}"#),
    ("/v3/kv/range", r#"{"key":"bGVhc2Vk"}"#),
    ("/v3/lease/grant", r#"{"TTL":"-1"}"#),
    ("/v3/kv/compaction", r#"{"revision":"3"}"#),
    ("/v3/kv/range", r#"{"key":"Zm9v","revision":"2"}"#),
    ("/v3/nothing/here", r#"{}"#),
];

/// Runs [`SCRIPT`] against `base`: each step's status and normalized body.
async fn run_script(base: &str) -> Vec<(String, u16, Value)> {
    let mut lease = String::new();
    let mut out = Vec::new();
    for (path, body) in SCRIPT {
        let template = body;
        let body = body.replace("{L}", &lease);
        let (status, mut value) = if *path == "/v3/nothing/here" {
            let (s, _) = curl(&[&format!("{base}{path}"), "-d", &body]).await;
            (s, Value::Null)
        } else {
            post(base, path, &body).await
        };
        if *path == "/v3/lease/grant" && lease.is_empty() {
            lease = value["ID"].as_str().expect("a lease ID").to_owned();
        }
        if let Some(msg) = value.get("error").and_then(Value::as_str) {
            // Go's JSON decoder and serde word parse errors differently: compare the code.
            if msg.contains("invalid") && value["code"] == 3 {
                value = serde_json::json!({"code": 3, "parse_error": true});
            }
        }
        normalize(&mut value);
        out.push((format!("{path} {template}"), status, value));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_gateway_answers_as_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = RealEtcd::start(dir.path()).await;
    let cluster = TestCluster::start(3).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    // A follower: its writes go through the member's forwarding, as any gRPC client's.
    let ours = cluster.client_url((leader + 1) % 3);
    let theirs = run_script(&etcd.endpoint).await;
    let mine = run_script(&ours).await;
    for (a, b) in theirs.iter().zip(&mine) {
        assert_eq!(a, b, "etcd (left) and ours (right) differ");
    }
    assert_eq!(theirs.len(), mine.len());
    cluster.shutdown().await;
}

/// A streaming curl whose output is collected as it comes.
struct Streaming {
    _child: Child,
    out: Arc<Mutex<String>>,
}

impl Streaming {
    fn start(url: &str, body: &str) -> Streaming {
        let mut child = Command::new("curl")
            .args(["-sN", url, "-d", body])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("curl runs");
        let out = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stdout.take().expect("stdout piped");
        let sink = out.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().expect("lock").push_str(&text);
            }
        });
        Streaming { _child: child, out }
    }

    /// Waits until the whole output is one JSON value (an error ends a stream without a
    /// newline).
    async fn whole(&self) -> Value {
        let out = self.out.clone();
        wait_for("the stream's error", Duration::from_secs(10), || {
            let text = out.lock().expect("lock").clone();
            async move { serde_json::from_str(&text).ok() }
        })
        .await
    }

    /// Waits for `n` complete lines and returns them normalized.
    async fn lines(&self, n: usize) -> Vec<Value> {
        let out = self.out.clone();
        wait_for(
            &format!("{n} lines of the stream"),
            Duration::from_secs(10),
            || {
                let text = out.lock().expect("lock").clone();
                async move {
                    let lines: Vec<&str> = text.split_terminator('\n').collect();
                    (text.ends_with('\n') && lines.len() >= n).then(|| {
                        lines
                            .iter()
                            .map(|l| {
                                let mut v: Value = serde_json::from_str(l).expect("a JSON line");
                                normalize(&mut v);
                                v
                            })
                            .collect()
                    })
                }
            },
        )
        .await
    }
}

/// `/v3/watch`: created, a put with its previous value, a delete; the same on both servers.
async fn watch_script(base: &str) -> Vec<Value> {
    post(base, "/v3/kv/put", r#"{"key":"dw==","value":"MA=="}"#).await;
    let watch = Streaming::start(
        &format!("{base}/v3/watch"),
        r#"{"create_request":{"key":"dw==","prev_kv":true}}"#,
    );
    watch.lines(1).await;
    post(base, "/v3/kv/put", r#"{"key":"dw==","value":"MQ=="}"#).await;
    post(base, "/v3/kv/deleterange", r#"{"key":"dw=="}"#).await;
    let lines = watch.lines(3).await;
    let bad = Streaming::start(&format!("{base}/v3/watch"), "not json");
    let mut error = bad.whole().await;
    // Go's and serde's texts differ; the code is the contract.
    if let Some(map) = error.as_object_mut() {
        map.remove("error");
        map.remove("message");
    }
    let mut all = lines;
    all.push(error);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_watch_streams_as_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = RealEtcd::start(dir.path()).await;
    let cluster = TestCluster::start(3).await;
    cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let theirs = watch_script(&etcd.endpoint).await;
    let mine = watch_script(&cluster.client_url(0)).await;
    assert_eq!(theirs, mine, "etcd (left) and ours (right) differ");
    assert_eq!(theirs.len(), 4);
    cluster.shutdown().await;
}

/// Where registry-node/tests/etcd3gw/install.sh puts etcd3gw.
fn etcd3gw_path() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("interop/etcd3gw")
}

async fn etcd3gw_check(endpoint: &str) -> String {
    let url: http::Uri = endpoint.parse().expect("an endpoint URL");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/etcd3gw/check.py");
    let out = Command::new("python3")
        .env("PYTHONPATH", etcd3gw_path())
        .arg(script)
        .arg(url.host().expect("a host"))
        .arg(url.port_u16().expect("a port").to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("check.py finished within 60 s")
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "etcd3gw against {endpoint} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd3gw_client_works_as_with_etcd() {
    let installed = std::process::Command::new("python3")
        .env("PYTHONPATH", etcd3gw_path())
        .args(["-c", "import etcd3gw"])
        .status()
        .expect("python3 runs");
    assert!(
        installed.success(),
        "etcd3gw is not installed: run registry-node/tests/etcd3gw/install.sh"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = RealEtcd::start(dir.path()).await;
    let cluster = TestCluster::start(3).await;
    let leader = cluster
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let theirs = etcd3gw_check(&etcd.endpoint).await;
    let mine = etcd3gw_check(&cluster.client_url((leader + 1) % 3)).await;
    assert_eq!(theirs, mine, "etcd (left) and ours (right) differ");
    assert!(theirs.lines().count() > 30, "every step ran:\n{theirs}");
    cluster.shutdown().await;
}
