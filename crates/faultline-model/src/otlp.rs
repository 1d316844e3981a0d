//! Conversion between OTLP protobuf types and the model.
//!
//! Incoming data is converted with [`spans_from_otlp`], which validates IDs, applies
//! [`SpanLimits`] and reports what it rejected or changed, so that the receiver can answer with
//! OTLP partial success. Protobuf bytes are decoded straight into the same result by
//! [`decode_traces`], without prost's intermediate structs. Outgoing data (api_v3, Tempo) is
//! built with [`spans_to_otlp`].

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;

use crate::span::{
    AttributeValue, Event, InstrumentationScope, KeyValue, Link, Resource, Span, SpanKind, Status,
    StatusCode,
};
use crate::{SpanId, TraceId, UnixNanos};

pub use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};

mod decode;
pub use decode::{decode_traces, DecodeError};

/// Limits applied while converting incoming spans. Values over a limit are cut, not rejected,
/// and the cut is counted in the span's `dropped_attributes_count` where OTLP has a place for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpanLimits {
    /// Longest string or bytes attribute value kept, in bytes; longer values are truncated at a
    /// UTF-8 character boundary.
    pub max_attribute_value_len: usize,
    /// Most attributes kept per span, event, link, resource or scope.
    pub max_attributes_per_span: usize,
    /// Most events kept per span.
    pub max_events_per_span: usize,
    /// Most links kept per span.
    pub max_links_per_span: usize,
    /// Deepest nesting of array / kv-list values kept; deeper values become empty.
    pub max_value_depth: usize,
}

impl SpanLimits {
    /// Limits loose enough that converting never changes a span (for WAL replay: spans were
    /// limited once on ingest).
    pub fn unlimited() -> Self {
        Self {
            max_attribute_value_len: usize::MAX,
            max_attributes_per_span: usize::MAX,
            max_events_per_span: usize::MAX,
            max_links_per_span: usize::MAX,
            max_value_depth: usize::MAX,
        }
    }
}

impl Default for SpanLimits {
    fn default() -> Self {
        Self {
            max_attribute_value_len: 16 * 1024,
            max_attributes_per_span: 128,
            max_events_per_span: 128,
            max_links_per_span: 128,
            max_value_depth: 8,
        }
    }
}

/// What [`spans_from_otlp`] or [`decode_traces`] produced.
#[derive(Debug, Default)]
pub struct Converted {
    /// The accepted spans.
    pub spans: Vec<Span>,
    /// Spans rejected as invalid (bad IDs).
    pub rejected: u64,
    /// One message per distinct reason for rejection, for OTLP partial success.
    pub errors: Vec<String>,
    /// Whether any accepted span was changed by the limits (so the input bytes no longer
    /// describe exactly what was stored).
    pub modified: bool,
}

impl Converted {
    /// A single human-readable message summarising rejections, empty when none.
    pub fn error_message(&self) -> String {
        self.errors.join("; ")
    }

    fn reject(&mut self, why: String) {
        self.rejected += 1;
        if self.errors.len() < 8 && !self.errors.contains(&why) {
            self.errors.push(why);
        }
    }
}

pub(crate) struct Limiter<'a> {
    pub(crate) limits: &'a SpanLimits,
    pub(crate) modified: bool,
}

