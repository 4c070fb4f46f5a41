//! go-micro's error: `{"id", "code", "detail", "status"}`, what a caller of a service gets back.
//!
//! `code` is an HTTP status code and `status` its reason phrase, as in go-micro's `errors`
//! package. Over gRPC the error travels as the JSON text of the status message (what go-micro's
//! gRPC client parses) and again as the status details, so a caller gets the service's own error
//! back unchanged; [`Error::from_status`] decodes it and falls back to mapping the gRPC code.

use serde::{Deserialize, Serialize};
use tonic::Code;

/// A go-micro error, as JSON `{"id":"go.micro.srv.greeter","code":400,"detail":"...","status":"Bad Request"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.to_json())]
pub struct Error {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub status: String,
}

/// The HTTP reason phrase of `code`, as go-micro's `http.StatusText`.
pub fn status_text(code: i32) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

impl Error {
    /// An error with `code` and its reason phrase.
    pub fn new(id: impl Into<String>, code: i32, detail: impl Into<String>) -> Self {
        Error {
            id: id.into(),
            code,
            detail: detail.into(),
            status: status_text(code).to_owned(),
        }
    }

    pub fn bad_request(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 400, detail)
    }

    pub fn unauthorized(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 401, detail)
    }

    pub fn forbidden(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 403, detail)
    }

    pub fn not_found(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 404, detail)
    }

    pub fn method_not_allowed(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 405, detail)
    }

    pub fn timeout(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 408, detail)
    }

    pub fn conflict(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 409, detail)
    }

    pub fn internal_server_error(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(id, 500, detail)
    }

    /// Compact JSON, the form go-micro puts on the wire and in HTTP bodies.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| self.detail.clone())
    }

    /// Parses go-micro's JSON error; `None` if `text` is not one (no `id` and no `code`).
    pub fn parse(text: &str) -> Option<Self> {
        let err: Error = serde_json::from_str(text).ok()?;
        (err.code != 0 || !err.id.is_empty()).then_some(err)
    }

    /// The go-micro error carried by a gRPC status, or one mapped from its code; `id` names the
    /// callee when the status carries no error of its own.
    pub fn from_status(id: &str, status: &tonic::Status) -> Self {
        let carried = std::str::from_utf8(status.details())
            .ok()
            .and_then(Error::parse)
            .or_else(|| Error::parse(status.message()));
        if let Some(err) = carried {
            return err;
        }
        Error::new(id, http_code(status.code()), status.message())
    }

    /// Whether `status` carries a go-micro error written by a service (an application error).
    pub fn is_carried_by(status: &tonic::Status) -> bool {
        std::str::from_utf8(status.details())
            .ok()
            .and_then(Error::parse)
            .is_some()
            || Error::parse(status.message()).is_some()
    }
}

/// The HTTP code go-micro uses for a gRPC code.
pub fn http_code(code: Code) -> i32 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::DeadlineExceeded | Code::Cancelled => 408,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

/// The gRPC code for an HTTP code.
pub fn grpc_code(code: i32) -> Code {
    match code {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        408 => Code::DeadlineExceeded,
        409 => Code::AlreadyExists,
        429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        _ => Code::Internal,
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        let json = err.to_json();
        tonic::Status::with_details(grpc_code(err.code), json.clone(), json.into_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_go_micro() {
        let err = Error::bad_request("go.micro.api.greeter", "Name cannot be blank");
        assert_eq!(
            err.to_json(),
            r#"{"id":"go.micro.api.greeter","code":400,"detail":"Name cannot be blank","status":"Bad Request"}"#
        );
    }

    #[test]
    fn travels_through_a_grpc_status() {
        let err = Error::not_found("svc", "no such thing");
        let status: tonic::Status = err.clone().into();
        assert_eq!(status.code(), Code::NotFound);
        assert!(Error::is_carried_by(&status));
        assert_eq!(Error::from_status("other", &status), err);
    }

    #[test]
    fn plain_status_maps_by_code() {
        let status = tonic::Status::unavailable("tcp connect error");
        assert!(!Error::is_carried_by(&status));
        let err = Error::from_status("svc", &status);
        assert_eq!((err.code, err.id.as_str()), (503, "svc"));
        assert_eq!(err.status, "Service Unavailable");
    }

    #[test]
    fn not_json_is_not_an_error() {
        assert!(Error::parse("hello").is_none());
        assert!(Error::parse("{}").is_none());
    }
}
