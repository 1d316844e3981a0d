//! OTLP trace protobuf decoded straight into model spans.
//!
//! [`decode_traces`] reads the bytes of an `ExportTraceServiceRequest` (or a `TracesData`: both
//! keep their resource spans in field 1) and builds the [`Converted`] that
//! `ExportTraceServiceRequest::decode` followed by [`spans_from_otlp`](super::spans_from_otlp)
//! builds, without the intermediate prost structs: IDs go straight into the fixed-size model
//! IDs, each string is checked for UTF-8 once and copied once (only the part the limits keep),
//! and every vector is allocated at its final size, counted before it is filled.
//!
//! It accepts and refuses exactly what prost does, because the receivers answer malformed input
//! with an error and the WAL replays its records through this same function:
//!
//! * every field is decoded, including the ones the model drops (entity refs, string-table
//!   indices, values past a limit, spans that are rejected, oneof values that a later one
//!   replaces), so invalid UTF-8 or a bad length anywhere is an error as it is for prost;
//! * a non-repeated embedded message that appears more than once is merged (its repeated
//!   fields concatenated, its scalars and strings last-one-wins), and the `AnyValue` oneof keeps
//!   its last field, merging consecutive array or kv-list occurrences as prost does;
//! * unknown fields of every wire type are skipped, groups included; known fields with the
//!   wrong wire type are errors;
//! * nesting counts against prost's recursion limit of 100 the way prost counts it: entering
//!   an embedded message and skipping an unknown field both need one level left.
//!
//! Fields are read with prost's own wire helpers ([`decode_key`], [`decode_varint`]), after an
//! inlined fast path for the one- and two-byte varints that almost every key and length is
//! (see [`key`] and [`varint`]): whatever the fast path does not take, prost reads, so the
//! errors are prost's.
//!
//! A resource whose bytes this thread decoded recently is not decoded again: its spans share
//! the `Arc<Resource>` built then (see [`Decoder::cached_resource`]). An attribute key whose
//! bytes this request had before is that key again, without a UTF-8 check or a look-up in the
//! interning table ([`KeyCache`]); an attribute laid out as encoders write it (key, then a
//! scalar or string value) is read without the field loop ([`plain_key_value`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use prost::encoding::{decode_key, decode_varint, WireType};

use super::{char_prefix, span_ids, Converted, SpanLimits};
use crate::span::{
    AttributeValue, Event, InstrumentationScope, KeyValue, Link, Resource, Span, SpanKind, Status,
    StatusCode,
};
use crate::{Key, KeyCache, SpanId, TraceId, UnixNanos};

/// prost's nesting limit (`prost::RECURSION_LIMIT`, not exported).
const RECURSION_LIMIT: u32 = 100;

/// Why bytes are not a valid OTLP trace export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A varint, field key or wire type number that prost's wire helpers refused.
    #[error(transparent)]
    Wire(#[from] prost::DecodeError),
    /// A length-delimited or fixed-width field runs past the end of its message.
    #[error("{message}: field {tag} runs past the end of the message")]
    Truncated {
        /// The message being read.
        message: &'static str,
        /// The field's number.
        tag: u32,
    },
    /// A known field arrived with another wire type than the one it is declared with.
    #[error("{message}.{tag}: wire type {actual:?}, expected {expected:?}")]
    WireType {
        /// The message being read.
        message: &'static str,
        /// The field's number.
        tag: u32,
        /// What the bytes said.
        actual: WireType,
        /// What the schema says.
        expected: WireType,
    },
    /// A string field is not valid UTF-8.
    #[error("{message}.{tag}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// The message being read.
        message: &'static str,
        /// The field's number.
        tag: u32,
    },
    /// Messages or groups are nested deeper than prost's recursion limit.
    #[error("recursion limit reached: messages nested more than {RECURSION_LIMIT} deep")]
    RecursionLimit,
    /// An end-group tag without its start, or closing another group.
    #[error("{message}: unexpected end-group tag {tag}")]
    EndGroup {
        /// The message being read.
        message: &'static str,
        /// The end-group tag's field number.
        tag: u32,
    },
}

type Result<T> = std::result::Result<T, DecodeError>;

/// Decodes the protobuf `ExportTraceServiceRequest` (or `TracesData`) in `bytes` into model
/// spans, validating and limiting them exactly as `ExportTraceServiceRequest::decode` followed
/// by [`spans_from_otlp`](super::spans_from_otlp) does, and failing where that decode fails.
pub fn decode_traces(
    bytes: &[u8],
    limits: &SpanLimits,
) -> std::result::Result<Converted, DecodeError> {
    let mut out = Converted::default();
    // No more spans can be accepted than the bytes hold valid IDs for, whatever the count of
    // (possibly empty) span fields: a 16 MiB request of empty spans reserves no gigabytes.
    out.spans
        .reserve_exact(count_spans(bytes).min(bytes.len() / MIN_ACCEPTED_SPAN_BYTES));
    let mut d = Decoder {
        limits,
        modified: false,
        keys: KeyCache::new(),
    };
    let mut r = Reader::new(bytes, Msg::Request, RECURSION_LIMIT);
    while let Some((tag, f)) = r.next()? {
        match (tag, f) {
            (1, Field::Len(body)) => d.resource_spans(body, enter(r.budget)?, &mut out)?,
            (tag, f) => r.other(tag, f)?,
        }
    }
    out.modified = d.modified;
    Ok(out)
}

/// The fewest bytes an accepted span takes: a 16-byte trace ID and an 8-byte span ID with
/// their keys and lengths.
const MIN_ACCEPTED_SPAN_BYTES: usize = 2 + 16 + 2 + 8;

/// How many spans the request holds, to size the output once. Stops quietly at malformed
/// bytes: the decode proper reports them.
fn count_spans(bytes: &[u8]) -> usize {
    fn each_len<'a>(body: &'a [u8], msg: Msg, tag: u32, mut f: impl FnMut(&'a [u8])) {
        let mut r = Reader::new(body, msg, 0);
        while let Ok(Some((t, field))) = r.next() {
            match field {
                Field::Len(b) if t == tag => f(b),
                Field::Group => return,
                _ => {}
            }
        }
    }
    let mut n = 0;
    each_len(bytes, Msg::Request, 1, |rs| {
        each_len(rs, Msg::ResourceSpans, 2, |ss| {
            each_len(ss, Msg::ScopeSpans, 2, |_| n += 1);
        });
    });
    n
}

