//! Span and batch generators for tests.

use std::sync::Arc;

use bytes::Bytes;
use faultline_model::{
    AttributeValue, InstrumentationScope, KeyValue, Resource, Span, SpanId, SpanKind, Status,
    TraceId, UnixNanos,
};
use prost::Message;

use crate::AppendBatch;

/// A span of trace `trace` (a small number made into an ID) with span ID `id`, starting at
/// `start` ns and lasting 1 µs.
pub(crate) fn span(trace: u64, id: u64, start: u64, service: &str, name: &str) -> Span {
    let mut t = [0u8; 16];
    t[8..].copy_from_slice(&trace.to_be_bytes());
    t[0] = 0xab;
    Span {
        trace_id: TraceId(t),
        span_id: SpanId(id.max(1).to_be_bytes()),
        parent_span_id: None,
        trace_state: String::new(),
        flags: 1,
        name: name.to_owned(),
        kind: SpanKind::Server,
        start: UnixNanos(start),
        end: UnixNanos(start + 1_000),
        attributes: vec![KeyValue::new("n", AttributeValue::Int(id as i64))],
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Status::default(),
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AttributeValue::String(service.to_owned()),
            )],
            ..Resource::default()
        }),
        scope: Arc::new(InstrumentationScope::default()),
    }
}

/// The trace ID `span(trace, ..)` uses.
pub(crate) fn trace_id(trace: u64) -> TraceId {
    span(trace, 1, 0, "", "").trace_id
}

/// An append batch whose OTLP bytes describe exactly `spans`.
pub(crate) fn batch(spans: Vec<Span>) -> AppendBatch {
    let data = faultline_model::otlp::TracesData {
        resource_spans: faultline_model::otlp::spans_to_otlp(&spans),
    };
    AppendBatch {
        spans,
        otlp: Bytes::from(data.encode_to_vec()),
    }
}
