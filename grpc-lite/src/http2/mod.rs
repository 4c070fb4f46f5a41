//! HTTP/2 for unary gRPC, one task per connection (RFC 9113, RFC 7541).
//!
//! hyper's HTTP/2 gives each stream its own task and channels, flow-control bookkeeping and
//! body polling; for the many small unary calls between services that machinery cost more CPU
//! per call than everything else in a hop. Here a connection is one task: it reads whatever has
//! arrived, answers (or completes the callers of) every frame in it, and writes everything
//! queued in one system call.
//!
//! - [`server`]: serves the unary handlers of a [`crate::server::Routes`] (no tonic fallback:
//!   routes with tonic services are served by hyper);
//! - [`client`]: unary calls to any gRPC server;
//! - underneath: [`frame`] (the frame layout), [`hpack`] (header blocks: encoded with our
//!   dynamic-table mirror, decoded by h2's decoder), [`headers`] (the blocks we send, encoded
//!   only as they are written, so the peer's table changes in wire order), and the connection
//!   core shared by both ends (reading and parsing, SETTINGS, PING, GOAWAY, and sending under
//!   the peer's windows).

pub mod client;
mod conn;
pub mod frame;
pub mod headers;
pub mod hpack;
pub mod server;
