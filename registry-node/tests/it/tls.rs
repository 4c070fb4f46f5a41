//! TLS with etcd's flags (issue 19), checked side by side: every check runs against a cluster
//! of real `registry-node` processes and against real etcd 3.4 processes started with the
//! same certificates (made here with rcgen) and the same flags, and expects the same outcome:
//!
//! - three members with `https://` client and peer URLs, `--client-cert-auth` and
//!   `--peer-client-cert-auth`, one of them holding a peer certificate from another CA: the
//!   real `etcdctl --cacert --cert --key` puts, gets, lists members, grants and keeps leases
//!   alive and checks health through the two good members, curl reaches the JSON gateway;
//!   without a client certificate, or over plain HTTP, they are refused; the
//!   third member never gets a leader, the good members log `rejected connection` and keep
//!   committing;
//! - one member: `--trusted-ca-file` alone requires client certificates (etcd 3.4's meaning);
//!   `--auto-tls` makes a self-signed certificate in `<data dir>/fixtures/client` that
//!   `--insecure-skip-tls-verify` accepts and our CA does not; an `https://` URL without
//!   certificates is refused at start with etcd's words.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::{etcdctl, free_port, registry_node_bin, wait_for, Out};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::process::{Child, Command};

/// The certificates of a test: a CA, a server certificate (127.0.0.1, server and client use,
/// as etcd's docs ask when client certificates are checked), a client certificate, and a
/// member certificate from another CA.
struct Certs {
    dir: PathBuf,
}

fn make_ca(name: &str) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert, Issuer::new(params, key))
}

fn leaf(
    dir: &Path,
    name: &str,
    sans: &[&str],
    usages: Vec<ExtendedKeyUsagePurpose>,
    issuer: &Issuer<'static, KeyPair>,
) {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = usages;
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write cert");
    std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).expect("write key");
}

