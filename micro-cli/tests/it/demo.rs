//! `micro up` on the embedded registry: balancing over all pairings with the seed's leases,
//! go-micro's gateway errors, and the `micro list/get/call` commands.

use crate::common;

use crate::common::{assert_pairings_and_leases, have_etcdctl, http, Demo, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_balances_over_all_pairings_with_one_lease_per_instance() {
    if !have_etcdctl() {
        return;
    }
    let demo = Demo::up(Options::default()).await;
    assert_pairings_and_leases(&demo).await;
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_errors_are_go_micros() {
    let demo = Demo::up(Options {
        gateway_args: vec!["--max_body_bytes=1024".to_owned()],
        ..Options::default()
    })
    .await;

    // --- no such service behind the path
    let (status, body) = demo.get("/nothing/here").await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        r#"{"id":"go.micro.api","code":500,"detail":"not found","status":"Internal Server Error"}"#
    );

    // --- a body over the limit
    let big = vec![b'x'; 4096];
    let (status, body) = http(demo.gateway, "POST", "/greeter/say/hello?name=John", big).await;
    assert_eq!(status, 413, "{body}");

    // --- the api's own 400 passes through
    let (status, body) = demo.get("/greeter/say/hello").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"id":"go.micro.api.greeter","code":400,"detail":"Name cannot be blank","status":"Bad Request"}"#
    );
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micro_lists_gets_and_calls() {
    let demo = Demo::up(Options::default()).await;

    let list = demo.micro(&["list", "services"]).await;
    let names: Vec<&str> = list.lines().collect();
    assert_eq!(
        names,
        [
            "go.micro.api",
            "go.micro.api.greeter",
            "go.micro.srv.greeter"
        ],
        "the gateway registers itself as micro api does"
    );

    let get = demo
        .micro(&["get", "service", "go.micro.srv.greeter"])
        .await;
    assert!(
        get.starts_with(
            "service  go.micro.srv.greeter\n\nversion latest\n\nID\tAddress\tMetadata\n"
        ),
        "{get}"
    );
    let nodes = get
        .lines()
        .filter(|l| l.starts_with("go.micro.srv.greeter-"))
        .count();
    assert_eq!(nodes, 2, "two srv nodes:\n{get}");
    for label in ["srv-one", "srv-two"] {
        assert!(get.contains(&demo.node_id(label)), "{get}");
    }
    assert!(get.contains("Endpoint: Say.Hello"), "{get}");

    let out = demo
        .micro(&[
            "call",
            "go.micro.srv.greeter",
            "Say.Hello",
            r#"{"name":"John"}"#,
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON answer");
    let msg = v["msg"].as_str().expect("msg");
    assert!(msg.starts_with("Hello John srv "), "{out}");

    let out = demo
        .micro(&[
            "call",
            "go.micro.api.greeter",
            "Say.Hello",
            r#"{"method":"GET","get":{"name":{"key":"name","values":["John"]}}}"#,
        ])
        .await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON answer");
    assert_eq!(v["statusCode"], 200, "{out}");
    assert!(
        common::pairing(v["body"].as_str().expect("body")).is_some(),
        "{out}"
    );
    demo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_given_to_up_reach_every_service_and_the_gateway() {
    if !have_etcdctl() {
        return;
    }
    let demo = Demo::up(Options {
        up_flags: vec!["--register_ttl=7".to_owned()],
        ..Options::default()
    })
    .await;
    let list = demo.etcdctl(&["lease", "list"]).await;
    let ids: Vec<&str> = list.lines().skip(1).filter(|l| !l.is_empty()).collect();
    assert_eq!(ids.len(), 5, "{list}");
    for id in ids {
        let ttl = demo.etcdctl(&["lease", "timetolive", id]).await;
        assert!(ttl.contains("granted with TTL(7s)"), "{ttl}");
    }
    demo.shutdown().await;
}
