//! `etcdctl snapshot save` against our member, the cluster destroyed, `registry-node --restore`
//! into new data dirs: every key, value, create/mod revision, version, the store's revision,
//! the compaction and the lease with its key come back, and writes continue at the next
//! revision. The same steps against a real etcd 3.4 (`etcdctl snapshot save`, then `etcdctl
//! snapshot restore` and an etcd started on the restored dir) must give the same facts, so
//! ours restores as etcd does. A truncated or damaged file and a non-empty data dir are refused.

mod checks;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::{etcdctl, etcdctl_ok, free_port, registry_node_bin};
use checks::{applied, check_restored, facts, healthy, stream_shape, workload, Facts};
use tokio::process::{Child, Command};

/// Three `registry-node` processes from one cluster file.
struct Ours {
    dir: PathBuf,
    file: PathBuf,
    endpoints: Vec<String>,
    children: Vec<Child>,
}

impl Ours {
    fn new(dir: &Path) -> Ours {
        let mut text = String::from(
            "[cluster]\ntoken = \"snapshot-test\"\ndata_dir = \"data\"\n\n[raft]\nheartbeat_ms = 100\nelection_timeout_ms = 1000\n",
        );
        let mut endpoints = Vec::new();
        for i in 0..3 {
            let (c, p) = (free_port(), free_port());
            text += &format!(
                "\n[[member]]\nname = \"cd{i}\"\nclient_url = \"http://127.0.0.1:{c}\"\npeer_url = \"http://127.0.0.1:{p}\"\n"
            );
            endpoints.push(format!("http://127.0.0.1:{c}"));
        }
        let file = dir.join("cluster.toml");
        std::fs::write(&file, text).expect("write cluster file");
        Ours {
            dir: dir.to_owned(),
            file,
            endpoints,
            children: Vec::new(),
        }
    }

    /// `registry-node` with `extra`, its log (stdout and stderr) in the file `log`.
    fn command(&self, extra: &[&str], log: &str) -> Command {
        let log = std::fs::File::create(self.dir.join(log)).expect("log file");
        let mut cmd = Command::new(registry_node_bin());
        cmd.arg("--config")
            .arg(&self.file)
            .args(extra)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true);
        cmd
    }

    /// Starts every member, each `--restore`d from `restore` if given.
    fn start(&mut self, restore: Option<&Path>) {
        for i in 0..3 {
            let name = format!("cd{i}");
            let mut extra = vec!["--name", &name];
            if let Some(f) = restore.and_then(Path::to_str) {
                extra.extend(["--restore", f]);
            }
            let child = self
                .command(&extra, &format!("{name}.log"))
                .spawn()
                .expect("spawn registry-node");
            self.children.push(child);
        }
    }

    async fn stop(&mut self) {
        for mut c in self.children.drain(..) {
            c.start_kill().expect("SIGKILL");
            c.wait().await.expect("reaped");
        }
    }

    /// Runs `registry-node` with `extra`, which must fail at once; returns its log.
    async fn refused(&self, extra: &[&str], what: &str) -> String {
        let log = format!("refused-{}.log", free_port());
        let mut child = self.command(extra, &log).spawn().expect("spawn");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{what}: registry-node did not exit"))
            .expect("wait");
        let text = std::fs::read_to_string(self.dir.join(&log)).expect("log");
        assert!(!status.success(), "{what}: refused, not run: {text}");
        text
    }
}

