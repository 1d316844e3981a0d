//! Span predicates shared by the head, the blocks and the query API.

use std::collections::{BTreeMap, HashMap};

use crate::{KeyValue, Span, SpanKind, StatusCode, UnixNanos};

/// A span search: a trace matches when one of its spans satisfies every condition.
#[derive(Clone, Debug, Default)]
pub struct SpanQuery {
    /// Service name of the span (exact).
    pub service: Option<String>,
    /// Span name (exact).
    pub operation: Option<String>,
    /// Span kind.
    pub kind: Option<SpanKind>,
    /// `key = value` conditions on span attributes, resource attributes or event attributes,
    /// compared as text ([`crate::AttributeValue::to_text`]). `error=true` also matches
    /// spans with status Error.
    pub tags: Vec<(String, String)>,
    /// Minimum span duration in nanoseconds (inclusive).
    pub min_duration_nanos: Option<u64>,
    /// Maximum span duration in nanoseconds (inclusive).
    pub max_duration_nanos: Option<u64>,
    /// Span start time lower bound (inclusive).
    pub start: UnixNanos,
    /// Span start time upper bound (inclusive).
    pub end: UnixNanos,
    /// Most traces to return.
    pub limit: usize,
}

impl SpanQuery {
    /// Whether one span satisfies every condition.
    pub fn matches(&self, span: &Span) -> bool {
        if span.start < self.start || span.start > self.end {
            return false;
        }
        if self
            .service
            .as_deref()
            .is_some_and(|s| s != span.service_name())
        {
            return false;
        }
        if self.operation.as_deref().is_some_and(|o| o != span.name) {
            return false;
        }
        if self.kind.is_some_and(|k| k != span.kind) {
            return false;
        }
        let d = span.duration_nanos();
        if self.min_duration_nanos.is_some_and(|m| d < m)
            || self.max_duration_nanos.is_some_and(|m| d > m)
        {
            return false;
        }
        self.tags.iter().all(|(k, v)| tag_matches(span, k, v))
    }
}

fn tag_matches(span: &Span, key: &str, value: &str) -> bool {
    if key == "error" && value == "true" && span.status.code == StatusCode::Error {
        return true;
    }
    let hit = |kvs: &[KeyValue]| {
        kvs.iter()
            .any(|kv| kv.key == key && kv.value.to_text() == value)
    };
    hit(&span.attributes)
        || hit(&span.resource.attributes)
        || span.events.iter().any(|e| hit(&e.attributes))
}

/// Adds the cross-service parent→child edges of one trace's spans to `edges`.
pub fn service_edges(
    spans: &[Span],
    start: UnixNanos,
    end: UnixNanos,
    edges: &mut BTreeMap<(String, String), u64>,
) {
    let by_id: HashMap<_, _> = spans.iter().map(|s| (s.span_id, s)).collect();
    for s in spans {
        if s.start < start || s.start > end {
            continue;
        }
        let Some(parent) = s.parent_span_id.and_then(|p| by_id.get(&p)) else {
            continue;
        };
        let (ps, cs) = (parent.service_name(), s.service_name());
        if ps != cs {
            *edges.entry((ps.to_owned(), cs.to_owned())).or_default() += 1;
        }
    }
}
