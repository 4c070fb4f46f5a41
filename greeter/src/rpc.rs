//! A go-micro unary endpoint served from an async function, for services whose gRPC service has
//! no generated server (the API services take `go.api.Request`, whatever their name).
//!
//! ```text
//!   POST /<service>.<Handler>/<Method>  ──► micro::server (decode Req) ──► handler(Req) ──► Resp
//!                                                                       └─ Err(micro::Error)
//!                                                                          └─► grpc Status
//! ```

use std::future::Future;

use micro::server::Routes;

/// Why a route could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("invalid service name {0:?}")]
    Service(String),
    #[error("invalid endpoint {0:?}: expected Handler.Method")]
    Endpoint(String),
}

/// The gRPC path of `endpoint` (`Handler.Method`) of `service`, as go-micro's gRPC client sends
/// it: `/service.Handler/Method`.
pub fn grpc_path(service: &str, endpoint: &str) -> Result<String, RouteError> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if !valid(service) {
        return Err(RouteError::Service(service.to_owned()));
    }
    match endpoint.split_once('.') {
        Some((handler, method)) if valid(handler) && valid(method) && !method.contains('.') => {
            Ok(format!("/{service}.{handler}/{method}"))
        }
        _ => Err(RouteError::Endpoint(endpoint.to_owned())),
    }
}

/// Routes serving `endpoint` of `service` with `handler`; a handler's [`micro::Error`] reaches
/// the caller unchanged.
pub fn unary_route<F, Req, Resp, Fut>(
    service: &str,
    endpoint: &str,
    handler: F,
) -> Result<Routes, RouteError>
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, micro::Error>> + Send + 'static,
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    let path = grpc_path(service, endpoint)?;
    Ok(Routes::new().unary(path, handler))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_micro_grpc_paths() {
        assert_eq!(
            grpc_path("go.micro.api.greeter", "Say.Hello").expect("valid"),
            "/go.micro.api.greeter.Say/Hello"
        );
        assert!(grpc_path("go.micro.api.greeter", "Hello").is_err());
        assert!(grpc_path("go.micro.api.greeter", "Say.").is_err());
        assert!(grpc_path("go.micro.api.greeter", "A.B.C").is_err());
        assert!(grpc_path("a{b}", "Say.Hello").is_err());
        assert!(grpc_path("", "Say.Hello").is_err());
    }
}
