//! Jaeger JSON written straight from the stored spans, for large answers.
//!
//! [`crate::jaeger_json::trace_to_jaeger`] builds a tree of owned strings and
//! `serde_json::Value`s and then serializes it: for a 100k-span trace that is millions of small
//! allocations made, walked and freed. [`TraceJson`] writes the same JSON in one pass over the
//! spans, borrowing names, keys and values, hex-encoding IDs on the stack and numbering
//! processes once per resource. Tests check it writes exactly what `trace_to_jaeger` does.

use std::collections::HashMap;
use std::fmt::Write as _;

use base64::Engine;
use faultline_model::{AttributeValue, KeyValue, Resource, Span, SpanKind, StatusCode, TraceId};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::jaeger_json::{link_ref_type, process_of, JaegerProcess, JS_MAX_SAFE_INTEGER};

/// One trace's Jaeger JSON, serialized on the fly from its spans.
pub struct TraceJson<'a> {
    trace_id: TraceId,
    spans: Vec<&'a Span>,
    /// Process number (0-based) of each span in `spans`.
    process_of_span: Vec<u32>,
    processes: Vec<JaegerProcess>,
    warnings: &'a [String],
}

impl<'a> TraceJson<'a> {
    /// Orders the spans (start, then span ID) and numbers their processes in order of first
    /// use, deduplicated by content, exactly as `trace_to_jaeger` does.
    pub fn new(trace_id: TraceId, spans: &'a [Span], warnings: &'a [String]) -> Self {
        let mut ordered: Vec<&Span> = spans.iter().collect();
        ordered.sort_by_key(|s| (s.start, s.span_id));
        let mut processes: Vec<JaegerProcess> = Vec::new();
        let mut by_resource: HashMap<*const Resource, u32> = HashMap::new();
        let process_of_span = ordered
            .iter()
            .map(|span| {
                *by_resource
                    .entry(std::sync::Arc::as_ptr(&span.resource))
                    .or_insert_with(|| {
                        let process = process_of(span);
                        let i = processes
                            .iter()
                            .position(|p| *p == process)
                            .unwrap_or_else(|| {
                                processes.push(process);
                                processes.len() - 1
                            });
                        i as u32
                    })
            })
            .collect();
        Self {
            trace_id,
            spans: ordered,
            process_of_span,
            processes,
            warnings,
        }
    }

    /// A buffer size that usually holds the whole answer, so it is written without regrowing.
    pub fn size_hint(&self) -> usize {
        self.spans.len().saturating_mul(1_100).saturating_add(4_096)
    }
}

/// Lower-case hex of an ID, formatted on the stack.
struct Hex<'a>(&'a [u8]);

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 32];
        let n = self.0.len().min(16);
        for (i, b) in self.0[..n].iter().enumerate() {
            buf[2 * i] = DIGITS[usize::from(b >> 4)];
            buf[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
        }
        // Only ASCII hex digits were written.
        let s = std::str::from_utf8(&buf[..2 * n]).unwrap_or_default();
        serializer.serialize_str(s)
    }
}

/// `p<N>` (1-based), the key of a process.
struct ProcessId(u32);

impl Serialize for ProcessId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = String::with_capacity(8);
        let _ = write!(buf, "p{}", self.0 + 1);
        serializer.serialize_str(&buf)
    }
}

impl Serialize for TraceJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("traceID", &Hex(&self.trace_id.0))?;
        map.serialize_entry("spans", &SpansJson(self))?;
        map.serialize_entry("processes", &ProcessesJson(&self.processes))?;
        let warnings = (!self.warnings.is_empty()).then_some(self.warnings);
        map.serialize_entry("warnings", &warnings)?;
        map.end()
    }
}

struct ProcessesJson<'a>(&'a [JaegerProcess]);

impl Serialize for ProcessesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `trace_to_jaeger` keeps processes in a BTreeMap: keys in string order (p1, p10, p2).
        let mut keyed: Vec<(String, &JaegerProcess)> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("p{}", i + 1), p))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut map = serializer.serialize_map(Some(keyed.len()))?;
        for (k, p) in keyed {
            map.serialize_entry(&k, p)?;
        }
        map.end()
    }
}

struct SpansJson<'a, 'b>(&'b TraceJson<'a>);

