//! `put`: random keys of a key space, fixed-size values (etcd's `benchmark put`).

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::PutRequest;
use rand::Rng;
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::stats;
use crate::Args;

#[derive(clap::Args, Debug, Clone)]
pub struct PutArgs {
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Keys are drawn at random from this many.
    #[arg(long, default_value_t = 1)]
    pub key_space: u64,
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
}

pub async fn run(args: &Args, w: &PutArgs, chans: &[Channel]) -> anyhow::Result<Value> {
    let value = vec![b'v'; w.val_size];
    let (key_space, key_size) = (w.key_space.max(1), w.key_size);
    let (h, errors, elapsed, last_err) = stats::closed_loop(args.clients, w.total, |c| {
        let kv = KvClient::new(chans[c % chans.len()].clone())
            .max_decoding_message_size(crate::conn::MAX_MSG);
        let value = value.clone();
        move |_| {
            let mut kv = kv.clone();
            let n = rand::rng().random_range(0..key_space);
            let req = PutRequest {
                key: format!("{n:0key_size$}").into_bytes(),
                value: value.clone(),
                ..Default::default()
            };
            async move { kv.put(req).await.map(|_| ()) }
        }
    })
    .await;
    Ok(stats::merge(
        stats::summary("put", &h, errors, elapsed, last_err),
        json!({"total": w.total, "key_space": key_space, "key_size": key_size, "val_size": w.val_size}),
    ))
}
