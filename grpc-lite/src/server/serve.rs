//! Serving: the accept loop (connection cap, TLS, which engine serves a connection), the
//! HTTP/2 settings, and the connections closed gracefully together on shutdown.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::dispatch::Dispatch;
use super::{Limits, Routes};

/// HTTP/2 settings of the server's connections.
fn builder() -> http2::Builder<TokioExecutor> {
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder.timer(TokioTimer::new());
    // gRPC has no use for `date` (grpc-go sends none); it cost a header per response.
    builder.auto_date_header(false);
    builder
}

/// HTTP/1.1 and HTTP/2 (the latter set as [`builder`]), for routes with an HTTP handler.
fn auto_builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut auto = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    auto.http2()
        .timer(TokioTimer::new())
        .auto_date_header(false);
    auto.http1().timer(TokioTimer::new());
    auto
}

/// Serves `routes` on `listener` until `shutdown` is cancelled, then closes the listener, lets
/// every connection finish its in-flight calls (HTTP/2 GOAWAY) and returns.
pub async fn serve(listener: TcpListener, routes: Routes, shutdown: CancellationToken) {
    serve_with(listener, routes, Limits::default(), shutdown).await
}

/// [`serve`] with `limits`: routes without tonic services are served on h2 directly (one task
/// per connection, [`crate::http2::server`]) under all of them; routes with tonic services on
/// hyper, under the connection cap.
pub async fn serve_with(
    listener: TcpListener,
    routes: Routes,
    limits: Limits,
    shutdown: CancellationToken,
) {
    serve_inner(listener, routes, limits, None, shutdown).await
}

/// [`serve_with`], each connection first through `tls` when given ([`crate::tls::serve_tls`]).
pub(crate) async fn serve_inner(
    listener: TcpListener,
    routes: Routes,
    limits: Limits,
    tls: Option<crate::tls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let service = Dispatch(Arc::new(routes));
    let builder = builder();
    let auto = auto_builder();
    let connections = Connections::default();
    // At the cap the loop stops accepting: further clients wait in the kernel's backlog.
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    loop {
        let accept = async {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return std::future::pending().await;
            };
            (slot, listener.accept().await)
        };
        let (slot, stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            (slot, accepted) = accept => match accepted {
                Ok((stream, remote)) => (slot, stream, remote),
                Err(error) => {
                    // Out of descriptors and the like: do not spin.
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Small frames both ways: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let closer = connections.closer();
        if let Some(tls) = &tls {
            // The handshake runs in the connection's task, not in the accept loop; a TLS
            // connection is always served on hyper (the h2-only engine wants a TcpStream).
            let (tls, service) = (tls.clone(), service.clone());
            let (auto, builder, timeout) =
                (auto.clone(), builder.clone(), limits.handshake_timeout);
            tokio::spawn(async move {
                if let Some(io) = crate::tls::accept(&tls, stream, remote, timeout).await {
                    serve_hyper(TokioIo::new(io), service, &auto, &builder, closer).await;
                }
                drop(slot);
            });
            continue;
        }
        if service.0.http.is_some() {
            // HTTP/1.1 or HTTP/2, told apart by the client's first bytes (the HTTP/2 preface).
            let connection = auto
                .serve_connection(TokioIo::new(stream), service.clone())
                .into_owned();
            tokio::spawn(async move {
                closer.serve(connection, |c| c.graceful_shutdown()).await;
                drop(slot);
            });
            continue;
        }
        if service.0.fallback.is_none() && service.0.observer.is_none() {
            let routes = Arc::clone(&service.0);
            let limits = Arc::clone(&limits);
            tokio::spawn(async move {
                crate::http2::server::serve_connection(stream, routes, limits, closer).await;
                drop(slot);
            });
            continue;
        }
        let connection = builder.serve_connection(TokioIo::new(stream), service.clone());
        tokio::spawn(async move {
            closer.serve(connection, |c| c.graceful_shutdown()).await;
            drop(slot);
        });
    }
    drop(listener);
    connections.drain().await;
}

/// Serves one connection (any byte stream, e.g. TLS) on hyper: HTTP/1.1 or HTTP/2 when the
/// routes have an HTTP handler, else HTTP/2.
async fn serve_hyper<I>(
    io: TokioIo<I>,
    service: Dispatch,
    auto: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    builder: &http2::Builder<TokioExecutor>,
    closer: Closer,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if service.0.http.is_some() {
        let connection = auto.serve_connection(io, service).into_owned();
        closer.serve(connection, |c| c.graceful_shutdown()).await;
    } else {
        let connection = builder.serve_connection(io, service);
        closer.serve(connection, |c| c.graceful_shutdown()).await;
    }
}

/// The connections of a server, closed gracefully together ([`Connections::drain`]); the
/// gateway's HTTP server uses it too.
pub struct Connections {
    closing: tokio::sync::watch::Sender<()>,
    watch: tokio::sync::watch::Receiver<()>,
}

/// One connection's view of [`Connections`], to serve it with.
#[derive(Clone)]
pub struct Closer(tokio::sync::watch::Receiver<()>);

impl Default for Connections {
    fn default() -> Self {
        let (closing, watch) = tokio::sync::watch::channel(());
        Connections { closing, watch }
    }
}

impl Connections {
    pub fn closer(&self) -> Closer {
        Closer(self.watch.clone())
    }

    /// Tells every connection to close gracefully and waits until all have ended.
    pub async fn drain(self) {
        let _ = self.closing.send(());
        drop(self.watch);
        self.closing.closed().await;
    }
}

impl Closer {
    /// Returns once [`Connections::drain`] has begun (or the server is gone).
    pub async fn closing(&mut self) {
        let _ = self.0.changed().await;
    }

    /// Runs `connection` until it ends, or until [`Connections::drain`]: then `close` starts
    /// its graceful shutdown and it finishes its in-flight requests.
    pub async fn serve<C, E>(mut self, connection: C, close: impl FnOnce(Pin<&mut C>))
    where
        C: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    tracing::debug!(%error, "connection ended");
                }
                return;
            }
            _ = self.0.changed() => close(connection.as_mut()),
        }
        if let Err(error) = connection.await {
            tracing::debug!(%error, "connection ended while closing");
        }
    }
}
