//! The code of examples/README.md's "Write your own service", step 3, verbatim (in
//! `readme/shop.rs`, included so that rustfmt leaves its compact layout as the README shows
//! it; `tests/shop.rs` checks the two are the same): compiled by `cargo test -p examples`.
//! `cargo run -p examples --example readme` runs it against a registry on 127.0.0.1:2379.
// The generated client is not used here, and its items are `pub` in a private module.
#![allow(dead_code, unreachable_pub)]

include!("readme/shop.rs");
