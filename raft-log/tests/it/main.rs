//! The WAL's integration tests: openraft's storage suite, the on-disk format, crash by SIGKILL.
//!
//! One integration-test binary for the whole package (each file under tests/ used to be its
//! own binary, each linking the whole dependency graph): a module per former file, so
//! `cargo test -p raft-log --test it <module>::` selects one of them.

mod common;
mod crash;
mod format;
mod suite;
mod wal;
