//! `greeter web --name one`: an HTTP service, `go.micro.web.greeter`, registered as go-micro's
//! web package registers one (its node's address is its HTTP listener), for the gateway's
//! `--handler=http`. Every request is answered with what it was, as JSON:
//! `{"web":"one","method":"GET","path":"/greeter/x","query":"a=1","body":""}`.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use micro::config::MicroArgs;
use micro::registry::{self, Node, Registry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The service's name.
pub const SERVICE: &str = "go.micro.web.greeter";

/// Largest request body echoed.
const BODY_LIMIT: usize = 64 * 1024;

async fn echo(State(instance): State<String>, request: Request) -> impl IntoResponse {
    let (head, body) = request.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let answer = serde_json::json!({
        "web": instance,
        "method": head.method.as_str(),
        "path": head.uri.path(),
        "query": head.uri.query().unwrap_or_default(),
        "body": body,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
}

/// Serves and registers instance `name` until `shutdown`, then deregisters and stops.
pub async fn run(name: &str, micro: &MicroArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let registry = Registry::new(&micro.registry_options())?;
    let options = micro.service_options(SERVICE);
    let bind = options
        .address
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let listener = TcpListener::bind(bind).await?;
    let local = listener.local_addr()?;
    let address = options.advertise.clone().unwrap_or_else(|| {
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            local.ip().to_string()
        };
        format!("{host}:{}", local.port())
    });
    let mut service = registry::Service::new(&options.name);
    service.nodes.push(Node::new(&options.name, address));
    let app = axum::Router::new()
        .fallback(echo)
        .with_state(name.to_owned());
    let stop = CancellationToken::new();
    let until = stop.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(until.cancelled_owned())
            .await
    });
    let registration = match registry.register(&service, options.register).await {
        Ok(r) => r,
        Err(e) => {
            stop.cancel();
            let _ = server.await;
            return Err(e.into());
        }
    };
    let node = &service.nodes[0];
    tracing::info!("registered {} at {}", node.id, node.address);
    shutdown.cancelled().await;
    let deregistered = registration.deregister().await;
    stop.cancel();
    server.await??;
    deregistered?;
    tracing::info!("deregistered {}, stopped", node.id);
    Ok(())
}