impl Certs {
    fn make(dir: &Path) -> Certs {
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let dir = dir.join("certs");
        std::fs::create_dir_all(&dir).expect("certs dir");
        let (ca_cert, ca) = make_ca("test CA");
        let (other_cert, other) = make_ca("another CA");
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write CA");
        std::fs::write(dir.join("other-ca.pem"), other_cert.pem()).expect("write CA");
        let hosts = ["127.0.0.1", "localhost"];
        leaf(&dir, "server", &hosts, vec![ServerAuth, ClientAuth], &ca);
        leaf(&dir, "client", &[], vec![ClientAuth], &ca);
        leaf(
            &dir,
            "stranger",
            &hosts,
            vec![ServerAuth, ClientAuth],
            &other,
        );
        Certs { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// etcdctl's credentials: the CA, and the client certificate when `cert`.
    fn ctl(&self, cert: bool) -> Vec<String> {
        let mut args = vec![format!("--cacert={}", self.path("ca.pem"))];
        if cert {
            args.push(format!("--cert={}", self.path("client.pem")));
            args.push(format!("--key={}", self.path("client-key.pem")));
        }
        args
    }

    /// The member flags of the three-member checks: client TLS with client certificates, peer
    /// TLS with peer certificates; `stranger` takes its peer certificate from the other CA.
    fn member_flags(&self, stranger: bool) -> Vec<String> {
        let peer = if stranger { "stranger" } else { "server" };
        vec![
            format!("--cert-file={}", self.path("server.pem")),
            format!("--key-file={}", self.path("server-key.pem")),
            format!("--trusted-ca-file={}", self.path("ca.pem")),
            "--client-cert-auth".into(),
            format!("--peer-cert-file={}", self.path(&format!("{peer}.pem"))),
            format!("--peer-key-file={}", self.path(&format!("{peer}-key.pem"))),
            format!("--peer-trusted-ca-file={}", self.path("ca.pem")),
            "--peer-client-cert-auth".into(),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Ours,
    Etcd,
}

/// Members of one kind as processes (killed on drop), their output in `<dir>/<name>.log`.
struct Cluster {
    kind: Kind,
    dir: PathBuf,
    names: Vec<String>,
    clients: Vec<String>,
    peers: Vec<String>,
    children: Vec<Child>,
}

impl Cluster {
    /// Addresses for `n` members (`scheme` for the client and the peer URLs); none started.
    fn plan(kind: Kind, dir: &Path, n: usize, client_scheme: &str, peer_scheme: &str) -> Cluster {
        let dir = dir.join(format!("{kind:?}").to_lowercase());
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let names = (0..n).map(|i| format!("m{i}")).collect();
        let url = |scheme: &str| format!("{scheme}://127.0.0.1:{}", free_port());
        let clients = (0..n).map(|_| url(client_scheme)).collect();
        let peers = (0..n).map(|_| url(peer_scheme)).collect();
        let cluster = Cluster {
            kind,
            dir,
            names,
            clients,
            peers,
            children: Vec::new(),
        };
        if kind == Kind::Ours {
            let mut text = String::from("[cluster]\ntoken = \"tls-test\"\ndata_dir = \"data\"\n");
            for i in 0..n {
                text += &format!(
                    "\n[[member]]\nname = \"{}\"\nclient_url = \"{}\"\npeer_url = \"{}\"\n",
                    cluster.names[i], cluster.clients[i], cluster.peers[i]
                );
            }
            std::fs::write(cluster.dir.join("cluster.toml"), text).expect("cluster file");
        }
        cluster
    }

    fn log(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.names[i]))
    }

    fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(self.log(i)).unwrap_or_default()
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        match self.kind {
            Kind::Ours => self.dir.join("data").join(&self.names[i]),
            Kind::Etcd => self.dir.join(format!("{}.etcd", self.names[i])),
        }
    }

    /// The command that runs member `i` with `flags` (the TLS flags, the same for both kinds).
    fn command(&self, i: usize, flags: &[String]) -> Command {
        let mut cmd = match self.kind {
            Kind::Ours => {
                let mut cmd = Command::new(registry_node_bin());
                cmd.arg(format!(
                    "--config={}",
                    self.dir.join("cluster.toml").display()
                ))
                .arg(format!("--name={}", self.names[i]))
                .env("RUST_LOG", "info,openraft=warn");
                cmd
            }
            Kind::Etcd => {
                let initial: Vec<String> = (0..self.names.len())
                    .map(|j| format!("{}={}", self.names[j], self.peers[j]))
                    .collect();
                let mut cmd = Command::new("etcd");
                cmd.arg(format!("--name={}", self.names[i]))
                    .arg(format!("--data-dir={}", self.data_dir(i).display()))
                    .arg(format!("--listen-client-urls={}", self.clients[i]))
                    .arg(format!("--advertise-client-urls={}", self.clients[i]))
                    .arg(format!("--listen-peer-urls={}", self.peers[i]))
                    .arg(format!("--initial-advertise-peer-urls={}", self.peers[i]))
                    .arg(format!("--initial-cluster={}", initial.join(",")))
                    .arg("--initial-cluster-token=tls-test")
                    .arg("--initial-cluster-state=new");
                cmd
            }
        };
        // Ours logs to stdout, etcd to stderr: both into the log.
        let log = std::fs::File::create(self.log(i)).expect("log file");
        let log2 = log.try_clone().expect("log file");
        cmd.args(flags)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true);
        cmd
    }

    fn start(&mut self, i: usize, flags: &[String]) {
        let child = self.command(i, flags).spawn().expect("spawn member");
        self.children.push(child);
    }

    /// Runs member `i` with `flags`, which must make it exit; returns its log.
    async fn start_failing(&self, i: usize, flags: &[String]) -> String {
        let mut child = self.command(i, flags).spawn().expect("spawn member");
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("the member exits within 20 s")
            .expect("wait");
        assert!(!status.success(), "{:?}: started anyway", self.kind);
        self.log_text(i)
    }
}

