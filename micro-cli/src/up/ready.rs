//! The checks `micro up` waits on between start-up steps: a registry member answers a
//! linearizable read (etcdctl's `endpoint health`), a new node shows up in the registry, the
//! gateway answers 200. Each is one attempt; [`super::Supervisor`] polls them with a deadline.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use micro::Registry;

/// One registered node: `(service, node id, address)`.
pub(super) type NodeEntry = (String, String, String);

/// Every node in the registry, or `None` if it cannot be read right now.
pub(super) async fn registered_nodes(registry: &Registry) -> Option<BTreeSet<NodeEntry>> {
    let services = registry.list_services().await.ok()?;
    Some(
        services
            .into_iter()
            .flat_map(|s| {
                let name = s.name;
                s.nodes
                    .into_iter()
                    .map(move |n| (name.clone(), n.id, n.address))
            })
            .collect(),
    )
}

/// `GET path` on `addr` over HTTP/1.1: the status and body.
pub(super) async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("http handshake")?;
        tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .context("request")?;
        let response = sender.send_request(request).await.context("send")?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.context("body")?;
        Ok((
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        ))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .context("http request timed out")?
}

/// Whether the gateway answers `path` with 200.
pub(super) async fn gateway_ok(addr: SocketAddr, path: &str) -> bool {
    matches!(http_get(addr, path).await, Ok((200, _)))
}
