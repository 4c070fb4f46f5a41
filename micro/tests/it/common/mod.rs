//! Helpers of the suite: the greeter service, clients, raw registry access (etcdctl or the etcd
//! API directly), and a limit on how many clusters run at once on a small machine.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use micro::registry::{Endpoint, RegisterOptions, Registry, RegistryOptions};
use micro::selector::{Kind, SelectorOptions, Strategy};
use micro::testing::{Backend, BackendKind};
use micro::{Client, ClientOptions, Running, Service, ServiceOptions};
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::LeaseTimeToLiveRequest;
use proto::greeter::say_server::{Say, SayServer};
use proto::greeter::{Request as HelloRequest, Response as HelloResponse};
use tokio::sync::{Semaphore, SemaphorePermit};

pub(crate) const SRV: &str = "go.micro.srv.greeter";

/// Short TTL and interval so the suite is quick: TTL 3 s, interval 1 s.
pub(crate) const FAST: RegisterOptions = RegisterOptions {
    ttl: Duration::from_secs(3),
    interval: Duration::from_secs(1),
};

static SLOTS: Semaphore = Semaphore::const_new(2);

/// At most two scenarios (six registry members) at once.
pub(crate) async fn slot() -> SemaphorePermit<'static> {
    SLOTS.acquire().await.expect("semaphore never closed")
}

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "micro=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The demo backend: answers `Hello <name> srv <label>`, and go-micro's BadRequest for no name.
pub(crate) struct Greeter {
    pub label: String,
}

#[tonic::async_trait]
impl Say for Greeter {
    async fn hello(
        &self,
        request: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloResponse>, tonic::Status> {
        let name = request.into_inner().name;
        if name.is_empty() {
            return Err(micro::Error::bad_request(SRV, "Name cannot be blank").into());
        }
        Ok(tonic::Response::new(HelloResponse {
            msg: format!("Hello {name} srv {}", self.label),
        }))
    }
}

pub(crate) fn registry(endpoints: Vec<String>) -> Registry {
    let mut options = RegistryOptions::new(endpoints);
    options.dial_timeout = Duration::from_millis(500);
    options.request_timeout = Duration::from_secs(2);
    Registry::new(&options).expect("registry client")
}

/// Starts a greeter instance `label` registered in `registry`.
pub(crate) async fn start_greeter(
    registry: &Registry,
    label: &str,
    register: RegisterOptions,
) -> Running {
    let mut options = ServiceOptions::new(SRV);
    options.register = register;
    Service::new(options, registry.clone())
        .handle(
            SayServer::new(Greeter {
                label: label.to_owned(),
            }),
            [Endpoint::unary("Say.Hello", "Request", "Response")],
        )
        .start()
        .await
        .expect("greeter starts and registers")
}

pub(crate) fn client(registry: &Registry, kind: Kind, strategy: Strategy) -> Client {
    let selector = micro::Selector::new(
        registry.clone(),
        SelectorOptions {
            kind,
            strategy,
            ..Default::default()
        },
    );
    Client::new(
        selector,
        ClientOptions {
            request_timeout: Duration::from_secs(3),
            ..Default::default()
        },
    )
}

pub(crate) async fn hello(client: &Client, name: &str) -> Result<String, micro::Error> {
    client
        .call::<_, HelloResponse>(
            SRV,
            "Say.Hello",
            HelloRequest {
                name: name.to_owned(),
            },
        )
        .await
        .map(|r| r.msg)
}

pub(crate) fn has_etcdctl() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("etcdctl").is_file()))
}

/// Runs the real etcdctl; returns stdout, or `None` if it failed.
pub(crate) async fn etcdctl(endpoints: &[String], args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--dial-timeout=2s")
        .arg("--command-timeout=5s")
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `(key, raw value)` of everything under `/micro-registry/`, read with
/// `etcdctl get --prefix /micro-registry/` when etcdctl is installed, else with the KV API.
pub(crate) async fn raw_registry(endpoints: &[String]) -> Vec<(String, String)> {
    if has_etcdctl() {
        let out = etcdctl(endpoints, &["get", "--prefix", "/micro-registry/"])
            .await
            .expect("etcdctl get --prefix /micro-registry/");
        let lines: Vec<&str> = out.lines().collect();
        return lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_owned(), c[1].to_owned()))
            .collect();
    }
    let prefix = micro::registry::PREFIX.as_bytes().to_vec();
    let end = micro::registry::prefix_end(&prefix);
    let mut kv = proto::etcdserverpb::kv_client::KvClient::new(channel(endpoints).await);
    kv.range(proto::etcdserverpb::RangeRequest {
        key: prefix,
        range_end: end,
        ..Default::default()
    })
    .await
    .expect("range")
    .into_inner()
    .kvs
    .into_iter()
    .map(|kv| {
        (
            String::from_utf8_lossy(&kv.key).into_owned(),
            String::from_utf8_lossy(&kv.value).into_owned(),
        )
    })
    .collect()
}

/// A channel to the first member of `endpoints` that accepts a connection.
pub(crate) async fn channel(endpoints: &[String]) -> tonic::transport::Channel {
    for url in endpoints {
        let endpoint = tonic::transport::Endpoint::from_shared(url.clone())
            .expect("url")
            .connect_timeout(Duration::from_millis(500));
        if let Ok(ch) = endpoint.connect().await {
            return ch;
        }
    }
    panic!("no member of {endpoints:?} accepts connections")
}

/// `(remaining ttl, granted ttl, keys)` of a lease, through the Lease API (-1 when unknown).
pub(crate) async fn time_to_live(
    endpoints: &[String],
    lease: i64,
) -> Option<(i64, i64, Vec<String>)> {
    let mut client = LeaseClient::new(channel(endpoints).await);
    let r = client
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: lease,
            keys: true,
        })
        .await
        .ok()?
        .into_inner();
    Some((
        r.ttl,
        r.granted_ttl,
        r.keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect(),
    ))
}

/// Runs `scenario` against a fresh three-member backend of `kind` (skipped when
/// [`Backend::start`] says so), then shuts the backend down.
pub(crate) async fn run<F, Fut>(kind: BackendKind, scenario: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: std::future::Future<Output = Backend>,
{
    init_tracing();
    let _slot = slot().await;
    if let Some(backend) = Backend::start(kind).await {
        scenario(backend).await.shutdown().await;
    }
}

/// Generates `<scenario>::etcd` and `<scenario>::embedded` for each `scenarios::<scenario>`.
#[macro_export]
macro_rules! both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                $crate::common::run(
                    micro::testing::BackendKind::Etcd,
                    super::scenarios::$scenario,
                )
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                $crate::common::run(
                    micro::testing::BackendKind::Embedded,
                    super::scenarios::$scenario,
                )
                .await;
            }
        }
    )*};
}
