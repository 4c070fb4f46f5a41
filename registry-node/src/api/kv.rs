//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prost::Message;
use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::kv_server::{Kv, KvServer};
use proto::etcdserverpb::*;
use proto::registrypb::internal_request::Request as Ir;
use proto::registrypb::InternalRequest;
use tonic::{Request, Response, Status};

use grpc_lite::server::Routes;

use super::unary::handler;
use crate::access::Caller;
use crate::errors as error;
use crate::routing::Router;
use crate::routing::{forwarded_request, CallCtx, Redirect};

/// The KV service of one member.
pub(crate) struct KvService {
    router: Arc<Router>,
    /// etcd's --max-request-bytes: a larger Put or Txn is refused before it reaches Raft.
    max_request_bytes: usize,
}

impl KvService {
    pub(crate) fn new(router: Arc<Router>, max_request_bytes: usize) -> Arc<Self> {
        Arc::new(KvService {
            router,
            max_request_bytes,
        })
    }

    /// The tonic service (Compact; the other methods are [`KvService::routes`]).
    pub(crate) fn server(self: &Arc<Self>) -> KvServer<Self> {
        KvServer::from_arc(self.clone()).max_decoding_message_size(super::MAX_CLIENT_MESSAGE)
    }

    /// Range, Put, DeleteRange and Txn as unary handlers of the client API's server (see
    /// [`super::unary`]); Compact stays with the tonic service ([`KvService::server`]).
    pub(crate) fn routes(self: &Arc<Self>) -> Routes {
        let svc = self.clone();
        Routes::new()
            .max_message_size(super::MAX_CLIENT_MESSAGE)
            .handler("/etcdserverpb.KV/Range", method(&svc, |s, r| s.range(r)))
            .handler("/etcdserverpb.KV/Put", method(&svc, |s, r| s.put(r)))
            .handler(
                "/etcdserverpb.KV/DeleteRange",
                method(&svc, |s, r| s.delete_range(r)),
            )
            .handler("/etcdserverpb.KV/Txn", method(&svc, |s, r| s.txn(r)))
    }

    /// Proposes a write and shapes its applied response; followers forward with `remote`.
    async fn write<T, F, RF>(
        &self,
        ctx: CallCtx,
        req: InternalRequest,
        pick: fn(mvcc::Response) -> Option<T>,
        remote: F,
    ) -> Result<T, Status>
    where
        F: Fn(KvClient<tonic::transport::Channel>) -> RF,
        RF: std::future::Future<Output = Result<Response<T>, Status>>,
    {
        if req.encoded_len() > self.max_request_bytes {
            return Err(error::too_large());
        }
        let router = &self.router;
        router
            .route(
                &ctx,
                || async {
                    // A follower that knows the leader sends the write there at once instead of
                    // first asking its own Raft core, which would only say where the leader is.
                    let known = if ctx.forwarded {
                        None
                    } else {
                        router.known_leader()
                    };
                    let proposed = match known {
                        Some(node) => Err(Redirect::Leader(node)),
                        None => router.propose(&req).await,
                    };
                    let response = match proposed {
                        Ok(applied) => applied.response.clone(),
                        // A follower sends the write on to the leader over the peer link, batched
                        // with the others queued there (see `forward`); a call that was already
                        // forwarded by another member's client API stays with the old path.
                        Err(Redirect::Leader(node)) if !ctx.forwarded => {
                            let Some(leader) = router.member_id_of(&node) else {
                                return Err(Redirect::NoLeader);
                            };
                            let o = router.forward_queue().send(
                                router.peers(),
                                leader,
                                &node.peer_url,
                                req.clone(),
                            );
                            crate::routing::response_of(o.await?).ok_or_else(|| {
                                Redirect::Fail(Status::internal("mismatched forwarded response"))
                            })?
                        }
                        Err(e) => return Err(e),
                    };
                    pick(response).ok_or_else(|| {
                        Redirect::Fail(Status::internal("mismatched apply response"))
                    })
                },
                |ch| {
                    let fut = remote(KvClient::new(ch));
                    async move { fut.await.map(Response::into_inner) }
                },
            )
            .await
    }
}

/// A `Kv` method of `svc` as a handler.
fn method<Req, Resp>(
    svc: &Arc<KvService>,
    f: for<'a> fn(&'a KvService, Request<Req>) -> BoxFuture<'a, Resp>,
) -> Arc<dyn grpc_lite::server::Handler>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + 'static,
{
    let svc = Arc::clone(svc);
    handler(move |r| {
        let svc = Arc::clone(&svc);
        async move { f(&svc, r).await }
    })
}

