//! The end-to-end harness: writes a cluster file with free ports in a temporary folder, runs the
//! real `micro up --config` on it, waits for its `[up] ready` line, and talks to the result over
//! HTTP, `etcdctl` and the `micro` command. Everything is killed when the [`Demo`] drops
//! (`micro up`'s children stop when their parent's pipe closes).

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use micro::testing::free_port;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// What the cluster file says beyond the free ports.
#[derive(Debug, Default, Clone)]
pub(crate) struct Options {
    /// `Some(endpoints)`: `backend = "etcd"` with those endpoints, no member.
    pub etcd: Option<Vec<String>>,
    /// Appended to the srv instances' command lines.
    pub srv_args: Vec<String>,
    /// Appended to the api instances' command lines.
    pub api_args: Vec<String>,
    /// Appended to the gateway's command line.
    pub gateway_args: Vec<String>,
    /// go-micro's flags before `up` (`micro --register_ttl=7 up ...`).
    pub up_flags: Vec<String>,
}

/// A running `micro up`.
pub(crate) struct Demo {
    pub dir: tempfile::TempDir,
    process: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// Registry client URLs (the members', or etcd's).
    pub endpoints: Vec<String>,
    pub gateway: SocketAddr,
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn cluster_file(options: &Options, gateway: SocketAddr) -> (String, Vec<String>) {
    let mut text = String::new();
    let endpoints = match &options.etcd {
        Some(endpoints) => {
            text.push_str(&format!(
                "[registry]\nbackend = \"etcd\"\nendpoints = {}\n\n",
                toml_list(endpoints)
            ));
            endpoints.clone()
        }
        None => {
            text.push_str("[cluster]\ntoken = \"e2e\"\ndata_dir = \"data\"\n\n");
            text.push_str("[raft]\nheartbeat_ms = 100\nelection_timeout_ms = 1000\n\n");
            let mut endpoints = Vec::new();
            for i in 0..3 {
                let client = format!("http://127.0.0.1:{}", free_port().unwrap());
                let peer = format!("http://127.0.0.1:{}", free_port().unwrap());
                text.push_str(&format!(
                    "[[member]]\nname = \"cd{i}\"\nclient_url = \"{client}\"\npeer_url = \"{peer}\"\n\n"
                ));
                endpoints.push(client);
            }
            text.push_str("[registry]\nbackend = \"embedded\"\n\n");
            endpoints
        }
    };
    for (role, name) in [
        ("srv", "one"),
        ("srv", "two"),
        ("api", "one"),
        ("api", "two"),
    ] {
        let extra = if role == "srv" {
            &options.srv_args
        } else {
            &options.api_args
        };
        text.push_str(&format!(
            "[[service]]\nname = \"{role}-{name}\"\ncommand = [\"greeter\", \"{role}\", \"--name\", \"{name}\"]\nargs = {}\n\n",
            toml_list(extra)
        ));
    }
    text.push_str(&format!(
        "[gateway]\naddress = \"{gateway}\"\nargs = {}\n",
        toml_list(&options.gateway_args)
    ));
    (text, endpoints)
}

async fn collect(stream: impl AsyncRead + Unpin, log: Arc<Mutex<Vec<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log.lock().unwrap().push(line);
    }
}

