//! The catalog service's messages (`proto/catalog.proto`), and the descriptor set the catalog
//! serves by gRPC server reflection (`descriptors.bin` in OUT_DIR), both with protox (no system
//! `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    use prost::Message as _;
    let file = "proto/catalog.proto";
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([file], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptors.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_fds(fds)?;
    Ok(())
}
