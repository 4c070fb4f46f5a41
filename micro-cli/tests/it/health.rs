//! `micro health <service>` against the embedded registry: every node of the greeter srv
//! answers SERVING (exit 0), a registered node nobody serves makes it fail (non-zero exit,
//! the node shown UNREACHABLE); and the same `grpc.health.v1.Health/Check` answered to an
//! independent client, Python's grpcio (`bash tests/interop/install.sh` installs it).

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use clap::Parser as _;
use greeter::{GreeterCli, Instance};
use micro::registry::{Node, RegisterOptions, Registry, RegistryOptions, Service};

fn srv(name: &str, registry: &str) -> greeter::Role {
    let argv = [
        "greeter",
        "srv",
        "--name",
        name,
        "--registry_address",
        registry,
    ];
    GreeterCli::try_parse_from(argv).expect("greeter args").role
}

async fn micro_health(registry: &str) -> (Output, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_micro"))
        .args([
            "health",
            "go.micro.srv.greeter",
            "--registry_address",
            registry,
        ])
        .args(["--client_request_timeout", "2s"])
        .kill_on_drop(true)
        .output()
        .await
        .expect("micro runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, stdout)
}

/// Where tests/interop/install.sh put grpcio.
fn grpcio_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("interop/python")
}

/// grpcio's answer to Check("") from `address`, as the response's bytes in hex.
async fn grpcio_check(address: &str) -> String {
    let path = grpcio_path();
    assert!(
        path.join("grpc").is_dir(),
        "grpcio is not installed in {}: run `bash tests/interop/install.sh`",
        path.display()
    );
    let script = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
check = channel.unary_unary('/grpc.health.v1.Health/Check',
    request_serializer=lambda b: b, response_deserializer=lambda b: b)
print(check(b'', timeout=5).hex())
"#;
    let output = tokio::process::Command::new("python3")
        .args(["-c", script, address])
        .env("PYTHONPATH", &path)
        .kill_on_drop(true)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "grpcio: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_of_every_node() {
    let cluster = registry_node::testing::TestCluster::start(3).await;
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("leader");
    let registry = cluster.endpoints().join(",");
    let one = Instance::start(srv("one", &registry))
        .await
        .expect("srv one");
    let two = Instance::start(srv("two", &registry))
        .await
        .expect("srv two");

    let (output, stdout) = micro_health(&registry).await;
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("service  go.micro.srv.greeter\n"),
        "{stdout}"
    );
    for instance in [&one, &two] {
        let line = format!(
            "{}\t{}\tSERVING",
            instance.node().id,
            instance.node().address
        );
        assert!(
            stdout.lines().any(|l| l == line),
            "{line} missing:\n{stdout}"
        );
    }

    // SERVING is field 1 = 1: bytes 08 01.
    assert_eq!(grpcio_check(&one.node().address).await, "0801");

    // A node registered but served by nobody: reserved port, nothing listening.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let dead_address = socket.local_addr().expect("port").to_string();
    let client = Registry::new(&RegistryOptions::new(cluster.endpoints())).expect("registry");
    let mut dead = Service::new("go.micro.srv.greeter");
    dead.nodes
        .push(Node::new("go.micro.srv.greeter", dead_address.clone()));
    let registration = client
        .register(&dead, RegisterOptions::default())
        .await
        .expect("registered");
    let (output, stdout) = micro_health(&registry).await;
    assert!(!output.status.success(), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("1 node(s) of go.micro.srv.greeter not serving"),
        "{stderr}"
    );
    let line = format!("{}\t{dead_address}\tUNREACHABLE", dead.nodes[0].id);
    assert!(
        stdout.lines().any(|l| l.starts_with(&line)),
        "{line} missing:\n{stdout}"
    );
    assert_eq!(stdout.matches("\tSERVING").count(), 2, "{stdout}");

    registration.deregister().await.expect("deregistered");
    one.stop().await.expect("one stops");
    two.stop().await.expect("two stops");
    drop(socket);
}
