//! Membership at run time with the real `etcdctl`, the same script against three `registry-node`
//! processes and against three real `etcd` processes: grow 3 → 5 (`member add` and a new
//! member started from the printed `ETCD_INITIAL_CLUSTER` with `--initial-cluster-state
//! existing`; `member add --learner`, start, `member promote`), `move-leader` to a new member
//! (checked with `endpoint status`), and back to 3 (`member remove` of that leader and of the
//! other new member), under a continuous write load: every acknowledged put is read back with
//! its value at the end. Each step's output (ids, ports and the order of ids normalised) and
//! each error must be the same for both.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{etcdctl, free_port, registry_node_bin, wait_for, Out};
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::{PutRequest, RangeRequest};
use serde_json::Value;
use tokio::process::{Child, Command};
use tonic::transport::Channel;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Ours,
    Etcd,
}

struct Slot {
    name: String,
    client: String,
    peer: String,
    child: Option<Child>,
}

/// Five member slots (three initial, two added later) of one kind, as processes.
struct Cluster {
    kind: Kind,
    dir: PathBuf,
    slots: Vec<Slot>,
    /// Hex member ids (and the cluster id) → a stable label, for comparing outputs.
    labels: BTreeMap<String, String>,
    transcript: Vec<String>,
}

const TOKEN: &str = "membership-test";

impl Cluster {
    fn new(kind: Kind, dir: &Path) -> Cluster {
        let slots: Vec<Slot> = (0..5)
            .map(|i| Slot {
                name: format!("cd{i}"),
                client: format!("http://127.0.0.1:{}", free_port()),
                peer: format!("http://127.0.0.1:{}", free_port()),
                child: None,
            })
            .collect();
        if kind == Kind::Ours {
            let mut text = format!(
                "[cluster]\ntoken = \"{TOKEN}\"\ndata_dir = \"data\"\n\n[raft]\nheartbeat_ms = 100\nelection_timeout_ms = 1000\nsnapshot_logs = 100\nlogs_to_keep = 10\n"
            );
            for s in &slots[..3] {
                text += &format!(
                    "\n[[member]]\nname = \"{}\"\nclient_url = \"{}\"\npeer_url = \"{}\"\n",
                    s.name, s.client, s.peer
                );
            }
            std::fs::write(dir.join("cluster.toml"), text).expect("write cluster file");
        }
        Cluster {
            kind,
            dir: dir.to_owned(),
            slots,
            labels: BTreeMap::new(),
            transcript: Vec::new(),
        }
    }

    /// Starts slot `i`: with `joining` (etcdctl member add's `ETCD_INITIAL_CLUSTER`) as a new
    /// member of the running cluster, else as one of the three that form it.
    fn spawn(&mut self, i: usize, joining: Option<&str>) {
        let s = &self.slots[i];
        let log = std::fs::File::create(self.dir.join(format!("{}.log", s.name))).expect("log");
        let mut cmd = match self.kind {
            Kind::Ours => {
                let mut c = Command::new(registry_node_bin());
                c.arg("--config")
                    .arg(self.dir.join("cluster.toml"))
                    .arg("--name")
                    .arg(&s.name)
                    .env("RUST_LOG", "info,openraft=warn");
                if let Some(ic) = joining {
                    let addr = s.client.trim_start_matches("http://");
                    c.arg(format!("--initial-cluster={ic}"))
                        .arg("--initial-cluster-state=existing")
                        .arg(format!("--listen-client={addr}"));
                }
                c
            }
            Kind::Etcd => {
                let initial: Vec<String> = self.slots[..3]
                    .iter()
                    .map(|s| format!("{}={}", s.name, s.peer))
                    .collect();
                let mut c = Command::new("etcd");
                c.arg(format!("--name={}", s.name))
                    .arg(format!("--data-dir={}", self.dir.join(&s.name).display()))
                    .arg(format!("--listen-client-urls={}", s.client))
                    .arg(format!("--advertise-client-urls={}", s.client))
                    .arg(format!("--listen-peer-urls={}", s.peer))
                    .arg(format!("--initial-advertise-peer-urls={}", s.peer))
                    .arg(format!("--initial-cluster-token={TOKEN}"))
                    .arg(format!(
                        "--initial-cluster={}",
                        joining.map(str::to_owned).unwrap_or(initial.join(","))
                    ))
                    .arg(format!(
                        "--initial-cluster-state={}",
                        if joining.is_some() { "existing" } else { "new" }
                    ));
                c
            }
        };
        let err = log.try_clone().expect("log");
        let child = cmd
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a member (etcd-server and the registry-node binary are installed)");
        self.slots[i].child = Some(child);
    }

