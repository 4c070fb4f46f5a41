//! gRPC's unary calls straight on HTTP/2 (hyperium's h2, or hyper for tonic services), without
//! tonic's server stack:
//!
//! - [`grpc`]: the wire format (message prefix, `grpc-timeout`, statuses as tonic answers them);
//! - [`server`]: a server of unary handlers by path, with tonic services as the fallback for
//!   every other path (streams included), and graceful connection close;
//! - [`http2`]: unary calls on h2 directly (one task per connection), used by the server when
//!   it has no tonic services, and by `micro`'s client;
//! - [`tls`]: the same server behind a rustls handshake (`serve_tls`, ALPN h2 and http/1.1).
//!
//! Used by `micro` (the services' server and client) and by the registry's client API.

pub mod grpc;
pub mod http2;
pub mod rewind;
pub mod server;
pub mod tls;
