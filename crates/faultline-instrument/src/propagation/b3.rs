//! Zipkin B3 propagation, single-header (`b3`) and multi-header (`X-B3-*`).

use opentelemetry::propagation::{
    text_map_propagator::FieldIter, Extractor, Injector, TextMapPropagator,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;

const B3_SINGLE: &str = "b3";
const B3_TRACE_ID: &str = "x-b3-traceid";
const B3_SPAN_ID: &str = "x-b3-spanid";
const B3_PARENT_SPAN_ID: &str = "x-b3-parentspanid";
const B3_SAMPLED: &str = "x-b3-sampled";
const B3_FLAGS: &str = "x-b3-flags";

/// Which B3 header layout [`B3Propagator`] writes; both layouts are always read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B3Encoding {
    /// The single `b3: {trace}-{span}-{sampled}` header.
    SingleHeader,
    /// The `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled` headers.
    MultipleHeader,
    /// Both layouts, for peers of unknown age.
    SingleAndMultiHeader,
}

/// Reads and writes Zipkin B3 trace context.
///
/// ```
/// use faultline_instrument::propagation::{B3Encoding, B3Propagator};
/// let propagator = B3Propagator::new(B3Encoding::SingleHeader);
/// # let _ = propagator;
/// ```
#[derive(Debug)]
pub struct B3Propagator {
    encoding: B3Encoding,
    fields: Vec<String>,
}

impl B3Propagator {
    /// A propagator writing the given layout.
    pub fn new(encoding: B3Encoding) -> Self {
        let fields = [B3_SINGLE, B3_TRACE_ID, B3_SPAN_ID, B3_SAMPLED, B3_FLAGS]
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        B3Propagator { encoding, fields }
    }

    fn extract_single(value: &str) -> Option<SpanContext> {
        let mut parts = value.trim().split('-');
        let trace_id = parse_trace_id(parts.next()?)?;
        let span_id = parse_span_id(parts.next()?)?;
        let flags = match parts.next() {
            Some(sampled) => parse_sampled(sampled)?,
            None => TraceFlags::default(),
        };
        if let Some(parent) = parts.next() {
            parse_span_id(parent)?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(SpanContext::new(
            trace_id,
            span_id,
            flags,
            true,
            TraceState::default(),
        ))
    }

    fn extract_multi(extractor: &dyn Extractor) -> Option<SpanContext> {
        let trace_id = parse_trace_id(extractor.get(B3_TRACE_ID)?.trim())?;
        let span_id = parse_span_id(extractor.get(B3_SPAN_ID)?.trim())?;
        // Debug implies sampled, whatever X-B3-Sampled says.
        let debug = extractor.get(B3_FLAGS).map(str::trim) == Some("1");
        let flags = match extractor.get(B3_SAMPLED) {
            _ if debug => TraceFlags::SAMPLED,
            Some(sampled) => parse_sampled(sampled.trim())?,
            None => TraceFlags::default(),
        };
        if let Some(parent) = extractor.get(B3_PARENT_SPAN_ID) {
            parse_span_id(parent.trim())?;
        }
        Some(SpanContext::new(
            trace_id,
            span_id,
            flags,
            true,
            TraceState::default(),
        ))
    }
}

impl Default for B3Propagator {
    fn default() -> Self {
        B3Propagator::new(B3Encoding::MultipleHeader)
    }
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let sampled = if sc.is_sampled() { "1" } else { "0" };
        if matches!(
            self.encoding,
            B3Encoding::SingleHeader | B3Encoding::SingleAndMultiHeader
        ) {
            injector.set(
                B3_SINGLE,
                format!("{}-{}-{}", sc.trace_id(), sc.span_id(), sampled),
            );
        }
        if matches!(
            self.encoding,
            B3Encoding::MultipleHeader | B3Encoding::SingleAndMultiHeader
        ) {
            injector.set(B3_TRACE_ID, sc.trace_id().to_string());
            injector.set(B3_SPAN_ID, sc.span_id().to_string());
            injector.set(B3_SAMPLED, sampled.to_owned());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let single = extractor.get(B3_SINGLE).and_then(Self::extract_single);
        match single.or_else(|| Self::extract_multi(extractor)) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// Parses a 16- or 32-digit hex trace id; 64-bit ids are widened with leading zeros as B3 specifies.
fn parse_trace_id(hex: &str) -> Option<TraceId> {
    if (hex.len() != 16 && hex.len() != 32) || !is_lower_hex(hex) {
        return None;
    }
    let id = u128::from_str_radix(hex, 16).ok()?;
    (id != 0).then(|| TraceId::from_bytes(id.to_be_bytes()))
}

fn parse_span_id(hex: &str) -> Option<SpanId> {
    if hex.len() != 16 || !is_lower_hex(hex) {
        return None;
    }
    let id = u64::from_str_radix(hex, 16).ok()?;
    (id != 0).then(|| SpanId::from_bytes(id.to_be_bytes()))
}

fn parse_sampled(value: &str) -> Option<TraceFlags> {
    match value {
        "1" | "d" | "true" => Some(TraceFlags::SAMPLED),
        "0" | "false" => Some(TraceFlags::default()),
        _ => None,
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn extract(headers: &[(&str, &str)]) -> SpanContext {
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let cx = B3Propagator::default().extract(&crate::propagation::MapExtractor(&map));
        cx.span().span_context().clone()
    }

    #[test]
    fn single_header_round_trips() {
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex");
        let span_id = SpanId::from_hex("00f067aa0ba902b7").expect("hex");
        let sc = SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = Context::new().with_remote_span_context(sc);
        let mut map = HashMap::new();
        B3Propagator::new(B3Encoding::SingleHeader)
            .inject_context(&cx, &mut crate::propagation::MapInjector(&mut map));
        assert_eq!(
            map["b3"],
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"
        );
        let back = extract(&[("b3", map["b3"].as_str())]);
        assert_eq!(back.trace_id(), trace_id);
        assert_eq!(back.span_id(), span_id);
        assert!(back.is_sampled());
    }

    #[test]
    fn multi_header_widens_64_bit_trace_ids_and_honours_debug() {
        let sc = extract(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", "00f067aa0ba902b7"),
            ("x-b3-sampled", "0"),
            ("x-b3-flags", "1"),
        ]);
        assert_eq!(
            sc.trace_id().to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled());
    }

    #[test]
    fn hostile_values_yield_no_context() {
        for bad in [
            "",
            "-",
            "zz-yy",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-7",
            "00000000000000000000000000000000-00f067aa0ba902b7-1",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-00f067aa0ba902b7-extra",
            "4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-1",
            "\u{e9}\u{e9}",
        ] {
            assert!(!extract(&[("b3", bad)]).is_valid(), "{bad:?}");
        }
    }
}
