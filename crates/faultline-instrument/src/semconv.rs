//! Helpers for the stable HTTP semantic conventions shared by the server and client layers.

use http::{HeaderMap, HeaderValue, Method, Version};
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

/// The method's name when it is one of the nine the conventions know.
pub(crate) fn known_method(method: &Method) -> Option<&'static str> {
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
    // Byte searches: `rsplit_once(':')` and `contains(':')` go through the generic pattern
    // machinery, several times the cost on this per-request path.
    let bytes = authority.as_bytes();
    match bytes.iter().rposition(|&b| b == b':') {
        Some(colon) if !bytes[..colon].contains(&b':') => Some((
            &authority[..colon],
            Some(authority[colon + 1..].parse().ok()?),
        )),
        // More than one colon without brackets: a bare IPv6 address.
        Some(_) => Some((authority, None)),
        None => Some((authority, None)),
    }
}

/// A header as a string, capped so a hostile client cannot bloat the span. Pass a
/// `HeaderName` constant: a `&str` name is parsed again on every lookup.
pub(crate) fn header_str<K: http::header::AsHeaderName>(
    headers: &HeaderMap,
    name: K,
    max: usize,
) -> Option<&str> {
    value_str(headers.get(name), max)
}

/// `Content-Length` as a body size.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<i64> {
    // A response usually has a handful of headers: comparing each name (one byte for a
    // standard one) is cheaper than hashing and probing, which a long map still gets.
    let value = if headers.len() <= 8 {
        headers
            .iter()
            .find(|(name, _)| **name == http::header::CONTENT_LENGTH)
            .map(|(_, value)| value)
    } else {
        headers.get(http::header::CONTENT_LENGTH)
    };
    content_length_value(value)
}

/// A `Content-Length` value as a body size.
pub(crate) fn content_length_value(value: Option<&HeaderValue>) -> Option<i64> {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .and_then(|v| i64::try_from(v).ok())
}

/// A header value as a string, capped so a hostile client cannot bloat the span.
pub(crate) fn value_str(value: Option<&HeaderValue>, max: usize) -> Option<&str> {
    value
        .and_then(|v| v.to_str().ok())
        .map(|v| truncate(v, max))
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

/// The W3C `traceresponse` value for a span: `00-{trace id}-{span id}-{flags}`.
pub(crate) fn traceresponse(sc: &SpanContext) -> [u8; 55] {
    let mut out = [b'-'; 55];
    out[..2].copy_from_slice(b"00");
    let trace_id = sc.trace_id().to_bytes();
    let span_id = sc.span_id().to_bytes();
    for (i, four) in trace_id.chunks_exact(4).enumerate() {
        let at = 3 + 8 * i;
        out[at..at + 8].copy_from_slice(&hex4(four));
    }
    for (i, four) in span_id.chunks_exact(4).enumerate() {
        let at = 36 + 8 * i;
        out[at..at + 8].copy_from_slice(&hex4(four));
    }
    let flags = sc.trace_flags().to_u8();
    out[53] = HEX_DIGITS[usize::from(flags >> 4)];
    out[54] = HEX_DIGITS[usize::from(flags & 0x0F)];
    out
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Four bytes as eight lowercase hex digits, all in one `u64` at once (a `traceresponse`
/// costs about 110 instructions this way, 150 with a table lookup per byte).
#[inline(always)]
fn hex4(bytes: &[u8]) -> [u8; 8] {
    const fn every_byte(b: u8) -> u64 {
        u64::from_ne_bytes([b; 8])
    }
    let mut four = [0; 4];
    four.copy_from_slice(bytes);
    // Little-endian throughout (no byte swaps): the first byte is the lowest, and its high
    // nibble must become the lowest output byte.
    let x = u64::from(u32::from_le_bytes(four));
    // Spread the bytes two apart, then split each into (high nibble, low nibble) bytes.
    let x = (x | x << 16) & 0x0000_FFFF_0000_FFFF;
    let x = (x | x << 8) & 0x00FF_00FF_00FF_00FF;
    let nibbles = (x >> 4 & 0x000F_000F_000F_000F) | (x & 0x000F_000F_000F_000F) << 8;
    // '0' + n, and 39 more for n >= 10 ('a' is '0' + 49): adding 0x76 sets bit 7 exactly
    // when n >= 10.
    let letters = ((nibbles + every_byte(0x76)) >> 7) & every_byte(0x01);
    (nibbles + every_byte(b'0') + letters * 39).to_le_bytes()
}

/// An error status without a description, as the conventions prescribe for status codes.
pub(crate) fn error_status() -> Status {
    Status::error("")
}

/// Trace and span ids whose formatting tests check: a W3C example, all ones, the smallest,
/// and every hex digit.
#[cfg(test)]
pub(crate) const TEST_IDS: [(u128, u64); 4] = [
    (
        0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
        0x00f0_67aa_0ba9_02b7,
    ),
    (u128::MAX, u64::MAX),
    (1, 1),
    (
        0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        0x9a9a_0f0f_a0a0_f9f9,
    ),
];

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
        assert_eq!(split_host_port("host:"), None);
        assert_eq!(split_host_port("fe80::1:443"), Some(("fe80::1:443", None)));
        assert_eq!(split_host_port(" shop:80 "), Some(("shop", Some(80))));
    }

    #[test]
    fn unknown_methods_become_other() {
        let mut attributes = Vec::new();
        let method = Method::from_bytes(b"BREW").expect("valid token");
        assert_eq!(method_attributes(&method, &mut attributes), "HTTP");
        assert_eq!(attributes[0].value.as_str(), "_OTHER");
    }

    #[test]
    fn traceresponse_matches_the_formatted_ids() {
        use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};
        for (trace_id, span_id) in TEST_IDS {
            for flags in [TraceFlags::SAMPLED, TraceFlags::new(0xab)] {
                let sc = SpanContext::new(
                    TraceId::from(trace_id),
                    SpanId::from(span_id),
                    flags,
                    false,
                    TraceState::default(),
                );
                assert_eq!(
                    std::str::from_utf8(&traceresponse(&sc)).expect("ascii"),
                    format!(
                        "00-{}-{}-{:02x}",
                        sc.trace_id(),
                        sc.span_id(),
                        sc.trace_flags().to_u8()
                    )
                );
            }
        }
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