async fn ctl(endpoints: &[&String], creds: &[String], args: &[&str]) -> Out {
    let endpoints: Vec<String> = endpoints.iter().map(|s| s.to_string()).collect();
    let mut all: Vec<&str> = creds.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    etcdctl(&endpoints, &all, None).await
}

async fn ctl_ok(endpoints: &[&String], creds: &[String], args: &[&str]) -> String {
    let out = ctl(endpoints, creds, args).await;
    assert!(out.ok, "etcdctl {args:?}: {}", out.stderr);
    out.stdout
}

/// curl over HTTP/1.1 with our CA (and the client certificate when `cert`): a POST of `body`,
/// or a GET; the body of a 2xx answer, or what went wrong.
async fn curl(
    certs: &Certs,
    cert: bool,
    endpoint: &str,
    path: &str,
    body: Option<&str>,
) -> Result<String, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--http1.1", "--max-time", "10"])
        .args(["--cacert", &certs.path("ca.pem")]);
    if cert {
        cmd.args(["--cert", &certs.path("client.pem")])
            .args(["--key", &certs.path("client-key.pem")]);
    }
    if let Some(body) = body {
        cmd.args(["-X", "POST", "-d", body]);
    }
    let out = cmd
        .arg(format!("{endpoint}{path}"))
        .kill_on_drop(true)
        .output()
        .await
        .expect("curl runs");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

async fn wait_healthy(kind: Kind, endpoint: &String, creds: &[String]) {
    wait_for(
        &format!("{kind:?} {endpoint} healthy"),
        Duration::from_secs(40),
        || async move {
            let out = ctl(&[endpoint], creds, &["endpoint", "health"]).await;
            out.ok.then_some(())
        },
    )
    .await;
}

