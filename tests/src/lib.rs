//! Helpers for the whole-system tests in `tests/tests/`:
//!
//! - [`go`]: builds the Go programs under `tests/go/src/` offline (GOPATH mode, against the
//!   Debian packages' sources in `/usr/share/gocode`) and runs them, reading their
//!   `CHECK <name> PASS|FAIL <detail>` lines and killing a member when one asks for it;
//! - [`processes`]: our three-member registry and the greeter srv as child processes of the
//!   `compat-node` binary, on free loopback ports in a temporary directory, killed on drop.

pub mod go;
pub mod processes;
