//! The real `etcdctl` against a three-member cluster of ours, side by side with a real `etcd`:
//! the same commands must give the same answers (ids and terms aside).

use std::time::Duration;

use crate::common::{etcdctl, etcdctl_ok, RealEtcd};
use registry_node::testing::TestCluster;
use serde_json::Value;

/// One step of the script: etcdctl arguments, optional stdin, and whether to compare as JSON.
struct Step {
    args: Vec<&'static str>,
    stdin: Option<&'static str>,
}

fn step(args: &[&'static str]) -> Step {
    Step {
        args: args.to_vec(),
        stdin: None,
    }
}

fn script() -> Vec<Step> {
    vec![
        step(&["put", "foo", "bar"]),
        step(&["put", "foo1", "bar1"]),
        step(&["put", "foo2", "bar2"]),
        step(&["put", "zoo", "zval"]),
        step(&["put", "foo1", "bar1-v2"]),
        step(&["get", "foo"]),
        step(&["get", "missing"]),
        step(&["get", "foo", "--prefix"]),
        step(&["get", "foo", "--prefix", "--keys-only"]),
        step(&["get", "foo", "--prefix", "--limit=2"]),
        step(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=DESCEND",
        ]),
        step(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=VALUE",
            "--order=ASCEND",
        ]),
        step(&[
            "get",
            "foo",
            "--prefix",
            "--sort-by=CREATE",
            "--order=DESCEND",
            "--limit=2",
        ]),
        step(&["get", "foo", "--prefix", "--rev=3"]),
        step(&["get", "foo", "zoo"]),
        step(&["get", "--from-key", "foo2"]),
        step(&["get", "foo", "--prefix", "-w", "json"]),
        step(&["get", "foo", "--prefix", "--count-only", "-w", "json"]),
        step(&["get", "foo1", "-w", "json", "--rev=3"]),
        step(&["get", "foo", "--rev=100"]),
        step(&["put", "foo", "bar-v2", "--prev-kv"]),
        step(&["del", "foo1", "--prev-kv"]),
        step(&["del", "nothing"]),
        Step {
            args: vec!["txn"],
            stdin: Some("value(\"zoo\") = \"zval\"\n\nput ok yes\nget zoo\n\nput ok no\n\n"),
        },
        Step {
            args: vec!["txn", "-w", "json"],
            stdin: Some("mod(\"zoo\") > \"100\"\n\nput ok yes\n\ndel ok\nget foo --prefix\n\n"),
        },
        Step {
            args: vec!["txn"],
            stdin: Some("version(\"nope\") = \"0\"\ncreate(\"zoo\") > \"0\"\n\nput t1 v\n\n\n"),
        },
        step(&["get", "", "--prefix"]),
        step(&["del", "foo", "--prefix"]),
        step(&["get", "", "--prefix", "-w", "json"]),
        step(&["compaction", "4"]),
        step(&["get", "foo", "--rev=3"]),
        step(&["get", "foo", "--rev=4", "--prefix"]),
        step(&["compaction", "2"]),
        step(&["put", "zoo", "z2", "--ignore-lease"]),
        step(&["put", "ghost", "--ignore-value"]),
        step(&["put", "zoo", "--ignore-value"]),
        step(&["get", "zoo", "-w", "json"]),
    ]
}

/// Drops what legitimately differs between two clusters: ids, terms.
fn normalize(text: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(text.trim()) else {
        return text.trim().to_owned();
    };
    strip_ids(&mut v);
    v.to_string()
}

/// The `Error:` lines of etcdctl's stderr (its retry logs carry times and addresses).
fn errors(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("Error")).collect()
}

fn strip_ids(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for k in ["cluster_id", "member_id", "raft_term"] {
                map.remove(k);
            }
            map.values_mut().for_each(strip_ids);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_ids),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_gives_the_answers_etcd_gives() {
    let dir = tempfile::tempdir().expect("temp dir");
    let etcd = RealEtcd::start(dir.path()).await;
    let ours = TestCluster::start(3).await;
    ours.wait_for_leader(Duration::from_secs(20))
        .await
        .expect("leader");
    // Requests go to every member in turn, so followers' forwarding is exercised too.
    let eps = ours.endpoints();
    for (i, s) in script().into_iter().enumerate() {
        let ours_ep = vec![eps[i % eps.len()].clone()];
        let theirs = etcdctl(std::slice::from_ref(&etcd.endpoint), &s.args, s.stdin).await;
        let mine = etcdctl(&ours_ep, &s.args, s.stdin).await;
        assert_eq!(
            mine.ok, theirs.ok,
            "step {i} {:?}: success differs\nours: {mine:?}\netcd: {theirs:?}",
            s.args
        );
        assert_eq!(
            normalize(&mine.stdout),
            normalize(&theirs.stdout),
            "step {i} {:?}: stdout differs",
            s.args
        );
        assert_eq!(
            errors(&mine.stderr),
            errors(&theirs.stderr),
            "step {i} {:?}: errors differ",
            s.args
        );
    }
    ours.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_list_status_and_health() {
    let ours = TestCluster::start(3).await;
    let leader = ours
        .wait_for_leader(Duration::from_secs(20))
        .await
        .expect("leader");
    let eps = ours.endpoints();

    // --- member list: every member with its name and URLs
    let list = etcdctl_ok(&eps[1..2], &["member", "list"]).await;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    for i in 0..3 {
        let c = ours.config(i);
        let want = format!(
            "{:x}, started, {}, http://{}, http://{}, false",
            c.id, c.name, c.peer_addr, c.client_addr
        );
        assert!(
            lines.contains(&want.as_str()),
            "missing {want:?} in\n{list}"
        );
    }

    // --- endpoint status: version, the same leader everywhere, raft index and term
    let status = etcdctl_ok(&eps, &["endpoint", "status", "-w", "json"]).await;
    let status: Value = serde_json::from_str(&status).expect("status json");
    let rows = status.as_array().expect("array of endpoints");
    assert_eq!(rows.len(), 3);
    let leader_id = ours.config(leader).id;
    for row in rows {
        let s = &row["Status"];
        assert_eq!(s["version"], "3.4.23");
        assert_eq!(s["leader"].as_u64(), Some(leader_id), "{row}");
        assert!(s["raftIndex"].as_u64().unwrap_or(0) >= 1, "{row}");
        assert!(s["raftTerm"].as_u64().unwrap_or(0) >= 1, "{row}");
        assert!(s["dbSize"].as_i64().unwrap_or(0) > 0, "{row}");
    }
    let table = etcdctl_ok(&eps[0..1], &["endpoint", "status"]).await;
    assert!(table.contains("3.4.23"), "{table}");

    // --- endpoint health: every member healthy
    let health = etcdctl(&eps, &["endpoint", "health"], None).await;
    assert!(health.ok, "{health:?}");
    let text = format!("{}{}", health.stdout, health.stderr);
    assert_eq!(text.matches("is healthy").count(), 3, "{text}");
    ours.shutdown().await;
}
