//! `etcdserverpb.Auth`: etcd 3.4's users, roles and simple tokens. Every change goes through
//! Raft (`mvcc/src/auth_ops.rs` applies it on every member); reads are linearizable local
//! reads. Management needs the root role once auth is on ([`Caller::admin`]), checked by the
//! member that receives the call and again by the leader when it is forwarded (the token goes
//! along). Passwords are hashed with bcrypt (etcd's default cost 10) by the receiving member,
//! off the async threads; only the hash is proposed.
//!
//! `Authenticate` is in `auth_login.rs`: a token works on whichever member the client talks
//! to (see `mvcc/src/auth.rs`).

use std::sync::Arc;

use futures::future::BoxFuture;
use mvcc::{AuthError, AuthResponse};
use proto::etcdserverpb::auth_client::AuthClient;
use proto::etcdserverpb::auth_server::{Auth, AuthServer};
use proto::etcdserverpb::*;
use proto::registrypb::internal_request::Request as Ir;
use proto::registrypb::InternalRequest;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::auth_login::{forward, hash};
use crate::access::{status, Caller};
use crate::routing::Router;
use crate::routing::{CallCtx, Redirect};

type Forward<Q, T> = fn(AuthClient<Channel>, Request<Q>) -> BoxFuture<'static, Result<T, Status>>;

pub(crate) struct AuthService {
    router: Arc<Router>,
}

impl AuthService {
    pub(crate) fn new(router: Arc<Router>) -> AuthServer<Self> {
        AuthServer::new(AuthService { router })
    }

    /// Proposes `ir` (a follower forwards the call to the leader with `call`), restamps the
    /// header of the applied answer.
    async fn propose<Q, T>(
        &self,
        ctx: &CallCtx,
        caller: &Caller,
        msg: Q,
        ir: Ir,
        pick: fn(AuthResponse) -> Option<T>,
        call: Forward<Q, T>,
    ) -> Result<T, Status>
    where
        Q: Clone + Send + 'static,
    {
        let router = &self.router;
        let ir = InternalRequest { request: Some(ir) };
        router
            .route(
                ctx,
                || async {
                    match &router.propose(&ir).await?.response {
                        mvcc::Response::Auth(a) => pick(a.clone()),
                        _ => None,
                    }
                    .ok_or_else(|| Redirect::Fail(Status::internal("mismatched apply response")))
                },
                |ch| call(AuthClient::new(ch), forward(msg.clone(), ctx, caller)),
            )
            .await
    }

    /// An admin-only change: root check, propose, restamp.
    async fn admin<Q, T>(
        &self,
        req: Request<Q>,
        ir: fn(Q) -> Ir,
        pick: fn(AuthResponse) -> Option<T>,
        header: fn(&mut T) -> &mut Option<ResponseHeader>,
        call: Forward<Q, T>,
    ) -> Result<Response<T>, Status>
    where
        Q: Clone + Send + 'static,
    {
        let (ctx, caller) = (CallCtx::of(&req), Caller::of(&req));
        caller.admin(&self.router).await?;
        let r = req.into_inner();
        let mut resp = self
            .propose(&ctx, &caller, r.clone(), ir(r), pick, call)
            .await?;
        let h = header(&mut resp);
        *h = Some(self.router.restamp(h.take()));
        Ok(Response::new(resp))
    }

    /// A linearizable local read of the auth state (etcd sends these through Raft).
    async fn read<T>(
        &self,
        ctx: &CallCtx,
        f: impl Fn(&mvcc::Store) -> Result<T, AuthError>,
    ) -> Result<T, Status> {
        let router = &self.router;
        match router.linearizable_barrier(ctx).await {
            // A follower that cannot get a read index serves what it has applied.
            Ok(()) | Err(Redirect::Leader(_)) => {}
            Err(Redirect::NoLeader) => return Err(crate::errors::no_leader()),
            Err(Redirect::Fail(s)) => return Err(s),
        }
        router.sm().read(|s| f(s)).map_err(|e| status(&e))
    }

