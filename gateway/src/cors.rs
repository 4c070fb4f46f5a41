//! CORS, as micro's cors plugin configures it (`--cors-allowed-origins`,
//! `--cors-allowed-methods`, `--cors-allowed-headers`: comma-separated lists, with the
//! environment variables `CORS_ALLOWED_ORIGINS` etc.) and as `rs/cors` under it answers.
//!
//! Off unless origins are given. Then:
//! - a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered here,
//!   200 with no body, never reaching a service: with the `Access-Control-Allow-*` headers if the
//!   origin, the method and every requested header are allowed, without them otherwise;
//! - any other request from an allowed origin gets `Access-Control-Allow-Origin` (the origin
//!   itself, since credentials are allowed as the plugin does) on its answer, errors included.
//!
//! `*` allows every origin (or header). Methods default to `GET, POST, HEAD` and headers to
//! `Origin, Accept, Content-Type, X-Requested-With`, rs/cors' defaults.

use axum::http::{header, HeaderMap, HeaderValue, Method};

/// rs/cors' default methods.
const DEFAULT_METHODS: [&str; 3] = ["GET", "POST", "HEAD"];
/// rs/cors' default headers.
const DEFAULT_HEADERS: [&str; 4] = ["Origin", "Accept", "Content-Type", "X-Requested-With"];

/// The CORS settings; the default allows nothing and adds no header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Lower-cased allowed origins; `*` allows all; empty turns CORS off.
    origins: Vec<String>,
    /// Upper-cased allowed methods.
    methods: Vec<String>,
    /// Lower-cased allowed request headers; `*` allows all.
    headers: Vec<String>,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// A preflight: answer 200 with these headers (none if refused), do not call a service.
    Preflight(HeaderMap),
    /// Serve it, then add these headers to the answer (none if not a CORS request or refused).
    Serve(HeaderMap),
}

fn list(items: &[String]) -> impl Iterator<Item = &str> {
    items.iter().map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl Cors {
    /// Settings from the three flags' lists (each already split on commas by clap).
    pub fn new(origins: &[String], methods: &[String], headers: &[String]) -> Self {
        let mut methods: Vec<String> = list(methods).map(str::to_ascii_uppercase).collect();
        if methods.is_empty() {
            methods = DEFAULT_METHODS.iter().map(|m| (*m).to_owned()).collect();
        }
        let mut headers: Vec<String> = list(headers).map(str::to_ascii_lowercase).collect();
        if headers.is_empty() {
            headers = DEFAULT_HEADERS
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect();
        }
        Cors {
            origins: list(origins).map(str::to_ascii_lowercase).collect(),
            methods,
            headers,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.origins.iter().any(|o| o == "*" || *o == origin)
    }

    fn header_allowed(&self, name: &str) -> bool {
        let name = name.trim().to_ascii_lowercase();
        // Browsers may list `origin` though it is not theirs to ask for; rs/cors allows it too.
        name == "origin" || self.headers.iter().any(|h| h == "*" || *h == name)
    }

    /// The decision for a request with `method` and `headers`.
    pub fn decide(&self, method: &Method, headers: &HeaderMap) -> Decision {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let requested = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok());
        let preflight = *method == Method::OPTIONS && requested.is_some();
        if !self.enabled() {
            return Decision::Serve(HeaderMap::new());
        }
        let mut out = HeaderMap::new();
        if preflight {
            out.insert(
                header::VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                ),
            );
            let method = requested.unwrap_or_default().trim().to_ascii_uppercase();
            let asked = headers
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let allowed = origin.is_some_and(|o| self.origin_allowed(o))
                && self.methods.contains(&method)
                && asked
                    .split(',')
                    .filter(|h| !h.trim().is_empty())
                    .all(|h| self.header_allowed(h));
            if let (true, Some(origin)) = (allowed, origin) {
                self.allow(&mut out, origin);
                if let Ok(v) = HeaderValue::from_str(&method) {
                    out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
                }
                if !asked.trim().is_empty() {
                    if let Ok(v) = HeaderValue::from_str(asked.trim()) {
                        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
                    }
                }
            }
            return Decision::Preflight(out);
        }
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin.filter(|o| self.origin_allowed(o)) {
            self.allow(&mut out, origin);
        }
        Decision::Serve(out)
    }

    fn allow(&self, out: &mut HeaderMap, origin: &str) {
        if let Ok(v) = HeaderValue::from_str(origin) {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            out.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn get<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn off_without_origins() {
        let cors = Cors::new(&[], &strings(&["GET"]), &[]);
        let h = request(&[("origin", "http://a.example")]);
        assert_eq!(
            cors.decide(&Method::GET, &h),
            Decision::Serve(HeaderMap::new())
        );
        let pre = request(&[
            ("origin", "http://a.example"),
            ("access-control-request-method", "GET"),
        ]);
        assert_eq!(
            cors.decide(&Method::OPTIONS, &pre),
            Decision::Serve(HeaderMap::new()),
            "no preflight handling when off: the request is served as any other"
        );
    }

    #[test]
    fn preflight_allowed_and_refused() {
        let cors = Cors::new(
            &strings(&["http://a.example"]),
            &strings(&["get", "PUT"]),
            &strings(&["Content-Type", "X-Token"]),
        );
        let asked = |origin: &str, method: &str, headers: &str| {
            let h = request(&[
                ("origin", origin),
                ("access-control-request-method", method),
                ("access-control-request-headers", headers),
            ]);
            match cors.decide(&Method::OPTIONS, &h) {
                Decision::Preflight(out) => out,
                other => panic!("not a preflight: {other:?}"),
            }
        };
        let ok = asked("http://a.example", "PUT", "x-token, content-type");
        assert_eq!(
            get(&ok, "access-control-allow-origin"),
            Some("http://a.example")
        );
        assert_eq!(get(&ok, "access-control-allow-methods"), Some("PUT"));
        assert_eq!(
            get(&ok, "access-control-allow-headers"),
            Some("x-token, content-type")
        );
        assert_eq!(get(&ok, "access-control-allow-credentials"), Some("true"));
        for (origin, method, headers) in [
            ("http://b.example", "PUT", ""),
            ("http://a.example", "DELETE", ""),
            ("http://a.example", "GET", "x-other"),
        ] {
            let refused = asked(origin, method, headers);
            assert_eq!(get(&refused, "access-control-allow-origin"), None);
            assert!(get(&refused, "vary").is_some());
        }
    }

    #[test]
    fn actual_requests_and_wildcards() {
        let cors = Cors::new(&strings(&["*"]), &[], &[]);
        let h = request(&[("origin", "http://any.example")]);
        let Decision::Serve(out) = cors.decide(&Method::GET, &h) else {
            panic!("served")
        };
        assert_eq!(
            get(&out, "access-control-allow-origin"),
            Some("http://any.example")
        );
        assert_eq!(get(&out, "vary"), Some("Origin"));
        // Defaults: GET, POST, HEAD; Content-Type among the headers.
        let pre = request(&[
            ("origin", "http://any.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ]);
        let Decision::Preflight(out) = cors.decide(&Method::OPTIONS, &pre) else {
            panic!("preflight")
        };
        assert_eq!(get(&out, "access-control-allow-methods"), Some("POST"));
        let no_origin = cors.decide(&Method::GET, &HeaderMap::new());
        let Decision::Serve(out) = no_origin else {
            panic!("served")
        };
        assert_eq!(get(&out, "access-control-allow-origin"), None);
    }
}
