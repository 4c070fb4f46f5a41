//! The `[tls]` section, the flags over it, and what [`Tls::build`] accepts and refuses.

use std::path::Path;

use clap::Parser;

use super::*;
use crate::config::ClusterFile;

/// A file of one member `a` with these URL schemes and `tls` as its `[tls]` section.
fn file(dir: &Path, client: &str, peer: &str, tls: &str) -> NodeConfig {
    let text = format!(
        "[cluster]\ntoken = \"t\"\ndata_dir = \"data\"\n{tls}\n\n[[member]]\nname = \"a\"\n\
         client_url = \"{client}://127.0.0.1:2379\"\npeer_url = \"{peer}://127.0.0.1:2380\"\n"
    );
    let path = dir.join("cluster.toml");
    ClusterFile::parse(&path, &text)
        .expect("valid file")
        .node_config(&path, "a")
        .expect("member a")
}

/// A self-signed certificate for 127.0.0.1 as `<name>.pem` and `<name>-key.pem` in `dir`.
fn certificate(dir: &Path, name: &str) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    std::fs::write(dir.join(format!("{name}.pem")), made.cert.pem()).expect("write");
    std::fs::write(
        dir.join(format!("{name}-key.pem")),
        made.signing_key.serialize_pem(),
    )
    .expect("write");
}

fn build_error(config: &NodeConfig) -> String {
    match Tls::build(config) {
        Ok(_) => panic!("built: {:?}", config.tls),
        Err(e) => e,
    }
}

#[test]
fn the_section_takes_paths_from_the_file_and_rejects_unknown_keys() {
    let c = file(
        Path::new("/etc/reg"),
        "https",
        "https",
        "[tls]\ncert_file = \"c.pem\"\nkey_file = \"/abs/k.pem\"\nclient_cert_auth = true\npeer_auto_tls = true",
    );
    assert_eq!(
        c.tls.cert_file.as_deref(),
        Some(Path::new("/etc/reg/c.pem"))
    );
    assert_eq!(c.tls.key_file.as_deref(), Some(Path::new("/abs/k.pem")));
    assert!(c.tls.client_cert_auth && c.tls.peer_auto_tls && !c.tls.auto_tls);
    let text = "[cluster]\ntoken = \"t\"\ndata_dir = \"d\"\n[tls]\ncert = \"x\"\n\n[[member]]\n\
                name = \"a\"\nclient_url = \"http://127.0.0.1:1\"\npeer_url = \"http://127.0.0.1:2\"\n";
    let e = ClusterFile::parse(Path::new("c.toml"), text).expect_err("typo");
    assert!(e.to_string().contains("cert"), "{e}");
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    tls: TlsArgs,
}

#[test]
fn flags_override_the_file_as_etcds_do() {
    let mut section = TlsSection {
        client_cert_auth: true,
        cert_file: Some("/file/c.pem".into()),
        ..Default::default()
    };
    let flags = Flags::try_parse_from([
        "x",
        "--cert-file",
        "rel/c.pem",
        "--client-cert-auth=false",
        "--peer-auto-tls",
    ])
    .expect("etcd's spellings");
    flags.tls.apply(&mut section).expect("cwd");
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(section.cert_file, Some(cwd.join("rel/c.pem")));
    assert!(!section.client_cert_auth && section.peer_auto_tls);
    // A flag not given leaves the file's value.
    let mut kept = TlsSection {
        auto_tls: true,
        ..Default::default()
    };
    Flags::try_parse_from(["x"])
        .expect("no flags")
        .tls
        .apply(&mut kept)
        .expect("cwd");
    assert!(kept.auto_tls);
    assert!(Flags::try_parse_from(["x", "--auto-tls=maybe"]).is_err());
}

