//! A compact binary codec for the nested parts of a span that live in one binary cell each:
//! attribute lists, resources, scopes, events and links.
//!
//! Integers are LEB128 varints (signed ones zigzag-encoded), strings and byte strings are a
//! varint length then the bytes, doubles are 8 little-endian bytes. A value is a tag byte then
//! its payload: 0 empty, 1 string, 2 bool (one byte, 0 or 1), 3 int, 4 double, 5 bytes,
//! 6 array (count, values), 7 kvlist (an attribute list). An attribute list is a count followed
//! by `key value` pairs. Decoding never trusts a length: every read is bounds-checked and nesting
//! is capped at [`MAX_DEPTH`].

use std::sync::Arc;

use faultline_model::{
    AttributeValue, Event, InstrumentationScope, KeyValue, Link, Resource, SpanId, TraceId,
    UnixNanos,
};

use crate::BlockError;

/// Deepest nesting of arrays/kvlists accepted; ingest limits nesting far below this.
pub(crate) const MAX_DEPTH: usize = 128;

const TAG_EMPTY: u8 = 0;
const TAG_STRING: u8 = 1;
const TAG_BOOL: u8 = 2;
const TAG_INT: u8 = 3;
const TAG_DOUBLE: u8 = 4;
const TAG_BYTES: u8 = 5;
const TAG_ARRAY: u8 = 6;
const TAG_KVLIST: u8 = 7;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends one value; fails only when nesting exceeds [`MAX_DEPTH`], which the reader would
/// refuse.
pub(crate) fn put_value(
    out: &mut Vec<u8>,
    v: &AttributeValue,
    depth: usize,
) -> Result<(), BlockError> {
    if depth > MAX_DEPTH {
        return Err(BlockError::Settings(format!(
            "attribute nesting deeper than {MAX_DEPTH} levels cannot be stored"
        )));
    }
    match v {
        AttributeValue::Empty => out.push(TAG_EMPTY),
        AttributeValue::String(s) => {
            out.push(TAG_STRING);
            put_bytes(out, s.as_bytes());
        }
        AttributeValue::Bool(b) => {
            out.push(TAG_BOOL);
            out.push(u8::from(*b));
        }
        AttributeValue::Int(i) => {
            out.push(TAG_INT);
            put_varint(out, zigzag(*i));
        }
        AttributeValue::Double(d) => {
            out.push(TAG_DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        AttributeValue::Bytes(b) => {
            out.push(TAG_BYTES);
            put_bytes(out, b);
        }
        AttributeValue::Array(items) => {
            out.push(TAG_ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item, depth + 1)?;
            }
        }
        AttributeValue::KvList(kvs) => {
            out.push(TAG_KVLIST);
            put_attrs(out, kvs, depth + 1)?;
        }
    }
    Ok(())
}

/// Appends an attribute list.
pub(crate) fn put_attrs<'a, I>(out: &mut Vec<u8>, kvs: I, depth: usize) -> Result<(), BlockError>
where
    I: IntoIterator<Item = &'a KeyValue>,
    I::IntoIter: ExactSizeIterator,
{
    let kvs = kvs.into_iter();
    put_varint(out, kvs.len() as u64);
    for kv in kvs {
        put_bytes(out, kv.key.as_bytes());
        put_value(out, &kv.value, depth)?;
    }
    Ok(())
}

/// Encodes a resource: attributes, dropped count, schema URL.
pub(crate) fn encode_resource(r: &Resource) -> Result<Vec<u8>, BlockError> {
    let mut out = Vec::with_capacity(64);
    put_attrs(&mut out, r.attributes.iter(), 0)?;
    put_varint(&mut out, u64::from(r.dropped_attributes_count));
    put_bytes(&mut out, r.schema_url.as_bytes());
    Ok(out)
}

/// Encodes a scope: name, version, attributes, dropped count, schema URL.
pub(crate) fn encode_scope(s: &InstrumentationScope) -> Result<Vec<u8>, BlockError> {
    let mut out = Vec::with_capacity(32);
    put_bytes(&mut out, s.name.as_bytes());
    put_bytes(&mut out, s.version.as_bytes());
    put_attrs(&mut out, s.attributes.iter(), 0)?;
    put_varint(&mut out, u64::from(s.dropped_attributes_count));
    put_bytes(&mut out, s.schema_url.as_bytes());
    Ok(out)
}

/// Encodes events; times are stored relative to the span start (zigzag), which keeps them short.
pub(crate) fn encode_events(
    events: &[Event],
    span_start: UnixNanos,
) -> Result<Vec<u8>, BlockError> {
    let mut out = Vec::with_capacity(32 * events.len());
    put_varint(&mut out, events.len() as u64);
    for e in events {
        put_varint(&mut out, zigzag(e.time.0.wrapping_sub(span_start.0) as i64));
        put_bytes(&mut out, e.name.as_bytes());
        put_attrs(&mut out, e.attributes.iter(), 0)?;
        put_varint(&mut out, u64::from(e.dropped_attributes_count));
    }
    Ok(out)
}

/// Encodes links.
pub(crate) fn encode_links(links: &[Link]) -> Result<Vec<u8>, BlockError> {
    let mut out = Vec::with_capacity(48 * links.len());
    put_varint(&mut out, links.len() as u64);
    for l in links {
        out.extend_from_slice(&l.trace_id.0);
        out.extend_from_slice(&l.span_id.0);
        put_bytes(&mut out, l.trace_state.as_bytes());
        put_attrs(&mut out, l.attributes.iter(), 0)?;
        put_varint(&mut out, u64::from(l.dropped_attributes_count));
        put_varint(&mut out, u64::from(l.flags));
    }
    Ok(out)
}

/// A bounds-checked cursor over one encoded cell.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    fn err(&self, detail: impl Into<String>) -> BlockError {
        BlockError::corrupt(self.what, detail)
    }

    /// Fails unless every byte was consumed: trailing bytes mean a different format.
    pub(crate) fn finish(&self) -> Result<(), BlockError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.buf.len())))
        }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.buf
    }

    fn byte(&mut self) -> Result<u8, BlockError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or_else(|| self.err("truncated"))?;
        self.buf = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BlockError> {
        if n > self.buf.len() {
            return Err(self.err(format!(
                "length {n} exceeds the {} bytes left",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, BlockError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn u32(&mut self) -> Result<u32, BlockError> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.err(format!("{v} does not fit in 32 bits")))
    }

    /// A count of items that each take at least one byte, so a hostile count cannot make us
    /// reserve more memory than the cell's size.
    fn count(&mut self) -> Result<usize, BlockError> {
        let n = self.varint()?;
        if n > self.buf.len() as u64 {
            return Err(self.err(format!(
                "count {n} exceeds the {} bytes left",
                self.buf.len()
            )));
        }
        Ok(n as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], BlockError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| self.err("length overflows"))?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, BlockError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.err("string is not UTF-8"))
    }

    fn string(&mut self) -> Result<String, BlockError> {
        self.str().map(str::to_owned)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BlockError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn value(&mut self, depth: usize) -> Result<AttributeValue, BlockError> {
        if depth > MAX_DEPTH {
            return Err(self.err("attribute nesting too deep"));
        }
        Ok(match self.byte()? {
            TAG_EMPTY => AttributeValue::Empty,
            TAG_STRING => AttributeValue::String(self.str()?.into()),
            TAG_BOOL => match self.byte()? {
                0 => AttributeValue::Bool(false),
                1 => AttributeValue::Bool(true),
                b => return Err(self.err(format!("bool byte {b}"))),
            },
            TAG_INT => AttributeValue::Int(unzigzag(self.varint()?)),
            TAG_DOUBLE => AttributeValue::Double(f64::from_bits(u64::from_le_bytes(self.array()?))),
            TAG_BYTES => AttributeValue::Bytes(self.bytes()?.to_vec()),
            TAG_ARRAY => {
                let n = self.count()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                AttributeValue::Array(items)
            }
            TAG_KVLIST => AttributeValue::KvList(self.attrs(depth + 1)?),
            t => return Err(self.err(format!("unknown value tag {t}"))),
        })
    }

    pub(crate) fn attrs(&mut self, depth: usize) -> Result<Vec<KeyValue>, BlockError> {
        let n = self.count()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            // Borrowed, so that a common key is interned without a copy of its own.
            let key = self.str()?.into();
            let value = self.value(depth)?;
            out.push(KeyValue { key, value });
        }
        Ok(out)
    }
}