/// The messages of the OTLP trace schema this decoder reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Msg {
    Request,
    ResourceSpans,
    Resource,
    EntityRef,
    ScopeSpans,
    Scope,
    Span,
    Event,
    Link,
    Status,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
}

/// How a known field is encoded.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Varint,
    Fixed32,
    Fixed64,
    Bytes,
    Str,
    Message(Msg),
}

impl Msg {
    fn name(self) -> &'static str {
        match self {
            Self::Request => "ExportTraceServiceRequest",
            Self::ResourceSpans => "ResourceSpans",
            Self::Resource => "Resource",
            Self::EntityRef => "EntityRef",
            Self::ScopeSpans => "ScopeSpans",
            Self::Scope => "InstrumentationScope",
            Self::Span => "Span",
            Self::Event => "Span.Event",
            Self::Link => "Span.Link",
            Self::Status => "Status",
            Self::KeyValue => "KeyValue",
            Self::AnyValue => "AnyValue",
            Self::ArrayValue => "ArrayValue",
            Self::KvList => "KeyValueList",
        }
    }

    /// The schema: how field `tag` of this message is encoded, `None` when it is unknown.
    /// Mirrors the `opentelemetry-proto` types prost decodes (trace, common, resource v1).
    fn field(self, tag: u32) -> Option<Kind> {
        use Kind::{Bytes, Fixed32, Fixed64, Message, Str, Varint};
        use Msg as M;
        Some(match (self, tag) {
            (M::Request, 1) => Message(M::ResourceSpans),
            (M::ResourceSpans, 1) => Message(M::Resource),
            (M::ResourceSpans, 2) => Message(M::ScopeSpans),
            (M::ResourceSpans, 3) => Str,
            (M::Resource, 1) => Message(M::KeyValue),
            (M::Resource, 2) => Varint,
            (M::Resource, 3) => Message(M::EntityRef),
            (M::EntityRef, 1..=4) => Str,
            (M::ScopeSpans, 1) => Message(M::Scope),
            (M::ScopeSpans, 2) => Message(M::Span),
            (M::ScopeSpans, 3) => Str,
            (M::Scope, 1 | 2) => Str,
            (M::Scope, 3) => Message(M::KeyValue),
            (M::Scope, 4) => Varint,
            (M::Span, 1 | 2 | 4) => Bytes,
            (M::Span, 3 | 5) => Str,
            (M::Span, 6 | 10 | 12 | 14) => Varint,
            (M::Span, 7 | 8) => Fixed64,
            (M::Span, 9) => Message(M::KeyValue),
            (M::Span, 11) => Message(M::Event),
            (M::Span, 13) => Message(M::Link),
            (M::Span, 15) => Message(M::Status),
            (M::Span, 16) => Fixed32,
            (M::Event, 1) => Fixed64,
            (M::Event, 2) => Str,
            (M::Event, 3) => Message(M::KeyValue),
            (M::Event, 4) => Varint,
            (M::Link, 1 | 2) => Bytes,
            (M::Link, 3) => Str,
            (M::Link, 4) => Message(M::KeyValue),
            (M::Link, 5) => Varint,
            (M::Link, 6) => Fixed32,
            (M::Status, 2) => Str,
            (M::Status, 3) => Varint,
            (M::KeyValue, 1) => Str,
            (M::KeyValue, 2) => Message(M::AnyValue),
            (M::KeyValue, 3) => Varint,
            (M::AnyValue, 1) => Str,
            (M::AnyValue, 2 | 3 | 8) => Varint,
            (M::AnyValue, 4) => Fixed64,
            (M::AnyValue, 5) => Message(M::ArrayValue),
            (M::AnyValue, 6) => Message(M::KvList),
            (M::AnyValue, 7) => Bytes,
            (M::ArrayValue, 1) => Message(M::AnyValue),
            (M::KvList, 1) => Message(M::KeyValue),
            _ => return None,
        })
    }
}

/// One field's payload as read from the wire. A group's contents are left in the buffer for
/// [`Reader::other`] to skip.
#[derive(Clone, Copy, Debug)]
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
    Group,
}

impl Field<'_> {
    fn wire_type(&self) -> WireType {
        match self {
            Self::Varint(_) => WireType::Varint,
            Self::Fixed64(_) => WireType::SixtyFourBit,
            Self::Fixed32(_) => WireType::ThirtyTwoBit,
            Self::Len(_) => WireType::LengthDelimited,
            Self::Group => WireType::StartGroup,
        }
    }
}

/// The nesting budget inside an embedded message whose field was read with `budget` left,
/// or the recursion-limit error (prost's `DecodeContext::limit_reached` / `enter_recursion`).
#[inline]
fn enter(budget: u32) -> Result<u32> {
    budget.checked_sub(1).ok_or(DecodeError::RecursionLimit)
}

