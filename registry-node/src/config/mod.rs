//! `cluster.toml`: the file form (serde, unknown keys rejected) and its validation into the
//! [`NodeConfig`] a member runs with. Errors name the file, the key and the reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod sections;

pub use sections::{ClusterState, CompactionSection, Policy, TlsSection};

/// The whole file. Sections other than the registry's are read by other binaries (`micro`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub cluster: ClusterSection,
    #[serde(default)]
    pub raft: RaftSection,
    /// Auto-compaction (etcd's `--auto-compaction-*`); on by default, see [`crate::compaction`].
    #[serde(default)]
    pub compaction: CompactionSection,
    /// TLS of the client and peer ports (etcd's flags; see [`crate::tls`]).
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(rename = "member", default)]
    pub members: Vec<MemberSection>,
    /// Registry backend choice and service/gateway layout, used by `micro up`.
    #[serde(default)]
    pub registry: Option<toml::Value>,
    #[serde(rename = "service", default)]
    pub services: Option<toml::Value>,
    #[serde(default)]
    pub gateway: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// As etcd's `--initial-cluster-token`: part of every member and cluster id.
    pub token: String,
    /// Each member keeps its state in `<data_dir>/<name>`; relative to the file's folder.
    pub data_dir: PathBuf,
}

/// Timers and limits; the defaults suit a loaded 2-core machine (etcd: 100 ms heartbeat, 1 s
/// election timeout).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// Take a snapshot (and purge the log behind it) after this many applied entries (etcd's
    /// `--snapshot-count` default: 100,000). Building one encodes the whole key space and its
    /// history on the Raft thread, so it is not taken often; the log kept meanwhile costs 24
    /// bytes of memory per entry plus the bounded cache (`log_cache_*`).
    pub snapshot_logs: u64,
    /// Log entries kept behind a snapshot, so a briefly lagging member needs no snapshot.
    pub logs_to_keep: u64,
    pub max_txn_ops: usize,
    pub max_request_bytes: usize,
    /// How often watches that asked for progress notifications get one when idle.
    pub progress_notify_ms: u64,
    /// Recent raft-log entries kept in memory (raft-log's default: 8,192). Older entries are
    /// read back from the segment files, which only a lagging follower or a restart needs.
    pub log_cache_entries: usize,
    /// Byte budget (encoded size) of that in-memory cache (raft-log's default: 64 MiB).
    pub log_cache_bytes: usize,
    /// Raft entries of batched client writes on their way at once (each entry carries every
    /// write that queued while the earlier ones were in flight).
    pub proposals_in_flight: usize,
    /// etcd's --quota-backend-bytes (default 2 GiB): past it (the store's estimated size,
    /// `mvcc::Store::size_bytes`) the leader raises NOSPACE and writes fail until an operator
    /// frees space (compact, defrag) and disarms it.
    pub quota_backend_bytes: u64,
    /// etcd's --experimental-corrupt-check-time in milliseconds (0: off): how often the leader
    /// compares its HashKV with every member's at the same revision.
    pub corrupt_check_ms: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        RaftSection {
            heartbeat_ms: 100,
            election_timeout_ms: 1000,
            snapshot_logs: 100_000,
            logs_to_keep: 1_000,
            max_txn_ops: 128,
            max_request_bytes: 3 * 512 * 1024,
            progress_notify_ms: 600_000,
            log_cache_entries: 1_024,
            log_cache_bytes: 4 * 1024 * 1024,
            proposals_in_flight: 3,
            quota_backend_bytes: 2 * 1024 * 1024 * 1024,
            corrupt_check_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSection {
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
}

/// One member as every member knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub id: u64,
    pub name: String,
    pub client_url: String,
    pub peer_url: String,
}

/// What one member runs with: validated, addresses parsed, ids derived.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub id: u64,
    pub cluster_id: u64,
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// TLS, paths resolved ([`crate::tls::Tls::build`] checks and loads it at start).
    pub tls: TlsSection,
    pub members: Vec<MemberSpec>,
    pub raft: RaftSection,
    pub compaction: Policy,
    /// etcd's --initial-cluster-state: `existing` joins a running cluster (see
    /// [`crate::membership::join`]); the cluster file's members form a `new` one.
    pub initial_cluster_state: ClusterState,
}

