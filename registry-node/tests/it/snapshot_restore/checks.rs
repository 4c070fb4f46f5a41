//! What the snapshot test checks, the same way on ours and on a real etcd: the facts read with
//! `etcdctl get -w json`, the workload, the checks after a restore, Maintenance.Snapshot's
//! shape on the wire.

use std::time::Duration;

use serde_json::Value;

use crate::common::{etcdctl, etcdctl_ok, wait_for};

/// One key as `etcdctl get -w json` shows it; the lease only as "has one" (ids differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kv {
    pub(crate) key: String,
    pub(crate) value: String,
    pub(crate) create: i64,
    pub(crate) modified: i64,
    pub(crate) version: i64,
    pub(crate) leased: bool,
}

/// What must survive a snapshot and a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub(crate) revision: i64,
    pub(crate) kvs: Vec<Kv>,
}

/// A value that makes the snapshot span several chunks.
pub(crate) fn big_value() -> String {
    (0..70_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

/// etcdctl's JSON carries keys and values in standard base64.
pub(crate) fn b64(v: &Value) -> String {
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

pub(crate) async fn facts(eps: &[String]) -> Facts {
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
pub(crate) async fn workload(eps: &[String]) -> String {
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
pub(crate) async fn check_restored(who: &str, eps: &[String], before: &Facts, lease: &str) {
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
pub(crate) async fn stream_shape(who: &str, ep: &str) -> (Vec<u8>, Option<i64>) {
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
pub(crate) async fn applied(eps: &[String], revision: i64) {
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

pub(crate) async fn healthy(eps: &[String]) {
    wait_for("every member healthy", Duration::from_secs(30), || async {
        etcdctl(eps, &["endpoint", "health"], None)
            .await
            .ok
            .then_some(())
    })
    .await;
}
