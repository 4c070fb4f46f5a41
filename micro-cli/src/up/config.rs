//! What `micro up` reads from `cluster.toml`: the `[registry]`, `[[service]]` and `[gateway]`
//! sections (registry-node keeps them opaque), validated into a [`Plan`] of child processes.
//!
//! ```toml
//! [registry]
//! backend = "embedded"            # our [[member]]s (default), or "etcd"
//! # endpoints = ["http://127.0.0.1:2379"]   # with backend = "etcd": no member is started
//!
//! [[service]]
//! name = "srv-one"                # the log prefix
//! command = ["greeter", "srv", "--name", "one"]
//! args = ["--register_ttl=30"]    # optional, appended
//!
//! [gateway]
//! address = "127.0.0.1:8080"
//! ```
//!
//! Every service and the gateway get `--registry_address` with the registry's client URLs
//! (and, with `[cluster] tls = "auto"`, the registry TLS flags: see [`super::tls`]).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::tls::{self, AutoTls};

mod sections;

pub(crate) use sections::{Backend, ServiceSection};
use sections::{GatewaySection, RegistrySection, UpFile};

/// One child process to run: a label and the arguments of the `micro` binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proc {
    pub label: String,
    pub args: Vec<String>,
}

/// A registry member to start, with its URLs (for the summary).
#[derive(Debug, Clone)]
pub(crate) struct MemberProc {
    pub proc: Proc,
    pub client_url: String,
    pub peer_url: String,
}

/// The gateway to start and where to reach it.
#[derive(Debug, Clone)]
pub(crate) struct GatewayProc {
    pub proc: Proc,
    /// The address to connect to (loopback when it listens on every address).
    pub connect: SocketAddr,
    pub ready_path: String,
}

/// Everything `micro up` starts, in start order.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub backend: Backend,
    /// Registry client URLs every service is given.
    pub endpoints: Vec<String>,
    pub members: Vec<MemberProc>,
    pub services: Vec<Proc>,
    pub gateway: GatewayProc,
    /// `[cluster] tls = "auto"`: the certificates to make before the members start.
    pub tls: Option<AutoTls>,
}

/// The seed's four instances, used when the file has no `[[service]]`.
fn default_services() -> Vec<ServiceSection> {
    [
        ("srv", "one"),
        ("srv", "two"),
        ("api", "one"),
        ("api", "two"),
    ]
    .into_iter()
    .map(|(role, name)| ServiceSection {
        name: format!("{role}-{name}"),
        command: ["greeter", role, "--name", name]
            .map(str::to_owned)
            .to_vec(),
        args: Vec::new(),
    })
    .collect()
}

impl Plan {
    /// Reads and validates `path`.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Plan> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        Plan::parse(path, &text)
    }

    /// Validates `text`, the contents of `path` (member data dirs are relative to its folder).
    pub(crate) fn parse(path: &Path, text: &str) -> anyhow::Result<Plan> {
        let file: UpFile =
            toml::from_str(text).with_context(|| format!("{}: invalid", path.display()))?;
        let auto_tls = match tls::wanted(path, file.cluster.as_ref())? {
            false => None,
            true if file.registry.backend == Backend::Etcd => bail!(
                "{}: cluster.tls = \"auto\" is for the embedded registry; for an etcd backend \
                 give the services --registry_tls_* flags",
                path.display()
            ),
            true => Some(AutoTls::plan(path, text)?),
        };
        let (mut members, endpoints) = match (file.registry.backend, &auto_tls) {
            (Backend::Embedded, None) => embedded_members(path, text, &file.registry)?,
            (Backend::Embedded, Some(auto)) => {
                embedded_members(&auto.member_file, &auto.member_text, &file.registry)?
            }
            (Backend::Etcd, _) => {
                if file.registry.endpoints.is_empty() {
                    bail!(
                        "{}: registry.endpoints: backend \"etcd\" needs at least one endpoint",
                        path.display()
                    );
                }
                (Vec::new(), file.registry.endpoints.clone())
            }
        };
        let registry_address = format!("--registry_address={}", endpoints.join(","));
        let client_tls = auto_tls
            .as_ref()
            .map(AutoTls::client_args)
            .unwrap_or_default();
        for m in &mut members {
            m.proc
                .args
                .extend(auto_tls.iter().flat_map(AutoTls::member_args));
        }
        let services = file.service.unwrap_or_else(default_services);
        let mut procs: Vec<Proc> = Vec::new();
        for (i, s) in services.iter().enumerate() {
            if s.name.is_empty() || s.command.is_empty() {
                bail!(
                    "{}: service[{i}]: name and command must not be empty",
                    path.display()
                );
            }
            if procs.iter().any(|p| p.label == s.name) || s.name == "gateway" {
                bail!(
                    "{}: service[{i}].name: duplicate {:?}",
                    path.display(),
                    s.name
                );
            }
            let mut args = s.command.clone();
            args.extend(s.args.iter().cloned());
            args.push(registry_address.clone());
            args.extend(client_tls.iter().cloned());
            procs.push(Proc {
                label: s.name.clone(),
                args,
            });
        }
        let mut gateway = gateway_proc(path, &file.gateway, &registry_address)?;
        gateway.proc.args.extend(client_tls);
        Ok(Plan {
            backend: file.registry.backend,
            endpoints,
            members,
            services: procs,
            gateway,
            tls: auto_tls,
        })
    }

    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub(crate) fn gateway_url(&self) -> String {
        format!("http://{}", self.gateway.connect)
    }
}

