//! `micro call <service> <endpoint> '<json>'`: JSON in, one RPC through micro's client, the
//! response as JSON out (tab-indented, as go-micro's `micro call` prints it).
//!
//! The wire is protobuf, so the request message must be known. A table of known messages maps
//! JSON to them: the endpoint's request type as registered (`Endpoint.request.type`) picks the
//! entry when it names one (`go.api.Request`, `go.micro.srv.greeter.Request`); otherwise the
//! service name does (`go.micro.api.*` takes `go.api.Request`, `go.micro.srv.greeter` its
//! `Request`). The JSON is proto3's mapping (field names as in the `.proto`, maps as objects).
//! Any other service is asked for its messages by gRPC server reflection ([`gateway::reflect`]).

use std::collections::BTreeMap;

use std::time::Duration;

use anyhow::{bail, Context};
use micro::selector::{Kind, SelectorOptions};
use micro::{Client, MicroArgs, Registry, Selector};
use proto::go_api;
use proto::greeter;
use serde::{Deserialize, Serialize};

use gateway::reflect;

/// The request/response pair an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Messages {
    /// `go.micro.srv.greeter.Request` → `Response`.
    Greeter,
    /// `go.api.Request` → `go.api.Response`.
    GoApi,
}

/// Picks the messages from the registered request type, else from the service name.
pub(crate) fn messages_for(service: &str, request_type: Option<&str>) -> Option<Messages> {
    match request_type {
        Some(t) if t.ends_with("go.api.Request") => return Some(Messages::GoApi),
        Some("go.micro.srv.greeter.Request") => return Some(Messages::Greeter),
        _ => {}
    }
    if service.starts_with("go.micro.api.") {
        Some(Messages::GoApi)
    } else if service == "go.micro.srv.greeter" {
        Some(Messages::Greeter)
    } else {
        None
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HelloRequest {
    name: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HelloResponse {
    msg: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Pair {
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ApiRequest {
    method: String,
    path: String,
    header: BTreeMap<String, Pair>,
    get: BTreeMap<String, Pair>,
    post: BTreeMap<String, Pair>,
    body: String,
    url: String,
}

#[derive(Debug, Serialize)]
struct ApiResponse {
    #[serde(rename = "statusCode", skip_serializing_if = "is_zero")]
    status_code: i32,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    header: BTreeMap<String, Pair>,
    #[serde(skip_serializing_if = "String::is_empty")]
    body: String,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

fn pairs(map: BTreeMap<String, Pair>) -> std::collections::HashMap<String, go_api::Pair> {
    map.into_iter()
        .map(|(k, p)| {
            let key = if p.key.is_empty() { k.clone() } else { p.key };
            (
                k,
                go_api::Pair {
                    key,
                    values: p.values,
                },
            )
        })
        .collect()
}

fn from_pairs(map: std::collections::HashMap<String, go_api::Pair>) -> BTreeMap<String, Pair> {
    map.into_iter()
        .map(|(k, p)| {
            (
                k,
                Pair {
                    key: p.key,
                    values: p.values,
                },
            )
        })
        .collect()
}

/// Calls `endpoint` of `service` with the JSON `body`; prints the response.
pub(crate) async fn call(
    micro: &MicroArgs,
    service: &str,
    endpoint: &str,
    body: &str,
) -> anyhow::Result<()> {
    println!("{}", answer(micro, service, endpoint, body).await?);
    Ok(())
}

/// Calls `endpoint` of `service` with the JSON `body`; the response as `micro call` prints it
/// (also the dashboard's call form, `micro web`).
pub(crate) async fn answer(
    micro: &MicroArgs,
    service: &str,
    endpoint: &str,
    body: &str,
) -> anyhow::Result<String> {
    let registry = Registry::new(&micro.registry_options())?;
    let registered = registry.get_service(service).await?;
    if registered.is_empty() {
        bail!("service {service} not found in the registry");
    }
    let request_type = registered
        .iter()
        .flat_map(|s| &s.endpoints)
        .find(|e| e.name == endpoint)
        .and_then(|e| e.request.as_ref())
        .map(|v| v.kind.clone());
    let Some(messages) = messages_for(service, request_type.as_deref()) else {
        // Not a message this binary knows: the service's own descriptors, by reflection.
        return call_by_reflection(micro, registry, service, endpoint, body).await;
    };
    let options = SelectorOptions {
        kind: Kind::Registry,
        ..micro.selector_options()
    };
    let client = Client::new(Selector::new(registry, options), micro.client_options());
    let printed = match messages {
        Messages::Greeter => {
            let req: HelloRequest = parse(body)?;
            let rsp: greeter::Response = client
                .call(service, endpoint, greeter::Request { name: req.name })
                .await?;
            tab_indented(&HelloResponse { msg: rsp.msg })?
        }
        Messages::GoApi => {
            let req: ApiRequest = parse(body)?;
            let req = go_api::Request {
                method: req.method,
                path: req.path,
                header: pairs(req.header),
                get: pairs(req.get),
                post: pairs(req.post),
                body: req.body,
                url: req.url,
            };
            let rsp: go_api::Response = client.call(service, endpoint, req).await?;
            tab_indented(&ApiResponse {
                status_code: rsp.status_code,
                header: from_pairs(rsp.header),
                body: rsp.body,
            })?
        }
    };
    Ok(printed)
}

/// [`gateway::reflect`]: a node of `service` describes `endpoint`, and answers it.
async fn call_by_reflection(
    micro: &MicroArgs,
    registry: Registry,
    service: &str,
    endpoint: &str,
    body: &str,
) -> anyhow::Result<String> {
    let options = SelectorOptions {
        kind: Kind::Registry,
        ..micro.selector_options()
    };
    let node = Selector::new(registry, options)
        .select(service, &[])
        .await
        .map_err(|e| anyhow::anyhow!("{service}: {e}"))?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.address))
        .with_context(|| format!("node address {:?}", node.address))?
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .with_context(|| format!("connect to {service} node {} at {}", node.id, node.address))?;
    let method = reflect::method(channel.clone(), service, endpoint).await?;
    let request = reflect::from_json(&method.input, body)?;
    let path = micro::client::grpc_path(service, endpoint)?;
    let timeout = micro.client_request_timeout;
    let answer = reflect::call(channel, &path, request, method.output, timeout)
        .await
        .map_err(|status| micro::Error::from_status(service, &status))?;
    reflect::to_json(&answer)
}

fn parse<T: for<'de> Deserialize<'de>>(body: &str) -> anyhow::Result<T> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    serde_json::from_str(body).with_context(|| format!("request JSON {body:?}"))
}

/// JSON indented with tabs, as Go's `json.Indent(.., "", "\t")`.
pub(crate) fn tab_indented(value: &impl Serialize) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser)?;
    Ok(String::from_utf8(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_type_first_then_service_name() {
        let api = messages_for("go.micro.api.greeter", None);
        assert_eq!(api, Some(Messages::GoApi));
        let srv = messages_for("go.micro.srv.greeter", Some("Request"));
        assert_eq!(srv, Some(Messages::Greeter));
        let other = messages_for("x", Some("go.api.Request"));
        assert_eq!(other, Some(Messages::GoApi));
        assert_eq!(messages_for("x", Some("Request")), None);
    }

    #[test]
    fn api_request_json_and_response_print() {
        let req: ApiRequest =
            parse(r#"{"method":"GET","get":{"name":{"values":["John"]}}}"#).expect("parse");
        let get = pairs(req.get);
        assert_eq!(get["name"].key, "name");
        assert!(parse::<HelloRequest>(r#"{"nam":"x"}"#).is_err());
        let v = HelloResponse { msg: "hi".into() };
        assert_eq!(tab_indented(&v).expect("indent"), "{\n\t\"msg\": \"hi\"\n}");
    }
}