    fn header(&self) -> Option<ResponseHeader> {
        Some(self.router.header(self.router.sm().read(|s| s.revision())))
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        self.admin(
            req,
            Ir::AuthEnable,
            |a| match a {
                AuthResponse::Enable(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| Box::pin(async move { c.auth_enable(r).await.map(Response::into_inner) }),
        )
        .await
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        self.admin(
            req,
            Ir::AuthDisable,
            |a| match a {
                AuthResponse::Disable(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| Box::pin(async move { c.auth_disable(r).await.map(Response::into_inner) }),
        )
        .await
    }

    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        super::auth_login::authenticate(&self.router, req).await
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let mut req = req;
        let r = req.get_mut();
        let no_password = r.options.is_some_and(|o| o.no_password);
        // A forwarded call arrives hashed already; the password never goes into the log.
        if !no_password && r.hashed_password.is_empty() && !r.name.is_empty() {
            Caller::of(&req).admin(&self.router).await?;
            let r = req.get_mut();
            r.hashed_password = hash(std::mem::take(&mut r.password)).await?;
        }
        req.get_mut().password.clear();
        self.admin(
            req,
            Ir::AuthUserAdd,
            |a| match a {
                AuthResponse::UserAdd(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| Box::pin(async move { c.user_add(r).await.map(Response::into_inner) }),
        )
        .await
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let (ctx, caller) = (CallCtx::of(&req), Caller::of(&req));
        let r = req.into_inner();
        // A user may read itself (etcd's authApplierV3.UserGet).
        if let Err(denied) = caller.admin(&self.router).await {
            if caller.name(&self.router).await?.as_deref() != Some(r.name.as_str()) {
                return Err(denied);
            }
        }
        let roles = self
            .read(&ctx, |s| {
                let u = s.auth().user(&r.name).ok_or(AuthError::UserNotFound)?;
                Ok(u.roles.clone())
            })
            .await?;
        Ok(Response::new(AuthUserGetResponse {
            header: self.header(),
            roles,
        }))
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let ctx = CallCtx::of(&req);
        Caller::of(&req).admin(&self.router).await?;
        let users = self.read(&ctx, |s| Ok(s.auth().user_names())).await?;
        Ok(Response::new(AuthUserListResponse {
            header: self.header(),
            users,
        }))
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        self.admin(
            req,
            Ir::AuthUserDelete,
            |a| match a {
                AuthResponse::UserDelete(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| Box::pin(async move { c.user_delete(r).await.map(Response::into_inner) }),
        )
        .await
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let mut req = req;
        if req.get_ref().hashed_password.is_empty() {
            Caller::of(&req).admin(&self.router).await?;
            let r = req.get_mut();
            r.hashed_password = hash(std::mem::take(&mut r.password)).await?;
        }
        req.get_mut().password.clear();
        self.admin(
            req,
            Ir::AuthUserChangePassword,
            |a| match a {
                AuthResponse::UserChangePassword(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| {
                Box::pin(async move { c.user_change_password(r).await.map(Response::into_inner) })
            },
        )
        .await
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        self.admin(
            req,
            Ir::AuthUserGrantRole,
            |a| match a {
                AuthResponse::UserGrantRole(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| {
                Box::pin(async move { c.user_grant_role(r).await.map(Response::into_inner) })
            },
        )
        .await
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        self.admin(
            req,
            Ir::AuthUserRevokeRole,
            |a| match a {
                AuthResponse::UserRevokeRole(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| {
                Box::pin(async move { c.user_revoke_role(r).await.map(Response::into_inner) })
            },
        )
        .await
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        self.admin(
            req,
            Ir::AuthRoleAdd,
            |a| match a {
                AuthResponse::RoleAdd(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| Box::pin(async move { c.role_add(r).await.map(Response::into_inner) }),
        )
        .await
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let (ctx, caller) = (CallCtx::of(&req), Caller::of(&req));
        let r = req.into_inner();
        // A user may read a role it holds (etcd's authApplierV3.RoleGet).
        if let Err(denied) = caller.admin(&self.router).await {
            let name = caller.name(&self.router).await?.unwrap_or_default();
            if !self.router.sm().read(|s| s.auth().has_role(&name, &r.role)) {
                return Err(denied);
            }
        }
        let perm = self
            .read(&ctx, |s| {
                let role = s.auth().role(&r.role).ok_or(AuthError::RoleNotFound)?;
                Ok(role.key_permission.clone())
            })
            .await?;
        Ok(Response::new(AuthRoleGetResponse {
            header: self.header(),
            perm,
        }))
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let ctx = CallCtx::of(&req);
        Caller::of(&req).admin(&self.router).await?;
        let roles = self.read(&ctx, |s| Ok(s.auth().role_names())).await?;
        Ok(Response::new(AuthRoleListResponse {
            header: self.header(),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        self.admin(
            req,
            Ir::AuthRoleDelete,
            |a| match a {
                AuthResponse::RoleDelete(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| Box::pin(async move { c.role_delete(r).await.map(Response::into_inner) }),
        )
        .await
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        self.admin(
            req,
            Ir::AuthRoleGrantPermission,
            |a| match a {
                AuthResponse::RoleGrantPermission(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| {
                Box::pin(async move { c.role_grant_permission(r).await.map(Response::into_inner) })
            },
        )
        .await
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        self.admin(
            req,
            Ir::AuthRoleRevokePermission,
            |a| match a {
                AuthResponse::RoleRevokePermission(x) => Some(x),
                _ => None,
            },
            |r| &mut r.header,
            |mut c, r| {
                Box::pin(async move { c.role_revoke_permission(r).await.map(Response::into_inner) })
            },
        )
        .await
    }
}
