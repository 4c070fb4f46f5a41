//! micro's registry client over TLS and with etcd auth, against a REAL etcd (the independent
//! check; issue 19 part 3):
//!
//! - etcd with `--cert-file/--key-file/--trusted-ca-file --client-cert-auth` on `https://`
//!   (CA, server and client certificates made here with rcgen): a greeter registers, a client
//!   finds and calls it; without a client certificate registration fails, naming TLS.
//! - etcd with auth enabled (root, and a user whose role may read and write `/micro-registry/`
//!   only): the same with that user; a token made stale by a change of the auth store is
//!   replaced without the caller noticing; a wrong password fails with etcd's words.
//!
//! Each test starts one etcd member in a temporary directory (killed on drop).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use micro::registry::{Credentials, Pem, RegistryOptions, TlsOptions};
use micro::selector::{Kind, Strategy};
use micro::testing::{etcd_binary, free_port, wait_for};
use micro::{Registry, Service, ServiceOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::process::{Child, Command};

const DEADLINE: Duration = Duration::from_secs(30);

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Certs {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn write_certs(dir: &Path) -> Certs {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "micro test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, &ca_key);
    let leaf = |name: &str, sans: Vec<String>, usages: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(sans).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &issuer).expect("signed");
        (cert.pem(), key.serialize_pem())
    };
    // etcd also dials itself with the server certificate (its gRPC gateway): both usages.
    let server = leaf(
        "etcd",
        vec!["127.0.0.1".into(), "localhost".into()],
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    let client = leaf("micro", vec![], vec![ExtendedKeyUsagePurpose::ClientAuth]);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    Certs {
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server.0),
        server_key: write("server-key.pem", &server.1),
        client_cert: write("client.pem", &client.0),
        client_key: write("client-key.pem", &client.1),
    }
}

/// One real etcd member with `extra` flags; `scheme` of its client URL.
struct Etcd {
    _dir: tempfile::TempDir,
    _child: Child,
    url: String,
}

async fn start_etcd(dir: tempfile::TempDir, scheme: &str, extra: &[String]) -> Option<Etcd> {
    let Some(binary) = etcd_binary() else {
        eprintln!("skipped: no etcd binary on PATH (.ci/run installs etcd-server)");
        return None;
    };
    let client = format!("{scheme}://127.0.0.1:{}", free_port().expect("port"));
    let peer = format!("http://127.0.0.1:{}", free_port().expect("port"));
    let log = std::fs::File::create(dir.path().join("etcd.log")).expect("log");
    let child = Command::new(binary)
        .arg("--name=s0")
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=s0={peer}"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("start etcd");
    Some(Etcd {
        _dir: dir,
        _child: child,
        url: client,
    })
}

fn options(url: &str, tls: Option<TlsOptions>, auth: Option<Credentials>) -> RegistryOptions {
    let mut options = RegistryOptions::new(vec![url.to_owned()]);
    options.dial_timeout = Duration::from_secs(1);
    options.request_timeout = Duration::from_secs(3);
    options.tls = tls;
    options.auth = auth;
    options
}

/// Waits until `registry` can list services (the member is up and lets us in).
async fn wait_ready(registry: &Registry) {
    wait_for("the registry to answer", DEADLINE, || async {
        registry.list_services().await.ok()
    })
    .await;
}

/// A greeter registers through `registry`; a client with its own registry client (`finder`)
/// finds the node and calls it.
async fn register_find_and_call(registry: &Registry, finder: &Registry) {
    let running = start_greeter(registry, "one", FAST).await;
    let client = client(finder, Kind::Cache, Strategy::Random);
    let answer = wait_for(
        "the greeter to answer through the registry",
        DEADLINE,
        || {
            let client = client.clone();
            async move { hello(&client, "John").await.ok() }
        },
    )
    .await;
    assert_eq!(answer, "Hello John srv one");
    let listed = finder.get_service(SRV).await.expect("get service");
    assert_eq!(listed[0].nodes[0].id, running.node().id);
    running.stop().await.expect("deregisters");
}

