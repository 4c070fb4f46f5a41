//! A real etcd cluster of N members as child processes, on free loopback ports in a temporary
//! directory; each member's log is kept in `<dir>/<name>.log`. Processes are killed on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::Error;

/// One member: its URLs, arguments and process (if running).
#[derive(Debug)]
struct Member {
    name: String,
    client_url: String,
    args: Vec<String>,
    child: Option<Child>,
}

/// A running real etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
}

/// The `etcd` binary on `PATH`, if any.
pub fn etcd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

/// A port free at the time of asking on 127.0.0.1, for a server started later.
///
/// Taken below Linux's ephemeral range (32768+), so a port handed out here is never the one
/// the kernel gives a later `bind(:0)` or an outgoing connection in the meantime; never the
/// same one twice in a process.
pub fn free_port() -> Result<u16, Error> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7_919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let _ = NEXT.compare_exchange(0, seed % SPAN + 1, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(Error::Io)
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one answers a linearizable read.
    pub async fn start(n: usize) -> Result<Self, Error> {
        let binary = etcd_binary().ok_or(Error::NoEtcd)?;
        let dir = tempfile::tempdir().map_err(Error::Io)?;
        let mut urls = Vec::new();
        for i in 0..n {
            let client = format!("http://127.0.0.1:{}", free_port()?);
            let peer = format!("http://127.0.0.1:{}", free_port()?);
            urls.push((format!("e{i}"), client, peer));
        }
        let initial: Vec<String> = urls.iter().map(|(n, _, p)| format!("{n}={p}")).collect();
        let token = format!("micro-test-{}", uuid::Uuid::new_v4());
        let mut members = Vec::new();
        for (name, client, peer) in urls {
            let data = dir.path().join(&name);
            let args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster={}", initial.join(",")),
                format!("--initial-cluster-token={token}"),
                "--initial-cluster-state=new".to_owned(),
            ];
            let child = spawn(&binary, &args, dir.path(), &name)?;
            members.push(Member {
                name,
                client_url: client,
                args,
                child: Some(child),
            });
        }
        let cluster = EtcdCluster { dir, members };
        cluster.wait_healthy(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// Client URLs of every member, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills member `i` (SIGKILL); its data stays.
    pub async fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts a stopped member again with its data.
    pub async fn restart(&mut self, i: usize) -> Result<(), Error> {
        let binary = etcd_binary().ok_or(Error::NoEtcd)?;
        let member = &mut self.members[i];
        if member.child.is_none() {
            member.child = Some(spawn(&binary, &member.args, self.dir.path(), &member.name)?);
        }
        Ok(())
    }

    /// Waits until every running member serves a linearizable read.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        for member in self.members.iter().filter(|m| m.child.is_some()) {
            loop {
                if crate::registry::member_healthy(&member.client_url).await {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(Error::NotHealthy {
                        member: member.name.clone(),
                        log: self.dir.path().join(format!("{}.log", member.name)),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Kills every member and removes the data.
    pub async fn shutdown(mut self) {
        for i in 0..self.members.len() {
            self.stop(i).await;
        }
    }
}

fn spawn(binary: &Path, args: &[String], dir: &Path, name: &str) -> Result<Child, Error> {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).map_err(Error::Io)?;
    let log2 = log.try_clone().map_err(Error::Io)?;
    Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::Io)
}
