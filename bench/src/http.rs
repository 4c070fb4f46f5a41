//! The gateway benchmark's two halves: `bench hello` (a bare HTTP hello-world, the ceiling)
//! and `bench http` (a closed-loop HTTP/1.1 GET load over N keep-alive connections, with
//! hyper-util's pooled client), so the chain gateway -> api -> srv and the bare handler are
//! measured by the same client on the same machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::stats;

#[derive(clap::Args, Debug, Clone)]
pub struct HelloArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub address: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// The URL to GET.
    #[arg(long)]
    pub url: String,
    /// Concurrent connections (one closed-loop client per connection).
    #[arg(long, default_value_t = 64)]
    pub conns: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 50_000)]
    pub total: u64,
    /// Requests sent (untimed) before the measured run, to open the connections.
    #[arg(long, default_value_t = 1_000)]
    pub warmup: u64,
}

/// Serves `{"msg":"Hello John"}`-sized JSON on every GET until killed.
pub async fn hello(a: &HelloArgs) -> anyhow::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().fallback(get(|| async {
        (
            [("content-type", "application/json")],
            r#"{"msg":"Hello John"}"#,
        )
    }));
    let listener = tokio::net::TcpListener::bind(&a.address)
        .await
        .with_context(|| format!("bind {}", a.address))?;
    eprintln!("hello listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

pub async fn run(a: &HttpArgs) -> anyhow::Result<Value> {
    let uri: hyper::Uri = a.url.parse().context("--url")?;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(a.conns)
        .pool_idle_timeout(Duration::from_secs(60))
        .build_http();
    let conns = a.conns.max(1);
    let once = |client: Client<_, Empty<Bytes>>, uri: hyper::Uri| async move {
        let resp = client.get(uri).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body.to_bytes())
            ));
        }
        Ok::<_, String>(())
    };
    // Warm-up: open the connections and let every process settle (not timed).
    let phases = [(a.warmup, false), (a.total, true)];
    let mut result = Value::Null;
    for (total, timed) in phases {
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (client, uri, next) = (client.clone(), uri.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut h = stats::hist();
                let (mut errors, mut last_err) = (0u64, None);
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let t = Instant::now();
                    match once(client.clone(), uri.clone()).await {
                        Ok(()) => stats::record(&mut h, t.elapsed()),
                        Err(e) => {
                            errors += 1;
                            last_err = Some(e);
                        }
                    }
                }
                (h, errors, last_err)
            }));
        }
        let mut h = stats::hist();
        let (mut errors, mut last_err) = (0, None);
        for t in tasks {
            let (th, e, le) = t.await?;
            h.add(th).expect("same histogram bounds");
            errors += e;
            last_err = le.or(last_err);
        }
        if timed {
            result = stats::summary("http", &h, errors, start.elapsed(), last_err);
        }
    }
    Ok(stats::merge(
        result,
        json!({"url": a.url, "http_conns": conns}),
    ))
}
