//! TLS on the server's accept path (rustls through tokio-rustls): [`serve_tls`] is
//! [`crate::server::serve_with`] with a TLS handshake in front of every connection. The
//! handshake runs in the connection's own task (a slow or silent client never holds up the
//! accept loop) under the limits' `handshake_timeout`; a refused handshake is logged with the
//! client's address, as etcd logs `rejected connection from ...`.
//!
//! The caller builds the [`rustls::ServerConfig`]: certificates, whether client certificates
//! are required and from which CA, and ALPN (`h2`, plus `http/1.1` when the routes answer
//! plain HTTP: rustls refuses a client whose ALPN offer it cannot meet).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use tokio_rustls::rustls;
pub use tokio_rustls::server::TlsStream;
pub use tokio_rustls::TlsAcceptor;

use crate::server::{Limits, Routes};

/// Serves `routes` on `listener` as [`crate::server::serve_with`] does, over TLS with `config`.
pub async fn serve_tls(
    listener: TcpListener,
    routes: Routes,
    limits: Limits,
    config: Arc<rustls::ServerConfig>,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(config);
    crate::server::serve_inner(listener, routes, limits, Some(acceptor), shutdown).await
}

/// Runs the server side of the handshake on `stream` (from `remote`) within `timeout`; `None`
/// when it failed (logged: a refused certificate or a client speaking plain HTTP as a
/// warning, a client that just went away at debug level).
pub async fn accept<S>(
    acceptor: &TlsAcceptor,
    stream: S,
    remote: SocketAddr,
    timeout: Duration,
) -> Option<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            // A connection closed before its hello (a port probe) says nothing about TLS.
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                tracing::debug!(%remote, %error, "TLS handshake: client went away");
            } else {
                tracing::warn!(%remote, %error, "rejected connection (TLS handshake failed)");
            }
            None
        }
        Err(_) => {
            tracing::warn!(%remote, ?timeout, "rejected connection (TLS handshake timed out)");
            None
        }
    }
}
