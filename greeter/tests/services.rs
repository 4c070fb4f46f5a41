//! The two greeter services against our three-member registry, called directly (no gateway):
//! what they register, what api answers, and how a backend failure reaches the caller.

use std::time::Duration;

use clap::Parser;
use greeter::{GreeterCli, Instance};
use micro::registry::{Registry, RegistryOptions};
use micro::{Client, ClientOptions, Selector, SelectorOptions};
use proto::go_api;
use regex::Regex;
use serde_json::Value;

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
        .chain(["--register_ttl=7", "--register_interval=2"]);
    GreeterCli::try_parse_from(argv).expect("greeter args").role
}

fn hello(name: Option<&str>) -> go_api::Request {
    let mut request = go_api::Request {
        method: "GET".into(),
        path: "/greeter/say/hello".into(),
        ..Default::default()
    };
    if let Some(name) = name {
        let pair = go_api::Pair {
            key: "name".into(),
            values: name.split(' ').map(str::to_owned).collect(),
        };
        request.get.insert("name".into(), pair);
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_srv_and_reports_its_failures() {
    let cluster = registry_node::testing::TestCluster::start(3).await;
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("leader");
    let endpoints = cluster.endpoints();
    let srv = Instance::start(role("srv", "one", &endpoints))
        .await
        .expect("srv starts");
    let api = Instance::start(role("api", "two", &endpoints))
        .await
        .expect("api starts");

    // --- what was registered: go-micro's node id, the TTL from the flags, the field trees
    let registry = Registry::new(&RegistryOptions::new(endpoints.clone())).expect("registry");
    let services = registry
        .get_service(greeter::srv::SERVICE)
        .await
        .expect("read");
    let node = &services[0].nodes[0];
    assert!(node.id.starts_with("go.micro.srv.greeter-"), "{}", node.id);
    assert_eq!(node.address, srv.node().address);
    let request_tree = services[0].endpoints[0].request.as_ref().expect("tree");
    assert_eq!(request_tree.values[0].name, "name");
    assert_eq!(
        srv.keys(),
        [format!("/micro-registry/go.micro.srv.greeter/{}", node.id)]
    );

    // --- api answers the demo's JSON, with the whole name
    let client = Client::new(
        Selector::new(registry.clone(), SelectorOptions::default()),
        ClientOptions::default(),
    );
    let answer: go_api::Response = client
        .call(
            greeter::api::SERVICE,
            "Say.Hello",
            hello(Some("John Smith")),
        )
        .await
        .expect("answer");
    assert_eq!(answer.status_code, 200);
    let json: Value = serde_json::from_str(&answer.body).expect("JSON body");
    assert_eq!(json["api"], "api two");
    let shape = Regex::new(r"^Hello John Smith srv one\. rand:[A-Za-z]$").expect("regex");
    assert!(
        shape.is_match(json["message"].as_str().unwrap_or_default()),
        "{json}"
    );
    assert!(
        answer.body.starts_with(r#"{"api":"api two","message":"#),
        "compact, in order: {}",
        answer.body
    );

    // --- no name: go-micro's BadRequest, unchanged through gRPC
    let err = client
        .call::<_, go_api::Response>(greeter::api::SERVICE, "Say.Hello", hello(None))
        .await
        .expect_err("no name");
    assert_eq!(
        err.to_json(),
        r#"{"id":"go.micro.api.greeter","code":400,"detail":"Name cannot be blank","status":"Bad Request"}"#
    );

    // --- no backend left: api passes its client's go-micro error through
    srv.stop().await.expect("srv stops");
    let err = client
        .call::<_, go_api::Response>(greeter::api::SERVICE, "Say.Hello", hello(Some("John")))
        .await
        .expect_err("no backend");
    assert_eq!(err.id, micro::client::CLIENT_ID, "{err}");
    assert_eq!(err.code, 500, "{err}");

    api.stop().await.expect("api stops");
    assert!(registry.list_services().await.expect("list").is_empty());
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_empty_name_is_refused() {
    let role = role("srv", " ", &["127.0.0.1:1".to_owned()]);
    assert!(matches!(
        Instance::start(role).await,
        Err(greeter::Error::EmptyName)
    ));
}
