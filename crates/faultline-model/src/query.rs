//! Span predicates shared by the head, the blocks and the query API.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{AttributeValue, KeyValue, Span, SpanId, SpanKind, StatusCode, UnixNanos};

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

/// Span attributes that name the callee of a CLIENT or PRODUCER span, in the order they are
/// preferred. The callee is a node of the dependency graph even when nothing instruments it (a
/// database, a queue, a third-party API): a *virtual node*.
pub const PEER_ATTRIBUTES: [&str; 3] = ["peer.service", "db.system.name", "server.address"];

/// The callee named by `span`'s attributes (see [`PEER_ATTRIBUTES`]) and the key that named
/// it: the first key whose first string value is not empty. (The first string value of a key
/// is the one a block's dedicated column keeps, so spans read back from a block name the same
/// callee.)
///
/// One pass over the attributes (the live service graph asks this of every client span).
pub fn peer_of(span: &Span) -> Option<(&'static str, &str)> {
    // Per key of `PEER_ATTRIBUTES`, its first string value once seen.
    let mut first: [Option<&str>; PEER_ATTRIBUTES.len()] = [None; PEER_ATTRIBUTES.len()];
    for kv in &span.attributes {
        let AttributeValue::String(s) = &kv.value else {
            continue;
        };
        let Some(i) = PEER_ATTRIBUTES.iter().position(|k| kv.key == *k) else {
            continue;
        };
        if let Some(slot @ None) = first.get_mut(i) {
            *slot = Some(s.as_str());
            // No earlier key can name the callee any more.
            if i == 0 && !s.is_empty() {
                break;
            }
        }
    }
    PEER_ATTRIBUTES
        .iter()
        .zip(first)
        .find_map(|(key, s)| Some((*key, s.filter(|s| !s.is_empty())?)))
}

/// Adds the edges of one trace's spans that started in `[start, end]` to `edges`: each
/// cross-service parent→child pair, and each CLIENT or PRODUCER span whose callee has no span
/// here but is named by its attributes (an edge to a virtual node, see [`PEER_ATTRIBUTES`]).
pub fn service_edges(
    spans: &[Span],
    start: UnixNanos,
    end: UnixNanos,
    edges: &mut BTreeMap<(String, String), u64>,
) {
    let by_id: HashMap<_, _> = spans.iter().map(|s| (s.span_id, s)).collect();
    // Calls whose callee is here: their edge is the parent→child pair.
    let mut answered: HashSet<SpanId> = HashSet::new();
    for s in spans {
        let Some(parent) = s.parent_span_id.and_then(|p| by_id.get(&p)) else {
            continue;
        };
        let (ps, cs) = (parent.service_name(), s.service_name());
        if ps != cs {
            answered.insert(parent.span_id);
            if s.start >= start && s.start <= end {
                *edges.entry((ps.to_owned(), cs.to_owned())).or_default() += 1;
            }
        }
    }
    for s in spans {
        if s.start < start
            || s.start > end
            || !matches!(s.kind, SpanKind::Client | SpanKind::Producer)
            || answered.contains(&s.span_id)
        {
            continue;
        }
        let service = s.service_name();
        if let Some((_, peer)) = peer_of(s).filter(|(_, p)| *p != service) {
            *edges
                .entry((service.to_owned(), peer.to_owned()))
                .or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{KeyValue, Resource, TraceId};

    /// `peer_of` as specified: per key in order, the key's first string value, if not empty.
    fn peer_by_key(span: &Span) -> Option<(&'static str, &str)> {
        PEER_ATTRIBUTES.iter().find_map(|&key| {
            span.attributes
                .iter()
                .find_map(|kv| match &kv.value {
                    AttributeValue::String(s) if kv.key == key => Some(s.as_str()),
                    _ => None,
                })
                .filter(|s| !s.is_empty())
                .map(|s| (key, s))
        })
    }

    #[test]
    fn peer_is_the_first_key_whose_first_string_value_is_not_empty() {
        // Every list of up to four attributes drawn from these, in every order.
        let choices: Vec<KeyValue> = vec![
            KeyValue::new("peer.service", AttributeValue::String("pay".into())),
            KeyValue::new("peer.service", AttributeValue::String("".into())),
            KeyValue::new("peer.service", AttributeValue::Int(3)),
            KeyValue::new(
                "db.system.name",
                AttributeValue::String("postgresql".into()),
            ),
            KeyValue::new("db.system.name", AttributeValue::String("".into())),
            KeyValue::new("server.address", AttributeValue::String("10.0.0.1".into())),
            KeyValue::new("server.address", AttributeValue::String("db.svc".into())),
            KeyValue::new("http.route", AttributeValue::String("/x".into())),
        ];
        let n = choices.len();
        let mut checked = 0;
        for len in 0..=4u32 {
            for code in 0..n.pow(len) {
                let mut s = span("web", 1, None, SpanKind::Client);
                s.attributes = (0..len)
                    .map(|d| choices[code / n.pow(d) % n].clone())
                    .collect();
                assert_eq!(peer_of(&s), peer_by_key(&s), "{:?}", s.attributes);
                checked += 1;
            }
        }
        assert_eq!(checked, 1 + 8 + 64 + 512 + 4096);
    }

    fn span(service: &str, id: u8, parent: Option<u8>, kind: SpanKind) -> Span {
        Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            name: format!("op-{id}").into(),
            kind,
            start: UnixNanos(1_000),
            end: UnixNanos(2_000),
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new(
                    "service.name",
                    AttributeValue::String(service.into()),
                )],
                dropped_attributes_count: 0,
                schema_url: String::new(),
            }),
            ..Default::default()
        }
    }

    fn with(mut s: Span, key: &str, value: &str) -> Span {
        s.attributes
            .push(KeyValue::new(key, AttributeValue::String(value.into())));
        s
    }

    #[test]
    fn edges_are_cross_service_pairs_and_calls_to_virtual_nodes() {
        let spans = vec![
            span("gateway", 1, None, SpanKind::Server),
            // Answered by order: the pair is the edge, not the peer name.
            with(
                span("gateway", 2, Some(1), SpanKind::Client),
                "server.address",
                "10.0.0.7",
            ),
            span("order", 3, Some(2), SpanKind::Server),
            // Nobody instruments the database or the provider: their names are the nodes.
            with(
                with(
                    span("order", 4, Some(3), SpanKind::Client),
                    "server.address",
                    "db.internal",
                ),
                "db.system.name",
                "postgresql",
            ),
            with(
                span("order", 5, Some(3), SpanKind::Producer),
                "peer.service",
                "orders-queue",
            ),
            // Unnamed, naming itself, or not a call: no edge.
            span("order", 6, Some(3), SpanKind::Client),
            with(
                span("order", 7, Some(3), SpanKind::Client),
                "peer.service",
                "order",
            ),
            with(
                span("order", 8, Some(3), SpanKind::Internal),
                "peer.service",
                "cache",
            ),
        ];
        let mut edges = BTreeMap::new();
        service_edges(&spans, UnixNanos(0), UnixNanos(10_000), &mut edges);
        let got: Vec<(&str, &str, u64)> = edges
            .iter()
            .map(|((a, b), n)| (a.as_str(), b.as_str(), *n))
            .collect();
        assert_eq!(
            got,
            [
                ("gateway", "order", 1),
                ("order", "orders-queue", 1),
                ("order", "postgresql", 1),
            ]
        );
        // Outside the window nothing counts.
        let mut none = BTreeMap::new();
        service_edges(&spans, UnixNanos(5_000), UnixNanos(10_000), &mut none);
        assert!(none.is_empty());
    }
}
