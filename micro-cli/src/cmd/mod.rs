//! go-micro's registry and RPC commands: `micro list services`, `micro get service`,
//! `micro call`. Each takes micro's `--registry_address`, so it works against our registry and a
//! real etcd alike.

pub(crate) mod call;
pub(crate) mod health;
pub(crate) mod registry;
pub(crate) mod web;