    /// Waits for slot `i`'s process to end by itself (a removed member stops, as etcd's does).
    async fn exits(&mut self, i: usize) {
        let what = format!(
            "{:?} {} to stop after its removal",
            self.kind, self.slots[i].name
        );
        let child = self.slots[i].child.as_mut().expect("running");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        assert!(status.is_ok(), "timed out waiting for {what}");
        self.slots[i].child = None;
    }

    async fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.slots[i].child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    fn eps(&self, which: &[usize]) -> Vec<String> {
        which
            .iter()
            .map(|i| self.slots[*i].client.clone())
            .collect()
    }

    /// Runs etcdctl against cd0 (always a member), then learns the ids the output may name.
    async fn ctl(&mut self, args: &[&str]) -> Out {
        let out = etcdctl(&self.eps(&[0]), args, None).await;
        self.learn_ids().await;
        out
    }

    /// Records a step's normalised outcome: stdout, or etcdctl's `Error:` line.
    fn record(&mut self, step: &str, out: &Out) -> String {
        let text = if out.ok {
            self.normalize(&out.stdout)
        } else {
            let err: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("Error:"))
                .collect();
            format!("FAILED {}", err.join("\n"))
        };
        self.transcript.push(format!("## {step}\n{text}"));
        text
    }

    async fn step(&mut self, step: &str, args: &[&str]) -> String {
        let out = self.ctl(args).await;
        self.record(step, &out)
    }

    async fn members_json(&self) -> Vec<Value> {
        let out = etcdctl(&self.eps(&[0]), &["member", "list", "-w", "json"], None).await;
        if !out.ok {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&out.stdout).expect("member list json");
        v["members"].as_array().cloned().unwrap_or_default()
    }

    async fn learn_ids(&mut self) {
        let out = etcdctl(&self.eps(&[0]), &["member", "list", "-w", "json"], None).await;
        if !out.ok {
            return;
        }
        let v: Value = serde_json::from_str(&out.stdout).expect("member list json");
        if let Some(c) = v["header"]["cluster_id"].as_u64() {
            self.labels.insert(format!("{c:x}"), "<cluster>".into());
        }
        for m in v["members"].as_array().cloned().unwrap_or_default() {
            let (Some(id), Some(peer)) = (m["ID"].as_u64(), m["peerURLs"][0].as_str()) else {
                continue;
            };
            if let Some(s) = self.slots.iter().find(|s| s.peer == peer) {
                self.labels
                    .insert(format!("{id:x}"), format!("<{}>", s.name));
            }
        }
    }

    /// The id of slot `i` (it must have been listed).
    fn id_of(&self, i: usize) -> String {
        let label = format!("<{}>", self.slots[i].name);
        self.labels
            .iter()
            .find(|(_, l)| **l == label)
            .map(|(hex, _)| hex.clone())
            .expect("member id known")
    }

    /// Ids and ports replaced by labels, `ETCD_INITIAL_CLUSTER` and table rows in a stable order.
    fn normalize(&self, text: &str) -> String {
        let mut t = text.to_owned();
        for s in &self.slots {
            t = t.replace(&s.client, &format!("C{}", &s.name[2..]));
            t = t.replace(&s.peer, &format!("P{}", &s.name[2..]));
        }
        for (hex, label) in &self.labels {
            t = t.replace(hex.as_str(), label);
        }
        let mut lines: Vec<String> = t
            .lines()
            .map(|l| {
                let l = l.split_whitespace().collect::<Vec<_>>().join(" ");
                match l.strip_prefix("ETCD_INITIAL_CLUSTER=\"") {
                    Some(rest) => {
                        let mut parts: Vec<&str> = rest.trim_end_matches('"').split(',').collect();
                        parts.sort_unstable();
                        format!("ETCD_INITIAL_CLUSTER=\"{}\"", parts.join(","))
                    }
                    None => l,
                }
            })
            .collect();
        if lines.iter().all(|l| l.matches(", ").count() == 5) {
            lines.sort();
        }
        lines.join("\n")
    }

    /// Waits until slot `i` is listed as started (it has published its name).
    async fn wait_started(&self, i: usize) {
        let peer = self.slots[i].peer.clone();
        wait_for(
            &format!(
                "{:?} {} to be listed started",
                self.kind, self.slots[i].name
            ),
            Duration::from_secs(30),
            || async {
                let ms = self.members_json().await;
                ms.iter()
                    .any(|m| {
                        m["peerURLs"][0].as_str() == Some(peer.as_str())
                            && m["name"].as_str().is_some_and(|n| !n.is_empty())
                    })
                    .then_some(())
            },
        )
        .await;
    }

    /// `member add` until it is accepted: etcd refuses a change until its member has been
    /// connected to every voter for 5 s ("unhealthy cluster").
    async fn add(&mut self, step: &str, args: &[&str]) -> Out {
        let eps = self.eps(&[0]);
        let out = wait_for(step, Duration::from_secs(30), || async {
            let out = etcdctl(&eps, args, None).await;
            (!out.stderr.contains("unhealthy cluster")).then_some(out)
        })
        .await;
        self.learn_ids().await;
        self.record(step, &out);
        out
    }

    /// The slot that leads, from `endpoint status` of every running slot.
    async fn leader(&self, running: &[usize]) -> Option<usize> {
        let out = etcdctl(
            &self.eps(running),
            &["endpoint", "status", "-w", "json"],
            None,
        )
        .await;
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v.as_array()?.iter().find_map(|e| {
            let st = &e["Status"];
            let me = st["header"]["member_id"].as_u64()?;
            (me == st["leader"].as_u64()?).then(|| {
                let ep = e["Endpoint"].as_str().unwrap_or_default();
                self.slots.iter().position(|s| s.client == ep)
            })?
        })
    }
}