impl NodeConfig {
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.raft.heartbeat_ms)
    }

    /// etcd's minimum lease TTL: 1.5 × election timeout, rounded up to whole seconds.
    pub fn min_lease_ttl(&self) -> i64 {
        (self.raft.election_timeout_ms * 3).div_ceil(2000) as i64
    }

    pub fn member(&self, id: u64) -> Option<&MemberSpec> {
        self.members.iter().find(|m| m.id == id)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: {key}: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

impl ClusterFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let file: ClusterFile = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        file.validate(path)?;
        Ok(file)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            reason,
        };
        if self.members.is_empty() {
            return Err(invalid(
                "member".into(),
                "at least one [[member]] is required".into(),
            ));
        }
        if self.raft.heartbeat_ms == 0 || self.raft.election_timeout_ms < 3 * self.raft.heartbeat_ms
        {
            return Err(invalid(
                "raft.election_timeout_ms".into(),
                "must be at least 3 × raft.heartbeat_ms (and heartbeat > 0)".into(),
            ));
        }
        self.compaction
            .policy()
            .map_err(|r| invalid("compaction".into(), r))?;
        for (i, m) in self.members.iter().enumerate() {
            if m.name.is_empty() {
                return Err(invalid(
                    format!("member[{i}].name"),
                    "must not be empty".into(),
                ));
            }
            if self.members[..i].iter().any(|o| o.name == m.name) {
                return Err(invalid(
                    format!("member[{i}].name"),
                    format!("duplicate {:?}", m.name),
                ));
            }
            url_addr(&m.client_url).map_err(|r| invalid(format!("member[{i}].client_url"), r))?;
            url_addr(&m.peer_url).map_err(|r| invalid(format!("member[{i}].peer_url"), r))?;
        }
        Ok(())
    }

    /// Every member's spec, with ids derived from the token, name and peer URL.
    pub fn member_specs(&self) -> Vec<MemberSpec> {
        self.members
            .iter()
            .map(|m| MemberSpec {
                id: member_id(&self.cluster.token, &m.name, &m.peer_url),
                name: m.name.clone(),
                client_url: m.client_url.clone(),
                peer_url: m.peer_url.clone(),
            })
            .collect()
    }

    /// The config of member `name`; `base` is the folder relative data dirs start from.
    pub fn node_config(&self, path: &Path, name: &str) -> Result<NodeConfig, ConfigError> {
        let Some(m) = self.members.iter().find(|m| m.name == name) else {
            let known: Vec<_> = self.members.iter().map(|m| m.name.as_str()).collect();
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                key: "--name".into(),
                reason: format!("no member named {name:?} (members: {})", known.join(", ")),
            });
        };
        let members = self.member_specs();
        let base = path.parent().unwrap_or(Path::new("."));
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.into(),
            reason,
        };
        Ok(NodeConfig {
            name: name.to_owned(),
            id: member_id(&self.cluster.token, &m.name, &m.peer_url),
            cluster_id: cluster_id(&self.cluster.token, &members),
            client_addr: url_addr(&m.client_url).map_err(|r| invalid("client_url", r))?,
            peer_addr: url_addr(&m.peer_url).map_err(|r| invalid("peer_url", r))?,
            data_dir: base.join(&self.cluster.data_dir).join(name),
            tls: self.tls.resolved(base),
            members,
            raft: self.raft.clone(),
            compaction: self
                .compaction
                .policy()
                .map_err(|r| invalid("compaction", r))?,
            initial_cluster_state: Default::default(),
        })
    }
}

/// `http://host:port`, or `https://host:port` (TLS, [`crate::tls`]) → a socket address to bind.
pub(crate) fn url_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let hostport = rest.trim_end_matches('/');
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport
        .parse()
        .map_err(|e| format!("{url:?} is not http://<ip>:<port>: {e}"))
}

/// FNV-1a: stable across builds and platforms (std's hasher is not).
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h.max(1)
}

/// A member's id, as etcd derives it from its URLs and the cluster token.
pub(crate) fn member_id(token: &str, name: &str, peer_url: &str) -> u64 {
    fnv(&[token.as_bytes(), name.as_bytes(), peer_url.as_bytes()])
}

/// The cluster id: a hash of the sorted member ids and the token.
pub(crate) fn cluster_id(token: &str, members: &[MemberSpec]) -> u64 {
    let mut ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    let bytes: Vec<[u8; 8]> = ids.iter().map(|i| i.to_be_bytes()).collect();
    let mut parts: Vec<&[u8]> = vec![token.as_bytes()];
    parts.extend(bytes.iter().map(|b| b.as_slice()));
    fnv(&parts)
}

#[cfg(test)]
mod tests;
