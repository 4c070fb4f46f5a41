//! `etcdserverpb.Lease`: grant and revoke go through Raft; keep-alives and time-to-live are
//! answered by the leader's lessor alone (never written to the log), and a follower carries
//! them to the leader — keep-alive streams through one upstream stream per client stream.

use std::sync::Arc;

use proto::etcdserverpb::lease_client::LeaseClient;
use proto::etcdserverpb::lease_server::{Lease, LeaseServer};
use proto::etcdserverpb::*;
use proto::registrypb::internal_request::Request as Ir;
use proto::registrypb::InternalRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::errors as error;
use crate::lease::LeaseManager;
use crate::routing::{forwarded_request, requires_leader, CallCtx, Redirect, Router};

#[derive(Clone)]
pub(crate) struct LeaseService {
    router: Arc<Router>,
    /// The lessor (primary on the leader): TTLs, renewals, expiry.
    leases: Arc<LeaseManager>,
    /// Cancelled when the member stops: keep-alive streams end with it.
    stopping: CancellationToken,
}

impl LeaseService {
    pub(crate) fn new(
        router: Arc<Router>,
        leases: Arc<LeaseManager>,
        stopping: CancellationToken,
    ) -> LeaseServer<Self> {
        LeaseServer::new(LeaseService {
            router,
            leases,
            stopping,
        })
    }

    async fn propose<T>(
        &self,
        ctx: &CallCtx,
        ir: InternalRequest,
        pick: fn(mvcc::Response) -> Option<T>,
        remote: impl Fn(
            LeaseClient<tonic::transport::Channel>,
        ) -> futures::future::BoxFuture<'static, Result<T, Status>>,
    ) -> Result<T, Status> {
        let router = &self.router;
        router
            .route(
                ctx,
                || async {
                    let applied = router.propose(&ir).await?;
                    pick(applied.response.clone()).ok_or_else(|| {
                        Redirect::Fail(Status::internal("mismatched apply response"))
                    })
                },
                |ch| remote(LeaseClient::new(ch)),
            )
            .await
    }
}

type KeepAliveStream = ReceiverStream<Result<LeaseKeepAliveResponse, Status>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let ctx = CallCtx::of(&req);
        crate::access::Caller::of(&req).known(&self.router).await?;
        let r = req.into_inner();
        let ir = InternalRequest {
            request: Some(Ir::LeaseGrant(r)),
        };
        let pick = |resp| match resp {
            mvcc::Response::LeaseGrant(g) => Some(g),
            _ => None,
        };
        let fwd = |mut c: LeaseClient<_>| -> futures::future::BoxFuture<'static, _> {
            let req = forwarded_request(r, &ctx);
            Box::pin(async move { c.lease_grant(req).await.map(Response::into_inner) })
        };
        let mut resp = self.propose(&ctx, ir, pick, fwd).await?;
        // Applied here as leader: the TTL starts now (a no-op on a member that forwarded it).
        self.leases.granted(resp.id, resp.ttl);
        resp.header = Some(self.router.restamp(resp.header));
        Ok(Response::new(resp))
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let ctx = CallCtx::of(&req);
        let caller = crate::access::Caller::of(&req);
        caller.may_revoke(&self.router, req.get_ref().id).await?;
        let r = req.into_inner();
        let ir = InternalRequest {
            request: Some(Ir::LeaseRevoke(r)),
        };
        let pick = |resp| match resp {
            mvcc::Response::LeaseRevoke(g) => Some(g),
            _ => None,
        };
        let fwd = |mut c: LeaseClient<_>| -> futures::future::BoxFuture<'static, _> {
            let req = forwarded_request(r, &ctx);
            Box::pin(async move { c.lease_revoke(req).await.map(Response::into_inner) })
        };
        let mut resp = self.propose(&ctx, ir, pick, fwd).await?;
        resp.header = Some(self.router.restamp(resp.header));
        Ok(Response::new(resp))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let ctx = CallCtx::of(&req);
        // etcd refuses only when the member knows no leader; the leader itself has one.
        if requires_leader(&req)
            && matches!(self.router.leader_redirect(), Some(Redirect::NoLeader))
        {
            return Err(error::no_leader());
        }
        let (tx, rx) = mpsc::channel(256);
        let input = req.into_inner();
        tokio::spawn(keep_alive_loop(self.clone(), ctx.forwarded, input, tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let ctx = CallCtx::of(&req);
        let r = req.into_inner();
        let router = &self.router;
        let mut resp = router
            .route(
                &ctx,
                || async {
                    if router.leader_redirect().is_none() {
                        self.leases.wait_serving().await;
                    }
                    self.time_to_live(&r)
                },
                |ch| {
                    let req = forwarded_request(r, &ctx);
                    async move {
                        LeaseClient::new(ch)
                            .lease_time_to_live(req)
                            .await
                            .map(Response::into_inner)
                    }
                },
            )
            .await?;
        resp.header = Some(router.restamp(resp.header));
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        let ctx = CallCtx::of(&req);
        let router = &self.router;
        let list = || {
            router
                .sm()
                .read(|s| s.leases().map(|l| LeaseStatus { id: l.id }).collect())
        };
        let leases = router
            .route(
                &ctx,
                || async {
                    router.read_barrier().await?;
                    Ok(list())
                },
                |ch| {
                    let req = forwarded_request(LeaseLeasesRequest {}, &ctx);
                    async move {
                        let resp = LeaseClient::new(ch).lease_leases(req).await?;
                        Ok(resp.into_inner().leases)
                    }
                },
            )
            .await?;
        let header = Some(router.restamp(None));
        Ok(Response::new(LeaseLeasesResponse { header, leases }))
    }
}

