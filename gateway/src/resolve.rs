//! go-micro's "micro" resolver for `--handler=api`: an HTTP path becomes a service and an
//! endpoint. Pure functions, no I/O.
//!
//! ```text
//!   /greeter/say/hello ─clean─► [greeter, say, hello] ─rules─► (greeter, Say.Hello)
//!                                                    ─namespace─► (go.micro.api.greeter, Say.Hello)
//! ```
//!
//! Rules after cleaning (go-micro's `apiRoute`): 1–2 parts: service = first part, endpoint = all
//! parts CamelCased and joined by `.`; 3 parts starting with `v[0-9]+`: service = first two
//! joined by `.`, endpoint = last two; otherwise service = all but the last two, endpoint = the
//! last two. CamelCase splits on `-`: `baz-xyz` → `BazXyz`.
//!
//! Cleaning is Go's `path.Clean` on the percent-decoded path, except that what `Clean` would
//! silently paper over is refused as malformed: an empty segment (`//`), a `..` above the root,
//! bytes that are not UTF-8 once decoded, control characters.

/// Why a path is malformed (the gateway answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("path is not valid UTF-8 once percent-decoded")]
    NotUtf8,
    #[error("path contains a control character")]
    ControlCharacter,
    #[error("path contains an empty segment ('//')")]
    EmptySegment,
    #[error("path climbs above the root ('..')")]
    EscapesRoot,
}

/// Percent-decodes `raw` (the path of a request URI) and checks it decodes to text.
pub fn decode(raw: &str) -> Result<String, PathError> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::NotUtf8)?;
    if decoded.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    Ok(decoded.into_owned())
}

/// The segments of a decoded path after `.` and `..` are applied; a trailing `/` is dropped.
pub fn clean(path: &str) -> Result<Vec<&str>, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let raw: Vec<&str> = rest.split('/').collect();
    let last = raw.len() - 1;
    let mut parts: Vec<&str> = Vec::with_capacity(raw.len());
    for (i, segment) in raw.into_iter().enumerate() {
        match segment {
            "" if i == last => {}
            "" => return Err(PathError::EmptySegment),
            "." => {}
            ".." => {
                parts.pop().ok_or(PathError::EscapesRoot)?;
            }
            part => parts.push(part),
        }
    }
    Ok(parts)
}

/// `(service, endpoint)` for a request path, or `None` if it names nothing (the root, or a
/// malformed path). `path` may still be percent-encoded; decoding is idempotent for the paths
/// the rules accept.
pub fn resolve(path: &str, namespace: &str) -> Option<(String, String)> {
    let decoded = decode(path).ok()?;
    let parts = clean(&decoded).ok()?;
    route(&parts, namespace)
}

/// The rules, on cleaned segments.
pub fn route(parts: &[&str], namespace: &str) -> Option<(String, String)> {
    let (service, endpoint) = match parts {
        [] => return None,
        [first, ..] if parts.len() <= 2 => (first.to_string(), method_name(parts)),
        [version, name, _] if is_version(version) => {
            (format!("{version}.{name}"), method_name(&parts[1..]))
        }
        _ => {
            let split = parts.len() - 2;
            (parts[..split].join("."), method_name(&parts[split..]))
        }
    };
    let namespace = namespace.trim_end_matches('.');
    let service = if namespace.is_empty() {
        service
    } else {
        format!("{namespace}.{service}")
    };
    Some((service, endpoint))
}

/// The service of a path for `--handler=http` (go-micro's `proxyRoute`): the first segment, or
/// the first two joined by `.` when the first is a version (`/v1/foo/...` → `v1.foo`), in the
/// namespace; `None` for the root or a name that is not plain letters and digits. The whole
/// path goes on to the service unchanged.
pub fn proxy_route(parts: &[&str], namespace: &str) -> Option<String> {
    let (service, alias) = match parts {
        [] => return None,
        [version, name, ..] if is_version(version) => (format!("{version}.{name}"), *name),
        [first, ..] => (first.to_string(), *first),
    };
    if alias.is_empty() || !alias.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let namespace = namespace.trim_end_matches('.');
    Some(if namespace.is_empty() {
        service
    } else {
        format!("{namespace}.{service}")
    })
}

