//! `micro up`: the whole demo from one command.
//!
//! ```text
//!  cluster.toml ─► Plan ─► members cd0 cd1 cd2 ──(each answers a linearizable read)──┐
//!                          srv-one, srv-two, api-one, api-two ◄───────────────────────┘
//!                          (each started once the previous one's node is registered)
//!                          gateway ──(GET ready_path answers 200)──► "[up] ready" + summary
//!  Ctrl-C / SIGTERM ─► gateway, then every service (they deregister), then the members
//! ```
//!
//! Every child is this same binary in another role. A child that exits during start-up stops
//! the rest and fails `micro up`; afterwards an exit is reported and the rest keeps running.

mod child;
mod config;
mod ready;
mod tls;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use micro::{Registry, RegistryOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use child::PARENT_PIPE_ENV;
use child::{stop_all, Child};
pub(crate) use config::{Backend, Plan};
use ready::NodeEntry;

/// `micro up` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// The cluster file: registry members, backend, services and gateway.
    #[arg(long, default_value = "cluster.toml")]
    pub config: PathBuf,
    /// Bound on each start-up step (a member healthy, a service registered, the gateway up).
    #[arg(long, default_value_t = 60)]
    pub step_timeout_secs: u64,
}

/// How long a child may take to stop after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(15);

/// The children, by kind, in start order.
struct Supervisor {
    exe: PathBuf,
    shutdown: CancellationToken,
    step_timeout: Duration,
    members: Vec<Child>,
    services: Vec<(Child, Option<NodeEntry>)>,
    gateway: Vec<Child>,
}

/// Runs `micro up` until Ctrl-C or SIGTERM. `flags`: go-micro's flags given on `micro up`'s
/// own command line (`micro --register_ttl=5 up`), as `--name=value` words: every service and
/// the gateway get them (see [`forward`]).
pub(crate) async fn run(args: UpArgs, flags: &[String]) -> anyhow::Result<()> {
    let mut plan = Plan::load(&args.config)?;
    forward(&mut plan, flags);
    if let Some(tls) = &plan.tls {
        tls.write()?;
        println!(
            "[up] TLS: a throw-away CA and certificates in {}",
            tls.dir.display()
        );
    }
    let mut sup = Supervisor {
        exe: std::env::current_exe()?,
        shutdown: registry_node::cli::signal_token()?,
        step_timeout: Duration::from_secs(args.step_timeout_secs),
        members: Vec::new(),
        services: Vec::new(),
        gateway: Vec::new(),
    };
    let started = sup.start(&plan).await;
    match &started {
        Ok(true) => {
            sup.print_summary(&plan);
            sup.watch().await;
        }
        Ok(false) => println!("[up] interrupted during start-up"),
        Err(e) => println!("[up] start-up failed: {e:#}"),
    }
    sup.stop().await;
    started.map(|_| ())
}

impl Supervisor {
    /// Starts everything in order; `false` if interrupted.
    async fn start(&mut self, plan: &Plan) -> anyhow::Result<bool> {
        for m in &plan.members {
            self.members.push(Child::spawn(&self.exe, &m.proc)?);
        }
        for url in &plan.endpoints {
            let url = url.clone();
            let what = format!("registry member {url} to answer");
            let healthy = self
                .wait_until(&what, || {
                    let url = url.clone();
                    let tls = plan.tls.as_ref().map(tls::AutoTls::client_options);
                    async move {
                        micro::registry::member_healthy_with(&url, tls.as_ref())
                            .await
                            .then_some(())
                    }
                })
                .await?;
            if healthy.is_none() {
                return Ok(false);
            }
        }
        println!("[up] registry ready at {}", plan.endpoints.join(","));
        let registry = Registry::new(&RegistryOptions {
            tls: plan.tls.as_ref().map(tls::AutoTls::client_options),
            ..RegistryOptions::new(plan.endpoints.clone())
        })?;
        for proc in &plan.services {
            let Some(before) = self
                .wait_until("the registry to list services", || {
                    ready::registered_nodes(&registry)
                })
                .await?
            else {
                return Ok(false);
            };
            self.services.push((Child::spawn(&self.exe, proc)?, None));
            let what = format!("{} to register", proc.label);
            let Some(node) = self
                .wait_until(&what, || new_node(&registry, &before))
                .await?
            else {
                return Ok(false);
            };
            println!("[up] {} registered {} at {}", proc.label, node.1, node.2);
            if let Some(last) = self.services.last_mut() {
                last.1 = Some(node);
            }
        }
        self.gateway
            .push(Child::spawn(&self.exe, &plan.gateway.proc)?);
        let (addr, path) = (plan.gateway.connect, plan.gateway.ready_path.clone());
        let what = format!("the gateway to answer GET {path} with 200");
        let ok = self
            .wait_until(&what, || {
                let path = path.clone();
                async move { ready::gateway_ok(addr, &path).await.then_some(()) }
            })
            .await?;
        Ok(ok.is_some())
    }

