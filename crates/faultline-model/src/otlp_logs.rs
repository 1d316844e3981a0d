//! Conversion between OTLP log types and [`LogRecord`].
//!
//! [`logs_from_otlp`] validates IDs, applies [`LogLimits`] and counts what it truncated, so the
//! receiver can tell clients (and operators) what happened; [`logs_to_otlp`] rebuilds the OTLP
//! form, which is what the WAL stores when a request had to be changed.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1 as pr;

use crate::log::LogRecord;
use crate::otlp::{key_values_to_otlp, value_to_otlp, Limiter, SpanLimits};
use crate::span::{InstrumentationScope, Resource};
use crate::{SpanId, TraceId, UnixNanos};

pub use opentelemetry_proto::tonic::logs::v1::{LogsData, ResourceLogs};

/// Limits applied while converting incoming log records. Values over a limit are cut, not
/// rejected, and every cut is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogLimits {
    /// Longest string or bytes body kept, in bytes; longer bodies are truncated at a UTF-8
    /// character boundary.
    pub max_body_len: usize,
    /// Longest string or bytes attribute value kept, in bytes.
    pub max_attribute_value_len: usize,
    /// Most attributes kept per record, resource or scope.
    pub max_attributes_per_record: usize,
    /// Deepest nesting of array / kv-list values kept; deeper values become empty.
    pub max_value_depth: usize,
    /// Most records accepted in one export request; the rest are rejected (partial success).
    pub max_records_per_request: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_body_len: 64 * 1024,
            max_attribute_value_len: 16 * 1024,
            max_attributes_per_record: 128,
            max_value_depth: 8,
            max_records_per_request: 100_000,
        }
    }
}

impl LogLimits {
    /// Limits loose enough that converting never changes a record (for WAL replay: records
    /// were limited once on ingest).
    pub fn unlimited() -> Self {
        Self {
            max_body_len: usize::MAX,
            max_attribute_value_len: usize::MAX,
            max_attributes_per_record: usize::MAX,
            max_value_depth: usize::MAX,
            max_records_per_request: usize::MAX,
        }
    }

    fn attr_limits(&self) -> SpanLimits {
        SpanLimits {
            max_attribute_value_len: self.max_attribute_value_len,
            max_attributes_per_span: self.max_attributes_per_record,
            max_events_per_span: 0,
            max_links_per_span: 0,
            max_value_depth: self.max_value_depth,
        }
    }

    fn body_limits(&self) -> SpanLimits {
        SpanLimits {
            max_attribute_value_len: self.max_body_len,
            ..self.attr_limits()
        }
    }
}

/// What [`logs_from_otlp`] produced.
#[derive(Debug, Default)]
pub struct ConvertedLogs {
    /// The accepted records.
    pub records: Vec<LogRecord>,
    /// Records rejected (bad IDs, over the per-request limit).
    pub rejected: u64,
    /// One message per distinct reason for rejection, for OTLP partial success.
    pub errors: Vec<String>,
    /// Records whose body was truncated.
    pub truncated_bodies: u64,
    /// Records with an attribute value truncated or attributes dropped.
    pub truncated_attributes: u64,
    /// Whether any accepted record was changed (so the input bytes no longer describe exactly
    /// what was stored).
    pub modified: bool,
}

impl ConvertedLogs {
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

/// Reads an optional ID: empty or all-zero bytes mean "none"; any other length is invalid.
fn optional_id<T>(
    bytes: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, crate::IdParseError>,
    what: &str,
) -> Result<Option<T>, String> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    parse(bytes)
        .map(Some)
        .map_err(|e| format!("invalid {what}: {e}"))
}

