//! The code of examples/README.md's "Write your own service", step 3, verbatim (in
//! `readme/shop.rs`, included so that rustfmt leaves its compact layout as the README shows
//! it; `tests/shop.rs` checks the two are the same): compiled by `cargo test -p examples`.
//! `cargo run -p examples --example readme` runs it against a registry on 127.0.0.1:2379.
#![allow(dead_code)] // the generated client is not used here

include!("readme/shop.rs");
