//! The shop from scratch against the embedded registry (three members in-process): registered
//! with its generated endpoint trees, called through its typed client (unary and the server
//! stream), and through the gateway's rpc handler (JSON over HTTP, found by reflection).

use std::time::Duration;

use examples::pb::{order_request::Line, Address, HistoryRequest, OrderRequest, ShopClient};
use examples::SERVICE;
use futures::TryStreamExt as _;
use http_body_util::{BodyExt as _, Full};
use micro::registry::{Registry, RegistryOptions};
use micro::{Client, ClientOptions, Selector, SelectorOptions, Service, ServiceOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn line(item: &str, quantity: i32, unit_cents: i64) -> Line {
    Line {
        item: item.into(),
        quantity,
        unit_cents,
    }
}

/// POSTs `body` to `url` over HTTP/1.1: status and body.
async fn post(url: &str, body: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<hyper::body::Bytes>>();
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::from(body.to_owned()))
        .expect("request");
    let response = client.request(request).await.expect("gateway answers");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_through_typed_client_and_gateway() {
    let cluster = registry_node::testing::TestCluster::start(3).await;
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("leader");
    let registry = Registry::new(&RegistryOptions::new(cluster.endpoints())).expect("registry");
    let shop = examples::service(Service::new(ServiceOptions::new(SERVICE), registry.clone()))
        .expect("reflection")
        .start()
        .await
        .expect("shop starts");

    // Registered with the trees of its proto: nested, repeated, and the stream marked.
    let registered = registry.get_service(SERVICE).await.expect("registered");
    let endpoints = serde_json::to_value(&registered[0].endpoints).expect("json");
    let order = &endpoints[0];
    assert_eq!(order["name"], "Shop.Order");
    assert_eq!(order["metadata"]["stream"], "false");
    let lines = &order["request"]["values"][1];
    assert_eq!(
        (&lines["name"], &lines["type"]),
        (&json!("lines"), &json!("[]Line"))
    );
    assert_eq!(
        lines["values"][2],
        json!({"name": "unit_cents", "type": "int64", "values": null})
    );
    assert_eq!(order["request"]["values"][2]["type"], "Address");
    assert_eq!(order["response"]["values"][3]["type"], "[]string");
    assert_eq!(endpoints[1]["name"], "Shop.History");
    assert_eq!(endpoints[1]["metadata"]["stream"], "true");

    // The typed client: selector, node, generated path.
    let selector = Selector::new(registry.clone(), SelectorOptions::default());
    let client = Client::new(selector, ClientOptions::default());
    let shop_client = ShopClient::new(SERVICE, &client);
    let reply = shop_client
        .order(OrderRequest {
            customer: "ann".into(),
            lines: vec![line("tea", 2, 350), line("cake", 1, 420)],
            ship_to: Some(Address {
                street: "Main St 1".into(),
                city: "Oslo".into(),
            }),
        })
        .await
        .expect("order placed");
    assert_eq!(reply.total_cents, 1120);
    assert_eq!(reply.items, ["tea x2", "cake x1"]);
    let refused = shop_client
        .order(OrderRequest {
            customer: "ann".into(),
            ..Default::default()
        })
        .await
        .expect_err("no lines");
    assert_eq!((refused.code, refused.id.as_str()), (400, SERVICE));

    // Through the gateway: JSON in, JSON out (the rpc handler, namespace go.micro.srv).
    let gateway = gateway::Gateway::build(
        client.clone(),
        "go.micro.srv",
        1 << 20,
        gateway::Cors::default(),
        gateway::Mode::Rpc(gateway::rpc::Rpc::new(Duration::from_secs(5))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let stop_gateway = CancellationToken::new();
    let served = tokio::spawn(gateway::serve(listener, gateway, stop_gateway.clone()));
    let (status, body) = post(
        &format!("{base}/shop/order"),
        r#"{"customer":"bob","lines":[{"item":"coffee","quantity":3,"unit_cents":300}],"ship_to":{"city":"Bergen"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON answer");
    assert_eq!(answer["customer"], "bob");
    assert_eq!(answer["total_cents"], 900);
    assert_eq!(answer["items"], json!(["coffee x3"]));
    let (status, body) = post(&format!("{base}/shop/order"), r#"{"customer":"bob"}"#).await;
    assert_eq!(status, 400, "{body}");
    let error: Value = serde_json::from_str(&body).expect("go-micro error");
    assert_eq!(error["id"], SERVICE);

    // The server stream, through the typed client: ann's one order, bob's one.
    let history: Vec<_> = shop_client
        .history(HistoryRequest {
            customer: "ann".into(),
        })
        .await
        .expect("stream opens")
        .try_collect()
        .await
        .expect("stream ends well");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].total_cents, 1120);
    let bobs: Vec<_> = shop_client
        .history(HistoryRequest {
            customer: "bob".into(),
        })
        .await
        .expect("stream opens")
        .try_collect()
        .await
        .expect("stream ends well");
    assert_eq!(
        bobs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["order-2"]
    );

    stop_gateway.cancel();
    served.await.expect("gateway task").expect("gateway stops");
    shop.stop().await.expect("shop stops");
}

/// The code shown in examples/README.md (step 3) and in the root README's "Write your own
/// service" is the code `examples/readme.rs` compiles.
#[test]
fn readme_code_is_the_compiled_example() {
    let code = include_str!("../examples/readme/shop.rs");
    for (name, readme) in [
        ("examples/README.md", include_str!("../README.md")),
        ("README.md", include_str!("../../README.md")),
    ] {
        let blocks: Vec<&str> = readme
            .split("```rust\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap_or_default())
            .collect();
        assert!(blocks.contains(&code), "{name} shows the compiled example");
    }
}
