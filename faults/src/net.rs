//! The test network: one network namespace per member (a "host"), each joined by a veth pair
//! to a bridge in the root namespace, in a private /24 this run owns. Clients stay in the root
//! namespace (the bridge's address), so cutting a member off from its peers with iptables
//! rules inside its own namespace leaves every client path intact.
//!
//! Names carry the creating process's pid (`flt<pid>x<seq>...`), so parallel runs never clash
//! and a later run can tell the leftovers of a crashed one (pid gone) from a live run's.
//! Everything is removed on drop, which also runs while a panic unwinds.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};

/// Prefix of every namespace and link a run creates.
const PREFIX: &str = "flt";
/// The marker file of a run directory kept for inspection (a failed run).
pub const KEPT: &str = "KEPT";
/// The runs' /24s are 10.213.N.0/24, N chosen free at creation.
const NET: &str = "10.213";

/// A run's namespaces and bridge.
#[derive(Debug)]
pub struct Net {
    id: String,
    subnet: u8,
    members: usize,
}

impl Net {
    /// Creates a bridge and `members` namespaces, after removing what crashed runs left.
    pub fn create(members: usize) -> anyhow::Result<Net> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        require_root()?;
        // One creation at a time on this machine: the choice of a free /24 and the links made
        // with it must not interleave with another run's.
        let lock_path = std::env::temp_dir().join("faults-net.lock");
        let lock = std::fs::File::create(&lock_path).context("create the network lock file")?;
        lock.lock().context("lock the network lock file")?;
        remove_leftovers();
        let seq = SEQ.fetch_add(1, Ordering::SeqCst) % 100;
        let id = format!("{PREFIX}{}x{seq}", std::process::id());
        let used = sh_out("ip", &["-o", "-4", "addr", "show"])?;
        let start = (std::process::id() as usize + seq as usize * 37) % 250;
        let subnet = (0..250)
            .map(|k| ((start + k) % 250 + 2) as u8)
            .find(|n| !used.contains(&format!("{NET}.{n}.")))
            .context("no free 10.213.N.0/24 for the test network")?;
        let net = Net {
            id,
            subnet,
            members,
        };
        // From here on, drop removes whatever part was made.
        net.build()?;
        drop(lock);
        Ok(net)
    }

    fn build(&self) -> anyhow::Result<()> {
        let br = self.bridge();
        sh("ip", &["link", "add", &br, "type", "bridge"])?;
        sh(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", self.host_addr()),
                "dev",
                &br,
            ],
        )?;
        sh("ip", &["link", "set", &br, "up"])?;
        for i in 0..self.members {
            let ns = self.ns(i);
            let (host, inner) = (format!("{}h{i}", self.id), format!("{}n{i}", self.id));
            sh("ip", &["netns", "add", &ns])?;
            sh(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &inner],
            )?;
            sh("ip", &["link", "set", &inner, "netns", &ns])?;
            sh("ip", &["link", "set", &host, "master", &br, "up"])?;
            let addr = format!("{}/24", self.addr(i));
            sh("ip", &["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            sh("ip", &["-n", &ns, "link", "set", &inner, "up"])?;
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The run's name (`flt<pid>x<n>`); its temporary directory carries it too, so that a
    /// later run can remove the directory of a crashed one.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The namespace of member `i`.
    pub fn ns(&self, i: usize) -> String {
        format!("{}m{i}", self.id)
    }

    fn bridge(&self) -> String {
        format!("{}b", self.id)
    }

    /// The root namespace's address on the bridge (where clients come from).
    pub fn host_addr(&self) -> String {
        format!("{NET}.{}.1", self.subnet)
    }

    /// Member `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("{NET}.{}.{}", self.subnet, 11 + i)
    }

    /// Drops all traffic between member `i` and the members `peers` (both directions), by
    /// rules in `i`'s namespace; the clients' address stays reachable.
    pub fn partition(&self, i: usize, peers: &[usize]) -> anyhow::Result<()> {
        let ns = self.ns(i);
        for &p in peers {
            let peer = self.addr(p);
            for (chain, dir) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
                sh(
                    "ip",
                    &[
                        "netns", "exec", &ns, "iptables", "-w", "-A", chain, dir, &peer, "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Removes every rule from member `i`'s namespace.
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        sh(
            "ip",
            &["netns", "exec", &self.ns(i), "iptables", "-w", "-F"],
        )
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.members {
            remove_ns(&self.ns(i));
        }
        let _ = sh("ip", &["link", "del", &self.bridge()]);
    }
}

/// Fails unless this process may create namespaces (the suite must fail, not skip, without).
fn require_root() -> anyhow::Result<()> {
    let uid = nix::unistd::Uid::effective();
    if !uid.is_root() {
        bail!("the fault suite needs root (network namespaces, iptables); running as uid {uid}");
    }
    for tool in ["ip", "iptables"] {
        if Command::new(tool).arg("-V").output().is_err() {
            bail!("`{tool}` is not installed (apt-get install iproute2 iptables)");
        }
    }
    Ok(())
}

/// Kills whatever still runs in namespace `ns` and deletes it (its veth and rules go with it).
fn remove_ns(ns: &str) {
    if let Ok(pids) = sh_out("ip", &["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = sh("ip", &["netns", "del", ns]);
}

/// The pid a name of ours carries, if it is one of ours: `flt<pid>x...`.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, _) = rest.split_once('x')?;
    pid.parse().ok()
}

/// Removes the namespaces and links of runs whose process is gone (a crashed or killed run).
fn remove_leftovers() {
    let dead = |name: &str| owner_pid(name).is_some_and(|pid| !alive(pid));
    if let Ok(list) = sh_out("ip", &["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if dead(ns) {
                eprintln!("faults: removing namespace {ns} left by a crashed run");
                remove_ns(ns);
            }
        }
    }
    // Temporary directories `faults-<id>-...`, unless a failed run kept them on purpose.
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_prefix("faults-") else {
                continue;
            };
            if dead(id) && !entry.path().join(KEPT).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    if let Ok(list) = sh_out("ip", &["-o", "link", "show"]) {
        for line in list.lines() {
            // "12: flt123x0b: <...>" or "13: flt123x0h0@if12: <...>"
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            if dead(name) {
                let _ = sh("ip", &["link", "del", name]);
            }
        }
    }
}

/// Whether process `pid` runs (a zombie, killed but not yet reaped, does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

fn sh(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    sh_out(cmd, args).map(|_| ())
}

fn sh_out(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("run {cmd}"))?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn names_of_ours_carry_the_owner_pid() {
        assert_eq!(owner_pid("flt1234x0m1"), Some(1234));
        assert_eq!(owner_pid("flt99x12b"), Some(99));
        assert_eq!(owner_pid("flannel0"), None);
        assert_eq!(owner_pid("eth0"), None);
    }
}