impl Serialize for SpansJson<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut seq = serializer.serialize_seq(Some(t.spans.len()))?;
        for (span, process) in t.spans.iter().zip(&t.process_of_span) {
            seq.serialize_element(&SpanJson {
                span,
                process: *process,
            })?;
        }
        seq.end()
    }
}

struct SpanJson<'a> {
    span: &'a Span,
    process: u32,
}

impl Serialize for SpanJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.span;
        let mut map = serializer.serialize_map(Some(11))?;
        map.serialize_entry("traceID", &Hex(&s.trace_id.0))?;
        map.serialize_entry("spanID", &Hex(&s.span_id.0))?;
        map.serialize_entry("flags", &(s.flags & 0xff))?;
        map.serialize_entry("operationName", &s.name)?;
        map.serialize_entry("references", &References(s))?;
        map.serialize_entry("startTime", &s.start.as_micros())?;
        map.serialize_entry("duration", &(s.duration_nanos() / 1_000))?;
        map.serialize_entry("tags", &SpanTags(s))?;
        map.serialize_entry("logs", &Logs(s))?;
        map.serialize_entry("processID", &ProcessId(self.process))?;
        map.serialize_entry("warnings", &SpanWarnings(s))?;
        map.end()
    }
}

/// One reference: type, trace and span.
struct Reference<'a> {
    ref_type: &'static str,
    trace_id: &'a TraceId,
    span_id: &'a [u8; 8],
}

impl Serialize for Reference<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("refType", self.ref_type)?;
        map.serialize_entry("traceID", &Hex(&self.trace_id.0))?;
        map.serialize_entry("spanID", &Hex(self.span_id))?;
        map.end()
    }
}

struct References<'a>(&'a Span);

impl Serialize for References<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.0;
        let mut parent_type = "CHILD_OF";
        // A link to the parent restates the parent reference, possibly with another type.
        for link in &span.links {
            if link.trace_id == span.trace_id && Some(link.span_id) == span.parent_span_id {
                parent_type = link_ref_type(link);
            }
        }
        let mut seq = serializer.serialize_seq(None)?;
        if let Some(parent) = &span.parent_span_id {
            seq.serialize_element(&Reference {
                ref_type: parent_type,
                trace_id: &span.trace_id,
                span_id: &parent.0,
            })?;
        }
        for link in &span.links {
            if link.trace_id == span.trace_id && Some(link.span_id) == span.parent_span_id {
                continue;
            }
            seq.serialize_element(&Reference {
                ref_type: link_ref_type(link),
                trace_id: &link.trace_id,
                span_id: &link.span_id.0,
            })?;
        }
        seq.end()
    }
}

/// A tag written without building a `JaegerKeyValue`.
enum Tag<'a> {
    Attribute(&'a KeyValue),
    Str(&'static str, &'a str),
    True(&'static str),
}

impl Serialize for Tag<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        match self {
            Tag::Str(k, v) => {
                map.serialize_entry("key", k)?;
                map.serialize_entry("type", "string")?;
                map.serialize_entry("value", v)?;
            }
            Tag::True(k) => {
                map.serialize_entry("key", k)?;
                map.serialize_entry("type", "bool")?;
                map.serialize_entry("value", &true)?;
            }
            Tag::Attribute(kv) => {
                map.serialize_entry("key", &kv.key)?;
                match &kv.value {
                    AttributeValue::String(s) => {
                        map.serialize_entry("type", "string")?;
                        map.serialize_entry("value", s.as_str())?;
                    }
                    AttributeValue::Bool(b) => {
                        map.serialize_entry("type", "bool")?;
                        map.serialize_entry("value", b)?;
                    }
                    AttributeValue::Int(i)
                        if (-JS_MAX_SAFE_INTEGER..=JS_MAX_SAFE_INTEGER).contains(i) =>
                    {
                        map.serialize_entry("type", "int64")?;
                        map.serialize_entry("value", i)?;
                    }
                    AttributeValue::Int(i) => {
                        map.serialize_entry("type", "int64")?;
                        map.serialize_entry("value", &i.to_string())?;
                    }
                    AttributeValue::Double(d) if d.is_finite() => {
                        map.serialize_entry("type", "float64")?;
                        map.serialize_entry("value", d)?;
                    }
                    AttributeValue::Double(d) => {
                        map.serialize_entry("type", "float64")?;
                        map.serialize_entry("value", &d.to_string())?;
                    }
                    AttributeValue::Bytes(b) => {
                        map.serialize_entry("type", "binary")?;
                        map.serialize_entry(
                            "value",
                            &base64::engine::general_purpose::STANDARD.encode(b),
                        )?;
                    }
                    other => {
                        map.serialize_entry("type", "string")?;
                        map.serialize_entry("value", &other.to_text())?;
                    }
                }
            }
        }
        map.end()
    }
}

