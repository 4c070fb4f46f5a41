//! The retry layer (client side): a failed call is made again, after an exponential backoff
//! (base, doubled per attempt, capped), while the error is one worth retrying. It is
//! `tower::retry` with a go-micro policy; the request is resent as the same encoded bytes.
//!
//! This is on top of the client's own retry on another node when a node is unreachable:
//! that one is immediate, this one waits and retries the whole call (selection included).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::ClientCall;

/// When and how often to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryOptions {
    /// Extra attempts after the first.
    pub attempts: u32,
    /// Wait before the first retry; doubled before each next one.
    pub backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// Which errors are retried (default: [`transient`]).
    pub retry_on: fn(&crate::Error) -> bool,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            attempts: 2,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            retry_on: transient,
        }
    }
}

/// go-micro's `RetryOnError` codes: a timeout (408) or a server-side failure (500, 502, 503,
/// 504); a client's mistake (4xx) would fail again.
pub(super) fn transient(error: &crate::Error) -> bool {
    matches!(error.code, 408 | 500 | 502 | 503 | 504)
}

/// The retry layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retry {
    options: RetryOptions,
}

impl Retry {
    pub fn new(options: RetryOptions) -> Self {
        Retry { options }
    }
}

impl<S> tower::Layer<S> for Retry {
    type Service = tower::retry::Retry<Policy, S>;
    fn layer(&self, inner: S) -> Self::Service {
        tower::retry::Retry::new(
            Policy {
                options: self.options,
                done: 0,
            },
            inner,
        )
    }
}

/// The policy of one call (tower clones it per call): how many retries it has made.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    options: RetryOptions,
    done: u32,
}

impl Policy {
    /// The wait before retry number `done + 1`.
    fn backoff(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.done);
        self.options
            .backoff
            .saturating_mul(factor)
            .min(self.options.max_backoff)
    }
}

impl<Res> tower::retry::Policy<ClientCall, Res, crate::Error> for Policy {
    type Future = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn retry(
        &mut self,
        _call: &mut ClientCall,
        result: &mut Result<Res, crate::Error>,
    ) -> Option<Self::Future> {
        let error = result.as_ref().err()?;
        if self.done >= self.options.attempts || !(self.options.retry_on)(error) {
            return None;
        }
        let wait = self.backoff();
        self.done += 1;
        tracing::debug!(attempt = self.done, ?wait, %error, "retrying call");
        Some(Box::pin(tokio::time::sleep(wait)))
    }

    fn clone_request(&mut self, call: &ClientCall) -> Option<ClientCall> {
        Some(call.clone())
    }
}