/// What a registration through `options` fails with.
async fn registration_error(options: &RegistryOptions) -> String {
    let registry = Registry::new(options).expect("client");
    let started = Service::new(ServiceOptions::new(SRV), registry)
        .start()
        .await;
    let Err(err) = started else {
        panic!("registration must fail")
    };
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_against_real_etcd() {
    init_tracing();
    let _slot = slot().await;
    let dir = tempfile::tempdir().expect("dir");
    let certs = write_certs(dir.path());
    let flags = [
        format!("--cert-file={}", certs.server_cert.display()),
        format!("--key-file={}", certs.server_key.display()),
        format!("--trusted-ca-file={}", certs.ca.display()),
        "--client-cert-auth".to_owned(),
    ];
    let Some(etcd) = start_etcd(dir, "https", &flags).await else {
        return;
    };
    let tls = TlsOptions {
        ca: Some(Pem::File(certs.ca.clone())),
        cert: Some(Pem::File(certs.client_cert.clone())),
        key: Some(Pem::File(certs.client_key.clone())),
    };
    let registry = Registry::new(&options(&etcd.url, Some(tls.clone()), None)).expect("client");
    wait_ready(&registry).await;
    let finder = Registry::new(&options(&etcd.url, Some(tls.clone()), None)).expect("client");
    register_find_and_call(&registry, &finder).await;

    // The CA but no client certificate: the member refuses the connection.
    let no_cert = TlsOptions {
        ca: Some(Pem::File(certs.ca.clone())),
        ..TlsOptions::default()
    };
    let text = registration_error(&options(&etcd.url, Some(no_cert), None)).await;
    assert!(
        text.contains("wants a client certificate (--registry_tls_cert"),
        "the error names the missing certificate: {text}"
    );
    // No CA: the member's certificate is not trusted (system roots only).
    let text = registration_error(&options(&etcd.url, None, None)).await;
    assert!(
        text.to_lowercase().contains("certificate"),
        "the error names the certificate: {text}"
    );
}

/// Runs the real etcdctl on `url` (as root once auth is on).
async fn etcdctl(url: &str, args: &[&str]) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={url}"))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run etcdctl");
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_against_real_etcd() {
    init_tracing();
    let _slot = slot().await;
    if !has_etcdctl() {
        eprintln!("skipped: no etcdctl on PATH (.ci/run installs etcd-client)");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let Some(etcd) = start_etcd(dir, "http", &[]).await else {
        return;
    };
    auth_scenario(etcd.url.clone()).await;
}

/// The same against our registry (three in-process members).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_against_our_registry() {
    init_tracing();
    let _slot = slot().await;
    if !has_etcdctl() {
        eprintln!("skipped: no etcdctl on PATH (.ci/run installs etcd-client)");
        return;
    }
    let backend = micro::testing::Backend::start(micro::testing::BackendKind::Embedded)
        .await
        .expect("the embedded registry");
    auth_scenario(backend.endpoints().join(",")).await;
    backend.shutdown().await;
}

/// Auth turned on with etcdctl at `url` (comma-separated members): a user with a readwrite
/// role on `/micro-registry/` registers, finds and calls; a dropped token is replaced; a wrong
/// password and no credentials fail with etcd's words.
async fn auth_scenario(url: String) {
    let members: Vec<String> = url.split(',').map(str::to_owned).collect();
    let with = |auth: Option<Credentials>| {
        let mut o = options(&members[0], None, auth);
        o.addresses = members.clone();
        o
    };
    wait_ready(&Registry::new(&with(None)).expect("client")).await;
    etcdctl(&url, &["user", "add", "root:rootpw"]).await;
    etcdctl(&url, &["role", "add", "micro"]).await;
    etcdctl(
        &url,
        &[
            "role",
            "grant-permission",
            "micro",
            "--prefix=true",
            "readwrite",
            "/micro-registry/",
        ],
    )
    .await;
    etcdctl(&url, &["user", "add", "micro:micropw"]).await;
    etcdctl(&url, &["user", "grant-role", "micro", "micro"]).await;
    etcdctl(&url, &["auth", "enable"]).await;

    let user = || Some(Credentials::new("micro", "micropw"));
    let registry = Registry::new(&with(user())).expect("client");
    wait_ready(&registry).await;
    let finder = Registry::new(&with(user())).expect("client");
    register_find_and_call(&registry, &finder).await;

    // Turning auth off and on drops every simple token: the next call is answered "invalid
    // auth token", and the client authenticates again and repeats it.
    etcdctl(&url, &["--user=root:rootpw", "auth", "disable"]).await;
    etcdctl(&url, &["auth", "enable"]).await;
    finder
        .list_services()
        .await
        .expect("a token the server dropped is replaced");

    let text = registration_error(&with(Some(Credentials::new("micro", "wrong")))).await;
    assert!(
        text.contains("authentication as user \"micro\" failed")
            && text.contains("etcdserver: authentication failed, invalid user ID or password"),
        "{text}"
    );
    // No credentials at all: etcd refuses the first write.
    let text = registration_error(&with(None)).await;
    assert!(text.contains("etcdserver: user name is empty"), "{text}");
}
