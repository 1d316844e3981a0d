//! The Jaeger UI JSON model and the conversion of model spans into it.
//!
//! The mapping follows the OpenTelemetry Collector's OTLP→Jaeger translator, which Jaeger itself
//! uses to serve OTLP data: the resource becomes the process (`service.name` becomes
//! `serviceName`, the other attributes its tags); the scope becomes `otel.scope.name` /
//! `otel.scope.version` tags; span kind, status and trace state become the `span.kind`,
//! `otel.status_code`, `error`, `otel.status_description` and `w3c.tracestate` tags; events
//! become logs whose first field `event` carries the event name; the parent becomes the first
//! `CHILD_OF` reference and links become `FOLLOWS_FROM` references. Values are typed the way
//! Jaeger's UI converter types them (integers beyond JavaScript's safe range are sent as strings).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use faultline_model::{
    AttributeValue, KeyValue, Link, Resource, Span, SpanKind, StatusCode, TraceId,
};
use serde::Serialize;
use serde_json::Value;

/// Largest integer a JavaScript number holds exactly; larger values go out as strings.
pub(crate) const JS_MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// One trace as Jaeger UI expects it.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct JaegerTrace {
    /// 32-digit hex trace ID.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// The spans, earliest first.
    pub spans: Vec<JaegerSpan>,
    /// Processes by ID (`p1`, `p2`, ...), referenced from `JaegerSpan::process_id`.
    pub processes: BTreeMap<String, JaegerProcess>,
    /// Trace-level warnings, `null` when there are none.
    pub warnings: Option<Vec<String>>,
}

/// One span as Jaeger UI expects it.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JaegerSpan {
    /// 32-digit hex trace ID.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// 16-digit hex span ID.
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// W3C trace flags (bit 0: sampled).
    pub flags: u32,
    /// Span name.
    pub operation_name: String,
    /// Parent (first, `CHILD_OF`) and links (`FOLLOWS_FROM`).
    pub references: Vec<JaegerReference>,
    /// Start, µs since the Unix epoch.
    pub start_time: u64,
    /// Duration in µs.
    pub duration: u64,
    /// Span tags.
    pub tags: Vec<JaegerKeyValue>,
    /// Span events as logs.
    pub logs: Vec<JaegerLog>,
    /// Key into the trace's `processes`.
    #[serde(rename = "processID")]
    pub process_id: String,
    /// Span-level warnings (data dropped by limits), `null` when there are none.
    pub warnings: Option<Vec<String>>,
}

/// A reference from a span to another span.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct JaegerReference {
    /// `CHILD_OF` or `FOLLOWS_FROM`.
    #[serde(rename = "refType")]
    pub ref_type: &'static str,
    /// Referenced trace.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Referenced span.
    #[serde(rename = "spanID")]
    pub span_id: String,
}

/// The process that emitted spans.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JaegerProcess {
    /// The resource's `service.name`.
    pub service_name: String,
    /// The other resource attributes.
    pub tags: Vec<JaegerKeyValue>,
}

/// A timestamped log (an OpenTelemetry span event).
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct JaegerLog {
    /// µs since the Unix epoch.
    pub timestamp: u64,
    /// `event` (the name) followed by the event's attributes.
    pub fields: Vec<JaegerKeyValue>,
}

/// A typed tag.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct JaegerKeyValue {
    /// Tag key.
    pub key: String,
    /// `string`, `bool`, `int64`, `float64` or `binary`.
    #[serde(rename = "type")]
    pub value_type: &'static str,
    /// The value, as JSON of that type.
    pub value: Value,
}

impl JaegerKeyValue {
    fn string(key: &str, value: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            value_type: "string",
            value: Value::String(value.into()),
        }
    }

    /// Converts one attribute. Arrays and maps have no Jaeger type; like Jaeger, they are sent
    /// as strings holding their JSON form.
    pub fn from_attribute(kv: &KeyValue) -> Self {
        let (value_type, value) = match &kv.value {
            AttributeValue::String(s) => ("string", Value::String(s.to_string())),
            AttributeValue::Bool(b) => ("bool", Value::Bool(*b)),
            AttributeValue::Int(i) if (-JS_MAX_SAFE_INTEGER..=JS_MAX_SAFE_INTEGER).contains(i) => {
                ("int64", Value::from(*i))
            }
            AttributeValue::Int(i) => ("int64", Value::String(i.to_string())),
            // NaN and infinities have no JSON number form; send their text.
            AttributeValue::Double(d) => (
                "float64",
                serde_json::Number::from_f64(*d)
                    .map_or_else(|| Value::String(d.to_string()), Value::Number),
            ),
            AttributeValue::Bytes(b) => (
                "binary",
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
            ),
            AttributeValue::Array(_) | AttributeValue::KvList(_) | AttributeValue::Empty => {
                ("string", Value::String(kv.value.to_text()))
            }
        };
        Self {
            key: kv.key.to_string(),
            value_type,
            value,
        }
    }
}

