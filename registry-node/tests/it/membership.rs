//! Membership at run time with the real `etcdctl`, the same script against three `registry-node`
//! processes and against three real `etcd` processes: grow 3 → 5 (`member add` and a new
//! member started from the printed `ETCD_INITIAL_CLUSTER` with `--initial-cluster-state
//! existing`; `member add --learner`, start, `member promote`), `move-leader` to a new member
//! (checked with `endpoint status`), and back to 3 (`member remove` of that leader and of the
//! other new member), under a continuous write load: every acknowledged put is read back with
//! its value at the end. Each step's output (ids, ports and the order of ids normalised) and
//! each error must be the same for both.

mod harness;

use std::time::Duration;

use crate::common::{etcdctl, free_port, wait_for, Out};
use harness::{Cluster, Kind, Load};

/// The whole script on one kind of cluster; returns its transcript.
async fn script(kind: Kind) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut c = Cluster::new(kind, dir.path());
    for i in 0..3 {
        c.spawn(i, None);
    }
    let eps = c.eps(&[0, 1, 2]);
    wait_for(
        &format!("{kind:?}: three members healthy"),
        Duration::from_secs(30),
        || async {
            etcdctl(&eps, &["endpoint", "health"], None)
                .await
                .ok
                .then_some(())
        },
    )
    .await;
    c.learn_ids().await;
    let mut load = Load::start(c.eps(&[0, 1, 2]));
    // Enough entries that our leader has snapshotted and purged its log (snapshot_logs = 100)
    // before the new members join: they catch up by snapshot.
    load.reach(300).await;
    c.step("member list, 3", &["member", "list"]).await;

    // --- 3 → 4: member add, then the new member from the printed lines
    let (p3, p4) = (c.slots[3].peer.clone(), c.slots[4].peer.clone());
    let out = c
        .add(
            "member add cd3",
            &["member", "add", "cd3", &format!("--peer-urls={p3}")],
        )
        .await;
    assert!(out.ok, "{kind:?}: member add: {}", out.stderr);
    assert!(
        out.stdout
            .contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{}",
        out.stdout
    );
    let initial = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .map(|l| l.trim_end_matches('"').to_owned())
        .expect("ETCD_INITIAL_CLUSTER printed");
    c.step("member list, cd3 unstarted", &["member", "list"])
        .await;
    c.spawn(3, Some(&initial));
    c.wait_started(3).await;
    if kind == Kind::Ours {
        let log = c.dir.join("cd3.log");
        wait_for(
            "cd3 to install the leader's snapshot",
            Duration::from_secs(30),
            || async {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                text.contains("installed snapshot from leader")
                    .then_some(())
            },
        )
        .await;
    }
    load.goes_on("after cd3 joined").await;
    c.step("member list, cd3 started", &["member", "list"])
        .await;

    // --- 4 → 5: a learner, refused promotion until it runs and is in sync
    let args = ["member", "add", "cd4", "--learner"];
    let out = c
        .add(
            "member add cd4 --learner",
            &[&args[..], &[&format!("--peer-urls={p4}")]].concat(),
        )
        .await;
    assert!(out.ok, "{kind:?}: member add --learner: {}", out.stderr);
    let initial = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .map(|l| l.trim_end_matches('"').to_owned())
        .expect("ETCD_INITIAL_CLUSTER printed");
    c.step("member list, learner unstarted", &["member", "list"])
        .await;
    let id4 = c.id_of(4);
    c.step("promote an unstarted learner", &["member", "promote", &id4])
        .await;
    let p5 = format!("http://127.0.0.1:{}", free_port());
    c.add(
        "a second learner",
        &[
            "member",
            "add",
            "cd5",
            "--learner",
            &format!("--peer-urls={p5}"),
        ],
    )
    .await;
    c.spawn(4, Some(&initial));
    c.wait_started(4).await;
    let eps0 = c.eps(&[0]);
    let promoted = wait_for(
        "the learner to be promoted",
        Duration::from_secs(30),
        || async {
            let out = etcdctl(&eps0, &["member", "promote", &id4], None).await;
            (!out.stderr.contains("in sync with leader")).then_some(out)
        },
    )
    .await;
    c.learn_ids().await;
    c.record("member promote cd4", &promoted);
    assert!(promoted.ok, "{kind:?}: promote: {}", promoted.stderr);
    load.goes_on("with 5 members").await;
    c.step("member list, 5", &["member", "list"]).await;

    // --- a joined member restarted (kill -9) with the same flags keeps its id and catches up
    c.kill(4).await;
    c.spawn(4, Some(&initial));
    let ep4 = c.eps(&[4]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !etcdctl(&ep4, &["endpoint", "health"], None).await.ok {
        if tokio::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(c.dir.join("cd4.log")).unwrap_or_default();
            panic!("{kind:?}: the restarted cd4 is not healthy within 30 s; its log:\n{log}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    load.goes_on("after restarting cd4").await;
    c.step("member list, cd4 restarted", &["member", "list"])
        .await;

    // --- the new members hold what was written before they joined (caught up by the leader)
    let (key, value) = load.acked.lock().expect("lock")[0].clone();
    for i in [3, 4] {
        let ep = c.eps(&[i]);
        let first = wait_for(
            "a serializable read on a new member",
            Duration::from_secs(30),
            || async {
                let out = etcdctl(
                    &ep,
                    &["get", &key, "--consistency=s", "--print-value-only"],
                    None,
                )
                .await;
                (out.ok && !out.stdout.trim().is_empty()).then_some(out.stdout)
            },
        )
        .await;
        assert_eq!(first.trim(), value, "{kind:?}: member {i}");
    }

    // --- etcd's errors
    let id0 = c.id_of(0);
    let p0 = c.slots[0].peer.clone();
    let p1 = c.slots[1].peer.clone();
    c.step("remove unknown", &["member", "remove", "1234abcd"])
        .await;
    c.add(
        "add a used peer URL",
        &["member", "add", "x", &format!("--peer-urls={p0}")],
    )
    .await;
    c.step("promote a voter", &["member", "promote", &id0])
        .await;
    c.step(
        "update to a used peer URL",
        &["member", "update", &id0, &format!("--peer-urls={p1}")],
    )
    .await;
    c.step(
        "update to its own peer URL",
        &["member", "update", &id0, &format!("--peer-urls={p0}")],
    )
    .await;
    let all = c.eps(&[0, 1, 2, 3, 4]);
    let out = etcdctl(&all, &["move-leader", "1234abcd"], None).await;
    c.record("move-leader to an unknown member", &out);

    // --- move-leader to a new member, seen by endpoint status
    let leader = c.leader(&[0, 1, 2, 3, 4]).await.expect("a leader");
    let target = if leader == 3 { 4 } else { 3 };
    let id_t = c.id_of(target);
    let out = etcdctl(&all, &["move-leader", &id_t], None).await;
    assert!(out.ok, "{kind:?}: move-leader: {}", out.stderr);
    assert!(out.stdout.contains(&format!("to {id_t}")), "{}", out.stdout);
    // Who led before differs between the two clusters; the target does not.
    let to = out
        .stdout
        .rsplit(" to ")
        .next()
        .unwrap_or_default()
        .to_owned();
    c.record(
        "move-leader",
        &Out {
            stdout: format!("Leadership transferred to {to}"),
            ..out
        },
    );
    let leads = c.leader(&[0, 1, 2, 3, 4]).await;
    assert_eq!(
        leads,
        Some(target),
        "{kind:?}: endpoint status after move-leader"
    );
    load.goes_on("after move-leader").await;

    // --- 5 → 3: remove the leader, then the other new member
    let other = 7 - target;
    let id_o = c.id_of(other);
    c.step("remove the leader", &["member", "remove", &id_t])
        .await;
    c.exits(target).await;
    load.goes_on("after removing the leader").await;
    c.step("remove the other", &["member", "remove", &id_o])
        .await;
    c.exits(other).await;
    load.goes_on("back on 3 members").await;
    c.step("member list, back to 3", &["member", "list"]).await;
    let n = load.check(&c.slots[0].client).await;
    assert!(n > 0, "{kind:?}: no write acknowledged");
    for i in 0..5 {
        c.kill(i).await;
    }
    c.transcript
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_to_five_and_back_with_etcdctl_as_etcd_does() {
    let (ours, etcd) = tokio::join!(script(Kind::Ours), script(Kind::Etcd));
    eprintln!("ours:\n{}\n\netcd:\n{}", ours.join("\n"), etcd.join("\n"));
    for (o, e) in ours.iter().zip(&etcd) {
        assert_eq!(o, e, "\nours:\n{o}\netcd:\n{e}");
    }
    assert_eq!(ours.len(), etcd.len());
}