/// Reads the fields of one message body, which is exactly its bytes: a field running past the
/// end is an error, as it is for prost (which finds it when the message's length is exceeded).
struct Reader<'a> {
    buf: &'a [u8],
    msg: Msg,
    /// The recursion budget prost's `DecodeContext` carries into this message's fields.
    budget: u32,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], msg: Msg, budget: u32) -> Self {
        Self { buf, msg, budget }
    }

    /// The next field, `None` at the end of the message.
    #[inline(always)]
    fn next(&mut self) -> Result<Option<(u32, Field<'a>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let (tag, wire_type) = key(&mut self.buf)?;
        Ok(Some((tag, self.payload(tag, wire_type)?)))
    }

    #[inline(always)]
    fn payload(&mut self, tag: u32, wire_type: WireType) -> Result<Field<'a>> {
        let truncated = || DecodeError::Truncated {
            message: self.msg.name(),
            tag,
        };
        Ok(match wire_type {
            WireType::Varint => Field::Varint(varint(&mut self.buf)?),
            WireType::LengthDelimited => {
                let len = varint(&mut self.buf)?;
                let len = usize::try_from(len).map_err(|_| truncated())?;
                if len > self.buf.len() {
                    return Err(truncated());
                }
                let (body, rest) = self.buf.split_at(len);
                self.buf = rest;
                Field::Len(body)
            }
            WireType::SixtyFourBit => {
                let (v, rest) = self.buf.split_first_chunk::<8>().ok_or_else(truncated)?;
                self.buf = rest;
                Field::Fixed64(u64::from_le_bytes(*v))
            }
            WireType::ThirtyTwoBit => {
                let (v, rest) = self.buf.split_first_chunk::<4>().ok_or_else(truncated)?;
                self.buf = rest;
                Field::Fixed32(u32::from_le_bytes(*v))
            }
            WireType::StartGroup => Field::Group,
            WireType::EndGroup => {
                return Err(DecodeError::EndGroup {
                    message: self.msg.name(),
                    tag,
                })
            }
        })
    }

    /// A field the caller does not build from: a known one is checked against the schema
    /// (decoded in full, nested messages included), an unknown one skipped as prost skips it.
    fn other(&mut self, tag: u32, field: Field<'a>) -> Result<()> {
        match self.msg.field(tag) {
            Some(kind) => check_field(self.msg, tag, kind, field, self.budget),
            None => self.skip(tag, field, self.budget),
        }
    }

    /// prost's `skip_field`: needs one level of budget, and a group's fields one more each.
    fn skip(&mut self, tag: u32, field: Field<'a>, budget: u32) -> Result<()> {
        let inner = enter(budget)?;
        if let Field::Group = field {
            loop {
                let (t, wire_type) = decode_key(&mut self.buf)?;
                if wire_type == WireType::EndGroup {
                    if t != tag {
                        return Err(DecodeError::EndGroup {
                            message: self.msg.name(),
                            tag: t,
                        });
                    }
                    break;
                }
                let f = self.payload(t, wire_type)?;
                self.skip(t, f, inner)?;
            }
        }
        Ok(())
    }
}

/// prost's `decode_key`, inlined for a key of one byte (field numbers 1–15, the only ones the
/// trace schema uses besides `Span.flags`): prost reads every other key, and every invalid one.
#[inline(always)]
fn key(buf: &mut &[u8]) -> Result<(u32, WireType)> {
    if let Some((&b, rest)) = buf.split_first() {
        let wire_type = match b & 7 {
            0 => WireType::Varint,
            1 => WireType::SixtyFourBit,
            2 => WireType::LengthDelimited,
            3 => WireType::StartGroup,
            4 => WireType::EndGroup,
            5 => WireType::ThirtyTwoBit,
            _ => return Ok(decode_key(buf)?),
        };
        // Below 0x80 it is the whole varint; a zero field number is prost's error to give.
        if (8..0x80).contains(&b) {
            *buf = rest;
            return Ok((u32::from(b >> 3), wire_type));
        }
    }
    Ok(decode_key(buf)?)
}

/// prost's `decode_varint`, inlined for a varint of one or two bytes (lengths below 16 KiB,
/// small integers): prost reads every longer one, and every invalid one.
#[inline(always)]
fn varint(buf: &mut &[u8]) -> Result<u64> {
    match **buf {
        [b, ref rest @ ..] if b < 0x80 => {
            *buf = rest;
            Ok(u64::from(b))
        }
        [b0, b1, ref rest @ ..] if b1 < 0x80 => {
            *buf = rest;
            Ok(u64::from(b0 & 0x7f) | (u64::from(b1) << 7))
        }
        _ => Ok(decode_varint(buf)?),
    }
}

/// Checks a known field against its declared kind, decoding it in full (without building
/// anything): what prost does to a field the model then drops.
fn check_field(msg: Msg, tag: u32, kind: Kind, field: Field<'_>, budget: u32) -> Result<()> {
    match (kind, field) {
        (Kind::Varint, Field::Varint(_))
        | (Kind::Fixed32, Field::Fixed32(_))
        | (Kind::Fixed64, Field::Fixed64(_))
        | (Kind::Bytes, Field::Len(_)) => Ok(()),
        (Kind::Str, Field::Len(b)) => utf8(b, msg, tag).map(|_| ()),
        (Kind::Message(m), Field::Len(b)) => check_message(m, b, enter(budget)?),
        (kind, field) => Err(DecodeError::WireType {
            message: msg.name(),
            tag,
            actual: field.wire_type(),
            expected: match kind {
                Kind::Varint => WireType::Varint,
                Kind::Fixed32 => WireType::ThirtyTwoBit,
                Kind::Fixed64 => WireType::SixtyFourBit,
                Kind::Bytes | Kind::Str | Kind::Message(_) => WireType::LengthDelimited,
            },
        }),
    }
}

/// Decodes a whole message body without building anything.
fn check_message(msg: Msg, body: &[u8], budget: u32) -> Result<()> {
    let mut r = Reader::new(body, msg, budget);
    while let Some((tag, f)) = r.next()? {
        r.other(tag, f)?;
    }
    Ok(())
}

#[inline]
fn utf8(b: &[u8], msg: Msg, tag: u32) -> Result<&str> {
    std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8 {
        message: msg.name(),
        tag,
    })
}

