//! Helpers for the stable HTTP semantic conventions shared by the server and client layers.

use http::{HeaderMap, Method, Version};
use opentelemetry::trace::{SpanContext, Status};
use opentelemetry::KeyValue;

/// The method as the conventions want it: known methods verbatim, anything else as `_OTHER`
/// (an attacker must not be able to mint unbounded span names).
pub(crate) fn method_attributes(method: &Method, attributes: &mut Vec<KeyValue>) -> &'static str {
    let known = known_method(method);
    match known {
        Some(name) => attributes.push(KeyValue::new("http.request.method", name)),
        None => {
            attributes.push(KeyValue::new("http.request.method", "_OTHER"));
            attributes.push(KeyValue::new(
                "http.request.method_original",
                truncate(method.as_str(), 64).to_owned(),
            ));
        }
    }
    known.unwrap_or("HTTP")
}

fn known_method(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => return None,
    })
}

/// `network.protocol.version` for an HTTP version.
pub(crate) fn protocol_version(version: Version) -> Option<&'static str> {
    Some(match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => return None,
    })
}

/// Splits `host[:port]`, including bracketed IPv6 literals; `None` for nonsense.
pub(crate) fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let authority = authority.trim();
    if authority.is_empty() {
        return None;
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port.parse().ok()?))),
        // More than one colon without brackets: a bare IPv6 address.
        Some(_) => Some((authority, None)),
        None => Some((authority, None)),
    }
}

/// A header as a string, capped so a hostile client cannot bloat the span.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str, max: usize) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| truncate(v, max))
}

/// `Content-Length` as a body size.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<i64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .and_then(|v| i64::try_from(v).ok())
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The W3C `traceresponse` value for a span.
pub(crate) fn traceresponse(sc: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// An error status without a description, as the conventions prescribe for status codes.
pub(crate) fn error_status() -> Status {
    Status::error("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_authorities() {
        assert_eq!(
            split_host_port("example.com:8080"),
            Some(("example.com", Some(8080)))
        );
        assert_eq!(split_host_port("example.com"), Some(("example.com", None)));
        assert_eq!(split_host_port("[::1]:443"), Some(("::1", Some(443))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("::1"), Some(("::1", None)));
        assert_eq!(split_host_port("host:99999"), None);
        assert_eq!(split_host_port("[::1]x"), None);
        assert_eq!(split_host_port(""), None);
    }

    #[test]
    fn unknown_methods_become_other() {
        let mut attributes = Vec::new();
        let method = Method::from_bytes(b"BREW").expect("valid token");
        assert_eq!(method_attributes(&method, &mut attributes), "HTTP");
        assert_eq!(attributes[0].value.as_str(), "_OTHER");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
