//! The permission checks etcd makes on every KV, lease and watch call once auth is enabled
//! (`etcdserver/apply_auth.go`, `v3_server.go`'s `doSerialize`, `v3rpc/watch.go`): the
//! caller's simple token (gRPC metadata `token`, or `authorization` as etcd's grpc-gateway
//! passes it) names a user in the replicated auth state, and that user's roles must cover the
//! keys. Checked on the member that receives the call, against what it has applied; a call it
//! forwards carries the token, so the leader checks again.

use mvcc::{Auth, AuthError, Need};
use proto::etcdserverpb::request_op::Request as Op;
use proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, WatchCreateRequest,
};
use tonic::{Request, Status};

use crate::routing::Router;

/// The metadata keys etcd reads a token from (`rpctypes.TokenFieldNameGRPC`/`...Swagger`).
pub(crate) use crate::routing::TOKEN;
const AUTHORIZATION: &str = "authorization";

/// Longest wait for this member to apply the entry that issued a token.
const TOKEN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) use crate::errors::auth_status as status;

/// Who is calling: the token the call carried, if any.
#[derive(Clone, Debug, Default)]
pub(crate) struct Caller {
    token: Option<String>,
}

impl Caller {
    pub(crate) fn of<T>(req: &Request<T>) -> Self {
        let md = req.metadata();
        let token = md
            .get(TOKEN)
            .or_else(|| md.get(AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Caller { token }
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The user the token names; an unknown token is etcd's "invalid auth token", whether or
    /// not auth is enabled (etcd drops every token when auth is disabled).
    pub(crate) fn user<'a>(&self, a: &'a Auth) -> Result<Option<&'a str>, AuthError> {
        match &self.token {
            None => Ok(None),
            Some(t) => a
                .user_of_token(t)
                .map(Some)
                .ok_or(AuthError::InvalidAuthToken),
        }
    }

    /// A token names the log index that issued it: wait (briefly) until this member has
    /// applied it, as etcd's `isValidSimpleToken` waits, so a token fresh from another
    /// member is known here.
    async fn settle(&self, router: &Router) {
        let index = self
            .token
            .as_deref()
            .and_then(|t| t.rsplit_once('.'))
            .and_then(|(_, i)| i.parse::<u64>().ok());
        if let Some(index) = index {
            let deadline = tokio::time::Instant::now() + TOKEN_WAIT;
            // Timing out leaves the token unknown: "invalid auth token", as etcd answers.
            let _ = router.wait_applied(index, Some(deadline)).await;
        }
    }

    /// Runs `f` with the auth state and the caller's user, mapping its error to etcd's status.
    async fn with<T>(
        &self,
        router: &Router,
        f: impl FnOnce(&mvcc::Store, &Auth, Option<&str>) -> Result<T, AuthError>,
    ) -> Result<T, Status> {
        self.settle(router).await;
        router
            .sm()
            .read(|s| {
                let a = s.auth();
                if !a.enabled() && self.token.is_none() {
                    // The common case: nothing to check.
                    return f(s, a, None);
                }
                let user = self.user(a)?;
                f(s, a, user)
            })
            .map_err(|e| status(&e))
    }

    /// Only that a token, if the call carries one, is known here: etcd looks the token up
    /// (`AuthInfoFromCtx`) before proposing any Raft request, so Compact, LeaseGrant and Alarm
    /// need no permission but a bad token is "invalid auth token".
    pub(crate) async fn known(&self, router: &Router) -> Result<(), Status> {
        self.with(router, |_, _, _| Ok(())).await
    }

    /// Root only (etcd's `IsAdminPermitted`): auth management, Defragment, Hash, HashKV.
    pub(crate) async fn admin(&self, router: &Router) -> Result<(), Status> {
        self.with(router, |_, a, u| a.check_admin(u)).await
    }

    /// [`Caller::admin`] as etcd's maintenance server answers it: the auth store's own error,
    /// not turned into its gRPC form (code UNKNOWN, "auth: ..."; etcd 3.4 does so for
    /// Defragment, Hash, HashKV and Snapshot).
    pub(crate) async fn admin_raw(&self, router: &Router) -> Result<(), Status> {
        self.admin(router).await.map_err(|s| raw(&s))
    }

    /// [`Caller::known`] as etcd's maintenance server answers Alarm: UNKNOWN
    /// "auth: invalid auth token" (its Alarm hands the auth store's error back unconverted).
    pub(crate) async fn known_raw(&self, router: &Router) -> Result<(), Status> {
        self.known(router).await.map_err(|s| raw(&s))
    }

    /// The name the token names, for the calls a user may make on itself (UserGet).
    pub(crate) async fn name(&self, router: &Router) -> Result<Option<String>, Status> {
        self.with(router, |_, _, u| Ok(u.map(str::to_owned))).await
    }

    pub(crate) async fn may_range(&self, router: &Router, r: &RangeRequest) -> Result<(), Status> {
        self.with(router, |_, a, u| {
            a.check(u, &r.key, &r.range_end, Need::Read)
        })
        .await
    }

    /// Write on the key, write on every key of the lease it attaches to (etcd's
    /// `checkLeasePuts`), read on the key if the previous value is asked for.
    pub(crate) async fn may_put(&self, router: &Router, r: &PutRequest) -> Result<(), Status> {
        self.with(router, |s, a, u| {
            a.check(u, &r.key, &[], Need::Write)?;
            lease_puts(s, a, u, r.lease)?;
            if r.prev_kv {
                a.check(u, &r.key, &[], Need::Read)?;
            }
            Ok(())
        })
        .await
    }

    pub(crate) async fn may_delete(
        &self,
        router: &Router,
        r: &DeleteRangeRequest,
    ) -> Result<(), Status> {
        self.with(router, |_, a, u| {
            a.check(u, &r.key, &r.range_end, Need::Write)?;
            if r.prev_kv {
                a.check(u, &r.key, &r.range_end, Need::Read)?;
            }
            Ok(())
        })
        .await
    }

    /// Every key the txn compares, reads or writes, in either branch (etcd's `checkTxnAuth`;
    /// nested txns are checked too, which etcd 3.4 forgets).
    pub(crate) async fn may_txn(&self, router: &Router, t: &TxnRequest) -> Result<(), Status> {
        self.with(router, |_, a, u| txn(a, u, t)).await
    }

    /// Write on every key attached to the lease (etcd checks revokes so).
    pub(crate) async fn may_revoke(&self, router: &Router, lease: i64) -> Result<(), Status> {
        self.with(router, |s, a, u| lease_puts(s, a, u, lease))
            .await
    }

    /// Why a watch may not be created (etcd cancels it with this reason), `None` if it may.
    pub(crate) async fn watch_denied(
        &self,
        router: &Router,
        c: &WatchCreateRequest,
    ) -> Option<String> {
        // etcd turns an end of "\0" into "no end" before checking: a single key.
        let end: &[u8] = if c.range_end == [0] {
            &[]
        } else {
            &c.range_end
        };
        let denied = self
            .with(router, |_, a, u| a.check(u, &c.key, end, Need::Read))
            .await
            .err()?;
        // etcd's reason is the gRPC error's text (grpc-go's `status.Error`).
        Some(format!(
            "rpc error: code = {:?} desc = {}",
            denied.code(),
            denied.message()
        ))
    }
}

/// An auth error as the auth store states it, not in its gRPC form.
fn raw(s: &Status) -> Status {
    let text = match s.message() {
        m if m == AuthError::UserNotFound.to_string() => "auth: user not found".into(),
        m => m.replacen("etcdserver: ", "auth: ", 1),
    };
    Status::unknown(text)
}

fn lease_puts(s: &mvcc::Store, a: &Auth, u: Option<&str>, lease: i64) -> Result<(), AuthError> {
    if !a.enabled() || lease == 0 {
        return Ok(());
    }
    if let Some(l) = s.lease(lease) {
        for key in &l.keys {
            a.check(u, key, &[], Need::Write)?;
        }
    }
    Ok(())
}

fn txn(a: &Auth, u: Option<&str>, t: &TxnRequest) -> Result<(), AuthError> {
    for c in &t.compare {
        a.check(u, &c.key, &c.range_end, Need::Read)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(Op::RequestRange(r)) => a.check(u, &r.key, &r.range_end, Need::Read)?,
            Some(Op::RequestPut(p)) => a.check(u, &p.key, &[], Need::Write)?,
            Some(Op::RequestDeleteRange(d)) => {
                if d.prev_kv {
                    a.check(u, &d.key, &d.range_end, Need::Read)?;
                }
                a.check(u, &d.key, &d.range_end, Need::Write)?;
            }
            Some(Op::RequestTxn(inner)) => txn(a, u, inner)?,
            None => {}
        }
    }
    Ok(())
}
