//! TLS and etcd authentication for the registry client: go-micro's etcd registry options
//! `Secure`, `TLSConfig` and `Auth(username, password)`.
//!
//! ```text
//!   RegistryOptions.tls  ─► ClientTlsConfig on every member's channel (rustls, ring)
//!   RegistryOptions.auth ─► Auth.Authenticate once ─► token ─► `token` metadata on every call
//!                           "etcdserver: invalid auth token" ─► authenticate again, retry once
//! ```
//!
//! As etcd's Go client (`clientv3`): the token is fetched before the first call, from the first
//! member that answers; a server without auth enabled answers "authentication is not enabled"
//! and calls go without a token; a token the server no longer knows (simple tokens expire after
//! `--auth-token-ttl` unused, and on a member restart) is replaced and the call repeated.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Status};

use super::Error;

/// A PEM document: a file read when the registry client is built, or the bytes themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    File(PathBuf),
    Bytes(Vec<u8>),
}

impl Pem {
    fn read(&self, what: &'static str) -> Result<Vec<u8>, Error> {
        match self {
            Pem::Bytes(bytes) => Ok(bytes.clone()),
            Pem::File(path) => std::fs::read(path).map_err(|source| Error::TlsFile {
                what,
                path: path.clone(),
                source,
            }),
        }
    }
}

/// TLS towards the registry members (go-micro's `Secure` / `TLSConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The CA that signed the members' certificates (`--registry_tls_ca`, etcdctl's
    /// `--cacert`); `None`: the system's trusted roots.
    pub ca: Option<Pem>,
    /// A client certificate (`--registry_tls_cert`, etcdctl's `--cert`), for members that
    /// run with `--client-cert-auth`; needs `key`.
    pub cert: Option<Pem>,
    /// The client certificate's private key (`--registry_tls_key`, etcdctl's `--key`).
    pub key: Option<Pem>,
}

impl TlsOptions {
    /// tonic's client TLS settings, the files read now.
    pub(crate) fn client_config(&self) -> Result<ClientTlsConfig, Error> {
        // Servers that serve gRPC without announcing h2 by ALPN still speak HTTP/2.
        let mut config = ClientTlsConfig::new().assume_http2(true);
        config = match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca.read("CA certificate")?)),
            None => config.with_native_roots(),
        };
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let identity =
                    Identity::from_pem(cert.read("client certificate")?, key.read("client key")?);
                config = config.identity(identity);
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(Error::TlsConfig(
                    "a client certificate (--registry_tls_cert) needs its key (--registry_tls_key)"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::TlsConfig(
                    "a client key (--registry_tls_key) needs its certificate (--registry_tls_cert)"
                        .into(),
                ))
            }
        }
        Ok(config)
    }
}

/// An etcd user (go-micro's `Auth(username, password)`); the password is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The channel every registry call uses: a member's connection that adds the current token.
pub(crate) type AuthChannel = InterceptedService<Channel, TokenInjector>;

/// The current token, shared by every member's channel.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenInjector {
    token: Arc<RwLock<Option<AsciiMetadataValue>>>,
}

impl TokenInjector {
    pub(crate) fn set(&self, token: Option<AsciiMetadataValue>) {
        if let Ok(mut slot) = self.token.write() {
            *slot = token;
        }
    }

    pub(crate) fn get(&self) -> Option<AsciiMetadataValue> {
        self.token.read().ok().and_then(|t| t.clone())
    }
}

impl Interceptor for TokenInjector {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(token) = self.get() {
            // etcd reads the simple or JWT token from this metadata key.
            request.metadata_mut().insert("token", token);
        }
        Ok(request)
    }
}

/// What one member said to `Authenticate`.
pub(crate) enum Authenticated {
    Token(AsciiMetadataValue),
    /// Auth is off on the server: calls go without a token (as clientv3 does).
    NotEnabled,
}

/// `/etcdserverpb.Auth/Authenticate` on `channel`.
pub(crate) async fn authenticate(
    channel: Channel,
    credentials: &Credentials,
) -> Result<Authenticated, Status> {
    let request = proto::etcdserverpb::AuthenticateRequest {
        name: credentials.username.clone(),
        password: credentials.password.clone(),
    };
    match proto::etcdserverpb::auth_client::AuthClient::new(channel)
        .authenticate(request)
        .await
    {
        Ok(response) => {
            let token = response.into_inner().token;
            MetadataValue::try_from(token.as_str())
                .map(Authenticated::Token)
                .map_err(|_| Status::internal("the registry answered a token that is not ASCII"))
        }
        Err(status) if is_auth_not_enabled(&status) => Ok(Authenticated::NotEnabled),
        Err(status) => Err(status),
    }
}

fn is_auth_not_enabled(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition
        && status.message().contains("authentication is not enabled")
}

/// Whether a fresh token may make the call succeed (clientv3's `shouldRefreshToken`): an
/// expired or unknown token, an auth store changed since the token was issued, or a call that
/// reached the server without a token.
pub(crate) fn needs_new_token(status: &Status) -> bool {
    let message = status.message();
    (status.code() == Code::Unauthenticated && message.contains("invalid auth token"))
        || (status.code() == Code::InvalidArgument
            && (message.contains("revision of auth store is old")
                || message.contains("user name is empty")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_not_printed() {
        let c = Credentials::new("micro", "s3cret");
        let text = format!("{c:?}");
        assert!(text.contains("micro") && !text.contains("s3cret"), "{text}");
    }

    #[test]
    fn etcds_token_errors_ask_for_a_new_token() {
        let invalid = Status::unauthenticated("etcdserver: invalid auth token");
        let old = Status::invalid_argument("etcdserver: revision of auth store is old");
        let empty = Status::invalid_argument("etcdserver: user name is empty");
        for status in [invalid, old, empty] {
            assert!(needs_new_token(&status), "{status:?}");
        }
        let denied = Status::permission_denied("etcdserver: permission denied");
        let failed = Status::invalid_argument(
            "etcdserver: authentication failed, invalid user ID or password",
        );
        for status in [denied, failed] {
            assert!(!needs_new_token(&status), "{status:?}");
        }
        assert!(is_auth_not_enabled(&Status::failed_precondition(
            "etcdserver: authentication is not enabled"
        )));
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let tls = TlsOptions {
            cert: Some(Pem::Bytes(b"x".to_vec())),
            ..TlsOptions::default()
        };
        let err = tls.client_config().expect_err("no key");
        assert!(err.to_string().contains("--registry_tls_key"), "{err}");
        let tls = TlsOptions {
            ca: Some(Pem::File("/nonexistent/ca.pem".into())),
            ..TlsOptions::default()
        };
        let err = tls.client_config().expect_err("no file");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