impl LeaseService {
    fn not_primary(&self) -> Redirect {
        // The leader itself may be between election and its first quorum confirmation.
        self.router.leader_redirect().unwrap_or(Redirect::NoLeader)
    }

    fn time_to_live(
        &self,
        r: &LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Redirect> {
        let remaining = self
            .leases
            .remaining(r.id)
            .map_err(|_| self.not_primary())?;
        let revision = self.router.sm().read(|s| s.revision());
        let header = Some(ResponseHeader {
            revision,
            ..Default::default()
        });
        let Some((granted, keys)) = self.router.sm().read(|s| {
            s.lease(r.id).map(|l| {
                (
                    l.ttl,
                    if r.keys {
                        l.keys.iter().cloned().collect()
                    } else {
                        Vec::new()
                    },
                )
            })
        }) else {
            return Ok(LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            });
        };
        Ok(LeaseTimeToLiveResponse {
            header,
            id: r.id,
            ttl: remaining.unwrap_or(granted),
            granted_ttl: granted,
            keys,
        })
    }
}

/// Serves one client keep-alive stream: answered here while this member is the primary
/// lessor, otherwise carried to the leader over one upstream stream (reopened when the
/// leader changes). During an election a renewal waits for the new leader instead of failing
/// the stream, so clients with short TTLs ride through a failover.
async fn keep_alive_loop(
    svc: LeaseService,
    forwarded: bool,
    mut input: Streaming<LeaseKeepAliveRequest>,
    tx: mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
) {
    let router = &svc.router;
    let mut upstream: Option<(String, mpsc::Sender<LeaseKeepAliveRequest>)> = None;
    let stopping = svc.stopping.clone();
    loop {
        let msg = tokio::select! {
            _ = stopping.cancelled() => {
                let _ = tx.send(Err(error::stopped())).await;
                return;
            }
            msg = input.message() => match msg {
                Ok(Some(m)) => m,
                _ => return,
            },
        };
        let deadline = tokio::time::Instant::now() + crate::routing::DEFAULT_DEADLINE;
        loop {
            if let Ok(ttl) = svc.leases.keep_alive(router, msg.id) {
                let header = Some(router.restamp(None));
                let resp = LeaseKeepAliveResponse {
                    header,
                    id: msg.id,
                    ttl,
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = tx.send(Err(error::no_leader())).await;
                return;
            }
            match router.leader_redirect() {
                // The leader itself, waiting for its first quorum confirmation.
                None => {
                    svc.leases.wait_serving().await;
                }
                Some(_) if forwarded => {
                    let _ = tx.send(Err(error::leader_changed())).await;
                    return;
                }
                Some(Redirect::Leader(node)) => {
                    let url = &node.client_url;
                    if upstream
                        .as_ref()
                        .is_none_or(|(u, up)| u != url || up.is_closed())
                    {
                        upstream = open_upstream(&svc, url, tx.clone())
                            .await
                            .ok()
                            .map(|up| (url.clone(), up));
                    }
                    match &upstream {
                        Some((_, up)) if up.send(msg).await.is_ok() => break,
                        _ => {
                            upstream = None;
                            router.wait_for_leader_change(deadline).await;
                        }
                    }
                }
                Some(_) => router.wait_for_leader_change(deadline).await,
            }
        }
    }
}

/// Opens a keep-alive stream to the leader whose answers go straight to `tx`.
async fn open_upstream(
    svc: &LeaseService,
    url: &str,
    tx: mpsc::Sender<Result<LeaseKeepAliveResponse, Status>>,
) -> Result<mpsc::Sender<LeaseKeepAliveRequest>, Status> {
    let ch = svc.router.client_channel(url)?;
    let (up_tx, up_rx) = mpsc::channel(256);
    let mut req = Request::new(ReceiverStream::new(up_rx));
    req.metadata_mut().insert(
        crate::routing::FORWARDED,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    let mut answers = LeaseClient::new(ch)
        .lease_keep_alive(req)
        .await?
        .into_inner();
    let (router, stopping) = (svc.router.clone(), svc.stopping.clone());
    tokio::spawn(async move {
        loop {
            let mut resp = tokio::select! {
                _ = stopping.cancelled() => return,
                a = answers.message() => match a {
                    Ok(Some(a)) => a,
                    _ => return,
                },
            };
            resp.header = Some(router.restamp(resp.header));
            if tx.send(Ok(resp)).await.is_err() {
                return;
            }
        }
    });
    Ok(up_tx)
}