fn tags_of(attrs: &[KeyValue]) -> Vec<JaegerKeyValue> {
    attrs.iter().map(JaegerKeyValue::from_attribute).collect()
}

/// The process a span's resource becomes.
pub(crate) fn process_of(span: &Span) -> JaegerProcess {
    JaegerProcess {
        service_name: span.service_name().to_owned(),
        tags: span
            .resource
            .attributes
            .iter()
            .filter(|kv| kv.key != "service.name")
            .map(JaegerKeyValue::from_attribute)
            .collect(),
    }
}

fn span_tags(span: &Span) -> Vec<JaegerKeyValue> {
    let mut tags = Vec::with_capacity(span.attributes.len() + 6);
    if !span.scope.name.is_empty() {
        tags.push(JaegerKeyValue::string("otel.scope.name", &span.scope.name));
    }
    if !span.scope.version.is_empty() {
        tags.push(JaegerKeyValue::string(
            "otel.scope.version",
            &span.scope.version,
        ));
    }
    tags.extend(span.attributes.iter().map(JaegerKeyValue::from_attribute));
    if span.kind != SpanKind::Unspecified {
        tags.push(JaegerKeyValue::string(
            "span.kind",
            span.kind.as_jaeger_str(),
        ));
    }
    if span.status.code != StatusCode::Unset {
        tags.push(JaegerKeyValue::string(
            "otel.status_code",
            span.status.code.as_str(),
        ));
    }
    if span.status.code == StatusCode::Error {
        tags.push(JaegerKeyValue {
            key: "error".to_owned(),
            value_type: "bool",
            value: Value::Bool(true),
        });
    }
    if !span.status.message.is_empty() {
        tags.push(JaegerKeyValue::string(
            "otel.status_description",
            &span.status.message,
        ));
    }
    if !span.trace_state.is_empty() {
        tags.push(JaegerKeyValue::string("w3c.tracestate", &span.trace_state));
    }
    tags
}

/// A link's reference type: OpenTracing bridges record the original one in
/// `opentracing.ref_type`; every other link is `FOLLOWS_FROM`.
pub(crate) fn link_ref_type(link: &Link) -> &'static str {
    let child_of = link.attributes.iter().any(|kv| {
        kv.key == "opentracing.ref_type"
            && matches!(&kv.value, AttributeValue::String(s) if s == "child_of")
    });
    if child_of {
        "CHILD_OF"
    } else {
        "FOLLOWS_FROM"
    }
}

fn references(span: &Span) -> Vec<JaegerReference> {
    let mut refs = Vec::with_capacity(span.links.len() + 1);
    // The parent goes first: Jaeger UI takes the first CHILD_OF reference as the parent.
    if let Some(parent) = span.parent_span_id {
        refs.push(JaegerReference {
            ref_type: "CHILD_OF",
            trace_id: span.trace_id.to_hex(),
            span_id: parent.to_hex(),
        });
    }
    for link in &span.links {
        let ref_type = link_ref_type(link);
        if link.trace_id == span.trace_id && Some(link.span_id) == span.parent_span_id {
            // A link to the parent restates the parent reference, possibly with another type.
            if let Some(first) = refs.first_mut() {
                first.ref_type = ref_type;
            }
            continue;
        }
        refs.push(JaegerReference {
            ref_type,
            trace_id: link.trace_id.to_hex(),
            span_id: link.span_id.to_hex(),
        });
    }
    refs
}

fn logs(span: &Span) -> Vec<JaegerLog> {
    span.events
        .iter()
        .map(|e| {
            let mut fields = Vec::with_capacity(e.attributes.len() + 1);
            if !e.name.is_empty() && !e.attributes.iter().any(|kv| kv.key == "event") {
                fields.push(JaegerKeyValue::string("event", &e.name));
            }
            fields.extend(tags_of(&e.attributes));
            JaegerLog {
                timestamp: e.time.as_micros(),
                fields,
            }
        })
        .collect()
}

/// Tells the user when limits (the producer's or ours) cut data from a span.
fn span_warnings(span: &Span) -> Option<Vec<String>> {
    let mut warnings = Vec::new();
    for (count, what) in [
        (span.dropped_attributes_count, "attributes"),
        (span.dropped_events_count, "events"),
        (span.dropped_links_count, "links"),
    ] {
        if count > 0 {
            warnings.push(format!("{count} {what} of this span were dropped"));
        }
    }
    (!warnings.is_empty()).then_some(warnings)
}

