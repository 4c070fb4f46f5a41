//! `greeter api`: the API service `go.micro.api.greeter`, endpoint `Say.Hello`, behind the
//! gateway. It takes the HTTP request as a `go.api.Request`, reads `name` from the query, asks a
//! backend (through the client's cache selector) and answers a `go.api.Response`:
//!
//! ```text
//!   gateway ──go.api.Request{get: name=John}──► api one ──Say.Hello{name}──► srv one|two
//!           ◄──{statusCode: 200, body: {"api":"api one","message":"Hello John srv two. rand:x"}}
//! ```

use micro::registry::Endpoint;
use micro::Client;
use proto::go_api;
use proto::greeter as srv;
use serde::Serialize;

/// The code micro-build wrote for `go.micro.api.greeter` (`proto/api.proto`).
mod pb {
    // Generated: only what is re-exported below is public.
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    micro::include_proto!("go.micro.api.greeter");
}

pub use pb::{register_say_handler, SayClient, SayHandler};

/// The API service's name.
pub const SERVICE: &str = "go.micro.api.greeter";
/// Its one endpoint.
pub const ENDPOINT: &str = "Say.Hello";

/// The handler of one api instance.
#[derive(Debug, Clone)]
pub struct Api {
    /// `one` or `two`: which instance answered.
    instance: String,
    backend: crate::srv::SayClient,
}

/// The JSON body of a successful answer, fields in the demo's order.
#[derive(Debug, Serialize)]
struct Answer<'a> {
    api: String,
    message: &'a str,
}

impl Api {
    pub fn new(instance: impl Into<String>, client: Client) -> Self {
        Api {
            instance: instance.into(),
            backend: crate::srv::SayClient::new(crate::srv::SERVICE, &client),
        }
    }
}

impl SayHandler for Api {
    /// `Say.Hello`: go-micro's BadRequest without a name, the backend's error if it fails.
    #[tracing::instrument(level = "debug", skip_all, fields(instance = %self.instance))]
    async fn hello(&self, request: go_api::Request) -> Result<go_api::Response, micro::Error> {
        let name = request
            .get
            .get("name")
            .map(|pair| pair.values.join(" "))
            .unwrap_or_default();
        if name.trim().is_empty() {
            return Err(micro::Error::bad_request(SERVICE, "Name cannot be blank"));
        }
        let reply = self.backend.hello(srv::Request { name }).await?;
        let answer = Answer {
            api: format!("api {}", self.instance),
            message: &reply.msg,
        };
        let body = serde_json::to_string(&answer).map_err(|e| {
            micro::Error::internal_server_error(SERVICE, format!("encode answer: {e}"))
        })?;
        Ok(go_api::Response {
            status_code: 200,
            header: Default::default(),
            body,
        })
    }
}

/// The registered endpoints: `go.api.Request` in, `go.api.Response` out, with their fields.
pub fn endpoints() -> Vec<Endpoint> {
    pb::say_endpoints()
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro::registry::{Registry, RegistryOptions};
    use micro::{ClientOptions, Selector, SelectorOptions};

    fn api() -> Api {
        // Nothing listens on port 1: any call that reaches the client fails.
        let registry =
            Registry::new(&RegistryOptions::new(vec!["127.0.0.1:1".into()])).expect("client");
        let client = Client::new(
            Selector::new(registry, SelectorOptions::default()),
            ClientOptions::default(),
        );
        Api::new("one", client)
    }

    fn query(pairs: &[(&str, &[&str])]) -> go_api::Request {
        let mut request = go_api::Request::default();
        for (key, values) in pairs {
            request.get.insert(
                (*key).to_owned(),
                go_api::Pair {
                    key: (*key).to_owned(),
                    values: values.iter().map(|v| (*v).to_owned()).collect(),
                },
            );
        }
        request
    }

    #[tokio::test]
    async fn missing_or_blank_name_is_go_micros_bad_request() {
        let expected = r#"{"id":"go.micro.api.greeter","code":400,"detail":"Name cannot be blank","status":"Bad Request"}"#;
        for request in [
            query(&[]),
            query(&[("name", &[])]),
            query(&[("name", &[" "])]),
        ] {
            let err = api().hello(request).await.expect_err("no name");
            assert_eq!(err.to_json(), expected);
        }
    }

    #[test]
    fn answer_is_compact_json_in_the_demos_order() {
        let answer = Answer {
            api: "api two".into(),
            message: "Hello John srv one. rand:R",
        };
        assert_eq!(
            serde_json::to_string(&answer).expect("json"),
            r#"{"api":"api two","message":"Hello John srv one. rand:R"}"#
        );
    }

    /// The registered JSON is what micro registered before the endpoints were generated.
    #[test]
    fn endpoints_are_the_hand_written_ones() {
        let json = serde_json::to_string(&endpoints()).expect("json");
        let field = |name: &str, kind: &str| {
            format!(r#"{{"name":"{name}","type":"{kind}","values":null}}"#)
        };
        let pair = "map[string]*Pair";
        let request = [
            field("method", "string"),
            field("path", "string"),
            field("header", pair),
            field("get", pair),
            field("post", pair),
            field("body", "string"),
            field("url", "string"),
        ]
        .join(",");
        let response = [
            field("statusCode", "int32"),
            field("header", pair),
            field("body", "string"),
        ]
        .join(",");
        assert_eq!(
            json,
            format!(
                r#"[{{"name":"Say.Hello","request":{{"name":"Request","type":"Request","values":[{request}]}},"response":{{"name":"Response","type":"Response","values":[{response}]}},"metadata":{{"stream":"false"}}}}]"#
            )
        );
    }
}
