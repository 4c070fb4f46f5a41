//! `v3lockpb.Lock`: etcd's lock service, built as etcd builds it: clientv3/concurrency's Mutex
//! on this member's own KV, Lease and Watch services (a loopback channel, as etcd's v3lock uses
//! its in-process client), so routing, forwarding and errors are those of the KV API.
//!
//! A lock named `n` held with lease `L` is the key `n/<L in hex>` attached to `L`; the holder is
//! the key of the prefix with the lowest create revision. A contender waits for the deletion of
//! every key created before its own (`wait_deletes`), each by a watch from the revision it read.
//! The helpers here serve [`super::election`] too.

use proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use proto::etcdserverpb::request_op::Request as Op;
use proto::etcdserverpb::response_op::Response as OpResponse;
use proto::etcdserverpb::watch_client::WatchClient;
use proto::etcdserverpb::watch_request::RequestUnion;
use proto::etcdserverpb::*;
use proto::mvccpb::event::EventType;
use proto::v3lockpb::lock_server::{Lock, LockServer};
use proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tokio_stream::StreamExt;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::{InterceptedService, Interceptor};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::routing::TOKEN;

/// clientv3/concurrency's default session TTL, for a request without a lease.
const SESSION_TTL: i64 = 60;

pub(crate) struct LockService {
    ch: Channel,
}

impl LockService {
    /// The service on `ch`, a channel to this member's own client port.
    pub(crate) fn new(ch: Channel) -> LockServer<Self> {
        LockServer::new(LockService { ch })
    }
}

/// This member's own client port, every call carrying the caller's token: etcd's v3lock and
/// v3election call their in-process client with the caller's context, so with auth on the KV,
/// Lease and Watch calls they make are checked as the caller's (and work for a user allowed
/// the keys, where calls without a token would be refused with "user name is empty").
pub(crate) type Loop = InterceptedService<Channel, WithToken>;

#[derive(Clone)]
pub(crate) struct WithToken(Option<MetadataValue<Ascii>>);

impl Interceptor for WithToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert(TOKEN, t.clone());
        }
        Ok(req)
    }
}

/// The loopback `ch` as the caller of `req`: its `token` (or grpc-gateway's `authorization`).
pub(crate) fn as_caller<T>(ch: &Channel, req: &Request<T>) -> Loop {
    let md = req.metadata();
    let token = md.get(TOKEN).or_else(|| md.get("authorization")).cloned();
    InterceptedService::new(ch.clone(), WithToken(token))
}

/// etcd's `clientv3.GetPrefixRangeEnd`: the first key after every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The session's lease: the request's, or (0) a new one of concurrency's default TTL.
pub(crate) async fn session_lease(ch: &Loop, lease: i64) -> Result<i64, Status> {
    if lease != 0 {
        return Ok(lease);
    }
    let granted = LeaseClient::new(ch.clone())
        .lease_grant(LeaseGrantRequest {
            ttl: SESSION_TTL,
            id: 0,
        })
        .await?;
    Ok(granted.into_inner().id)
}

/// `<prefix><lease>` with the lease as Go's `%x` of an int64 (a minus sign when negative).
pub(crate) fn owner_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    [prefix, hex.as_bytes()].concat()
}

/// The oldest key of the prefix (concurrency's `WithFirstCreate`).
pub(crate) fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        limit: 1,
        ..Default::default()
    }
}

pub(crate) fn range_op(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestRange(r)),
    }
}

/// `key`'s create revision equals `rev`.
pub(crate) fn created_at(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

/// The range answer at `i` of a txn's responses.
pub(crate) fn range_at(resp: &TxnResponse, i: usize) -> Result<&RangeResponse, Status> {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(OpResponse::ResponseRange(r)) => Ok(r),
        _ => Err(Status::internal("txn answered without its range")),
    }
}

/// concurrency's `waitDeletes`: until no key of `prefix` created at or before `max_rev` is
/// left, watches the newest such key until it is deleted. Returns the last read's header.
pub(crate) async fn wait_deletes(
    ch: &Loop,
    prefix: &[u8],
    max_rev: i64,
) -> Result<Option<ResponseHeader>, Status> {
    let mut kv = KvClient::new(ch.clone());
    loop {
        let resp = kv
            .range(RangeRequest {
                key: prefix.to_vec(),
                range_end: prefix_end(prefix),
                sort_order: SortOrder::Descend as i32,
                sort_target: SortTarget::Create as i32,
                limit: 1,
                max_create_revision: max_rev,
                ..Default::default()
            })
            .await?
            .into_inner();
        let Some(last) = resp.kvs.first() else {
            return Ok(resp.header);
        };
        let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
        wait_delete(ch, &last.key, rev).await?;
    }
}

