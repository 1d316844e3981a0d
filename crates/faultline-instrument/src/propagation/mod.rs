//! Context propagation: W3C trace context and baggage, B3 and Jaeger, chosen by `OTEL_PROPAGATORS`.
//!
//! Servers should accept whatever their callers speak, so [`Propagation`] reads every supported
//! format but writes only the configured ones.

mod b3;
mod carrier;
mod jaeger;

use std::sync::Arc;

use opentelemetry::propagation::{
    text_map_propagator::FieldIter, Extractor, Injector, TextMapCompositePropagator,
    TextMapPropagator,
};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

pub use b3::{B3Encoding, B3Propagator};
pub use carrier::{HeaderExtractor, HeaderInjector, MapExtractor, MapInjector};
pub use jaeger::JaegerPropagator;

use crate::Error;

/// One propagation format, as named in `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// W3C `traceparent`/`tracestate` (`tracecontext`).
    TraceContext,
    /// W3C `baggage` (`baggage`).
    Baggage,
    /// Zipkin B3 single header (`b3`).
    B3Single,
    /// Zipkin B3 multi header (`b3multi`).
    B3Multi,
    /// Jaeger `uber-trace-id` (`jaeger`).
    Jaeger,
}

impl Format {
    /// Parses one `OTEL_PROPAGATORS` entry.
    pub fn parse(name: &str) -> Option<Format> {
        match name.trim() {
            "tracecontext" => Some(Format::TraceContext),
            "baggage" => Some(Format::Baggage),
            "b3" => Some(Format::B3Single),
            "b3multi" => Some(Format::B3Multi),
            "jaeger" => Some(Format::Jaeger),
            _ => None,
        }
    }

    fn propagator(self) -> Box<dyn TextMapPropagator + Send + Sync> {
        match self {
            Format::TraceContext => Box::new(TraceContextPropagator::new()),
            Format::Baggage => Box::new(BaggagePropagator::new()),
            Format::B3Single => Box::new(B3Propagator::new(B3Encoding::SingleHeader)),
            Format::B3Multi => Box::new(B3Propagator::new(B3Encoding::MultipleHeader)),
            Format::Jaeger => Box::new(JaegerPropagator::new()),
        }
    }
}

/// Parses an `OTEL_PROPAGATORS` value; `none` yields an empty list.
///
/// ```
/// use faultline_instrument::propagation::{parse_formats, Format};
/// assert_eq!(parse_formats("tracecontext,b3").unwrap(), vec![Format::TraceContext, Format::B3Single]);
/// ```
pub fn parse_formats(value: &str) -> Result<Vec<Format>, Error> {
    if value.trim() == "none" {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|name| {
            Format::parse(name).ok_or_else(|| Error::InvalidConfig {
                name: "OTEL_PROPAGATORS",
                value: value.to_owned(),
                reason: "entries must be tracecontext, baggage, b3, b3multi, jaeger or none",
            })
        })
        .collect()
}

/// Writes the configured formats and reads all of them.
///
/// Extraction runs the formats nobody configured first and the configured ones last, so when a
/// request carries several (a proxy added B3 next to `traceparent`), the configured one wins.
///
/// ```
/// use faultline_instrument::propagation::{Format, Propagation};
/// let propagation = Propagation::new(&[Format::TraceContext, Format::Baggage]);
/// # let _ = propagation;
/// ```
#[derive(Debug, Clone)]
pub struct Propagation {
    inject: Arc<TextMapCompositePropagator>,
    extract: Arc<TextMapCompositePropagator>,
    fields: Arc<Vec<String>>,
}

const ALL_FORMATS: [Format; 4] = [
    Format::Jaeger,
    Format::B3Single,
    Format::TraceContext,
    Format::Baggage,
];

impl Propagation {
    /// Writes `formats` and reads every supported format.
    pub fn new(formats: &[Format]) -> Self {
        let inject: Vec<_> = formats.iter().map(|f| f.propagator()).collect();
        let mut extract_order: Vec<Format> = ALL_FORMATS
            .iter()
            .copied()
            .filter(|f| !reads_already(formats, *f))
            .collect();
        extract_order.extend_from_slice(formats);
        let extract: Vec<_> = extract_order.iter().map(|f| f.propagator()).collect();
        let inject = TextMapCompositePropagator::new(inject);
        let fields = inject.fields().map(str::to_owned).collect();
        Propagation {
            inject: Arc::new(inject),
            extract: Arc::new(TextMapCompositePropagator::new(extract)),
            fields: Arc::new(fields),
        }
    }

    /// Formats from `OTEL_PROPAGATORS`, defaulting to `tracecontext,baggage` as the spec says.
    pub fn from_env() -> Result<Self, Error> {
        let formats = match std::env::var("OTEL_PROPAGATORS") {
            Ok(value) if !value.trim().is_empty() => parse_formats(&value)?,
            _ => vec![Format::TraceContext, Format::Baggage],
        };
        Ok(Propagation::new(&formats))
    }

    /// Context carried by `headers`, on top of the current context.
    pub fn extract_headers(&self, headers: &http::HeaderMap) -> Context {
        self.extract_with_context(&Context::new(), &HeaderExtractor(headers))
    }

    /// Writes `cx` into `headers`.
    pub fn inject_headers(&self, cx: &Context, headers: &mut http::HeaderMap) {
        self.inject_context(cx, &mut HeaderInjector(headers));
    }
}

/// Whether the configured `formats` already extract what `format` would; both B3 propagators
/// read both B3 layouts.
fn reads_already(formats: &[Format], format: Format) -> bool {
    formats
        .iter()
        .any(|f| *f == format || matches!((*f, format), (Format::B3Multi, Format::B3Single)))
}

impl Default for Propagation {
    fn default() -> Self {
        Propagation::new(&[Format::TraceContext, Format::Baggage])
    }
}

impl TextMapPropagator for Propagation {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.inject.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.extract.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn rejects_unknown_formats() {
        assert!(parse_formats("tracecontext,xray").is_err());
        assert_eq!(parse_formats("none").expect("valid"), Vec::new());
    }

    #[test]
    fn configured_format_wins_when_several_arrive() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        );
        headers.insert(
            "uber-trace-id",
            http::HeaderValue::from_static("1111:2222:0:1"),
        );
        let cx = Propagation::default().extract_headers(&headers);
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let cx = Propagation::new(&[Format::Jaeger]).extract_headers(&headers);
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "00000000000000000000000000001111"
        );
    }

    #[test]
    fn reads_formats_it_does_not_write() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "b3",
            http::HeaderValue::from_static("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
        );
        let cx = Propagation::default().extract_headers(&headers);
        assert!(cx.span().span_context().is_valid());
        let mut out = http::HeaderMap::new();
        Propagation::default().inject_headers(&cx, &mut out);
        assert!(out.contains_key("traceparent"));
        assert!(!out.contains_key("b3"));
    }
}
