//! The demo end to end, in one process: a three-member registry (ours, then a real etcd when
//! installed), greeter srv one & two, greeter api one & two, and the gateway on a free port.
//! Phases: the demo's 40 requests and its four pairings, go-micro's error bodies, the request
//! mapping (echo service), a timeout, a crashed backend, a gracefully stopped api.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use clap::Parser;
use gateway::{Gateway, GatewayArgs};
use greeter::{GreeterCli, Instance};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client as HttpClient};
use hyper_util::rt::TokioExecutor;
use micro::registry::{Endpoint, Registry, RegistryOptions};
use micro::testing::{wait_for, Backend, BackendKind};
use micro::{Client, ClientOptions, Selector, SelectorOptions, Service, ServiceOptions};
use proto::go_api;
use regex::Regex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const API: &str = "go.micro.api.greeter";
const NOT_FOUND: &str =
    r#"{"id":"go.micro.api","code":500,"detail":"not found","status":"Internal Server Error"}"#;
const NO_NAME: &str = r#"{"id":"go.micro.api.greeter","code":400,"detail":"Name cannot be blank","status":"Bad Request"}"#;
const BODY_LIMIT: usize = 64 * 1024;

#[derive(Parser)]
struct GatewayCli {
    #[command(flatten)]
    gateway: GatewayArgs,
}

