//! The sections of `cluster.toml` that `micro up` reads, as serde sees them (unknown fields
//! are mistakes); [`super::Plan::parse`] validates them into processes.

use serde::Deserialize;

/// The whole file as `micro up` sees it: the registry's own sections are checked by
/// registry-node's `ClusterFile` (only when members are started), so they stay opaque here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpFile {
    #[serde(default)]
    pub(super) cluster: Option<toml::Value>,
    #[serde(default, rename = "raft")]
    _raft: Option<toml::Value>,
    #[serde(default, rename = "compaction")]
    _compaction: Option<toml::Value>,
    #[serde(default, rename = "member")]
    _member: Option<toml::Value>,
    #[serde(default)]
    pub(super) registry: RegistrySection,
    #[serde(default)]
    pub(super) service: Option<Vec<ServiceSection>>,
    #[serde(default)]
    pub(super) gateway: GatewaySection,
}

/// Where the registry is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// The file's `[[member]]`s, started by `micro up`.
    #[default]
    Embedded,
    /// An etcd cluster already running at `endpoints`.
    Etcd,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RegistrySection {
    #[serde(default)]
    pub(super) backend: Backend,
    #[serde(default)]
    pub(super) endpoints: Vec<String>,
}

/// One service instance: a role of the `micro` binary.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceSection {
    /// Label of the process in logs (`[srv-one] ...`).
    pub(crate) name: String,
    /// Arguments of the `micro` binary, e.g. `["greeter", "srv", "--name", "one"]`.
    pub(crate) command: Vec<String>,
    /// Extra arguments appended after `command`.
    #[serde(default)]
    pub(crate) args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GatewaySection {
    #[serde(default = "default_gateway_address")]
    pub(super) address: String,
    #[serde(default = "default_handler")]
    pub(super) handler: String,
    /// The request that must answer 200 before the system counts as up.
    #[serde(default = "default_ready_path")]
    pub(super) ready_path: String,
    #[serde(default)]
    pub(super) args: Vec<String>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            address: default_gateway_address(),
            handler: default_handler(),
            ready_path: default_ready_path(),
            args: Vec::new(),
        }
    }
}

fn default_gateway_address() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_handler() -> String {
    "api".to_owned()
}

fn default_ready_path() -> String {
    "/greeter/say/hello?name=John".to_owned()
}
