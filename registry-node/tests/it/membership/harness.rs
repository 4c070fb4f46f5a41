//! The processes of the membership test: five member slots of ours or of a real etcd, the
//! etcdctl steps with their normalised outcomes, and a client's write load.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{etcdctl, free_port, registry_node_bin, wait_for, Out};
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::{PutRequest, RangeRequest};
use serde_json::Value;
use tokio::process::{Child, Command};
use tonic::transport::Channel;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    Ours,
    Etcd,
}

pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) client: String,
    pub(crate) peer: String,
    pub(crate) child: Option<Child>,
}

/// Five member slots (three initial, two added later) of one kind, as processes.
pub(crate) struct Cluster {
    pub(crate) kind: Kind,
    pub(crate) dir: PathBuf,
    pub(crate) slots: Vec<Slot>,
    /// Hex member ids (and the cluster id) → a stable label, for comparing outputs.
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) transcript: Vec<String>,
}

pub(crate) const TOKEN: &str = "membership-test";

impl Cluster {
    pub(crate) fn new(kind: Kind, dir: &Path) -> Cluster {
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
    pub(crate) fn spawn(&mut self, i: usize, joining: Option<&str>) {
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
    pub(crate) async fn exits(&mut self, i: usize) {
        let what = format!(
            "{:?} {} to stop after its removal",
            self.kind, self.slots[i].name
        );
        let child = self.slots[i].child.as_mut().expect("running");
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        assert!(status.is_ok(), "timed out waiting for {what}");
        self.slots[i].child = None;
    }

    pub(crate) async fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.slots[i].child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    pub(crate) fn eps(&self, which: &[usize]) -> Vec<String> {
        which
            .iter()
            .map(|i| self.slots[*i].client.clone())
            .collect()
    }

    /// Runs etcdctl against cd0 (always a member), then learns the ids the output may name.
    pub(crate) async fn ctl(&mut self, args: &[&str]) -> Out {
        let out = etcdctl(&self.eps(&[0]), args, None).await;
        self.learn_ids().await;
        out
    }

    /// Records a step's normalised outcome: stdout, or etcdctl's `Error:` line.
    pub(crate) fn record(&mut self, step: &str, out: &Out) -> String {
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

    pub(crate) async fn step(&mut self, step: &str, args: &[&str]) -> String {
        let out = self.ctl(args).await;
        self.record(step, &out)
    }

    pub(crate) async fn members_json(&self) -> Vec<Value> {
        let out = etcdctl(&self.eps(&[0]), &["member", "list", "-w", "json"], None).await;
        if !out.ok {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&out.stdout).expect("member list json");
        v["members"].as_array().cloned().unwrap_or_default()
    }

    pub(crate) async fn learn_ids(&mut self) {
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
    pub(crate) fn id_of(&self, i: usize) -> String {
        let label = format!("<{}>", self.slots[i].name);
        self.labels
            .iter()
            .find(|(_, l)| **l == label)
            .map(|(hex, _)| hex.clone())
            .expect("member id known")
    }

    /// Ids and ports replaced by labels, `ETCD_INITIAL_CLUSTER` and table rows in a stable order.
    pub(crate) fn normalize(&self, text: &str) -> String {
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
    pub(crate) async fn wait_started(&self, i: usize) {
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
    pub(crate) async fn add(&mut self, step: &str, args: &[&str]) -> Out {
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
    pub(crate) async fn leader(&self, running: &[usize]) -> Option<usize> {
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
pub(crate) struct Load {
    pub(crate) acked: Arc<Mutex<Vec<(String, String)>>>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) task: tokio::task::JoinHandle<()>,
    pub(crate) seen: usize,
}

impl Load {
    pub(crate) fn start(endpoints: Vec<String>) -> Load {
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
    pub(crate) async fn goes_on(&mut self, phase: &str) {
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
    pub(crate) async fn reach(&mut self, n: usize) {
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
    pub(crate) async fn check(self, endpoint: &str) -> usize {
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
