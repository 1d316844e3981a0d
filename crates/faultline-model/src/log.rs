//! The log record: one OpenTelemetry log line, correlated to a trace when it carries IDs.

use std::sync::Arc;

use crate::span::{find, AttributeValue, InstrumentationScope, KeyValue, Resource};
use crate::{SpanId, TraceId, UnixNanos};

/// One log record as Faultline stores and serves it.
#[derive(Clone, PartialEq, Debug)]
pub struct LogRecord {
    /// When the event happened: the record's `time_unix_nano`, or its observed time when the
    /// producer left that at zero (as OTLP allows).
    pub time: UnixNanos,
    /// When the collecting SDK or agent saw the record.
    pub observed_time: UnixNanos,
    /// The trace the record was written in, if any.
    pub trace_id: Option<TraceId>,
    /// The span the record was written in, if any.
    pub span_id: Option<SpanId>,
    /// W3C trace flags.
    pub flags: u32,
    /// OTLP severity number (1-24; 0 unspecified).
    pub severity_number: i32,
    /// Severity as the source wrote it (`INFO`, `warn`, ...).
    pub severity_text: String,
    /// The message: usually a string, any OTLP value allowed.
    pub body: AttributeValue,
    /// Record attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer (or our limits) dropped.
    pub dropped_attributes_count: u32,
    /// OTLP `event_name`, empty for plain log lines.
    pub event_name: String,
    /// The producing entity, shared by all records of one `ResourceLogs`.
    pub resource: Arc<Resource>,
    /// The instrumentation scope, shared by all records of one `ScopeLogs`.
    pub scope: Arc<InstrumentationScope>,
}

impl LogRecord {
    /// The service that wrote this record.
    pub fn service_name(&self) -> &str {
        self.resource.service_name()
    }

    /// The first record attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<&AttributeValue> {
        find(&self.attributes, key)
    }

    /// The body as text: strings as-is, anything else in its JSON or text form.
    pub fn body_text(&self) -> String {
        self.body.to_text()
    }

    /// Approximate heap size in bytes excluding the shared resource and scope; used to account
    /// the memory held by the in-memory head.
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.severity_text.len()
            + self.event_name.len()
            + self.body.heap_size()
            + self
                .attributes
                .iter()
                .map(KeyValue::heap_size)
                .sum::<usize>()
    }
}

/// What a log search asks for. Every condition set must hold.
#[derive(Clone, Debug, PartialEq)]
pub struct LogQuery {
    /// Only records of this trace.
    pub trace_id: Option<TraceId>,
    /// Only records of this span.
    pub span_id: Option<SpanId>,
    /// Only records whose resource's `service.name` is this.
    pub service: Option<String>,
    /// Only records with at least this severity number.
    pub min_severity: Option<i32>,
    /// Only records whose body contains this text (case-insensitive).
    pub text: Option<String>,
    /// Only records with every one of these attributes (record or resource), compared as text.
    pub tags: Vec<(String, String)>,
    /// Earliest record time, inclusive.
    pub start: UnixNanos,
    /// Latest record time, inclusive.
    pub end: UnixNanos,
    /// Most records returned.
    pub limit: usize,
}

impl Default for LogQuery {
    fn default() -> Self {
        Self {
            trace_id: None,
            span_id: None,
            service: None,
            min_severity: None,
            text: None,
            tags: Vec::new(),
            start: UnixNanos(0),
            end: UnixNanos(u64::MAX),
            limit: 100,
        }
    }
}

