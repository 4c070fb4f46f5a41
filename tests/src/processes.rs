//! Our registry and the greeter srv as real processes (`compat-node`, this package's binary):
//! three members from a cluster file on free loopback ports, and one greeter srv registered
//! with them. Every process is killed when its handle is dropped (and stops by itself when
//! its stdin closes, should the test process die first); logs stay in the temporary
//! directory until then and are shown when a member does not come up.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use micro::testing::free_port;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::go::Members;

/// How long a member or the srv may take to come up.
const START: Duration = Duration::from_secs(60);

/// One child process, its log, and the pipe whose closing tells it to stop.
#[derive(Debug)]
struct Process {
    child: Child,
    log: PathBuf,
}

fn spawn(binary: &Path, args: &[String], log: PathBuf) -> Result<Process, String> {
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let child = Command::new(binary)
        .args(args)
        .env("RUST_LOG", "info,openraft=warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("start {}: {e}", binary.display()))?;
    Ok(Process { child, log })
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Our three-member registry, a process per member.
#[derive(Debug)]
pub struct OurCluster {
    dir: tempfile::TempDir,
    endpoints: Vec<String>,
    members: Vec<Option<Process>>,
}

impl OurCluster {
    /// Starts `n` members of `binary` (`compat-node`) and waits until each serves a
    /// linearizable read.
    pub async fn start(binary: &Path, n: usize) -> Result<OurCluster, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let mut file = format!(
            "[cluster]\ntoken = \"system-tests\"\ndata_dir = \"{}\"\n\n[raft]\n",
            dir.path().join("data").display()
        );
        let mut endpoints = Vec::new();
        for i in 0..n {
            let port = |what| free_port().map_err(|e| format!("a free {what} port: {e}"));
            let client = format!("http://127.0.0.1:{}", port("client")?);
            let peer = format!("http://127.0.0.1:{}", port("peer")?);
            file.push_str(&format!(
                "\n[[member]]\nname = \"cd{i}\"\nclient_url = \"{client}\"\npeer_url = \"{peer}\"\n"
            ));
            endpoints.push(client);
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, file).map_err(|e| format!("{}: {e}", config.display()))?;
        let mut members = Vec::new();
        for i in 0..n {
            let args = vec![
                "member".to_owned(),
                "--config".to_owned(),
                config.display().to_string(),
                "--name".to_owned(),
                format!("cd{i}"),
            ];
            let log = dir.path().join(format!("cd{i}.log"));
            members.push(Some(spawn(binary, &args, log)?));
        }
        let cluster = OurCluster {
            dir,
            endpoints,
            members,
        };
        cluster.wait_healthy().await?;
        Ok(cluster)
    }

    /// Client URLs of every member, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    async fn wait_healthy(&self) -> Result<(), String> {
        let deadline = Instant::now() + START;
        for (i, url) in self.endpoints.iter().enumerate() {
            let Some(member) = &self.members[i] else {
                continue;
            };
            while !micro::registry::member_healthy(url).await {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "member cd{i} ({url}) not healthy within {START:?}; its log:\n{}",
                        log_tail(&member.log)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// SIGKILLs member `i` and reaps it; its data stays.
    pub async fn kill_member(&mut self, i: usize) -> Result<(), String> {
        let mut member = self.members[i]
            .take()
            .ok_or_else(|| format!("member cd{i} is not running"))?;
        member
            .child
            .kill()
            .await
            .map_err(|e| format!("kill cd{i}: {e}"))
    }
}

impl Members for OurCluster {
    async fn kill(&mut self, endpoint: &str) -> Result<(), String> {
        let i = self
            .endpoints
            .iter()
            .position(|e| e == endpoint)
            .ok_or_else(|| format!("no member at {endpoint}"))?;
        self.kill_member(i).await
    }
}

/// `go.micro.srv.greeter` as a process, registered with a registry.
#[derive(Debug)]
pub struct GreeterSrv {
    process: Process,
    address: String,
    _dir: tempfile::TempDir,
}

impl GreeterSrv {
    /// Starts `greeter srv --name <name>` on a free port with `registry` as its registry and
    /// waits until it accepts connections.
    pub async fn start(binary: &Path, name: &str, registry: &[String]) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let port = free_port().map_err(|e| format!("a free port: {e}"))?;
        let address = format!("127.0.0.1:{port}");
        let args = vec![
            "greeter".to_owned(),
            "srv".to_owned(),
            "--name".to_owned(),
            name.to_owned(),
            format!("--registry_address={}", registry.join(",")),
            format!("--server_address={address}"),
        ];
        let log = dir.path().join("srv.log");
        let mut process = spawn(binary, &args, log)?;
        let deadline = Instant::now() + START;
        while tokio::net::TcpStream::connect(&address).await.is_err() {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Err(format!(
                    "greeter srv exited ({status}):\n{}",
                    log_tail(&process.log)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "greeter srv not listening on {address} within {START:?}:\n{}",
                    log_tail(&process.log)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(GreeterSrv {
            process,
            address,
            _dir: dir,
        })
    }

    /// `host:port` it serves on.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        log_tail(&self.process.log)
    }
}