/// Decodes a whole attribute-list cell.
pub(crate) fn decode_attrs(buf: &[u8], what: &'static str) -> Result<Vec<KeyValue>, BlockError> {
    let mut r = Reader::new(buf, what);
    let out = r.attrs(0)?;
    r.finish()?;
    Ok(out)
}

/// Encodes a whole attribute-list cell.
pub(crate) fn encode_attrs<'a, I>(kvs: I) -> Result<Vec<u8>, BlockError>
where
    I: IntoIterator<Item = &'a KeyValue>,
    I::IntoIter: ExactSizeIterator,
{
    let mut out = Vec::new();
    put_attrs(&mut out, kvs, 0)?;
    Ok(out)
}

pub(crate) fn decode_resource(buf: &[u8]) -> Result<Arc<Resource>, BlockError> {
    let mut r = Reader::new(buf, "resource column");
    let attributes = r.attrs(0)?;
    let dropped_attributes_count = r.u32()?;
    let schema_url = r.string()?;
    r.finish()?;
    Ok(Arc::new(Resource {
        attributes,
        dropped_attributes_count,
        schema_url,
    }))
}

pub(crate) fn decode_scope(buf: &[u8]) -> Result<Arc<InstrumentationScope>, BlockError> {
    let mut r = Reader::new(buf, "scope column");
    let name = r.string()?;
    let version = r.string()?;
    let attributes = r.attrs(0)?;
    let dropped_attributes_count = r.u32()?;
    let schema_url = r.string()?;
    r.finish()?;
    Ok(Arc::new(InstrumentationScope {
        name,
        version,
        attributes,
        dropped_attributes_count,
        schema_url,
    }))
}

