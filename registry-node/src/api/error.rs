//! The one mapping from the registry's errors to etcd's gRPC codes and texts.

use tonic::{Code, Status};

/// etcd's texts for conditions the API layer itself detects.
pub const NO_LEADER: &str = "etcdserver: no leader";
pub const LEADER_CHANGED: &str = "etcdserver: leader changed";
pub const TIMED_OUT: &str = "etcdserver: request timed out";
pub const STOPPED: &str = "etcdserver: server stopped";
pub const TOO_LARGE: &str = "etcdserver: request is too large";
pub const EMPTY_KEY: &str = "etcdserver: key is not provided";

pub fn status_of(e: &mvcc::Error) -> Status {
    use mvcc::Error as E;
    let code = match e {
        E::EmptyKey | E::KeyNotFound | E::TooManyOps | E::DuplicateKey => Code::InvalidArgument,
        E::Compacted | E::FutureRev | E::LeaseTTLTooLarge => Code::OutOfRange,
        E::LeaseNotFound => Code::NotFound,
        E::LeaseExists => Code::FailedPrecondition,
        E::NoSpace => Code::ResourceExhausted,
        E::Corrupt => Code::DataLoss,
        E::Auth(a) => return super::auth_check::status(a),
        #[allow(unreachable_patterns)]
        _ => Code::Internal,
    };
    Status::new(code, e.to_string())
}

pub fn no_leader() -> Status {
    Status::unavailable(NO_LEADER)
}

pub fn leader_changed() -> Status {
    Status::unavailable(LEADER_CHANGED)
}

pub fn timed_out() -> Status {
    Status::unavailable(TIMED_OUT)
}

/// The client's own deadline passed (grpc-go's server answers a handler that returns the
/// expired context's error so; tonic would say CANCELLED `Timeout expired`).
pub fn deadline_exceeded() -> Status {
    Status::deadline_exceeded("context deadline exceeded")
}

pub fn stopped() -> Status {
    Status::unavailable(STOPPED)
}

pub fn empty_key() -> Status {
    Status::invalid_argument(EMPTY_KEY)
}

pub fn too_large() -> Status {
    Status::invalid_argument(TOO_LARGE)
}

/// Whether a forwarded call failed before the leader could have acted on it, so that it is
/// safe to send again.
pub fn safe_to_retry(s: &Status) -> bool {
    s.code() == Code::Unavailable
        && (s.message() == LEADER_CHANGED
            || s.message() == NO_LEADER
            || s.message().contains("onnect")
            || s.message().contains("refused"))
}
