//! The services' code with micro-build (protox, no system `protoc`): handler traits, mounts,
//! endpoint trees and typed clients.
//!
//! - `go.micro.srv.greeter` (`Say.Hello`) and `go.micro.api.greeter` (`Say.Hello` on
//!   `go.api`): their messages are the proto crate's, only the service code is written here;
//! - `go.micro.srv.catalog` (`Catalog.Find`): messages and service, and the descriptor set the
//!   catalog serves by gRPC server reflection (`descriptors.bin` in OUT_DIR; this file only).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/proto/go_api.proto");
    micro_build::Builder::new()
        .extern_path(".go.micro.srv.greeter", "::proto::greeter")
        .extern_path(".go.api", "::proto::go_api")
        .compile(
            &["../proto/proto/greeter.proto", "proto/api.proto"],
            &["../proto/proto", "proto"],
        )?;
    micro_build::Builder::new()
        .file_descriptor_set("descriptors.bin")
        .compile(&["proto/catalog.proto"], &["proto"])?;
    Ok(())
}
