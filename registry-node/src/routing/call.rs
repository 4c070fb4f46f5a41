//! What a routed call carries: its deadline, whether it was forwarded already, the caller's
//! token, and why it could not be served here ([`Redirect`]).

use std::time::Duration;

use tokio::time::Instant;
use tonic::{Request, Status};

use crate::errors as error;
use crate::raft::MemberNode;

/// Metadata key of the caller's auth token (etcd's `token`), carried along when a call is
/// forwarded.
pub(crate) const TOKEN: &str = "token";

/// Metadata key marking a call carried from a follower to the leader.
pub(crate) const FORWARDED: &str = "x-registry-forwarded";

/// How long a request may wait for a leader or a forwarded answer without a client deadline.
pub(crate) const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Why a request could not be served here.
#[derive(Clone)]
pub(crate) enum Redirect {
    Leader(MemberNode),
    NoLeader,
    Fail(Status),
}

/// Context of one client call.
#[derive(Clone)]
pub(crate) struct CallCtx {
    pub(crate) forwarded: bool,
    pub(crate) deadline: Instant,
    /// Whether `deadline` is the client's own (`grpc-timeout`) rather than ours.
    pub(super) client_deadline: bool,
    /// The caller's auth token, carried along when the call is forwarded (api/auth_check.rs).
    token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl CallCtx {
    pub(crate) fn of<T>(req: &Request<T>) -> Self {
        let forwarded = req.metadata().contains_key(FORWARDED);
        let timeout = req
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(grpc_lite::grpc::parse_timeout_value);
        let limit = timeout
            .unwrap_or(DEFAULT_DEADLINE)
            .min(Duration::from_secs(60));
        CallCtx {
            forwarded,
            deadline: Instant::now() + limit,
            client_deadline: timeout.is_some_and(|t| t <= limit),
            token: req.metadata().get(TOKEN).cloned(),
        }
    }

    /// The answer once `deadline` has passed: etcd's DEADLINE_EXCEEDED when it was the
    /// client's deadline, etcd's own "request timed out" (UNAVAILABLE) when it was ours.
    pub(crate) fn expired(&self) -> Status {
        if self.client_deadline {
            error::deadline_exceeded()
        } else {
            error::timed_out()
        }
    }
}

/// Marks `req` as forwarded and gives it what is left of the caller's deadline.
pub(crate) fn forwarded_request<T>(msg: T, ctx: &CallCtx) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    req.set_timeout(ctx.deadline.saturating_duration_since(Instant::now()));
    if let Some(t) = &ctx.token {
        req.metadata_mut().insert(TOKEN, t.clone());
    }
    req
}

/// Whether a stream asked to fail fast without a leader (etcd's `hasleader` metadata).
pub(crate) fn requires_leader<T>(req: &Request<T>) -> bool {
    req.metadata()
        .get("hasleader")
        .and_then(|v| v.to_str().ok())
        == Some("true")
}
