//! `greeter api`: the API service `go.micro.api.greeter`, endpoint `Say.Hello`, behind the
//! gateway. It takes the HTTP request as a `go.api.Request`, reads `name` from the query, asks a
//! backend (through the client's cache selector) and answers a `go.api.Response`:
//!
//! ```text
//!   gateway ──go.api.Request{get: name=John}──► api one ──Say.Hello{name}──► srv one|two
//!           ◄──{statusCode: 200, body: {"api":"api one","message":"Hello John srv two. rand:x"}}
//! ```

use micro::registry::{Endpoint, Value};
use micro::server::Routes;
use micro::Client;
use proto::go_api;
use proto::greeter as srv;
use serde::Serialize;

use crate::rpc::{unary_route, RouteError};

/// The API service's name.
pub const SERVICE: &str = "go.micro.api.greeter";
/// Its one endpoint.
pub const ENDPOINT: &str = "Say.Hello";

/// The handler of one api instance.
#[derive(Debug, Clone)]
pub struct Api {
    /// `one` or `two`: which instance answered.
    instance: String,
    client: Client,
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
            client,
        }
    }

    /// `Say.Hello`: go-micro's BadRequest without a name, the backend's error if it fails.
    #[tracing::instrument(level = "debug", skip_all, fields(instance = %self.instance))]
    pub async fn hello(&self, request: go_api::Request) -> Result<go_api::Response, micro::Error> {
        let name = request
            .get
            .get("name")
            .map(|pair| pair.values.join(" "))
            .unwrap_or_default();
        if name.trim().is_empty() {
            return Err(micro::Error::bad_request(SERVICE, "Name cannot be blank"));
        }
        let reply: srv::Response = self
            .client
            .call(crate::srv::SERVICE, "Say.Hello", srv::Request { name })
            .await?;
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

    /// The gRPC routes to mount (`/go.micro.api.greeter.Say/Hello`).
    pub fn routes(self) -> Result<Routes, RouteError> {
        unary_route(SERVICE, ENDPOINT, move |request: go_api::Request| {
            let api = self.clone();
            async move { api.hello(request).await }
        })
    }
}

/// The registered endpoints: `go.api.Request` in, `go.api.Response` out, with their fields.
pub fn endpoints() -> Vec<Endpoint> {
    let mut hello = Endpoint::unary(ENDPOINT, "Request", "Response");
    hello.request = Some(Value::message(
        "Request",
        &[
            ("method", "string"),
            ("path", "string"),
            ("header", "map[string]*Pair"),
            ("get", "map[string]*Pair"),
            ("post", "map[string]*Pair"),
            ("body", "string"),
            ("url", "string"),
        ],
    ));
    hello.response = Some(Value::message(
        "Response",
        &[
            ("statusCode", "int32"),
            ("header", "map[string]*Pair"),
            ("body", "string"),
        ],
    ));
    vec![hello]
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

    #[test]
    fn endpoint_names_the_go_api_messages() {
        let eps = endpoints();
        assert_eq!(eps[0].name, "Say.Hello");
        let response = eps[0].response.as_ref().expect("tree");
        assert_eq!(response.values[0].name, "statusCode");
    }
}
