//! micro-build's code for every kind of RPC (unary, server stream, client stream, both ways),
//! served by a micro service and called through the typed client, on the embedded registry;
//! a handler's error reaches the caller as go-micro's, also in the middle of a stream.

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use micro::registry::{Registry, RegistryOptions};
use micro::stream::BoxStream;
use micro::{Client, ClientOptions, Selector, SelectorOptions, Service, ServiceOptions};

mod pb {
    // Generated: the test uses what it needs.
    #![allow(clippy::all, unreachable_pub)]
    micro::include_proto!("examples.streams");
}

use pb::{CounterClient, Number, Numbers, Sum, Upto};

const SERVICE: &str = "go.micro.srv.counter";

struct Counter;

fn too_big(value: i64) -> micro::Error {
    micro::Error::bad_request(SERVICE, format!("{value} is too big"))
}

impl pb::CounterHandler for Counter {
    async fn add(&self, request: Numbers) -> Result<Sum, micro::Error> {
        Ok(Sum {
            total: request.values.iter().sum(),
            count: request.values.len() as i32,
        })
    }

    async fn count(&self, request: Upto) -> Result<BoxStream<Number>, micro::Error> {
        if request.last > 1000 {
            return Err(too_big(request.last));
        }
        let numbers = (1..=request.last).map(|value| Ok(Number { value }));
        Ok(Box::pin(futures::stream::iter(numbers)))
    }

    async fn total(&self, numbers: BoxStream<Number>) -> Result<Sum, micro::Error> {
        let numbers: Vec<Number> = numbers.try_collect().await?;
        Ok(Sum {
            total: numbers.iter().map(|n| n.value).sum(),
            count: numbers.len() as i32,
        })
    }

    async fn double(&self, numbers: BoxStream<Number>) -> Result<BoxStream<Number>, micro::Error> {
        Ok(Box::pin(numbers.map(|n| {
            let n = n?;
            if n.value > 1000 {
                return Err(too_big(n.value));
            }
            Ok(Number { value: n.value * 2 })
        })))
    }
}

fn numbers(values: &[i64]) -> impl futures::Stream<Item = Number> + Send + 'static {
    futures::stream::iter(
        values
            .iter()
            .map(|&value| Number { value })
            .collect::<Vec<_>>(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_rpc() {
    let cluster = registry_node::testing::TestCluster::start(3).await;
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("leader");
    let registry = Registry::new(&RegistryOptions::new(cluster.endpoints())).expect("registry");
    let service = Service::new(ServiceOptions::new(SERVICE), registry.clone());
    let running = pb::register_counter_handler(service, Counter)
        .start()
        .await
        .expect("starts");
    let streams: Vec<_> = running
        .service()
        .endpoints
        .iter()
        .map(|e| (e.name.as_str(), e.metadata["stream"].as_str()))
        .collect();
    assert_eq!(
        streams,
        [
            ("Counter.Add", "false"),
            ("Counter.Count", "true"),
            ("Counter.Total", "true"),
            ("Counter.Double", "true")
        ]
    );

    let client = Client::new(
        Selector::new(registry, SelectorOptions::default()),
        ClientOptions::default(),
    );
    let counter = CounterClient::new(SERVICE, &client);

    let sum = counter
        .add(Numbers {
            values: vec![1, 2, 3],
        })
        .await
        .expect("unary");
    assert_eq!((sum.total, sum.count), (6, 3));

    let counted: Vec<i64> = counter
        .count(Upto { last: 5 })
        .await
        .expect("server stream")
        .map_ok(|n| n.value)
        .try_collect()
        .await
        .expect("to the end");
    assert_eq!(counted, [1, 2, 3, 4, 5]);
    let refused = counter
        .count(Upto { last: 5000 })
        .await
        .err()
        .expect("refused before streaming");
    assert_eq!((refused.code, refused.id.as_str()), (400, SERVICE));

    let sum = counter
        .total(numbers(&[10, 20, 30, 40]))
        .await
        .expect("client stream");
    assert_eq!((sum.total, sum.count), (100, 4));

    let doubled: Vec<Result<i64, micro::Error>> = counter
        .double(numbers(&[1, 2, 2000, 3]))
        .await
        .expect("both ways")
        .map_ok(|n| n.value)
        .collect()
        .await;
    assert_eq!(
        doubled.len(),
        3,
        "the stream ends at the error: {doubled:?}"
    );
    assert_eq!(doubled[0].as_ref().ok(), Some(&2));
    assert_eq!(doubled[1].as_ref().ok(), Some(&4));
    let error = doubled[2].as_ref().expect_err("too big");
    assert_eq!(
        (error.code, error.detail.as_str()),
        (400, "2000 is too big")
    );

    running.stop().await.expect("stops");
}