pub(crate) fn decode_events(buf: &[u8], span_start: UnixNanos) -> Result<Vec<Event>, BlockError> {
    let mut r = Reader::new(buf, "events column");
    let n = r.count()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let delta = unzigzag(r.varint()?);
        out.push(Event {
            time: UnixNanos(span_start.0.wrapping_add(delta as u64)),
            name: r.string()?,
            attributes: r.attrs(0)?,
            dropped_attributes_count: r.u32()?,
        });
    }
    r.finish()?;
    Ok(out)
}

pub(crate) fn decode_links(buf: &[u8]) -> Result<Vec<Link>, BlockError> {
    let mut r = Reader::new(buf, "links column");
    let n = r.count()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Link {
            trace_id: TraceId(r.array()?),
            span_id: SpanId(r.array()?),
            trace_state: r.string()?,
            attributes: r.attrs(0)?,
            dropped_attributes_count: r.u32()?,
            flags: r.u32()?,
        });
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Arbitrary attribute values of every kind, nested a few levels.
    pub(crate) fn arb_value() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            Just(AttributeValue::Empty),
            ".{0,12}".prop_map(|s: String| AttributeValue::String(s.into())),
            any::<bool>().prop_map(AttributeValue::Bool),
            any::<i64>().prop_map(AttributeValue::Int),
            // Bit patterns rather than f64s so NaN payloads and -0.0 are covered; compared by bits.
            prop_oneof![
                Just(1.5f64),
                Just(-0.0),
                any::<f64>().prop_filter("not NaN", |d| !d.is_nan())
            ]
            .prop_map(AttributeValue::Double),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(AttributeValue::Bytes),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::Array),
                proptest::collection::vec(("[a-z.]{0,6}", inner), 0..4).prop_map(|kvs| {
                    AttributeValue::KvList(
                        kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect(),
                    )
                }),
            ]
        })
    }

    pub(crate) fn arb_attrs() -> impl Strategy<Value = Vec<KeyValue>> {
        proptest::collection::vec(("[a-z.]{0,8}", arb_value()), 0..5)
            .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
    }

    proptest! {
        #[test]
        fn attrs_round_trip(attrs in arb_attrs()) {
            let buf = encode_attrs(attrs.iter()).unwrap();
            prop_assert_eq!(decode_attrs(&buf, "t").unwrap(), attrs);
        }

        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_attrs(&buf, "t");
            let _ = decode_resource(&buf);
            let _ = decode_scope(&buf);
            let _ = decode_events(&buf, UnixNanos(5));
            let _ = decode_links(&buf);
        }

        #[test]
        fn truncation_is_an_error(attrs in arb_attrs(), cut in any::<prop::sample::Index>()) {
            let buf = encode_attrs(attrs.iter()).unwrap();
            let cut = cut.index(buf.len());
            prop_assert!(decode_attrs(&buf[..cut], "t").is_err());
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut v = AttributeValue::Int(1);
        for _ in 0..(MAX_DEPTH + 2) {
            v = AttributeValue::Array(vec![v]);
        }
        assert!(encode_attrs([KeyValue::new("k", v)].iter()).is_err());
        // A hand-made cell of 100k nested array tags must fail cleanly, not blow the stack.
        let mut buf = vec![1, 1, b'k'];
        for _ in 0..100_000 {
            buf.extend_from_slice(&[TAG_ARRAY, 1]);
        }
        assert!(decode_attrs(&buf, "t").is_err());
    }
}
