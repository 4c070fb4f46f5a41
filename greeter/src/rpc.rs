//! A go-micro unary endpoint served from an async function, for services whose gRPC service has
//! no generated server (the API services take `go.api.Request`, whatever their name).
//!
//! ```text
//!   POST /<service>.<Handler>/<Method>  ──► tonic::server::Grpc::unary ──► handler(Req) ──► Resp
//!                                                                          └─ Err(micro::Error)
//!                                                                             └─► grpc Status
//! ```

use std::future::Future;
use std::sync::Arc;

use std::pin::Pin;

use tonic::service::Routes;
use tonic_prost::ProstCodec;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

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

/// Adapts an async function to tonic's unary service.
struct Unary<F>(Arc<F>);

impl<F, Req, Resp, Fut> tonic::server::UnaryService<Req> for Unary<F>
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, micro::Error>> + Send + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;
    type Future = BoxFuture<Result<tonic::Response<Resp>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Req>) -> Self::Future {
        let f = Arc::clone(&self.0);
        Box::pin(async move {
            f(request.into_inner())
                .await
                .map(tonic::Response::new)
                .map_err(tonic::Status::from)
        })
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
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
{
    let path = grpc_path(service, endpoint)?;
    let handler = Arc::new(handler);
    let serve = move |request: axum::extract::Request| {
        let method = Unary(Arc::clone(&handler));
        async move {
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Resp, Req>::default());
            grpc.unary(method, request).await
        }
    };
    let router = axum::Router::new().route(&path, axum::routing::post(serve));
    Ok(Routes::from(router))
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
