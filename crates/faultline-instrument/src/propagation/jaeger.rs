//! Jaeger `uber-trace-id` propagation.

use opentelemetry::propagation::{
    text_map_propagator::FieldIter, Extractor, Injector, TextMapPropagator,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;

const UBER_TRACE_ID: &str = "uber-trace-id";
const JAEGER_SAMPLED: u8 = 0x01;
const JAEGER_DEBUG: u8 = 0x02;

/// Reads and writes the Jaeger `uber-trace-id: {trace}:{span}:{parent}:{flags}` header.
///
/// ```
/// use faultline_instrument::propagation::JaegerPropagator;
/// let propagator = JaegerPropagator::new();
/// # let _ = propagator;
/// ```
#[derive(Debug)]
pub struct JaegerPropagator {
    fields: [String; 1],
}

impl JaegerPropagator {
    /// A propagator for the standard `uber-trace-id` header.
    pub fn new() -> Self {
        JaegerPropagator {
            fields: [UBER_TRACE_ID.to_owned()],
        }
    }

    fn parse(value: &str) -> Option<SpanContext> {
        // Some Jaeger clients URL-encode the colons.
        let decoded;
        let value = if value.contains("%3A") || value.contains("%3a") {
            decoded = value.replace("%3A", ":").replace("%3a", ":");
            decoded.as_str()
        } else {
            value
        };
        let mut parts = value.trim().split(':');
        let trace_hex = parts.next()?;
        let span_hex = parts.next()?;
        let _parent = parts.next()?;
        let flags_text = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let trace_id = parse_hex_u128(trace_hex, 32)?;
        let span_id = parse_hex_u64(span_hex, 16)?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        let flags = u8::from_str_radix(flags_text, 16).ok()?;
        let trace_flags = if flags & (JAEGER_SAMPLED | JAEGER_DEBUG) != 0 {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        Some(SpanContext::new(
            TraceId::from_bytes(trace_id.to_be_bytes()),
            SpanId::from_bytes(span_id.to_be_bytes()),
            trace_flags,
            true,
            TraceState::default(),
        ))
    }
}

impl Default for JaegerPropagator {
    fn default() -> Self {
        JaegerPropagator::new()
    }
}

impl TextMapPropagator for JaegerPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let flags = if sc.is_sampled() { JAEGER_SAMPLED } else { 0 };
        // The parent field is deprecated in Jaeger; "0" is what its own clients write.
        injector.set(
            UBER_TRACE_ID,
            format!("{}:{}:0:{:x}", sc.trace_id(), sc.span_id(), flags),
        );
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get(UBER_TRACE_ID).and_then(Self::parse) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// Jaeger drops leading zeros, so any length up to `max_digits` is valid.
fn parse_hex_u128(hex: &str, max_digits: usize) -> Option<u128> {
    if hex.is_empty() || hex.len() > max_digits || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(hex, 16).ok()
}

fn parse_hex_u64(hex: &str, max_digits: usize) -> Option<u64> {
    parse_hex_u128(hex, max_digits).and_then(|v| u64::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_ids_and_url_encoding() {
        let sc = JaegerPropagator::parse("a3ce929d0e0e4736%3A1%3A0%3A1").expect("valid header");
        assert_eq!(
            sc.trace_id().to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "0000000000000001");
        assert!(sc.is_sampled());
    }

    #[test]
    fn debug_flag_means_sampled_and_zero_flags_do_not() {
        assert!(JaegerPropagator::parse("1:2:0:2").is_some_and(|sc| sc.is_sampled()));
        assert!(JaegerPropagator::parse("1:2:0:0").is_some_and(|sc| !sc.is_sampled()));
    }

    #[test]
    fn rejects_hostile_values() {
        for bad in [
            "",
            ":::",
            "0:1:0:1",
            "1:0:0:1",
            "1:2:0",
            "1:2:0:1:5",
            "x:2:0:1",
            "1:2:0:zz",
            "11111111111111111111111111111111f:2:0:1",
            "1:11111111111111111:0:1",
        ] {
            assert!(JaegerPropagator::parse(bad).is_none(), "{bad:?}");
        }
    }
}