/// Our cluster: save, destroy, the refusals, restore. Returns the facts before and after.
async fn ours(dir: &Path) -> Facts {
    let mut cluster = Ours::new(dir);
    cluster.start(None);
    let eps = cluster.endpoints.clone();
    healthy(&eps).await;
    let lease = workload(&eps).await;
    let before = facts(&eps).await;
    applied(&eps, before.revision).await;
    let snap = dir.join("ours.db");
    let snap_s = snap.to_str().expect("utf-8 path");
    let saved = etcdctl_ok(&eps[..1], &["snapshot", "save", snap_s]).await;
    assert!(
        saved.contains(&format!("Snapshot saved at {snap_s}")),
        "{saved}"
    );
    let bytes = std::fs::read(&snap).expect("snapshot file");
    assert_eq!(bytes.len() % 512, 32, "etcd's shape: sectors plus a sha256");
    let (_, revision) = stream_shape("ours", &eps[0]).await;
    assert_eq!(
        revision,
        Some(before.revision),
        "the first header: the snapshot's revision"
    );

    cluster.stop().await;
    let data = dir.join("data");
    std::fs::remove_dir_all(&data).expect("destroy the cluster's data");

    // A truncated file (etcdctl would have refused the stream; a copy cut short) and a
    // damaged one are refused, and leave no data dir behind.
    let cut = dir.join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).expect("write");
    let log = cluster
        .refused(
            &["--name", "cd0", "--restore", cut.to_str().expect("path")],
            "truncated",
        )
        .await;
    assert!(log.contains("truncated"), "truncated file: {log}");
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 2] ^= 0x40;
    let bad = dir.join("bad.db");
    std::fs::write(&bad, &damaged).expect("write");
    let log = cluster
        .refused(
            &["--name", "cd0", "--restore", bad.to_str().expect("path")],
            "damaged",
        )
        .await;
    assert!(log.contains("damaged or truncated"), "damaged file: {log}");
    assert!(!data.join("cd0").join("state").exists(), "nothing written");

    // Without --name every member is restored, but only if none of their dirs holds data.
    std::fs::create_dir_all(data.join("cd1")).expect("mkdir");
    std::fs::write(data.join("cd1").join("keep"), b"x").expect("write");
    let log = cluster.refused(&["--restore", snap_s], "non-empty").await;
    assert!(log.contains("is not empty"), "non-empty data dir: {log}");
    assert!(
        !data.join("cd0").join("state").exists(),
        "no member restored"
    );
    std::fs::remove_dir_all(&data).expect("clean");

    cluster.start(Some(&snap));
    healthy(&eps).await;
    check_restored("ours", &eps, &before, &lease).await;
    cluster.stop().await;
    for i in 0..3 {
        let log = std::fs::read_to_string(dir.join(format!("cd{i}.log"))).expect("log");
        assert!(
            log.contains("restored snapshot"),
            "cd{i} was restored: {log}"
        );
    }
    before
}

/// A real single-member etcd on a data dir, on fixed URLs so a restored dir can take them.
fn etcd(data: &Path, name: &str, client: &str, peer: &str) -> Child {
    Command::new("etcd")
        .arg(format!("--name={name}"))
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster={name}={peer}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("etcd is installed (apt-get install etcd-server)")
}

/// The same on a real etcd, restored with `etcdctl snapshot restore`.
async fn real_etcd(dir: &Path) -> Facts {
    let client = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let eps = vec![client.clone()];
    let mut child = etcd(&dir.join("etcd0"), "e0", &client, &peer);
    healthy(&eps).await;
    let lease = workload(&eps).await;
    let before = facts(&eps).await;
    let snap = dir.join("etcd.db");
    let snap_s = snap.to_str().expect("utf-8 path");
    let saved = etcdctl_ok(&eps, &["snapshot", "save", snap_s]).await;
    assert!(
        saved.contains(&format!("Snapshot saved at {snap_s}")),
        "{saved}"
    );
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("reaped");

    let restore = |file: PathBuf, data: PathBuf| {
        let eps = eps.clone();
        let cluster = format!("--initial-cluster=e1={peer}");
        let adv = format!("--initial-advertise-peer-urls={peer}");
        async move {
            let data = format!("--data-dir={}", data.display());
            let file = file.to_str().expect("path").to_owned();
            let args = [
                "snapshot",
                "restore",
                &file,
                "--name=e1",
                &cluster,
                &adv,
                &data,
            ];
            etcdctl(&eps, &args, None).await
        }
    };
    // etcd refuses a truncated file and an existing data dir too.
    let bytes = std::fs::read(&snap).expect("etcd's file");
    let cut = dir.join("etcd-cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).expect("write");
    let out = restore(cut, dir.join("etcd-cut")).await;
    assert!(!out.ok && out.stderr.contains("missing hash"), "{out:?}");
    let out = restore(snap.clone(), dir.join("etcd0")).await;
    assert!(!out.ok && out.stderr.contains("exists"), "{out:?}");

    let out = restore(snap, dir.join("etcd1")).await;
    assert!(out.ok, "etcdctl snapshot restore: {out:?}");
    let _restored = etcd(&dir.join("etcd1"), "e1", &client, &peer);
    healthy(&eps).await;
    check_restored("etcd", &eps, &before, &lease).await;
    before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_save_then_restore_brings_back_every_key_and_revision_as_etcd() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ours_dir, etcd_dir) = (dir.path().join("ours"), dir.path().join("etcd"));
    std::fs::create_dir_all(&ours_dir).expect("mkdir");
    std::fs::create_dir_all(&etcd_dir).expect("mkdir");
    let (ours, etcd) = tokio::join!(ours(&ours_dir), real_etcd(&etcd_dir));
    // The same writes leave the same keys and revisions on both (lease ids aside).
    let shown: Vec<_> = ours
        .kvs
        .iter()
        .map(|kv| (&kv.key, kv.create, kv.modified, kv.version))
        .collect();
    eprintln!("restored on both at revision {}: {shown:?}", ours.revision);
    assert_eq!(ours, etcd, "ours and etcd, before and after restore");
    let keys: Vec<_> = ours.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/s/a", "/s/b", "/s/big", "/s/l"]);
    assert_eq!(ours.revision, 11, "ten writes after etcd's first revision");
}