/// Converts OTLP resource logs into model records, validating and limiting as it goes.
///
/// A record is rejected when its trace or span ID is present with the wrong length, or when
/// the request holds more than `max_records_per_request` records. Records without IDs are
/// kept: most logs are not written inside a span.
pub fn logs_from_otlp(resource_logs: Vec<pl::ResourceLogs>, limits: &LogLimits) -> ConvertedLogs {
    let mut out = ConvertedLogs::default();
    let attr_limits = limits.attr_limits();
    let body_limits = limits.body_limits();
    let mut lim = Limiter {
        limits: &attr_limits,
        modified: false,
    };
    let mut body_lim = Limiter {
        limits: &body_limits,
        modified: false,
    };
    for rl in resource_logs {
        let resource = lim.resource(rl.resource, rl.schema_url);
        for sl in rl.scope_logs {
            let scope = lim.scope(sl.scope, sl.schema_url);
            for r in sl.log_records {
                if out.records.len() >= limits.max_records_per_request {
                    out.reject(format!(
                        "more than {} log records in one request",
                        limits.max_records_per_request
                    ));
                    continue;
                }
                let ids = optional_id(&r.trace_id, TraceId::from_bytes, "trace_id").and_then(|t| {
                    optional_id(&r.span_id, SpanId::from_bytes, "span_id").map(|s| (t, s))
                });
                let (trace_id, span_id) = match ids {
                    Ok(ids) => ids,
                    Err(why) => {
                        out.reject(why);
                        continue;
                    }
                };
                lim.modified = false;
                body_lim.modified = false;
                let mut dropped = r.dropped_attributes_count;
                let attributes = lim.attrs(r.attributes, &mut dropped);
                let body = body_lim.value(r.body, 0);
                let severity_text = lim.string(r.severity_text);
                let event_name = lim.string(r.event_name);
                if body_lim.modified {
                    out.truncated_bodies += 1;
                    out.modified = true;
                }
                if lim.modified {
                    out.truncated_attributes += 1;
                    out.modified = true;
                }
                let time = if r.time_unix_nano == 0 {
                    r.observed_time_unix_nano
                } else {
                    r.time_unix_nano
                };
                out.records.push(LogRecord {
                    time: UnixNanos(time),
                    observed_time: UnixNanos(r.observed_time_unix_nano),
                    trace_id,
                    span_id,
                    flags: r.flags,
                    severity_number: r.severity_number,
                    severity_text,
                    body,
                    attributes,
                    dropped_attributes_count: dropped,
                    event_name,
                    resource: Arc::clone(&resource),
                    scope: Arc::clone(&scope),
                });
            }
        }
        // Resource and scope cuts are not per record; count them as a change only.
        out.modified |= lim.modified;
    }
    out
}