    /// Polls `check` until it gives a value (`Some(v)`), the shutdown signal (`None`), a child
    /// exit or the step timeout (errors).
    async fn wait_until<T, F, Fut>(&mut self, what: &str, mut check: F) -> anyhow::Result<Option<T>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + self.step_timeout;
        loop {
            if let Some((label, pid, status)) = self.first_exit() {
                bail!("{label} (pid {pid}) exited during start-up ({status}) while waiting for {what}");
            }
            if self.shutdown.is_cancelled() {
                return Ok(None);
            }
            if let Some(v) = check().await {
                return Ok(Some(v));
            }
            if Instant::now() >= deadline {
                bail!("timed out after {:?} waiting for {what}", self.step_timeout);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }

    fn all_children(&mut self) -> impl Iterator<Item = &mut Child> {
        self.members
            .iter_mut()
            .chain(self.services.iter_mut().map(|(c, _)| c))
            .chain(self.gateway.iter_mut())
    }

    /// The first child found to have exited since the last look.
    fn first_exit(&mut self) -> Option<(String, u32, std::process::ExitStatus)> {
        self.all_children()
            .find_map(|c| c.newly_exited().map(|s| (c.label.clone(), c.pid, s)))
    }

    /// Reports children that exit, until Ctrl-C or SIGTERM.
    async fn watch(&mut self) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            for c in self.all_children() {
                if let Some(status) = c.newly_exited() {
                    println!("[up] {} (pid {}) exited ({status})", c.label, c.pid);
                }
            }
        }
    }

    /// Gateway, then every service (deregistering), then the registry members.
    async fn stop(&mut self) {
        println!("[up] stopping");
        stop_all(&mut self.gateway, GRACE).await;
        let mut services: Vec<Child> = self.services.drain(..).map(|(c, _)| c).collect();
        stop_all(&mut services, GRACE).await;
        stop_all(&mut self.members, GRACE).await;
        println!("[up] all stopped");
    }

    fn print_summary(&self, plan: &Plan) {
        let pid = |children: &[Child], label: &str| {
            children
                .iter()
                .find(|c| c.label == label)
                .map_or(0, |c| c.pid)
        };
        println!("[up] ready");
        match plan.backend {
            Backend::Embedded => {
                for m in &plan.members {
                    println!(
                        "[up]   registry member {}: client {}  peer {}  (pid {})",
                        m.proc.label,
                        m.client_url,
                        m.peer_url,
                        pid(&self.members, &m.proc.label)
                    );
                }
            }
            Backend::Etcd => println!("[up]   registry: etcd at {}", plan.endpoints.join(",")),
        }
        for (c, node) in &self.services {
            if let Some((service, id, address)) = node {
                println!(
                    "[up]   {}: {service} node {id} at {address}  (pid {})",
                    c.label, c.pid
                );
            }
        }
        println!(
            "[up]   gateway: {}  (pid {})",
            plan.gateway_url(),
            pid(&self.gateway, "gateway")
        );
        println!(
            "[up]   try: curl '{}{}'",
            plan.gateway_url(),
            plan.gateway.ready_path
        );
        let certs = plan
            .tls
            .as_ref()
            .map(|t| format!(" {}", t.etcdctl_args()))
            .unwrap_or_default();
        println!(
            "[up]   and: etcdctl --endpoints={}{certs} lease list",
            plan.endpoints.join(",")
        );
        println!(
            "[up] Ctrl-C stops the gateway, the services (they deregister), then the registry"
        );
    }
}

/// A node registered now that was not in `before`.
async fn new_node(registry: &Registry, before: &BTreeSet<NodeEntry>) -> Option<NodeEntry> {
    let now = ready::registered_nodes(registry).await?;
    now.difference(before).next().cloned()
}

/// Flags that name something one child alone can have (the registry the file names, a port to
/// listen on): never handed to every child. The cluster file gives them per child.
const PER_CHILD: [&str; 3] = [
    "--registry_address",
    "--server_address",
    "--metrics_address",
];

/// Appends go-micro's `flags` (`--name=value`) to every service's and the gateway's command
/// line, except [`PER_CHILD`] flags and a flag the file already gives that child (the file is
/// the more specific; clap refuses a flag given twice).
fn forward(plan: &mut Plan, flags: &[String]) {
    let children = plan
        .services
        .iter_mut()
        .chain(std::iter::once(&mut plan.gateway.proc));
    for child in children {
        for flag in flags {
            let name = flag.split_once('=').map_or(flag.as_str(), |(n, _)| n);
            let given = child
                .args
                .iter()
                .any(|a| a == name || a.starts_with(&format!("{name}=")));
            if !PER_CHILD.contains(&name) && !given {
                child.args.push(flag.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_reach_services_and_gateway_unless_the_file_gives_them() {
        let text = r#"
[registry]
backend = "etcd"
endpoints = ["http://127.0.0.1:2379"]

[[service]]
name = "srv-one"
command = ["greeter", "srv", "--name", "one"]
args = ["--register_ttl=9"]
"#;
        let mut plan = Plan::parse(std::path::Path::new("c.toml"), text).expect("plan");
        let flags = [
            "--register_ttl=5".to_owned(),
            "--selector=registry".to_owned(),
            "--registry_address=http://10.9.9.9:2379".to_owned(),
            "--metrics_address=127.0.0.1:9100".to_owned(),
            "--server_address=127.0.0.1:9090".to_owned(),
        ];
        forward(&mut plan, &flags);
        let srv = &plan.services[0].args;
        assert!(srv.contains(&"--register_ttl=9".to_owned()), "{srv:?}");
        assert!(!srv.contains(&"--register_ttl=5".to_owned()), "{srv:?}");
        assert!(srv.contains(&"--selector=registry".to_owned()), "{srv:?}");
        assert!(!srv.iter().any(|a| a.contains("10.9.9.9")), "{srv:?}");
        assert!(
            !srv.iter()
                .any(|a| a.contains(":9100") || a.contains(":9090")),
            "{srv:?}"
        );
        let gateway = &plan.gateway.proc.args;
        assert!(
            gateway.contains(&"--register_ttl=5".to_owned()),
            "{gateway:?}"
        );
    }
}
