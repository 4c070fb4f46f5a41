//! `greeter srv`: the backend `go.micro.srv.greeter`, endpoint `Say.Hello`, answering
//! `Hello <name> srv <instance>. rand:<letter>` as the go-micro demo's srv one and srv two do.

use micro::registry::{Endpoint, Value};
use micro::server::Routes;
use proto::greeter::{Request, Response};
use rand::Rng;

use crate::rpc::{unary_route, RouteError};

/// The backend's service name.
pub const SERVICE: &str = "go.micro.srv.greeter";

/// The handler of one srv instance.
#[derive(Debug, Clone)]
pub struct Greeter {
    /// `one` or `two`: which instance answered.
    instance: String,
}

impl Greeter {
    pub fn new(instance: impl Into<String>) -> Self {
        Greeter {
            instance: instance.into(),
        }
    }

    /// The demo's answer: `Hello John srv one. rand:R`.
    pub fn answer(&self, name: &str) -> String {
        let letter = char::from(rand::rng().sample(rand::distr::Alphabetic));
        format!("Hello {name} srv {}. rand:{letter}", self.instance)
    }

    /// `Say.Hello`.
    #[tracing::instrument(level = "debug", skip_all, fields(instance = %self.instance))]
    pub async fn hello(&self, request: Request) -> Result<Response, micro::Error> {
        Ok(Response {
            msg: self.answer(&request.name),
        })
    }

    /// The gRPC routes to mount (`/go.micro.srv.greeter.Say/Hello`).
    pub fn routes(self) -> Result<Routes, RouteError> {
        unary_route(SERVICE, "Say.Hello", move |request: Request| {
            let greeter = self.clone();
            async move { greeter.hello(request).await }
        })
    }
}

/// The registered endpoints, with the request/response field trees go-micro's extractor writes.
pub fn endpoints() -> Vec<Endpoint> {
    let mut hello = Endpoint::unary("Say.Hello", "Request", "Response");
    hello.request = Some(Value::message("Request", &[("name", "string")]));
    hello.response = Some(Value::message("Response", &[("msg", "string")]));
    vec![hello]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_like_the_demo() {
        let greeter = Greeter::new("two");
        let reply = greeter
            .hello(Request {
                name: "John".into(),
            })
            .await
            .expect("answer");
        let (head, letter) = reply.msg.split_at(reply.msg.len() - 1);
        assert_eq!(head, "Hello John srv two. rand:");
        assert!(letter.chars().all(|c| c.is_ascii_alphabetic()), "{letter}");
    }

    #[test]
    fn endpoint_describes_the_fields() {
        let eps = endpoints();
        assert_eq!(eps[0].name, "Say.Hello");
        let request = eps[0].request.as_ref().expect("request tree");
        assert_eq!(
            (
                request.values[0].name.as_str(),
                request.values[0].kind.as_str()
            ),
            ("name", "string")
        );
        assert_eq!(
            eps[0].metadata.get("stream").map(String::as_str),
            Some("false")
        );
    }
}
