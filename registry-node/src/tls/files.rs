//! Certificates and keys: read from PEM files (errors name the flag and the file), made for
//! auto TLS (rcgen), turned into rustls server configs; and the verifier auto TLS dials with.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::rustls;

/// A certificate chain and its key, as PEM (for tonic's client side) and parsed (for rustls).
pub(crate) struct Pair {
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// The ring provider, named rather than taken from the process default (which is unset, or
/// ambiguous when another crate enables a second provider). rustls 0.23.48 deprecates it for
/// lacking post-quantum key exchange; aws-lc-rs, which has it, needs a C toolchain and cmake.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("--{flag} {}: {e}", path.display()))
}

fn pair_of(flag: &str, cert_pem: Vec<u8>, key_pem: Vec<u8>) -> Result<Pair, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--{flag}cert-file: not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("--{flag}cert-file: no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| format!("--{flag}key-file: no PEM private key: {e}"))?;
    Ok(Pair {
        cert_pem,
        key_pem,
        certs,
        key,
    })
}

/// `--<prefix>cert-file` and `--<prefix>key-file`.
pub(crate) fn load_pair(prefix: &str, cert: &Path, key: &Path) -> Result<Pair, String> {
    let cert_pem = read(&format!("{prefix}cert-file"), cert)?;
    let key_pem = read(&format!("{prefix}key-file"), key)?;
    pair_of(prefix, cert_pem, key_pem)
        .map_err(|e| format!("{e} ({} / {})", cert.display(), key.display()))
}

/// `--<prefix>trusted-ca-file`: its PEM and its certificates.
pub(crate) fn load_ca(
    prefix: &str,
    path: &Path,
) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
    let flag = format!("{prefix}trusted-ca-file");
    let pem = read(&flag, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--{flag} {}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("--{flag} {}: no certificate", path.display()));
    }
    Ok((pem, certs))
}

/// Auto TLS: the certificate kept in `dir` (`cert.pem`, `key.pem`), or a new self-signed one
/// for the URL's host and the bound address, as etcd's `transport.SelfCert` (ECDSA; P-256
/// here, etcd uses P-521 which rcgen's ring backend lacks).
pub(crate) fn self_signed(dir: &Path, url: &str, addr: SocketAddr) -> Result<Pair, String> {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        return load_pair("auto-tls ", &cert_path, &key_path);
    }
    let mut hosts = vec![addr.ip().to_string()];
    if let Some(host) = url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
    {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    let fail = |e: &dyn std::fmt::Display| format!("auto TLS: cannot make a certificate: {e}");
    let mut params = rcgen::CertificateParams::new(hosts).map_err(|e| fail(&e))?;
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "etcd");
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate().map_err(|e| fail(&e))?;
    let cert = params.self_signed(&key).map_err(|e| fail(&e))?;
    let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
    std::fs::create_dir_all(dir).map_err(|e| format!("auto TLS: {}: {e}", dir.display()))?;
    write_private(&key_path, key_pem.as_bytes())?;
    std::fs::write(&cert_path, &cert_pem)
        .map_err(|e| format!("auto TLS: {}: {e}", cert_path.display()))?;
    tracing::info!(cert = %cert_path.display(), "auto TLS: created a self-signed certificate");
    pair_of("auto-tls ", cert_pem.into_bytes(), key_pem.into_bytes())
}

/// Writes a key readable by its owner only (etcd: 0600).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("auto TLS: {}: {e}", path.display()))
}

/// A server config with `pair`; client certificates signed by `client_ca` required when given.
pub(crate) fn server_config(
    pair: &Pair,
    client_ca: Option<&Vec<CertificateDer<'static>>>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match client_ca {
        Some(certs) => {
            let mut roots = RootCertStore::empty();
            for c in certs {
                roots
                    .add(c.clone())
                    .map_err(|e| format!("trusted CA file: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("trusted CA file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(pair.certs.clone(), pair.key.clone_key())
        .map_err(|e| format!("cert/key files: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Accepts any server certificate (signatures are still checked): auto TLS's self-signed
/// certificates cannot be checked by anyone, and a member's gateway dials its own port.
#[derive(Debug)]
pub(crate) struct SkipVerify(Arc<CryptoProvider>);

impl SkipVerify {
    pub(crate) fn new() -> Self {
        SkipVerify(provider())
    }
}

impl Default for SkipVerify {
    fn default() -> Self {
        SkipVerify::new()
    }
}

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
