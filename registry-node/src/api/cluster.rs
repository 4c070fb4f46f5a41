//! `etcdserverpb.Cluster`: the member list (tonic, also served on the peer URL, where a joining
//! member asks for its id), and the membership changes (MemberAdd, MemberRemove, MemberUpdate,
//! MemberPromote) plus `Maintenance.MoveLeader` as unary handlers at etcd's paths, so the
//! tonic services other code implements keep their methods. A follower carries a change to
//! the leader's client URL (etcd forwards promotions the same way); MoveLeader is answered
//! only by the leader, as etcd's (etcdctl looks the leader up itself). The rules are in
//! [`crate::membership`].

use openraft::async_runtime::WatchReceiver as _;
use std::future::Future;
use std::sync::Arc;

use grpc_lite::server::Routes;
use proto::etcdserverpb::cluster_server::{Cluster, ClusterServer};
use proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, MoveLeaderRequest, MoveLeaderResponse,
};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::unary::handler;
use crate::access::Caller;
use crate::membership;
use crate::raft::NodeId;
use crate::routing::Router;
use crate::routing::{forwarded_request, CallCtx};

const ADD: &str = "/etcdserverpb.Cluster/MemberAdd";
const REMOVE: &str = "/etcdserverpb.Cluster/MemberRemove";
const UPDATE: &str = "/etcdserverpb.Cluster/MemberUpdate";
const PROMOTE: &str = "/etcdserverpb.Cluster/MemberPromote";
const MOVE_LEADER: &str = "/etcdserverpb.Maintenance/MoveLeader";
/// Internal: a starting member records its name and client URL (see
/// [`membership::join::publish_loop`]); carried to the leader like the changes above.
const PUBLISH: &str = "/registrypb.Membership/Publish";

pub(crate) struct ClusterService {
    router: Arc<Router>,
}

impl ClusterService {
    pub(crate) fn new(router: Arc<Router>) -> ClusterServer<Self> {
        ClusterServer::new(ClusterService { router })
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let revision = self.router.sm().read(|s| s.revision());
        Ok(Response::new(MemberListResponse {
            header: Some(self.router.header(revision)),
            members: membership::current_members(&self.router),
        }))
    }
}

/// The membership changes and MoveLeader as handlers of the client port's server.
pub(crate) fn routes(router: Arc<Router>) -> Routes {
    Routes::new()
        .handler(ADD, on(&router, member_add))
        .handler(REMOVE, on(&router, member_remove))
        .handler(UPDATE, on(&router, member_update))
        .handler(PROMOTE, on(&router, member_promote))
        .handler(MOVE_LEADER, on(&router, move_leader))
        .handler(PUBLISH, on(&router, publish_call))
}

fn on<Req, Resp, Fut>(
    router: &Arc<Router>,
    f: fn(Arc<Router>, Request<Req>) -> Fut,
) -> Arc<dyn grpc_lite::server::Handler>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + 'static,
    Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
{
    let router = Arc::clone(router);
    handler(move |r| f(Arc::clone(&router), r))
}

/// etcd's Cluster headers carry no revision.
fn header(router: &Router) -> Option<proto::etcdserverpb::ResponseHeader> {
    Some(router.header(0))
}

async fn member_add(
    router: Arc<Router>,
    req: Request<MemberAddRequest>,
) -> Result<Response<MemberAddResponse>, Status> {
    // Root only once auth is on (etcd's checkMembershipOperationPermission).
    Caller::of(&req).admin(&router).await?;
    let ctx = CallCtx::of(&req);
    let r = req.into_inner();
    let resp = router
        .route(
            &ctx,
            || async {
                let (member, members) =
                    membership::add(&router, &ctx, &r.peer_urls, r.is_learner).await?;
                Ok(MemberAddResponse {
                    header: header(&router),
                    member: Some(member),
                    members,
                })
            },
            |ch| unary(ch, ADD, forwarded_request(r.clone(), &ctx)),
        )
        .await?;
    settle(&router, &resp.members).await;
    Ok(Response::new(MemberAddResponse {
        header: header(&router),
        ..resp
    }))
}

async fn member_remove(
    router: Arc<Router>,
    req: Request<MemberRemoveRequest>,
) -> Result<Response<MemberRemoveResponse>, Status> {
    // Root only once auth is on (etcd's checkMembershipOperationPermission).
    Caller::of(&req).admin(&router).await?;
    let ctx = CallCtx::of(&req);
    let r = req.into_inner();
    let id = r.id;
    let members = change(
        &router,
        &ctx,
        REMOVE,
        r,
        |resp: MemberRemoveResponse| resp.members,
        || membership::remove(&router, &ctx, id),
    )
    .await?;
    Ok(Response::new(MemberRemoveResponse {
        header: header(&router),
        members,
    }))
}

