//! gRPC over h2: interop with hyper and tonic, graceful stop, TLS, hostile and garbage peers.
//!
//! One integration-test binary for the whole package (each file under tests/ used to be its
//! own binary, each linking the whole dependency graph): a module per former file, so
//! `cargo test -p grpc-lite --test it <module>::` selects one of them.

mod common;
mod http2;
mod http2_garbage;
mod http2_hostile;
mod http2_hpack_order;
mod http2_stop;
mod tls;