impl Limiter<'_> {
    /// The model resource of an OTLP `resource` (absent: empty), its attributes limited.
    pub(crate) fn resource(
        &mut self,
        resource: Option<pr::Resource>,
        schema_url: String,
    ) -> Arc<Resource> {
        let (attributes, mut dropped) = match resource {
            Some(r) => (r.attributes, r.dropped_attributes_count),
            None => (Vec::new(), 0),
        };
        let attributes = self.attrs(attributes, &mut dropped);
        Arc::new(Resource {
            attributes,
            dropped_attributes_count: dropped,
            schema_url,
        })
    }

    /// The model scope of an OTLP `scope` (absent: empty but for its schema URL), its
    /// attributes limited.
    pub(crate) fn scope(
        &mut self,
        scope: Option<pc::InstrumentationScope>,
        schema_url: String,
    ) -> Arc<InstrumentationScope> {
        Arc::new(match scope {
            Some(s) => {
                let mut dropped = s.dropped_attributes_count;
                InstrumentationScope {
                    name: s.name,
                    version: s.version,
                    attributes: self.attrs(s.attributes, &mut dropped),
                    dropped_attributes_count: dropped,
                    schema_url,
                }
            }
            None => InstrumentationScope {
                schema_url,
                ..Default::default()
            },
        })
    }

    pub(crate) fn attrs(&mut self, kvs: Vec<pc::KeyValue>, dropped: &mut u32) -> Vec<KeyValue> {
        let max = self.limits.max_attributes_per_span;
        if kvs.len() > max {
            *dropped = dropped.saturating_add((kvs.len() - max) as u32);
            self.modified = true;
        }
        kvs.into_iter()
            .take(max)
            .map(|kv| KeyValue {
                key: self.string(kv.key).into(),
                value: self.value(kv.value, 0),
            })
            .collect()
    }

    pub(crate) fn string(&mut self, mut s: String) -> String {
        let kept = char_prefix(&s, self.limits.max_attribute_value_len).len();
        if kept < s.len() {
            s.truncate(kept);
            self.modified = true;
        }
        s
    }

    pub(crate) fn value(&mut self, v: Option<pc::AnyValue>, depth: usize) -> AttributeValue {
        use pc::any_value::Value as V;
        let Some(v) = v.and_then(|v| v.value) else {
            return AttributeValue::Empty;
        };
        match v {
            V::StringValue(s) => AttributeValue::String(self.string(s).into()),
            // Only the profiles signal carries a string table; in traces an index means nothing.
            V::StringValueStrindex(_) => {
                self.modified = true;
                AttributeValue::Empty
            }
            V::BoolValue(b) => AttributeValue::Bool(b),
            V::IntValue(i) => AttributeValue::Int(i),
            V::DoubleValue(d) => AttributeValue::Double(d),
            V::BytesValue(mut b) => {
                if b.len() > self.limits.max_attribute_value_len {
                    b.truncate(self.limits.max_attribute_value_len);
                    self.modified = true;
                }
                AttributeValue::Bytes(b)
            }
            V::ArrayValue(a) => {
                if depth >= self.limits.max_value_depth {
                    self.modified = true;
                    return AttributeValue::Empty;
                }
                let max = self.limits.max_attributes_per_span;
                if a.values.len() > max {
                    self.modified = true;
                }
                AttributeValue::Array(
                    a.values
                        .into_iter()
                        .take(max)
                        .map(|v| self.value(Some(v), depth + 1))
                        .collect(),
                )
            }
            V::KvlistValue(l) => {
                if depth >= self.limits.max_value_depth {
                    self.modified = true;
                    return AttributeValue::Empty;
                }
                let max = self.limits.max_attributes_per_span;
                if l.values.len() > max {
                    self.modified = true;
                }
                AttributeValue::KvList(
                    l.values
                        .into_iter()
                        .take(max)
                        .map(|kv| KeyValue {
                            key: self.string(kv.key).into(),
                            value: self.value(kv.value, depth + 1),
                        })
                        .collect(),
                )
            }
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn char_prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// A span's trace, span and parent IDs from their OTLP bytes, or why the span is rejected.
pub(crate) fn span_ids(
    trace_id: &[u8],
    span_id: &[u8],
    parent_span_id: &[u8],
) -> Result<(TraceId, SpanId, Option<SpanId>), String> {
    let trace_id = TraceId::from_bytes(trace_id).map_err(|e| format!("invalid trace_id: {e}"))?;
    let span_id = SpanId::from_bytes(span_id).map_err(|e| format!("invalid span_id: {e}"))?;
    let parent_span_id = if parent_span_id.is_empty() || parent_span_id == [0u8; 8] {
        None
    } else {
        Some(
            SpanId::from_bytes(parent_span_id)
                .map_err(|e| format!("invalid parent_span_id: {e}"))?,
        )
    };
    Ok((trace_id, span_id, parent_span_id))
}

/// Converts OTLP resource spans into model spans, validating and limiting as it goes.
///
/// A span is rejected (counted in [`Converted::rejected`]) when its trace or span ID is not
/// 16/8 bytes or is all zeroes, or its parent ID is present with the wrong length. An end time
/// before the start time is clamped to the start and flagged as modified.
pub fn spans_from_otlp(resource_spans: Vec<pt::ResourceSpans>, limits: &SpanLimits) -> Converted {
    let mut out = Converted::default();
    let mut lim = Limiter {
        limits,
        modified: false,
    };
    for rs in resource_spans {
        let resource = lim.resource(rs.resource, rs.schema_url);
        for ss in rs.scope_spans {
            let scope = lim.scope(ss.scope, ss.schema_url);
            out.spans.reserve(ss.spans.len());
            for s in ss.spans {
                match span_from_otlp(s, &resource, &scope, &mut lim) {
                    Ok(span) => out.spans.push(span),
                    Err(why) => out.reject(why),
                }
            }
        }
    }
    out.modified = lim.modified;
    out
}

fn span_from_otlp(
    s: pt::Span,
    resource: &Arc<Resource>,
    scope: &Arc<InstrumentationScope>,
    lim: &mut Limiter<'_>,
) -> Result<Span, String> {
    let (trace_id, span_id, parent_span_id) = span_ids(&s.trace_id, &s.span_id, &s.parent_span_id)?;
    let start = UnixNanos(s.start_time_unix_nano);
    let mut end = UnixNanos(s.end_time_unix_nano);
    if end < start {
        end = start;
        lim.modified = true;
    }
    let mut dropped_attributes_count = s.dropped_attributes_count;
    let attributes = lim.attrs(s.attributes, &mut dropped_attributes_count);
    let mut dropped_events_count = s.dropped_events_count;
    if s.events.len() > lim.limits.max_events_per_span {
        dropped_events_count = dropped_events_count
            .saturating_add((s.events.len() - lim.limits.max_events_per_span) as u32);
        lim.modified = true;
    }
    let events = s
        .events
        .into_iter()
        .take(lim.limits.max_events_per_span)
        .map(|e| {
            let mut dropped = e.dropped_attributes_count;
            Event {
                time: UnixNanos(e.time_unix_nano),
                name: lim.string(e.name),
                attributes: lim.attrs(e.attributes, &mut dropped),
                dropped_attributes_count: dropped,
            }
        })
        .collect();
    let mut dropped_links_count = s.dropped_links_count;
    if s.links.len() > lim.limits.max_links_per_span {
        dropped_links_count = dropped_links_count
            .saturating_add((s.links.len() - lim.limits.max_links_per_span) as u32);
        lim.modified = true;
    }
    let mut links = Vec::with_capacity(s.links.len().min(lim.limits.max_links_per_span));
    for l in s.links.into_iter().take(lim.limits.max_links_per_span) {
        let (Ok(trace_id), Ok(span_id)) = (
            TraceId::from_bytes(&l.trace_id),
            SpanId::from_bytes(&l.span_id),
        ) else {
            // A link to an invalid context carries no information; drop it, keep the span.
            dropped_links_count = dropped_links_count.saturating_add(1);
            lim.modified = true;
            continue;
        };
        let mut dropped = l.dropped_attributes_count;
        links.push(Link {
            trace_id,
            span_id,
            trace_state: l.trace_state,
            attributes: lim.attrs(l.attributes, &mut dropped),
            dropped_attributes_count: dropped,
            flags: l.flags,
        });
    }
    let status = s.status.map_or_else(Status::default, |st| Status {
        code: StatusCode::from_i32(st.code),
        message: lim.string(st.message),
    });
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: s.trace_state,
        flags: s.flags,
        name: lim.string(s.name).into(),
        kind: SpanKind::from_i32(s.kind),
        start,
        end,
        attributes,
        dropped_attributes_count,
        events,
        dropped_events_count,
        links,
        dropped_links_count,
        status,
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

/// Converts a model attribute list to OTLP.
pub fn key_values_to_otlp(kvs: &[KeyValue]) -> Vec<pc::KeyValue> {
    kvs.iter()
        .map(|kv| pc::KeyValue {
            key: kv.key.to_string(),
            value: Some(value_to_otlp(&kv.value)),
            key_strindex: 0,
        })
        .collect()
}

/// Converts a model attribute value to OTLP.
pub fn value_to_otlp(v: &AttributeValue) -> pc::AnyValue {
    use pc::any_value::Value as V;
    let value = match v {
        AttributeValue::String(s) => Some(V::StringValue(s.to_string())),
        AttributeValue::Bool(b) => Some(V::BoolValue(*b)),
        AttributeValue::Int(i) => Some(V::IntValue(*i)),
        AttributeValue::Double(d) => Some(V::DoubleValue(*d)),
        AttributeValue::Bytes(b) => Some(V::BytesValue(b.clone())),
        AttributeValue::Array(items) => Some(V::ArrayValue(pc::ArrayValue {
            values: items.iter().map(value_to_otlp).collect(),
        })),
        AttributeValue::KvList(kvs) => Some(V::KvlistValue(pc::KeyValueList {
            values: key_values_to_otlp(kvs),
        })),
        AttributeValue::Empty => None,
    };
    pc::AnyValue { value }
}

fn span_to_otlp(s: &Span) -> pt::Span {
    pt::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags: s.flags,
        name: s.name.to_string(),
        kind: s.kind as i32,
        start_time_unix_nano: s.start.0,
        end_time_unix_nano: s.end.0,
        attributes: key_values_to_otlp(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| pt::span::Event {
                time_unix_nano: e.time.0,
                name: e.name.clone(),
                attributes: key_values_to_otlp(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .map(|l| pt::span::Link {
                trace_id: l.trace_id.0.to_vec(),
                span_id: l.span_id.0.to_vec(),
                trace_state: l.trace_state.clone(),
                attributes: key_values_to_otlp(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status: (s.status.code != StatusCode::Unset || !s.status.message.is_empty()).then(|| {
            pt::Status {
                message: s.status.message.clone(),
                code: s.status.code as i32,
            }
        }),
    }
}

/// Spans of one resource, grouped by scope.
type ResourceGroup = (
    Arc<Resource>,
    Vec<(Arc<InstrumentationScope>, Vec<pt::Span>)>,
);

/// Converts model spans to OTLP, grouping spans that share a resource and then a scope
/// (by pointer first, then by value) into one `ResourceSpans` / `ScopeSpans`.
pub fn spans_to_otlp<'a>(spans: impl IntoIterator<Item = &'a Span>) -> Vec<pt::ResourceSpans> {
    let mut groups: Vec<ResourceGroup> = Vec::new();
    for s in spans {
        let gi = groups
            .iter()
            .position(|(r, _)| Arc::ptr_eq(r, &s.resource) || **r == *s.resource)
            .unwrap_or_else(|| {
                groups.push((Arc::clone(&s.resource), Vec::new()));
                groups.len() - 1
            });
        let scopes = &mut groups[gi].1;
        let si = scopes
            .iter()
            .position(|(sc, _)| Arc::ptr_eq(sc, &s.scope) || **sc == *s.scope)
            .unwrap_or_else(|| {
                scopes.push((Arc::clone(&s.scope), Vec::new()));
                scopes.len() - 1
            });
        scopes[si].1.push(span_to_otlp(s));
    }
    groups
        .into_iter()
        .map(|(r, scopes)| pt::ResourceSpans {
            resource: Some(pr::Resource {
                attributes: key_values_to_otlp(&r.attributes),
                dropped_attributes_count: r.dropped_attributes_count,
                entity_refs: Vec::new(),
            }),
            schema_url: r.schema_url.clone(),
            scope_spans: scopes
                .into_iter()
                .map(|(sc, spans)| pt::ScopeSpans {
                    scope: Some(pc::InstrumentationScope {
                        name: sc.name.clone(),
                        version: sc.version.clone(),
                        attributes: key_values_to_otlp(&sc.attributes),
                        dropped_attributes_count: sc.dropped_attributes_count,
                    }),
                    schema_url: sc.schema_url.clone(),
                    spans,
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc::any_value::Value as V;

    fn kv(k: &str, v: V) -> pc::KeyValue {
        pc::KeyValue {
            key: k.into(),
            value: Some(pc::AnyValue { value: Some(v) }),
            key_strindex: 0,
        }
    }

    fn sample() -> Vec<pt::ResourceSpans> {
        vec![pt::ResourceSpans {
            resource: Some(pr::Resource {
                attributes: vec![kv("service.name", V::StringValue("checkout".into()))],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_spans: vec![pt::ScopeSpans {
                scope: Some(pc::InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                spans: vec![
                    pt::Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: "GET /cart".into(),
                        kind: 2,
                        start_time_unix_nano: 1_000,
                        end_time_unix_nano: 5_000,
                        attributes: vec![
                            kv("http.response.status_code", V::IntValue(500)),
                            kv("flag", V::BoolValue(true)),
                            kv("ratio", V::DoubleValue(0.5)),
                            kv("blob", V::BytesValue(vec![1, 2, 3])),
                            kv(
                                "list",
                                V::ArrayValue(pc::ArrayValue {
                                    values: vec![pc::AnyValue {
                                        value: Some(V::StringValue("a".into())),
                                    }],
                                }),
                            ),
                        ],
                        events: vec![pt::span::Event {
                            time_unix_nano: 2_000,
                            name: "exception".into(),
                            attributes: vec![kv(
                                "exception.message",
                                V::StringValue("boom".into()),
                            )],
                            dropped_attributes_count: 0,
                        }],
                        links: vec![pt::span::Link {
                            trace_id: vec![3; 16],
                            span_id: vec![4; 8],
                            ..Default::default()
                        }],
                        status: Some(pt::Status {
                            message: "failed".into(),
                            code: 2,
                        }),
                        ..Default::default()
                    },
                    pt::Span {
                        trace_id: vec![1; 15],
                        span_id: vec![2; 8],
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }]
    }

    #[test]
    fn converts_and_round_trips() {
        let input = sample();
        let c = spans_from_otlp(input.clone(), &SpanLimits::default());
        assert_eq!(c.spans.len(), 1);
        assert_eq!(c.rejected, 1);
        assert!(
            c.error_message().contains("trace_id"),
            "{}",
            c.error_message()
        );
        assert!(!c.modified);
        let s = &c.spans[0];
        assert_eq!(s.service_name(), "checkout");
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.status.code, StatusCode::Error);
        assert_eq!(s.duration_nanos(), 4_000);
        assert_eq!(
            s.attribute("http.response.status_code"),
            Some(&AttributeValue::Int(500))
        );

        let back = spans_to_otlp(&c.spans);
        let mut expected = input;
        expected[0].scope_spans[0].spans.truncate(1);
        assert_eq!(back, expected);
    }

    #[test]
    fn applies_limits() {
        let mut input = sample();
        let span = &mut input[0].scope_spans[0].spans[0];
        span.attributes
            .push(kv("long", V::StringValue("é".repeat(100))));
        let limits = SpanLimits {
            max_attribute_value_len: 11,
            max_attributes_per_span: 6,
            max_events_per_span: 0,
            ..SpanLimits::default()
        };
        let c = spans_from_otlp(input, &limits);
        assert!(c.modified);
        let s = &c.spans[0];
        assert_eq!(s.attributes.len(), 6);
        match s.attribute("long") {
            Some(AttributeValue::String(v)) => assert_eq!(v, &"é".repeat(5)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(s.events.is_empty());
        assert_eq!(s.dropped_events_count, 1);
    }

    #[test]
    fn missing_service_name_is_unknown() {
        let mut input = sample();
        input[0].resource = None;
        let c = spans_from_otlp(input, &SpanLimits::default());
        assert_eq!(c.spans[0].service_name(), crate::UNKNOWN_SERVICE);
    }
}
