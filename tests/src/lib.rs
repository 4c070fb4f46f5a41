//! Helpers for the whole-system tests in `tests/tests/`:
//!
//! - [`go`]: builds the Go programs under `tests/go/src/` offline (GOPATH mode, against the
//!   Debian packages' sources in `/usr/share/gocode`) and runs them, reading their
//!   `CHECK <name> PASS|FAIL <detail>` lines and killing a member when one asks for it;
//! - [`processes`]: our three-member registry and the greeter srv as child processes of the
//!   `compat-node` binary, on free loopback ports in a temporary directory, killed on drop;
//! - [`interop`] and [`interop_gateway`]: Python's grpcio and Node's grpc-js (installed by
//!   `tests/interop/install.sh`) against our greeter srv, and serving behind our gateway.

pub mod go;
pub mod interop;
pub mod interop_gateway;
pub mod processes;
