//! The Go compatibility programs: built with the Go toolchain and the Debian packages of etcd's
//! client and grpc-go (no network: GOPATH mode, GOPROXY off), run with a deadline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// Where Debian's golang-*-dev packages put their sources.
const GOCODE: &str = "/usr/share/gocode";

/// What the programs import, and the Debian package that brings each.
const SOURCES: [(&str, &str); 2] = [
    ("go.etcd.io/etcd/clientv3", "golang-etcd-server-dev"),
    ("google.golang.org/grpc", "golang-google-grpc-dev"),
];

/// A built Go program in its own temporary directory (removed on drop).
#[derive(Debug)]
pub struct GoProgram {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl GoProgram {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Builds `tests/go/src/<name>` into a temporary directory; Go's build cache lives in
/// `cache_dir` (a target directory, so later runs only link). A missing toolchain or package
/// is an error that names what to install: these tests never skip.
pub async fn build(name: &str, cache_dir: &Path) -> Result<GoProgram, String> {
    let install = "apt-get install golang-go golang-etcd-server-dev golang-google-grpc-dev";
    let go = find_on_path("go").ok_or_else(|| format!("no `go` on PATH ({install})"))?;
    for (import, package) in SOURCES {
        if !Path::new(GOCODE).join("src").join(import).is_dir() {
            return Err(format!(
                "{GOCODE}/src/{import} is missing ({package}; {install})"
            ));
        }
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let path = dir.path().join(name);
    let gopath = Path::new(env!("CARGO_MANIFEST_DIR")).join("go");
    let output = Command::new(go)
        .args(["build", "-o"])
        .arg(&path)
        .arg(name)
        .env("GO111MODULE", "off")
        .env("GOPATH", format!("{}:{GOCODE}", gopath.display()))
        .env("GOCACHE", cache_dir.join("go-build"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("GOENV", "off")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("running go build: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "go build {name} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(GoProgram { path, _dir: dir })
}

fn find_on_path(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(binary))
        .find(|p| p.is_file())
}

/// Kills the member behind a client URL when a program asks (`KILL <endpoint>`).
pub trait Members {
    fn kill(&mut self, endpoint: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// For programs that never ask.
#[derive(Debug)]
pub struct NoKills;

impl Members for NoKills {
    async fn kill(&mut self, endpoint: &str) -> Result<(), String> {
        Err(format!("this run kills no member (asked for {endpoint})"))
    }
}

impl Members for micro::testing::EtcdCluster {
    async fn kill(&mut self, endpoint: &str) -> Result<(), String> {
        let i = self
            .endpoints()
            .iter()
            .position(|e| e == endpoint)
            .ok_or_else(|| format!("no etcd member at {endpoint}"))?;
        self.stop(i).await;
        Ok(())
    }
}

/// What a program printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub stdout: Vec<String>,
    pub stderr: String,
    pub status: Option<ExitStatus>,
    /// Why the run was cut short (deadline, a kill that failed), if it was.
    pub error: Option<String>,
}

impl Run {
    /// Panics (with everything the program said) unless it exited 0, every check in
    /// `expected` printed PASS, and none printed FAIL.
    pub fn assert_passed(&self, what: &str, expected: &[&str]) {
        let report = || {
            let stderr = tail(&self.stderr, 60);
            format!(
                "{what}: status {:?}, error {:?}\n--- stdout\n{}\n--- stderr (last lines)\n{stderr}",
                self.status,
                self.error,
                self.stdout.join("\n")
            )
        };
        let failed: Vec<&String> = self
            .stdout
            .iter()
            .filter(|l| l.starts_with("CHECK ") && l.contains(" FAIL "))
            .collect();
        assert!(
            failed.is_empty(),
            "failing checks {failed:#?}\n{}",
            report()
        );
        let missing: Vec<&&str> = expected
            .iter()
            .filter(|name| {
                let pass = format!("CHECK {name} PASS");
                !self.stdout.iter().any(|l| l.starts_with(&pass))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "checks without a PASS {missing:?}\n{}",
            report()
        );
        assert!(self.error.is_none(), "{}", report());
        assert!(
            self.status.is_some_and(|s| s.success()),
            "the program failed\n{}",
            report()
        );
        // What the checks measured (shown with --nocapture).
        println!("{what}:\n{}", self.stdout.join("\n"));
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `program` with `args` until it exits or `deadline` passes (then it is killed). A line
/// `KILL <endpoint>` kills that member through `members`, then `OK` goes to its stdin.
pub async fn run(
    program: &GoProgram,
    args: &[&str],
    members: &mut impl Members,
    deadline: Duration,
) -> Run {
    let mut run = Run {
        stdout: Vec::new(),
        stderr: String::new(),
        status: None,
        error: None,
    };
    let spawned = Command::new(program.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            run.error = Some(format!("start {}: {e}", program.path().display()));
            return run;
        }
    };
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        run.error = Some("no pipes to the program".into());
        return run;
    };
    // stderr is drained alongside, so a chatty program never blocks on a full pipe.
    let errors = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(stdout).lines();
    let until = tokio::time::Instant::now() + deadline;
    loop {
        let line = match tokio::time::timeout_at(until, lines.next_line()).await {
            Err(_) => {
                run.error = Some(format!("no end within {deadline:?}"));
                break;
            }
            Ok(Err(e)) => {
                run.error = Some(format!("reading its output: {e}"));
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(line))) => line,
        };
        if let Some(endpoint) = line.strip_prefix("KILL ") {
            let endpoint = endpoint.trim().to_owned();
            run.stdout.push(line);
            if let Err(e) = members.kill(&endpoint).await {
                run.error = Some(format!("kill {endpoint}: {e}"));
                break;
            }
            if let Err(e) = stdin.write_all(b"OK\n").await {
                run.error = Some(format!("confirming the kill: {e}"));
                break;
            }
            continue;
        }
        run.stdout.push(line);
    }
    if run.error.is_some() {
        let _ = child.start_kill();
    }
    run.status = match tokio::time::timeout_at(until + Duration::from_secs(5), child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            let _ = child.start_kill();
            None
        }
    };
    if let Ok(Ok(text)) = tokio::time::timeout(Duration::from_secs(5), errors).await {
        run.stderr = text;
    }
    run
}
