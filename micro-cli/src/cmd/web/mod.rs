//! `micro web`: a dashboard in the browser, on its own port (`--address`, `:8082` as go-micro's
//! web), over whichever registry `--registry_address` names (ours or a real etcd).
//!
//! ```text
//!   GET  /               index.html  ┐ embedded in the binary (include_str!),
//!   GET  /app.js         the page's  │ no build step
//!   GET  /style.css      script      ┘
//!   GET  /api/services   every service, node and endpoint, plus `micro get service`'s text
//!   GET  /api/registry   members (leader, term, revision) and leases (TTL left, keys)
//!   POST /api/call       {"service","endpoint","request"} ─► micro call's code ─► the answer
//!   GET  /api/events     server-sent events: a new services snapshot on every watch event
//! ```
//!
//! The page reads `/api/events` for services (pushed, so a node that goes away disappears
//! without a reload) and polls `/api/registry`, whose lease TTLs change every second without
//! any registry event.

mod cluster;
mod live;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use futures::{Stream, StreamExt};
use micro::{MicroArgs, Registry};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use cluster::Cluster;
use live::Live;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Bound on one call made from the page's form body: larger requests are refused.
const MAX_CALL_BYTES: usize = 1024 * 1024;

/// `micro web [--address :8082]` and go-micro's flags (`--registry_address`, ...).
#[derive(Debug, Clone, Args)]
pub(crate) struct WebArgs {
    /// Where the dashboard listens (`:8082`: every interface, as go-micro's `micro web`).
    #[arg(long, default_value = ":8082")]
    pub address: String,
    #[command(flatten)]
    pub micro: MicroArgs,
}

/// What every handler shares.
struct Web {
    micro: MicroArgs,
    cluster: Cluster,
    live: Live,
}

/// Serves the dashboard until `shutdown` is cancelled.
pub(crate) async fn run(args: WebArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = gateway::bind(&args.address).await?;
    let address = listener.local_addr()?;
    // The line tests and users wait for: the dashboard answers from here on.
    println!("micro web: dashboard on http://{address}");
    serve(listener, args.micro, shutdown).await
}

/// Serves the dashboard on `listener`; returns once `shutdown` is cancelled and the
/// connections are done (event streams end at the cancellation).
async fn serve(
    listener: TcpListener,
    micro: MicroArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let registry = Registry::new(&micro.registry_options())?;
    let web = Arc::new(Web {
        cluster: Cluster::new(&registry, micro.registry_options().request_timeout)?,
        live: Live::start(registry, shutdown.clone()),
        micro,
    });
    let app = Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript", APP_JS) }),
        )
        .route("/style.css", get(|| async { asset("text/css", STYLE_CSS) }))
        .route("/api/services", get(services))
        .route("/api/registry", get(registry_status))
        .route("/api/call", post(call))
        .route(
            "/api/events",
            get({
                let shutdown = shutdown.clone();
                move |state| events(state, shutdown)
            }),
        )
        .with_state(web);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encode: {e}")).into_response(),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

async fn services(State(web): State<Arc<Web>>) -> Response {
    match web.live.current() {
        Some(snapshot) => (
            [(header::CONTENT_TYPE, "application/json")],
            snapshot.as_ref().clone(),
        )
            .into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            web.live
                .last_error()
                .unwrap_or_else(|| "the registry has not answered yet".to_owned()),
        ),
    }
}

async fn registry_status(State(web): State<Arc<Web>>) -> Response {
    json(StatusCode::OK, &web.cluster.status().await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallForm {
    service: String,
    endpoint: String,
    #[serde(default)]
    request: String,
}

/// The form's call, made by `micro call`'s own code (its message table, then reflection).
async fn call(State(web): State<Arc<Web>>, body: Bytes) -> Response {
    if body.len() > MAX_CALL_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a call is at most {MAX_CALL_BYTES} bytes"),
        );
    }
    let form: CallForm = match serde_json::from_slice(&body) {
        Ok(form) => form,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("call form: {e}")),
    };
    if form.service.trim().is_empty() || form.endpoint.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "service and endpoint are required".to_owned(),
        );
    }
    let answer = super::call::answer(
        &web.micro,
        form.service.trim(),
        form.endpoint.trim(),
        &form.request,
    )
    .await;
    match answer {
        Ok(answer) => json(StatusCode::OK, &serde_json::json!({ "answer": answer })),
        // The call was made; its failure (the service's error, no node, ...) is the answer the
        // page shows, so this stays a 200 with an `error` field.
        Err(e) => json(
            StatusCode::OK,
            &serde_json::json!({ "error": format!("{e:#}") }),
        ),
    }
}

/// Server-sent events: `services` with the current snapshot at once, then after every change.
async fn events(
    State(web): State<Arc<Web>>,
    shutdown: CancellationToken,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = web
        .live
        .subscribe()
        .map(|snapshot| Ok(Event::default().event("services").data(snapshot.as_str())))
        // The stream ends at shutdown, or graceful shutdown would wait for it forever.
        .take_until(shutdown.cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}
