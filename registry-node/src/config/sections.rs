//! The sections of the configuration that other modules act on: TLS (`crate::tls` loads
//! it), auto-compaction (`crate::compaction` runs it) and the initial cluster state
//! (`crate::membership::join`). They live here so that the configuration depends on none of
//! those modules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The `[tls]` section of `cluster.toml` (the same names as the flags; paths relative to the
/// file). The flags ([`TlsArgs`]) override it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub auto_tls: bool,
    pub peer_cert_file: Option<PathBuf>,
    pub peer_key_file: Option<PathBuf>,
    pub peer_trusted_ca_file: Option<PathBuf>,
    pub peer_client_cert_auth: bool,
    pub peer_auto_tls: bool,
}

impl TlsSection {
    /// The section with its relative paths taken from `base` (the cluster file's folder).
    pub(crate) fn resolved(&self, base: &Path) -> TlsSection {
        let at = |p: &Option<PathBuf>| p.as_ref().map(|p| base.join(p));
        TlsSection {
            cert_file: at(&self.cert_file),
            key_file: at(&self.key_file),
            trusted_ca_file: at(&self.trusted_ca_file),
            peer_cert_file: at(&self.peer_cert_file),
            peer_key_file: at(&self.peer_key_file),
            peer_trusted_ca_file: at(&self.peer_trusted_ca_file),
            ..self.clone()
        }
    }
}

/// etcd's `--initial-cluster-state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterState {
    /// Form a new cluster with the members listed.
    #[default]
    New,
    /// Join a running cluster that already lists this member (`etcdctl member add`).
    Existing,
}

/// The `[compaction]` section of `cluster.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionSection {
    /// `periodic`, `revision` or `off`.
    pub mode: String,
    /// periodic: a duration (`5m`, `1h`, `90s`; a plain number is hours, as etcd reads it);
    /// revision: how many revisions to keep. `0` turns compaction off.
    pub retention: String,
}

impl Default for CompactionSection {
    fn default() -> Self {
        CompactionSection {
            mode: "periodic".into(),
            retention: "5m".into(),
        }
    }
}

/// What the section means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Off,
    Periodic(Duration),
    Revision(i64),
}

impl CompactionSection {
    pub fn policy(&self) -> Result<Policy, String> {
        let r = self.retention.trim();
        match self.mode.as_str() {
            "off" => Ok(Policy::Off),
            "periodic" => match parse_duration(r)? {
                d if d.is_zero() => Ok(Policy::Off),
                d => Ok(Policy::Periodic(d)),
            },
            "revision" => match r.parse::<i64>() {
                Ok(0) => Ok(Policy::Off),
                Ok(n) if n > 0 => Ok(Policy::Revision(n)),
                _ => Err(format!("{r:?} is not a count of revisions")),
            },
            m => Err(format!("unknown mode {m:?} (periodic, revision or off)")),
        }
    }
}

/// `5m`, `1h`, `90s`, `500ms`, or a plain number of hours.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 5m, 1h)"))?;
    match unit {
        "" | "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("{s:?}: unknown unit {unit:?} (h, m, s or ms)")),
    }
}