async fn member_update(
    router: Arc<Router>,
    req: Request<MemberUpdateRequest>,
) -> Result<Response<MemberUpdateResponse>, Status> {
    // Root only once auth is on (etcd's checkMembershipOperationPermission).
    Caller::of(&req).admin(&router).await?;
    let ctx = CallCtx::of(&req);
    let r = req.into_inner();
    let (id, peer_urls) = (r.id, r.peer_urls.clone());
    let members = change(
        &router,
        &ctx,
        UPDATE,
        r,
        |resp: MemberUpdateResponse| resp.members,
        || membership::update(&router, &ctx, id, &peer_urls),
    )
    .await?;
    Ok(Response::new(MemberUpdateResponse {
        header: header(&router),
        members,
    }))
}

async fn member_promote(
    router: Arc<Router>,
    req: Request<MemberPromoteRequest>,
) -> Result<Response<MemberPromoteResponse>, Status> {
    // Root only once auth is on (etcd's checkMembershipOperationPermission).
    Caller::of(&req).admin(&router).await?;
    let ctx = CallCtx::of(&req);
    let r = req.into_inner();
    let id = r.id;
    let members = change(
        &router,
        &ctx,
        PROMOTE,
        r,
        |resp: MemberPromoteResponse| resp.members,
        || membership::promote(&router, &ctx, id),
    )
    .await?;
    Ok(Response::new(MemberPromoteResponse {
        header: header(&router),
        members,
    }))
}

/// A membership change answered with the member list: made here if this member leads
/// (`local`), else carried to the leader's client URL at `path` (its answer's list taken by
/// `members_of`); then settled (see [`settle`]).
async fn change<Req, Resp, L, LF>(
    router: &Router,
    ctx: &CallCtx,
    path: &'static str,
    req: Req,
    members_of: fn(Resp) -> Vec<Member>,
    local: L,
) -> Result<Vec<Member>, Status>
where
    Req: prost::Message + Clone + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
    L: FnMut() -> LF,
    LF: Future<Output = Result<Vec<Member>, crate::routing::Redirect>>,
{
    let members = router
        .route(ctx, local, |ch| {
            let req = forwarded_request(req.clone(), ctx);
            async move { unary::<Req, Resp>(ch, path, req).await.map(members_of) }
        })
        .await?;
    settle(router, &members).await;
    Ok(members)
}

async fn move_leader(
    router: Arc<Router>,
    req: Request<MoveLeaderRequest>,
) -> Result<Response<MoveLeaderResponse>, Status> {
    let ctx = CallCtx::of(&req);
    membership::move_leader(&router, &ctx, req.get_ref().target_id).await?;
    // etcd answers an empty response.
    Ok(Response::new(MoveLeaderResponse::default()))
}

async fn publish_call(
    router: Arc<Router>,
    req: Request<Member>,
) -> Result<Response<MemberUpdateResponse>, Status> {
    let ctx = CallCtx::of(&req);
    let m = req.into_inner();
    let (id, name) = (m.id, m.name.clone());
    let client_url = m.client_urls.first().cloned().unwrap_or_default();
    let members = change(
        &router,
        &ctx,
        PUBLISH,
        m,
        |resp: MemberUpdateResponse| resp.members,
        || membership::publish(&router, &ctx, id, &name, &client_url),
    )
    .await?;
    Ok(Response::new(MemberUpdateResponse {
        header: header(&router),
        members,
    }))
}

/// A change carried to the leader is answered once this member lists it too, as an etcd
/// member answers a change after applying it itself (so a MemberList that follows agrees).
/// Bounded: a member the change removed never hears of it.
async fn settle(router: &Router, members: &[Member]) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut metrics = router.raft().metrics();
    while membership::current_members(router) != members {
        if !matches!(
            tokio::time::timeout_at(deadline, metrics.changed()).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

/// Records this member's name and client URL in the membership, through the leader.
pub(crate) async fn publish(
    router: &Arc<Router>,
    id: NodeId,
    name: &str,
    client_url: &str,
) -> Result<(), Status> {
    let req = Request::new(Member {
        id,
        name: name.to_owned(),
        client_urls: vec![client_url.to_owned()],
        ..Default::default()
    });
    publish_call(Arc::clone(router), req).await.map(|_| ())
}

/// One unary call of `path` on another member's client URL.
async fn unary<Req, Resp>(
    ch: Channel,
    path: &'static str,
    req: Request<Req>,
) -> Result<Resp, Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("connect to the leader: {e}")))?;
    let path = http::uri::PathAndQuery::from_static(path);
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    Ok(grpc.unary(req, path, codec).await?.into_inner())
}
