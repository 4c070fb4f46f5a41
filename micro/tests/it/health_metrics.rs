//! Every service's health (`grpc.health.v1.Health/Check`) and Prometheus metrics, on our
//! registry and on a real etcd: SERVING once started, NOT_SERVING while it stops (its drain
//! grace), unreachable once stopped; a call and a failed call counted per endpoint on
//! `/metrics`.

use crate::both_backends;
use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use micro::handler::Mount;
use micro::health::{check, ServingStatus};
use micro::registry::Endpoint;
use micro::testing::{wait_for, Backend};
use micro::{Service, ServiceOptions};
use proto::greeter::{Request as HelloRequest, Response as HelloResponse};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{FAST, SRV};

const CHECK: Duration = Duration::from_secs(2);

/// The greeter as generated code mounts it (what `register_say_handler` does).
fn say() -> Mount {
    Mount::new(
        "Say",
        vec![Endpoint::unary("Say.Hello", "Request", "Response")],
    )
    .unary("Hello", |request: HelloRequest| async move {
        if request.name.is_empty() {
            return Err(micro::Error::bad_request(SRV, "Name cannot be blank"));
        }
        Ok(HelloResponse {
            msg: format!("Hello {}", request.name),
        })
    })
}

/// `GET /metrics` over HTTP/1.0: the body.
async fn scrape(address: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("metrics port");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains("application/openmetrics-text"), "{answer}");
    answer
}

mod scenarios {
    use super::*;

    pub(super) async fn health_and_metrics(backend: Backend) -> Backend {
        let registry = common::registry(backend.endpoints());
        let mut options = ServiceOptions::new(SRV);
        options.register = FAST;
        options.metrics_address = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        // Long enough to see NOT_SERVING while stopping, however slow the machine.
        options.drain_grace = Duration::from_secs(4);
        let service = Service::new(options, registry.clone())
            .mount(say())
            .layer(micro::wrapper::Logging);
        // The same metrics count this process's calls as a client.
        let metrics = service.metrics().clone();
        let running = service.start().await.expect("starts");
        let address = running.address().to_string();

        for name in ["", SRV, "go.micro.srv.greeter.Say"] {
            let status = check(&address, name, CHECK).await.expect("answered");
            assert_eq!(status, ServingStatus::Serving, "{name:?}");
        }
        let unknown = check(&address, "go.micro.srv.other", CHECK)
            .await
            .expect_err("not served here");
        assert_eq!(unknown.code(), tonic::Code::NotFound);

        let client = common::client(
            &registry,
            micro::selector::Kind::Cache,
            micro::selector::Strategy::Random,
        )
        .layer(metrics);
        assert_eq!(
            common::hello(&client, "John").await.expect("hello"),
            "Hello John"
        );
        let refused = common::hello(&client, "").await.expect_err("blank name");
        assert_eq!(refused.code, 400);

        let metrics = running.metrics_address().expect("metrics served");
        let text = scrape(metrics).await;
        let labels = r#"{service="go.micro.srv.greeter",endpoint="Say.Hello"}"#;
        for line in [
            format!("micro_server_requests_total{labels} 2"),
            format!("micro_server_errors_total{labels} 1"),
            format!("micro_server_request_duration_seconds_count{labels} 2"),
            format!("micro_client_requests_total{labels} 2"),
            format!("micro_client_errors_total{labels} 1"),
        ] {
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }

        // Stopping: NOT_SERVING (and deregistered) while the grace lasts, then gone.
        let stopping = tokio::spawn(running.stop());
        let status = wait_for(
            "NOT_SERVING while stopping",
            Duration::from_secs(30),
            || {
                let address = address.clone();
                async move {
                    match check(&address, "", CHECK).await {
                        Ok(ServingStatus::Serving) => None,
                        Ok(status) => Some(status),
                        Err(status) => {
                            panic!("the server closed before answering NOT_SERVING: {status}")
                        }
                    }
                }
            },
        )
        .await;
        assert_eq!(status, ServingStatus::NotServing);
        stopping.await.expect("stop task").expect("stops");
        let gone = check(&address, "", CHECK).await.expect_err("stopped");
        assert_eq!(gone.code(), tonic::Code::Unavailable, "{gone}");
        backend
    }
}

both_backends!(health_and_metrics);
