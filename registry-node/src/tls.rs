//! TLS for the client and peer ports, with etcd 3.4's flags and their meaning
//! (`go.etcd.io/etcd/pkg/transport/listener.go`, `embed/etcd.go`):
//!
//! - a port speaks TLS when the member's own URL for it is `https://`; it then needs a
//!   certificate: `--cert-file`/`--key-file` (`--peer-cert-file`/`--peer-key-file`), or
//!   `--auto-tls` (`--peer-auto-tls`): a self-signed one made at the first start and kept in
//!   `<data dir>/fixtures/{client,peer}/` (etcd's place), ignored when files are given;
//! - client certificates are required when `--client-cert-auth` is on **or a
//!   `--trusted-ca-file` is given** (etcd 3.4's `ServerConfig` turns on
//!   `RequireAndVerifyClientCert` for either), and must be signed by that CA; a client without
//!   one is refused at the handshake; the same for peers with the `--peer-*` flags;
//! - as a client (the member link to `https://` peer URLs, calls forwarded to another member's
//!   client URL) a member shows its certificate as a client certificate and checks the
//!   server's against the trusted CA; with auto TLS it checks nothing (etcd's
//!   `InsecureSkipVerify` for self-signed certificates). Its JSON gateway dials its own port
//!   without checking, as etcd's gateway does.
//!
//! Differences from etcd, each with a clear error at start: client certificate auth without a
//! trusted CA file (Go would fall back to the system's roots), and `https://` member URLs with
//! no CA to check them by. Certificates are read once at start (etcd re-reads them on every
//! handshake).

mod files;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::config::{NodeConfig, TlsSection};

pub(crate) use files::SkipVerify;
pub(crate) use serve::{peer_incoming, serve_client};

/// etcd's TLS flags. A boolean takes `--flag` or `--flag=true|false`, as Go's flags do.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Path to the client server TLS cert file (etcd's --cert-file).
    #[arg(long)]
    pub(crate) cert_file: Option<PathBuf>,
    /// Path to the client server TLS key file.
    #[arg(long)]
    pub(crate) key_file: Option<PathBuf>,
    /// Path to the client server TLS trusted CA cert file; client certificates signed by it
    /// are then required (as in etcd 3.4).
    #[arg(long)]
    pub(crate) trusted_ca_file: Option<PathBuf>,
    /// Enable client cert authentication.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub(crate) client_cert_auth: Option<bool>,
    /// Client TLS using generated certificates.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub(crate) auto_tls: Option<bool>,
    /// Path to the peer server TLS cert file.
    #[arg(long)]
    pub(crate) peer_cert_file: Option<PathBuf>,
    /// Path to the peer server TLS key file.
    #[arg(long)]
    pub(crate) peer_key_file: Option<PathBuf>,
    /// Path to the peer server TLS trusted CA file.
    #[arg(long)]
    pub(crate) peer_trusted_ca_file: Option<PathBuf>,
    /// Enable peer client cert authentication.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub(crate) peer_client_cert_auth: Option<bool>,
    /// Peer TLS using generated certificates.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub(crate) peer_auto_tls: Option<bool>,
}

impl TlsArgs {
    /// Overrides `section` with every flag given (a relative path is taken from the working
    /// directory, as etcd takes it; the file's from the file's folder).
    pub(crate) fn apply(&self, section: &mut TlsSection) -> std::io::Result<()> {
        let cwd = std::env::current_dir()?;
        let path = |flag: &Option<PathBuf>, field: &mut Option<PathBuf>| {
            if let Some(p) = flag {
                *field = Some(cwd.join(p));
            }
        };
        path(&self.cert_file, &mut section.cert_file);
        path(&self.key_file, &mut section.key_file);
        path(&self.trusted_ca_file, &mut section.trusted_ca_file);
        path(&self.peer_cert_file, &mut section.peer_cert_file);
        path(&self.peer_key_file, &mut section.peer_key_file);
        path(
            &self.peer_trusted_ca_file,
            &mut section.peer_trusted_ca_file,
        );
        let flag = |flag: Option<bool>, field: &mut bool| *field = flag.unwrap_or(*field);
        flag(self.client_cert_auth, &mut section.client_cert_auth);
        flag(self.auto_tls, &mut section.auto_tls);
        flag(
            self.peer_client_cert_auth,
            &mut section.peer_client_cert_auth,
        );
        flag(self.peer_auto_tls, &mut section.peer_auto_tls);
        Ok(())
    }
}

