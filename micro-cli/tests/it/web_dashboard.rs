//! `micro web` in a real headless Chromium: the registry (our in-process cluster, then a real
//! etcd), greeter srv one & two and api one & two, the gateway, and `micro web` as a child
//! process. The page must show the four greeter nodes, the three members with one leader and the
//! leases with their keys; drop a node without a reload when its instance stops; and answer
//! Say.Hello from its form.
//!
//! `MICRO_WEB_SCREENSHOT=docs/dashboard.png cargo test -p micro-cli --test it
//! web_dashboard::dashboard_against_our_registry` also writes the page with its four nodes to that file
//! (relative to the workspace root), the screenshot in README.

mod browser;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::procs::{micro_bin, Proc};
use browser::Browser;
use clap::Parser;
use greeter::{GreeterCli, Instance};
use micro::testing::{Backend, BackendKind};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

#[derive(Parser)]
struct GatewayCli {
    #[command(flatten)]
    gateway: gateway::GatewayArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_against_our_registry() {
    browser::require();
    let cluster = registry_node::testing::TestCluster::start(3).await;
    cluster.wait_for_leader(WAIT).await.expect("a leader");
    dashboard(
        cluster.endpoints(),
        std::env::var_os("MICRO_WEB_SCREENSHOT"),
    )
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_against_real_etcd() {
    browser::require();
    let Some(backend) = Backend::start(BackendKind::Etcd).await else {
        return;
    };
    dashboard(backend.endpoints(), None).await;
    backend.shutdown().await;
}

fn registry_flags(endpoints: &[String]) -> Vec<String> {
    vec![
        format!("--registry_address={}", endpoints.join(",")),
        "--register_ttl=10".to_owned(),
        "--register_interval=2".to_owned(),
    ]
}

async fn start(role: &str, name: &str, endpoints: &[String]) -> Instance {
    let argv = ["greeter", role, "--name", name]
        .into_iter()
        .map(str::to_owned)
        .chain(registry_flags(endpoints));
    let role = GreeterCli::try_parse_from(argv).expect("greeter args").role;
    Instance::start(role)
        .await
        .expect("greeter instance starts")
}

/// The gateway on a free loopback port, registered as `go.micro.api` (as `micro api`).
fn gateway(endpoints: &[String], stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let argv = ["gateway", "--address=127.0.0.1:0"]
        .into_iter()
        .map(str::to_owned)
        .chain(registry_flags(endpoints));
    let args = GatewayCli::try_parse_from(argv)
        .expect("gateway args")
        .gateway;
    tokio::spawn(async move { gateway::run(args, stop).await.expect("gateway runs") })
}

/// `micro web` on a free port; its URL from the line it prints once listening.
async fn micro_web(endpoints: &[String]) -> (Proc, String) {
    let mut args = vec!["web".to_owned(), "--address=127.0.0.1:0".to_owned()];
    args.extend(registry_flags(endpoints));
    let dir = std::env::temp_dir();
    let mut web = Proc::spawn("web", micro_bin(), &args, &[], &dir);
    let line = web
        .wait_line(WAIT, |l| l.contains("dashboard on http://"))
        .await;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("URL in the line")
        .to_owned();
    (web, url)
}

/// `service node` for every node row the page shows.
const NODE_ROWS: &str = "return [...document.querySelectorAll('#services tr.node')]\
    .map(r => r.dataset.service + ' ' + r.dataset.node);";

fn greeter_rows(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|row| {
            row.starts_with("go.micro.srv.greeter ") || row.starts_with("go.micro.api.greeter ")
        })
        .map(str::to_owned)
        .collect()
}

fn row_of(instance: &Instance) -> String {
    format!("{} {}", instance.service().name, instance.node().id)
}

async fn dashboard(endpoints: Vec<String>, screenshot: Option<std::ffi::OsString>) {
    let srv_one = start("srv", "one", &endpoints).await;
    let srv_two = start("srv", "two", &endpoints).await;
    let api_one = start("api", "one", &endpoints).await;
    let api_two = start("api", "two", &endpoints).await;
    let gateway_stop = CancellationToken::new();
    let gateway_task = gateway(&endpoints, gateway_stop.clone());
    let (web, url) = micro_web(&endpoints).await;
    let browser = Browser::start().await;
    browser
        .client
        .goto(&url)
        .await
        .unwrap_or_else(|e| panic!("load {url}: {e}"));

    // The four greeter nodes, exactly those the instances registered.
    let all: BTreeSet<String> = [&srv_one, &srv_two, &api_one, &api_two]
        .into_iter()
        .map(row_of)
        .collect();
    browser
        .wait_for("the four greeter nodes", WAIT, NODE_ROWS, |v| {
            greeter_rows(v) == all
        })
        .await;
    // The gateway registered itself too, as micro api does.
    browser
        .wait_for("the gateway's node", WAIT, NODE_ROWS, |v| {
            v.as_array().is_some_and(|rows| {
                rows.iter().any(|r| {
                    r.as_str()
                        .is_some_and(|r| r.starts_with("go.micro.api go.micro.api-"))
                })
            })
        })
        .await;
    // Endpoints with their trees, as `micro get service` has them.
    let endpoint = browser
        .eval(
            "const s = document.querySelector('[data-service=\"go.micro.srv.greeter\"] .endpoint');\
             return s ? s.textContent : '';",
        )
        .await;
    let endpoint = endpoint.as_str().unwrap_or_default();
    assert!(
        endpoint.contains("Say.Hello") && endpoint.contains("name string"),
        "{endpoint}"
    );

    // Three members, one leader, all in the same term; a lease per instance with its key.
    let members = browser
        .wait_for(
            "three members with one leader",
            WAIT,
            "return [...document.querySelectorAll('#members tr.member')]\
                .map(r => [...r.cells].map(c => c.textContent));",
            |v| {
                let rows = v.as_array().cloned().unwrap_or_default();
                rows.len() == 3 && rows.iter().filter(|r| r[3] == "leader").count() == 1
            },
        )
        .await;
    let terms: BTreeSet<&str> = members
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r[4].as_str())
        .collect();
    assert_eq!(terms.len(), 1, "one term across members: {members}");
    let srv_one_key = srv_one.keys()[0].clone();
    browser
        .wait_for(
            "srv one's lease with its key and TTL",
            WAIT,
            "return [...document.querySelectorAll('#leases tr.lease')]\
                .map(r => [...r.cells].map(c => c.textContent));",
            |v| {
                v.as_array().is_some_and(|rows| {
                    rows.iter().any(|r| {
                        r[3].as_str().is_some_and(|k| k.contains(&srv_one_key))
                            && r[2] == "10s"
                            && r[1]
                                .as_str()
                                .and_then(|t| t.trim_end_matches('s').parse::<i64>().ok())
                                .is_some_and(|t| (1..=10).contains(&t))
                    })
                })
            },
        )
        .await;