impl LogQuery {
    /// Whether `r` passes every condition. `text` must already be lower-case (see
    /// [`LogQuery::normalised`]).
    pub fn matches(&self, r: &LogRecord) -> bool {
        if r.time < self.start || r.time > self.end {
            return false;
        }
        if self.trace_id.is_some() && r.trace_id != self.trace_id {
            return false;
        }
        if self.span_id.is_some() && r.span_id != self.span_id {
            return false;
        }
        if self
            .service
            .as_deref()
            .is_some_and(|s| s != r.service_name())
        {
            return false;
        }
        if self.min_severity.is_some_and(|m| r.severity_number < m) {
            return false;
        }
        if let Some(text) = &self.text {
            if !r.body_text().to_lowercase().contains(text.as_str()) {
                return false;
            }
        }
        self.tags.iter().all(|(k, v)| {
            r.attribute(k)
                .or_else(|| find(&r.resource.attributes, k))
                .is_some_and(|got| got.to_text() == *v)
        })
    }

    /// The query with its text lower-cased, as [`LogQuery::matches`] expects.
    pub fn normalised(mut self) -> Self {
        self.text = self.text.map(|t| t.to_lowercase());
        self
    }
}

/// Maps a severity name (`info`, `WARN`, `Error`, `fatal`, ...) to the OTLP severity number of
/// its range's first value; `None` for names it does not know.
pub fn severity_number_from_text(text: &str) -> Option<i32> {
    let t = text.trim().to_ascii_lowercase();
    Some(match t.as_str() {
        "trace" | "finest" | "verbose" => 1,
        "debug" | "fine" | "dbug" => 5,
        "info" | "information" | "informational" | "notice" => 9,
        "warn" | "warning" => 13,
        "error" | "err" | "severe" => 17,
        "fatal" | "critical" | "crit" | "panic" | "alert" | "emergency" | "emerg" => 21,
        _ => return None,
    })
}

/// The short severity name of an OTLP severity number (`""` for 0 and out-of-range values).
pub fn severity_text_of(number: i32) -> &'static str {
    match number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(trace: Option<TraceId>, body: &str, severity: i32) -> LogRecord {
        LogRecord {
            time: UnixNanos(100),
            observed_time: UnixNanos(100),
            trace_id: trace,
            span_id: None,
            flags: 0,
            severity_number: severity,
            severity_text: String::new(),
            body: AttributeValue::String(body.into()),
            attributes: vec![KeyValue::new("user", AttributeValue::Int(7))],
            dropped_attributes_count: 0,
            event_name: String::new(),
            resource: Arc::new(Resource::for_service("cart")),
            scope: Arc::default(),
        }
    }

    #[test]
    fn queries_match_every_condition() {
        let r = record(Some(TraceId([1; 16])), "Payment FAILED", 17);
        let q = |f: fn(&mut LogQuery)| {
            let mut q = LogQuery::default();
            f(&mut q);
            q.normalised().matches(&r)
        };
        assert!(q(|_| {}));
        assert!(q(|q| q.text = Some("failed".into())));
        assert!(!q(|q| q.text = Some("succeeded".into())));
        assert!(q(|q| q.min_severity = Some(13)));
        assert!(!q(|q| q.min_severity = Some(21)));
        assert!(q(|q| q.service = Some("cart".into())));
        assert!(!q(|q| q.service = Some("shop".into())));
        assert!(q(|q| q.tags = vec![("user".into(), "7".into())]));
        assert!(q(|q| q.tags = vec![("service.name".into(), "cart".into())]));
        assert!(!q(|q| q.tags = vec![("user".into(), "8".into())]));
        assert!(q(|q| q.trace_id = Some(TraceId([1; 16]))));
        assert!(!q(|q| q.trace_id = Some(TraceId([2; 16]))));
        assert!(!q(|q| q.start = UnixNanos(101)));
        assert!(!record(None, "x", 9).eq(&r));
    }

    #[test]
    fn severity_names_map_to_range_starts_and_back() {
        for (name, n) in [
            ("info", 9),
            ("WARNING", 13),
            ("Error", 17),
            ("debug", 5),
            ("fatal", 21),
        ] {
            assert_eq!(severity_number_from_text(name), Some(n), "{name}");
        }
        assert_eq!(severity_number_from_text("loud"), None);
        assert_eq!(severity_text_of(10), "INFO");
        assert_eq!(severity_text_of(0), "");
        assert_eq!(severity_text_of(99), "");
    }
}
