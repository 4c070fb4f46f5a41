//! `etcdctl snapshot save` against our member, the cluster destroyed, `registry-node --restore`
//! into new data dirs: every key, value, create/mod revision, version, the store's revision,
//! the compaction and the lease with its key come back, and writes continue at the next
//! revision. The same steps against a real etcd 3.4 (`etcdctl snapshot save`, then `etcdctl
//! snapshot restore` and an etcd started on the restored dir) must give the same facts, so
//! ours restores as etcd does. A truncated or damaged file and a non-empty data dir are refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{etcdctl, etcdctl_ok, free_port, registry_node_bin, wait_for};
use serde_json::Value;
use tokio::process::{Child, Command};

/// One key as `etcdctl get -w json` shows it; the lease only as "has one" (ids differ).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kv {
    key: String,
    value: String,
    create: i64,
    modified: i64,
    version: i64,
    leased: bool,
}

/// What must survive a snapshot and a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Facts {
    revision: i64,
    kvs: Vec<Kv>,
}

/// A value that makes the snapshot span several chunks.
fn big_value() -> String {
    (0..70_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// etcdctl's JSON carries keys and values in standard base64.
fn b64(v: &Value) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut acc, mut out) = (0u32, 0u32, Vec::new());
    for c in v
        .as_str()
        .unwrap_or_default()
        .bytes()
        .filter(|&c| c != b'=')
    {
        let d = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64 from etcdctl");
        acc = (acc << 6) | d as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).expect("utf-8 key or value")
}

async fn facts(eps: &[String]) -> Facts {
    let out = etcdctl_ok(eps, &["get", "/s/", "--prefix", "-w", "json"]).await;
    let v: Value = serde_json::from_str(&out).expect("etcdctl json");
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let kvs = v["kvs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|kv| Kv {
                    key: b64(&kv["key"]),
                    value: b64(&kv["value"]),
                    create: int(&kv["create_revision"]),
                    modified: int(&kv["mod_revision"]),
                    version: int(&kv["version"]),
                    leased: kv["lease"].as_u64().unwrap_or(0) != 0,
                })
                .collect()
        })
        .unwrap_or_default();
    Facts {
        revision: int(&v["header"]["revision"]),
        kvs,
    }
}

/// The same writes on either system: overwrites, deletes, a key on a 600 s lease, a
/// compaction. Returns the lease id (hex, as etcdctl prints it).
async fn workload(eps: &[String]) -> String {
    for args in [
        ["put", "/s/a", "v1"],
        ["put", "/s/b", "v1"],
        ["put", "/s/a", "v2"],
        ["put", "/s/c", "v1"],
    ] {
        etcdctl_ok(eps, &args).await;
    }
    etcdctl_ok(eps, &["del", "/s/c"]).await;
    let granted = etcdctl_ok(eps, &["lease", "grant", "600"]).await;
    let lease = granted
        .split_whitespace()
        .nth(1)
        .expect("lease <id> granted")
        .to_owned();
    etcdctl_ok(eps, &["put", "/s/l", "held", &format!("--lease={lease}")]).await;
    etcdctl_ok(eps, &["put", "/s/b", "v2"]).await;
    // Past two 32 KiB chunks of the stream.
    etcdctl_ok(eps, &["put", "/s/big", &big_value()]).await;
    etcdctl_ok(eps, &["compact", "3"]).await;
    etcdctl_ok(eps, &["put", "/s/d", "v1"]).await;
    etcdctl_ok(eps, &["del", "/s/d"]).await;
    lease
}

/// The facts checked after a restore, beside `before`: same keys and revisions, the lease and
/// its key, the compaction, and the next write one revision on.
async fn check_restored(who: &str, eps: &[String], before: &Facts, lease: &str) {
    assert_eq!(
        &facts(eps).await,
        before,
        "{who}: keys and revisions after restore"
    );
    let ttl = etcdctl_ok(eps, &["lease", "timetolive", lease, "--keys"]).await;
    assert!(
        ttl.contains("granted with TTL(600s)") && ttl.contains("attached keys([/s/l])"),
        "{who}: lease after restore: {ttl}"
    );
    let compacted = etcdctl(eps, &["get", "/s/a", "--rev=2"], None).await;
    assert!(
        !compacted.ok
            && compacted
                .stderr
                .contains("required revision has been compacted"),
        "{who}: revision 2 stays compacted: {compacted:?}"
    );
    let put = etcdctl_ok(eps, &["put", "/s/e", "v1", "-w", "json"]).await;
    let put: Value = serde_json::from_str(&put).expect("put json");
    assert_eq!(
        put["header"]["revision"].as_i64(),
        Some(before.revision + 1),
        "{who}: the first write after restore"
    );
}

/// Maintenance.Snapshot on the wire, checked against etcd's shape: 32 KiB blobs, each with
/// the bytes still to come, a payload of whole 512-byte sectors, then one message with its
/// sha256. Returns the payload and the first header's revision.
async fn stream_shape(who: &str, ep: &str) -> (Vec<u8>, Option<i64>) {
    use proto::etcdserverpb::maintenance_client::MaintenanceClient;
    use sha2::Digest as _;
    let ch = tonic::transport::Channel::from_shared(ep.to_owned())
        .expect("url")
        .connect_lazy();
    let mut stream = MaintenanceClient::new(ch)
        .snapshot(proto::etcdserverpb::SnapshotRequest {})
        .await
        .expect("Snapshot")
        .into_inner();
    let mut msgs = Vec::new();
    while let Some(m) = stream.message().await.expect("snapshot stream") {
        msgs.push(m);
    }
    let (sum, chunks) = msgs.split_last().expect("a message");
    let revision = chunks
        .first()
        .and_then(|m| m.header.as_ref())
        .map(|h| h.revision);
    let mut payload = Vec::new();
    for (i, m) in chunks.iter().enumerate() {
        if i + 1 < chunks.len() {
            assert_eq!(m.blob.len(), 32 * 1024, "{who}: chunk {i}");
        }
        payload.extend_from_slice(&m.blob);
        let total = payload.len() as u64 + m.remaining_bytes;
        assert_eq!(
            total,
            chunks.iter().map(|m| m.blob.len() as u64).sum::<u64>(),
            "{who}: remaining_bytes of chunk {i}"
        );
    }
    assert!(chunks.len() > 2, "{who}: the big value spans chunks");
    assert_eq!(payload.len() % 512, 0, "{who}: whole sectors");
    assert_eq!(
        (sum.remaining_bytes, sum.blob.as_slice()),
        (0, sha2::Sha256::digest(&payload).as_slice()),
        "{who}: the sha256 last"
    );
    (payload, revision)
}

/// Waits until `eps[0]` itself (a serializable read) has applied `revision`.
async fn applied(eps: &[String], revision: i64) {
    let one = vec![eps[0].clone()];
    wait_for(
        "the member to apply the last write",
        Duration::from_secs(20),
        || {
            let one = one.clone();
            async move {
                let out = etcdctl(
                    &one,
                    &["get", "/s/", "--prefix", "-w", "json", "--consistency=s"],
                    None,
                )
                .await;
                let v: Value = serde_json::from_str(&out.stdout).ok()?;
                (v["header"]["revision"].as_i64()? >= revision).then_some(())
            }
        },
    )
    .await;
}

async fn healthy(eps: &[String]) {
    wait_for("every member healthy", Duration::from_secs(30), || async {
        etcdctl(eps, &["endpoint", "health"], None)
            .await
            .ok
            .then_some(())
    })
    .await;
}

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
