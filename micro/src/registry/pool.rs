//! The registry members a client can talk to, with failover.
//!
//! One lazily connected channel per member. A call goes to the member that answered last; if that
//! member is down, times out or answers UNAVAILABLE (etcd's `no leader`, `leader changed`, ...),
//! the next member is tried, and the one that answered is remembered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::Error;

/// Registry members with failover; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Pool {
    members: Vec<(String, Channel)>,
    current: AtomicUsize,
    request_timeout: Duration,
}

/// `host:port` or a URL → a URL with a scheme.
pub fn normalize(address: &str) -> String {
    let address = address.trim();
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

impl Pool {
    /// A pool over `addresses` (`http://` optional); nothing is dialled until the first call.
    pub fn new(
        addresses: &[String],
        dial_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, Error> {
        let mut members = Vec::new();
        for address in addresses.iter().filter(|a| !a.trim().is_empty()) {
            let url = normalize(address);
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|source| Error::Address {
                    address: url.clone(),
                    source,
                })?
                .connect_timeout(dial_timeout)
                .tcp_nodelay(true)
                // A member that vanished without closing the connection (crash, partition)
                // must not hold a watch or keep-alive stream forever.
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(3))
                .keep_alive_while_idle(true);
            members.push((url, endpoint.connect_lazy()));
        }
        if members.is_empty() {
            return Err(Error::NoEndpoints);
        }
        Ok(Pool {
            members,
            current: AtomicUsize::new(0),
            request_timeout,
        })
    }

    /// The URL of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|(url, _)| url.clone()).collect()
    }

    /// Runs `op` on one member after another, starting with the last that answered, until one
    /// answers with something other than unavailability. Unary calls are bounded by the request
    /// timeout; `op` must be safe to repeat (every registry write is).
    pub async fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, Error>
    where
        F: Fn(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let n = self.members.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut last = Status::unavailable("no member tried");
        for step in 0..n {
            let i = (start + step) % n;
            let (url, channel) = &self.members[i];
            let status = match tokio::time::timeout(self.request_timeout, op(channel.clone())).await
            {
                Ok(Ok(value)) => {
                    if step > 0 {
                        tracing::info!(member = %url, "registry failover");
                    }
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(value);
                }
                Ok(Err(status)) => status,
                Err(_) => Status::deadline_exceeded(format!("{what}: no answer in time")),
            };
            if !is_unavailable(&status) {
                return Err(Error::Status { op: what, status });
            }
            tracing::debug!(member = %url, op = what, error = %status, "registry member unavailable");
            last = status;
        }
        Err(Error::Unavailable {
            op: what,
            status: last,
        })
    }
}

/// Whether another member may answer where this one failed.
fn is_unavailable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
    )
}
