//! The registry members a client can talk to, with failover.
//!
//! One lazily connected channel per member (TLS when the options or an `https://` address say
//! so). A call goes to the member that answered last; if that member is down, times out or
//! answers UNAVAILABLE (etcd's `no leader`, `leader changed`, ...), the next member is tried,
//! and the one that answered is remembered. With credentials, every call carries the token of
//! one `Authenticate` ([`super::secure`]), fetched again when a member no longer accepts it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::secure::{self, AuthChannel, Authenticated, Credentials, TokenInjector};
use super::{Error, RegistryOptions};

/// Registry members with failover; cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Pool {
    /// Each member's URL, its plain channel (for `Authenticate`) and the one calls use.
    members: Vec<(String, Channel, AuthChannel)>,
    current: AtomicUsize,
    request_timeout: Duration,
    auth: Option<Auth>,
    /// TLS without a client certificate: a member run with `--client-cert-auth` closes such
    /// connections right after the handshake, which the caller sees only as a closed
    /// connection; the error then says what is likely missing.
    tls_without_cert: bool,
}

#[derive(Debug)]
struct Auth {
    credentials: Credentials,
    token: TokenInjector,
    /// Bumped at each new token; one task fetches a token while the others wait for it.
    generation: AtomicU64,
    fetch: tokio::sync::Mutex<()>,
    /// Set once a token was fetched, or the server said auth is off.
    ready: std::sync::atomic::AtomicBool,
}

/// `host:port` or a URL → a URL with a scheme (`http://`).
pub fn normalize(address: &str) -> String {
    normalize_for(address, false)
}

/// `host:port` or a URL → a URL with a scheme: `https://` when `tls`, else `http://`.
pub fn normalize_for(address: &str, tls: bool) -> String {
    let address = address.trim();
    if address.contains("://") {
        address.to_owned()
    } else if tls {
        format!("https://{address}")
    } else {
        format!("http://{address}")
    }
}