/// The bodies of one non-repeated embedded message: usually one, more when the field appears
/// again, in which case prost merges them, which reads like one body made of all of them.
#[derive(Debug)]
enum Bodies<'a> {
    One(&'a [u8]),
    Many(Vec<&'a [u8]>),
}

impl<'a> Bodies<'a> {
    fn push(&mut self, body: &'a [u8]) {
        match self {
            Self::One(first) => *self = Self::Many(vec![first, body]),
            Self::Many(all) => all.push(body),
        }
    }

    fn push_to(this: &mut Option<Self>, body: &'a [u8]) {
        match this {
            Some(b) => b.push(body),
            None => *this = Some(Self::One(body)),
        }
    }

    fn as_slice(&self) -> &[&'a [u8]] {
        match self {
            Self::One(b) => std::slice::from_ref(b),
            Self::Many(all) => all,
        }
    }

    /// How many length-delimited `tag` fields the bodies hold (the length of a repeated field).
    fn count(&self, msg: Msg, tag: u32, budget: u32) -> Result<usize> {
        let mut n = 0;
        for body in self.as_slice() {
            n += count(body, msg, tag, budget)?;
        }
        Ok(n)
    }
}

/// How many length-delimited `tag` fields `body` holds.
fn count(body: &[u8], msg: Msg, tag: u32, budget: u32) -> Result<usize> {
    let mut n = 0;
    let mut r = Reader::new(body, msg, budget);
    while let Some((t, f)) = r.next()? {
        match f {
            Field::Len(_) if t == tag => n += 1,
            // Skipped to read on; checked again by the pass that builds.
            Field::Group => r.other(t, f)?,
            _ => {}
        }
    }
    Ok(n)
}

/// The `KeyValue` in `body` when it is laid out as encoders write it: the key (field 1), then
/// the value (field 2) holding one string, bool, int or double field or nothing, each field
/// once, with nothing else; its key's bytes and value. `None` for any other layout, which
/// [`Decoder::key_value`] reads field by field.
#[inline(always)]
fn plain_key_value(body: &[u8]) -> Option<(&[u8], Scalar<'_>)> {
    let [0x0a, ref rest @ ..] = *body else {
        return None;
    };
    let (key, rest) = len_prefixed(rest)?;
    let [0x12, ref rest @ ..] = *rest else {
        return None;
    };
    let (value, rest) = len_prefixed(rest)?;
    if !rest.is_empty() {
        return None;
    }
    let (scalar, rest) = match *value {
        [] => (Scalar::Unset, value),
        [0x0a, ref rest @ ..] => {
            let (s, rest) = len_prefixed(rest)?;
            (Scalar::Str(s), rest)
        }
        [0x10 | 0x18, ref rest @ ..] => {
            let mut rest = rest;
            let v = varint(&mut rest).ok()?;
            let scalar = if value[0] == 0x10 {
                Scalar::Bool(v != 0)
            } else {
                Scalar::Int(v as i64)
            };
            (scalar, rest)
        }
        [0x21, ref rest @ ..] => {
            let (v, rest) = rest.split_first_chunk::<8>()?;
            (Scalar::Double(f64::from_bits(u64::from_le_bytes(*v))), rest)
        }
        _ => return None,
    };
    rest.is_empty().then_some((key, scalar))
}

/// A length-delimited payload at the start of `buf` (its length varint read) and the bytes
/// after it; `None` when it is malformed.
#[inline(always)]
fn len_prefixed(mut buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::try_from(varint(&mut buf).ok()?).ok()?;
    (len <= buf.len()).then(|| buf.split_at(len))
}

/// The value of a [`plain_key_value`], its string not yet checked.
enum Scalar<'a> {
    Unset,
    Str(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
}

/// A `KeyValue`'s key as read so far: a key from [`Decoder::keys`], or text to build one from.
enum KeyText<'a> {
    Known(Key),
    Text(&'a str),
}

/// The `AnyValue` oneof as read so far: the payload of its last field, built only once the
/// value is complete (a later field replaces it, or merges into it when both are arrays or
/// both kv-lists).
enum Pending<'a> {
    Unset,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Strindex,
    /// `ArrayValue` bodies and the budget inside them.
    Array(Bodies<'a>, u32),
    /// `KeyValueList` bodies and the budget inside them.
    KvList(Bodies<'a>, u32),
}

/// A repeated message field whose first `max` occurrences are kept.
struct Kept<T> {
    items: Vec<T>,
    seen: usize,
    max: usize,
}

impl<T> Kept<T> {
    /// Room for the `total` occurrences counted beforehand, up to `max`.
    fn new(total: usize, max: usize) -> Self {
        Self {
            items: Vec::with_capacity(total.min(max)),
            seen: 0,
            max,
        }
    }

    /// Whether the next occurrence is kept; counts it.
    fn keep_next(&mut self) -> bool {
        self.seen += 1;
        self.seen <= self.max
    }

    /// How many occurrences were past `max`.
    fn excess(&self) -> usize {
        self.seen.saturating_sub(self.max)
    }
}

/// Protobuf bytes of the resources [`RESOURCES`] keeps per thread; it starts over when full.
/// Counted in bytes rather than resources so that a collector fanning in many pods still hits:
/// 512 KiB hold about 400 resources of 25 typical attributes (1–2 KiB each), and the
/// resources built from them take about three times their bytes, so a thread's cache stays
/// near 2 MiB. It sits outside the store's memory budget; the receivers decode on at most
/// `max_concurrent_requests` threads at once (64 by default).
const MAX_CACHED_RESOURCE_BYTES_PER_THREAD: usize = 512 * 1024;
/// Larger resources (with their schema URL) are decoded every time.
const MAX_CACHED_RESOURCE_BYTES: usize = 4 * 1024;

/// A resource as decoded from `body` (valid: only successes are kept).
struct CachedResource {
    body: Box<[u8]>,
    schema_url: Box<str>,
    limits: SpanLimits,
    resource: Arc<Resource>,
    /// Whether the limits changed it.
    modified: bool,
}

thread_local! {
    /// Resources this thread decoded recently, by a hash of their bytes and schema URL. Spans
    /// of different requests with the same resource then share one `Arc<Resource>`, as the
    /// spans of one `ResourceSpans` always did.
    static RESOURCES: RefCell<ResourceCache> = RefCell::new(ResourceCache::default());
}

/// A thread's resources by hash of their bytes, and the bytes they hold.
#[derive(Default)]
struct ResourceCache {
    by_hash: HashMap<u64, CachedResource>,
    bytes: usize,
}

/// Builds model values as [`Limiter`](super::Limiter) does.
struct Decoder<'l> {
    limits: &'l SpanLimits,
    modified: bool,
    /// The attribute keys built for this request, by their text (as the limits kept it).
    keys: KeyCache,
}

impl Decoder<'_> {
    fn resource_spans(&mut self, body: &[u8], budget: u32, out: &mut Converted) -> Result<()> {
        // The resource and schema URL apply to every scope, wherever they are in the message.
        let mut resource = None;
        let mut schema_url = "";
        let mut r = Reader::new(body, Msg::ResourceSpans, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (1, Field::Len(b)) => {
                    enter(budget)?;
                    Bodies::push_to(&mut resource, b);
                }
                (2, Field::Len(_)) => {}
                (3, Field::Len(b)) => schema_url = utf8(b, Msg::ResourceSpans, 3)?,
                (tag, f) => r.other(tag, f)?,
            }
        }
        let budget_inside = budget.saturating_sub(1);
        let resource = match &resource {
            Some(Bodies::One(body)) => self.cached_resource(body, budget_inside, schema_url)?,
            merged => self.resource(merged.as_ref(), budget_inside, schema_url)?,
        };
        let mut r = Reader::new(body, Msg::ResourceSpans, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (2, Field::Len(b)) => self.scope_spans(b, enter(budget)?, &resource, out)?,
                (tag, Field::Group) => r.other(tag, Field::Group)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// [`Decoder::resource`] of one `Resource` body, from this thread's [`RESOURCES`] when the
    /// same bytes (and schema URL, and limits) were decoded before: a producer sends the same
    /// resource with every request, and decoding its 20–30 attributes again costs as much as
    /// decoding a few spans, and as many allocations (and frees once the head is flushed).
    fn cached_resource(
        &mut self,
        body: &[u8],
        budget: u32,
        schema_url: &str,
    ) -> Result<Arc<Resource>> {
        // The schema URL is kept with the bytes, so it counts against the same bounds.
        let size = body.len() + schema_url.len();
        if size > MAX_CACHED_RESOURCE_BYTES {
            return self.resource(Some(&Bodies::One(body)), budget, schema_url);
        }
        let hash = {
            let mut h = foldhash::fast::FixedState::with_seed(0).build_hasher();
            h.write(body);
            h.write(schema_url.as_bytes());
            h.finish()
        };
        let hit = RESOURCES.with_borrow(|cache| {
            cache
                .by_hash
                .get(&hash)
                .filter(|e| {
                    *e.body == *body && *e.schema_url == *schema_url && e.limits == *self.limits
                })
                .map(|e| (Arc::clone(&e.resource), e.modified))
        });
        if let Some((resource, modified)) = hit {
            self.modified |= modified;
            return Ok(resource);
        }
        // Decoded with `modified` starting afresh, to know whether the limits changed this
        // resource (and say so on every later hit).
        let before = std::mem::replace(&mut self.modified, false);
        let resource = self.resource(Some(&Bodies::One(body)), budget, schema_url);
        let modified = self.modified;
        self.modified |= before;
        let resource = resource?;
        RESOURCES.with_borrow_mut(|cache| {
            if cache.bytes + size > MAX_CACHED_RESOURCE_BYTES_PER_THREAD {
                cache.by_hash.clear();
                cache.bytes = 0;
            }
            let entry = CachedResource {
                body: body.into(),
                schema_url: schema_url.into(),
                limits: *self.limits,
                resource: Arc::clone(&resource),
                modified,
            };
            cache.bytes += size;
            // A hash collision replaces the other resource; its bytes stay counted until the
            // next clear, which only makes that clear come sooner.
            cache.by_hash.insert(hash, entry);
        });
        Ok(resource)
    }

    /// [`Limiter::resource`](super::Limiter::resource) of the merged `Resource` bodies.
    fn resource(
        &mut self,
        bodies: Option<&Bodies<'_>>,
        budget: u32,
        schema_url: &str,
    ) -> Result<Arc<Resource>> {
        let mut dropped = 0;
        let mut attrs = Kept::new(0, 0);
        if let Some(bodies) = bodies {
            attrs = Kept::new(
                bodies.count(Msg::Resource, 1, budget)?,
                self.limits.max_attributes_per_span,
            );
            for body in bodies.as_slice() {
                let mut r = Reader::new(body, Msg::Resource, budget);
                while let Some((tag, f)) = r.next()? {
                    match (tag, f) {
                        (1, Field::Len(b)) => self.attribute(&mut attrs, b, budget)?,
                        (2, Field::Varint(v)) => dropped = v as u32,
                        (tag, f) => r.other(tag, f)?,
                    }
                }
            }
        }
        Ok(Arc::new(Resource {
            attributes: self.attributes(attrs, &mut dropped),
            dropped_attributes_count: dropped,
            schema_url: schema_url.to_owned(),
        }))
    }

    fn scope_spans(
        &mut self,
        body: &[u8],
        budget: u32,
        resource: &Arc<Resource>,
        out: &mut Converted,
    ) -> Result<()> {
        let mut scope = None;
        let mut schema_url = "";
        let mut r = Reader::new(body, Msg::ScopeSpans, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (1, Field::Len(b)) => {
                    enter(budget)?;
                    Bodies::push_to(&mut scope, b);
                }
                (2, Field::Len(_)) => {}
                (3, Field::Len(b)) => schema_url = utf8(b, Msg::ScopeSpans, 3)?,
                (tag, f) => r.other(tag, f)?,
            }
        }
        let scope = self.scope(scope.as_ref(), budget.saturating_sub(1), schema_url)?;
        let mut r = Reader::new(body, Msg::ScopeSpans, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (2, Field::Len(b)) => self.span(b, enter(budget)?, resource, &scope, out)?,
                (tag, Field::Group) => r.other(tag, Field::Group)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// [`Limiter::scope`](super::Limiter::scope) of the merged `InstrumentationScope` bodies.
    fn scope(
        &mut self,
        bodies: Option<&Bodies<'_>>,
        budget: u32,
        schema_url: &str,
    ) -> Result<Arc<InstrumentationScope>> {
        let (mut name, mut version, mut dropped) = ("", "", 0);
        let mut attrs = Kept::new(0, 0);
        if let Some(bodies) = bodies {
            attrs = Kept::new(
                bodies.count(Msg::Scope, 3, budget)?,
                self.limits.max_attributes_per_span,
            );
            for body in bodies.as_slice() {
                let mut r = Reader::new(body, Msg::Scope, budget);
                while let Some((tag, f)) = r.next()? {
                    match (tag, f) {
                        (1, Field::Len(b)) => name = utf8(b, Msg::Scope, 1)?,
                        (2, Field::Len(b)) => version = utf8(b, Msg::Scope, 2)?,
                        (3, Field::Len(b)) => self.attribute(&mut attrs, b, budget)?,
                        (4, Field::Varint(v)) => dropped = v as u32,
                        (tag, f) => r.other(tag, f)?,
                    }
                }
            }
        }
        Ok(Arc::new(InstrumentationScope {
            name: name.to_owned(),
            version: version.to_owned(),
            attributes: self.attributes(attrs, &mut dropped),
            dropped_attributes_count: dropped,
            schema_url: schema_url.to_owned(),
        }))
    }

    fn span(
        &mut self,
        body: &[u8],
        budget: u32,
        resource: &Arc<Resource>,
        scope: &Arc<InstrumentationScope>,
        out: &mut Converted,
    ) -> Result<()> {
        // First pass: the IDs decide whether the span is kept, and the repeated fields are
        // counted so that their vectors are allocated once.
        let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
        let (mut n_attrs, mut n_events, mut n_links) = (0, 0, 0);
        let mut r = Reader::new(body, Msg::Span, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (1, Field::Len(b)) => trace_id = b,
                (2, Field::Len(b)) => span_id = b,
                (4, Field::Len(b)) => parent = b,
                (9, Field::Len(_)) => n_attrs += 1,
                (11, Field::Len(_)) => n_events += 1,
                (13, Field::Len(_)) => n_links += 1,
                (tag, Field::Group) => r.other(tag, Field::Group)?,
                _ => {}
            }
        }
        let (trace_id, span_id, parent_span_id) = match span_ids(trace_id, span_id, parent) {
            Ok(ids) => ids,
            Err(why) => {
                // Rejected: decoded in full all the same, since prost refuses the whole
                // request when anything in it is malformed.
                check_message(Msg::Span, body, budget)?;
                out.reject(why);
                return Ok(());
            }
        };

        let limits = self.limits;
        let mut attrs = Kept::new(n_attrs, limits.max_attributes_per_span);
        let mut events = Kept::new(n_events, limits.max_events_per_span);
        let mut links = Kept::new(n_links, limits.max_links_per_span);
        let mut invalid_links = 0u32;
        let (mut trace_state, mut name) = ("", "");
        let (mut kind, mut flags, mut start, mut end) = (0i32, 0u32, 0u64, 0u64);
        let (mut dropped_attrs, mut dropped_events, mut dropped_links) = (0u32, 0u32, 0u32);
        let mut status: Option<(i32, &str)> = None;
        let mut r = Reader::new(body, Msg::Span, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (1 | 2 | 4, Field::Len(_)) => {}
                (3, Field::Len(b)) => trace_state = utf8(b, Msg::Span, 3)?,
                (5, Field::Len(b)) => name = utf8(b, Msg::Span, 5)?,
                (6, Field::Varint(v)) => kind = v as i32,
                (7, Field::Fixed64(v)) => start = v,
                (8, Field::Fixed64(v)) => end = v,
                (9, Field::Len(b)) => self.attribute(&mut attrs, b, budget)?,
                (10, Field::Varint(v)) => dropped_attrs = v as u32,
                (11, Field::Len(b)) => {
                    let inner = enter(budget)?;
                    if events.keep_next() {
                        let event = self.event(b, inner)?;
                        events.items.push(event);
                    } else {
                        check_message(Msg::Event, b, inner)?;
                    }
                }
                (12, Field::Varint(v)) => dropped_events = v as u32,
                (13, Field::Len(b)) => {
                    let inner = enter(budget)?;
                    if links.keep_next() {
                        match self.link(b, inner)? {
                            Some(link) => links.items.push(link),
                            None => invalid_links += 1,
                        }
                    } else {
                        check_message(Msg::Link, b, inner)?;
                    }
                }
                (14, Field::Varint(v)) => dropped_links = v as u32,
                (15, Field::Len(b)) => self.status(b, enter(budget)?, &mut status)?,
                (16, Field::Fixed32(v)) => flags = v,
                (tag, f) => r.other(tag, f)?,
            }
        }

        let start = UnixNanos(start);
        let mut end = UnixNanos(end);
        if end < start {
            end = start;
            self.modified = true;
        }
        let attributes = self.attributes(attrs, &mut dropped_attrs);
        if events.excess() > 0 {
            dropped_events = dropped_events.saturating_add(events.excess() as u32);
            self.modified = true;
        }
        if links.excess() > 0 {
            dropped_links = dropped_links.saturating_add(links.excess() as u32);
            self.modified = true;
        }
        if invalid_links > 0 {
            // A link to an invalid context carries no information; dropped, the span kept.
            dropped_links = dropped_links.saturating_add(invalid_links);
            self.modified = true;
        }
        let status = match status {
            None => Status::default(),
            Some((code, message)) => Status {
                code: StatusCode::from_i32(code),
                message: self.string(message),
            },
        };
        out.spans.push(Span {
            trace_id,
            span_id,
            parent_span_id,
            trace_state: trace_state.to_owned(),
            flags,
            name: self.kept(name).into(),
            kind: SpanKind::from_i32(kind),
            start,
            end,
            attributes,
            dropped_attributes_count: dropped_attrs,
            events: events.items,
            dropped_events_count: dropped_events,
            links: links.items,
            dropped_links_count: dropped_links,
            status,
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
        });
        Ok(())
    }

    /// Merges one `Status` body into `status` (code and message last-one-wins).
    fn status<'a>(
        &mut self,
        body: &'a [u8],
        budget: u32,
        status: &mut Option<(i32, &'a str)>,
    ) -> Result<()> {
        let (code, message) = status.get_or_insert((0, ""));
        let mut r = Reader::new(body, Msg::Status, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (2, Field::Len(b)) => *message = utf8(b, Msg::Status, 2)?,
                (3, Field::Varint(v)) => *code = v as i32,
                (tag, f) => r.other(tag, f)?,
            }
        }
        Ok(())
    }

    fn event(&mut self, body: &[u8], budget: u32) -> Result<Event> {
        let mut attrs = Kept::new(
            count(body, Msg::Event, 3, budget)?,
            self.limits.max_attributes_per_span,
        );
        let (mut time, mut name, mut dropped) = (0, "", 0);
        let mut r = Reader::new(body, Msg::Event, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (1, Field::Fixed64(v)) => time = v,
                (2, Field::Len(b)) => name = utf8(b, Msg::Event, 2)?,
                (3, Field::Len(b)) => self.attribute(&mut attrs, b, budget)?,
                (4, Field::Varint(v)) => dropped = v as u32,
                (tag, f) => r.other(tag, f)?,
            }
        }
        Ok(Event {
            time: UnixNanos(time),
            name: self.string(name),
            attributes: self.attributes(attrs, &mut dropped),
            dropped_attributes_count: dropped,
        })
    }

    /// The link, or `None` (decoded all the same) when its trace or span ID is invalid.
    fn link(&mut self, body: &[u8], budget: u32) -> Result<Option<Link>> {
        let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
        let mut n_attrs = 0;
        let mut r = Reader::new(body, Msg::Link, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (1, Field::Len(b)) => trace_id = b,
                (2, Field::Len(b)) => span_id = b,
                (4, Field::Len(_)) => n_attrs += 1,
                (tag, Field::Group) => r.other(tag, Field::Group)?,
                _ => {}
            }
        }
        let (Ok(trace_id), Ok(span_id)) =
            (TraceId::from_bytes(trace_id), SpanId::from_bytes(span_id))
        else {
            check_message(Msg::Link, body, budget)?;
            return Ok(None);
        };
        let mut attrs = Kept::new(n_attrs, self.limits.max_attributes_per_span);
        let (mut trace_state, mut dropped, mut flags) = ("", 0, 0);
        let mut r = Reader::new(body, Msg::Link, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (1 | 2, Field::Len(_)) => {}
                (3, Field::Len(b)) => trace_state = utf8(b, Msg::Link, 3)?,
                (4, Field::Len(b)) => self.attribute(&mut attrs, b, budget)?,
                (5, Field::Varint(v)) => dropped = v as u32,
                (6, Field::Fixed32(v)) => flags = v,
                (tag, f) => r.other(tag, f)?,
            }
        }
        Ok(Some(Link {
            trace_id,
            span_id,
            trace_state: trace_state.to_owned(),
            attributes: self.attributes(attrs, &mut dropped),
            dropped_attributes_count: dropped,
            flags,
        }))
    }

    /// One occurrence of an attributes field (a `KeyValue` body read with `budget` left in
    /// the message holding it): built when within the limit, decoded only past it.
    fn attribute(&mut self, attrs: &mut Kept<KeyValue>, body: &[u8], budget: u32) -> Result<()> {
        let inner = enter(budget)?;
        if attrs.keep_next() {
            let kv = self.key_value(body, inner, 0)?;
            attrs.items.push(kv);
        } else {
            check_message(Msg::KeyValue, body, inner)?;
        }
        Ok(())
    }

    /// The kept attributes; those past the limit are added to `dropped`.
    fn attributes(&mut self, attrs: Kept<KeyValue>, dropped: &mut u32) -> Vec<KeyValue> {
        if attrs.excess() > 0 {
            *dropped = dropped.saturating_add(attrs.excess() as u32);
            self.modified = true;
        }
        attrs.items
    }

    /// A `KeyValue` whose value sits at nesting `depth` of the limits.
    ///
    /// Inlined into its two callers, which push the result: returned from a call, the
    /// `Result<KeyValue>` went through memory in pieces and was read back whole, stalling.
    #[inline(always)]
    fn key_value(&mut self, body: &[u8], budget: u32, depth: usize) -> Result<KeyValue> {
        // The layout nearly every attribute has, read without the general machinery; what it
        // does is what the loop below does with those bytes, in the same order.
        if let Some((key, scalar)) = plain_key_value(body) {
            let key = self.key_text(key)?;
            enter(budget)?;
            let value = match scalar {
                Scalar::Unset => AttributeValue::Empty,
                Scalar::Str(s) => {
                    AttributeValue::String(self.kept(utf8(s, Msg::AnyValue, 1)?).into())
                }
                Scalar::Bool(b) => AttributeValue::Bool(b),
                Scalar::Int(i) => AttributeValue::Int(i),
                Scalar::Double(d) => AttributeValue::Double(d),
            };
            let key = self.key(key);
            return Ok(KeyValue { key, value });
        }
        let mut key = KeyText::Text("");
        let mut value = Pending::Unset;
        let mut r = Reader::new(body, Msg::KeyValue, budget);
        while let Some((tag, f)) = r.next()? {
            match (tag, f) {
                (1, Field::Len(b)) => key = self.key_text(b)?,
                // A repeated `value` merges into the one before: its fields read on.
                (2, Field::Len(b)) => self.any_value(b, enter(budget)?, &mut value)?,
                (tag, f) => r.other(tag, f)?,
            }
        }
        let value = self.value(value, depth)?;
        Ok(KeyValue {
            key: self.key(key),
            value,
        })
    }

    /// The key field's bytes `b` checked: bytes that are the text of a key built before are
    /// that key (valid UTF-8, and the limits keep them whole), others must be UTF-8.
    #[inline(always)]
    fn key_text<'a>(&self, b: &'a [u8]) -> Result<KeyText<'a>> {
        Ok(match self.keys.get(b) {
            Some(known) => KeyText::Known(known),
            None => KeyText::Text(utf8(b, Msg::KeyValue, 1)?),
        })
    }

    /// The model form of an attribute key: every `KeyValue` this decoder builds gets its key
    /// here or from [`Decoder::keys`], limited as [`Limiter::attrs`](super::Limiter::attrs)
    /// limits keys. A key seen before is interned straight from the request's bytes: no
    /// allocation. The key is remembered in [`Decoder::keys`] by its (kept) text, which the
    /// limits keep whole: those bytes give that key again.
    fn key(&mut self, key: KeyText<'_>) -> Key {
        match key {
            KeyText::Known(key) => key,
            KeyText::Text(text) => {
                let key = Key::from(self.kept(text));
                self.keys.remember(&key);
                key
            }
        }
    }

    /// Reads the fields of one `AnyValue` body into `value` (the oneof so far).
    #[inline(always)]
    fn any_value<'a>(
        &mut self,
        body: &'a [u8],
        budget: u32,
        value: &mut Pending<'a>,
    ) -> Result<()> {
        let mut r = Reader::new(body, Msg::AnyValue, budget);
        while let Some((tag, f)) = r.next()? {
            let next = match (tag, f) {
                (1, Field::Len(b)) => Pending::Str(utf8(b, Msg::AnyValue, 1)?),
                (2, Field::Varint(v)) => Pending::Bool(v != 0),
                (3, Field::Varint(v)) => Pending::Int(v as i64),
                (4, Field::Fixed64(v)) => Pending::Double(f64::from_bits(v)),
                (5, Field::Len(b)) => {
                    let inner = enter(budget)?;
                    if let Pending::Array(bodies, _) = value {
                        bodies.push(b);
                        continue;
                    }
                    Pending::Array(Bodies::One(b), inner)
                }
                (6, Field::Len(b)) => {
                    let inner = enter(budget)?;
                    if let Pending::KvList(bodies, _) = value {
                        bodies.push(b);
                        continue;
                    }
                    Pending::KvList(Bodies::One(b), inner)
                }
                (7, Field::Len(b)) => Pending::Bytes(b),
                (8, Field::Varint(_)) => Pending::Strindex,
                (tag, f) => {
                    r.other(tag, f)?;
                    continue;
                }
            };
            // A replaced array or kv-list was decoded by prost all the same.
            match std::mem::replace(value, next) {
                Pending::Array(bodies, inner) => {
                    for b in bodies.as_slice() {
                        check_message(Msg::ArrayValue, b, inner)?;
                    }
                }
                Pending::KvList(bodies, inner) => {
                    for b in bodies.as_slice() {
                        check_message(Msg::KvList, b, inner)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// [`Limiter::value`](super::Limiter::value) of a complete oneof at nesting `depth`.
    ///
    /// Inlined for the scalars and strings that almost every attribute has, so that the
    /// `Pending` and the value stay in registers instead of being passed through memory;
    /// the rest is [`Decoder::nested_value`].
    #[inline(always)]
    fn value(&mut self, value: Pending<'_>, depth: usize) -> Result<AttributeValue> {
        Ok(match value {
            Pending::Unset => AttributeValue::Empty,
            Pending::Str(s) => AttributeValue::String(self.kept(s).into()),
            Pending::Bool(b) => AttributeValue::Bool(b),
            Pending::Int(i) => AttributeValue::Int(i),
            Pending::Double(d) => AttributeValue::Double(d),
            other => return self.nested_value(other, depth),
        })
    }

    /// [`Decoder::value`] of bytes, arrays, kv-lists and string-table indices.
    #[inline(never)]
    fn nested_value(&mut self, value: Pending<'_>, depth: usize) -> Result<AttributeValue> {
        let limits = self.limits;
        Ok(match value {
            Pending::Unset => AttributeValue::Empty,
            Pending::Str(s) => AttributeValue::String(self.kept(s).into()),
            // Only the profiles signal carries a string table; in traces an index means nothing.
            Pending::Strindex => {
                self.modified = true;
                AttributeValue::Empty
            }
            Pending::Bool(b) => AttributeValue::Bool(b),
            Pending::Int(i) => AttributeValue::Int(i),
            Pending::Double(d) => AttributeValue::Double(d),
            Pending::Bytes(b) => {
                if b.len() > limits.max_attribute_value_len {
                    self.modified = true;
                    AttributeValue::Bytes(b[..limits.max_attribute_value_len].to_vec())
                } else {
                    AttributeValue::Bytes(b.to_vec())
                }
            }
            Pending::Array(bodies, budget) => {
                if depth >= limits.max_value_depth {
                    for b in bodies.as_slice() {
                        check_message(Msg::ArrayValue, b, budget)?;
                    }
                    self.modified = true;
                    return Ok(AttributeValue::Empty);
                }
                let mut items = Kept::new(
                    bodies.count(Msg::ArrayValue, 1, budget)?,
                    limits.max_attributes_per_span,
                );
                for body in bodies.as_slice() {
                    let mut r = Reader::new(body, Msg::ArrayValue, budget);
                    while let Some((tag, f)) = r.next()? {
                        match (tag, f) {
                            (1, Field::Len(b)) => {
                                let inner = enter(budget)?;
                                if items.keep_next() {
                                    let mut v = Pending::Unset;
                                    self.any_value(b, inner, &mut v)?;
                                    let v = self.value(v, depth + 1)?;
                                    items.items.push(v);
                                } else {
                                    check_message(Msg::AnyValue, b, inner)?;
                                }
                            }
                            (tag, f) => r.other(tag, f)?,
                        }
                    }
                }
                if items.excess() > 0 {
                    self.modified = true;
                }
                AttributeValue::Array(items.items)
            }
            Pending::KvList(bodies, budget) => {
                if depth >= limits.max_value_depth {
                    for b in bodies.as_slice() {
                        check_message(Msg::KvList, b, budget)?;
                    }
                    self.modified = true;
                    return Ok(AttributeValue::Empty);
                }
                let mut items = Kept::new(
                    bodies.count(Msg::KvList, 1, budget)?,
                    limits.max_attributes_per_span,
                );
                for body in bodies.as_slice() {
                    let mut r = Reader::new(body, Msg::KvList, budget);
                    while let Some((tag, f)) = r.next()? {
                        match (tag, f) {
                            (1, Field::Len(b)) => {
                                let inner = enter(budget)?;
                                if items.keep_next() {
                                    let kv = self.key_value(b, inner, depth + 1)?;
                                    items.items.push(kv);
                                } else {
                                    check_message(Msg::KeyValue, b, inner)?;
                                }
                            }
                            (tag, f) => r.other(tag, f)?,
                        }
                    }
                }
                if items.excess() > 0 {
                    self.modified = true;
                }
                AttributeValue::KvList(items.items)
            }
        })
    }

    /// [`Limiter::string`](super::Limiter::string): the kept prefix, copied once.
    fn string(&mut self, s: &str) -> String {
        self.kept(s).to_owned()
    }

    /// The part of `s` the value-length limit keeps; a cut marks the request modified.
    fn kept<'s>(&mut self, s: &'s str) -> &'s str {
        let kept = char_prefix(s, self.limits.max_attribute_value_len);
        if kept.len() < s.len() {
            self.modified = true;
        }
        kept
    }
}

#[cfg(test)]
mod tests;