/// Converts one trace's spans, ordered by start time then span ID so answers are stable.
/// Processes are deduplicated by content and numbered `p1..pN` in order of first use.
pub fn trace_to_jaeger(trace_id: TraceId, spans: &[Span], warnings: &[String]) -> JaegerTrace {
    let mut ordered: Vec<&Span> = spans.iter().collect();
    ordered.sort_by_key(|s| (s.start, s.span_id));
    let mut processes: Vec<JaegerProcess> = Vec::new();
    // Spans of one batch share their resource `Arc`; remembering which allocation maps to which
    // process spares building and comparing a process per span.
    let mut by_resource: Vec<(&Arc<Resource>, usize)> = Vec::new();
    let jaeger_spans = ordered
        .into_iter()
        .map(|span| {
            let known = by_resource
                .iter()
                .find(|(r, _)| Arc::ptr_eq(r, &span.resource))
                .map(|(_, i)| *i);
            let index = known.unwrap_or_else(|| {
                let process = process_of(span);
                let i = processes
                    .iter()
                    .position(|p| *p == process)
                    .unwrap_or_else(|| {
                        processes.push(process);
                        processes.len() - 1
                    });
                by_resource.push((&span.resource, i));
                i
            });
            JaegerSpan {
                trace_id: span.trace_id.to_hex(),
                span_id: span.span_id.to_hex(),
                flags: span.flags & 0xff,
                operation_name: span.name.to_string(),
                references: references(span),
                start_time: span.start.as_micros(),
                duration: span.duration_nanos() / 1_000,
                tags: span_tags(span),
                logs: logs(span),
                process_id: format!("p{}", index + 1),
                warnings: span_warnings(span),
            }
        })
        .collect();
    JaegerTrace {
        trace_id: trace_id.to_hex(),
        spans: jaeger_spans,
        processes: processes
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("p{}", i + 1), p))
            .collect(),
        warnings: (!warnings.is_empty()).then(|| warnings.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use faultline_model::{Event, InstrumentationScope, Resource, SpanId, Status, UnixNanos};
    use serde_json::json;

    use super::*;

    fn kv(key: &str, value: AttributeValue) -> KeyValue {
        KeyValue::new(key, value)
    }

    fn span(resource: &Arc<Resource>, id: u8, start: u64) -> Span {
        Span {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([id; 8]),
            flags: 0x301,
            name: format!("op{id}").into(),
            start: UnixNanos(start),
            end: UnixNanos(start + 2_500),
            resource: Arc::clone(resource),
            ..Default::default()
        }
    }

    fn resource(service: &str) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![
                kv("service.name", AttributeValue::String(service.into())),
                kv("host.name", AttributeValue::String("h1".into())),
            ],
            ..Default::default()
        })
    }

    #[test]
    fn typed_values() {
        let cases = [
            (
                AttributeValue::String("s".into()),
                json!({"key": "k", "type": "string", "value": "s"}),
            ),
            (
                AttributeValue::Bool(true),
                json!({"key": "k", "type": "bool", "value": true}),
            ),
            (
                AttributeValue::Int(-42),
                json!({"key": "k", "type": "int64", "value": -42}),
            ),
            (
                AttributeValue::Int(1 << 60),
                json!({"key": "k", "type": "int64", "value": "1152921504606846976"}),
            ),
            (
                AttributeValue::Double(0.25),
                json!({"key": "k", "type": "float64", "value": 0.25}),
            ),
            (
                AttributeValue::Double(f64::NAN),
                json!({"key": "k", "type": "float64", "value": "NaN"}),
            ),
            (
                AttributeValue::Bytes(vec![0, 1, 2, 255]),
                json!({"key": "k", "type": "binary", "value": "AAEC/w=="}),
            ),
            (
                AttributeValue::Array(vec![
                    AttributeValue::Int(1),
                    AttributeValue::String("a".into()),
                ]),
                json!({"key": "k", "type": "string", "value": "[1,\"a\"]"}),
            ),
            (
                AttributeValue::KvList(vec![kv("x", AttributeValue::Bool(false))]),
                json!({"key": "k", "type": "string", "value": "{\"x\":false}"}),
            ),
            (
                AttributeValue::Empty,
                json!({"key": "k", "type": "string", "value": ""}),
            ),
        ];
        for (value, want) in cases {
            let got =
                serde_json::to_value(JaegerKeyValue::from_attribute(&kv("k", value))).unwrap();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn parent_first_and_links_follow() {
        let r = resource("a");
        let mut s = span(&r, 2, 10_000);
        s.parent_span_id = Some(SpanId([1; 8]));
        s.links = vec![
            Link {
                trace_id: TraceId([9; 16]),
                span_id: SpanId([3; 8]),
                ..Default::default()
            },
            Link {
                trace_id: TraceId([9; 16]),
                span_id: SpanId([4; 8]),
                attributes: vec![kv(
                    "opentracing.ref_type",
                    AttributeValue::String("child_of".into()),
                )],
                ..Default::default()
            },
        ];
        let refs = serde_json::to_value(references(&s)).unwrap();
        assert_eq!(
            refs,
            json!([
                {"refType": "CHILD_OF", "traceID": "07070707070707070707070707070707", "spanID": "0101010101010101"},
                {"refType": "FOLLOWS_FROM", "traceID": "09090909090909090909090909090909", "spanID": "0303030303030303"},
                {"refType": "CHILD_OF", "traceID": "09090909090909090909090909090909", "spanID": "0404040404040404"},
            ])
        );
        // A link that names the parent changes the parent reference's type instead of adding one.
        s.links = vec![Link {
            trace_id: s.trace_id,
            span_id: SpanId([1; 8]),
            ..Default::default()
        }];
        let refs = references(&s);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].ref_type, "FOLLOWS_FROM");
    }

    #[test]
    fn events_become_logs_with_event_field() {
        let r = resource("a");
        let mut s = span(&r, 1, 5_000);
        s.events = vec![
            Event {
                time: UnixNanos(6_000),
                name: "exception".into(),
                attributes: vec![kv(
                    "exception.message",
                    AttributeValue::String("boom".into()),
                )],
                dropped_attributes_count: 0,
            },
            Event {
                time: UnixNanos(7_999),
                name: "ignored".into(),
                attributes: vec![kv("event", AttributeValue::String("explicit".into()))],
                dropped_attributes_count: 0,
            },
        ];
        assert_eq!(
            serde_json::to_value(logs(&s)).unwrap(),
            json!([
                {"timestamp": 6, "fields": [
                    {"key": "event", "type": "string", "value": "exception"},
                    {"key": "exception.message", "type": "string", "value": "boom"},
                ]},
                {"timestamp": 7, "fields": [
                    {"key": "event", "type": "string", "value": "explicit"},
                ]},
            ])
        );
    }

    #[test]
    fn processes_are_deduplicated_by_content() {
        let a1 = resource("a");
        // Equal content behind a different allocation shares the process.
        let a2 = resource("a");
        let b = resource("b");
        let spans = vec![span(&b, 3, 3_000), span(&a1, 1, 1_000), span(&a2, 2, 2_000)];
        let t = trace_to_jaeger(TraceId([7; 16]), &spans, &[]);
        let ids: Vec<_> = t
            .spans
            .iter()
            .map(|s| (s.operation_name.as_str(), s.process_id.as_str()))
            .collect();
        assert_eq!(ids, vec![("op1", "p1"), ("op2", "p1"), ("op3", "p2")]);
        assert_eq!(t.processes.len(), 2);
        assert_eq!(t.processes["p2"].service_name, "b");
        assert_eq!(
            serde_json::to_value(&t.processes["p1"]).unwrap(),
            json!({"serviceName": "a", "tags": [{"key": "host.name", "type": "string", "value": "h1"}]})
        );
        assert_eq!(t.warnings, None);
        // Flags keep only the W3C trace-flags byte.
        assert_eq!(t.spans[0].flags, 1);
    }

    #[test]
    fn status_kind_scope_and_warnings() {
        let r = resource("a");
        let mut s = span(&r, 1, 1_000);
        s.kind = SpanKind::Client;
        s.status = Status {
            code: StatusCode::Error,
            message: "failed".into(),
        };
        s.trace_state = "k=v".into();
        s.scope = Arc::new(InstrumentationScope {
            name: "lib".into(),
            version: "1.2".into(),
            ..Default::default()
        });
        s.attributes = vec![kv("n", AttributeValue::Int(1))];
        s.dropped_attributes_count = 3;
        s.dropped_links_count = 1;
        let t = trace_to_jaeger(s.trace_id, &[s], &["cut".to_owned()]);
        let js = serde_json::to_value(&t.spans[0]).unwrap();
        assert_eq!(
            js["tags"],
            json!([
                {"key": "otel.scope.name", "type": "string", "value": "lib"},
                {"key": "otel.scope.version", "type": "string", "value": "1.2"},
                {"key": "n", "type": "int64", "value": 1},
                {"key": "span.kind", "type": "string", "value": "client"},
                {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                {"key": "error", "type": "bool", "value": true},
                {"key": "otel.status_description", "type": "string", "value": "failed"},
                {"key": "w3c.tracestate", "type": "string", "value": "k=v"},
            ])
        );
        assert_eq!(
            js["warnings"],
            json!([
                "3 attributes of this span were dropped",
                "1 links of this span were dropped"
            ])
        );
        assert_eq!(t.warnings, Some(vec!["cut".to_owned()]));
    }
}