fn embedded_members(
    path: &Path,
    text: &str,
    registry: &RegistrySection,
) -> anyhow::Result<(Vec<MemberProc>, Vec<String>)> {
    if !registry.endpoints.is_empty() {
        bail!(
            "{}: registry.endpoints: only with backend = \"etcd\" (the embedded registry uses the [[member]] client URLs)",
            path.display()
        );
    }
    let cluster = registry_node::ClusterFile::parse(path, text)?;
    let config = config_arg(path);
    let members: Vec<MemberProc> = cluster
        .members
        .iter()
        .map(|m| MemberProc {
            proc: Proc {
                label: m.name.clone(),
                args: ["registry-node", "--config", &config, "--name", &m.name]
                    .map(str::to_owned)
                    .to_vec(),
            },
            client_url: m.client_url.clone(),
            peer_url: m.peer_url.clone(),
        })
        .collect();
    let endpoints = members.iter().map(|m| m.client_url.clone()).collect();
    Ok((members, endpoints))
}

fn config_arg(path: &Path) -> String {
    let abs: PathBuf = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    abs.display().to_string()
}

fn gateway_proc(
    path: &Path,
    g: &GatewaySection,
    registry_address: &str,
) -> anyhow::Result<GatewayProc> {
    let listen: SocketAddr = g
        .address
        .parse()
        .with_context(|| format!("{}: gateway.address {:?}", path.display(), g.address))?;
    let connect = match listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
        }
        a => a,
    };
    if !g.ready_path.starts_with('/') {
        bail!("{}: gateway.ready_path must start with /", path.display());
    }
    let mut args = vec![
        "api".to_owned(),
        format!("--handler={}", g.handler),
        format!("--address={}", g.address),
    ];
    args.extend(g.args.iter().cloned());
    args.push(registry_address.to_owned());
    Ok(GatewayProc {
        proc: Proc {
            label: "gateway".to_owned(),
            args,
        },
        connect,
        ready_path: g.ready_path.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBERS: &str = r#"
[cluster]
token = "t"
data_dir = "data"

[[member]]
name = "cd0"
client_url = "http://127.0.0.1:2379"
peer_url = "http://127.0.0.1:2380"
"#;

    #[test]
    fn the_default_file_is_the_seeds_topology() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster.toml");
        let plan = Plan::load(&path).expect("default cluster.toml");
        assert_eq!(plan.backend, Backend::Embedded);
        assert_eq!(plan.members.len(), 3);
        let labels: Vec<_> = plan.services.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["srv-one", "srv-two", "api-one", "api-two"]);
        assert_eq!(plan.gateway_url(), "http://127.0.0.1:8080");
        let reg =
            "--registry_address=http://127.0.0.1:2379,http://127.0.0.1:2479,http://127.0.0.1:2579";
        assert_eq!(plan.services[0].args.last().map(String::as_str), Some(reg));
        registry_node::ClusterFile::load(&path).expect("registry-node still accepts it");
    }

    #[test]
    fn defaults_when_sections_are_absent() {
        let plan = Plan::parse(Path::new("/x/c.toml"), MEMBERS).expect("valid");
        assert_eq!(plan.services.len(), 4);
        assert_eq!(
            plan.services[0].args[..4],
            ["greeter", "srv", "--name", "one"]
        );
        assert_eq!(
            plan.members[0].proc.args,
            ["registry-node", "--config", "/x/c.toml", "--name", "cd0"]
        );
        assert_eq!(
            plan.gateway.proc.args[..3],
            ["api", "--handler=api", "--address=127.0.0.1:8080"]
        );
    }

    #[test]
    fn etcd_backend_starts_no_member() {
        let text = r#"
[registry]
backend = "etcd"
endpoints = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]

[[service]]
name = "srv-one"
command = ["greeter", "srv", "--name", "one"]
args = ["--register_ttl=5"]

[gateway]
address = "[::]:9090"
"#;
        let plan = Plan::parse(Path::new("c.toml"), text).expect("valid");
        assert!(plan.members.is_empty());
        assert_eq!(
            plan.services[0].args,
            [
                "greeter",
                "srv",
                "--name",
                "one",
                "--register_ttl=5",
                "--registry_address=http://10.0.0.1:2379,http://10.0.0.2:2379"
            ]
        );
        assert_eq!(plan.gateway_url(), "http://[::1]:9090");
    }

    #[test]
    fn mistakes_are_named() {
        let p = Path::new("c.toml");
        let e = Plan::parse(p, "[registry]\nbackend = \"etcd\"\n").expect_err("no endpoints");
        assert!(format!("{e:#}").contains("registry.endpoints"), "{e:#}");
        let e = Plan::parse(p, &format!("{MEMBERS}\n[registry]\nbackend = \"zk\"\n"))
            .expect_err("unknown backend");
        assert!(format!("{e:#}").contains("zk"), "{e:#}");
        let e =
            Plan::parse(p, &format!("{MEMBERS}\n[gateway]\nadress = \"x\"\n")).expect_err("typo");
        assert!(format!("{e:#}").contains("adress"), "{e:#}");
        let dup = "[[service]]\nname = \"a\"\ncommand = [\"x\"]\n";
        let e = Plan::parse(p, &format!("{MEMBERS}\n{dup}{dup}")).expect_err("duplicate");
        assert!(format!("{e:#}").contains("duplicate"), "{e:#}");
    }
}
