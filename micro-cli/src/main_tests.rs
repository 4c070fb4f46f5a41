//! go-micro's flags before or after each command, as the seed types them.

use super::*;
use clap::Parser;
use micro::selector::Kind;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The go-micro flags the command `cli` will use.
fn flags(cli: &Cli) -> &MicroArgs {
    match &cli.command {
        Command::Greeter { role } => &role.args().micro,
        Command::Api(args) => &args.micro,
        Command::List {
            what: ListWhat::Services { micro },
        }
        | Command::Get {
            what: GetWhat::Service { micro, .. },
        }
        | Command::Call { micro, .. } => micro,
        other => panic!("no go-micro flags in {other:?}"),
    }
}

#[test]
fn the_seeds_command_lines_parse() {
    let list = parse(&["micro", "--registry=etcdv3", "list", "services"]);
    assert!(matches!(list.command, Command::List { .. }));

    let gateway = parse(&[
        "micro",
        "--selector=cache",
        "--registry=etcdv3",
        "--registry_address=http://192.168.3.45:2479",
        "api",
        "--handler=api",
    ]);
    let Command::Api(args) = &gateway.command else {
        panic!("api")
    };
    assert_eq!(args.handler, "api");
    assert_eq!(
        flags(&gateway).registry_endpoints(),
        ["http://192.168.3.45:2479"]
    );
    assert_eq!(flags(&gateway).selector, Kind::Cache);

    // `go run main.go --selector=cache ...` is `micro greeter srv --name one --selector=cache ...`
    let srv = parse(&[
        "micro",
        "greeter",
        "srv",
        "--name",
        "one",
        "--selector=cache",
        "--registry=etcdv3",
        "--registry_address=http://192.168.3.118:2379",
    ]);
    assert_eq!(
        flags(&srv).registry_endpoints(),
        ["http://192.168.3.118:2379"]
    );
}

#[test]
fn every_flag_before_or_after_every_command() {
    let global = [
        "--registry=etcd",
        "--registry_address=10.0.0.9:2379",
        "--registry_prefix=/micro/registry/",
        "--selector=registry",
        "--register_ttl=9",
        "--register_interval=3",
        "--server_name=renamed",
        "--server_address=127.0.0.1:7000",
        "--server_advertise=10.0.0.1:7000",
        "--client_retries=2",
        "--client_request_timeout=750ms",
        "--client_pool_size=2",
    ];
    let commands: [&[&str]; 5] = [
        &["list", "services"],
        &["get", "service", "x"],
        &["call", "x", "A.B"],
        &["greeter", "api", "--name", "one"],
        &["api", "--handler=api"],
    ];
    for command in commands {
        let before: Vec<&str> = ["micro"]
            .iter()
            .chain(global.iter())
            .chain(command.iter())
            .copied()
            .collect();
        let after: Vec<&str> = ["micro"]
            .iter()
            .chain(command.iter())
            .chain(global.iter())
            .copied()
            .collect();
        for args in [before, after] {
            let cli = parse(&args);
            let m = flags(&cli);
            assert_eq!(m.registry_endpoints(), ["http://10.0.0.9:2379"], "{args:?}");
            assert_eq!(m.registry_options().prefix, "/micro/registry/", "{args:?}");
            assert_eq!(m.selector, Kind::Registry, "{args:?}");
            assert_eq!((m.register_ttl, m.register_interval), (9, 3), "{args:?}");
            let service = m.service_options("go.micro.api.greeter");
            assert_eq!(service.name, "renamed", "{args:?}");
            assert_eq!(service.advertise.as_deref(), Some("10.0.0.1:7000"));
            let client = m.client_options();
            assert_eq!(
                (client.retries, client.request_timeout, client.pool_size),
                (2, Duration::from_millis(750), 2),
                "{args:?}"
            );
        }
    }
}

#[test]
fn unknown_registry_names_the_accepted_ones() {
    let err = Cli::try_parse_from(["micro", "--registry=consul", "list", "services"])
        .expect_err("consul is not spoken");
    let text = err.to_string();
    assert!(
        text.contains("unsupported registry \"consul\": accepted are etcd, etcdv3"),
        "{text}"
    );
}

#[test]
fn only_flags_given_on_the_line_are_handed_on() {
    let matches = Cli::command()
        .try_get_matches_from([
            "micro",
            "--register_ttl=5",
            "up",
            "--selector=registry",
            "--registry_address=a:1,b:2",
        ])
        .expect("parse");
    let mut flags = given_micro_flags(&matches);
    flags.sort();
    assert_eq!(
        flags,
        [
            "--register_ttl=5",
            "--registry_address=a:1,b:2",
            "--selector=registry"
        ]
    );
    let none = Cli::command()
        .try_get_matches_from(["micro", "up"])
        .expect("parse");
    assert!(given_micro_flags(&none).is_empty());
}