/// Watches `key` from `rev` until an event deletes it.
async fn wait_delete(ch: &Loop, key: &[u8], rev: i64) -> Result<(), Status> {
    let mut events = watch(ch, key, Vec::new(), rev).await?;
    while let Some(resp) = events.next().await {
        let resp = resp?;
        if resp
            .events
            .iter()
            .any(|e| e.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
    }
    Err(Status::unknown("lost watcher waiting for delete"))
}

/// A watch of `[key, range_end)` from `rev`, as a stream of responses; a canceled watch (its
/// revision compacted) ends with the compaction error. The request side stays open as long as
/// the stream lives.
pub(crate) async fn watch(
    ch: &Loop,
    key: &[u8],
    range_end: Vec<u8>,
    rev: i64,
) -> Result<impl tokio_stream::Stream<Item = Result<WatchResponse, Status>>, Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: key.to_vec(),
            range_end,
            start_revision: rev,
            ..Default::default()
        })),
    };
    tx.send(create)
        .await
        .map_err(|_| Status::internal("watch request"))?;
    let responses = WatchClient::new(ch.clone())
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(responses.map(move |r| {
        let _keep_open = &tx;
        let r = r?;
        if r.canceled {
            let reason = if r.compact_revision > 0 {
                "etcdserver: mvcc: required revision has been compacted".to_owned()
            } else {
                r.cancel_reason.clone()
            };
            return Err(Status::out_of_range(reason));
        }
        Ok(r)
    }))
}

/// Deletes `key` if dropped armed: a contender that fails or whose client goes away while it
/// waits gives its place up (concurrency's Mutex unlocks on error).
pub(crate) struct Cleanup {
    pub(crate) ch: Loop,
    pub(crate) txn: Option<TxnRequest>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (Some(txn), Ok(rt)) = (self.txn.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let mut kv = KvClient::new(self.ch.clone());
        rt.spawn(async move {
            if let Err(e) = kv.txn(txn).await {
                tracing::debug!(error = %e, "giving up a lock or election key");
            }
        });
    }
}

/// Deletes `key` if its create revision is still `rev`.
pub(crate) fn delete_if_created_at(key: &[u8], rev: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![created_at(key, rev)],
        success: vec![RequestOp {
            request: Some(Op::RequestDeleteRange(DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })),
        }],
        failure: Vec::new(),
    }
}

/// etcd's v3lock and v3election hand back their in-process client's errors, which clientv3
/// turns into plain Go errors for every etcd error text; grpc-go sends those as UNKNOWN with
/// the text (so a denied key is "Unknown etcdserver: permission denied", as etcd answers).
pub(crate) fn as_go_error(s: Status) -> Status {
    if s.code() != tonic::Code::Unknown && s.message().starts_with("etcdserver: ") {
        Status::unknown(s.message())
    } else {
        s
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        self.locked(req).await.map_err(as_go_error)
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        self.unlocked(req).await.map_err(as_go_error)
    }
}

impl LockService {
    async fn locked(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let ch = as_caller(&self.ch, &req);
        let req = req.into_inner();
        let lease = session_lease(&ch, req.lease).await?;
        let prefix = [req.name.as_slice(), b"/"].concat();
        let key = owner_key(&prefix, lease);
        let put = PutRequest {
            key: key.clone(),
            lease,
            ..Default::default()
        };
        let txn = TxnRequest {
            compare: vec![created_at(&key, 0)],
            success: vec![
                RequestOp {
                    request: Some(Op::RequestPut(put)),
                },
                range_op(first_created(&prefix)),
            ],
            failure: vec![
                range_op(RangeRequest {
                    key: key.clone(),
                    ..Default::default()
                }),
                range_op(first_created(&prefix)),
            ],
        };
        let resp = KvClient::new(ch.clone()).txn(txn).await?.into_inner();
        let mut my_rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
        if !resp.succeeded {
            let mine = range_at(&resp, 0)?.kvs.first();
            my_rev = mine.map(|kv| kv.create_revision).unwrap_or(my_rev);
        }
        let owner = range_at(&resp, 1)?.kvs.first();
        if owner.is_none_or(|kv| kv.create_revision == my_rev) {
            return Ok(Response::new(LockResponse {
                header: resp.header,
                key,
            }));
        }
        let mut cleanup = Cleanup {
            ch: ch.clone(),
            txn: Some(TxnRequest {
                success: delete_if_created_at(&key, my_rev).success,
                ..Default::default()
            }),
        };
        let header = wait_deletes(&ch, &prefix, my_rev - 1).await?;
        cleanup.txn = None;
        Ok(Response::new(LockResponse { header, key }))
    }

    async fn unlocked(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let ch = as_caller(&self.ch, &req);
        let key = req.into_inner().key;
        let resp = KvClient::new(ch)
            .delete_range(DeleteRangeRequest {
                key,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(Response::new(UnlockResponse {
            header: resp.header,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ranges_as_go_writes_them() {
        assert_eq!(prefix_end(b"a/"), b"a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(
            owner_key(b"n/", 0x694d_7a8c_1f2e_0a0b),
            b"n/694d7a8c1f2e0a0b".to_vec()
        );
        assert_eq!(owner_key(b"n/", -1), b"n/-1".to_vec());
    }
}
