//! go-micro's `registry.Service` and friends, with go-micro's JSON field names, and the etcd key
//! layout of go-micro's etcd registry plugin (`/micro-registry/<service>/<node id>`).
//!
//! Go writes a nil map or slice as `null`; decoding accepts `null` (and a missing field) for every
//! map and list, so values written by real go-micro services decode too.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Prefix of every registry key.
pub const PREFIX: &str = "/micro-registry/";

/// Metadata: string to string, sorted so the JSON is deterministic.
pub type Metadata = BTreeMap<String, String>;

/// A service as go-micro registers it: one value per node, `nodes` holding that node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    #[serde(default = "latest")]
    pub version: String,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
    #[serde(default, deserialize_with = "null_default")]
    pub endpoints: Vec<Endpoint>,
    #[serde(default, deserialize_with = "null_default")]
    pub nodes: Vec<Node>,
}

/// One running instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    /// `host:port`.
    pub address: String,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
}

/// One RPC method (`Say.Hello`) with its request and response shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    #[serde(default)]
    pub request: Option<Value>,
    #[serde(default)]
    pub response: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
}

/// A field tree (`{name, type, values}`), go-micro's description of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Value {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Written as `null` when empty, as Go does for a nil slice.
    #[serde(
        default,
        deserialize_with = "null_default",
        serialize_with = "empty_as_null"
    )]
    pub values: Vec<Value>,
}

fn latest() -> String {
    "latest".to_owned()
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn empty_as_null<S: serde::Serializer>(values: &[Value], s: S) -> Result<S::Ok, S::Error> {
    if values.is_empty() {
        s.serialize_none()
    } else {
        s.collect_seq(values)
    }
}

impl Service {
    /// A service with no endpoints and no nodes, version `latest`.
    pub fn new(name: impl Into<String>) -> Self {
        Service {
            name: name.into(),
            version: latest(),
            metadata: Metadata::new(),
            endpoints: Vec::new(),
            nodes: Vec::new(),
        }
    }

    /// The same service holding only `node`: what one registry value holds.
    pub fn with_only(&self, node: &Node) -> Service {
        Service {
            nodes: vec![node.clone()],
            ..self.clone()
        }
    }
}

impl Node {
    /// A node with a fresh id `<service>-<uuid>` and go-micro's metadata for a gRPC server.
    pub fn new(service: &str, address: impl Into<String>) -> Self {
        let metadata = [
            ("transport", "grpc"),
            ("broker", "http"),
            ("server", "grpc"),
            ("registry", "etcd"),
            ("protocol", "grpc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Node {
            id: format!("{service}-{}", uuid::Uuid::new_v4()),
            address: address.into(),
            metadata,
        }
    }
}

impl Endpoint {
    /// A unary endpoint (`stream: false`) with request and response message names.
    pub fn unary(name: impl Into<String>, request: &str, response: &str) -> Self {
        Endpoint {
            name: name.into(),
            request: Some(Value::message(request, &[])),
            response: Some(Value::message(response, &[])),
            metadata: [("stream".to_owned(), "false".to_owned())].into(),
        }
    }
}

impl Value {
    /// A message value named after its type (as go-micro's extractor does) with scalar fields
    /// `(name, type)`.
    pub fn message(kind: &str, fields: &[(&str, &str)]) -> Self {
        Value {
            name: kind.to_owned(),
            kind: kind.to_owned(),
            values: fields
                .iter()
                .map(|(name, kind)| Value {
                    name: (*name).to_owned(),
                    kind: (*kind).to_owned(),
                    values: Vec::new(),
                })
                .collect(),
        }
    }
}

fn escape(part: &str) -> String {
    part.replace('/', "-")
}

/// The key prefix of every node of `service`: `/micro-registry/<service>/`.
pub fn service_prefix(service: &str) -> String {
    service_prefix_in(PREFIX, service)
}

/// [`service_prefix`] under another registry prefix (`/micro/registry/`).
pub fn service_prefix_in(prefix: &str, service: &str) -> String {
    format!("{prefix}{}/", escape(service))
}

/// The key of one node: `/micro-registry/<service>/<node id>`.
pub fn node_key(service: &str, node_id: &str) -> String {
    node_key_in(PREFIX, service, node_id)
}

/// [`node_key`] under another registry prefix.
pub fn node_key_in(prefix: &str, service: &str, node_id: &str) -> String {
    format!("{}{}", service_prefix_in(prefix, service), escape(node_id))
}

/// The end of the etcd range covering every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `(service, node id)` of a registry key, as escaped in the key.
pub fn split_key(key: &[u8]) -> Option<(String, String)> {
    split_key_in(PREFIX, key)
}

/// [`split_key`] under another registry prefix.
pub fn split_key_in(prefix: &str, key: &[u8]) -> Option<(String, String)> {
    let key = std::str::from_utf8(key).ok()?;
    let rest = key.strip_prefix(prefix)?;
    let (service, node) = rest.split_once('/')?;
    Some((service.to_owned(), node.to_owned()))
}

/// Merges per-node values into one service per version, as go-micro's `GetService` returns.
pub fn group_by_version(values: impl IntoIterator<Item = Service>) -> Vec<Service> {
    let mut out: Vec<Service> = Vec::new();
    for svc in values {
        match out
            .iter_mut()
            .find(|s| s.name == svc.name && s.version == svc.version)
        {
            Some(existing) => {
                for node in svc.nodes {
                    existing.nodes.retain(|n| n.id != node.id);
                    existing.nodes.push(node);
                }
            }
            None => out.push(svc),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_go_micro() {
        assert_eq!(
            node_key("go.micro.srv.greeter", "go.micro.srv.greeter-1"),
            "/micro-registry/go.micro.srv.greeter/go.micro.srv.greeter-1"
        );
        assert_eq!(node_key("a/b", "c/d"), "/micro-registry/a-b/c-d");
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(
            split_key(b"/micro-registry/s/n-1"),
            Some(("s".to_owned(), "n-1".to_owned()))
        );
    }

    #[test]
    fn json_field_names_and_null_values() {
        let mut svc = Service::new("go.micro.srv.greeter");
        svc.endpoints
            .push(Endpoint::unary("Say.Hello", "Request", "Response"));
        let node = Node::new(&svc.name, "127.0.0.1:1");
        let json: serde_json::Value = serde_json::to_value(svc.with_only(&node)).expect("encode");
        assert_eq!(json["version"], "latest");
        assert_eq!(json["endpoints"][0]["request"]["type"], "Request");
        assert!(json["endpoints"][0]["request"]["values"].is_null());
        assert_eq!(json["endpoints"][0]["metadata"]["stream"], "false");
        assert_eq!(json["nodes"][0]["metadata"]["protocol"], "grpc");
    }

    #[test]
    fn decodes_go_nulls() {
        let text = r#"{"name":"s","version":"v1","metadata":null,"endpoints":null,
            "nodes":[{"id":"s-1","address":"h:1","metadata":null}]}"#;
        let svc: Service = serde_json::from_str(text).expect("decode");
        assert_eq!(svc.nodes[0].id, "s-1");
        assert!(svc.metadata.is_empty() && svc.endpoints.is_empty());
    }

    #[test]
    fn groups_nodes_by_version() {
        let a = Service::new("s").with_only(&Node::new("s", "h:1"));
        let b = Service::new("s").with_only(&Node::new("s", "h:2"));
        let grouped = group_by_version([a, b]);
        assert_eq!(grouped.len(), 1);
        assert_eq!(grouped[0].nodes.len(), 2);
    }
}
