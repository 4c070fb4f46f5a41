//! HTTP request → `go.api.Request`, as go-micro's api handler builds it (`requestToProto`):
//!
//! - `method`, `path` (percent-decoded), `url` (the request target as received);
//! - `header`: every header under its canonical name (`Content-Type`), repeated headers as
//!   several values; `Host` added (HTTP strips it from the header map in Go) and
//!   `X-Forwarded-For` set to the prior chain plus the client's IP;
//! - `get`: the query, repeated keys as several values;
//! - `post`: the body of an `application/x-www-form-urlencoded` POST/PUT/PATCH;
//! - `body`: any other body, as text; no or an empty `Content-Type` is taken as
//!   `text/plain; charset=UTF-8`, and the header says so, as in go-micro.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::{header, request::Parts, HeaderMap, Method};
use proto::go_api::{Pair, Request};

/// The content type go-micro assumes when there is none.
const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=UTF-8";
const FORM: &str = "application/x-www-form-urlencoded";

/// Builds the `go.api.Request` for a request whose head is `parts`, decoded path `path`, client
/// address `remote` and (already size-checked) body `body`.
pub fn build(parts: &Parts, path: &str, remote: Option<IpAddr>, body: &[u8]) -> Request {
    let mut header = headers(&parts.headers);
    let media_type = media_type(&parts.headers);
    if media_type.is_none() {
        set(
            &mut header,
            "Content-Type",
            vec![DEFAULT_CONTENT_TYPE.to_owned()],
        );
    }
    let is_form = media_type.as_deref() == Some(FORM);
    if let Some(ip) = remote {
        let mut chain: Vec<String> = take(&mut header, "X-Forwarded-For");
        chain.push(ip.to_string());
        set(&mut header, "X-Forwarded-For", vec![chain.join(", ")]);
    }
    let host = parts
        .headers
        .get(header::HOST)
        .map(|v| text(v.as_bytes()))
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    set(&mut header, "Host", vec![host]);

    let takes_form = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
    let (post, body) = match (is_form, takes_form) {
        (true, true) => (pairs(body), String::new()),
        (true, false) => (HashMap::new(), String::new()),
        (false, _) => (HashMap::new(), text(body)),
    };
    Request {
        method: parts.method.as_str().to_owned(),
        path: path.to_owned(),
        header,
        get: pairs(parts.uri.query().unwrap_or_default().as_bytes()),
        post,
        body,
        url: parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| parts.uri.to_string()),
    }
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: `x-forwarded-for` → `X-Forwarded-For`.
pub fn canonical(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// The media type of the `Content-Type` header, lower-cased, without parameters; `None` if
/// there is none.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or_default().trim();
    (!media.is_empty()).then(|| media.to_ascii_lowercase())
}

/// Every header, grouped by canonical name, values in order.
fn headers(headers: &HeaderMap) -> HashMap<String, Pair> {
    let mut out: HashMap<String, Pair> = HashMap::new();
    for (name, value) in headers {
        let key = canonical(name.as_str());
        out.entry(key.clone())
            .or_insert_with(|| Pair {
                key,
                values: Vec::new(),
            })
            .values
            .push(text(value.as_bytes()));
    }
    out
}

/// URL-encoded pairs (a query or a form body), repeated keys as several values.
fn pairs(encoded: &[u8]) -> HashMap<String, Pair> {
    let mut out: HashMap<String, Pair> = HashMap::new();
    for (key, value) in form_urlencoded::parse(encoded) {
        out.entry(key.to_string())
            .or_insert_with(|| Pair {
                key: key.to_string(),
                values: Vec::new(),
            })
            .values
            .push(value.into_owned());
    }
    out
}

fn set(map: &mut HashMap<String, Pair>, key: &str, values: Vec<String>) {
    map.insert(
        key.to_owned(),
        Pair {
            key: key.to_owned(),
            values,
        },
    );
}

fn take(map: &mut HashMap<String, Pair>, key: &str) -> Vec<String> {
    map.remove(key).map(|p| p.values).unwrap_or_default()
}

