//! Handcrafted spans for unit tests.

use std::sync::Arc;

use faultline_model::{
    AttributeValue, InstrumentationScope, KeyValue, Resource, Span, SpanId, SpanKind, TraceId,
    UnixNanos,
};

/// A span of `service` in trace `[trace; 16]` with ID `[id; 8]`, from `start_us` to `end_us`
/// microseconds.
pub fn span(
    service: &str,
    trace: u8,
    id: u8,
    parent: Option<u8>,
    kind: SpanKind,
    start_us: u64,
    end_us: u64,
) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        trace_state: String::new(),
        flags: 0,
        name: format!("op-{id}"),
        kind,
        start: UnixNanos(start_us * 1_000),
        end: UnixNanos(end_us * 1_000),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Default::default(),
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AttributeValue::String(service.to_owned()),
            )],
            dropped_attributes_count: 0,
            schema_url: String::new(),
        }),
        scope: Arc::new(InstrumentationScope::default()),
    }
}