type BoxFuture<'a, Resp> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<Resp>, Status>> + Send + 'a>,
>;

fn check_key(key: &[u8]) -> Result<(), Status> {
    if key.is_empty() {
        return Err(error::empty_key());
    }
    Ok(())
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let ctx = CallCtx::of(&req);
        let caller = Caller::of(&req);
        let r = req.into_inner();
        check_key(&r.key)?;
        caller.may_range(&self.router, &r).await?;
        let router = &self.router;
        let local_read = || {
            router
                .sm()
                .read(|s| s.range(&r))
                .map_err(|e| error::status_of(&e))
        };
        let resp = if r.serializable {
            local_read()?
        } else {
            // Served here once this member has applied up to a read index the leader
            // confirmed after the call arrived (also on a follower); carried to the leader
            // only when that cannot be had.
            let stats = &router.read_stats();
            router
                .route(
                    &ctx,
                    || async {
                        router.linearizable_barrier(&ctx).await?;
                        stats.local.fetch_add(1, Ordering::Relaxed);
                        local_read().map_err(Redirect::Fail)
                    },
                    |ch| {
                        stats.forwarded.fetch_add(1, Ordering::Relaxed);
                        let fwd = forwarded_request(r.clone(), &ctx);
                        async move { KvClient::new(ch).range(fwd).await.map(Response::into_inner) }
                    },
                )
                .await?
        };
        let mut resp = resp;
        resp.header = Some(router.restamp(resp.header));
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let ctx = CallCtx::of(&req);
        let caller = Caller::of(&req);
        let r = req.into_inner();
        check_key(&r.key)?;
        if r.ignore_value && !r.value.is_empty() {
            return Err(Status::invalid_argument("etcdserver: value is provided"));
        }
        if r.ignore_lease && r.lease != 0 {
            return Err(Status::invalid_argument("etcdserver: lease is provided"));
        }
        caller.may_put(&self.router, &r).await?;
        let ir = InternalRequest {
            request: Some(Ir::Put(r.clone())),
        };
        let pick = |resp| match resp {
            mvcc::Response::Put(p) => Some(p),
            _ => None,
        };
        let mut resp = self
            .write(ctx_clone(&ctx), ir, pick, |mut c| {
                let fwd = forwarded_request(r.clone(), &ctx);
                async move { c.put(fwd).await }
            })
            .await?;
        resp.header = Some(self.router.restamp(resp.header));
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let ctx = CallCtx::of(&req);
        let caller = Caller::of(&req);
        let r = req.into_inner();
        check_key(&r.key)?;
        caller.may_delete(&self.router, &r).await?;
        let ir = InternalRequest {
            request: Some(Ir::DeleteRange(r.clone())),
        };
        let pick = |resp| match resp {
            mvcc::Response::DeleteRange(p) => Some(p),
            _ => None,
        };
        let mut resp = self
            .write(ctx_clone(&ctx), ir, pick, |mut c| {
                let fwd = forwarded_request(r.clone(), &ctx);
                async move { c.delete_range(fwd).await }
            })
            .await?;
        resp.header = Some(self.router.restamp(resp.header));
        Ok(Response::new(resp))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let ctx = CallCtx::of(&req);
        let caller = Caller::of(&req);
        let r = req.into_inner();
        caller.may_txn(&self.router, &r).await?;
        let ir = InternalRequest {
            request: Some(Ir::Txn(r.clone())),
        };
        let pick = |resp| match resp {
            mvcc::Response::Txn(p) => Some(p),
            _ => None,
        };
        let mut resp = self
            .write(ctx_clone(&ctx), ir, pick, |mut c| {
                let fwd = forwarded_request(r.clone(), &ctx);
                async move { c.txn(fwd).await }
            })
            .await?;
        resp.header = Some(self.router.restamp(resp.header));
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let ctx = CallCtx::of(&req);
        Caller::of(&req).known(&self.router).await?;
        let r = req.into_inner();
        let ir = InternalRequest {
            request: Some(Ir::Compaction(r)),
        };
        let pick = |resp| match resp {
            mvcc::Response::Compaction(p) => Some(p),
            _ => None,
        };
        let mut resp = self
            .write(ctx_clone(&ctx), ir, pick, |mut c| {
                let fwd = forwarded_request(r, &ctx);
                async move { c.compact(fwd).await }
            })
            .await?;
        resp.header = Some(self.router.restamp(resp.header));
        Ok(Response::new(resp))
    }
}

fn ctx_clone(ctx: &CallCtx) -> CallCtx {
    ctx.clone()
}
