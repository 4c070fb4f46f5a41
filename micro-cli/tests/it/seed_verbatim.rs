//! The seed's command lines, run as written: each line below is the seed document's own (its
//! lines ~58–145), and the test runs it after replacing only the seed's addresses by the
//! loopback ports of a cluster it starts (three `micro registry-node` processes, as the seed's
//! three `etcd` commands). The one change that is not an address: the seed starts its services
//! with `go run main.go` in a service's folder, ours are `micro greeter srv|api --name one|two`,
//! followed by exactly the seed's flags.
//!
//! The seed's gateway listens on its default `:8080`; ours is given a free port through
//! `MICRO_API_ADDRESS` (micro api's variable for `--address`), so its command line stays the
//! seed's. `micro --registry=etcdv3 list services` has no address on the seed's line either:
//! the seed's user had it in the environment or the default, ours is `MICRO_REGISTRY_ADDRESS`.

use crate::procs;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::procs::{run_ok, Cluster, Proc};
use tokio::time::Instant;

/// The seed's addresses: cd0's client URL, cd1's (the gateway's and the apis' registry), the
/// second machine's cd2 (the srvs' registry), and the gateway's.
const SEED_CD0: &str = "192.168.3.45:2379";
const SEED_CD1: &str = "192.168.3.45:2479";
const SEED_CD2: &str = "192.168.3.118:2379";
const SEED_GATEWAY: &str = "localhost:8080";

const SEED_LIST: &str = "micro --registry=etcdv3 list services";
const SEED_GATEWAY_LINE: &str =
    "micro --selector=cache --registry=etcdv3 --registry_address=http://192.168.3.45:2479 api --handler=api";
const SEED_API_FLAGS: &str =
    "--selector=cache --registry=etcdv3 --registry_address=http://192.168.3.45:2479";
const SEED_SRV_FLAGS: &str =
    "--selector=cache --registry=etcdv3 --registry_address=http://192.168.3.118:2379";
const SEED_CURL: &str = "curl 'http://localhost:8080/greeter/say/hello?name=John'";
const SEED_LEASE_LIST: &str = r#"etcdctl --endpoints="http://192.168.3.45:2379" lease list"#;
const SEED_TIMETOLIVE: &str =
    r#"etcdctl --endpoints="http://192.168.3.45:2379" lease timetolive 05016b78d58c0230 --keys"#;
const SEED_LEASE_ID: &str = "05016b78d58c0230";

/// The api's answer while no srv is registered: go-micro's client error, the service named once.
const NO_SRV: &str = r#"{"id":"go.micro.client","code":500,"detail":"service go.micro.srv.greeter: not found","status":"Internal Server Error"}"#;

/// The seed's line with its addresses replaced by ours.
struct Addresses {
    cd0: String,
    cd1: String,
    cd2: String,
    gateway: String,
}

impl Addresses {
    fn ours(&self, seed_line: &str) -> String {
        let line = seed_line
            .replace(SEED_CD0, &self.cd0)
            .replace(SEED_CD1, &self.cd1)
            .replace(SEED_CD2, &self.cd2)
            .replace(SEED_GATEWAY, &self.gateway);
        assert_ne!(line, seed_line, "{seed_line} names no address of the seed");
        line
    }
}

fn have(tool: &str, version: &str, apt: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg(version)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and there is no {tool}"
        );
        eprintln!("NOTICE: no {tool} on PATH: test skipped (apt-get install {apt})");
    }
    found
}

/// Starts `micro greeter <role> --name <name>` plus the seed's flags; waits for its
/// `registered <service>-<uuid> at 127.0.0.1:PORT` line.
async fn service(
    role: &str,
    name: &str,
    seed_flags: &str,
    addrs: &Addresses,
    dir: &std::path::Path,
) -> Proc {
    let line = format!(
        "micro greeter {role} --name {name} {}",
        addrs.ours(seed_flags)
    );
    let (program, args) = procs::words(&line);
    let mut proc = Proc::spawn(&format!("{role}-{name}"), &program, &args, &[], dir);
    let service = format!("go.micro.{role}.greeter-");
    proc.wait_line(Duration::from_secs(30), |l| {
        l.contains(&format!("registered {service}"))
    })
    .await;
    proc
}

