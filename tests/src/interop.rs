//! The independent gRPC stacks of the interop tests, Python's grpcio and Node's
//! `@grpc/grpc-js`, as child processes: their programs live in `tests/interop/`, the stacks in
//! the target directory where `tests/interop/install.sh` put them (without them the tests fail,
//! naming the script; they never skip).
//!
//! - [`client_checks`]: their client against our greeter srv, a process of `interop_node` (this
//!   package's binary) that a check can ask to restart, or to SIGTERM while its calls are in
//!   flight (`ASK restart`, `ASK pause-and-term` on the program's stdout, `OK` back on stdin);
//! - [`crate::interop_gateway`]: their server behind `greeter api` and the gateway.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use micro::testing::free_port;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::go::Run;
use crate::processes::OurCluster;

/// How long a process may take to come up or to stop.
pub const START: Duration = Duration::from_secs(30);
/// A whole client program's budget (its checks have their own, shorter ones).
const RUN: Duration = Duration::from_secs(120);

/// What only the test's own crate knows (`env!` of an integration test): the binaries of this
/// package and the target directory, under which install.sh put the stacks.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `CARGO_BIN_EXE_interop_node`: greeter roles and the gateway, graceful on SIGTERM.
    pub interop_node: PathBuf,
    /// `CARGO_BIN_EXE_compat-node`: registry members.
    pub compat_node: PathBuf,
    /// `CARGO_TARGET_TMPDIR`, `<target>/tmp`.
    pub target_tmpdir: PathBuf,
}

/// [`Paths`] of the calling test.
#[macro_export]
macro_rules! paths {
    () => {
        $crate::interop::Paths {
            interop_node: env!("CARGO_BIN_EXE_interop_node").into(),
            compat_node: env!("CARGO_BIN_EXE_compat-node").into(),
            target_tmpdir: env!("CARGO_TARGET_TMPDIR").into(),
        }
    };
}

/// One of the independent stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// grpcio, on gRPC's C core.
    Python,
    /// @grpc/grpc-js, on Node's http2.
    Node,
}

impl Stack {
    pub fn name(self) -> &'static str {
        match self {
            Stack::Python => "python",
            Stack::Node => "node",
        }
    }

    fn interpreter(self) -> &'static str {
        match self {
            Stack::Python => "python3",
            Stack::Node => "node",
        }
    }

    /// `client.py` or `client.js` (and `server.*`) in `tests/interop/<stack>/`.
    pub fn program(self, name: &str) -> PathBuf {
        let ext = match self {
            Stack::Python => "py",
            Stack::Node => "js",
        };
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("interop")
            .join(self.name())
            .join(format!("{name}.{ext}"))
    }

    /// Where install.sh put the stack: `<target>/interop/python` (a PYTHONPATH entry) or
    /// `<target>/interop/node/node_modules` (NODE_PATH).
    fn modules(self, paths: &Paths) -> PathBuf {
        let target = paths
            .target_tmpdir
            .parent()
            .unwrap_or(Path::new("target"))
            .join("interop");
        match self {
            Stack::Python => target.join("python"),
            Stack::Node => target.join("node").join("node_modules"),
        }
    }

    /// A command running `program` with the installed stack, or why it cannot run.
    pub fn command(self, paths: &Paths, program: &str) -> Result<Command, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/install.sh");
        let (marker, what) = match self {
            Stack::Python => ("grpc/__init__.py", "grpcio"),
            Stack::Node => ("@grpc/grpc-js/package.json", "@grpc/grpc-js"),
        };
        let modules = self.modules(paths);
        if !modules.join(marker).is_file() {
            return Err(format!(
                "{what} is not installed in {}: run `bash {}` first (needs {} and the {} registry)",
                modules.display(),
                script.display(),
                self.interpreter(),
                if self == Stack::Python { "PyPI" } else { "npm" },
            ));
        }
        let mut command = Command::new(self.interpreter());
        command
            .arg(self.program(program))
            .env(
                if self == Stack::Python {
                    "PYTHONPATH"
                } else {
                    "NODE_PATH"
                },
                &modules,
            )
            .kill_on_drop(true);
        Ok(command)
    }
}

pub fn signal(child: &Child, signal: Signal) -> Result<(), String> {
    let pid = child.id().ok_or("the process has already been reaped")?;
    let pid = i32::try_from(pid).map_err(|e| format!("pid {pid}: {e}"))?;
    kill(Pid::from_raw(pid), signal).map_err(|e| format!("{signal} to {pid}: {e}"))
}

/// A process of ours (`interop_node ...`), its output in a log file; killed on drop.
#[derive(Debug)]
pub struct Ours {
    pub child: Child,
    pub log: PathBuf,
}

impl Ours {
    /// Starts `interop_node args..`.
    pub fn start(paths: &Paths, args: &[String], log: PathBuf) -> Result<Ours, String> {
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(&paths.interop_node)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start interop_node {args:?}: {e}"))?;
        Ok(Ours { child, log })
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until `address` accepts connections (the process still running).
    pub async fn wait_listening(&mut self, address: &str) -> Result<(), String> {
        let deadline = Instant::now() + START;
        while tokio::net::TcpStream::connect(address).await.is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}):\n{}", self.log_tail()));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not listening on {address} within {START:?}:\n{}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn terminate(mut self) -> Result<(), String> {
        signal(&self.child, Signal::SIGTERM)?;
        self.wait_exit().await
    }

    /// Waits for the process to exit 0 (bounded).
    pub async fn wait_exit(&mut self) -> Result<(), String> {
        match tokio::time::timeout(START, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("exited {status}:\n{}", self.log_tail())),
            Ok(Err(e)) => Err(format!("waiting for it: {e}")),
            Err(_) => Err(format!(
                "no exit within {START:?} of SIGTERM:\n{}",
                self.log_tail()
            )),
        }
    }
}

