//! Processes as a user starts them by hand, one terminal each: registry members
//! (`micro registry-node --config F --name cdN`), then `micro ...` command lines given word for
//! word. Every child gets a stdin pipe and `MICRO_UP_CHILD`, so it stops by itself if this test
//! process dies, and is killed when its [`Proc`] drops; the cluster's files live in a temporary
//! folder.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::testing::free_port;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;

/// Makes a child stop when its stdin closes (the `micro` roles' orphan rule).
const PARENT_PIPE_ENV: &str = "MICRO_UP_CHILD";

/// One child process and its output lines (stdout and stderr).
pub(crate) struct Proc {
    pub label: String,
    child: Child,
    _stdin: Option<ChildStdin>,
    log: Arc<Mutex<Vec<String>>>,
}

async fn collect(stream: impl AsyncRead + Unpin, log: Arc<Mutex<Vec<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.lock().unwrap().push(line);
    }
}

impl Proc {
    /// Starts `program args..` in `dir` with `env` added.
    pub(crate) fn spawn(
        label: &str,
        program: &str,
        args: &[String],
        env: &[(&str, String)],
        dir: &std::path::Path,
    ) -> Proc {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(dir)
            .env(PARENT_PIPE_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {label}: {e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(collect(child.stdout.take().unwrap(), log.clone()));
        tokio::spawn(collect(child.stderr.take().unwrap(), log.clone()));
        Proc {
            label: label.to_owned(),
            _stdin: child.stdin.take(),
            child,
            log,
        }
    }

    /// The last `n` lines of output.
    pub(crate) fn tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until an output line satisfies `pred`; panics with the tail if the process exits
    /// or `timeout` passes first.
    pub(crate) async fn wait_line(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| pred(l)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.label, self.tail(40));
            }
            assert!(
                Instant::now() < deadline,
                "{}: no expected line within {timeout:?}:\n{}",
                self.label,
                self.tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Panics with the tail if the process has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.label, self.tail(40));
        }
    }
}

/// The path of the `micro` binary under test.
pub(crate) fn micro_bin() -> &'static str {
    env!("CARGO_BIN_EXE_micro")
}

/// `n` registry members as separate processes, as the seed's three `etcd` commands.
pub(crate) struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Proc>,
    /// Client URLs, `http://127.0.0.1:PORT`, in member order (cd0, cd1, ...).
    pub clients: Vec<String>,
}

impl Cluster {
    /// Writes the cluster file, starts every member and waits until each answers
    /// `endpoint health` (a linearizable read, so a leader is elected).
    pub(crate) async fn start(n: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from(
            "[cluster]\ntoken = \"etcd-cluster-1\"\ndata_dir = \"data\"\n\n\
             [raft]\nheartbeat_ms = 100\nelection_timeout_ms = 1000\n\n",
        );
        let mut clients = Vec::new();
        for i in 0..n {
            let client = format!("http://127.0.0.1:{}", free_port().unwrap());
            let peer = format!("http://127.0.0.1:{}", free_port().unwrap());
            text.push_str(&format!(
                "[[member]]\nname = \"cd{i}\"\nclient_url = \"{client}\"\npeer_url = \"{peer}\"\n\n"
            ));
            clients.push(client);
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        let members = (0..n)
            .map(|i| {
                let args = [
                    "registry-node".to_owned(),
                    "--config".to_owned(),
                    config.display().to_string(),
                    "--name".to_owned(),
                    format!("cd{i}"),
                ];
                Proc::spawn(&format!("cd{i}"), micro_bin(), &args, &[], dir.path())
            })
            .collect();
        let mut cluster = Cluster {
            dir,
            members,
            clients,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..n {
            while !micro::registry::member_healthy(&cluster.clients[i]).await {
                cluster.members[i].assert_running();
                assert!(
                    Instant::now() < deadline,
                    "member cd{i} not healthy within 60 s:\n{}",
                    cluster.members[i].tail(40)
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        cluster
    }

    /// `host:port` of member `i`'s client URL.
    pub(crate) fn host_port(&self, i: usize) -> &str {
        self.clients[i].trim_start_matches("http://")
    }
}

/// Splits a command line written as a user types it (single- or double-quoted parts allowed,
/// no other shell syntax) into its words; `micro` as the first word becomes the binary under
/// test.
pub(crate) fn words(line: &str) -> (String, Vec<String>) {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' | '"' if quote.is_none() => {
                quote = Some(c);
                any = true;
            }
            c if quote == Some(c) => quote = None,
            c if c.is_whitespace() && quote.is_none() => {
                if any {
                    words.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quote in {line:?}");
    if any {
        words.push(current);
    }
    assert!(!words.is_empty(), "empty command line");
    let program = words.remove(0);
    let program = if program == "micro" {
        micro_bin().to_owned()
    } else {
        program
    };
    (program, words)
}

/// Runs a command line to completion within `timeout`, with `env` added (and `ETCDCTL_API`
/// removed, so etcdctl runs as the seed's did, on its own default); `(exit ok, stdout, stderr)`.
pub(crate) async fn run(
    line: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> (bool, String, String) {
    let (program, args) = words(line);
    let mut command = Command::new(&program);
    command
        .args(&args)
        .env_remove("ETCDCTL_API")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = tokio::time::timeout(timeout, command.output())
        .await
        .unwrap_or_else(|_| panic!("{line}: no exit within {timeout:?}"))
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`run`] that must succeed; its stdout.
pub(crate) async fn run_ok(line: &str, env: &[(&str, String)]) -> String {
    let (ok, out, err) = run(line, env, Duration::from_secs(30)).await;
    assert!(ok, "{line} failed:\n{err}\n{out}");
    out
}