#[test]
fn https_needs_certificates_and_a_ca_for_client_cert_auth() {
    let dir = tempfile::tempdir().expect("temp dir");
    let e = build_error(&file(dir.path(), "https", "http", ""));
    assert!(
        e.contains("TLS key/cert (--cert-file, --key-file) must be provided for client url"),
        "{e}"
    );
    let e = build_error(&file(dir.path(), "http", "https", ""));
    assert!(e.contains("--peer-cert-file, --peer-key-file"), "{e}");
    certificate(dir.path(), "s");
    let e = build_error(&file(
        dir.path(),
        "https",
        "http",
        "[tls]\ncert_file = \"s.pem\"",
    ));
    assert!(e.contains("must both be given"), "{e}");
    let pair = "cert_file = \"s.pem\"\nkey_file = \"s-key.pem\"";
    let e = build_error(&file(
        dir.path(),
        "https",
        "http",
        &format!("[tls]\n{pair}\nclient_cert_auth = true"),
    ));
    assert!(
        e.contains("--client-cert-auth needs --trusted-ca-file"),
        "{e}"
    );
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").expect("write");
    let e = build_error(&file(
        dir.path(),
        "https",
        "http",
        "[tls]\ncert_file = \"junk.pem\"\nkey_file = \"s-key.pem\"",
    ));
    assert!(e.contains("--cert-file") && e.contains("junk.pem"), "{e}");
    let e = build_error(&file(
        dir.path(),
        "https",
        "http",
        &format!("[tls]\n{pair}\ntrusted_ca_file = \"absent.pem\""),
    ));
    assert!(
        e.contains("--trusted-ca-file") && e.contains("absent.pem"),
        "{e}"
    );

    let tls = Tls::build(&file(
        dir.path(),
        "https",
        "http",
        &format!("[tls]\n{pair}"),
    ))
    .expect("server TLS without client certificates");
    assert!(tls.client_server.is_some() && tls.peer_server.is_none());
    let alpn = &tls.client_server.as_ref().expect("server").alpn_protocols;
    assert_eq!(alpn, &[b"h2".to_vec(), b"http/1.1".to_vec()]);
    // Certificates with an http URL are ignored (etcd warns and serves plain).
    let tls =
        Tls::build(&file(dir.path(), "http", "http", &format!("[tls]\n{pair}"))).expect("plain");
    assert!(tls.client_server.is_none());
}

#[test]
fn auto_tls_makes_a_certificate_once_and_keeps_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let c = file(
        dir.path(),
        "https",
        "https",
        "[tls]\nauto_tls = true\npeer_auto_tls = true",
    );
    let tls = Tls::build(&c).expect("auto TLS");
    assert!(tls.client_server.is_some() && tls.peer_server.is_some());
    let cert = c.data_dir.join("fixtures/client/cert.pem");
    let first = std::fs::read(&cert).expect("client certificate kept");
    assert!(c.data_dir.join("fixtures/peer/key.pem").exists());
    Tls::build(&c).expect("again");
    assert_eq!(std::fs::read(&cert).expect("still there"), first);
}

#[test]
fn an_added_member_without_a_client_url_is_not_dialled_and_peers_are_asked_over_tls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut c = file(
        dir.path(),
        "https",
        "https",
        "[tls]\nauto_tls = true\npeer_auto_tls = true",
    );
    // `--initial-cluster` of a joining member: the others by name and peer URL only.
    c.members.push(crate::config::MemberSpec {
        id: 2,
        name: "b".into(),
        client_url: String::new(),
        peer_url: "https://127.0.0.1:2390".into(),
    });
    let tls = Tls::build(&c).expect("a member with no client URL yet is accepted");
    // membership/join.rs asks the running members for their list on this link.
    tls.peer_client
        .endpoint("https://127.0.0.1:2390")
        .expect("an https peer URL is dialled with the peer TLS");
    // A client URL that is given is still checked.
    c.members[1].client_url = "not a url".into();
    let e = build_error(&c);
    assert!(e.contains("member b") && e.contains("not a url"), "{e}");
}