/// Waits until nothing listens on `address` any more.
async fn wait_closed(address: &str) -> Result<(), String> {
    let deadline = Instant::now() + START;
    while tokio::net::TcpStream::connect(address).await.is_ok() {
        if Instant::now() >= deadline {
            return Err(format!(
                "{address} still accepts connections {START:?} after SIGTERM"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Our greeter srv on a fixed port, restarted on that port when the client asks.
struct Srv {
    paths: Paths,
    registry: String,
    address: String,
    dir: tempfile::TempDir,
    starts: usize,
    process: Option<Ours>,
}

impl Srv {
    async fn start(&mut self, name: &str) -> Result<(), String> {
        self.starts += 1;
        let args = vec![
            "greeter".to_owned(),
            "srv".to_owned(),
            "--name".to_owned(),
            name.to_owned(),
            format!("--registry_address={}", self.registry),
            format!("--server_address={}", self.address),
        ];
        let log = self.dir.path().join(format!("srv-{}.log", self.starts));
        let mut srv = Ours::start(&self.paths, &args, log)?;
        srv.wait_listening(&self.address)
            .await
            .map_err(|e| format!("greeter srv {name}: {e}"))?;
        self.process = Some(srv);
        Ok(())
    }

    fn running(&mut self) -> Result<Ours, String> {
        self.process
            .take()
            .ok_or_else(|| "the srv is not running".to_owned())
    }

    /// What an `ASK <what>` line of the client asks for.
    async fn act(&mut self, what: &str, client: &Child) -> Result<(), String> {
        match what {
            "restart" => {
                self.running()?.terminate().await?;
                self.start("restarted").await
            }
            "pause-and-term" => {
                // The client, frozen, reads nothing and grants no window: the srv's answers are
                // still queued behind flow control when it gets SIGTERM.
                let srv = self.running()?;
                signal(client, Signal::SIGSTOP)?;
                let stopped = async {
                    signal(&srv.child, Signal::SIGTERM)?;
                    wait_closed(&self.address).await
                }
                .await;
                signal(client, Signal::SIGCONT)?;
                self.process = Some(srv);
                stopped
            }
            other => Err(format!("unknown request {other:?}")),
        }
    }
}

/// Runs `stack`'s client checks against our greeter srv (with a one-member registry); panics
/// with everything said unless every check in `expected` passed.
pub async fn client_checks(paths: &Paths, stack: Stack, expected: &[&str]) {
    let mut command = stack
        .command(paths, "client")
        .unwrap_or_else(|e| panic!("{e}"));
    let cluster = OurCluster::start(&paths.compat_node, 1)
        .await
        .unwrap_or_else(|e| panic!("our registry: {e}"));
    let port = free_port().unwrap_or_else(|e| panic!("a free port: {e}"));
    let mut srv = Srv {
        paths: paths.clone(),
        registry: cluster.endpoints().join(","),
        address: format!("127.0.0.1:{port}"),
        dir: tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}")),
        starts: 0,
        process: None,
    };
    srv.start("one").await.unwrap_or_else(|e| panic!("{e}"));
    command.args([
        "--addr",
        &srv.address,
        "--instance",
        "one",
        "--restarted",
        "restarted",
    ]);
    let mut run = run_client(command, &mut srv).await;
    // After the SIGTERM check the srv must have finished its calls and exited cleanly.
    if let Some(mut process) = srv.process.take() {
        let expect_exit = run.stdout.iter().any(|l| l == "ASK pause-and-term");
        if expect_exit {
            if let Err(e) = process.wait_exit().await {
                run.error
                    .get_or_insert(format!("the srv after SIGTERM: {e}"));
            }
        } else if run.status.is_none_or(|s| !s.success()) {
            eprintln!("--- greeter srv\n{}", process.log_tail());
        }
    }
    run.assert_passed(
        &format!("{} client against our greeter srv", stack.name()),
        expected,
    );
}

/// Runs a client program until it exits or [`RUN`] passes, serving its `ASK` lines.
async fn run_client(mut command: Command, srv: &mut Srv) -> Run {
    let mut run = Run {
        stdout: Vec::new(),
        stderr: String::new(),
        status: None,
        error: None,
    };
    let spawned = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            run.error = Some(format!("start {command:?}: {e}"));
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
    let until = Instant::now() + RUN;
    loop {
        let line = match tokio::time::timeout_at(until, lines.next_line()).await {
            Err(_) => {
                run.error = Some(format!("no end within {RUN:?}"));
                break;
            }
            Ok(Err(e)) => {
                run.error = Some(format!("reading its output: {e}"));
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(line))) => line,
        };
        run.stdout.push(line.clone());
        if let Some(what) = line.strip_prefix("ASK ") {
            let reply = match srv.act(what.trim(), &child).await {
                Ok(()) => "OK\n".to_owned(),
                Err(e) => {
                    run.stdout.push(format!("HARNESS {what}: {e}"));
                    format!("ERR {}\n", e.replace('\n', " | "))
                }
            };
            if let Err(e) = stdin.write_all(reply.as_bytes()).await {
                run.error = Some(format!("answering {what}: {e}"));
                break;
            }
        }
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