/// The three-member checks for one kind.
async fn three_members(kind: Kind) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let certs = Certs::make(tmp.path());
    let mut c = Cluster::plan(kind, tmp.path(), 3, "https", "https");
    c.start(0, &certs.member_flags(false));
    c.start(1, &certs.member_flags(false));
    c.start(2, &certs.member_flags(true));
    let (good0, good1, stranger) = (&c.clients[0], &c.clients[1], &c.clients[2]);
    let creds = certs.ctl(true);
    wait_healthy(kind, good0, &creds).await;
    wait_healthy(kind, good1, &creds).await;

    ctl_ok(&[good0], &creds, &["put", "/tls/a", "one"]).await;
    let got = ctl_ok(&[good1], &creds, &["get", "/tls/a", "--print-value-only"]).await;
    assert_eq!(got.trim(), "one", "{kind:?}");
    let members = ctl_ok(&[good0, good1], &creds, &["member", "list"]).await;
    assert_eq!(members.lines().count(), 3, "{kind:?}: {members}");
    for i in 0..2 {
        assert!(members.contains(&c.peers[i]), "{kind:?}: {members}");
        assert!(members.contains(&c.clients[i]), "{kind:?}: {members}");
    }
    // Lease calls through both good members: one is a follower, and ours sends these on to
    // the leader's https client URL, showing its own certificate there.
    for endpoint in [good0, good1] {
        let granted = ctl_ok(&[endpoint], &creds, &["lease", "grant", "30"]).await;
        let id = granted.split_whitespace().nth(1).expect("a lease id");
        let kept = ctl_ok(&[endpoint], &creds, &["lease", "keep-alive", "--once", id]).await;
        assert!(kept.contains("keepalived with TTL(30)"), "{kind:?}: {kept}");
        let ttl = ctl_ok(&[endpoint], &creds, &["lease", "timetolive", id]).await;
        assert!(ttl.contains("granted with TTL(30s)"), "{kind:?}: {ttl}");
    }
    // The JSON gateway on the same port, over TLS and HTTP/1.1 (key /tls/g, value gw).
    let put = r#"{"key":"L3Rscy9n","value":"Z3c="}"#;
    curl(&certs, true, good1, "/v3/kv/put", Some(put))
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: gateway put: {e}"));
    let range = curl(
        &certs,
        true,
        good0,
        "/v3/kv/range",
        Some(r#"{"key":"L3Rscy9n"}"#),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind:?}: gateway range: {e}"));
    assert!(range.contains("Z3c="), "{kind:?}: {range}");
    let refused = curl(&certs, false, good0, "/health", None).await;
    assert!(
        refused.is_err(),
        "{kind:?}: /health without a certificate: {refused:?}"
    );

    // Without a client certificate: refused at the handshake (the CA alone is not enough).
    let out = ctl(&[good0], &certs.ctl(false), &["get", "/tls/a"]).await;
    assert!(
        !out.ok,
        "{kind:?}: served a client without a certificate: {}",
        out.stdout
    );
    // Plain HTTP to the https port.
    let plain = good0.replace("https://", "http://");
    let out = ctl(&[&plain], &[], &["get", "/tls/a"]).await;
    assert!(!out.ok, "{kind:?}: served plain HTTP: {}", out.stdout);

    // The member with the other CA's peer certificate: refused by both good members (their
    // logs say so), it has no leader, and the two keep committing.
    wait_for(
        &format!("{kind:?}: a good member logs the refused peer"),
        Duration::from_secs(30),
        || {
            let logs = c.log_text(0) + &c.log_text(1);
            async move { logs.contains("rejected connection").then_some(()) }
        },
    )
    .await;
    // (A short command timeout: it cannot answer, the only question is how it fails.)
    let health = ["endpoint", "health", "--command-timeout=3s"];
    let out = ctl(&[stranger], &creds, &health).await;
    assert!(!out.ok, "{kind:?}: the stranger is healthy: {}", out.stdout);
    for i in 0..5 {
        let value = format!("v{i}");
        ctl_ok(&[good1], &creds, &["put", "/tls/b", &value]).await;
    }
    let got = ctl_ok(&[good0], &creds, &["get", "/tls/b", "--print-value-only"]).await;
    assert_eq!(got.trim(), "v4", "{kind:?}");
}

#[tokio::test]
async fn ours_three_members_over_tls() {
    three_members(Kind::Ours).await;
}

#[tokio::test]
async fn etcd_three_members_same_flags() {
    three_members(Kind::Etcd).await;
}

/// The one-member checks for one kind: what `--trusted-ca-file`, `--auto-tls` and an https URL
/// without certificates mean.
async fn one_member(kind: Kind) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let certs = Certs::make(tmp.path());

    // --trusted-ca-file without --client-cert-auth: client certificates required all the same.
    let mut c = Cluster::plan(kind, &tmp.path().join("ca"), 1, "https", "http");
    let flags = vec![
        format!("--cert-file={}", certs.path("server.pem")),
        format!("--key-file={}", certs.path("server-key.pem")),
        format!("--trusted-ca-file={}", certs.path("ca.pem")),
    ];
    c.start(0, &flags);
    let endpoint = &c.clients[0];
    wait_healthy(kind, endpoint, &certs.ctl(true)).await;
    ctl_ok(&[endpoint], &certs.ctl(true), &["put", "/tls/c", "x"]).await;
    let out = ctl(&[endpoint], &certs.ctl(false), &["get", "/tls/c"]).await;
    assert!(
        !out.ok,
        "{kind:?}: --trusted-ca-file let a client in without a certificate"
    );
    drop(c);

    // --auto-tls: a self-signed certificate in the data dir; only unchecked clients get in.
    let mut c = Cluster::plan(kind, &tmp.path().join("auto"), 1, "https", "http");
    c.start(0, &["--auto-tls".to_owned()]);
    let endpoint = &c.clients[0];
    let skip = vec![
        "--insecure-transport=false".to_owned(),
        "--insecure-skip-tls-verify".to_owned(),
    ];
    wait_healthy(kind, endpoint, &skip).await;
    ctl_ok(&[endpoint], &skip, &["put", "/tls/d", "y"]).await;
    let out = ctl(&[endpoint], &certs.ctl(true), &["get", "/tls/d"]).await;
    assert!(
        !out.ok,
        "{kind:?}: our CA vouched for the self-signed certificate"
    );
    let fixtures = c.data_dir(0).join("fixtures").join("client");
    assert!(
        fixtures.join("cert.pem").exists() && fixtures.join("key.pem").exists(),
        "{kind:?}: no certificate in {}",
        fixtures.display()
    );
    drop(c);

    // An https URL without certificates: refused at start, with etcd's words.
    let c = Cluster::plan(kind, &tmp.path().join("none"), 1, "https", "http");
    let log = c.start_failing(0, &[]).await;
    assert!(
        log.contains("TLS key/cert (--cert-file, --key-file) must be provided for client url"),
        "{kind:?}: {log}"
    );
}

