//! `--handler=http` (and `proxy`, its older name): go-micro's reverse proxy. The path's first
//! segment names the service ([`crate::resolve::proxy_route`], in the namespace, e.g.
//! `go.micro.web`); the request goes unchanged (method, path and query, headers but the
//! hop-by-hop ones, body) to a node of that service over HTTP/1.1, and its answer comes back
//! as it is. Connections to nodes are pooled (hyper's client); a node that cannot be reached is
//! go-micro's 502, one that does not answer within `--client_request_timeout` a 504.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderName, Request, Response};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use micro::Client;

use crate::error::{GatewayError, API_ID};

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), which a proxy
/// drops in both directions, as Go's `httputil.ReverseProxy` does.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The reverse proxy's HTTP client.
#[derive(Debug, Clone)]
pub struct Proxy {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in &HOP_BY_HOP {
        out.remove(name);
    }
    out
}

fn error(code: i32, detail: String) -> GatewayError {
    GatewayError::Service(micro::Error::new(API_ID, code, detail))
}

impl Proxy {
    /// A proxy whose calls are bounded by `timeout` (`--client_request_timeout`).
    pub fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        Proxy {
            http: HttpClient::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends `head` and `body` to a node of `service` (picked by `client`'s selector) and
    /// returns its answer.
    pub async fn serve(
        &self,
        client: &Client,
        service: &str,
        head: &axum::http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Body>, GatewayError> {
        let node = client
            .selector()
            .select(service, &[])
            .await
            .map_err(|_| GatewayError::NotFound)?;
        let path = head.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let uri = format!("http://{}{path}", node.address);
        let mut request = Request::builder()
            .method(head.method.clone())
            .uri(&uri)
            .body(Full::new(body))
            .map_err(|e| error(500, format!("proxy request to {uri}: {e}")))?;
        *request.headers_mut() = without_hop_by_hop(&head.headers);
        let answer = tokio::time::timeout(self.timeout, self.http.request(request))
            .await
            .map_err(|_| {
                error(
                    504,
                    format!(
                        "{service} node {} did not answer within {:?}",
                        node.address, self.timeout
                    ),
                )
            })?
            .map_err(|e| error(502, format!("{service} node {}: {e}", node.address)))?;
        let (mut parts, incoming) = answer.into_parts();
        parts.headers = without_hop_by_hop(&parts.headers);
        Ok(Response::from_parts(parts, Body::new(incoming)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close".parse().expect("value"));
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().expect("value"));
        h.insert("keep-alive", "timeout=5".parse().expect("value"));
        h.insert(header::CONTENT_TYPE, "text/plain".parse().expect("value"));
        h.insert(header::HOST, "example".parse().expect("value"));
        let out = without_hop_by_hop(&h);
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "host"]);
    }
}
