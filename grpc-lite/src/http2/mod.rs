//! Unary gRPC on hyperium's `h2` (frames, HPACK, flow control, stream states and the limits
//! that hold against hostile peers are h2's; nothing here implements HTTP/2 itself).
//!
//! hyper's HTTP/2 gives each stream its own task and channels, a service call and body
//! polling; for the many small unary calls between services that machinery cost more CPU per
//! call than everything else in a hop. Here h2 is used directly:
//!
//! - [`server`]: serves the unary handlers of a [`crate::server::Routes`] (no tonic fallback:
//!   routes with tonic services are served by hyper), one task per connection driving h2 and
//!   the connection's calls together, with [`server::Limits`];
//! - [`client`]: unary calls to any gRPC server, a cloneable handle and one driver task per
//!   connection.

pub mod client;
pub mod server;
