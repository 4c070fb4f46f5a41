//! `Authenticate`: the password is checked on the leader (a follower forwards the call, so
//! one bcrypt runs per call), then the token's random part is proposed; every member stores
//! `random.index` when it applies the entry, so the token works on any member. Also the
//! helpers the Auth service shares: bcrypt off the async threads, forwarding with the token.

use mvcc::{AuthError, AuthResponse};
use proto::etcdserverpb::auth_client::AuthClient;
use proto::etcdserverpb::{AuthenticateRequest, AuthenticateResponse};
use proto::registrypb::internal_request::Request as Ir;
use proto::registrypb::{InternalAuthenticateRequest, InternalRequest};
use rand::Rng;
use tonic::{Request, Response, Status};

use crate::access::{status, Caller, TOKEN};
use crate::routing::Router;
use crate::routing::{forwarded_request, CallCtx, Redirect};

/// etcd's default bcrypt cost (`bcrypt.DefaultCost`).
const BCRYPT_COST: u32 = 10;

/// Password checks before giving up when auth changes keep landing between check and apply.
const ATTEMPTS: usize = 5;

pub(crate) async fn authenticate(
    router: &Router,
    req: Request<AuthenticateRequest>,
) -> Result<Response<AuthenticateResponse>, Status> {
    let (ctx, caller) = (CallCtx::of(&req), Caller::of(&req));
    let r = req.into_inner();
    let resp = router
        .route(
            &ctx,
            || async {
                // The leader checks the password: one bcrypt per call wherever it lands.
                if !ctx.forwarded {
                    if let Some(node) = router.known_leader() {
                        return Err(Redirect::Leader(node));
                    }
                }
                router.linearizable_barrier(&ctx).await?;
                // The password was checked at one auth revision; if a change lands before
                // the token's entry, the apply refuses it and the check runs again.
                for _ in 0..ATTEMPTS {
                    let found = router.sm().read(|s| {
                        let a = s.auth();
                        if !a.enabled() {
                            return Err(AuthError::AuthNotEnabled);
                        }
                        let u = a.user(&r.name).ok_or(AuthError::AuthFailed)?;
                        Ok((u.password.clone(), a.revision()))
                    });
                    let (hashed, revision) = found.map_err(|e| Redirect::Fail(status(&e)))?;
                    if !verify(r.password.clone(), hashed).await {
                        return Err(Redirect::Fail(status(&AuthError::AuthFailed)));
                    }
                    let ir = InternalRequest {
                        request: Some(Ir::Authenticate(InternalAuthenticateRequest {
                            name: r.name.clone(),
                            simple_token: token_prefix(),
                            checked_revision: revision,
                        })),
                    };
                    match router.propose(&ir).await {
                        Ok(applied) => match &applied.response {
                            mvcc::Response::Auth(AuthResponse::Authenticate(a)) => {
                                return Ok(a.clone())
                            }
                            _ => {
                                return Err(Redirect::Fail(Status::internal(
                                    "mismatched apply response",
                                )))
                            }
                        },
                        Err(Redirect::Fail(s))
                            if s.message() == AuthError::AuthOldRevision.to_string() =>
                        {
                            continue
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(Redirect::Fail(status(&AuthError::AuthOldRevision)))
            },
            |ch| {
                let f = forward(r.clone(), &ctx, &caller);
                async move {
                    AuthClient::new(ch)
                        .authenticate(f)
                        .await
                        .map(Response::into_inner)
                }
            },
        )
        .await?;
    Ok(Response::new(AuthenticateResponse {
        header: Some(router.restamp(resp.header)),
        token: resp.token,
    }))
}

/// `msg` marked forwarded, with the caller's token, so the leader checks the same user.
pub(crate) fn forward<Q>(msg: Q, ctx: &CallCtx, caller: &Caller) -> Request<Q> {
    let mut req = forwarded_request(msg, ctx);
    if let Some(t) = caller.token().and_then(|t| t.parse().ok()) {
        req.metadata_mut().insert(TOKEN, t);
    }
    req
}

/// bcrypt off the async threads: it takes tens of milliseconds by design.
pub(crate) async fn hash(password: String) -> Result<String, Status> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, BCRYPT_COST))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::internal(e.to_string()))
}

async fn verify(password: String, hashed: Vec<u8>) -> bool {
    tokio::task::spawn_blocking(move || {
        let hashed = String::from_utf8_lossy(&hashed).into_owned();
        bcrypt::verify(password, &hashed).unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// etcd's simple token prefix: 16 random letters.
fn token_prefix() -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..16)
        .map(|_| LETTERS[rng.random_range(0..LETTERS.len())] as char)
        .collect()
}