impl Pool {
    /// A pool over the members of `options` (`http://` optional); nothing is dialled until the
    /// first call. Certificate files are read now.
    pub(crate) fn new(options: &RegistryOptions) -> Result<Self, Error> {
        let tls = options.tls_config()?;
        let token = TokenInjector::default();
        let mut members = Vec::new();
        for address in options.addresses.iter().filter(|a| !a.trim().is_empty()) {
            let url = normalize_for(address, tls.is_some());
            let endpoint = endpoint(&url, options, tls.as_ref())?;
            let channel = endpoint.connect_lazy();
            let with_token = InterceptedService::new(channel.clone(), token.clone());
            members.push((url, channel, with_token));
        }
        if members.is_empty() {
            return Err(Error::NoEndpoints);
        }
        Ok(Pool {
            members,
            current: AtomicUsize::new(0),
            request_timeout: options.request_timeout,
            tls_without_cert: tls.is_some()
                && options.tls.as_ref().is_none_or(|t| t.cert.is_none()),
            auth: options.auth.clone().map(|credentials| Auth {
                credentials,
                token,
                generation: AtomicU64::new(0),
                fetch: tokio::sync::Mutex::new(()),
                ready: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The URL of every member.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|(url, ..)| url.clone()).collect()
    }

    /// Runs `op` on one member after another, starting with the last that answered, until one
    /// answers with something other than unavailability. Unary calls are bounded by the request
    /// timeout; `op` must be safe to repeat (every registry write is).
    pub(crate) async fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, Error>
    where
        F: Fn(AuthChannel) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut seen = self.ensure_token(None).await?;
        let n = self.members.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut last = Status::unavailable("no member tried");
        let mut refreshed = false;
        let mut step = 0;
        while step < n {
            let i = (start + step) % n;
            let (url, _, channel) = &self.members[i];
            let status = match tokio::time::timeout(self.request_timeout, op(channel.clone())).await
            {
                Ok(Ok(value)) => {
                    if step > 0 {
                        tracing::info!(member = %url, "registry failover");
                    }
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded(format!("{what}: no answer in time")),
            };
            // clientv3: a token the member does not accept is fetched again and the call
            // repeated, once.
            if self.auth.is_some() && !refreshed && secure::needs_new_token(&status) {
                tracing::debug!(member = %url, op = what, error = %status, "registry token refused: authenticating again");
                refreshed = true;
                seen = self.ensure_token(Some(seen)).await?;
                continue;
            }
            if !is_unavailable(&status) {
                return Err(Error::Status { op: what, status });
            }
            tracing::debug!(member = %url, op = what, error = %status, "registry member unavailable");
            last = status;
            step += 1;
        }
        if self.tls_without_cert && refused_without_certificate(&last) {
            return Err(Error::ClientCertificate {
                op: what,
                status: last,
            });
        }
        Err(Error::Unavailable {
            op: what,
            status: last,
        })
    }

    /// Makes sure a token is in place: fetched if none was yet, or if `stale` (the generation
    /// a refused call was sent with) is still the current one. Returns the current generation.
    async fn ensure_token(&self, stale: Option<u64>) -> Result<u64, Error> {
        let Some(auth) = &self.auth else {
            return Ok(0);
        };
        let current = auth.generation.load(Ordering::Acquire);
        let fresh = match stale {
            None => auth.ready.load(Ordering::Acquire),
            Some(stale) => stale != current,
        };
        if fresh {
            return Ok(current);
        }
        let _one_at_a_time = auth.fetch.lock().await;
        let now = auth.generation.load(Ordering::Acquire);
        if now != current || (stale.is_none() && auth.ready.load(Ordering::Acquire)) {
            // Another call fetched one meanwhile.
            return Ok(now);
        }
        let token = self.fetch_token(&auth.credentials).await?;
        auth.token.set(token);
        auth.ready.store(true, Ordering::Release);
        Ok(auth.generation.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// `Authenticate` on one member after another until one answers (clientv3's `getToken`).
    async fn fetch_token(
        &self,
        credentials: &Credentials,
    ) -> Result<Option<tonic::metadata::AsciiMetadataValue>, Error> {
        let n = self.members.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut last = Status::unavailable("no member tried");
        for step in 0..n {
            let (url, channel, _) = &self.members[(start + step) % n];
            let answer = tokio::time::timeout(
                self.request_timeout,
                secure::authenticate(channel.clone(), credentials),
            )
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("authenticate: no answer in time")));
            match answer {
                Ok(Authenticated::Token(token)) => return Ok(Some(token)),
                Ok(Authenticated::NotEnabled) => {
                    tracing::info!(member = %url, "registry auth is not enabled: calls go without a token");
                    return Ok(None);
                }
                Err(status) if is_unavailable(&status) => last = status,
                Err(status) => {
                    return Err(Error::Auth {
                        user: credentials.username.clone(),
                        status,
                    })
                }
            }
        }
        Err(Error::Unavailable {
            op: "authenticate",
            status: last,
        })
    }
}

/// A member's endpoint: timeouts, keep-alive, and TLS if `tls`.
fn endpoint(
    url: &str,
    options: &RegistryOptions,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Result<Endpoint, Error> {
    let address_error = |source| Error::Address {
        address: url.to_owned(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(address_error)?
        .connect_timeout(options.dial_timeout)
        .tcp_nodelay(true)
        // A member that vanished without closing the connection (crash, partition)
        // must not hold a watch or keep-alive stream forever.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(3))
        .keep_alive_while_idle(true);
    let https = url.starts_with("https://");
    match tls {
        Some(tls) if https => endpoint = endpoint.tls_config(tls.clone()).map_err(address_error)?,
        Some(_) => {
            // Certificates were given for a plain address: talking in the clear would
            // silently drop the protection asked for.
            return Err(Error::TlsConfig(format!(
                "registry address {url} is plain http:// but TLS is configured: \
                 write https://{} or host:port",
                url.trim_start_matches("http://")
            )));
        }
        None => {}
    }
    Ok(endpoint)
}

/// How a member that wants a client certificate turns away one without. With TLS 1.2 the
/// handshake fails with the server's alert (rustls: `AlertReceived`, typed under tonic's
/// `ConnectError`). With TLS 1.3 the handshake looks complete to the client, then the
/// connection dies: with the alert (Go: bad_certificate), a broken pipe, a reset or a plain
/// close, whichever wins the race with the client's first write. h2 keeps only the kind and
/// text of those I/O errors, so that case is recognised by its shape: a connection-level
/// failure (a `hyper::Error`) of a connection that was established (no `ConnectError`). A
/// member certificate this client rejected (`InvalidCertificate`) is not this case.
fn refused_without_certificate(status: &Status) -> bool {
    let (mut connect_failed, mut connection_died) = (false, false);
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = cur {
        // `io::Error::source` skips the error it wraps, so look inside it by hand.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for err in [Some(e), inner].into_iter().flatten() {
            match err.downcast_ref::<rustls::Error>() {
                Some(rustls::Error::AlertReceived(
                    rustls::AlertDescription::BadCertificate
                    | rustls::AlertDescription::CertificateRequired,
                )) => return true,
                Some(rustls::Error::InvalidCertificate(_)) => return false,
                _ => {}
            }
        }
        connect_failed |= e.is::<tonic::ConnectError>();
        connection_died |= e.is::<hyper::Error>();
        cur = e.source();
    }
    connection_died && !connect_failed
}

/// Whether another member may answer where this one failed.
fn is_unavailable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
    )
}
