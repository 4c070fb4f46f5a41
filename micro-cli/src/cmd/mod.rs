//! go-micro's registry and RPC commands: `micro list services`, `micro get service`,
//! `micro call`. Each takes micro's `--registry_address`, so it works against our registry and a
//! real etcd alike.

pub mod call;
pub mod health;
pub mod registry;
pub mod web;
