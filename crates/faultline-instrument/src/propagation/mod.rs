//! Context propagation: W3C trace context and baggage, B3 and Jaeger, chosen by `OTEL_PROPAGATORS`.
//!
//! Servers should accept whatever their callers speak, so [`Propagation`] reads every supported
//! format but writes only the configured ones.

mod b3;
mod carrier;
mod jaeger;

use std::str::FromStr;
use std::sync::Arc;

use http::HeaderValue;
use opentelemetry::propagation::{
    text_map_propagator::FieldIter, Extractor, Injector, TextMapCompositePropagator,
    TextMapPropagator,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

pub use b3::{B3Encoding, B3Propagator};
pub use carrier::{HeaderExtractor, HeaderInjector, MapExtractor, MapInjector};
pub use jaeger::JaegerPropagator;

use crate::request_headers::RequestHeaders;
use crate::sampling::Parent;
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
#[derive(Clone)]
pub struct Propagation {
    inject: Arc<TextMapCompositePropagator>,
    extract: Arc<TextMapCompositePropagator>,
    /// The same propagators as `extract`, in the same order, for the HTTP fast path.
    extract_formats: Arc<Vec<(Format, Box<dyn TextMapPropagator + Send + Sync>)>>,
    fields: Arc<Vec<String>>,
}

impl std::fmt::Debug for Propagation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let formats: Vec<Format> = self.extract_formats.iter().map(|(f, _)| *f).collect();
        f.debug_struct("Propagation")
            .field("extract_order", &formats)
            .field("inject_fields", &self.fields)
            .finish()
    }
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
        let extract_formats = extract_order.iter().map(|f| (*f, f.propagator())).collect();
        let inject = TextMapCompositePropagator::new(inject);
        let fields = inject.fields().map(str::to_owned).collect();
        Propagation {
            inject: Arc::new(inject),
            extract: Arc::new(TextMapCompositePropagator::new(extract)),
            extract_formats: Arc::new(extract_formats),
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

    /// Context carried by `headers`, on top of an empty context.
    ///
    /// Same result as the composite propagator, but cheaper on the request path: a format
    /// runs only when its header is present, and a well-formed version-00 `traceparent` is
    /// parsed without allocating (anything else goes through the SDK's propagator).
    pub fn extract_headers(&self, headers: &http::HeaderMap) -> Context {
        self.extract_incoming(&RequestHeaders::scan(headers), headers)
            .into_context()
    }

    /// Like [`extract_headers`](Self::extract_headers), but a `traceparent` parsed by the fast
    /// path is kept beside the context instead of in it, so a request that is then dropped
    /// by the sampler pays for one context allocation (its own span) instead of two.
    pub(crate) fn extract_incoming(
        &self,
        present: &RequestHeaders<'_>,
        headers: &http::HeaderMap,
    ) -> Incoming {
        let mut incoming = Incoming {
            beside: None,
            cx: Context::new(),
        };
        if !present.any() {
            return incoming;
        }
        // The usual case, a W3C parent and nothing else: every format is read, and the other
        // formats' headers are absent, so the loop below would come to the same.
        if let (Some(traceparent), false) = (present.traceparent, present.others()) {
            if let Some(sc) = fast_traceparent(traceparent.as_bytes(), present.tracestate) {
                incoming.beside = Some(sc);
                return incoming;
            }
        }
        for (format, propagator) in self.extract_formats.iter() {
            if !present.has(*format) {
                continue;
            }
            match format {
                Format::TraceContext => {
                    if let Some(sc) = present
                        .traceparent
                        .and_then(|tp| fast_traceparent(tp.as_bytes(), present.tracestate))
                    {
                        incoming.beside = Some(sc);
                        continue;
                    }
                }
                // Baggage neither reads nor replaces the span, so a span kept beside can stay there.
                Format::Baggage => {}
                // A later format sees, and may replace, the span an earlier one found.
                _ => incoming.join(),
            }
            incoming.cx = propagator.extract_with_context(&incoming.cx, &HeaderExtractor(headers));
        }
        incoming
    }
    /// Writes `cx` into `headers`.
    pub fn inject_headers(&self, cx: &Context, headers: &mut http::HeaderMap) {
        self.inject_context(cx, &mut HeaderInjector(headers));
    }
}