struct SpanTags<'a>(&'a Span);

impl Serialize for SpanTags<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.0;
        let mut seq = serializer.serialize_seq(None)?;
        if !span.scope.name.is_empty() {
            seq.serialize_element(&Tag::Str("otel.scope.name", &span.scope.name))?;
        }
        if !span.scope.version.is_empty() {
            seq.serialize_element(&Tag::Str("otel.scope.version", &span.scope.version))?;
        }
        for kv in &span.attributes {
            seq.serialize_element(&Tag::Attribute(kv))?;
        }
        if span.kind != SpanKind::Unspecified {
            seq.serialize_element(&Tag::Str("span.kind", span.kind.as_jaeger_str()))?;
        }
        if span.status.code != StatusCode::Unset {
            seq.serialize_element(&Tag::Str("otel.status_code", span.status.code.as_str()))?;
        }
        if span.status.code == StatusCode::Error {
            seq.serialize_element(&Tag::True("error"))?;
        }
        if !span.status.message.is_empty() {
            seq.serialize_element(&Tag::Str("otel.status_description", &span.status.message))?;
        }
        if !span.trace_state.is_empty() {
            seq.serialize_element(&Tag::Str("w3c.tracestate", &span.trace_state))?;
        }
        seq.end()
    }
}

struct Logs<'a>(&'a Span);

impl Serialize for Logs<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.events.len()))?;
        for e in &self.0.events {
            seq.serialize_element(&LogJson(e))?;
        }
        seq.end()
    }
}

struct LogJson<'a>(&'a faultline_model::Event);

impl Serialize for LogJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("timestamp", &e.time.as_micros())?;
        map.serialize_entry("fields", &LogFields(e))?;
        map.end()
    }
}

struct LogFields<'a>(&'a faultline_model::Event);

impl Serialize for LogFields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut seq = serializer.serialize_seq(None)?;
        if !e.name.is_empty() && !e.attributes.iter().any(|kv| kv.key == "event") {
            seq.serialize_element(&Tag::Str("event", &e.name))?;
        }
        for kv in &e.attributes {
            seq.serialize_element(&Tag::Attribute(kv))?;
        }
        seq.end()
    }
}

struct SpanWarnings<'a>(&'a Span);

