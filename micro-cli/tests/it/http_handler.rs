//! The gateway's `--handler=http` (go-micro's reverse proxy) in front of two instances of an
//! HTTP service (`micro greeter web`): the path's first segment names the service, the request
//! reaches a node unchanged, its answer comes back unchanged.

use crate::procs;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::procs::{run_ok, Cluster, Proc};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_handler_proxies_to_the_services_nodes() {
    let cluster = Cluster::start(1).await;
    let dir = cluster.dir.path();
    let reg = format!("--registry_address={}", cluster.clients[0]);
    let mut webs = Vec::new();
    for name in ["one", "two"] {
        let (program, args) = procs::words(&format!("micro greeter web --name {name} {reg}"));
        let mut web = Proc::spawn(&format!("web-{name}"), &program, &args, &[], dir);
        web.wait_line(Duration::from_secs(30), |l| {
            l.contains("registered go.micro.web.greeter-")
        })
        .await;
        webs.push(web);
    }
    let port = micro::testing::free_port().expect("free port");
    let (program, args) = procs::words(&format!(
        "micro {reg} api --handler=http --namespace=go.micro.web"
    ));
    let address = [("MICRO_API_ADDRESS", format!("127.0.0.1:{port}"))];
    let mut gateway = Proc::spawn("gateway", &program, &args, &address, dir);
    gateway
        .wait_line(Duration::from_secs(30), |l| {
            l.contains("HTTP API Listening")
        })
        .await;

    // --- GET: path and query as sent, both nodes answer in turn (random selection)
    let url = format!("http://127.0.0.1:{port}/greeter/say/hi?x=1&y=two");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "only {seen:?} answered");
        let out = run_ok(&format!("curl -s '{url}'"), &[]).await;
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(v["method"], "GET", "{out}");
        assert_eq!(v["path"], "/greeter/say/hi", "{out}");
        assert_eq!(v["query"], "x=1&y=two", "{out}");
        seen.insert(v["web"].as_str().expect("web").to_owned());
    }
    assert_eq!(seen, BTreeSet::from(["one".to_owned(), "two".to_owned()]));

    // --- POST: method and body as sent; the node's own headers come back
    let out = run_ok(
        &format!("curl -s -i -X PUT -d 'name=John' 'http://127.0.0.1:{port}/greeter/form'"),
        &[],
    )
    .await;
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(
        (v["method"].as_str(), v["body"].as_str()),
        (Some("PUT"), Some("name=John"))
    );

    // --- a path naming no registered service: go-micro's not found
    let out = run_ok(
        &format!("curl -s 'http://127.0.0.1:{port}/nothing/here'"),
        &[],
    )
    .await;
    assert_eq!(
        out,
        r#"{"id":"go.micro.api","code":500,"detail":"not found","status":"Internal Server Error"}"#
    );
    for p in webs.iter_mut().chain([&mut gateway]) {
        p.assert_running();
    }
}
