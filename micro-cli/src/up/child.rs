//! One child process of `micro up`: spawned from the `micro` binary itself in its own process
//! group (so a terminal's Ctrl-C reaches only `micro up`, which stops children in order), with
//! its stdout/stderr lines forwarded under a `[label]` prefix.
//!
//! Each child's stdin is a pipe that `micro up` never writes: the child (started with
//! [`PARENT_PIPE_ENV`]) shuts down gracefully when it reads end-of-file, so even a `micro up`
//! killed with SIGKILL leaves no process behind.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{ChildStdin, Command};

use super::config::Proc;

/// Set in a child's environment: stop when stdin reaches end-of-file (the parent is gone).
pub(crate) const PARENT_PIPE_ENV: &str = "MICRO_UP_CHILD";

/// A running (or exited) child.
#[derive(Debug)]
pub(super) struct Child {
    pub label: String,
    pub pid: u32,
    child: tokio::process::Child,
    /// Held, never written: dropping it tells the child to stop.
    stdin: Option<ChildStdin>,
    exited: Option<ExitStatus>,
}

impl Child {
    /// Starts `exe` with the arguments of `proc`.
    pub(super) fn spawn(exe: &Path, proc: &Proc) -> anyhow::Result<Child> {
        let mut child = Command::new(exe)
            .args(&proc.args)
            .env(PARENT_PIPE_ENV, "1")
            .env("NO_COLOR", "1")
            // A listening address in the environment would be every child's: each would
            // try the same port (see `PER_CHILD` in up/mod.rs).
            .env_remove("MICRO_SERVER_ADDRESS")
            .env_remove("MICRO_METRICS_ADDRESS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {} ({})", proc.label, exe.display()))?;
        let pid = child.id().context("child has no pid")?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward(proc.label.clone(), out, false));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward(proc.label.clone(), err, true));
        }
        println!(
            "[up] started {} (pid {pid}): micro {}",
            proc.label,
            redacted(&proc.args).join(" ")
        );
        Ok(Child {
            label: proc.label.clone(),
            pid,
            stdin: child.stdin.take(),
            child,
            exited: None,
        })
    }

    /// The exit status if the child has exited since the last look (reported once).
    pub(super) fn newly_exited(&mut self) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return None;
        }
        let status = self.child.try_wait().ok().flatten()?;
        self.exited = Some(status);
        Some(status)
    }

    pub(super) fn is_running(&mut self) -> bool {
        let _ = self.newly_exited();
        self.exited.is_none()
    }

    fn signal(&self, signal: Signal) {
        let Ok(pid) = i32::try_from(self.pid) else {
            return;
        };
        if let Err(e) = kill(Pid::from_raw(pid), signal) {
            tracing::debug!(label = %self.label, %e, "signal");
        }
    }

    /// SIGTERM, then waits up to `grace`, then SIGKILL. A child that already exited is left.
    pub(super) async fn stop(&mut self, grace: Duration) {
        if !self.is_running() {
            return;
        }
        self.signal(Signal::SIGTERM);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                println!(
                    "[up] {} did not stop within {grace:?}: killing it",
                    self.label
                );
                let _ = self.child.kill().await;
                self.child.wait().await.ok()
            }
        };
        self.stdin = None;
        self.exited = status;
        match status {
            Some(s) => println!("[up] stopped {} ({s})", self.label),
            None => println!("[up] stopped {}", self.label),
        }
    }
}

/// `args` fit for a log: a registry password given on the command line is not printed.
fn redacted(args: &[String]) -> Vec<String> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some(("--registry_password", _)) => "--registry_password=<hidden>".to_owned(),
            _ => a.clone(),
        })
        .collect()
}

/// Copies `stream` line by line to our stdout (or stderr) with a `[label]` prefix.
async fn forward(label: String, stream: impl AsyncRead + Unpin, to_stderr: bool) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if to_stderr {
            eprintln!("[{label}] {line}");
        } else {
            println!("[{label}] {line}");
        }
    }
}

/// Stops every child of `group` at once and waits for all of them.
pub(super) async fn stop_all(group: &mut [Child], grace: Duration) {
    futures::future::join_all(group.iter_mut().map(|c| c.stop(grace))).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_the_log() {
        let args = [
            "greeter",
            "--registry_password=s3cret",
            "--registry_username=u",
        ]
        .map(str::to_owned);
        let shown = super::redacted(&args).join(" ");
        assert!(
            !shown.contains("s3cret") && shown.contains("--registry_username=u"),
            "{shown}"
        );
    }
}
