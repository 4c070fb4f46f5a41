//! The two ports, plain or over TLS: the client port on grpc-lite ([`grpc_lite::tls`]), the
//! peer port on tonic with the accept loop and handshakes done here (tonic's own TLS acceptor logs a refused
//! peer only at debug level; etcd logs `rejected connection from ...`, and so do we).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use grpc_lite::server::{Limits, Routes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::Instrument;

/// A peer that has not finished its handshake by then is dropped.
const PEER_HANDSHAKE: Duration = Duration::from_secs(5);

/// Serves the client port's `routes` on `listener`, over TLS when `tls` is given.
pub(crate) async fn serve_client(
    listener: TcpListener,
    routes: Routes,
    tls: Option<Arc<ServerConfig>>,
    shutdown: CancellationToken,
) {
    match tls {
        Some(config) => {
            grpc_lite::tls::serve_tls(listener, routes, Limits::default(), config, shutdown).await
        }
        None => grpc_lite::server::serve(listener, routes, shutdown).await,
    }
}

/// What the peer port's tonic server is given: plain connections, or TLS ones whose
/// handshake passed.
pub(crate) fn peer_incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    stop: CancellationToken,
) -> ReceiverStream<Accepted> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(accept_peers(listener, acceptor, tx, stop).in_current_span());
    ReceiverStream::new(rx)
}

type Accepted = Result<PeerIo, std::io::Error>;

/// Accepts peers until `stop`, each handshake in its own task; the streams that pass go to
/// the server through `tx`.
async fn accept_peers(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    tx: tokio::sync::mpsc::Sender<Accepted>,
    stop: CancellationToken,
) {
    loop {
        let (stream, remote) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: do not spin.
                    tracing::debug!(%error, "peer accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = acceptor.clone() else {
            if tx.send(Ok(PeerIo::Plain(stream))).await.is_err() {
                return;
            }
            continue;
        };
        let tx = tx.clone();
        let span = tracing::info_span!("peer port");
        tokio::spawn(
            async move {
                let accepted =
                    grpc_lite::tls::accept(&acceptor, stream, remote, PEER_HANDSHAKE).await;
                if let Some(tls) = accepted {
                    let _ = tx.send(Ok(PeerIo::Tls(Box::new(tls)))).await;
                }
            }
            .instrument(span),
        );
    }
}

/// A peer connection, plain or TLS (one type for tonic's server).
pub(crate) enum PeerIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for PeerIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        match self {
            PeerIo::Plain(s) => s.connect_info(),
            PeerIo::Tls(s) => s.get_ref().0.connect_info(),
        }
    }
}

impl AsyncRead for PeerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PeerIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PeerIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            PeerIo::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            PeerIo::Plain(s) => s.is_write_vectored(),
            PeerIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerIo::Plain(s) => Pin::new(s).poll_flush(cx),
            PeerIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PeerIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
