//! The shop's messages, handler trait, mount, endpoints and typed client (micro-build), and its
//! descriptors for gRPC server reflection (what the gateway's rpc handler and `micro call` use).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    micro_build::Builder::new()
        .file_descriptor_set("shop.bin")
        .compile(&["proto/shop.proto"], &["proto"])?;
    // Every kind of RPC, for tests/streams.rs.
    micro_build::compile_protos(&["proto/streams.proto"], &["proto"])?;
    Ok(())
}