#[tokio::test]
async fn ours_one_member_flags() {
    one_member(Kind::Ours).await;
}

#[tokio::test]
async fn etcd_one_member_same_flags() {
    one_member(Kind::Etcd).await;
}

/// A member joins a running https cluster with `--initial-cluster-state existing`: the
/// joining member asks the running one for its member list over the peer TLS (its
/// `--initial-cluster` names peer URLs only), then serves. Added as a learner so the running
/// member keeps its quorum while the new one starts.
async fn join_over_https(kind: Kind) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let certs = Certs::make(tmp.path());
    let mut c = Cluster::plan(kind, tmp.path(), 1, "https", "https");
    let flags = certs.member_flags(false);
    c.start(0, &flags);
    let creds = certs.ctl(true);
    let first = c.clients[0].clone();
    wait_healthy(kind, &first, &creds).await;
    ctl_ok(&[&first], &creds, &["put", "/tls/join", "before"]).await;
    let peer = format!("https://127.0.0.1:{}", free_port());
    let client = format!("https://127.0.0.1:{}", free_port());
    let added = ctl_ok(
        &[&first],
        &creds,
        &[
            "member",
            "add",
            "m1",
            "--learner",
            &format!("--peer-urls={peer}"),
        ],
    )
    .await;
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{kind:?}: {added}"
    );
    c.names.push("m1".into());
    c.clients.push(client.clone());
    c.peers.push(peer.clone());
    if kind == Kind::Ours {
        // The joining member's own URLs come from the file, as for any member of ours.
        let mut text = std::fs::read_to_string(c.dir.join("cluster.toml")).expect("file");
        text += &format!(
            "\n[[member]]\nname = \"m1\"\nclient_url = \"{client}\"\npeer_url = \"{peer}\"\n"
        );
        std::fs::write(c.dir.join("cluster.toml"), text).expect("cluster file");
    }
    let mut joining = flags.clone();
    // (etcd takes the last of a repeated flag: these override the plan's "new".)
    joining.push(format!("--initial-cluster=m0={},m1={peer}", c.peers[0]));
    joining.push("--initial-cluster-state=existing".into());
    c.start(1, &joining);
    wait_for(
        &format!("{kind:?}: the joined member publishes its client URL"),
        Duration::from_secs(30),
        || {
            let (first, creds, client) = (first.clone(), creds.clone(), client.clone());
            async move {
                let list = ctl(&[&first], &creds, &["member", "list"]).await;
                list.stdout.contains(&client).then_some(())
            }
        },
    )
    .await;
    let read = ["get", "/tls/join", "--print-value-only", "--consistency=s"];
    let got = wait_for(
        &format!("{kind:?}: the joined member serves what was written before"),
        Duration::from_secs(30),
        || {
            let (client, creds) = (client.clone(), creds.clone());
            async move {
                let out = ctl(&[&client], &creds, &read).await;
                (out.ok && !out.stdout.trim().is_empty()).then_some(out.stdout)
            }
        },
    )
    .await;
    assert_eq!(got.trim(), "before", "{kind:?}");
}

#[tokio::test]
async fn ours_joins_over_https() {
    join_over_https(Kind::Ours).await;
}

#[tokio::test]
async fn etcd_joins_over_https() {
    join_over_https(Kind::Etcd).await;
}
