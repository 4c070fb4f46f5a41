//! Latency histograms (microseconds) and the common JSON fields of a result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// A histogram of microseconds, 1 µs to 60 s, 3 significant digits.
pub fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// `p50_ms`, `p99_ms`, `max_ms`, `mean_ms` and `count` of `h`, with `prefix` before each name.
pub fn latency(h: &Histogram<u64>, prefix: &str) -> Value {
    json!({
        format!("{prefix}count"): h.len(),
        format!("{prefix}p50_ms"): ms(h.value_at_quantile(0.5)),
        format!("{prefix}p99_ms"): ms(h.value_at_quantile(0.99)),
        format!("{prefix}max_ms"): ms(h.max()),
        format!("{prefix}mean_ms"): (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
    })
}

/// Merges `b`'s fields into `a`.
pub fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// A closed-loop run: `clients` tasks take op numbers from a shared counter until `total`,
/// each op timed; returns the merged histogram, the errors and the wall time.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    total: u64,
    make: impl Fn(usize) -> F,
) -> (Histogram<u64>, u64, Duration, Option<String>)
where
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients.max(1) {
        let mut op = make(c);
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = hist();
            let mut errors = 0u64;
            let mut last_err = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                match op(i).await {
                    Ok(()) => record(&mut h, t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        last_err = Some(format!("{}: {}", e.code(), e.message()));
                    }
                }
            }
            (h, errors, last_err)
        }));
    }
    let mut h = hist();
    let mut errors = 0;
    let mut last_err = None;
    for t in tasks {
        if let Ok((th, e, le)) = t.await {
            h.add(th).expect("same histogram bounds");
            errors += e;
            last_err = le.or(last_err);
        }
    }
    (h, errors, start.elapsed(), last_err)
}

/// The common result of a closed-loop run.
pub fn summary(
    workload: &str,
    h: &Histogram<u64>,
    errors: u64,
    elapsed: Duration,
    last_err: Option<String>,
) -> Value {
    let secs = elapsed.as_secs_f64();
    merge(
        json!({
            "workload": workload,
            "ok": h.len(),
            "errors": errors,
            "last_error": last_err,
            "elapsed_s": (secs * 1000.0).round() / 1000.0,
            "ops_per_s": (h.len() as f64 / secs).round(),
        }),
        latency(h, ""),
    )
}
