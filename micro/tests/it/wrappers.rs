//! The client's layers on tokio's paused clock (no network): retries with exponential backoff,
//! the circuit breaker (opens after N failures, refuses during its cool-down, lets one trial
//! through after it, closes on a success), the logging layer's lines; and `Client::layer`
//! wrapping real calls.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micro::registry::{Registry, RegistryOptions};
use micro::wrapper::{
    Breaker, BreakerOptions, ClientCall, ClientStack, Logging, Retry, RetryOptions,
};
use micro::{Client, ClientOptions, Selector, SelectorOptions};
use prost::bytes::Bytes;
use tokio::time::Instant;
use tower::{Layer, ServiceExt as _};

fn call() -> ClientCall {
    ClientCall {
        service: "go.micro.srv.greeter".into(),
        endpoint: "Say.Hello".into(),
        message: Bytes::from_static(b"x"),
    }
}

/// A callee answering the codes in `script` in turn (0: success), then successes; counts calls.
fn scripted(script: &[i32], calls: Arc<AtomicU32>) -> ClientStack {
    let script: Arc<Mutex<Vec<i32>>> = Arc::new(Mutex::new(script.iter().rev().copied().collect()));
    ClientStack::new(tower::service_fn(move |_: ClientCall| {
        calls.fetch_add(1, Ordering::SeqCst);
        let code = script.lock().expect("script").pop().unwrap_or(0);
        async move {
            match code {
                0 => Ok(Bytes::from_static(b"ok")),
                code => Err(micro::Error::new("go.micro.srv.greeter", code, "scripted")),
            }
        }
    }))
}

#[tokio::test(start_paused = true)]
async fn retries_transient_errors_with_exponential_backoff() {
    let options = RetryOptions {
        attempts: 3,
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(150),
        ..RetryOptions::default()
    };
    let calls = Arc::new(AtomicU32::default());
    let service = Retry::new(options).layer(scripted(&[503, 500, 408], Arc::clone(&calls)));
    let started = Instant::now();
    service
        .oneshot(call())
        .await
        .expect("fourth attempt succeeds");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // 100 ms, then 200 ms capped at 150, then 150: on the paused clock, exactly.
    assert_eq!(started.elapsed(), Duration::from_millis(400));

    // A client's mistake is not retried; retries run out.
    let calls = Arc::new(AtomicU32::default());
    let service = Retry::new(options).layer(scripted(&[400], Arc::clone(&calls)));
    let error = service.oneshot(call()).await.expect_err("bad request");
    assert_eq!((error.code, calls.load(Ordering::SeqCst)), (400, 1));
    let calls = Arc::new(AtomicU32::default());
    let service = Retry::new(options).layer(scripted(&[503; 10], Arc::clone(&calls)));
    let error = service.oneshot(call()).await.expect_err("always down");
    assert_eq!((error.code, calls.load(Ordering::SeqCst)), (503, 4));
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_after_n_failures_and_half_opens_after_cool_down() {
    let breaker = Breaker::new(BreakerOptions {
        failures: 3,
        cool_down: Duration::from_secs(10),
        ..BreakerOptions::default()
    });
    let calls = Arc::new(AtomicU32::default());
    // Three failures, then the trial fails, then everything succeeds.
    let service = breaker.layer(scripted(&[503, 500, 503, 503], Arc::clone(&calls)));
    let is_open = || breaker.is_open("go.micro.srv.greeter", "Say.Hello");

    for n in 1..=3 {
        assert!(!is_open(), "closed before failure {n}");
        service.clone().oneshot(call()).await.expect_err("failure");
    }
    assert!(is_open());
    let refused = service.clone().oneshot(call()).await.expect_err("open");
    assert_eq!(refused.code, 503);
    assert!(refused.detail.contains("circuit breaker open"), "{refused}");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "refused without calling");

    tokio::time::advance(Duration::from_secs(9)).await;
    service
        .clone()
        .oneshot(call())
        .await
        .expect_err("still open");
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Cool-down over: one trial goes through; it fails, and the circuit opens again.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(!is_open(), "half-open: the next call is a trial");
    let failed = service
        .clone()
        .oneshot(call())
        .await
        .expect_err("trial fails");
    assert_eq!(failed.detail, "scripted");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(is_open());
    service
        .clone()
        .oneshot(call())
        .await
        .expect_err("open again");
    assert_eq!(calls.load(Ordering::SeqCst), 4);

    // The next trial succeeds: closed, calls flow.
    tokio::time::advance(Duration::from_secs(10)).await;
    service
        .clone()
        .oneshot(call())
        .await
        .expect("trial succeeds");
    assert!(!is_open());
    service.clone().oneshot(call()).await.expect("closed");
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

/// Collects what the logging layer writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logging_writes_one_line_per_call() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let calls = Arc::new(AtomicU32::default());
    let service = Logging.layer(scripted(&[0, 503], calls));
    service.clone().oneshot(call()).await.expect("ok");
    service.oneshot(call()).await.expect_err("failure");
    let text = String::from_utf8(captured.0.lock().expect("buffer").clone()).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("DEBUG") && lines[0].contains("call ok"),
        "{text}"
    );
    assert!(
        lines[1].contains("WARN") && lines[1].contains("call failed"),
        "{text}"
    );
    for line in lines {
        assert!(
            line.contains("side=\"client\"") || line.contains("side=client"),
            "{line}"
        );
        assert!(line.contains("endpoint=Say.Hello"), "{line}");
    }
}

/// A layer counting the calls that reach it.
fn count(
    calls: Arc<AtomicU32>,
) -> impl Layer<
    ClientStack,
    Service = impl tower::Service<ClientCall, Response = Bytes, Error = micro::Error, Future: Send>
                  + Clone
                  + Send
                  + Sync
                  + 'static,
> + Send
       + Sync
       + 'static {
    tower::layer::layer_fn(move |inner: ClientStack| {
        let calls = Arc::clone(&calls);
        tower::util::MapRequest::new(inner, move |call: ClientCall| {
            calls.fetch_add(1, Ordering::SeqCst);
            call
        })
    })
}

#[tokio::test]
async fn client_layers_wrap_every_call_last_added_outermost() {
    // Nothing listens on port 1: every call fails at selection with go-micro's 500.
    let registry =
        Registry::new(&RegistryOptions::new(vec!["127.0.0.1:1".into()])).expect("registry");
    let (inner, outer) = (
        Arc::new(AtomicU32::default()),
        Arc::new(AtomicU32::default()),
    );
    let client = Client::new(
        Selector::new(registry, SelectorOptions::default()),
        ClientOptions::default(),
    )
    .layer(count(Arc::clone(&inner)))
    .layer(Retry::new(RetryOptions {
        attempts: 2,
        backoff: Duration::from_millis(1),
        ..RetryOptions::default()
    }))
    .layer(count(Arc::clone(&outer)));
    let error = client
        .call::<_, proto::greeter::Response>(
            "go.micro.srv.greeter",
            "Say.Hello",
            proto::greeter::Request::default(),
        )
        .await
        .expect_err("no registry");
    assert_eq!(error.code, 500, "{error}");
    assert_eq!(outer.load(Ordering::SeqCst), 1, "outside the retries: once");
    assert_eq!(inner.load(Ordering::SeqCst), 3, "inside: every attempt");
}
