//! Kill -9 test: a child process (this test binary re-executed) appends as fast as it can
//! with tiny segments, printing every acknowledged (durability-callback) index; the parent
//! SIGKILLs it mid-stream, reopens the log and checks that every acknowledged entry is there
//! and the log is contiguous. Repeated a few rounds on the same directory.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use crate::common::*;

const ENV: &str = "RAFT_LOG_CRASH_DIR";

/// The child side; a no-op unless started by `acknowledged_entries_survive_kill9`.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV) else { return };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let store = open(std::path::Path::new(&dir), small_segments(512));
        let st = store.log_state().expect("state");
        let mut next = st.last_log_id.map(|l| l.index + 1).unwrap_or(0);
        let mut k = 1;
        loop {
            let last = next + k - 1;
            let (tx, rx) = tokio::sync::oneshot::channel();
            store
                .append_with(ents(1, next..next + k), move |r| {
                    if r.is_ok() {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "ack {last}");
                        let _ = out.flush();
                    }
                    let _ = tx.send(());
                })
                .expect("append");
            next += k;
            k = k % 7 + 1;
            // Keep a few appends in flight, like a pipelining leader.
            if next.is_multiple_of(3) {
                let _ = rx.await;
            }
        }
    });
}

#[test]
fn acknowledged_entries_survive_kill9() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("exe");
    for round in 0..4 {
        let mut child = Command::new(&exe)
            // Its full name in the package's one test binary (tests/it/main.rs).
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut max_acked: Option<u64> = None;
        let mut acks = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ack ") {
                let n: u64 = n.trim().parse().expect("ack index");
                max_acked = max_acked.max(Some(n));
                acks += 1;
                if acks >= 300 + round * 97 {
                    break;
                }
            }
        }
        child.kill().expect("kill");
        let _ = child.wait();
        let max_acked = max_acked.expect("child acknowledged something");

        let store = open(dir.path(), small_segments(512));
        let st = store.log_state().expect("state");
        let last = st.last_log_id.expect("non-empty").index;
        assert!(
            last >= max_acked,
            "round {round}: lost acked entries: last {last} < {max_acked}"
        );
        let all = store.read_range(0, u64::MAX).expect("read all");
        assert_eq!(summary(&all), expected(1, 0..last + 1), "round {round}");
        assert!(segment_files(dir.path()).len() > 3);
    }
}
