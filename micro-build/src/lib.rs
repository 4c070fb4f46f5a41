//! Build-time code generation for micro services, from `build.rs`: go-micro's
//! `protoc-gen-micro` in pure Rust (protox compiles the `.proto` files, prost-build writes the
//! messages, [`gen`] writes the service code; no system `protoc`).
//!
//! For each proto `service Say` it writes, next to the messages (`OUT_DIR/<package>.rs`):
//!
//! - `trait SayHandler`: one async method per RPC (streams as `micro::stream::BoxStream`);
//! - `register_say_handler(service, handler)`: mounts it on a `micro::Service` under go-micro's
//!   names, `/<service name>.Say/<Method>` (and `say_mount` for the mount alone);
//! - `say_endpoints()`: the registry's endpoint descriptions, request and response trees
//!   taken from the descriptors as go-micro's extractor writes them;
//! - `SayClient::new("go.micro.srv.greeter", &client).hello(request)`: a typed client on
//!   `micro::Client` (selector, node retries, layers).
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     micro_build::Builder::new().compile(&["proto/hello.proto"], &["proto"])?;
//!     Ok(())
//! }
//! ```
//!
//! and in the crate: `micro::include_proto!("my.package");` inside a module (or tonic's
//! `include_proto!`, the same file).

mod gen;
mod tree;

use std::path::{Path, PathBuf};

/// Why code could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("compiling the .proto files")]
    Protox(#[from] protox::Error),
    #[error("generating code")]
    Generate(#[source] std::io::Error),
    #[error("OUT_DIR is not set (run from build.rs, or set Builder::out_dir)")]
    OutDir,
}

/// What to generate and where.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    extern_paths: Vec<(String, String)>,
    out_dir: Option<PathBuf>,
    descriptor_set: Option<String>,
}

impl Builder {
    pub fn new() -> Self {
        Builder::default()
    }

    /// Uses messages already generated elsewhere: proto path `.go.api` is Rust path
    /// `::proto::go_api` (prost-build's `extern_path`); only the service code is written.
    pub fn extern_path(
        mut self,
        proto_path: impl Into<String>,
        rust_path: impl Into<String>,
    ) -> Self {
        self.extern_paths
            .push((proto_path.into(), rust_path.into()));
        self
    }

    /// Where to write (default: `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Also writes the encoded `FileDescriptorSet` as `file_name` in the output directory
    /// (for gRPC server reflection).
    pub fn file_descriptor_set(mut self, file_name: impl Into<String>) -> Self {
        self.descriptor_set = Some(file_name.into());
        self
    }

    /// Compiles `protos` (searching `includes` for imports) and writes the code.
    pub fn compile(
        self,
        protos: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Error> {
        for proto in protos {
            println!("cargo:rerun-if-changed={}", proto.as_ref().display());
        }
        let fds = protox::compile(protos, includes)?;
        let out_dir = match self.out_dir {
            Some(dir) => dir,
            None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or(Error::OutDir)?),
        };
        if let Some(name) = &self.descriptor_set {
            use prost::Message as _;
            std::fs::write(out_dir.join(name), fds.encode_to_vec()).map_err(Error::Generate)?;
        }
        let mut config = prost_build::Config::new();
        config.out_dir(&out_dir);
        for (proto, rust) in &self.extern_paths {
            config.extern_path(proto, rust);
        }
        config.service_generator(Box::new(gen::Generator::new(tree::Index::new(&fds))));
        config.compile_fds(fds).map_err(Error::Generate)
    }
}

/// Compiles `protos` with the default settings.
pub fn compile_protos(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Result<(), Error> {
    Builder::new().compile(protos, includes)
}