/// The context extracted from a request, with its span context possibly kept beside it.
pub(crate) struct Incoming {
    /// The parent span context, when the fast path parsed it; it wins over any span in `cx`.
    beside: Option<SpanContext>,
    cx: Context,
}

impl Incoming {
    /// The parent as a sampler sees it.
    pub(crate) fn parent(&self) -> Parent<'_> {
        match &self.beside {
            Some(sc) => Parent::beside(sc, &self.cx),
            None => Parent::context(Some(&self.cx)),
        }
    }

    /// The extracted context, with the parent span in it.
    pub(crate) fn into_context(mut self) -> Context {
        self.join();
        self.cx
    }

    /// The extracted context with `span_context` as its span instead of the parent's.
    pub(crate) fn with_span_context(self, span_context: SpanContext) -> Context {
        self.cx.with_remote_span_context(span_context)
    }

    fn join(&mut self) {
        if let Some(sc) = self.beside.take() {
            self.cx = self.cx.with_remote_span_context(sc);
        }
    }
}

/// Parses the common `traceparent` shape, `00-{32 hex}-{16 hex}-{2 hex}` in lowercase, by hand.
/// `None` means "not that shape": the caller then asks the SDK's propagator, which decides
/// every other case exactly as before.
fn fast_traceparent(value: &[u8], tracestate: Option<&HeaderValue>) -> Option<SpanContext> {
    // The usual value is exactly the 55 bytes: it is not searched for whitespace to trim (a
    // 55-byte value with any fails the fixed positions below and goes to the SDK), and as an
    // array of known length its pieces below need no length checks.
    let value: &[u8; 55] = match value.try_into() {
        Ok(exact) => exact,
        Err(_) => value.trim_ascii().try_into().ok()?,
    };
    // Fixed-size pieces, so nothing below needs a bounds check.
    let (version, rest) = value.split_first_chunk::<3>()?;
    let (trace_id, rest) = rest.split_first_chunk::<32>()?;
    let (dash, rest) = rest.split_first_chunk::<1>()?;
    let (span_id, rest) = rest.split_first_chunk::<16>()?;
    let [b'-', f1, f2] = *rest else {
        return None;
    };
    if *version != *b"00-" || *dash != *b"-" {
        return None;
    }
    // Digits eight at a time (see `hex8`); the two flag digits through the table.
    let mut valid = SWAR_HIGH_BITS;
    let [t0, t1, t2, t3] = split8(trace_id);
    let trace_id = u128::from(hex8(t0, &mut valid)) << 96
        | u128::from(hex8(t1, &mut valid)) << 64
        | u128::from(hex8(t2, &mut valid)) << 32
        | u128::from(hex8(t3, &mut valid));
    let [s0, s1] = split8(span_id);
    let span_id = u64::from(hex8(s0, &mut valid)) << 32 | u64::from(hex8(s1, &mut valid));
    let (high, low) = (HEX_DIGITS[usize::from(f1)], HEX_DIGITS[usize::from(f2)]);
    if valid != SWAR_HIGH_BITS || (high | low) > 0x0F {
        return None;
    }
    let flags = high << 4 | low;
    // All-zero ids are invalid (the SDK then ignores the header).
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    let trace_state = match tracestate.map(|v| v.to_str()) {
        None => TraceState::default(),
        Some(Ok(text)) => TraceState::from_str(text).unwrap_or_default(),
        // The SDK's extractor ignores a value that is not visible ASCII.
        Some(Err(_)) => TraceState::default(),
    };
    Some(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        // Unknown flags are accepted but cleared, as the W3C specification requires.
        TraceFlags::new(flags) & TraceFlags::SAMPLED,
        true,
        trace_state,
    ))
}