impl Demo {
    /// Writes the file, runs `micro up` and waits until it says it is ready.
    pub(crate) async fn up(options: Options) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let gateway: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
            .parse()
            .unwrap();
        let (text, endpoints) = cluster_file(&options, gateway);
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        let mut process = Command::new(env!("CARGO_BIN_EXE_micro"))
            .args(&options.up_flags)
            .arg("up")
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(collect(process.stdout.take().unwrap(), log.clone()));
        tokio::spawn(collect(process.stderr.take().unwrap(), log.clone()));
        let mut demo = Demo {
            dir,
            process,
            log,
            endpoints,
            gateway,
        };
        demo.wait_log("the `[up] ready` line", Duration::from_secs(120), |l| {
            l == "[up] ready"
        })
        .await;
        demo
    }

    /// Waits until a line of `micro up`'s output satisfies `pred`; panics with the log tail if
    /// `micro up` exits or the deadline passes first.
    pub(crate) async fn wait_log(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| pred(l)) {
                return line.clone();
            }
            if let Ok(Some(status)) = self.process.try_wait() {
                panic!(
                    "micro up exited ({status}) before {what}:\n{}",
                    self.tail(60)
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}:\n{}",
                    self.tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last `n` lines of `micro up`'s output.
    pub(crate) fn tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// The pid `micro up` reported for child `label` (`[up] started srv-one (pid 123): ...`).
    pub(crate) fn pid(&self, label: &str) -> u32 {
        let prefix = format!("[up] started {label} (pid ");
        let log = self.log.lock().unwrap();
        let line = log.iter().find(|l| l.starts_with(&prefix)).unwrap();
        line[prefix.len()..]
            .split(')')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The node id child `label` registered (`[up] srv-one registered <id> at <addr>`).
    pub(crate) fn node_id(&self, label: &str) -> String {
        let prefix = format!("[up] {label} registered ");
        let log = self.log.lock().unwrap();
        let line = log.iter().find(|l| l.starts_with(&prefix)).unwrap();
        line[prefix.len()..].split(' ').next().unwrap().to_owned()
    }

    /// Every child pid `micro up` reported.
    pub(crate) fn child_pids(&self) -> Vec<u32> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter_map(|l| l.strip_prefix("[up] started "))
            .filter_map(|l| l.split("(pid ").nth(1)?.split(')').next()?.parse().ok())
            .collect()
    }

    /// SIGKILL to `micro up` itself (no orderly stop).
    pub(crate) async fn kill_up(&mut self) {
        self.process.kill().await.unwrap();
    }

    pub(crate) fn signal(&self, label: &str, signal: Signal) {
        kill(Pid::from_raw(self.pid(label) as i32), signal).unwrap();
    }

    /// `GET path` on the gateway.
    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        http(self.gateway, "GET", path, Vec::new()).await
    }

    /// `GET /greeter/say/hello?name=John`: 200 and `(api name, srv name)` of the answer.
    pub(crate) async fn hello(&self) -> Result<(String, String), String> {
        let (status, body) = self.get("/greeter/say/hello?name=John").await;
        if status != 200 {
            return Err(format!("{status} {body}"));
        }
        pairing(&body).ok_or_else(|| format!("unexpected body {body}"))
    }

    /// Runs `etcdctl --endpoints=<registry> args..`; its stdout.
    pub(crate) async fn etcdctl(&self, args: &[&str]) -> String {
        let out = Command::new("etcdctl")
            .arg(format!("--endpoints={}", self.endpoints.join(",")))
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .await
            .expect("run etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Registry keys under `prefix`.
    pub(crate) async fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self
            .etcdctl(&["get", "--prefix", prefix, "--keys-only"])
            .await;
        out.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Runs the `micro` command with `args` and this registry's address; its stdout.
    pub(crate) async fn micro(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_micro"))
            .args(args)
            .arg(format!("--registry_address={}", self.endpoints.join(",")))
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "micro {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGTERM to `micro up`; it must stop everything in order and exit 0.
    pub(crate) async fn shutdown(mut self) {
        kill(
            Pid::from_raw(self.process.id().unwrap() as i32),
            Signal::SIGTERM,
        )
        .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), self.process.wait())
            .await
            .unwrap_or_else(|_| panic!("micro up did not stop:\n{}", self.tail(40)))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            status.success(),
            "micro up exited {status}:\n{}",
            self.tail(40)
        );
        let log = self.log.lock().unwrap();
        let at = |needles: &[&str]| {
            log.iter()
                .position(|l| needles.iter().any(|n| l.starts_with(n)))
        };
        let gateway = at(&["[up] stopped gateway"]).expect("gateway stopped");
        let service = at(&["[up] stopped srv-", "[up] stopped api-"]).expect("a service stopped");
        assert!(gateway < service, "the gateway stops before the services");
        let last_service = log
            .iter()
            .rposition(|l| l.starts_with("[up] stopped srv-") || l.starts_with("[up] stopped api-"))
            .expect("a service stopped");
        if let Some(member) = at(&["[up] stopped cd"]) {
            assert!(
                last_service < member,
                "the services stop before the registry"
            );
        }
        assert!(log.iter().any(|l| l == "[up] all stopped"));
    }
}

