use super::*;
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    micro: MicroArgs,
}

/// A command shaped like `micro`: the flags at the top and again in a subcommand.
#[derive(Parser)]
struct Nested {
    #[command(flatten)]
    micro: MicroArgs,
    #[command(subcommand)]
    sub: Sub,
}

#[derive(Subcommand)]
enum Sub {
    Run {
        #[command(flatten)]
        micro: MicroArgs,
    },
}

#[test]
fn defaults_are_go_micros_and_our_members() {
    let cli = Cli::try_parse_from(["x"]).expect("parse");
    assert_eq!(
        cli.micro.registry_endpoints(),
        [
            "http://127.0.0.1:2379",
            "http://127.0.0.1:2479",
            "http://127.0.0.1:2579"
        ]
    );
    assert_eq!(cli.micro.register_options().ttl, Duration::from_secs(30));
    assert_eq!(
        cli.micro.register_options().interval,
        Duration::from_secs(10)
    );
    assert_eq!(cli.micro.selector, Kind::Cache);
    assert_eq!(cli.micro.registry_options().prefix, "/micro-registry/");
    let client = cli.micro.client_options();
    assert_eq!(
        (client.request_timeout, client.retries, client.pool_size),
        (Duration::from_secs(5), 1, 1)
    );
    let service = cli.micro.service_options("go.micro.srv.greeter");
    assert_eq!(service.name, "go.micro.srv.greeter");
    assert_eq!((service.address, service.advertise), (None, None));
}

#[test]
fn go_micro_flag_names() {
    let cli = Cli::try_parse_from([
        "x",
        "--registry_address",
        "http://10.0.0.1:2379,10.0.0.2:2379",
        "--register_ttl=3",
        "--register_interval=1",
        "--selector=registry",
        "--server_address=127.0.0.1:9090",
        "--registry=etcdv3",
        "--registry_prefix=/micro/registry",
        "--server_name=go.micro.srv.other",
        "--server_advertise=10.1.2.3:9999",
        "--client_retries=4",
        "--client_request_timeout=1m30s",
        "--client_pool_size=3",
    ])
    .expect("parse");
    let m = &cli.micro;
    assert_eq!(
        m.registry_endpoints(),
        ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    );
    assert_eq!(m.registry, RegistryKind::Etcd);
    assert_eq!(m.registry_options().prefix, "/micro/registry/");
    assert_eq!(m.register_options().ttl, Duration::from_secs(3));
    assert_eq!(m.register_options().interval, Duration::from_secs(1));
    assert_eq!(m.selector_options().kind, Kind::Registry);
    let client = m.client_options();
    assert_eq!(
        (client.request_timeout, client.retries, client.pool_size),
        (Duration::from_secs(90), 4, 3)
    );
    let service = m.service_options("go.micro.srv.greeter");
    assert_eq!(service.name, "go.micro.srv.other");
    assert_eq!(
        service.address,
        Some("127.0.0.1:9090".parse().expect("addr"))
    );
    assert_eq!(service.advertise.as_deref(), Some("10.1.2.3:9999"));
    assert_eq!(service.register.ttl, Duration::from_secs(3));
}

#[test]
fn before_or_after_the_subcommand() {
    let after = Nested::try_parse_from(["x", "run", "--registry=etcdv3", "--register_ttl=7"])
        .expect("after");
    let before = Nested::try_parse_from(["x", "--registry=etcdv3", "--register_ttl=7", "run"])
        .expect("before");
    for cli in [after, before] {
        let Sub::Run { micro } = &cli.sub;
        assert_eq!(micro.register_ttl, 7, "the subcommand sees it");
        assert_eq!(cli.micro.register_ttl, 7, "the top level sees it");
    }
    // Given at both places, the one nearer the subcommand wins; env is below either.
    let both =
        Nested::try_parse_from(["x", "--register_ttl=7", "run", "--register_ttl=8"]).expect("both");
    let Sub::Run { micro } = &both.sub;
    assert_eq!(micro.register_ttl, 8);
}