/// How a member dials `https://` URLs: the certificate it shows and how it checks the
/// server's.
#[derive(Clone, Default)]
pub(crate) struct ClientTls {
    identity: Option<Identity>,
    verify: Verify,
}

#[derive(Clone, Default)]
enum Verify {
    /// Nothing to check a server by: `https://` URLs cannot be dialled.
    #[default]
    Unable,
    Ca(Certificate),
    /// Self-signed certificates (auto TLS), or the member's own port.
    Skip,
}

impl ClientTls {
    /// An endpoint for `url`, with TLS when it is `https://`.
    pub(crate) fn endpoint(&self, url: &str) -> Result<Endpoint, String> {
        let endpoint =
            Endpoint::from_shared(url.to_owned()).map_err(|e| format!("bad url {url}: {e}"))?;
        if !url.starts_with("https://") {
            return Ok(endpoint);
        }
        let mut config = ClientTlsConfig::new();
        if let Some(identity) = &self.identity {
            config = config.identity(identity.clone());
        }
        let tls = match &self.verify {
            Verify::Unable => {
                return Err(format!(
                    "{url}: no CA to check its certificate by (a trusted CA file or auto TLS)"
                ))
            }
            Verify::Ca(ca) => endpoint.tls_config(config.ca_certificate(ca.clone())),
            Verify::Skip => endpoint.tls_config_with_verifier(config, Arc::new(SkipVerify::new())),
        };
        tls.map_err(|e| format!("{url}: TLS: {e}"))
    }
}

/// A member's TLS, built once at start ([`Tls::build`]).
#[derive(Clone, Default)]
pub(crate) struct Tls {
    /// The client port's server side; `None`: plain TCP.
    pub(crate) client_server: Option<Arc<rustls::ServerConfig>>,
    /// The peer port's server side; `None`: plain TCP.
    pub(crate) peer_server: Option<Arc<rustls::ServerConfig>>,
    /// The member link to other members' peer URLs.
    pub(crate) peer_client: ClientTls,
    /// Calls forwarded to other members' client URLs.
    pub(crate) client_client: ClientTls,
    /// The member's own client port (its JSON gateway): its certificate, nothing checked.
    loopback: Option<ClientTls>,
}

/// One side's settings (client or peer), named for error messages.
struct Side<'a> {
    /// The flag prefix: "" or "peer-".
    prefix: &'static str,
    url: &'a str,
    addr: SocketAddr,
    cert_file: &'a Option<PathBuf>,
    key_file: &'a Option<PathBuf>,
    trusted_ca_file: &'a Option<PathBuf>,
    client_cert_auth: bool,
    auto_tls: bool,
    /// Where auto TLS keeps its certificate.
    fixtures: PathBuf,
}

/// What one side came to: the server config (an https URL) and the client side.
struct Built {
    server: Option<Arc<rustls::ServerConfig>>,
    client: ClientTls,
    ca: Option<Certificate>,
}

impl Tls {
    /// The TLS of member `config`, checked as etcd checks it at start.
    pub(crate) fn build(config: &NodeConfig) -> Result<Tls, String> {
        let t = &config.tls;
        let me = config
            .member(config.id)
            .ok_or_else(|| "this member is not in the member list".to_owned())?;
        let fixtures = config.data_dir.join("fixtures");
        let client = build_side(Side {
            prefix: "",
            url: &me.client_url,
            addr: config.client_addr,
            cert_file: &t.cert_file,
            key_file: &t.key_file,
            trusted_ca_file: &t.trusted_ca_file,
            client_cert_auth: t.client_cert_auth,
            auto_tls: t.auto_tls,
            fixtures: fixtures.join("client"),
        })?;
        let peer = build_side(Side {
            prefix: "peer-",
            url: &me.peer_url,
            addr: config.peer_addr,
            cert_file: &t.peer_cert_file,
            key_file: &t.peer_key_file,
            trusted_ca_file: &t.peer_trusted_ca_file,
            client_cert_auth: t.peer_client_cert_auth,
            auto_tls: t.peer_auto_tls,
            fixtures: fixtures.join("peer"),
        })?;
        // Other members' client ports are checked by the client CA, else by the peer CA (one
        // CA often signs both); this is the registry's own forwarding, which etcd lacks.
        let mut client_client = client.client.clone();
        if matches!(client_client.verify, Verify::Unable) {
            if let Some(ca) = &peer.ca {
                client_client.verify = Verify::Ca(ca.clone());
            }
        }
        for m in &config.members {
            if m.id != config.id {
                peer.client.endpoint(&m.peer_url).map_err(|e| {
                    format!(
                        "peer {}: {e}: give --peer-trusted-ca-file or --peer-auto-tls",
                        m.name
                    )
                })?;
                // An added member not started yet has no client URL (`--initial-cluster`
                // names peer URLs only): nothing to dial there until it publishes one.
                if m.client_url.is_empty() {
                    continue;
                }
                client_client.endpoint(&m.client_url).map_err(|e| {
                    format!("member {}: {e}: give --trusted-ca-file, --peer-trusted-ca-file or --auto-tls", m.name)
                })?;
            }
        }
        let loopback = client.server.as_ref().map(|_| ClientTls {
            identity: client.client.identity.clone(),
            verify: Verify::Skip,
        });
        Ok(Tls {
            client_server: client.server,
            peer_server: peer.server,
            peer_client: peer.client,
            client_client,
            loopback,
        })
    }