/// `(api, srv)` of `{"api":"api one","message":"Hello John srv two. rand:x"}`.
pub(crate) fn pairing(body: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let api = v["api"].as_str()?.strip_prefix("api ")?.to_owned();
    let msg = v["message"].as_str()?;
    let srv = msg
        .strip_prefix("Hello John srv ")?
        .split('.')
        .next()?
        .to_owned();
    Some((api, srv))
}

/// One HTTP/1.1 exchange; `(status, body)`.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(15), sender.send_request(request))
        .await
        .expect("gateway answers within 15 s")
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Whether `etcdctl` can be used; fails under CI when it is missing.
pub(crate) fn have_etcdctl() -> bool {
    let found = std::process::Command::new("etcdctl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and there is no etcdctl"
        );
        eprintln!("NOTICE: no etcdctl on PATH: test skipped (apt-get install etcd-client)");
    }
    found
}

/// Requests `n` greetings: all must answer 200; the pairings seen, with counts.
pub(crate) async fn hello_many(demo: &Demo, n: usize) -> HashMap<(String, String), usize> {
    let mut seen = HashMap::new();
    for i in 0..n {
        let pair = demo
            .hello()
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", demo.tail(30)));
        *seen.entry(pair).or_default() += 1;
    }
    seen
}

/// Test 1 (and 4): 40 requests show all four pairings; one lease per instance and one for the
/// gateway (registered as `go.micro.api`, as `micro api` does), TTL 30, each holding a
/// `/micro-registry/...` key of one of those five nodes.
pub(crate) async fn assert_pairings_and_leases(demo: &Demo) {
    let seen = hello_many(demo, 40).await;
    assert_eq!(seen.len(), 4, "all four api/srv pairings appear: {seen:?}");

    let list = demo.etcdctl(&["lease", "list"]).await;
    let mut lines = list.lines();
    assert_eq!(
        lines.next(),
        Some("found 5 leases"),
        "one lease per instance and the gateway's:\n{list}"
    );
    let ids: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert_eq!(ids.len(), 5, "{list}");
    let nodes: Vec<String> = ["srv-one", "srv-two", "api-one", "api-two"]
        .iter()
        .map(|l| demo.node_id(l))
        .collect();
    let mut attached = Vec::new();
    for id in ids {
        let ttl = demo.etcdctl(&["lease", "timetolive", id, "--keys"]).await;
        assert!(
            ttl.contains("granted with TTL(30s)"),
            "the seed's TTL: {ttl}"
        );
        let key = ttl
            .split("attached keys([")
            .nth(1)
            .and_then(|k| k.split("])").next())
            .unwrap_or_else(|| panic!("one attached key: {ttl}"));
        assert!(key.starts_with("/micro-registry/go.micro."), "{ttl}");
        attached.push(key.rsplit('/').next().unwrap().to_owned());
    }
    let (gateway, mut attached): (Vec<String>, Vec<String>) = attached
        .into_iter()
        .partition(|id| id.starts_with("go.micro.api-"));
    assert_eq!(gateway.len(), 1, "the gateway's own node: {gateway:?}");
    attached.sort();
    let mut expected = nodes.clone();
    expected.sort();
    assert_eq!(
        attached, expected,
        "each instance's key is on its own lease"
    );
}