#[test]
fn bad_values_are_refused_with_the_accepted_ones() {
    let err = |args: &[&str]| {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all) {
            Ok(_) => panic!("{args:?} accepted"),
            Err(e) => e.to_string(),
        }
    };
    let e = err(&["--registry=mdns"]);
    assert!(
        e.contains("unsupported registry \"mdns\": accepted are etcd, etcdv3"),
        "{e}"
    );
    let e = err(&["--selector=dns"]);
    assert!(e.contains("possible values: cache, registry"), "{e}");
    for args in [
        ["--register_ttl=0"],
        ["--register_interval=x"],
        ["--client_request_timeout=5"],
        ["--client_pool_size=0"],
        ["--server_address=9090"],
        ["--server_advertise=nohost"],
        ["--registry_prefix=micro"],
        ["--client_retries=-1"],
    ] {
        let e = err(&args);
        assert!(e.contains("invalid value"), "{args:?}: {e}");
    }
    let any = Cli::try_parse_from(["x", "--server_address=:9090"]).expect(":port");
    assert_eq!(
        any.micro.server_address,
        Some("0.0.0.0:9090".parse().expect("addr"))
    );
}

#[test]
fn metrics_address_is_off_unless_given() {
    let cli = Cli::try_parse_from(["x"]).expect("parse");
    assert_eq!(cli.micro.service_options("s").metrics_address, None);
    let cli = Cli::try_parse_from(["x", "--metrics_address=:9100"]).expect("parse");
    assert_eq!(
        cli.micro.service_options("s").metrics_address,
        Some(SocketAddr::from(([0, 0, 0, 0], 9100)))
    );
    assert!(Cli::try_parse_from(["x", "--metrics_address=nowhere"]).is_err());
}

#[test]
fn registry_tls_and_auth_flags() {
    let cli = Cli::try_parse_from(["x"]).expect("parse");
    let options = cli.micro.registry_options();
    assert_eq!((options.tls, options.auth), (None, None));

    let cli = Cli::try_parse_from([
        "x",
        "--registry_address=10.0.0.1:2379,http://10.0.0.2:2379",
        "--registry_tls_ca=/etc/ca.pem",
        "--registry_tls_cert=/etc/client.pem",
        "--registry_tls_key=/etc/client-key.pem",
        "--registry_username=micro",
        "--registry_password=pw",
    ])
    .expect("parse");
    let options = cli.micro.registry_options();
    let tls = options.tls.expect("TLS");
    assert_eq!(
        tls.ca,
        Some(crate::registry::Pem::File("/etc/ca.pem".into()))
    );
    assert!(tls.cert.is_some() && tls.key.is_some());
    let auth = options.auth.expect("credentials");
    assert_eq!(
        (auth.username.as_str(), auth.password.as_str()),
        ("micro", "pw")
    );
    // host:port becomes https:// with TLS; an explicit http:// stays (and is refused when the
    // client is built, see the registry's tests).
    assert_eq!(
        cli.micro.registry_endpoints(),
        ["https://10.0.0.1:2379", "http://10.0.0.2:2379"]
    );

    // `--registry_secure` alone, and in the `--name=value` form `micro up` hands on.
    for secure in ["--registry_secure", "--registry_secure=true"] {
        let cli = Cli::try_parse_from(["x", secure]).expect("parse");
        assert_eq!(
            cli.micro.registry_options().tls,
            Some(crate::registry::TlsOptions::default()),
            "{secure}"
        );
    }
    let cli = Cli::try_parse_from(["x", "--registry_secure=false"]).expect("parse");
    assert_eq!(cli.micro.registry_options().tls, None);
}

#[test]
fn a_plain_address_with_tls_options_is_refused() {
    let cli = Cli::try_parse_from([
        "x",
        "--registry_address=http://127.0.0.1:2379",
        "--registry_secure",
    ])
    .expect("parse");
    let err = crate::Registry::new(&cli.micro.registry_options()).expect_err("plain + TLS");
    assert!(err.to_string().contains("https://127.0.0.1:2379"), "{err}");
}
