//! Recognising fields of one JSON log line.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{Map, Value as Json};

/// Keys that may hold a trace ID (hex, 32 digits or fewer).
const TRACE_KEYS: &[&str] = &["trace_id", "traceId", "trace.id", "traceID"];
/// Keys that may hold a span ID (hex, 16 digits or fewer).
const SPAN_KEYS: &[&str] = &["span_id", "spanId", "span.id", "spanID"];
/// Keys that may hold the time.
const TIME_KEYS: &[&str] = &["ts", "time", "timestamp", "@timestamp"];
/// Keys that may hold the severity.
const LEVEL_KEYS: &[&str] = &["level", "severity", "lvl"];
/// Keys that may hold the message.
const MESSAGE_KEYS: &[&str] = &["msg", "message", "body"];
/// Keys that may hold the service name.
const SERVICE_KEYS: &[&str] = &["service", "service.name"];

/// What one line became.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedLine {
    /// The OTLP record.
    pub record: LogRecord,
    /// The service named by the line, if any.
    pub service: Option<String>,
    /// False when the line was not a JSON object and was kept as a plain message.
    pub parsed: bool,
}

/// Parses one line. `observed` (nanoseconds since the epoch) is used as the observed time,
/// and as the time when the line has none.
pub fn parse_line(line: &str, observed: u64) -> ParsedLine {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut record = LogRecord {
        observed_time_unix_nano: observed,
        time_unix_nano: observed,
        ..LogRecord::default()
    };
    let Ok(Json::Object(mut obj)) = serde_json::from_str::<Json>(line) else {
        record.body = Some(string(line.to_owned()));
        return ParsedLine {
            record,
            service: None,
            parsed: false,
        };
    };
    if let Some(v) = take(&mut obj, TRACE_KEYS) {
        record.trace_id = hex_id(&v, 16).unwrap_or_default();
    }
    if let Some(v) = take(&mut obj, SPAN_KEYS) {
        record.span_id = hex_id(&v, 8).unwrap_or_default();
    }
    if record.trace_id.is_empty() {
        if let Some(v) = take(&mut obj, &["dd.trace_id"]) {
            record.trace_id = dd_id(&v, 16).unwrap_or_default();
        }
        if let Some(v) = take(&mut obj, &["dd.span_id"]) {
            record.span_id = dd_id(&v, 8).unwrap_or_default();
        }
    }
    if record.trace_id.is_empty() {
        if let Some(Json::String(tp)) = take(&mut obj, &["traceparent"]) {
            if let Some((t, s)) = traceparent(&tp) {
                record.trace_id = t;
                record.span_id = s;
            }
        }
    }
    if let Some(v) = take(&mut obj, TIME_KEYS) {
        if let Some(t) = time_nanos(&v) {
            record.time_unix_nano = t;
        }
    }
    if let Some(v) = take(&mut obj, LEVEL_KEYS) {
        let (number, text) = severity(&v);
        record.severity_number = number;
        record.severity_text = text;
    }
    if let Some(v) = take(&mut obj, MESSAGE_KEYS) {
        record.body = Some(match v {
            Json::String(s) => string(s),
            other => any(other, 0),
        });
    }
    let service = take(&mut obj, SERVICE_KEYS).map(|v| match v {
        Json::String(s) => s,
        other => other.to_string(),
    });
    record.attributes = obj
        .into_iter()
        .map(|(key, v)| KeyValue {
            key,
            value: Some(any(v, 0)),
            ..Default::default()
        })
        .collect();
    ParsedLine {
        record,
        service,
        parsed: true,
    }
}

/// Removes and returns the first present key (flat, like `trace.id`, or nested, like
/// `{"trace": {"id": ...}}`).
fn take(obj: &mut Map<String, Json>, keys: &[&str]) -> Option<Json> {
    for key in keys {
        if let Some(v) = obj.remove(*key) {
            return Some(v);
        }
        if let Some((head, rest)) = key.split_once('.') {
            if let Some(Json::Object(inner)) = obj.get_mut(head) {
                if let Some(v) = take(inner, &[rest]) {
                    if inner.is_empty() {
                        obj.remove(head);
                    }
                    return Some(v);
                }
            }
        }
    }
    None
}

fn string(s: String) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(s)),
    }
}

