//! `micro up` with `[cluster] tls = "auto"`: the whole demo over TLS with a throw-away CA.
//!
//! ```text
//!  cluster.toml [cluster] tls = "auto"
//!    ├─ <data_dir>/tls/ca.pem                      CA made at start (rcgen), never reused
//!    ├─ <data_dir>/tls/{server,peer,client}[-key].pem   signed by it; SANs: every member host
//!    ├─ <data_dir>/tls/cluster.toml                the file with https:// member URLs, which
//!    │                                             the members are started with
//!    ├─ members: --cert-file --key-file --trusted-ca-file --client-cert-auth, and --peer-*
//!    └─ services, gateway, `micro up` itself: --registry_tls_ca/cert/key, https:// addresses
//! ```
//!
//! The member keeps `tls` out of the file it is given (registry-node's `[cluster]` knows only
//! `token` and `data_dir`); everything else of the file is passed through unchanged.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use micro::registry::{Pem, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Where the generated material goes and how the children use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AutoTls {
    /// `<data_dir>/tls`.
    pub dir: PathBuf,
    /// Host names and addresses the member certificates are valid for.
    pub hosts: Vec<String>,
    /// The cluster file the members are started with (https:// URLs, no `tls` key).
    pub member_file: PathBuf,
    /// Its contents.
    pub member_text: String,
}

/// Whether `[cluster]` asks for automatic TLS: `tls = "auto"` (or `"off"`, the default).
pub(super) fn wanted(path: &Path, cluster: Option<&toml::Value>) -> anyhow::Result<bool> {
    match cluster.and_then(|c| c.get("tls")) {
        None => Ok(false),
        Some(toml::Value::String(s)) if s == "auto" => Ok(true),
        Some(toml::Value::String(s)) if s == "off" => Ok(false),
        Some(other) => bail!(
            "{}: cluster.tls = {other}: expected \"auto\" (a throw-away CA and certificates \
             for every member, service and the gateway) or \"off\"",
            path.display()
        ),
    }
}

impl AutoTls {
    /// The plan for the file at `path` with contents `text` (which asks for `tls = "auto"`):
    /// the member file's text made now, nothing written yet.
    pub(crate) fn plan(path: &Path, text: &str) -> anyhow::Result<AutoTls> {
        let mut file: toml::Table =
            toml::from_str(text).with_context(|| format!("{}: invalid", path.display()))?;
        if file.contains_key("tls") {
            bail!(
                "{}: cluster.tls = \"auto\" and a [tls] section: choose one (\"auto\" makes the \
                 certificates; [tls] names your own)",
                path.display()
            );
        }
        let base = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let cluster = file
            .get_mut("cluster")
            .and_then(toml::Value::as_table_mut)
            .with_context(|| format!("{}: no [cluster] section", path.display()))?;
        cluster.remove("tls");
        let data_dir = cluster
            .get("data_dir")
            .and_then(toml::Value::as_str)
            .with_context(|| format!("{}: cluster.data_dir is missing", path.display()))?;
        let data_dir = base.join(data_dir);
        // The member file lives elsewhere: its data_dir must not depend on where it is.
        cluster.insert(
            "data_dir".into(),
            toml::Value::String(data_dir.display().to_string()),
        );
        let mut hosts = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        if let Some(members) = file.get_mut("member").and_then(toml::Value::as_array_mut) {
            for member in members.iter_mut().filter_map(toml::Value::as_table_mut) {
                for key in ["client_url", "peer_url"] {
                    if let Some(toml::Value::String(url)) = member.get_mut(key) {
                        *url = https(url);
                        if let Some(host) = host_of(url).filter(|h| !hosts.contains(h)) {
                            hosts.push(host);
                        }
                    }
                }
            }
        }
        let dir = data_dir.join("tls");
        let member_text = format!(
            "# Made by `micro up` from {} (cluster.tls = \"auto\"): https:// member URLs.\n{}",
            path.display(),
            toml::to_string(&file).context("write the member file")?
        );
        Ok(AutoTls {
            member_file: dir.join("cluster.toml"),
            dir,
            hosts,
            member_text,
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// etcd's TLS flags for every member.
    pub(crate) fn member_args(&self) -> Vec<String> {
        let f = |flag: &str, name: &str| format!("--{flag}={}", self.file(name).display());
        vec![
            f("cert-file", "server.pem"),
            f("key-file", "server-key.pem"),
            f("trusted-ca-file", "ca.pem"),
            "--client-cert-auth=true".to_owned(),
            f("peer-cert-file", "peer.pem"),
            f("peer-key-file", "peer-key.pem"),
            f("peer-trusted-ca-file", "ca.pem"),
            "--peer-client-cert-auth=true".to_owned(),
        ]
    }

    /// micro's registry TLS flags for every service and the gateway.
    pub(crate) fn client_args(&self) -> Vec<String> {
        let f = |flag: &str, name: &str| format!("--{flag}={}", self.file(name).display());
        vec![
            f("registry_tls_ca", "ca.pem"),
            f("registry_tls_cert", "client.pem"),
            f("registry_tls_key", "client-key.pem"),
        ]
    }

    /// The same for `micro up`'s own registry client.
    pub(crate) fn client_options(&self) -> TlsOptions {
        TlsOptions {
            ca: Some(Pem::File(self.file("ca.pem"))),
            cert: Some(Pem::File(self.file("client.pem"))),
            key: Some(Pem::File(self.file("client-key.pem"))),
        }
    }

    /// etcdctl's spelling of the client certificate, for the summary.
    pub(crate) fn etcdctl_args(&self) -> String {
        format!(
            "--cacert={} --cert={} --key={}",
            self.file("ca.pem").display(),
            self.file("client.pem").display(),
            self.file("client-key.pem").display()
        )
    }

    /// Makes a new CA and the certificates, and writes them and the member file (keys
    /// readable by the owner only).
    pub(crate) fn write(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("create {}", self.dir.display()))?;
        let certs = generate(&self.hosts)?;
        for (name, text) in certs {
            write_private(&self.file(name), &text)?;
        }
        write_private(&self.member_file, &self.member_text)
    }
}

/// `http://x` → `https://x`.
fn https(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_owned(),
    }
}

/// The host of `scheme://host:port` (brackets of an IPv6 address removed).
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_owned())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

