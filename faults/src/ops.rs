//! One etcd v3 call each, through the generated (tonic) client, bounded by [`OP_TIMEOUT`]:
//! what the clients, the nemesis's probes and the final checks send.

use std::time::Duration;

use proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::request_op::Request as OpRequest;
use proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use tonic::transport::{Channel, Endpoint};

/// Per-operation deadline; past it the outcome is unknown.
pub const OP_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call has no answer. Every failure counts as "may or may not have applied".
#[derive(Debug, Clone)]
pub struct Failed(pub String);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failed {}

/// A lazily connecting channel to `url` (reconnects by itself after a member restarts).
pub fn channel(url: &str) -> Result<Channel, Failed> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| Failed(format!("invalid member URL {url}: {e}")))?;
    Ok(endpoint
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .connect_lazy())
}

async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Failed> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err(Failed(format!("{:?}: {}", status.code(), status.message()))),
        Err(_) => Err(Failed("timeout".into())),
    }
}

/// The clients of one member: one channel, shared by whoever talks to it.
#[derive(Debug, Clone)]
pub struct Conn {
    kv: KvClient<Channel>,
}

impl Conn {
    pub fn new(url: &str) -> Result<Conn, Failed> {
        Ok(Conn {
            kv: KvClient::new(channel(url)?),
        })
    }

    /// Range of one key; `serializable` false is a linearizable read.
    pub async fn read(&self, key: &str, serializable: bool) -> Result<Option<String>, Failed> {
        let mut kv = self.kv.clone();
        let resp = bounded(kv.range(RangeRequest {
            key: key.as_bytes().to_vec(),
            serializable,
            ..Default::default()
        }))
        .await?;
        Ok(resp
            .kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
    }

    /// Every key under `prefix` with its mod revision (linearizable), and the header revision.
    pub async fn read_prefix(&self, prefix: &str) -> Result<(Vec<(String, i64)>, i64), Failed> {
        let mut kv = self.kv.clone();
        let resp = bounded(kv.range(RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix),
            ..Default::default()
        }))
        .await?;
        let rev = resp.header.map(|h| h.revision).unwrap_or(0);
        let keys = resp
            .kvs
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    kv.mod_revision,
                )
            })
            .collect();
        Ok((keys, rev))
    }

    /// Put; `lease` 0 for none.
    pub async fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), Failed> {
        let mut kv = self.kv.clone();
        bounded(kv.put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            lease,
            ..Default::default()
        }))
        .await
        .map(|_| ())
    }

    /// Compare-and-set as one Txn: if the key holds `expect` (`None`: the key does not exist,
    /// create_revision == 0), put `new`. Answers whether it swapped.
    pub async fn cas(&self, key: &str, expect: Option<&str>, new: &str) -> Result<bool, Failed> {
        let compare = match expect {
            Some(v) => Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: key.as_bytes().to_vec(),
                target_union: Some(TargetUnion::Value(v.as_bytes().to_vec())),
                ..Default::default()
            },
            None => Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: key.as_bytes().to_vec(),
                target_union: Some(TargetUnion::CreateRevision(0)),
                ..Default::default()
            },
        };
        let put = RequestOp {
            request: Some(OpRequest::RequestPut(PutRequest {
                key: key.as_bytes().to_vec(),
                value: new.as_bytes().to_vec(),
                ..Default::default()
            })),
        };
        let mut kv = self.kv.clone();
        let resp = bounded(kv.txn(TxnRequest {
            compare: vec![compare],
            success: vec![put],
            failure: vec![],
        }))
        .await?;
        Ok(resp.succeeded)
    }
}

/// A linearizable read of `key` on a fresh connection to `url` (health probes).
pub async fn read(url: &str, key: &str, serializable: bool) -> Result<Option<String>, Failed> {
    Conn::new(url)?.read(key, serializable).await
}

/// The range end that selects every key starting with `prefix`.
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
