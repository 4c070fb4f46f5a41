//! The gateway's errors and their one HTTP form: go-micro's JSON body
//! `{"id","code","detail","status"}` with `status` the reason phrase and the HTTP status = `code`.
//!
//! | error | HTTP | id |
//! | --- | --- | --- |
//! | no route, unknown service | 500 `not found` (as go-micro) | `go.micro.api` |
//! | malformed path | 400 | `go.micro.api` |
//! | body over the limit | 413 | `go.micro.api` |
//! | too many connections, head too large, request not read in time, call too long ([`crate::limits`]) | 503, 431, 408, 504 | `go.micro.api` |
//! | the service's own error, the client's (timeout 408, unreachable 500) | its code | its id |

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::resolve::PathError;

/// The id of errors raised by the gateway itself.
pub const API_ID: &str = "go.micro.api";

/// Why a request did not get the service's answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// go-micro answers 500 `not found` when no service matches the path.
    #[error("not found")]
    NotFound,
    #[error("malformed path")]
    MalformedPath(#[from] PathError),
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("read request body")]
    Body(#[source] axum::Error),
    #[error("looking up {service}")]
    Registry {
        service: String,
        #[source]
        source: micro::registry::Error,
    },
    #[error("too many connections (at most {max_connections}); try again later")]
    Overloaded { max_connections: usize },
    #[error("request header fields exceed the limit of {limit} bytes")]
    HeaderTooLarge { limit: usize },
    #[error("the request was not read within the read timeout")]
    ReadTimeout,
    #[error("no answer within {limit:?}")]
    CallTimeout { limit: std::time::Duration },
    #[error("invalid status code {0} in the service's answer")]
    BadStatus(i32),
    /// An error from the service or from the client calling it, passed through.
    #[error(transparent)]
    Service(micro::Error),
}

/// The reason phrase of `code` as Go's `http.StatusText` writes it.
pub fn reason(code: i32) -> String {
    let known = micro::errors::status_text(code);
    if !known.is_empty() {
        return known.to_owned();
    }
    match code {
        // Go's wording, not RFC 9110's "Content Too Large".
        413 => "Request Entity Too Large".to_owned(),
        _ => u16::try_from(code)
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .and_then(|s| s.canonical_reason())
            .unwrap_or_default()
            .to_owned(),
    }
}

fn api_error(code: i32, detail: String) -> micro::Error {
    micro::Error {
        id: API_ID.to_owned(),
        code,
        detail,
        status: reason(code),
    }
}

impl GatewayError {
    /// The go-micro error the client sees.
    pub fn to_micro(&self) -> micro::Error {
        match self {
            GatewayError::NotFound => api_error(500, "not found".to_owned()),
            GatewayError::MalformedPath(e) => api_error(400, format!("malformed path: {e}")),
            GatewayError::BodyTooLarge { .. } => api_error(413, self.to_string()),
            GatewayError::Body(e) if timed_out(e) => {
                api_error(408, GatewayError::ReadTimeout.to_string())
            }
            GatewayError::Body(e) => api_error(400, format!("read request body: {e}")),
            GatewayError::Overloaded { .. } => api_error(503, self.to_string()),
            GatewayError::HeaderTooLarge { .. } => api_error(431, self.to_string()),
            GatewayError::ReadTimeout => api_error(408, self.to_string()),
            GatewayError::CallTimeout { .. } => api_error(504, self.to_string()),
            GatewayError::Registry { service, source } => {
                api_error(500, format!("looking up {service}: {source}"))
            }
            GatewayError::BadStatus(_) => api_error(500, self.to_string()),
            GatewayError::Service(e) if status_of(e.code).is_some() => e.clone(),
            // go-micro's answer to an error without a usable code.
            GatewayError::Service(e) => {
                api_error(500, format!("error during request: {}", e.detail))
            }
        }
    }
}

/// Whether a body error is the read timeout's ([`crate::limits::BodyTimeout`]).
fn timed_out(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<crate::limits::BodyTimeout>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The HTTP status for a go-micro code, if it is one an HTTP server can write.
fn status_of(code: i32) -> Option<StatusCode> {
    u16::try_from(code)
        .ok()
        .filter(|c| (100..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let error = self.to_micro();
        let status = status_of(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let ours = !matches!(self, GatewayError::NotFound | GatewayError::Service(_));
        if status.is_server_error() && ours {
            tracing::warn!(code = error.code, error = %error.to_json(), "request failed");
        } else {
            tracing::debug!(code = error.code, error = %error.to_json(), "request refused");
        }
        let mut response = (status, error.to_json()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(err: GatewayError) -> (StatusCode, String, String) {
        let response = err.into_response();
        let status = response.status();
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).expect("utf-8"))
    }

    #[tokio::test]
    async fn not_found_is_go_micros_500() {
        let (status, ct, body) = render(GatewayError::NotFound).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(ct, "application/json");
        assert_eq!(
            body,
            r#"{"id":"go.micro.api","code":500,"detail":"not found","status":"Internal Server Error"}"#
        );
    }

    #[tokio::test]
    async fn service_errors_pass_through_with_their_code() {
        let bad = micro::Error::bad_request("go.micro.api.greeter", "Name cannot be blank");
        let (status, _, body) = render(GatewayError::Service(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, bad.to_json());

        let timeout = micro::Error::timeout("go.micro.client", "call timed out");
        let (status, _, body) = render(GatewayError::Service(timeout)).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert!(body.contains(r#""status":"Request Timeout""#), "{body}");
    }

    #[tokio::test]
    async fn unusable_codes_become_500() {
        let odd = micro::Error::new("svc", 0, "boom");
        let (status, _, body) = render(GatewayError::Service(odd)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["id"], API_ID);
        assert_eq!(json["detail"], "error during request: boom");
        let (status, _, _) = render(GatewayError::Service(micro::Error::new("s", 1000, ""))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn limits_and_malformed_paths() {
        let (status, _, body) = render(GatewayError::BodyTooLarge { limit: 1024 }).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            body,
            r#"{"id":"go.micro.api","code":413,"detail":"request body exceeds the limit of 1024 bytes","status":"Request Entity Too Large"}"#
        );
        let (status, _, body) = render(PathError::EmptySegment.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains(r#""status":"Bad Request""#), "{body}");
    }

    #[test]
    fn reason_phrases_are_gos() {
        assert_eq!(reason(404), "Not Found");
        assert_eq!(reason(413), "Request Entity Too Large");
        assert_eq!(reason(418), "I'm a teapot");
        assert_eq!(reason(99), "");
    }
}
