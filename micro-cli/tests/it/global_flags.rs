//! go-micro's flags take effect, given before the command as the seed gives them: TTL and
//! heartbeat (etcdctl sees the lease's TTL and its renewals), the key prefix (keys, and what
//! `micro list services` finds under each prefix), `--server_name` and `--server_advertise`
//! (what is registered), `--client_request_timeout` and `--client_retries` (an api whose backend
//! never answers gives up after that timeout), and the gateway's CORS flags.

use crate::procs;

use std::time::Duration;

use crate::procs::{run, run_ok, Cluster, Proc};
use tokio::time::Instant;

fn have(tool: &str, version: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg(version)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and there is no {tool}"
        );
        eprintln!("NOTICE: no {tool} on PATH: test skipped");
    }
    found
}

/// `remaining(N s)` of `lease timetolive` output, and its `TTL(N s)`.
fn ttl_and_remaining(out: &str) -> (u64, u64) {
    let number = |after: &str| -> u64 {
        out.split(after)
            .nth(1)
            .and_then(|r| r.split('s').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {after} in {out}"))
    };
    (number("TTL("), number("remaining("))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_before_the_command_take_effect() {
    if !have("etcdctl", "version") || !have("curl", "--version") {
        return;
    }
    let cluster = Cluster::start(1).await;
    let dir = cluster.dir.path().to_owned();
    let reg = cluster.clients[0].clone();
    // A backend address that accepts connections and never answers: calls to it can only end
    // by the caller's timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = silent.local_addr().expect("address");
    let prefix = "--registry_prefix=/micro/registry";

    let spawn = |label: &str, line: String, env: &[(&str, String)]| {
        let (program, args) = procs::words(&line);
        Proc::spawn(label, &program, &args, env, &dir)
    };
    let mut srv = spawn(
        "srv",
        format!(
            "micro --register_ttl=7 --register_interval=2 {prefix} --server_advertise={silent} \
             --registry_address={reg} greeter srv --name one"
        ),
        &[],
    );
    srv.wait_line(Duration::from_secs(30), |l| {
        l.contains("registered go.micro.srv.greeter-") && l.contains(&format!(" at {silent}"))
    })
    .await;
    let mut api = spawn(
        "api",
        format!(
            "micro {prefix} --registry_address={reg} --client_request_timeout=300ms \
             --client_retries=0 greeter api --name one"
        ),
        &[],
    );
    api.wait_line(Duration::from_secs(30), |l| {
        l.contains("registered go.micro.api.greeter-")
    })
    .await;
    let port = micro::testing::free_port().expect("free port");
    let mut gateway = spawn(
        "gateway",
        format!(
            "micro --server_name=go.micro.api.edge {prefix} --registry_address={reg} api \
             --handler=api --cors-allowed-origins=http://app.example"
        ),
        &[("MICRO_API_ADDRESS", format!("127.0.0.1:{port}"))],
    );
    gateway
        .wait_line(Duration::from_secs(30), |l| {
            l.contains("registered go.micro.api.edge-")
        })
        .await;

    // --- the prefix: every key under /micro/registry/, nothing under the default one
    let keys = run_ok(
        &format!("etcdctl --endpoints={reg} get --prefix /micro/ --keys-only"),
        &[],
    )
    .await;
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("/micro/registry/")),
        "{keys:?}"
    );
    let listed = run_ok(
        &format!("micro list services {prefix} --registry_address={reg}"),
        &[],
    )
    .await;
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            "go.micro.api.edge",
            "go.micro.api.greeter",
            "go.micro.srv.greeter"
        ]
    );
    let default = run_ok(
        &format!("micro list services --registry_address={reg}"),
        &[],
    )
    .await;
    assert_eq!(default, "", "nothing under /micro-registry/");

    // --- --server_advertise: the srv's registered address is the silent one
    let get = run_ok(
        &format!("micro --registry_address={reg} {prefix} get service go.micro.srv.greeter"),
        &[],
    )
    .await;
    assert!(get.contains(&format!("\t{silent}\t")), "{get}");

    // --- --register_ttl=7 and --register_interval=2: the srv's lease, renewed
    let srv_key = keys
        .iter()
        .find(|k| k.starts_with("/micro/registry/go.micro.srv.greeter/"))
        .expect("the srv's key");
    let leases = run_ok(&format!("etcdctl --endpoints={reg} lease list"), &[]).await;
    let mut srv_lease = None;
    for id in leases.lines().skip(1) {
        let out = run_ok(
            &format!("etcdctl --endpoints={reg} lease timetolive {id} --keys"),
            &[],
        )
        .await;
        if out.contains(srv_key) {
            srv_lease = Some(id.to_owned());
        }
    }
    let id = srv_lease.expect("the srv's key is on a lease");
    let timetolive = format!("etcdctl --endpoints={reg} lease timetolive {id}");
    let (ttl, mut last) = ttl_and_remaining(&run_ok(&timetolive, &[]).await);
    assert_eq!(ttl, 7, "--register_ttl");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, remaining) = ttl_and_remaining(&run_ok(&timetolive, &[]).await);
        if remaining > last {
            break;
        }
        last = remaining;
        assert!(Instant::now() < deadline, "lease {id} not renewed");
    }

    // --- the api's client gives up after --client_request_timeout=300ms, without a retry; the
    //     gateway passes that on, with the CORS header for the allowed origin
    let (ok, out, err) = run(
        &format!(
            "curl -s -i -H 'Origin: http://app.example' \
             'http://127.0.0.1:{port}/greeter/say/hello?name=John'"
        ),
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert!(ok, "{err}");
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 408"), "{out}");
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: http://app.example"),
        "{head}"
    );
    assert_eq!(
        body,
        r#"{"id":"go.micro.client","code":408,"detail":"call go.micro.srv.greeter timed out after 300ms","status":"Request Timeout"}"#
    );
    for p in [&mut srv, &mut api, &mut gateway] {
        p.assert_running();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_are_named_before_anything_starts() {
    for (line, expected) in [
        (
            "micro --registry=mdns list services",
            "unsupported registry \"mdns\": accepted are etcd, etcdv3",
        ),
        (
            "micro --selector=dns list services",
            "possible values: cache, registry",
        ),
        (
            "micro list services --client_request_timeout=5",
            "invalid duration \"5\"",
        ),
        (
            "micro greeter srv --name one --register_ttl=0",
            "at least 1",
        ),
    ] {
        let (ok, _, err) = run(line, &[], Duration::from_secs(30)).await;
        assert!(!ok, "{line} succeeded");
        assert!(err.contains(expected), "{line}: {err}");
    }
}