/// `v` followed by one or more ASCII digits.
fn is_version(part: &str) -> bool {
    part.strip_prefix('v')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Parts CamelCased and joined by `.`: `[say, hello]` → `Say.Hello`.
fn method_name(parts: &[&str]) -> String {
    parts.iter().map(|p| camel(p)).collect::<Vec<_>>().join(".")
}

/// `baz-xyz` → `BazXyz`: each `-`-separated word with its first letter upper-cased.
pub fn camel(part: &str) -> String {
    part.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(path: &str) -> Option<(String, String)> {
        resolve(path, "")
    }

    fn pair(service: &str, endpoint: &str) -> Option<(String, String)> {
        Some((service.to_owned(), endpoint.to_owned()))
    }

    #[test]
    fn reference_examples() {
        assert_eq!(r("/foo/bar"), pair("foo", "Foo.Bar"));
        assert_eq!(r("/v1/foo/bar"), pair("v1.foo", "Foo.Bar"));
        assert_eq!(r("/foo/bar/baz-xyz"), pair("foo", "Bar.BazXyz"));
        assert_eq!(r("/foo/bar/baz/cat"), pair("foo.bar", "Baz.Cat"));
        assert_eq!(r("/v1/foo/bar/baz"), pair("v1.foo", "Bar.Baz"));
        assert_eq!(
            resolve("/greeter/say/hello", "go.micro.api"),
            pair("go.micro.api.greeter", "Say.Hello")
        );
    }

    #[test]
    fn one_part_and_versions() {
        assert_eq!(r("/foo"), pair("foo", "Foo"));
        assert_eq!(r("/v1"), pair("v1", "V1"));
        assert_eq!(r("/v1/foo"), pair("v1", "V1.Foo"));
        assert_eq!(r("/v12/foo/bar"), pair("v12.foo", "Foo.Bar"));
        // Not a version: the general rule applies.
        assert_eq!(r("/v/foo/bar"), pair("v", "Foo.Bar"));
        assert_eq!(r("/vx1/foo/bar"), pair("vx1", "Foo.Bar"));
        assert_eq!(r("/V1/foo/bar"), pair("V1", "Foo.Bar"));
        assert_eq!(r("/a/b/c/d/e"), pair("a.b.c", "D.E"));
    }

    #[test]
    fn camel_case() {
        assert_eq!(camel("baz-xyz"), "BazXyz");
        assert_eq!(camel("hello"), "Hello");
        assert_eq!(camel("Hello"), "Hello");
        assert_eq!(camel("a--b"), "AB");
        assert_eq!(camel("-x"), "X");
        assert_eq!(camel("été"), "Été");
        assert_eq!(r("/my-svc/get-all"), pair("my-svc", "MySvc.GetAll"));
    }

    #[test]
    fn cleaning() {
        assert_eq!(r("/greeter/say/hello/"), pair("greeter", "Say.Hello"));
        assert_eq!(r("/greeter/./say/hello"), pair("greeter", "Say.Hello"));
        assert_eq!(r("/greeter/x/../say/hello"), pair("greeter", "Say.Hello"));
        assert_eq!(r("/greeter/say/hel%6Co"), pair("greeter", "Say.Hello"));
        assert_eq!(clean("/"), Ok(vec![]));
        assert_eq!(clean("/a/.."), Ok(vec![]));
        assert_eq!(r("/"), None);
        assert_eq!(r("/a/.."), None);
    }

    #[test]
    fn namespace_join() {
        assert_eq!(
            resolve("/foo/bar", "go.micro.api."),
            pair("go.micro.api.foo", "Foo.Bar")
        );
        assert_eq!(resolve("/foo", "ns"), pair("ns.foo", "Foo"));
    }

    #[test]
    fn malformed_paths() {
        assert_eq!(clean("//"), Err(PathError::EmptySegment));
        assert_eq!(clean("/a//b"), Err(PathError::EmptySegment));
        assert_eq!(clean("/.."), Err(PathError::EscapesRoot));
        assert_eq!(clean("/a/../../b"), Err(PathError::EscapesRoot));
        assert_eq!(clean("a/b"), Err(PathError::NotAbsolute));
        assert_eq!(clean(""), Err(PathError::NotAbsolute));
        assert_eq!(decode("/a/%ff"), Err(PathError::NotUtf8));
        assert_eq!(decode("/a/%00"), Err(PathError::ControlCharacter));
        assert_eq!(decode("/a/%2e%2e"), Ok("/a/..".to_owned()));
        assert_eq!(decode("/%zz"), Ok("/%zz".to_owned()));
        for bad in ["//", "/..", "/a/%ff", "/a/%00", "/../greeter/say/hello"] {
            assert_eq!(r(bad), None, "{bad}");
        }
    }

    #[test]
    fn proxy_routes_are_go_micros() {
        let p = |path: &str| proxy_route(&clean(path).expect(path), "go.micro.web");
        assert_eq!(
            p("/greeter/say/hello").as_deref(),
            Some("go.micro.web.greeter")
        );
        assert_eq!(p("/greeter").as_deref(), Some("go.micro.web.greeter"));
        assert_eq!(
            p("/v1/greeter/x").as_deref(),
            Some("go.micro.web.v1.greeter")
        );
        assert_eq!(p("/"), None);
        assert_eq!(p("/not-plain/x"), None);
        assert_eq!(proxy_route(&["foo"], "").as_deref(), Some("foo"));
    }
}