/// `(api, srv)` of `{"api":"api one","message":"Hello John srv two. rand:x"}`, the seed's
/// answer (compact, as the gateway writes it; the seed shows a browser's pretty print).
fn pairing(body: &str) -> Option<(String, String)> {
    // The demo's field order: `api` first.
    if !body.starts_with(r#"{"api":"#) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    if v.as_object()?.len() != 2 {
        return None;
    }
    let api = v["api"].as_str()?.strip_prefix("api ")?;
    let message = v["message"].as_str()?.strip_prefix("Hello John srv ")?;
    let (srv, rand) = message.split_once(". rand:")?;
    let one_letter = rand.len() == 1 && rand.chars().all(|c| c.is_ascii_alphabetic());
    let known = |n: &str| n == "one" || n == "two";
    (known(api) && known(srv) && one_letter).then(|| (api.to_owned(), srv.to_owned()))
}

/// `lease <id> granted with TTL(30s), remaining(Ns), attached keys([<key>])`: `(N, key)`.
fn timetolive(out: &str, id: &str) -> (u64, String) {
    let line = out.trim_end();
    let rest = line
        .strip_prefix(&format!("lease {id} granted with TTL(30s), remaining("))
        .unwrap_or_else(|| panic!("not the seed's shape: {line}"));
    let (remaining, rest) = rest.split_once("s), attached keys([").expect(line);
    let key = rest.strip_suffix("])").expect(line);
    (remaining.parse().expect(line), key.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_command_lines_run_as_written() {
    if !have("etcdctl", "version", "etcd-client") || !have("curl", "--version", "curl") {
        return;
    }
    let cluster = Cluster::start(3).await;
    let dir = cluster.dir.path().to_owned();
    let gateway_port = micro::testing::free_port().expect("free port");
    let addrs = Addresses {
        cd0: cluster.host_port(0).to_owned(),
        cd1: cluster.host_port(1).to_owned(),
        cd2: cluster.host_port(2).to_owned(),
        gateway: format!("localhost:{gateway_port}"),
    };

    // --- `micro --selector=cache --registry=etcdv3 --registry_address=http://... api --handler=api`
    let (program, args) = procs::words(&addrs.ours(SEED_GATEWAY_LINE));
    let api_address = [("MICRO_API_ADDRESS", format!("127.0.0.1:{gateway_port}"))];
    let mut gateway = Proc::spawn("gateway", &program, &args, &api_address, &dir);
    let listening = format!("HTTP API Listening on 127.0.0.1:{gateway_port}");
    gateway
        .wait_line(Duration::from_secs(30), |l| l.contains(&listening))
        .await;

    // --- the four services, each `go run main.go <the seed's flags>`, in the seed's order: the
    //     apis, then the srvs; in between, the api answers that it finds no backend, in
    //     go-micro's words (the service named once)
    let mut services = Vec::new();
    for name in ["one", "two"] {
        services.push(service("api", name, SEED_API_FLAGS, &addrs, &dir).await);
    }
    let curl = addrs.ours(SEED_CURL);
    let body = run_ok(&curl, &[]).await;
    assert_eq!(body, NO_SRV);
    for name in ["one", "two"] {
        services.push(service("srv", name, SEED_SRV_FLAGS, &addrs, &dir).await);
    }

    // --- `micro --registry=etcdv3 list services`, the address from the environment
    let env = [("MICRO_REGISTRY_ADDRESS", format!("http://{}", addrs.cd0))];
    let list = run_ok(SEED_LIST, &env).await;
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        [
            "go.micro.api",
            "go.micro.api.greeter",
            "go.micro.srv.greeter"
        ],
        "the gateway (as micro api registers itself) and the two greeter services"
    );

    // --- `curl 'http://localhost:8080/greeter/say/hello?name=John'`: the four answers at random
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut requests = 0;
    while seen.len() < 4 {
        assert!(
            Instant::now() < deadline && requests < 400,
            "{requests} requests showed only {seen:?}"
        );
        let body = run_ok(&curl, &[]).await;
        requests += 1;
        match pairing(&body) {
            Some(pair) => seen.insert(pair),
            // The apis learn of the srvs by their registry watch: until the first answer, the
            // not-found one may still come; after it, only the seed's answers.
            None if seen.is_empty() && body == NO_SRV => continue,
            None => panic!("not the seed's answer: {body}"),
        };
    }
    gateway.assert_running();

    // --- `etcdctl --endpoints="http://..." lease list`: one lease per registered node
    let leases = run_ok(&addrs.ours(SEED_LEASE_LIST), &[]).await;
    let mut lines = leases.lines();
    assert_eq!(
        lines.next(),
        Some("found 5 leases"),
        "the four instances and the gateway (the seed's apis had no TTL: 2 there):\n{leases}"
    );
    let ids: Vec<&str> = lines.collect();
    assert_eq!(ids.len(), 5, "{leases}");
    for id in &ids {
        assert!(
            id.len() == SEED_LEASE_ID.len() && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "a lease id as etcdctl prints it (16 hex digits): {id:?}"
        );
    }

    // --- `etcdctl ... lease timetolive <id> --keys`: TTL 30 s, one /micro-registry/ key each
    let mut srv_lease = None;
    let mut keys = Vec::new();
    for id in &ids {
        let line = addrs.ours(SEED_TIMETOLIVE).replace(SEED_LEASE_ID, id);
        let (remaining, key) = timetolive(&run_ok(&line, &[]).await, id);
        assert!((1..=30).contains(&remaining), "remaining({remaining}s)");
        let (service, node) = key
            .strip_prefix("/micro-registry/")
            .and_then(|k| k.split_once('/'))
            .unwrap_or_else(|| panic!("the seed's key layout: {key}"));
        let uuid = node
            .strip_prefix(&format!("{service}-"))
            .unwrap_or_else(|| panic!("node id is <service>-<uuid>: {key}"));
        assert_eq!(uuid.len(), 36, "{key}");
        if service == "go.micro.srv.greeter" {
            srv_lease = Some((line, id.to_string(), remaining));
        }
        keys.push(service.to_owned());
    }
    keys.sort();
    assert_eq!(
        keys,
        [
            "go.micro.api",
            "go.micro.api.greeter",
            "go.micro.api.greeter",
            "go.micro.srv.greeter",
            "go.micro.srv.greeter"
        ]
    );

    // --- the seed's observation: remaining counts down, then is back up (the 10 s heartbeat)
    let (line, id, mut last) = srv_lease.expect("a srv lease");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (remaining, _) = timetolive(&run_ok(&line, &[]).await, &id);
        if remaining > last {
            break;
        }
        last = remaining;
        assert!(
            Instant::now() < deadline,
            "lease {id} was not renewed (remaining {remaining}s)"
        );
    }
    for s in &mut services {
        s.assert_running();
    }
    drop(services);
    drop(gateway);
    drop(cluster);
}

#[test]
fn only_the_addresses_differ_from_the_seed() {
    let addrs = Addresses {
        cd0: "127.0.0.1:1".into(),
        cd1: "127.0.0.1:2".into(),
        cd2: "127.0.0.1:3".into(),
        gateway: "localhost:4".into(),
    };
    assert_eq!(
        addrs.ours(SEED_GATEWAY_LINE),
        "micro --selector=cache --registry=etcdv3 --registry_address=http://127.0.0.1:2 api --handler=api"
    );
    assert_eq!(
        addrs.ours(SEED_CURL),
        "curl 'http://localhost:4/greeter/say/hello?name=John'"
    );
    let (program, args) = procs::words(&addrs.ours(SEED_LEASE_LIST));
    assert_eq!(program, "etcdctl");
    assert_eq!(args, ["--endpoints=http://127.0.0.1:1", "lease", "list"]);
    assert!(pairing(r#"{"api":"api two","message":"Hello John srv one. rand:R"}"#).is_some());
    assert!(pairing(r#"{"api":"api two","message":"Hello John srv one. rand:"}"#).is_none());
    assert!(pairing(r#"{"message":"Hello John srv one. rand:R","api":"api two"}"#).is_none());
}
