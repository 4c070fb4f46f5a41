//! The logging layer: one line per call (side, service, endpoint, duration, outcome), at
//! `debug` for successes and `warn` for failures, through `tracing`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::Call;

/// Logs every call it wraps; works on both sides.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logging;

impl<S> tower::Layer<S> for Logging {
    type Service = LoggingService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        LoggingService { inner }
    }
}

/// [`Logging`]'s service.
#[derive(Debug, Clone)]
pub struct LoggingService<S> {
    inner: S,
}

impl<S, R> tower::Service<R> for LoggingService<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    R: Call,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: R) -> Self::Future {
        let service = call.service().to_owned();
        let endpoint = call.endpoint().to_owned();
        let started = tokio::time::Instant::now();
        let future = self.inner.call(call);
        Box::pin(async move {
            let result = future.await;
            let took = started.elapsed();
            match &result {
                Ok(_) => tracing::debug!(side = R::SIDE, %service, %endpoint, ?took, "call ok"),
                Err(error) => {
                    tracing::warn!(side = R::SIDE, %service, %endpoint, ?took, %error, "call failed")
                }
            }
            result
        })
    }
}