/// A client putting `/load/<n>` = `v<n>` through the three initial members in turn, keeping
/// what was acknowledged.
struct Load {
    acked: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    seen: usize,
}

impl Load {
    fn start(endpoints: Vec<String>) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let clients: Vec<KvClient<Channel>> = endpoints
                .iter()
                .map(|u| {
                    KvClient::new(Channel::from_shared(u.clone()).expect("url").connect_lazy())
                })
                .collect();
            let mut n = 0usize;
            while !s.load(Ordering::Relaxed) {
                n += 1;
                let (key, value) = (format!("/load/{n:07}"), format!("v{n}"));
                let mut req = tonic::Request::new(PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                });
                req.set_timeout(Duration::from_secs(3));
                let mut kv = clients[n % clients.len()].clone();
                if kv.put(req).await.is_ok() {
                    a.lock().expect("lock").push((key, value));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Load {
            acked,
            stop,
            task,
            seen: 0,
        }
    }

    /// Waits for more acknowledged writes since the last call: the load goes on through `phase`.
    async fn goes_on(&mut self, phase: &str) {
        let from = self.seen;
        let acked = self.acked.clone();
        self.seen = wait_for(
            &format!("writes acknowledged {phase}"),
            Duration::from_secs(30),
            || {
                let n = acked.lock().expect("lock").len();
                async move { (n >= from + 5).then_some(n) }
            },
        )
        .await;
    }

    /// Waits until `n` writes in all were acknowledged.
    async fn reach(&mut self, n: usize) {
        let acked = self.acked.clone();
        self.seen = wait_for(
            &format!("{n} writes acknowledged"),
            Duration::from_secs(30),
            || {
                let len = acked.lock().expect("lock").len();
                async move { (len >= n).then_some(len) }
            },
        )
        .await;
    }

    /// Stops the load; every acknowledged put must be readable, with its value, at `endpoint`.
    async fn check(self, endpoint: &str) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        let acked = self.acked.lock().expect("lock").clone();
        let ch = Channel::from_shared(endpoint.to_owned())
            .expect("url")
            .connect_lazy();
        let resp = KvClient::new(ch)
            .range(RangeRequest {
                key: b"/load/".to_vec(),
                range_end: b"/load0".to_vec(),
                ..Default::default()
            })
            .await
            .expect("linearizable range of the load")
            .into_inner();
        let stored: HashMap<String, String> = resp
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                )
            })
            .collect();
        for (k, v) in &acked {
            assert_eq!(stored.get(k), Some(v), "acknowledged put {k} = {v} lost");
        }
        acked.len()
    }
}

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