    /// A lazily connected channel to the member's own client port at `local` over TLS;
    /// `None` when that port is plain.
    pub(crate) fn loopback(&self, local: SocketAddr) -> Option<Channel> {
        let tls = self.loopback.as_ref()?;
        let ip = match local.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
            ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
            ip => ip,
        };
        let url = format!("https://{}", SocketAddr::new(ip, local.port()));
        match tls.endpoint(&url) {
            Ok(endpoint) => Some(endpoint.tcp_nodelay(true).connect_lazy()),
            Err(error) => {
                tracing::error!(%error, "loopback channel");
                None
            }
        }
    }
}

fn build_side(s: Side<'_>) -> Result<Built, String> {
    let p = s.prefix;
    let https = s.url.starts_with("https://");
    let given = s.cert_file.is_some() || s.key_file.is_some();
    let (pair, self_signed) = match (s.cert_file, s.key_file) {
        (Some(cert), Some(key)) => {
            if s.auto_tls {
                tracing::warn!("ignoring --{p}auto-tls since certs given");
            }
            (Some(files::load_pair(p, cert, key)?), false)
        }
        _ if given => {
            return Err(format!(
                "--{p}cert-file and --{p}key-file must both be given"
            ))
        }
        _ if s.auto_tls => {
            if s.client_cert_auth || s.trusted_ca_file.is_some() {
                // etcd replaces the whole TLS info by the self-signed one.
                tracing::warn!("--{p}client-cert-auth and --{p}trusted-ca-file have no effect with --{p}auto-tls");
            }
            (Some(files::self_signed(&s.fixtures, s.url, s.addr)?), true)
        }
        _ => (None, false),
    };
    let trusted = if self_signed {
        &None
    } else {
        s.trusted_ca_file
    };
    let ca = match trusted {
        Some(path) => Some(files::load_ca(p, path)?),
        None => None,
    };
    let server = if https {
        let Some(pair) = &pair else {
            return Err(format!(
                "TLS key/cert (--{p}cert-file, --{p}key-file) must be provided for {}url {} with HTTPS scheme (or --{p}auto-tls)",
                if p.is_empty() { "client " } else { "peer " },
                s.url
            ));
        };
        let client_auth = !self_signed && (s.client_cert_auth || ca.is_some());
        if client_auth && ca.is_none() {
            return Err(format!(
                "--{p}client-cert-auth needs --{p}trusted-ca-file (the CA that signs the certificates clients show)"
            ));
        }
        let alpn: &[&[u8]] = if p.is_empty() {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"h2"]
        };
        Some(files::server_config(pair, ca.as_ref().map(|c| &c.1), alpn)?)
    } else {
        if given {
            tracing::warn!(
                url = s.url,
                "scheme is HTTP while key and cert files are present; ignoring key and cert files"
            );
        }
        if s.client_cert_auth {
            tracing::warn!(url = s.url, "scheme is HTTP while --{p}client-cert-auth is enabled; ignoring client cert auth for this URL");
        }
        None
    };
    let verify = match (&ca, self_signed) {
        (_, true) => Verify::Skip,
        (Some((pem, _)), false) => Verify::Ca(Certificate::from_pem(pem)),
        (None, false) => Verify::Unable,
    };
    let client = ClientTls {
        identity: pair.map(|pair| Identity::from_pem(pair.cert_pem, pair.key_pem)),
        verify,
    };
    Ok(Built {
        server,
        client,
        ca: ca.map(|(pem, _)| Certificate::from_pem(pem)),
    })
}

#[cfg(test)]
mod tests;