/// A JSON value as an OTLP value; nesting past 16 levels becomes its JSON text.
fn any(v: Json, depth: usize) -> AnyValue {
    if depth > 16 {
        return string(v.to_string());
    }
    let value = match v {
        Json::Null => None,
        Json::Bool(b) => Some(Value::BoolValue(b)),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Some(Value::IntValue(i)),
            None => Some(Value::DoubleValue(n.as_f64().unwrap_or(0.0))),
        },
        Json::String(s) => Some(Value::StringValue(s)),
        Json::Array(items) => Some(Value::ArrayValue(ArrayValue {
            values: items.into_iter().map(|i| any(i, depth + 1)).collect(),
        })),
        Json::Object(m) => Some(Value::KvlistValue(KeyValueList {
            values: m
                .into_iter()
                .map(|(key, v)| KeyValue {
                    key,
                    value: Some(any(v, depth + 1)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// A hex ID of `len` bytes; shorter hex strings are left-padded (as Jaeger and Zipkin write
/// 64-bit trace IDs). Zero and malformed IDs are `None`.
fn hex_id(v: &Json, len: usize) -> Option<Vec<u8>> {
    let s = v.as_str()?.trim();
    if s.is_empty() || s.len() > len * 2 {
        return None;
    }
    let padded = format!("{s:0>width$}", width = len * 2);
    let bytes = hex::decode(padded).ok()?;
    bytes.iter().any(|b| *b != 0).then_some(bytes)
}

/// A Datadog ID: a decimal unsigned 64-bit number (as a number or a string), placed in the low
/// 64 bits of an ID of `len` bytes.
fn dd_id(v: &Json, len: usize) -> Option<Vec<u8>> {
    let n = match v {
        Json::Number(n) => n.as_u64()?,
        Json::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    if n == 0 {
        return None;
    }
    let mut out = vec![0u8; len];
    let at = len.checked_sub(8)?;
    out.get_mut(at..)?.copy_from_slice(&n.to_be_bytes());
    Some(out)
}

/// Trace and span ID from a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn traceparent(tp: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = tp.trim().split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    if trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let t = hex::decode(trace).ok()?;
    let s = hex::decode(span).ok()?;
    (t.iter().any(|b| *b != 0) && s.iter().any(|b| *b != 0)).then_some((t, s))
}

/// Severity number and text from a name (`info`, `WARN`...) or an OTLP number.
fn severity(v: &Json) -> (i32, String) {
    match v {
        Json::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            let number = i32::try_from(n)
                .ok()
                .filter(|n| (0..=24).contains(n))
                .unwrap_or(0);
            (number, n.to_string())
        }
        Json::String(s) => {
            let t = s.trim().to_ascii_lowercase();
            let number = match t.as_str() {
                "trace" | "finest" | "verbose" => 1,
                "debug" | "fine" | "dbug" => 5,
                "info" | "information" | "informational" | "notice" => 9,
                "warn" | "warning" => 13,
                "error" | "err" | "severe" => 17,
                "fatal" | "critical" | "crit" | "panic" | "alert" | "emergency" | "emerg" => 21,
                _ => 0,
            };
            (number, s.clone())
        }
        other => (0, other.to_string()),
    }
}

/// Nanoseconds since the epoch from an RFC 3339 string or an epoch number in seconds,
/// milliseconds, microseconds or nanoseconds (told apart by magnitude).
pub fn time_nanos(v: &Json) -> Option<u64> {
    match v {
        Json::Number(n) => {
            if let Some(i) = n.as_u64() {
                return Some(epoch_to_nanos(i));
            }
            decimal_seconds(&n.to_string())
        }
        Json::String(s) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<u64>() {
                return Some(epoch_to_nanos(i));
            }
            decimal_seconds(s).or_else(|| rfc3339(s))
        }
        _ => None,
    }
}

/// `seconds.fraction` since the epoch, exactly (no float rounding).
fn decimal_seconds(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.')?;
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.is_empty()
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos: u64 = format!("{:0<9}", frac.get(..frac.len().min(9))?)
        .parse()
        .ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn epoch_to_nanos(i: u64) -> u64 {
    match i {
        0..100_000_000_000 => i.saturating_mul(1_000_000_000),
        100_000_000_000..100_000_000_000_000 => i.saturating_mul(1_000_000),
        100_000_000_000_000..100_000_000_000_000_000 => i.saturating_mul(1_000),
        _ => i,
    }
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.fraction](Z|±HH:MM)`.
fn rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 19 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    let mut frac_nanos = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let digits = s.get(start..at)?;
        if digits.is_empty() {
            return None;
        }
        let nine = format!("{:0<9}", digits.get(..digits.len().min(9))?);
        frac_nanos = nine.parse().ok()?;
    }
    let offset_secs = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() && b.get(at + 3) == Some(&b':') => {
            let secs = num(at + 1, 2)? * 3600 + num(at + 4, 2)? * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        None => 0,
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let nanos = secs.checked_mul(1_000_000_000)?.checked_add(frac_nanos)?;
    u64::try_from(nanos).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const S: &str = "00f067aa0ba902b7";

    fn body(p: &ParsedLine) -> String {
        match p.record.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn every_trace_field_variant_is_recognised() {
        for line in [
            format!(r#"{{"trace_id":"{T}","span_id":"{S}","msg":"a"}}"#),
            format!(r#"{{"traceId":"{T}","spanId":"{S}","msg":"a"}}"#),
            format!(r#"{{"trace.id":"{T}","span.id":"{S}","msg":"a"}}"#),
            format!(r#"{{"trace":{{"id":"{T}"}},"span":{{"id":"{S}"}},"msg":"a"}}"#),
            format!(r#"{{"traceparent":"00-{T}-{S}-01","msg":"a"}}"#),
        ] {
            let p = parse_line(&line, 1);
            assert!(p.parsed);
            assert_eq!(hex::encode(&p.record.trace_id), T, "{line}");
            assert_eq!(hex::encode(&p.record.span_id), S, "{line}");
            assert!(
                p.record.attributes.is_empty(),
                "{line}: {:?}",
                p.record.attributes
            );
        }
    }

    #[test]
    fn datadog_ids_fill_the_low_64_bits() {
        let p = parse_line(
            r#"{"dd.trace_id":"1234567890123456789","dd.span_id":42,"message":"x"}"#,
            1,
        );
        assert_eq!(
            hex::encode(&p.record.trace_id),
            "0000000000000000112210f47de98115"
        );
        assert_eq!(hex::encode(&p.record.span_id), "000000000000002a");
        let nested = parse_line(
            r#"{"dd":{"trace_id":"1234567890123456789"},"message":"x"}"#,
            1,
        );
        assert_eq!(nested.record.trace_id, p.record.trace_id);
    }

    #[test]
    fn time_level_message_service_and_attributes() {
        let p = parse_line(
            r#"{"@timestamp":"2024-05-01T12:00:00.5+02:00","lvl":"WARN","message":"slow","service.name":"cart","user":7,"ok":true}"#,
            1,
        );
        assert_eq!(p.record.time_unix_nano, 1_714_557_600_500_000_000);
        assert_eq!(p.record.severity_number, 13);
        assert_eq!(p.record.severity_text, "WARN");
        assert_eq!(body(&p), "slow");
        assert_eq!(p.service.as_deref(), Some("cart"));
        assert_eq!(p.record.attributes.len(), 2);
        for (v, want) in [
            (r#"1714557600"#, 1_714_557_600_000_000_000u64),
            (r#"1714557600123"#, 1_714_557_600_123_000_000),
            (r#"1714557600123456"#, 1_714_557_600_123_456_000),
            (r#"1714557600123456789"#, 1_714_557_600_123_456_789),
            (r#"1714557600.25"#, 1_714_557_600_250_000_000),
            (r#""2024-05-01T10:00:00Z""#, 1_714_557_600_000_000_000),
        ] {
            let line = format!(r#"{{"ts":{v},"msg":"x"}}"#);
            assert_eq!(parse_line(&line, 1).record.time_unix_nano, want, "{v}");
        }
    }

    #[test]
    fn lines_that_are_not_json_objects_are_kept_as_messages() {
        for line in ["plain text", "[1,2]", "{broken", "\"str\"", ""] {
            let p = parse_line(line, 99);
            assert!(!p.parsed);
            assert_eq!(body(&p), line);
            assert_eq!(p.record.time_unix_nano, 99);
        }
    }

    #[test]
    fn malformed_ids_and_times_are_ignored_not_fatal() {
        let p = parse_line(
            r#"{"trace_id":"zz","ts":"yesterday","level":3,"msg":"m"}"#,
            5,
        );
        assert!(p.parsed);
        assert!(p.record.trace_id.is_empty());
        assert_eq!(p.record.time_unix_nano, 5);
        assert_eq!(p.record.severity_number, 3);
    }
}