/// The value of each lowercase hex digit, and 0xFF for every other byte (for the flags).
const HEX_DIGITS: [u8; 256] = {
    let mut table = [0xFF; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// The top bit of every byte of a `u64`.
const SWAR_HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// `b` in every byte of a `u64`.
const fn every_byte(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// `N` consecutive eight-byte pieces of `bytes`.
fn split8<const N: usize>(bytes: &[u8]) -> [&[u8; 8]; N] {
    std::array::from_fn(|i| {
        bytes[i * 8..i * 8 + 8]
            .try_into()
            .expect("callers pass exactly N * 8 bytes")
    })
}

/// The value of eight lowercase hex digits (W3C forbids uppercase), all in one `u64` at once:
/// about 240 instructions for a `traceparent`'s 48 id digits, where a table lookup per digit
/// took about 400 (callgrind). Every byte that is not a
/// lowercase hex digit clears its top bit in `valid`, which the caller starts at
/// [`SWAR_HIGH_BITS`] and checks once.
#[inline(always)]
fn hex8(digits: &[u8; 8], valid: &mut u64) -> u32 {
    // Big-endian, so the first digit lands in the top byte, where its value belongs.
    let x = u64::from_be_bytes(*digits);
    // Adding 0x80 - c sets a byte's top bit exactly when the byte is at least c. Bytes of
    // 0x80 and above are invalid anyway (`& !x`); their carry only reaches the next byte up,
    // whose verdict no longer matters once any byte has failed.
    let at_least = |c: u8| x.wrapping_add(every_byte(0x80 - c));
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    *valid &= (digit | letter) & !x;
    // '0'..'9' keep their low nibble; 'a'..'f' (bit 6 set) add 9 to theirs.
    let nibbles = (x & every_byte(0x0F)) + ((x >> 6) & every_byte(0x01)) * 9;
    // Pack the eight nibbles (one a byte) into four bytes, two bytes, then one `u32`.
    let v = (nibbles | nibbles >> 4) & 0x00FF_00FF_00FF_00FF;
    let v = (v | v >> 8) & 0x0000_FFFF_0000_FFFF;
    ((v | v >> 16) & 0xFFFF_FFFF) as u32
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

    /// Every byte value in every kind of position (first, inner and last digit of each id,
    /// and the flags) is read as the SDK reads it: the eight-digits-at-once decoding must not
    /// accept a byte the SDK rejects, nor misread one it accepts.
    #[test]
    fn fast_extraction_matches_the_sdk_for_every_byte() {
        let propagation = Propagation::default();
        let base = *b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for position in [3, 4, 10, 11, 18, 19, 26, 34, 36, 40, 43, 44, 51, 53, 54] {
            for byte in 0..=255u8 {
                let mut value = base;
                value[position] = byte;
                let Ok(header) = http::HeaderValue::from_bytes(&value) else {
                    continue;
                };
                let mut headers = http::HeaderMap::new();
                headers.insert("traceparent", header);
                let fast = propagation.extract_headers(&headers);
                let slow =
                    propagation.extract_with_context(&Context::new(), &HeaderExtractor(&headers));
                assert_eq!(
                    fast.span().span_context(),
                    slow.span().span_context(),
                    "byte {byte:#04x} at {position}"
                );
            }
        }
    }

    /// The hand-written `traceparent` path must decide exactly as the SDK's propagator does.
    #[test]
    fn fast_extraction_matches_the_composite_propagator() {
        let traceparents = [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e473:-00f067aa0ba902b7-01",
            "00-`bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b/-01",
            "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "",
        ];
        let tracestates = [
            None,
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
            Some("=bad"),
        ];
        for propagation in [
            Propagation::default(),
            Propagation::new(&[Format::Jaeger, Format::B3Multi]),
        ] {
            for traceparent in traceparents {
                for tracestate in tracestates {
                    let mut headers = http::HeaderMap::new();
                    headers.insert(
                        "traceparent",
                        http::HeaderValue::from_str(traceparent).expect("header"),
                    );
                    if let Some(state) = tracestate {
                        headers.insert("tracestate", http::HeaderValue::from_static(state));
                    }
                    headers.insert("baggage", http::HeaderValue::from_static("k=v"));
                    let fast = propagation.extract_headers(&headers);
                    let slow = propagation
                        .extract_with_context(&Context::new(), &HeaderExtractor(&headers));
                    assert_eq!(
                        fast.span().span_context(),
                        slow.span().span_context(),
                        "{traceparent:?} {tracestate:?}"
                    );
                    assert_eq!(
                        fast.span().span_context().trace_state().header(),
                        slow.span().span_context().trace_state().header()
                    );
                    use opentelemetry::baggage::BaggageExt;
                    assert_eq!(fast.baggage().len(), slow.baggage().len());
                }
            }
        }
    }

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