    // The form: Say.Hello through micro's client (either srv).
    say_hello(&browser, "Hello John srv ").await;

    if let Some(path) = screenshot {
        let png = browser.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        eprintln!("screenshot: {}", path.display());
    }

    // srv two stops: its row goes, pushed by the watch, in the same page (no reload).
    browser
        .eval("window.notReloaded = true; return null;")
        .await;
    let gone = row_of(&srv_two);
    srv_two.stop().await.expect("srv two stops");
    let three: BTreeSet<String> = all.iter().filter(|r| **r != gone).cloned().collect();
    browser
        .wait_for("srv two's node to disappear", WAIT, NODE_ROWS, |v| {
            greeter_rows(v) == three
        })
        .await;
    assert_eq!(
        browser.eval("return window.notReloaded === true;").await,
        Value::Bool(true)
    );
    let changes = browser
        .eval("return document.getElementById('changes').textContent;")
        .await;
    let node_id = gone.split(' ').nth(1).unwrap_or_default();
    assert!(
        changes
            .as_str()
            .is_some_and(|c| c.contains(&format!("delete {node_id}"))),
        "{changes}"
    );

    // The form again: srv one is the only srv left.
    say_hello(&browser, "Hello John srv one. rand:").await;
    // An unknown service is an error shown as such.
    let answer = call(&browser, "go.micro.srv.nothing", "Say.Hello", "{}").await;
    assert_eq!(answer["class"], "result error", "{answer}");
    assert!(
        answer["text"]
            .as_str()
            .is_some_and(|t| t.contains("not found")),
        "{answer}"
    );

    browser.close().await;
    drop(web);
    gateway_stop.cancel();
    gateway_task.await.expect("gateway task");
    for instance in [srv_one, api_one, api_two] {
        instance.stop().await.expect("instance stops");
    }
}

const RESULT: &str = "const r = document.getElementById('call-result');\
    return { text: r.textContent, class: r.className };";

/// Calls Say.Hello with name John from the form; the answer must be `{"msg": "<expected>...`.
async fn say_hello(browser: &Browser, expected: &str) {
    let answer = call(
        browser,
        "go.micro.srv.greeter",
        "Say.Hello",
        r#"{"name":"John"}"#,
    )
    .await;
    assert_eq!(answer["class"], "result ok", "{answer}");
    let text = answer["text"].as_str().unwrap_or_default();
    assert!(text.contains(&format!("\"msg\": \"{expected}")), "{text}");
}

/// Fills the form and submits it, as a user does; the result box once the answer is in.
async fn call(browser: &Browser, service: &str, endpoint: &str, request: &str) -> Value {
    use fantoccini::Locator;
    // An empty result box: what is there once it is filled is this call's answer.
    browser
        .eval("document.getElementById('call-result').textContent = ''; return null;")
        .await;
    for (id, value) in [
        ("call-service", service),
        ("call-endpoint", endpoint),
        ("call-request", request),
    ] {
        let field = browser
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("field {id}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }
    browser
        .client
        .find(Locator::Id("call-submit"))
        .await
        .expect("call button")
        .click()
        .await
        .expect("click");
    browser
        .wait_for("the call's answer", WAIT, RESULT, |v| {
            v["text"] != "" && v["text"] != "calling..."
        })
        .await
}
