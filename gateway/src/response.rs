//! `go.api.Response` → HTTP response, as go-micro's api handler writes it: the service's headers
//! (each value of each pair), `Content-Type: application/json` unless the service set one, the
//! status from `statusCode` (0 means 200) and the body as is.
//!
//! Headers an HTTP server owns (`Content-Length`, `Transfer-Encoding`, `Connection`) and names
//! or values that are not valid HTTP are dropped rather than trusted.

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use proto::go_api;

use crate::error::GatewayError;

/// The HTTP response for a service's answer.
pub fn to_http(answer: go_api::Response) -> Result<Response, GatewayError> {
    let status = match answer.status_code {
        0 => StatusCode::OK,
        code => u16::try_from(code)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or(GatewayError::BadStatus(code))?,
    };
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    // The body's default type from into_response is not the service's choice.
    headers.remove(header::CONTENT_TYPE);
    for (key, pair) in answer.header {
        let name = if pair.key.is_empty() { key } else { pair.key };
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            tracing::debug!(%name, "dropping an invalid header name from the answer");
            continue;
        };
        if [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
        ]
        .contains(&name)
        {
            continue;
        }
        for value in pair.values {
            match HeaderValue::from_str(&value) {
                Ok(value) => {
                    headers.append(name.clone(), value);
                }
                Err(_) => {
                    tracing::debug!(%name, "dropping an invalid header value from the answer")
                }
            }
        }
    }
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn answer(code: i32, headers: &[(&str, &[&str])], body: &str) -> go_api::Response {
        go_api::Response {
            status_code: code,
            header: headers
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        go_api::Pair {
                            key: (*k).to_owned(),
                            values: v.iter().map(|s| (*s).to_owned()).collect(),
                        },
                    )
                })
                .collect(),
            body: body.to_owned(),
        }
    }

    async fn body(response: Response) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn zero_status_is_200_and_json_is_the_default_type() {
        let response = to_http(answer(0, &[], r#"{"a":1}"#)).expect("valid");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(body(response).await, r#"{"a":1}"#);
    }

    #[tokio::test]
    async fn service_headers_and_status_are_kept() {
        let response = to_http(answer(
            201,
            &[
                ("Content-Type", &["text/plain"]),
                ("Set-Cookie", &["a=1", "b=2"]),
                ("Content-Length", &["999"]),
                ("Bad Name", &["x"]),
                ("X-Bad-Value", &["a\nb"]),
            ],
            "made",
        ))
        .expect("valid");
        assert_eq!(response.status(), StatusCode::CREATED);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain");
        assert_eq!(headers.get_all(header::SET_COOKIE).iter().count(), 2);
        assert!(!headers.contains_key("x-bad-value"));
        assert_eq!(body(response).await, "made");
    }

    #[test]
    fn impossible_status_is_an_error() {
        for code in [42, 600, -1, 70000] {
            assert!(matches!(
                to_http(answer(code, &[], "")),
                Err(GatewayError::BadStatus(c)) if c == code
            ));
        }
    }
}