/// Converts model records back into OTLP, grouping consecutive records that share a resource
/// and scope (by pointer, then by value) the way SDKs send them.
pub fn logs_to_otlp<'a>(records: impl IntoIterator<Item = &'a LogRecord>) -> Vec<pl::ResourceLogs> {
    let mut out: Vec<pl::ResourceLogs> = Vec::new();
    let mut last: Option<(Arc<Resource>, Arc<InstrumentationScope>)> = None;
    for r in records {
        let same_resource = last
            .as_ref()
            .is_some_and(|(res, _)| Arc::ptr_eq(res, &r.resource) || **res == *r.resource);
        let same_scope = same_resource
            && last
                .as_ref()
                .is_some_and(|(_, sc)| Arc::ptr_eq(sc, &r.scope) || **sc == *r.scope);
        if !same_resource {
            out.push(pl::ResourceLogs {
                resource: Some(pr::Resource {
                    attributes: key_values_to_otlp(&r.resource.attributes),
                    dropped_attributes_count: r.resource.dropped_attributes_count,
                    entity_refs: Vec::new(),
                }),
                scope_logs: Vec::new(),
                schema_url: r.resource.schema_url.clone(),
            });
        }
        let Some(rl) = out.last_mut() else { continue };
        if !same_scope {
            rl.scope_logs.push(pl::ScopeLogs {
                scope: Some(pc::InstrumentationScope {
                    name: r.scope.name.clone(),
                    version: r.scope.version.clone(),
                    attributes: key_values_to_otlp(&r.scope.attributes),
                    dropped_attributes_count: r.scope.dropped_attributes_count,
                }),
                log_records: Vec::new(),
                schema_url: r.scope.schema_url.clone(),
            });
        }
        let Some(sl) = rl.scope_logs.last_mut() else {
            continue;
        };
        sl.log_records.push(pl::LogRecord {
            time_unix_nano: r.time.0,
            observed_time_unix_nano: r.observed_time.0,
            severity_number: r.severity_number,
            severity_text: r.severity_text.clone(),
            body: Some(value_to_otlp(&r.body)),
            attributes: key_values_to_otlp(&r.attributes),
            dropped_attributes_count: r.dropped_attributes_count,
            flags: r.flags,
            trace_id: r.trace_id.map(|t| t.0.to_vec()).unwrap_or_default(),
            span_id: r.span_id.map(|s| s.0.to_vec()).unwrap_or_default(),
            event_name: r.event_name.clone(),
        });
        last = Some((Arc::clone(&r.resource), Arc::clone(&r.scope)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AttributeValue;
    use pc::any_value::Value;

    fn string(s: &str) -> Option<pc::AnyValue> {
        Some(pc::AnyValue {
            value: Some(Value::StringValue(s.into())),
        })
    }

    fn request(records: Vec<pl::LogRecord>) -> Vec<pl::ResourceLogs> {
        vec![pl::ResourceLogs {
            resource: Some(pr::Resource {
                attributes: vec![pc::KeyValue {
                    key: "service.name".into(),
                    value: string("checkout"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![pl::ScopeLogs {
                scope: Some(pc::InstrumentationScope {
                    name: "app".into(),
                    ..Default::default()
                }),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }]
    }

    fn record(trace: &[u8], body: &str) -> pl::LogRecord {
        pl::LogRecord {
            time_unix_nano: 5,
            observed_time_unix_nano: 6,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: string(body),
            attributes: vec![pc::KeyValue {
                key: "k".into(),
                value: string("v"),
                ..Default::default()
            }],
            trace_id: trace.to_vec(),
            span_id: if trace.is_empty() { vec![] } else { vec![2; 8] },
            ..Default::default()
        }
    }

    #[test]
    fn records_round_trip_through_otlp() {
        let c = logs_from_otlp(
            request(vec![record(&[1; 16], "hello"), record(&[], "plain")]),
            &LogLimits::default(),
        );
        assert_eq!(c.rejected, 0);
        assert!(!c.modified);
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.records[0].trace_id, Some(TraceId([1; 16])));
        assert_eq!(c.records[0].span_id, Some(SpanId([2; 8])));
        assert_eq!(c.records[1].trace_id, None);
        assert_eq!(c.records[0].service_name(), "checkout");
        let back = logs_from_otlp(logs_to_otlp(&c.records), &LogLimits::unlimited());
        assert_eq!(back.records, c.records);
        assert!(Arc::ptr_eq(
            &back.records[0].resource,
            &back.records[1].resource
        ));
    }

    #[test]
    fn zero_time_falls_back_to_observed_time() {
        let mut r = record(&[], "x");
        r.time_unix_nano = 0;
        let c = logs_from_otlp(request(vec![r]), &LogLimits::default());
        assert_eq!(c.records[0].time, UnixNanos(6));
    }

    #[test]
    fn bad_ids_are_rejected_and_limits_counted() {
        let limits = LogLimits {
            max_body_len: 4,
            max_records_per_request: 2,
            ..LogLimits::default()
        };
        let c = logs_from_otlp(
            request(vec![
                record(&[1; 5], "x"),
                record(&[], "élan vital"),
                record(&[], "ok"),
                record(&[], "over the request limit"),
            ]),
            &limits,
        );
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.rejected, 2);
        assert_eq!(c.truncated_bodies, 1);
        assert!(c.modified);
        assert_eq!(c.records[0].body, AttributeValue::String("éla".into()));
        assert!(
            c.error_message().contains("trace_id"),
            "{}",
            c.error_message()
        );
    }
}
