//! `--handler=rpc`, go-micro's rpc handler: the path names the service and endpoint as for
//! `--handler=api`, the request is the endpoint's own message as JSON (the body, or the query's
//! parameters when there is no body), and the answer is its response message as JSON. The
//! messages come from the service's gRPC server reflection ([`crate::reflect`]), so any service
//! that serves it can be called without this gateway knowing its types.
//!
//! ```text
//!   POST /catalog/catalog/find {"text":"apple"}  (--namespace=go.micro.srv)
//!     ─► go.micro.srv.catalog, Catalog.Find ─► a node (selector) ─► descriptors (cached per
//!        service and endpoint) ─► JSON → Query ─► /go.micro.srv.catalog.Catalog/Find ─► Result → JSON
//! ```
//!
//! The call goes straight to the selected node on a connection kept per address, bounded by
//! `--client_request_timeout`; micro's client (its retries and pool) decodes into known types
//! only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use micro::Client;
use tonic::transport::Channel;

use crate::error::{GatewayError, API_ID};
use crate::reflect::{self, Method};

/// The rpc handler's state: connections per node address, descriptors per endpoint.
#[derive(Debug)]
pub struct Rpc {
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
    methods: Mutex<HashMap<(String, String), Method>>,
}

fn internal(detail: String) -> GatewayError {
    GatewayError::Service(micro::Error::internal_server_error(API_ID, detail))
}

impl Rpc {
    /// Calls bounded by `timeout` (`--client_request_timeout`).
    pub fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Rpc {
            timeout,
            channels: Mutex::default(),
            methods: Mutex::default(),
        })
    }

    fn channel(&self, address: &str) -> Result<Channel, GatewayError> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| internal("connection table poisoned".to_owned()))?;
        if let Some(channel) = channels.get(address) {
            return Ok(channel.clone());
        }
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| internal(format!("node address {address:?}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    async fn method(
        &self,
        channel: Channel,
        service: &str,
        endpoint: &str,
    ) -> Result<Method, GatewayError> {
        let key = (service.to_owned(), endpoint.to_owned());
        if let Some(m) = self.methods.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(m);
        }
        let method = reflect::method(channel, service, endpoint)
            .await
            .map_err(|e| internal(format!("{e:#}")))?;
        if let Ok(mut methods) = self.methods.lock() {
            methods.insert(key, method.clone());
        }
        Ok(method)
    }

    /// The answer to `payload` (JSON) for `endpoint` of `service`, a node picked by `client`'s
    /// selector.
    pub async fn serve(
        &self,
        client: &Client,
        service: &str,
        endpoint: &str,
        payload: &str,
    ) -> Result<Response, GatewayError> {
        let node = client
            .selector()
            .select(service, &[])
            .await
            .map_err(|_| GatewayError::NotFound)?;
        let channel = self.channel(&node.address)?;
        let method = self.method(channel.clone(), service, endpoint).await?;
        let request = reflect::from_json(&method.input, payload).map_err(|e| {
            GatewayError::Service(micro::Error::bad_request(API_ID, format!("{e:#}")))
        })?;
        let path = micro::client::grpc_path(service, endpoint).map_err(GatewayError::Service)?;
        let answer = reflect::call(channel, &path, request, method.output, self.timeout)
            .await
            .map_err(|status| {
                if status.code() == tonic::Code::Unavailable {
                    // A node that went away: no connection kept for it (nodes come and go).
                    if let Ok(mut channels) = self.channels.lock() {
                        channels.remove(&node.address);
                    }
                }
                if status.code() == tonic::Code::DeadlineExceeded
                    && !micro::Error::is_carried_by(&status)
                {
                    GatewayError::Service(micro::Error::timeout(
                        micro::client::CLIENT_ID,
                        format!("call {service} timed out after {:?}", self.timeout),
                    ))
                } else {
                    GatewayError::Service(micro::Error::from_status(service, &status))
                }
            })?;
        let json = reflect::to_compact_json(&answer).map_err(|e| internal(format!("{e:#}")))?;
        let mut response = (StatusCode::OK, json).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(response)
    }
}

/// The request message's JSON: the body if there is one, else the query's parameters as
/// strings (the first value of each), as go-micro's handler reads a GET.
pub fn payload(query: Option<&str>, body: &[u8]) -> Result<String, GatewayError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        return String::from_utf8(body.to_vec()).map_err(|_| {
            GatewayError::Service(micro::Error::bad_request(API_ID, "body is not UTF-8"))
        });
    }
    let mut object = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        object
            .entry(k.into_owned())
            .or_insert_with(|| serde_json::Value::String(v.into_owned()));
    }
    Ok(serde_json::Value::Object(object).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_the_body_else_the_query() {
        let p = |q: Option<&str>, b: &str| payload(q, b.as_bytes()).expect("payload");
        assert_eq!(p(Some("text=x"), r#"{"text":"y"}"#), r#"{"text":"y"}"#);
        assert_eq!(
            p(Some("text=a%20b&text=c&n=1"), " "),
            r#"{"n":"1","text":"a b"}"#
        );
        assert_eq!(p(None, ""), "{}");
        assert!(payload(None, &[0xff]).is_err());
    }
}
