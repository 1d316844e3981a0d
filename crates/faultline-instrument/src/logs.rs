//! Log correlation: a `tracing-subscriber` event formatter that writes the current
//! OpenTelemetry `trace_id` and `span_id` into every log line, as text or JSON, and a layer
//! ([`OtlpLogLayer`]) that exports events as OpenTelemetry log records over OTLP.
//!
//! The ids come from the OpenTelemetry context the layers of this crate attach while a request
//! is handled, so a log line can be pasted into a trace search (and back) without any
//! `tracing` span bookkeeping.

mod export;

use std::fmt;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub(crate) use export::{with_route, BaggageAttributes, RuntimeLogExporter};
pub use export::{LogRoute, OtlpLogLayer};

/// Formats events as one line each, with `trace_id` and `span_id` when a span is current.
///
/// ```
/// use faultline_instrument::logs::CorrelatedFormat;
/// let subscriber = tracing_subscriber::fmt()
///     .event_format(CorrelatedFormat::json())
///     .finish();
/// # let _ = subscriber;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CorrelatedFormat {
    json: bool,
    baggage: &'static [&'static str],
}

impl CorrelatedFormat {
    /// `2026-01-01T00:00:00.000000Z  INFO target: message k=v trace_id=… span_id=…`.
    pub fn text() -> Self {
        CorrelatedFormat {
            json: false,
            baggage: &[],
        }
    }

    /// `{"timestamp":…,"level":…,"target":…,"message":…,"trace_id":…,"span_id":…}`.
    pub fn json() -> Self {
        CorrelatedFormat {
            json: true,
            baggage: &[],
        }
    }

    /// Also writes these W3C baggage entries of the current context as fields, e.g. a
    /// `request_id` that the edge service put into the baggage so every service logs it.
    ///
    /// ```
    /// use faultline_instrument::logs::CorrelatedFormat;
    /// let format = CorrelatedFormat::json().with_baggage(&["request_id"]);
    /// # let _ = format;
    /// ```
    pub fn with_baggage(mut self, keys: &'static [&'static str]) -> Self {
        self.baggage = keys;
        self
    }

    fn baggage_fields(&self) -> Vec<(&'static str, String)> {
        if self.baggage.is_empty() {
            return Vec::new();
        }
        Context::map_current(|cx| {
            let baggage = cx.baggage();
            self.baggage
                .iter()
                .filter_map(|key| Some((*key, baggage.get(*key)?.as_str().to_owned())))
                .collect()
        })
    }
}

/// The hex ids of the current OpenTelemetry span, if there is a valid one.
pub fn current_ids() -> Option<(String, String)> {
    Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    })
}

impl<S, N> FormatEvent<S, N> for CorrelatedFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = current_ids();
        let baggage = self.baggage_fields();
        let meta = event.metadata();
        if self.json {
            let mut timestamp = String::new();
            SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
            let mut fields = JsonVisitor(Map::new());
            event.record(&mut fields);
            let mut line = Map::new();
            line.insert("timestamp".into(), Value::String(timestamp));
            line.insert("level".into(), Value::String(meta.level().to_string()));
            line.insert("target".into(), Value::String(meta.target().to_owned()));
            for (key, value) in fields.0 {
                line.entry(key).or_insert(value);
            }
            if let Some((trace_id, span_id)) = ids {
                line.insert("trace_id".into(), Value::String(trace_id));
                line.insert("span_id".into(), Value::String(span_id));
            }
            for (key, value) in baggage {
                line.entry(key.to_owned()).or_insert(Value::String(value));
            }
            let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
            writeln!(writer, "{text}")
        } else {
            SystemTime.format_time(&mut writer)?;
            write!(writer, " {:>5} {}: ", meta.level(), meta.target())?;
            ctx.field_format().format_fields(writer.by_ref(), event)?;
            for (key, value) in baggage {
                write!(writer, " {key}={value:?}")?;
            }
            if let Some((trace_id, span_id)) = ids {
                write!(writer, " trace_id={trace_id} span_id={span_id}")?;
            }
            writeln!(writer)
        }
    }
}

struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: CorrelatedFormat, f: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(format)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = out.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn json_lines_carry_the_current_ids() {
        let provider = SdkTracerProvider::builder().build();
        let tracer = provider.tracer("test");
        let mut expected = None;
        let text = capture(CorrelatedFormat::json(), || {
            tracer.in_span("work", |cx| {
                let sc = cx.span().span_context().clone();
                expected = Some((sc.trace_id().to_string(), sc.span_id().to_string()));
                tracing::info!(order = 42, "charged");
            });
            tracing::warn!("outside");
        });
        let mut lines = text.lines();
        let inside: Value = serde_json::from_str(lines.next().expect("line")).expect("json");
        let (trace_id, span_id) = expected.expect("ran");
        assert_eq!(inside["trace_id"], Value::String(trace_id));
        assert_eq!(inside["span_id"], Value::String(span_id));
        assert_eq!(inside["message"], Value::String("charged".into()));
        assert_eq!(inside["order"], Value::from(42));
        assert_eq!(inside["level"], Value::String("INFO".into()));
        let outside: Value = serde_json::from_str(lines.next().expect("line")).expect("json");
        assert!(outside.get("trace_id").is_none());
    }

    #[test]
    fn text_lines_carry_the_current_ids() {
        let provider = SdkTracerProvider::builder().build();
        let tracer = provider.tracer("test");
        let mut expected = String::new();
        let text = capture(CorrelatedFormat::text(), || {
            tracer.in_span("work", |cx| {
                let sc = cx.span().span_context().clone();
                expected = format!("trace_id={} span_id={}", sc.trace_id(), sc.span_id());
                tracing::info!("charged");
            });
        });
        assert!(text.contains("charged"), "{text}");
        assert!(text.trim_end().ends_with(&expected), "{text}");
    }
}