type Http = HttpClient<HttpConnector, Full<Bytes>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_against_our_registry() {
    let cluster = registry_node::testing::TestCluster::start(3).await;
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("leader");
    demo(cluster.endpoints()).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_against_real_etcd() {
    let Some(backend) = Backend::start(BackendKind::Etcd).await else {
        return;
    };
    demo(backend.endpoints()).await;
    backend.shutdown().await;
}

/// `greeter <role> --name <name>` against `endpoints`, TTL 5 s, heartbeat 1 s.
fn role(role: &str, name: &str, endpoints: &[String]) -> greeter::Role {
    let registry = endpoints.join(",");
    let argv = [
        "greeter",
        role,
        "--name",
        name,
        "--registry_address",
        &registry,
    ];
    let argv = argv
        .into_iter()
        .chain(["--register_ttl=5", "--register_interval=1"]);
    GreeterCli::try_parse_from(argv).expect("greeter args").role
}

async fn start(role_name: &str, name: &str, endpoints: &[String]) -> Instance {
    Instance::start(role(role_name, name, endpoints))
        .await
        .expect("instance starts")
}

/// Serves `gateway` on a free loopback port; the URL base and the stop token.
async fn serve(gateway: Gateway) -> (String, CancellationToken) {
    let listener = gateway::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(gateway::serve(listener, gateway, stop.clone()));
    (format!("http://{addr}"), stop)
}

async fn send(http: &Http, req: hyper::Request<Full<Bytes>>) -> (u16, hyper::HeaderMap, String) {
    let response = tokio::time::timeout(Duration::from_secs(15), http.request(req))
        .await
        .expect("answer within 15 s")
        .expect("HTTP exchange");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn get(http: &Http, url: &str) -> (u16, String) {
    let req = hyper::Request::get(url)
        .body(Full::default())
        .expect("request");
    let (status, _, body) = send(http, req).await;
    (status, body)
}

/// `(api, srv)` of a successful greeting, checking its shape.
fn pairing(body: &str, shape: &Regex) -> (String, String) {
    let json: Value = serde_json::from_str(body).expect("JSON answer");
    let api = json["api"].as_str().expect("api field").to_owned();
    let message = json["message"].as_str().expect("message field");
    let srv = shape.captures(message).expect("message shape")[1].to_owned();
    assert!(api == "api one" || api == "api two", "{api}");
    (api, srv)
}

async fn demo(endpoints: Vec<String>) {
    let srv_one = start("srv", "one", &endpoints).await;
    let srv_two = start("srv", "two", &endpoints).await;
    let api_one = start("api", "one", &endpoints).await;
    let api_two_stop = CancellationToken::new();
    let api_two = tokio::spawn(greeter::run(
        role("api", "two", &endpoints),
        api_two_stop.clone(),
    ));
    let registry = Registry::new(&RegistryOptions::new(endpoints.clone())).expect("registry");
    wait_for("api two registered", Duration::from_secs(10), || async {
        let services = registry.get_service(API).await.ok()?;
        (services.iter().map(|s| s.nodes.len()).sum::<usize>() == 2).then_some(())
    })
    .await;

    let registry_flag = endpoints.join(",");
    let args = GatewayCli::try_parse_from([
        "gateway",
        "--registry_address",
        &registry_flag,
        &format!("--max-body-bytes={BODY_LIMIT}"),
    ])
    .expect("gateway args")
    .gateway;
    let (base, stop_gateway) = serve(gateway::gateway(&args).expect("gateway")).await;
    let http: Http = HttpClient::builder(TokioExecutor::new()).build_http();
    let shape = Regex::new(r"^Hello John srv (one|two)\. rand:[A-Za-z]$").expect("regex");
    let hello = format!("{base}/greeter/say/hello?name=John");

    // --- the demo: 40 requests, all answered, all four pairings between them
    let mut seen = HashSet::new();
    for _ in 0..40 {
        let (status, body) = get(&http, &hello).await;
        assert_eq!(status, 200, "{body}");
        seen.insert(pairing(&body, &shape));
    }
    assert_eq!(seen.len(), 4, "every api/srv pairing appears: {seen:?}");

    // --- go-micro's error bodies and statuses
    assert_eq!(
        get(&http, &format!("{base}/greeter/say/hello")).await,
        (400, NO_NAME.into())
    );
    assert_eq!(
        get(&http, &format!("{base}/greeter/say/hello?name="))
            .await
            .0,
        400
    );
    assert_eq!(
        get(&http, &format!("{base}/nothing/here")).await,
        (500, NOT_FOUND.into())
    );
    assert_eq!(
        get(&http, &format!("{base}/")).await,
        (500, NOT_FOUND.into())
    );
    let (status, body) = get(&http, &format!("{base}/greeter//hello")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#""id":"go.micro.api","code":400"#), "{body}");
    assert_eq!(
        get(&http, &format!("{base}/greeter/%ff/hello")).await.0,
        400
    );
    let big = hyper::Request::post(&hello)
        .header("content-type", "application/json")
        .body(Full::from(vec![b'x'; BODY_LIMIT + 1]))
        .expect("request");
    let (status, _, body) = send(&http, big).await;
    assert_eq!(status, 413, "{body}");
    let json: Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(
        (
            json["id"].as_str(),
            json["code"].as_i64(),
            json["status"].as_str()
        ),
        (
            Some("go.micro.api"),
            Some(413),
            Some("Request Entity Too Large")
        )
    );
    assert!(json["detail"]
        .as_str()
        .is_some_and(|d| d.contains(&BODY_LIMIT.to_string())));

    // --- the request mapping, seen by a service that echoes it
    let echo = echo_service(&endpoints).await;
    check_echo(&http, &base).await;

    // --- a service slower than the client's timeout: 408 from go.micro.client
    check_timeout(&endpoints, &http).await;

    // --- srv two crashes (no deregistration): calls retry on srv one
    srv_two.kill().await;
    for _ in 0..10 {
        let (status, body) = get(&http, &hello).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(pairing(&body, &shape).1, "one");
    }

    // --- api two is stopped gracefully: its key is gone at once, requests keep succeeding
    api_two_stop.cancel();
    api_two.await.expect("join").expect("api two stops cleanly");
    let nodes: Vec<_> = registry
        .get_service(API)
        .await
        .expect("read")
        .into_iter()
        .flat_map(|s| s.nodes)
        .collect();
    assert_eq!(nodes.len(), 1, "only api one remains: {nodes:?}");
    assert_eq!(nodes[0].id, api_one.node().id);
    for _ in 0..10 {
        let (status, body) = get(&http, &hello).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(pairing(&body, &shape).0, "api one");
    }

    stop_gateway.cancel();
    echo.stop().await.expect("echo stops");
    api_one.stop().await.expect("api one stops");
    srv_one.stop().await.expect("srv one stops");
}

/// `go.micro.api.echo`: answers 201 with `X-Echo: yes` and the request it got, as JSON.
async fn echo_service(endpoints: &[String]) -> micro::Running {
    let routes = greeter::rpc::unary_route(
        "go.micro.api.echo",
        "Echo.Call",
        |req: go_api::Request| async move {
            let pairs = |m: &std::collections::HashMap<String, go_api::Pair>| -> Value {
                m.iter()
                    .map(|(k, p)| (k.clone(), json!(p.values)))
                    .collect()
            };
            let body = json!({
                "method": req.method, "path": req.path, "url": req.url, "body": req.body,
                "get": pairs(&req.get), "post": pairs(&req.post), "header": pairs(&req.header),
            });
            let header = [(
                "X-Echo".to_owned(),
                go_api::Pair {
                    key: "X-Echo".into(),
                    values: vec!["yes".into()],
                },
            )];
            Ok(go_api::Response {
                status_code: 201,
                header: header.into(),
                body: body.to_string(),
            })
        },
    )
    .expect("route");
    let registry = Registry::new(&RegistryOptions::new(endpoints.to_vec())).expect("registry");
    Service::new(ServiceOptions::new("go.micro.api.echo"), registry)
        .routes(
            routes,
            [Endpoint::unary("Echo.Call", "Request", "Response")],
        )
        .start()
        .await
        .expect("echo starts")
}

async fn check_echo(http: &Http, base: &str) {
    let form = hyper::Request::post(format!("{base}/echo/call?a=1&a=2&b=x+y"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "192.0.2.9")
        .body(Full::from("name=John&name=Paul"))
        .expect("request");
    let (status, headers, body) = send(http, form).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["x-echo"], "yes");
    assert_eq!(headers["content-type"], "application/json");
    let seen: Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/echo/call");
    assert_eq!(seen["url"], "/echo/call?a=1&a=2&b=x+y");
    assert_eq!(seen["get"]["a"], json!(["1", "2"]));
    assert_eq!(seen["get"]["b"], json!(["x y"]));
    assert_eq!(seen["post"]["name"], json!(["John", "Paul"]));
    assert_eq!(seen["body"], "");
    assert_eq!(
        seen["header"]["X-Forwarded-For"],
        json!(["192.0.2.9, 127.0.0.1"])
    );
    assert!(seen["header"]["Host"][0]
        .as_str()
        .is_some_and(|h| h.starts_with("127.0.0.1:")));

    let json_post = hyper::Request::put(format!("{base}/echo/call"))
        .header("content-type", "application/json")
        .body(Full::from(r#"{"name":"John"}"#))
        .expect("request");
    let (status, _, body) = send(http, json_post).await;
    assert_eq!(status, 201, "{body}");
    let seen: Value = serde_json::from_str(&body).expect("echo JSON");
    assert_eq!(seen["body"], r#"{"name":"John"}"#);
    assert_eq!(seen["header"]["X-Forwarded-For"], json!(["127.0.0.1"]));
}

/// A gateway whose client waits 300 ms, in front of a service that takes 3 s.
async fn check_timeout(endpoints: &[String], http: &Http) {
    let routes = greeter::rpc::unary_route(
        "go.micro.api.slow",
        "Say.Hello",
        |_: go_api::Request| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(go_api::Response::default())
        },
    )
    .expect("route");
    let registry = Registry::new(&RegistryOptions::new(endpoints.to_vec())).expect("registry");
    let slow = Service::new(ServiceOptions::new("go.micro.api.slow"), registry.clone())
        .routes(
            routes,
            [Endpoint::unary("Say.Hello", "Request", "Response")],
        )
        .start()
        .await
        .expect("slow starts");
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let client = Client::new(Selector::new(registry, SelectorOptions::default()), options);
    let (base, stop) = serve(Gateway::new(client, "go.micro.api", BODY_LIMIT)).await;
    let (status, body) = get(http, &format!("{base}/slow/say/hello")).await;
    assert_eq!(status, 408, "{body}");
    let json: Value = serde_json::from_str(&body).expect("JSON error");
    assert_eq!(
        (json["id"].as_str(), json["status"].as_str()),
        (Some("go.micro.client"), Some("Request Timeout")),
        "{body}"
    );
    stop.cancel();
    slow.kill().await;
}
