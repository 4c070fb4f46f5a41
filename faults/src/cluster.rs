//! The cluster under test: three members of either backend, each a process in its own network
//! namespace, started with `ip netns exec` (which execs, so the child's pid is the member's and
//! `kill -9` / `SIGSTOP` reach it directly). Same timers for both: heartbeat 100 ms, election
//! timeout 1000 ms. Processes are killed on drop, then the network goes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proto::etcdserverpb::maintenance_client::MaintenanceClient;
use proto::etcdserverpb::StatusRequest;
use tokio::time::Instant;

use crate::net::Net;
use crate::ops;

/// Which implementation the three members run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Our `registry-node`.
    Ours,
    /// A real etcd 3.4.
    Etcd,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ours" => Ok(Target::Ours),
            "etcd" => Ok(Target::Etcd),
            _ => Err(format!("unknown target {s:?}: ours or etcd")),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Ours => "ours",
            Target::Etcd => "etcd",
        })
    }
}

const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

/// One member: how to start it and its process, if running.
#[derive(Debug)]
struct Member {
    program: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    stopped: bool,
}

/// Three running members; see the module docs.
#[derive(Debug)]
pub struct Cluster {
    members: Vec<Member>,
    /// Client URLs, reachable from the root namespace.
    pub endpoints: Vec<String>,
    /// Members' logs and data; kept (see [`Cluster::keep_dir`]) when a run fails.
    dir: Option<tempfile::TempDir>,
    dir_path: PathBuf,
    // Dropped after the processes (Drop for Cluster kills them first).
    pub net: Net,
}