/// Text from bytes that should be UTF-8 (proto strings must be).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request as HttpRequest;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = HttpRequest::builder().method(method).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).expect("request").into_parts().0
    }

    fn values<'a>(map: &'a HashMap<String, Pair>, key: &str) -> Vec<&'a str> {
        map.get(key)
            .map(|p| {
                assert_eq!(p.key, key);
                p.values.iter().map(String::as_str).collect()
            })
            .unwrap_or_default()
    }

    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 7)));

    #[test]
    fn query_with_repeated_keys() {
        let p = parts(
            "GET",
            "/greeter/say/hello?name=John&name=Paul&x=a+b%21&flag",
            &[],
        );
        let req = build(&p, "/greeter/say/hello", CLIENT, b"");
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/greeter/say/hello");
        assert_eq!(
            req.url,
            "/greeter/say/hello?name=John&name=Paul&x=a+b%21&flag"
        );
        assert_eq!(values(&req.get, "name"), ["John", "Paul"]);
        assert_eq!(values(&req.get, "x"), ["a b!"]);
        assert_eq!(values(&req.get, "flag"), [""]);
        assert!(req.post.is_empty() && req.body.is_empty());
    }

    #[test]
    fn form_body_goes_to_post() {
        let p = parts(
            "POST",
            "/greeter/say/hello?q=1",
            &[(
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )],
        );
        let req = build(
            &p,
            "/greeter/say/hello",
            CLIENT,
            b"name=John&name=Ringo&a=%C3%A9",
        );
        assert_eq!(values(&req.post, "name"), ["John", "Ringo"]);
        assert_eq!(values(&req.post, "a"), ["é"]);
        assert_eq!(values(&req.get, "q"), ["1"]);
        assert_eq!(req.body, "", "go-micro leaves the body empty for forms");
    }

    #[test]
    fn json_body_goes_to_body() {
        let p = parts("POST", "/x/y", &[("Content-Type", "application/json")]);
        let req = build(&p, "/x/y", CLIENT, br#"{"name":"John"}"#);
        assert_eq!(req.body, r#"{"name":"John"}"#);
        assert!(req.post.is_empty());
        assert_eq!(values(&req.header, "Content-Type"), ["application/json"]);
    }

    #[test]
    fn no_content_type_is_text_plain() {
        let p = parts("PUT", "/x/y", &[]);
        let req = build(&p, "/x/y", None, b"hello");
        assert_eq!(req.body, "hello");
        assert_eq!(values(&req.header, "Content-Type"), [DEFAULT_CONTENT_TYPE]);
        assert!(
            !req.header.contains_key("X-Forwarded-For"),
            "no client address known"
        );
    }

    #[test]
    fn headers_forwarded_for_and_host() {
        let p = parts(
            "GET",
            "/x/y",
            &[
                ("host", "localhost:8080"),
                ("accept", "text/html"),
                ("x-custom-thing", "1"),
                ("X-Custom-Thing", "2"),
                ("x-forwarded-for", "192.0.2.1"),
                ("x-forwarded-for", "198.51.100.2"),
            ],
        );
        let req = build(&p, "/x/y", CLIENT, b"");
        assert_eq!(values(&req.header, "Host"), ["localhost:8080"]);
        assert_eq!(values(&req.header, "Accept"), ["text/html"]);
        assert_eq!(values(&req.header, "X-Custom-Thing"), ["1", "2"]);
        assert_eq!(
            values(&req.header, "X-Forwarded-For"),
            ["192.0.2.1, 198.51.100.2, 10.0.0.7"]
        );
    }

    #[test]
    fn host_from_the_authority_and_lossy_text() {
        let p = parts("GET", "http://example.com:81/x/y?a=%ff", &[]);
        let req = build(&p, "/x/y", CLIENT, &[0xff, b'a']);
        assert_eq!(values(&req.header, "Host"), ["example.com:81"]);
        assert_eq!(values(&req.get, "a"), ["\u{fffd}"]);
        assert_eq!(req.body, "\u{fffd}a");
        assert_eq!(req.url, "/x/y?a=%ff");
    }

    #[test]
    fn canonical_names() {
        assert_eq!(canonical("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(canonical("CONTENT-TYPE"), "Content-Type");
        assert_eq!(canonical("etag"), "Etag");
    }
}