/// A fresh CA and, signed by it, the members' server and peer certificates for `hosts`
/// (both usages: a member dials its peers and itself with them) and a client certificate:
/// `(file name, PEM)` pairs.
fn generate(hosts: &[String]) -> anyhow::Result<Vec<(&'static str, String)>> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "micro up throw-away CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);
    let leaf = |name: &str, sans: Vec<String>, usages: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &issuer)?;
        Ok::<_, rcgen::Error>((cert.pem(), key.serialize_pem()))
    };
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let server = leaf(
        "registry member",
        hosts.to_vec(),
        vec![ServerAuth, ClientAuth],
    )?;
    let peer = leaf(
        "registry peer",
        hosts.to_vec(),
        vec![ServerAuth, ClientAuth],
    )?;
    let client = leaf("micro", Vec::new(), vec![ClientAuth])?;
    Ok(vec![
        ("ca.pem", ca_cert.pem()),
        ("server.pem", server.0),
        ("server-key.pem", server.1),
        ("peer.pem", peer.0),
        ("peer-key.pem", peer.1),
        ("client.pem", client.0),
        ("client-key.pem", client.1),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[cluster]
token = "t"
data_dir = "data"
tls = "auto"

[[member]]
name = "cd0"
client_url = "http://127.0.0.1:2379"
peer_url = "http://10.1.2.3:2380"
"#;

    #[test]
    fn the_member_file_has_https_urls_and_no_tls_key() {
        let plan = AutoTls::plan(Path::new("/x/c.toml"), FILE).expect("plan");
        assert_eq!(plan.dir, PathBuf::from("/x/data/tls"));
        assert_eq!(plan.member_file, PathBuf::from("/x/data/tls/cluster.toml"));
        assert_eq!(plan.hosts, ["127.0.0.1", "localhost", "10.1.2.3"]);
        let file = registry_node::ClusterFile::parse(&plan.member_file, &plan.member_text)
            .expect("registry-node accepts the member file");
        assert_eq!(file.members[0].client_url, "https://127.0.0.1:2379");
        assert_eq!(file.members[0].peer_url, "https://10.1.2.3:2380");
        assert_eq!(file.cluster.data_dir, PathBuf::from("/x/data"));
        assert!(plan
            .member_args()
            .contains(&"--client-cert-auth=true".to_owned()));
        assert!(plan
            .member_args()
            .contains(&"--peer-trusted-ca-file=/x/data/tls/ca.pem".to_owned()));
        assert_eq!(
            plan.client_args(),
            [
                "--registry_tls_ca=/x/data/tls/ca.pem",
                "--registry_tls_cert=/x/data/tls/client.pem",
                "--registry_tls_key=/x/data/tls/client-key.pem"
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let p = Path::new("c.toml");
        let cluster: toml::Value = toml::from_str("tls = \"yes\"").expect("toml");
        let err = wanted(p, Some(&cluster)).expect_err("bad value");
        assert!(format!("{err:#}").contains("\"auto\""), "{err:#}");
        let both = format!("{FILE}\n[tls]\ncert_file = \"a.pem\"\n");
        let err = AutoTls::plan(p, &both).expect_err("both");
        assert!(format!("{err:#}").contains("choose one"), "{err:#}");
    }

    #[test]
    fn the_certificates_chain_to_the_ca_and_name_the_hosts() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        let plan = AutoTls::plan(&path, FILE).expect("plan");
        plan.write().expect("write");
        for name in [
            "ca.pem",
            "server.pem",
            "server-key.pem",
            "peer.pem",
            "peer-key.pem",
            "client.pem",
            "client-key.pem",
            "cluster.toml",
        ] {
            let meta = std::fs::metadata(plan.dir.join(name)).expect(name);
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
        }
        // The real openssl checks the chain and the names, when installed.
        let verify = std::process::Command::new("openssl")
            .args([
                "verify",
                "-CAfile",
                "ca.pem",
                "server.pem",
                "peer.pem",
                "client.pem",
            ])
            .current_dir(&plan.dir)
            .output();
        if let Ok(out) = verify {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            let text = std::process::Command::new("openssl")
                .args(["x509", "-noout", "-text", "-in", "server.pem"])
                .current_dir(&plan.dir)
                .output()
                .expect("openssl x509");
            let text = String::from_utf8_lossy(&text.stdout);
            assert!(text.contains("IP Address:10.1.2.3"), "{text}");
            assert!(text.contains("DNS:localhost"), "{text}");
        }
    }
}
