//! `micro up` with `[cluster] tls = "auto"` (issue 19 part 3): the whole demo over TLS with a
//! throw-away CA. The gateway answers the seed's curl; the real `etcdctl` with the generated
//! `--cacert/--cert/--key` lists the registrations over https://, and without a client
//! certificate it is refused (the members run with `--client-cert-auth`).

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::testing::free_port;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(120);

fn cluster_file(gateway: SocketAddr) -> (String, Vec<String>) {
    let mut text = String::from(
        "[cluster]\ntoken = \"tls\"\ndata_dir = \"data\"\ntls = \"auto\"\n\n\
         [raft]\nheartbeat_ms = 100\nelection_timeout_ms = 1000\n\n",
    );
    let mut endpoints = Vec::new();
    for i in 0..3 {
        let (client, peer) = (free_port().unwrap(), free_port().unwrap());
        // Plain URLs in the file: `tls = "auto"` makes them https://.
        text.push_str(&format!(
            "[[member]]\nname = \"cd{i}\"\nclient_url = \"http://127.0.0.1:{client}\"\npeer_url = \"http://127.0.0.1:{peer}\"\n\n"
        ));
        endpoints.push(format!("https://127.0.0.1:{client}"));
    }
    text.push_str(&format!("[gateway]\naddress = \"{gateway}\"\n"));
    (text, endpoints)
}

/// `GET path` on `addr` with `Connection: close`: the status code and body.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut socket = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.ok()?;
        let mut seen = Vec::new();
        socket.read_to_end(&mut seen).await.ok()?;
        let text = String::from_utf8(seen).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split(' ').nth(1)?.parse().ok()?;
        Some((code, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

async fn etcdctl(endpoints: &[String], certs: &[String], args: &[&str]) -> (bool, String) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--dial-timeout=3s")
        .args(certs)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run etcdctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_over_tls_with_a_throw_away_ca() {
    let has_etcdctl = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("etcdctl").is_file()));
    if !has_etcdctl {
        eprintln!("skipped: no etcdctl on PATH (.ci/run installs etcd-client)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let gateway: SocketAddr = format!("127.0.0.1:{}", free_port().unwrap())
        .parse()
        .unwrap();
    let (text, endpoints) = cluster_file(gateway);
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    let mut up = Command::new(env!("CARGO_BIN_EXE_micro"))
        .args(["up", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    for stream in [
        Box::new(up.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(up.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log.lock().unwrap().push(line);
            }
        });
    }
    let tail = |log: &Arc<Mutex<Vec<String>>>| {
        let log = log.lock().unwrap();
        log[log.len().saturating_sub(40)..].join("\n")
    };
    let deadline = Instant::now() + DEADLINE;
    while !log.lock().unwrap().iter().any(|l| l == "[up] ready") {
        if let Ok(Some(status)) = up.try_wait() {
            panic!("micro up exited ({status}):\n{}", tail(&log));
        }
        assert!(Instant::now() < deadline, "not ready:\n{}", tail(&log));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The seed's curl through the gateway.
    let (code, body) = get(gateway, "/greeter/say/hello?name=John")
        .await
        .expect("the gateway answers");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Hello John srv"), "{body}");

    // The real etcdctl with the generated certificates sees every registration over https.
    let tls = dir.path().join("data").join("tls");
    let certs = [
        format!("--cacert={}", tls.join("ca.pem").display()),
        format!("--cert={}", tls.join("client.pem").display()),
        format!("--key={}", tls.join("client-key.pem").display()),
    ];
    let (ok, keys) = etcdctl(
        &endpoints,
        &certs,
        &["get", "--prefix", "/micro-registry/", "--keys-only"],
    )
    .await;
    assert!(ok, "{keys}");
    for service in [
        "go.micro.srv.greeter",
        "go.micro.api.greeter",
        "go.micro.api",
    ] {
        let n = keys
            .lines()
            .filter(|k| k.starts_with(&format!("/micro-registry/{service}/")))
            .count();
        let expected = if service == "go.micro.api" { 1 } else { 2 };
        assert_eq!(n, expected, "{service}: {keys}");
    }
    let summary = log.lock().unwrap().join("\n");
    assert!(
        summary.contains("--cacert="),
        "the summary names the certificates"
    );
    // Without a client certificate the members refuse (--client-cert-auth).
    let (ok, out) = etcdctl(
        &endpoints,
        &certs[..1],
        &["get", "--prefix", "/micro-registry/"],
    )
    .await;
    assert!(!ok, "a client without a certificate was let in: {out}");

    kill(Pid::from_raw(up.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), up.wait())
        .await
        .unwrap_or_else(|_| panic!("micro up did not stop:\n{}", tail(&log)))
        .unwrap();
    assert!(
        status.success(),
        "micro up exited {status}:\n{}",
        tail(&log)
    );
}
