//! One HTTP/2 connection per node: the client's transport (grpc-lite's unary client on h2, one
//! task per connection).
//!
//! ```text
//!   Client::call ─► Pool::get(address) ─► Slot (lazily dialled Connection)
//!                                                      └─ closed? replaced on next use
//! ```
//!
//! tonic's `Channel` puts a `tower::Buffer` (a queue and a worker task) and a reconnecting
//! balancer in front of each connection, and hyper's HTTP/2 a task and channels per stream; a
//! unary call here is a stream opened on h2's shared connection handle. Every transport failure
//! (dial refused or timed out, connection gone, a call the server refused or did not take
//! before its GOAWAY) surfaces as UNAVAILABLE, which the client treats as "node unreachable"
//! (and retries elsewhere); a connection whose server said GOAWAY counts as closed and is
//! dialled again on next use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grpc_lite::http2::client::Connection;
use http::Uri;
use tokio::sync::OnceCell;

/// The connections of one client, by node address; clones of the client share it.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One node's connection, dialled by the first call that needs it.
#[derive(Debug)]
struct Slot {
    conn: OnceCell<Connection>,
}

/// Why no connection to a node could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("bad node address {0:?}")]
    Address(String),
    #[error("connect {0}: timed out after {1:?}")]
    Timeout(String, Duration),
    #[error("connect {0}")]
    Io(String, #[source] std::io::Error),
}

impl Pool {
    /// A connection to `address` (`host:port`), dialling it (bounded by `dial_timeout`) if
    /// there is none or the last one has closed.
    pub(crate) async fn get(
        &self,
        address: &str,
        dial_timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let slot = self.slot(address)?;
        let conn = slot
            .conn
            .get_or_try_init(|| connect(address, dial_timeout))
            .await?;
        Ok(conn.clone())
    }

    /// Drops the connection to `address`: the next call dials again.
    pub(crate) fn forget(&self, address: &str) {
        self.lock().remove(address);
    }

    fn slot(&self, address: &str) -> Result<Arc<Slot>, ConnectError> {
        let mut slots = self.lock();
        if let Some(slot) = slots.get(address) {
            if !slot.conn.get().is_some_and(Connection::is_closed) {
                return Ok(Arc::clone(slot));
            }
        }
        let valid = crate::registry::normalize(address)
            .parse::<Uri>()
            .is_ok_and(|uri| uri.authority().is_some());
        if !valid {
            return Err(ConnectError::Address(address.to_owned()));
        }
        let slot = Arc::new(Slot {
            conn: OnceCell::new(),
        });
        slots.insert(address.to_owned(), Arc::clone(&slot));
        Ok(slot)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Dials `address` (TCP_NODELAY) and starts the connection's task.
async fn connect(address: &str, dial_timeout: Duration) -> Result<Connection, ConnectError> {
    Connection::connect(address, dial_timeout)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut => ConnectError::Timeout(address.to_owned(), dial_timeout),
            _ => ConnectError::Io(address.to_owned(), e),
        })
}
