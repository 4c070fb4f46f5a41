//! One HTTP/2 connection per node, straight on hyper: the client's transport.
//!
//! ```text
//!   Client::call ─► Pool::get(address) ─► Slot (origin, lazily dialled SendRequest)
//!                                                      └─ closed? replaced on next use
//! ```
//!
//! tonic's `Channel` puts a `tower::Buffer` (a queue and a worker task) and a reconnecting
//! balancer in front of each connection; a unary call here is one `send_request` on a cloned
//! handle of the connection. Every transport failure (dial refused or timed out, connection
//! gone) surfaces as UNAVAILABLE, which the client treats as "node unreachable".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Uri;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

/// A request body: one encoded gRPC frame, of no declared size (as tonic's: with an exact size
/// hyper would add `content-length`, which tonic's requests did not carry).
#[derive(Debug)]
pub(crate) struct Body(Option<Bytes>);

impl Body {
    pub(crate) fn new(frame: Bytes) -> Self {
        Body(Some(frame))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.take().map(|data| Ok(http_body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

/// The connections of one client, by node address; clones of the client share it.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One node's connection, dialled by the first call that needs it.
#[derive(Debug)]
struct Slot {
    origin: Uri,
    conn: OnceCell<SendRequest<Body>>,
}

/// Why no connection to a node could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("bad node address {0:?}")]
    Address(String),
    #[error("connect {0}: timed out after {1:?}")]
    Timeout(String, Duration),
    #[error("connect {0}")]
    Io(String, #[source] std::io::Error),
    #[error("HTTP/2 handshake with {0}")]
    Handshake(String, #[source] hyper::Error),
}

impl Pool {
    /// The origin (`http://host:port`) and a connection to `address`, dialling it (bounded by
    /// `dial_timeout`) if there is none or the last one has closed.
    pub(crate) async fn get(
        &self,
        address: &str,
        dial_timeout: Duration,
    ) -> Result<(Uri, SendRequest<Body>), ConnectError> {
        let slot = self.slot(address)?;
        let send = slot
            .conn
            .get_or_try_init(|| connect(address, dial_timeout))
            .await?;
        Ok((slot.origin.clone(), send.clone()))
    }

    /// Drops the connection to `address`: the next call dials again.
    pub(crate) fn forget(&self, address: &str) {
        self.lock().remove(address);
    }

    fn slot(&self, address: &str) -> Result<Arc<Slot>, ConnectError> {
        let mut slots = self.lock();
        if let Some(slot) = slots.get(address) {
            if !slot.conn.get().is_some_and(SendRequest::is_closed) {
                return Ok(Arc::clone(slot));
            }
        }
        let origin = crate::registry::normalize(address)
            .parse::<Uri>()
            .map_err(|_| ConnectError::Address(address.to_owned()))?;
        let slot = Arc::new(Slot {
            origin,
            conn: OnceCell::new(),
        });
        slots.insert(address.to_owned(), Arc::clone(&slot));
        Ok(slot)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Dials `address`, sets TCP_NODELAY, does the HTTP/2 handshake and drives the connection on
/// its own task until it closes.
async fn connect(address: &str, dial_timeout: Duration) -> Result<SendRequest<Body>, ConnectError> {
    let stream = tokio::time::timeout(dial_timeout, TcpStream::connect(address))
        .await
        .map_err(|_| ConnectError::Timeout(address.to_owned(), dial_timeout))?
        .map_err(|e| ConnectError::Io(address.to_owned(), e))?;
    // Small request/response frames: no Nagle delay waiting for an ACK.
    let _ = stream.set_nodelay(true);
    let (send, connection) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ConnectError::Handshake(address.to_owned(), e))?;
    let address = address.to_owned();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%address, %error, "connection to node closed");
        }
    });
    Ok(send)
}
