//! The `registry-node` binary as real processes: a cluster from a cluster file, `kill -9` of
//! every member in the middle of a stream of writes (every acknowledged write survives), and
//! clear errors for a bad file or an unknown member name.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, registry_node_bin, wait_for};
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::{PutRequest, RangeRequest};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

struct ProcCluster {
    file: std::path::PathBuf,
    names: Vec<String>,
    endpoints: Vec<String>,
    children: Vec<Option<Child>>,
}

impl ProcCluster {
    fn write_file(dir: &Path) -> ProcCluster {
        let mut text = String::from(
            "[cluster]\ntoken = \"proc-test\"\ndata_dir = \"data\"\n\n[raft]\nheartbeat_ms = 100\nelection_timeout_ms = 1000\n",
        );
        let mut names = Vec::new();
        let mut endpoints = Vec::new();
        for i in 0..3 {
            let (c, p) = (free_port(), free_port());
            text += &format!(
                "\n[[member]]\nname = \"cd{i}\"\nclient_url = \"http://127.0.0.1:{c}\"\npeer_url = \"http://127.0.0.1:{p}\"\n"
            );
            names.push(format!("cd{i}"));
            endpoints.push(format!("http://127.0.0.1:{c}"));
        }
        let file = dir.join("cluster.toml");
        std::fs::write(&file, text).expect("write cluster file");
        ProcCluster {
            file,
            names,
            endpoints,
            children: vec![None, None, None],
        }
    }

    fn start(&mut self, i: usize) {
        let child = Command::new(registry_node_bin())
            .arg("--config")
            .arg(&self.file)
            .arg("--name")
            .arg(&self.names[i])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn registry-node");
        self.children[i] = Some(child);
    }

    async fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.start_kill().expect("SIGKILL");
            c.wait().await.expect("reaped");
        }
    }

    async fn wait_writable(&self) {
        let eps = self.endpoints.clone();
        wait_for("cluster to accept a write", Duration::from_secs(30), || {
            let eps = eps.clone();
            async move {
                let mut kv = kv_client(&eps[0]);
                let mut req = tonic::Request::new(PutRequest {
                    key: b"/probe".to_vec(),
                    value: b"1".to_vec(),
                    ..Default::default()
                });
                req.set_timeout(Duration::from_secs(2));
                kv.put(req).await.ok().map(|_| ())
            }
        })
        .await;
    }
}

fn kv_client(url: &str) -> KvClient<Channel> {
    KvClient::new(
        Channel::from_shared(url.to_owned())
            .expect("url")
            .connect_lazy(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_all_members_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = ProcCluster::write_file(dir.path());
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.wait_writable().await;

    // --- a stream of writes through every member, recording what was acknowledged
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let url = cluster.endpoints[w].clone();
            let acked = acked.clone();
            tokio::spawn(async move {
                let mut kv = kv_client(&url);
                for n in 0..100_000 {
                    let key = format!("/crash/{w}/{n:06}");
                    let mut req = tonic::Request::new(PutRequest {
                        key: key.clone().into_bytes(),
                        value: b"v".to_vec(),
                        ..Default::default()
                    });
                    req.set_timeout(Duration::from_secs(2));
                    match kv.put(req).await {
                        Ok(_) => acked.lock().expect("lock").push(key),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    wait_for(
        "some writes to be acknowledged",
        Duration::from_secs(30),
        || {
            let n = acked.lock().expect("lock").len();
            async move { (n >= 200).then_some(()) }
        },
    )
    .await;

    // --- kill -9 all three in the middle of it
    for i in 0..3 {
        cluster.kill9(i).await;
    }
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(10), w).await;
    }
    let acked = acked.lock().expect("lock").clone();

    // --- restart: every acknowledged write is there
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.wait_writable().await;
    let mut kv = kv_client(&cluster.endpoints[1]);
    let resp = kv
        .range(RangeRequest {
            key: b"/crash/".to_vec(),
            range_end: b"/crash0".to_vec(),
            keys_only: true,
            ..Default::default()
        })
        .await
        .expect("range after restart")
        .into_inner();
    let present: std::collections::HashSet<Vec<u8>> =
        resp.kvs.into_iter().map(|kv| kv.key).collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|k| !present.contains(k.as_bytes()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    for i in 0..3 {
        cluster.kill9(i).await;
    }
}

async fn run_bin(args: &[&str]) -> (bool, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(registry_node_bin()).args(args).output(),
    )
    .await
    .expect("registry-node exits at once")
    .expect("ran");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_config_and_unknown_name_fail_at_once_with_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = ProcCluster::write_file(dir.path());
    let file = cluster.file.to_string_lossy().into_owned();

    let (ok, err) = run_bin(&["--config", &file, "--name", "cd7"]).await;
    assert!(!ok);
    assert!(
        err.contains(&file) && err.contains("cd7") && err.contains("cd0, cd1, cd2"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.toml");
    std::fs::write(&garbage, "[cluster\ntoken = 3").expect("write");
    let g = garbage.to_string_lossy().into_owned();
    let (ok, err) = run_bin(&["--config", &g, "--name", "cd0"]).await;
    assert!(!ok);
    assert!(err.contains(&g), "{err}");

    let typo = dir.path().join("typo.toml");
    let text = std::fs::read_to_string(&cluster.file)
        .expect("read")
        .replace("election_timeout_ms", "election_timeout");
    std::fs::write(&typo, text).expect("write");
    let t = typo.to_string_lossy().into_owned();
    let (ok, err) = run_bin(&["--config", &t]).await;
    assert!(!ok);
    assert!(
        err.contains(&t) && err.contains("election_timeout"),
        "{err}"
    );

    let (ok, err) = run_bin(&["--config", "/nonexistent/cluster.toml"]).await;
    assert!(!ok);
    assert!(err.contains("/nonexistent/cluster.toml"), "{err}");
}
