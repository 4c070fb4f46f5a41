//! `range`: one key read over and over, linearizable (`l`) or serializable (`s`), as etcd's
//! `benchmark range foo --consistency`.

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::{PutRequest, RangeRequest};
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::stats;
use crate::Args;

#[derive(clap::Args, Debug, Clone)]
pub struct RangeArgs {
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// `l` (linearizable, read index) or `s` (serializable, local).
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// The key read; written once first so that reads return a value.
    #[arg(long, default_value = "foo")]
    pub key: String,
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
}

pub async fn run(args: &Args, w: &RangeArgs, chans: &[Channel]) -> anyhow::Result<Value> {
    let serializable = match w.consistency.as_str() {
        "l" => false,
        "s" => true,
        other => anyhow::bail!("--consistency must be l or s, not {other}"),
    };
    KvClient::new(chans[0].clone())
        .put(PutRequest {
            key: w.key.clone().into_bytes(),
            value: vec![b'v'; w.val_size],
            ..Default::default()
        })
        .await?;
    let key = w.key.clone().into_bytes();
    let (h, errors, elapsed, last_err) = stats::closed_loop(args.clients, w.total, |c| {
        let kv = KvClient::new(chans[c % chans.len()].clone())
            .max_decoding_message_size(crate::conn::MAX_MSG);
        let key = key.clone();
        move |_| {
            let mut kv = kv.clone();
            let req = RangeRequest {
                key: key.clone(),
                serializable,
                ..Default::default()
            };
            async move { kv.range(req).await.map(|_| ()) }
        }
    })
    .await;
    Ok(stats::merge(
        stats::summary("range", &h, errors, elapsed, last_err),
        json!({"total": w.total, "consistency": w.consistency}),
    ))
}
