//! Tempo's JSON answer shapes (protobuf JSON of `tempopb`: camelCase fields, 64-bit integers as
//! strings).

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::traceql::eval::OutValue;

/// `GET /api/search`.
#[derive(Serialize, Debug)]
pub(crate) struct SearchResponse {
    pub traces: Vec<TraceSearchMetadata>,
    pub metrics: SearchMetrics,
}

/// One trace of a search answer.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TraceSearchMetadata {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub root_service_name: String,
    pub root_trace_name: String,
    /// uint64 as a string, as protobuf JSON writes it.
    pub start_time_unix_nano: String,
    pub duration_ms: u64,
    /// The first spanset again: Tempo keeps the deprecated single `spanSet` for old clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_set: Option<SpanSet>,
    pub span_sets: Vec<SpanSet>,
}

/// Matched spans of one spanset: at most `spss` of them, with the total matched.
#[derive(Serialize, Debug, Clone)]
pub(crate) struct SpanSet {
    pub spans: Vec<SearchSpan>,
    pub matched: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
}

/// One span of a spanset.
#[derive(Serialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchSpan {
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub name: String,
    pub start_time_unix_nano: String,
    pub duration_nanos: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
}

/// An OTLP-JSON key/value.
#[derive(Serialize, Debug, Clone)]
pub(crate) struct KeyValue {
    pub key: String,
    pub value: AnyValue,
}

/// An OTLP-JSON `AnyValue` holding one scalar.
#[derive(Debug, Clone)]
pub(crate) struct AnyValue(pub OutValue);

impl Serialize for AnyValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match &self.0 {
            OutValue::Str(s) => map.serialize_entry("stringValue", s)?,
            OutValue::Int(i) => map.serialize_entry("intValue", &i.to_string())?,
            OutValue::Float(f) if f.is_finite() => map.serialize_entry("doubleValue", f)?,
            OutValue::Float(f) => map.serialize_entry("stringValue", &f.to_string())?,
            OutValue::Bool(b) => map.serialize_entry("boolValue", b)?,
        }
        map.end()
    }
}

/// Search cost, as Tempo reports it.
#[derive(Serialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchMetrics {
    /// Candidate traces whose spans were evaluated.
    pub inspected_traces: u64,
    /// uint64 as a string: approximate in-memory bytes of the inspected spans.
    pub inspected_bytes: String,
    /// uint64 as a string: spans evaluated.
    pub inspected_spans: String,
    /// Searches run against the store (each a "job").
    pub completed_jobs: u64,
    /// Same as `completed_jobs`: Faultline runs a search to completion before answering.
    pub total_jobs: u64,
    /// Present and `true` when the inspection budget (traces or time) ran out before `limit`
    /// traces matched: more matches may exist further back.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub budget_exhausted: bool,
}

/// `GET /api/search/tags`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TagNames {
    pub tag_names: Vec<String>,
}

/// `GET /api/v2/search/tags`.
#[derive(Serialize, Debug)]
pub(crate) struct TagScopes {
    pub scopes: Vec<TagScope>,
}

/// The tags of one scope.
#[derive(Serialize, Debug)]
pub(crate) struct TagScope {
    pub name: &'static str,
    pub tags: Vec<String>,
}

/// `GET /api/search/tag/{tag}/values`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TagValuesV1 {
    pub tag_values: Vec<String>,
}

/// `GET /api/v2/search/tag/{tag}/values`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TagValuesV2 {
    pub tag_values: Vec<TypedValue>,
}

/// A tag value and its TraceQL type.
#[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TypedValue {
    #[serde(rename = "type")]
    pub value_type: &'static str,
    pub value: String,
}

/// `GET /api/status/buildinfo`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BuildInfo {
    pub version: &'static str,
    pub revision: &'static str,
    pub branch: &'static str,
    pub build_date: &'static str,
    pub build_user: &'static str,
    pub go_version: &'static str,
}