impl Cluster {
    /// Starts three members of `target`. For [`Target::Ours`], each runs `member_bin` with
    /// `member_prefix` and then `--config <file> --name cdI`: the `faults` binary with
    /// `["member"]`, or a `registry-node` binary with no prefix.
    pub async fn start(
        target: Target,
        member_bin: &std::path::Path,
        member_prefix: &[String],
    ) -> anyhow::Result<Cluster> {
        const N: usize = 3;
        let net = Net::create(N)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("faults-{}-", net.id()))
            .tempdir()
            .context("temporary directory")?;
        let client = |i: usize| format!("http://{}:{CLIENT_PORT}", net.addr(i));
        let peer = |i: usize| format!("http://{}:{PEER_PORT}", net.addr(i));
        let mut members = Vec::new();
        match target {
            Target::Ours => {
                let mut text = String::from(
                    "[cluster]\ntoken = \"faults\"\ndata_dir = \"data\"\n\n[raft]\nheartbeat_ms = 100\nelection_timeout_ms = 1000\n",
                );
                for i in 0..N {
                    text += &format!(
                        "\n[[member]]\nname = \"cd{i}\"\nclient_url = \"{}\"\npeer_url = \"{}\"\n",
                        client(i),
                        peer(i)
                    );
                }
                let file = dir.path().join("cluster.toml");
                std::fs::write(&file, text).context("write the cluster file")?;
                for i in 0..N {
                    members.push(Member {
                        program: member_bin.to_owned(),
                        args: member_prefix
                            .iter()
                            .cloned()
                            .chain([
                                "--config".into(),
                                file.display().to_string(),
                                "--name".into(),
                                format!("cd{i}"),
                            ])
                            .collect(),
                        child: None,
                        stopped: false,
                    });
                }
            }
            Target::Etcd => {
                let program = which("etcd").context(
                    "no `etcd` binary on PATH (apt-get install etcd-server): the etcd run fails",
                )?;
                let initial: Vec<String> = (0..N).map(|i| format!("e{i}={}", peer(i))).collect();
                for i in 0..N {
                    let data = dir.path().join(format!("e{i}"));
                    members.push(Member {
                        program: program.clone(),
                        args: vec![
                            format!("--name=e{i}"),
                            format!("--data-dir={}", data.display()),
                            format!("--listen-client-urls={}", client(i)),
                            format!("--advertise-client-urls={}", client(i)),
                            format!("--listen-peer-urls={}", peer(i)),
                            format!("--initial-advertise-peer-urls={}", peer(i)),
                            format!("--initial-cluster={}", initial.join(",")),
                            "--initial-cluster-token=faults".into(),
                            "--initial-cluster-state=new".into(),
                            "--heartbeat-interval=100".into(),
                            "--election-timeout=1000".into(),
                            "--log-level=warn".into(),
                        ],
                        child: None,
                        stopped: false,
                    });
                }
            }
        }
        let mut cluster = Cluster {
            endpoints: (0..N).map(client).collect(),
            members,
            dir_path: dir.path().to_owned(),
            dir: Some(dir),
            net,
        };
        for i in 0..N {
            cluster.start_member(i)?;
        }
        cluster
            .wait_healthy(Duration::from_secs(30))
            .await
            .context("the new cluster did not become healthy")?;
        Ok(cluster)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members (never: for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Starts member `i` if it is not running (after a kill: with its data).
    pub fn start_member(&mut self, i: usize) -> anyhow::Result<()> {
        let ns = self.net.ns(i);
        let log_path = self.dir_path.join(format!("member{i}.log"));
        let m = &mut self.members[i];
        if m.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .context("open the member's log")?;
        let log2 = log.try_clone().context("clone the log handle")?;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(&m.program)
            .args(&m.args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .with_context(|| format!("start member {i} in {ns}"))?;
        m.child = Some(child);
        m.stopped = false;
        Ok(())
    }

    /// `kill -9` of member `i` (its data stays).
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.members[i].stopped = false;
    }

    /// SIGSTOP (`stop` true) or SIGCONT of member `i`.
    pub fn pause(&mut self, i: usize, stop: bool) {
        let m = &mut self.members[i];
        if let Some(child) = &m.child {
            let sig = if stop {
                Signal::SIGSTOP
            } else {
                Signal::SIGCONT
            };
            if kill(Pid::from_raw(child.id() as i32), sig).is_ok() {
                m.stopped = stop;
            }
        }
    }

    /// Whether member `i` runs and is not stopped.
    pub fn is_up(&self, i: usize) -> bool {
        self.members[i].child.is_some() && !self.members[i].stopped
    }

    /// Restarts killed members, continues stopped ones, removes every partition.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        for i in 0..self.len() {
            self.net.heal(i)?;
            if self.members[i].stopped {
                self.pause(i, false);
            }
            self.start_member(i)?;
        }
        Ok(())
    }

    /// The leader, as most members that answer Maintenance.Status within 500 ms report it;
    /// `None` while they disagree or have none.
    pub async fn leader(&self) -> Option<usize> {
        let mut ids = vec![None; self.len()];
        let mut votes: Vec<u64> = Vec::new();
        for (i, url) in self.endpoints.iter().enumerate() {
            if !self.is_up(i) {
                continue;
            }
            let Ok(channel) = ops::channel(url) else {
                continue;
            };
            let mut client = MaintenanceClient::new(channel);
            let answer =
                tokio::time::timeout(Duration::from_millis(500), client.status(StatusRequest {}))
                    .await;
            if let Ok(Ok(resp)) = answer {
                let resp = resp.into_inner();
                ids[i] = resp.header.map(|h| h.member_id);
                if resp.leader != 0 {
                    votes.push(resp.leader);
                }
            }
        }
        let leader = votes
            .iter()
            .find(|&&l| votes.iter().filter(|&&v| v == l).count() * 2 > self.len())?;
        ids.iter().position(|id| *id == Some(*leader))
    }

    /// Waits until every running member answers a linearizable read and a leader is agreed.
    pub async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = true;
            for (i, url) in self.endpoints.iter().enumerate() {
                if self.is_up(i) && ops::read(url, "/faults-probe", false).await.is_err() {
                    all = false;
                    break;
                }
            }
            if all {
                if let Some(l) = self.leader().await {
                    return Ok(l);
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "cluster not healthy within {timeout:?} (logs in {})",
                    self.dir_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Keeps the members' logs and data after the run (a failed run prints where).
    pub fn keep_dir(&mut self) -> PathBuf {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::write(dir.path().join(crate::net::KEPT), "kept: the run failed\n");
            let _ = dir.keep();
        }
        self.dir_path.clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            self.kill9(i);
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
