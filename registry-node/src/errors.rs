//! The one mapping from the registry's errors to etcd's gRPC codes and texts.

use tonic::{Code, Status};

/// etcd's texts for conditions the API layer itself detects.
pub(crate) const NO_LEADER: &str = "etcdserver: no leader";
pub(crate) const LEADER_CHANGED: &str = "etcdserver: leader changed";
pub(crate) const TIMED_OUT: &str = "etcdserver: request timed out";
pub(crate) const STOPPED: &str = "etcdserver: server stopped";
pub(crate) const TOO_LARGE: &str = "etcdserver: request is too large";
pub(crate) const EMPTY_KEY: &str = "etcdserver: key is not provided";

pub(crate) fn status_of(e: &mvcc::Error) -> Status {
    use mvcc::Error as E;
    let code = match e {
        E::EmptyKey | E::KeyNotFound | E::TooManyOps | E::DuplicateKey => Code::InvalidArgument,
        E::Compacted | E::FutureRev | E::LeaseTTLTooLarge => Code::OutOfRange,
        E::LeaseNotFound => Code::NotFound,
        E::LeaseExists => Code::FailedPrecondition,
        E::NoSpace => Code::ResourceExhausted,
        E::Corrupt => Code::DataLoss,
        E::Auth(a) => return auth_status(a),
        #[allow(unreachable_patterns)]
        _ => Code::Internal,
    };
    Status::new(code, e.to_string())
}

pub(crate) fn no_leader() -> Status {
    Status::unavailable(NO_LEADER)
}

pub(crate) fn leader_changed() -> Status {
    Status::unavailable(LEADER_CHANGED)
}

pub(crate) fn timed_out() -> Status {
    Status::unavailable(TIMED_OUT)
}

/// The client's own deadline passed (grpc-go's server answers a handler that returns the
/// expired context's error so; tonic would say CANCELLED `Timeout expired`).
pub(crate) fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("context deadline exceeded")
}

pub(crate) fn stopped() -> Status {
    Status::unavailable(STOPPED)
}

pub(crate) fn empty_key() -> Status {
    Status::invalid_argument(EMPTY_KEY)
}

pub(crate) fn too_large() -> Status {
    Status::invalid_argument(TOO_LARGE)
}

/// Whether a forwarded call failed before the leader could have acted on it, so that it is
/// safe to send again: the leader answered etcd's "leader changed" or "no leader" (it proposed
/// nothing), or the channel to it never connected (the request never left this member). A
/// connection that broke after it was up is not safe: the leader may have applied the call.
pub(crate) fn safe_to_retry(s: &Status) -> bool {
    s.code() == Code::Unavailable
        && (s.message() == LEADER_CHANGED || s.message() == NO_LEADER || never_connected(s))
}

/// The status carries a failure to establish the connection: tonic wraps whatever failed
/// while connecting (refused, unreachable, the connect timeout) in its `ConnectError`.
fn never_connected(s: &Status) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(e) = cur {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// etcd's gRPC code for each auth error (`rpctypes/error.go`).
pub(crate) fn auth_status(e: &mvcc::AuthError) -> Status {
    use mvcc::AuthError as E;
    let code = match e {
        E::UserEmpty | E::RoleEmpty | E::AuthFailed | E::InvalidAuthMgmt | E::AuthOldRevision => {
            Code::InvalidArgument
        }
        E::PermissionDenied => Code::PermissionDenied,
        E::InvalidAuthToken => Code::Unauthenticated,
        _ => Code::FailedPrecondition,
    };
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::etcdserverpb::kv_client::KvClient;
    use proto::etcdserverpb::PutRequest;

    #[tokio::test]
    async fn a_call_that_never_connected_may_be_sent_again() {
        // A port nobody listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("url")
            .connect_lazy();
        let err = KvClient::new(ch)
            .put(PutRequest::default())
            .await
            .expect_err("nobody listens");
        assert!(safe_to_retry(&err), "refused connection: {err:?}");
    }

    #[test]
    fn texts_alone_do_not_make_a_call_safe_to_resend() {
        assert!(safe_to_retry(&leader_changed()));
        assert!(safe_to_retry(&no_leader()));
        assert!(!safe_to_retry(&Status::unavailable(
            "error trying to connect: refused"
        )));
        assert!(!safe_to_retry(&Status::unavailable("connection reset")));
        assert!(!safe_to_retry(&timed_out()));
    }
}
