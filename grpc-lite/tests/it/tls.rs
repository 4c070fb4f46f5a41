//! `serve_tls`: unary handlers (the h2-only routes, served on hyper once TLS is in front) over a
//! rustls handshake with ALPN h2; a client speaking plain HTTP/2 to the TLS port is refused.

use crate::common;
use std::sync::Arc;
use std::time::Duration;

use grpc_lite::grpc;
use grpc_lite::server::{Limits, Routes};
use grpc_lite::tls::{rustls, serve_tls};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::bytes::Bytes;
use proto::greeter::{Request as Hello, Response as Answer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const HELLO: &str = "/go.micro.srv.greeter.Say/Hello";
const DEADLINE: Duration = Duration::from_secs(20);

#[allow(deprecated)] // ring: the workspace's one provider (see registry-node's tls)
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Serves a unary echo over TLS with a fresh self-signed certificate for 127.0.0.1; returns
/// the address and the certificate.
async fn start() -> (String, CertificateDer<'static>, CancellationToken) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec()];
    let routes = Routes::new().unary(HELLO, |req: Hello| async move {
        Ok::<_, tonic::Status>(Answer {
            msg: format!("Hello {}", req.name),
        })
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let stop = CancellationToken::new();
    let config = Arc::new(config);
    tokio::spawn(serve_tls(
        listener,
        routes,
        Limits::default(),
        config,
        stop.clone(),
    ));
    (address, cert, stop)
}

/// One unary call on a new HTTP/2 connection over `io`.
async fn hello<I>(io: I, name: &str) -> Result<String, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let body = grpc::encode(&Hello { name: name.into() });
    let request = Request::post(format!("https://127.0.0.1{HELLO}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = send
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let message = bytes.get(5..).ok_or("no message")?;
    let answer: Answer =
        grpc::decode(Bytes::copy_from_slice(message)).map_err(|s| s.message().to_owned())?;
    Ok(answer.msg)
}

#[tokio::test]
async fn unary_calls_over_tls_and_plain_http2_refused() {
    let _process = common::beside_others().await;
    let (address, cert, _stop) = start().await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(&address).await.expect("connect");
    let name = ServerName::try_from("127.0.0.1").expect("ip name");
    let tls = tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let answer = tokio::time::timeout(DEADLINE, hello(tls, "tls")).await;
    assert_eq!(answer.expect("in time"), Ok("Hello tls".to_owned()));

    let plain = TcpStream::connect(&address).await.expect("connect");
    let refused = tokio::time::timeout(DEADLINE, hello(plain, "plain"))
        .await
        .expect("refused in time");
    assert!(refused.is_err(), "plain HTTP/2 served: {refused:?}");
}