impl Serialize for SpanWarnings<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.0;
        let counts = [
            (span.dropped_attributes_count, "attributes"),
            (span.dropped_events_count, "events"),
            (span.dropped_links_count, "links"),
        ];
        if counts.iter().all(|(n, _)| *n == 0) {
            return serializer.serialize_none();
        }
        let mut seq = serializer.serialize_seq(None)?;
        for (count, what) in counts {
            if count > 0 {
                seq.serialize_element(&format!("{count} {what} of this span were dropped"))?;
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use faultline_model::{Event, InstrumentationScope, Link, SpanId, Status, TraceId, UnixNanos};
    use proptest::prelude::*;

    use super::*;
    use crate::jaeger_json::trace_to_jaeger;

    fn value_strategy() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            "[a-z\"\\\\é]{0,6}".prop_map(|s: String| AttributeValue::String(s.into())),
            any::<bool>().prop_map(AttributeValue::Bool),
            any::<i64>().prop_map(AttributeValue::Int),
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(1.0),
                Just(-0.0)
            ]
            .prop_map(AttributeValue::Double),
            proptest::collection::vec(any::<u8>(), 0..4).prop_map(AttributeValue::Bytes),
            proptest::collection::vec(any::<i64>().prop_map(AttributeValue::Int), 0..3)
                .prop_map(AttributeValue::Array),
            Just(AttributeValue::Empty),
        ]
    }

    fn attrs() -> impl Strategy<Value = Vec<KeyValue>> {
        proptest::collection::vec(
            ("[a-z.]{1,6}", value_strategy()).prop_map(|(k, v)| KeyValue::new(k, v)),
            0..4,
        )
    }

    prop_compose! {
        fn span_strategy(resources: Vec<Arc<Resource>>)(
            id in 1u8..20,
            parent in proptest::option::of(1u8..20),
            start in 0u64..5,
            dur in 0u64..5_000,
            kind in 0i32..6,
            status in 0i32..3,
            message in "[a-z]{0,3}",
            trace_state in "[a-z=]{0,3}",
            attributes in attrs(),
            event_attrs in attrs(),
            event_name in "(event|exception|)",
            link_to_parent in any::<bool>(),
            dropped in 0u32..2,
            r in 0usize..3,
        ) -> Span {
            let trace_id = TraceId([7; 16]);
            let mut links = vec![Link {
                trace_id: TraceId([8; 16]),
                span_id: SpanId([3; 8]),
                attributes: vec![KeyValue::new(
                    "opentracing.ref_type",
                    AttributeValue::String("child_of".into()),
                )],
                ..Default::default()
            }];
            if link_to_parent {
                if let Some(p) = parent {
                    links.push(Link { trace_id, span_id: SpanId([p; 8]), ..Default::default() });
                }
            }
            Span {
                trace_id,
                span_id: SpanId([id; 8]),
                parent_span_id: parent.map(|p| SpanId([p; 8])),
                trace_state,
                flags: 0x301,
                name: format!("op{id}").into(),
                kind: SpanKind::from_i32(kind),
                start: UnixNanos(start * 1_000),
                end: UnixNanos(start * 1_000 + dur),
                attributes,
                dropped_attributes_count: dropped,
                events: vec![Event {
                    time: UnixNanos(start),
                    name: event_name,
                    attributes: event_attrs,
                    dropped_attributes_count: 0,
                }],
                dropped_events_count: 0,
                links,
                dropped_links_count: dropped,
                status: Status { code: StatusCode::from_i32(status), message },
                resource: Arc::clone(&resources[r % resources.len()]),
                scope: Arc::new(InstrumentationScope {
                    name: if id % 2 == 0 { "lib".into() } else { String::new() },
                    version: if id % 3 == 0 { "1".into() } else { String::new() },
                    ..Default::default()
                }),
            }
        }
    }

    fn resources() -> Vec<Arc<Resource>> {
        let r = |service: &str, host: &str| {
            Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AttributeValue::String(service.into())),
                    KeyValue::new("host.name", AttributeValue::String(host.into())),
                ],
                ..Default::default()
            })
        };
        // Two allocations with equal content share a process.
        vec![r("a", "h1"), r("b", "h2"), r("a", "h1")]
    }

    proptest! {
        #[test]
        fn streamed_json_is_exactly_the_model_json(
            spans in proptest::collection::vec(span_strategy(resources()), 1..12),
            warn in any::<bool>(),
        ) {
            let warnings = if warn { vec!["cut".to_owned()] } else { Vec::new() };
            let id = TraceId([7; 16]);
            let want = serde_json::to_string(&trace_to_jaeger(id, &spans, &warnings)).unwrap();
            let got = serde_json::to_string(&TraceJson::new(id, &spans, &warnings)).unwrap();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn many_processes_keep_string_key_order() {
        let resources: Vec<Arc<Resource>> = (0..12)
            .map(|i| Arc::new(Resource::for_service(format!("s{i}"))))
            .collect();
        let spans: Vec<Span> = (0..12u8)
            .map(|i| Span {
                trace_id: TraceId([1; 16]),
                span_id: SpanId([i + 1; 8]),
                flags: 1,
                name: "x".into(),
                kind: SpanKind::Server,
                start: UnixNanos(u64::from(i)),
                end: UnixNanos(u64::from(i) + 1),
                resource: Arc::clone(&resources[usize::from(i)]),
                ..Default::default()
            })
            .collect();
        let id = TraceId([1; 16]);
        assert_eq!(
            serde_json::to_string(&TraceJson::new(id, &spans, &[])).unwrap(),
            serde_json::to_string(&trace_to_jaeger(id, &spans, &[])).unwrap()
        );
    }
}
