//! The registry's TLS and auth flags (go-micro's etcd registry options `Secure`, `TLSConfig`,
//! `Auth`), flattened into [`super::MicroArgs`]:
//!
//! | flag | environment | meaning |
//! | --- | --- | --- |
//! | `--registry_secure` | `MICRO_REGISTRY_SECURE` | TLS to the members, checked against the system's roots |
//! | `--registry_tls_ca` | `MICRO_REGISTRY_TLS_CA` | TLS, members' certificates signed by this CA (PEM file) |
//! | `--registry_tls_cert` | `MICRO_REGISTRY_TLS_CERT` | client certificate (PEM), for `--client-cert-auth` |
//! | `--registry_tls_key` | `MICRO_REGISTRY_TLS_KEY` | its private key (PEM) |
//! | `--registry_username` | `ETCD_USERNAME` | etcd user (go-micro's etcd registry reads the same variables) |
//! | `--registry_password` | `ETCD_PASSWORD` | its password |
//!
//! An `https://` registry address means TLS without any of these (system roots).

use std::path::PathBuf;

use clap::{ArgAction, Args};

use crate::registry::{Credentials, Pem, TlsOptions};

/// TLS and etcd auth towards the registry.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistrySecurityArgs {
    /// Speak TLS to the registry, trusting the system's roots (go-micro's `Secure`).
    // Takes an optional value so that `--registry_secure=true`, the form `micro up` hands its
    // flags on in, parses too.
    #[arg(
        long = "registry_secure",
        env = "MICRO_REGISTRY_SECURE",
        global = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set,
        default_value_t = false
    )]
    pub secure: bool,
    /// CA certificate (PEM) the registry members' certificates are signed by; implies TLS.
    #[arg(long = "registry_tls_ca", env = "MICRO_REGISTRY_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for members that require one (`--client-cert-auth`).
    #[arg(
        long = "registry_tls_cert",
        env = "MICRO_REGISTRY_TLS_CERT",
        global = true
    )]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long = "registry_tls_key",
        env = "MICRO_REGISTRY_TLS_KEY",
        global = true
    )]
    pub tls_key: Option<PathBuf>,
    /// etcd user to authenticate as (go-micro's `Auth`); needs `--registry_password`.
    #[arg(long = "registry_username", env = "ETCD_USERNAME", global = true)]
    pub username: Option<String>,
    /// The etcd user's password.
    #[arg(
        long = "registry_password",
        env = "ETCD_PASSWORD",
        global = true,
        hide_env_values = true
    )]
    pub password: Option<String>,
}

impl RegistrySecurityArgs {
    /// The TLS settings, if any flag asks for TLS.
    pub fn tls(&self) -> Option<TlsOptions> {
        let wanted = self.secure
            || self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some();
        wanted.then(|| TlsOptions {
            ca: self.tls_ca.clone().map(Pem::File),
            cert: self.tls_cert.clone().map(Pem::File),
            key: self.tls_key.clone().map(Pem::File),
        })
    }

    /// The etcd user, if one is named. A user without a password (or the reverse) is kept as
    /// given with the other empty, so that the server's answer names the mistake ("user name
    /// is empty", "authentication failed") rather than calls going without a token.
    pub fn credentials(&self) -> Option<Credentials> {
        let username = self.username.as_deref().filter(|u| !u.is_empty());
        let password = self.password.as_deref().filter(|p| !p.is_empty());
        if username.is_none() && password.is_none() {
            return None;
        }
        Some(Credentials::new(
            username.unwrap_or_default(),
            password.unwrap_or_default(),
        ))
    }
}
