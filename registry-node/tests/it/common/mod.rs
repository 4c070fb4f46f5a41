//! Helpers shared by the integration tests: the real `etcdctl`, a real `etcd`, the
//! `registry-node` binary as a process, and deadline-bound waiting.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Output of one etcdctl run.
#[derive(Debug)]
pub(crate) struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `etcdctl` (API v3) against `endpoints`, with `stdin` piped in if given.
pub(crate) async fn etcdctl(endpoints: &[String], args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new("etcdctl");
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .expect("etcdctl is installed (apt-get install etcd-client)");
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(input.as_bytes())
            .await
            .expect("write etcdctl stdin");
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("etcdctl finished within 30 s")
        .expect("etcdctl ran");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Like [`etcdctl`], but the command must succeed; returns stdout.
pub(crate) async fn etcdctl_ok(endpoints: &[String], args: &[&str]) -> String {
    let out = etcdctl(endpoints, args, None).await;
    assert!(out.ok, "etcdctl {args:?} failed: {}", out.stderr);
    out.stdout
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) use registry_node::testing::free_port;

/// A real single-member etcd on free ports in `dir`; killed on drop.
pub(crate) struct RealEtcd {
    pub endpoint: String,
    _child: Child,
}

impl RealEtcd {
    pub(crate) async fn start(dir: &Path) -> RealEtcd {
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--name=e0")
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=e0={peer_url}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("etcd is installed (apt-get install etcd-server)");
        let eps = vec![endpoint.clone()];
        wait_for("real etcd to answer", Duration::from_secs(20), || {
            let eps = eps.clone();
            async move {
                etcdctl(&eps, &["endpoint", "health"], None)
                    .await
                    .ok
                    .then_some(())
            }
        })
        .await;
        RealEtcd {
            endpoint,
            _child: child,
        }
    }
}

/// The `registry-node` binary built for these tests.
pub(crate) fn registry_node_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_registry-node"))
}

/// A long-running etcdctl (watch, keep-alive) whose stdout is collected as it comes.
pub(crate) struct Background {
    child: Child,
    pub output: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Background {
    pub(crate) fn spawn(endpoints: &[String], args: &[&str]) -> Background {
        use tokio::io::AsyncReadExt;
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg("--dial-timeout=3s")
            .arg("--command-timeout=10s")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("etcdctl is installed");
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = output.clone();
            let mut pipe = pipe;
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .expect("lock")
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Background { child, output }
    }

    pub(crate) fn text(&self) -> String {
        self.output.lock().expect("lock").clone()
    }

    /// Waits until the output contains `needle`.
    pub(crate) async fn wait_for_text(&self, needle: &str, timeout: Duration) -> String {
        let out = self.output.clone();
        wait_for(
            &format!("etcdctl output to contain {needle:?}"),
            timeout,
            || {
                let text = out.lock().expect("lock").clone();
                async move { text.contains(needle).then_some(text) }
            },
        )
        .await
    }

    /// Whether the process is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .is_ok()
    }
}
