//! `micro call` and the gateway's `--handler=rpc` on a service this binary has no messages for:
//! the catalog (`micro greeter catalog`), whose request nests a message and repeats a field, is
//! found by gRPC server reflection and answered as JSON.

use crate::procs;

use std::time::Duration;

use crate::procs::{run, run_ok, Cluster, Proc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn micro_call_finds_the_messages_by_reflection() {
    let cluster = Cluster::start(1).await;
    let reg = format!("--registry_address={}", cluster.clients[0]);
    let (program, args) = procs::words(&format!("micro greeter catalog --name one {reg}"));
    let mut catalog = Proc::spawn("catalog", &program, &args, &[], cluster.dir.path());
    catalog
        .wait_line(Duration::from_secs(30), |l| {
            l.contains("registered go.micro.srv.catalog-")
        })
        .await;

    let out = run_ok(
        &format!(
            r#"micro {reg} call go.micro.srv.catalog Catalog.Find '{{"text":"apple","filter":{{"tags":["red"],"limit":5}}}}'"#
        ),
        &[],
    )
    .await;
    assert_eq!(
        out,
        "{\n\t\"items\": [\n\t\t{\n\t\t\t\"name\": \"red apple\",\n\t\t\t\"tags\": [\n\t\t\t\t\"fruit\",\n\t\t\t\t\"red\"\n\t\t\t],\n\t\t\t\"stock\": 12\n\t\t}\n\t],\n\t\"instance\": \"one\"\n}\n"
    );
    let all = run_ok(
        &format!("micro call go.micro.srv.catalog Catalog.Find {reg}"),
        &[],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&all).expect("JSON");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(5), "{all}");

    // --- the service's own error, go-micro's JSON; a request that is not its message
    let (ok, _, err) = run(
        &format!(
            r#"micro call go.micro.srv.catalog Catalog.Find '{{"filter":{{"limit":-1}}}}' {reg}"#
        ),
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains(r#""id":"go.micro.srv.catalog","code":400,"detail":"limit -1 is negative""#),
        "{err}"
    );
    for (request, expected) in [
        (
            r#"'{"colour":"red"}'"#,
            "is not a go.micro.srv.catalog.Query",
        ),
        ("Catalog.Lose", "has no method Lose"),
    ] {
        let line = if request.starts_with('\'') {
            format!("micro call go.micro.srv.catalog Catalog.Find {request} {reg}")
        } else {
            format!("micro call go.micro.srv.catalog {request} {reg}")
        };
        let (ok, _, err) = run(&line, &[], Duration::from_secs(30)).await;
        assert!(!ok, "{line}");
        assert!(err.contains(expected), "{line}: {err}");
    }

    // --- the gateway's rpc handler: JSON body (or the query) to the endpoint the path names
    let port = micro::testing::free_port().expect("free port");
    let (program, args) = procs::words(&format!(
        "micro {reg} api --handler=rpc --namespace=go.micro.srv"
    ));
    let address = [("MICRO_API_ADDRESS", format!("127.0.0.1:{port}"))];
    let mut gateway = Proc::spawn("gateway", &program, &args, &address, cluster.dir.path());
    gateway
        .wait_line(Duration::from_secs(30), |l| {
            l.contains("HTTP API Listening")
        })
        .await;
    let url = format!("http://127.0.0.1:{port}/catalog/catalog/find");
    let post = run_ok(
        &format!(
            r#"curl -s -H 'Content-Type: application/json' -d '{{"text":"apple","filter":{{"tags":["red"]}}}}' {url}"#
        ),
        &[],
    )
    .await;
    assert_eq!(
        post,
        r#"{"items":[{"name":"red apple","tags":["fruit","red"],"stock":12}],"instance":"one"}"#
    );
    let get = run_ok(&format!("curl -s '{url}?text=spin'"), &[]).await;
    assert_eq!(
        get,
        r#"{"items":[{"name":"spinach","tags":["vegetable","green"],"stock":9}],"instance":"one"}"#
    );
    let bad = run_ok(
        &format!(r#"curl -s -w ' %{{http_code}}' -d '{{"colour":"red"}}' {url}"#),
        &[],
    )
    .await;
    assert!(bad.ends_with(" 400"), "{bad}");
    assert!(bad.contains("is not a go.micro.srv.catalog.Query"), "{bad}");
    let own = run_ok(
        &format!(r#"curl -s -w ' %{{http_code}}' -d '{{"filter":{{"limit":-1}}}}' {url}"#),
        &[],
    )
    .await;
    assert_eq!(
        own,
        r#"{"id":"go.micro.srv.catalog","code":400,"detail":"limit -1 is negative","status":"Bad Request"} 400"#
    );
    catalog.assert_running();
    gateway.assert_running();
}
