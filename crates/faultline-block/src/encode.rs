//! Spans → Parquet bytes.

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, DictionaryArray, FixedSizeBinaryBuilder,
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, UInt32Builder, UInt64Builder,
    UInt8Builder,
};
use arrow::datatypes::{Int32Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use faultline_model::{AttributeValue, KeyValue, Span, SpanId, SpanKind};
use parquet::arrow::ArrowWriter;

use crate::codec;
use crate::fasthash::{BuildFast, FastMap};
use crate::prefetch::{self, Prefetcher};
use crate::schema::{
    arrow_schema, AttrColumn, AttrColumns, BlockSettings, Derived, ValueType, DEDICATED,
    MAX_ATTR_COLUMNS,
};
use crate::BlockError;

/// `attr_layout` byte meaning "the next entry of the generic `attrs` list"; byte `i + 1` means
/// attribute column `i`.
pub(crate) const LAYOUT_GENERIC: u8 = 0;

/// A key gets a dynamic column when at least this share of a block's spans (1 in N) carries it
/// with one type; rarer keys cost more in null bitmaps and footer than they save.
const DYNAMIC_MIN_SHARE: usize = 200;

/// A string map keyed by content with a per-process random seed: its keys are attribute keys
/// and values that clients choose, so an unkeyed hash would let them force collisions.
type ContentMap<K, V> = foldhash::HashMap<K, V>;

/// Dictionary index of the `n`th distinct value.
fn dict_key(n: usize) -> Result<i32, BlockError> {
    i32::try_from(n).map_err(|_| BlockError::Settings("over 2^31 distinct values".into()))
}

/// A `Dictionary(Int32, Utf8)` column built by hand from strings that outlive the builder.
///
/// Arrow's dictionary builder hashes every appended value with a fresh `ahash` and copies it
/// into its own table; this one keys its table by the borrowed strings. Values get indexes
/// in first-seen order, as with Arrow's builder, so the files are the same.
struct StrDict<'a> {
    index: ContentMap<&'a str, i32>,
    /// The index of `""`, looked up without hashing: most spans have no status message and
    /// no trace state.
    empty: Option<i32>,
    keys: Int32Builder,
    values: StringBuilder,
}

impl<'a> StrDict<'a> {
    fn new() -> Self {
        Self {
            index: ContentMap::default(),
            empty: None,
            keys: Int32Builder::new(),
            values: StringBuilder::new(),
        }
    }

    /// The dictionary index of `v`, adding it to the dictionary if new.
    fn intern(&mut self, v: &'a str) -> Result<i32, BlockError> {
        if v.is_empty() {
            if let Some(key) = self.empty {
                return Ok(key);
            }
        }
        let next = self.index.len();
        match self.index.entry(v) {
            Entry::Occupied(e) => Ok(*e.get()),
            Entry::Vacant(e) => {
                let key = dict_key(next)?;
                self.values.append_value(v);
                if v.is_empty() {
                    self.empty = Some(key);
                }
                Ok(*e.insert(key))
            }
        }
    }

    fn append(&mut self, v: &'a str) -> Result<(), BlockError> {
        let key = self.intern(v)?;
        self.keys.append_value(key);
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, BlockError> {
        self.index.clear();
        self.empty = None;
        let dict = DictionaryArray::<Int32Type>::try_new(
            self.keys.finish(),
            Arc::new(self.values.finish()),
        )?;
        Ok(Arc::new(dict))
    }
}

/// A `Dictionary(Int32, Binary)` column of encoded cells (resources, scopes, layouts), built
/// by hand like [`StrDict`]. Callers that can recognise a repeated value without its bytes
/// (the same shared `Resource`) keep its index and call [`BinDict::append_key`].
struct BinDict {
    index: ContentMap<Box<[u8]>, i32>,
    keys: Int32Builder,
    values: BinaryBuilder,
}

impl BinDict {
    fn new() -> Self {
        Self {
            index: ContentMap::default(),
            keys: Int32Builder::new(),
            values: BinaryBuilder::new(),
        }
    }

    fn intern(&mut self, v: &[u8]) -> Result<i32, BlockError> {
        if let Some(key) = self.index.get(v) {
            return Ok(*key);
        }
        let key = dict_key(self.index.len())?;
        self.values.append_value(v);
        self.index.insert(v.into(), key);
        Ok(key)
    }

    fn append_key(&mut self, key: i32) {
        self.keys.append_value(key);
    }

    fn finish(&mut self) -> Result<ArrayRef, BlockError> {
        self.index.clear();
        let dict = DictionaryArray::<Int32Type>::try_new(
            self.keys.finish(),
            Arc::new(self.values.finish()),
        )?;
        Ok(Arc::new(dict))
    }
}

enum AttrBuilder {
    /// Plain strings: the Parquet writer builds the column's dictionary itself (it interns
    /// every value whatever the Arrow type), so an Arrow dictionary here only hashed each value
    /// twice, and most of these columns' values are distinct (paths, addresses).
    Str(StringBuilder),
    Int(Int64Builder),
    Double(Float64Builder),
    Bool(BooleanBuilder),
    Uuid(FixedSizeBinaryBuilder),
    /// With a buffer for the decoded bytes, reused from value to value.
    Hex(BinaryBuilder, Vec<u8>),
    Ipv4(FixedSizeBinaryBuilder),
    /// Strings stored relative to another column's value in the same row
    /// ([`crate::prefix`]), with a buffer for the cell.
    Prefixed(BinaryBuilder, Vec<u8>),
}

impl AttrBuilder {
    fn new(c: &AttrColumn) -> Self {
        if c.prefix_of.is_some() {
            return Self::Prefixed(BinaryBuilder::new(), Vec::new());
        }
        match c.ty {
            ValueType::Str => Self::Str(StringBuilder::new()),
            ValueType::Int => Self::Int(Int64Builder::new()),
            ValueType::Double => Self::Double(Float64Builder::new()),
            ValueType::Bool => Self::Bool(BooleanBuilder::new()),
            ValueType::Uuid => Self::Uuid(FixedSizeBinaryBuilder::new(16)),
            ValueType::Hex => Self::Hex(BinaryBuilder::new(), Vec::new()),
            ValueType::Ipv4 => Self::Ipv4(FixedSizeBinaryBuilder::new(4)),
        }
    }

    /// Appends `v`; false (and nothing appended) when the column cannot hold it. `reference`
    /// is the row's value of the column a shared-prefix column is relative to ("" if none).
    fn append(&mut self, v: &AttributeValue, reference: &str) -> Result<bool, BlockError> {
        match (self, v) {
            (Self::Str(b), AttributeValue::String(s)) => b.append_value(s),
            (Self::Int(b), AttributeValue::Int(i)) => b.append_value(*i),
            (Self::Double(b), AttributeValue::Double(d)) => b.append_value(*d),
            (Self::Bool(b), AttributeValue::Bool(x)) => b.append_value(*x),
            (Self::Uuid(b), AttributeValue::String(s)) => match crate::schema::uuid_bytes(s) {
                Some(bytes) => b.append_value(bytes)?,
                None => return Ok(false),
            },
            (Self::Hex(b, buf), AttributeValue::String(s)) if crate::schema::is_hex(s) => {
                buf.clear();
                crate::schema::hex_decode(s, buf);
                b.append_value(&buf);
            }
            (Self::Ipv4(b), AttributeValue::String(s)) => match crate::schema::ipv4_bytes(s) {
                Some(bytes) => b.append_value(bytes)?,
                None => return Ok(false),
            },
            (Self::Prefixed(b, buf), AttributeValue::String(s)) => {
                buf.clear();
                crate::prefix::encode(reference, s, buf);
                b.append_value(&buf);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn append_nulls(&mut self, n: usize) {
        match self {
            Self::Str(b) => b.append_nulls(n),
            Self::Int(b) => b.append_nulls(n),
            Self::Double(b) => b.append_nulls(n),
            Self::Bool(b) => b.append_nulls(n),
            Self::Uuid(b) => b.append_nulls(n),
            Self::Hex(b, _) => b.append_nulls(n),
            Self::Ipv4(b) => b.append_nulls(n),
            Self::Prefixed(b, _) => b.append_nulls(n),
        }
    }

    fn finish(&mut self) -> Result<ArrayRef, BlockError> {
        Ok(match self {
            Self::Str(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
            Self::Double(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Uuid(b) => Arc::new(b.finish()),
            Self::Hex(b, _) => Arc::new(b.finish()),
            Self::Ipv4(b) => Arc::new(b.finish()),
            Self::Prefixed(b, _) => Arc::new(b.finish()),
        })
    }
}

/// Which attribute column (index into `AttrColumns::columns`) takes each attribute of a span:
/// the first column for its key whose type holds the value and that the span has not used yet,
/// columns of packed string types (`uuid`, `hex`, `ipv4`) before `str` ones.
///
/// Keys are looked up by a signature of their length and three of their bytes instead of a
/// hash of the whole key. A block looks each of its distinct keys up once (see
/// [`RouteTable`]); the table holds only the column keys, so a client's key can at worst
/// share a signature with a few of them, each then compared in full.
struct AttrRouter {
    by_signature: FastMap<u64, Vec<RouteEntry>>,
    columns: usize,
}

/// A column key and its columns (index, type) in column order.
type RouteEntry = (String, Vec<(usize, ValueType)>);

/// Length, first, middle and last byte of a key.
fn key_signature(key: &str) -> u64 {
    let b = key.as_bytes();
    let at = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
    let len = b.len();
    (len as u64) | at(0) << 32 | at(len / 2) << 40 | at(len.wrapping_sub(1)) << 48
}

impl AttrRouter {
    fn new(cols: &AttrColumns) -> Self {
        let mut by_signature: FastMap<u64, Vec<RouteEntry>> = FastMap::default();
        for (i, c) in cols.columns.iter().enumerate() {
            let entries = by_signature.entry(key_signature(&c.key)).or_default();
            match entries.iter_mut().find(|(k, _)| *k == c.key) {
                Some((_, slots)) => slots.push((i, c.ty)),
                None => entries.push((c.key.clone(), vec![(i, c.ty)])),
            }
        }
        for (_, slots) in by_signature.values_mut().flatten() {
            // Stable: column order otherwise.
            slots.sort_by_key(|(_, ty)| !ty.packs_strings());
        }
        Self {
            by_signature,
            columns: cols.columns.len(),
        }
    }

    /// The columns of `key`, in column order.
    fn columns_of(&self, key: &str) -> Option<&[(usize, ValueType)]> {
        self.by_signature
            .get(&key_signature(key))?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, slots)| slots.as_slice())
    }

    /// The columns of each key of `keys`, by key number (empty: no column).
    fn table(&self, keys: &[&str]) -> RouteTable {
        RouteTable {
            by_key: keys
                .iter()
                .map(|k| self.columns_of(k).map(<[_]>::to_vec).unwrap_or_default())
                .collect(),
            columns: self.columns,
        }
    }
}

/// An [`AttrRouter`]'s answer for every key of one block, by the key numbers of
/// [`BlockKeys`]: each attribute is then routed by its number, without looking its key up
/// again (routing looked every key up twice per block write, 12% of the server's CPU).
struct RouteTable {
    by_key: Vec<Vec<(usize, ValueType)>>,
    columns: usize,
}

impl RouteTable {
    /// Adds the columns of the keys numbered from `self.by_key.len()` on.
    fn extend(&mut self, router: &AttrRouter, keys: &[&str]) {
        let from = self.by_key.len().min(keys.len());
        self.by_key.extend(
            keys.iter()
                .skip(from)
                .map(|k| router.columns_of(k).map(<[_]>::to_vec).unwrap_or_default()),
        );
    }

    /// Column per attribute (`None` = generic), in attribute order, into `slots` (reused
    /// between spans, as is `used`, so routing allocates nothing): the first column of the
    /// attribute's key (numbered in `ids`) whose type holds the value and that the span has
    /// not used yet.
    fn route(
        &self,
        attrs: &[KeyValue],
        ids: &[u32],
        types: &[Option<ValueType>],
        used: &mut Vec<bool>,
        slots: &mut Vec<Option<usize>>,
    ) {
        used.clear();
        used.resize(self.columns, false);
        slots.clear();
        slots.extend(ids.iter().zip(types).map(|(id, of)| {
            let slot = self
                .by_key
                .get(*id as usize)?
                .iter()
                .find(|(i, ty)| !used.get(*i).copied().unwrap_or(true) && ty.takes(*of))?;
            if let Some(u) = used.get_mut(slot.0) {
                *u = true;
            }
            Some(slot.0)
        }));
        // Attributes without a number (never, when the ids come from the same spans) stay
        // generic.
        slots.resize(attrs.len(), None);
    }
}

/// The distinct attribute keys of a block's spans, numbered in first-seen order, and the
/// number of every span attribute's key and the type of its value ([`ValueType::of`]), in
/// the order the planning pass read the spans (memory order, see [`encode`]); and the same
/// numbering of span names, by span, and where each span's attributes start. Routing and
/// encoding go by these numbers and types: neither hashes a key or name nor parses a value
/// again.
struct BlockKeys<'a> {
    keys: Vec<&'a str>,
    of_attr: Vec<u32>,
    type_of_attr: Vec<Option<ValueType>>,
    names: Vec<&'a str>,
    name_of_span: Vec<u32>,
    /// By span, the position of its first attribute in `of_attr` and the fields after it.
    attr_start: Vec<usize>,
    /// Per attribute, the derivable fixed column the planning pass routed it to
    /// ([`NOT_COUNTED`] if none) and its value's number among the values that column took on
    /// spans of the same name ([`ValueCounts`]).
    counted_in: Vec<u8>,
    value_number: Vec<u32>,
    /// Per attribute column, the number of its derived value among the values it took on the
    /// spans of each name, by name number ([`NOT_A_NUMBER`] where it took no such value):
    /// the encoding pass tells a derived value by its number, without reading the value's
    /// bytes again (reading them cost a cache miss per attribute).
    derived_numbers: Vec<Vec<u32>>,
}

/// In [`BlockKeys::counted_in`]: not counted (fixed columns are fewer).
const NOT_COUNTED: u8 = u8::MAX;

/// In [`BlockKeys::derived_numbers`]: the derived value is none of those counted.
const NOT_A_NUMBER: u32 = u32::MAX;

impl<'a> BlockKeys<'a> {
    /// The key numbers and value types of the attributes of the span whose first attribute
    /// is the `at`th of the block (shorter slices if the spans are not the ones numbered).
    fn of_span(&self, at: usize, attrs: usize) -> (&[u32], &[Option<ValueType>]) {
        let end = at.saturating_add(attrs).min(self.of_attr.len());
        let range = at.min(end)..end;
        (
            self.of_attr.get(range.clone()).unwrap_or_default(),
            self.type_of_attr.get(range).unwrap_or_default(),
        )
    }
}

/// How often a derivable column takes each value on the spans of one name, the values
/// numbered in first-seen order: looked up in the list value by value while it is short (a
/// name nearly always has one or two values, and comparing them costs less than hashing),
/// through a hash map once there are many.
#[derive(Default)]
struct ValueCounts<'a> {
    values: Vec<(&'a str, usize)>,
    index: Option<ContentMap<CountedKey<'a>, u32>>,
}

/// A value as [`ValueCounts`]'s map keeps it: short ones (addresses, most names) copied into
/// the entry, so that telling a repeated value compares it with bytes in the table instead of
/// with those of the span it was first seen on, elsewhere on the heap (a cache miss per
/// attribute on a flushed head); longer ones borrowed.
#[derive(Clone, Copy)]
enum CountedKey<'a> {
    Inline(u8, [u8; INLINE_KEY]),
    Borrowed(&'a str),
}

/// Longest value a [`CountedKey`] holds inline.
const INLINE_KEY: usize = 22;

impl<'a> CountedKey<'a> {
    fn new(v: &'a str) -> Self {
        let mut inline = [0u8; INLINE_KEY];
        match (u8::try_from(v.len()), inline.get_mut(..v.len())) {
            (Ok(len), Some(to)) => {
                to.copy_from_slice(v.as_bytes());
                Self::Inline(len, inline)
            }
            _ => Self::Borrowed(v),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Self::Inline(len, b) => b.get(..usize::from(*len)).unwrap_or_default(),
            Self::Borrowed(v) => v.as_bytes(),
        }
    }
}

impl Borrow<[u8]> for CountedKey<'_> {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

impl std::hash::Hash for CountedKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `[u8]` hashes, which `Borrow` requires.
        self.bytes().hash(state);
    }
}

impl PartialEq for CountedKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for CountedKey<'_> {}

/// Distinct values a [`ValueCounts`] looks up without a map.
const FEW_VALUES: usize = 8;

/// Distinct values a [`ValueCounts`] counts at most; later new values are not counted. A
/// derived value covers at least half a column's values, so it shows up among the first few
/// distinct ones; counting every value of a random column (client addresses: tens of thousands
/// per span name) grew a map per name that no cache held, a quarter of the planning pass.
const MAX_COUNTED_VALUES: usize = 64;

impl<'a> ValueCounts<'a> {
    /// Counts `v`; its number, `None` if it is new and the values counted are
    /// [`MAX_COUNTED_VALUES`] already.
    fn add(&mut self, v: &'a str) -> Option<u32> {
        let at = match self.number(v) {
            Some(at) => at,
            None if self.values.len() >= MAX_COUNTED_VALUES => return None,
            None => self.values.len(),
        };
        match self.values.get_mut(at) {
            Some((_, n)) => *n += 1,
            None => {
                self.values.push((v, 1));
                if let Some(index) = &mut self.index {
                    index.insert(CountedKey::new(v), at as u32);
                } else if self.values.len() > FEW_VALUES {
                    self.index = Some(
                        self.values
                            .iter()
                            .enumerate()
                            .map(|(i, (v, _))| (CountedKey::new(v), i as u32))
                            .collect(),
                    );
                }
            }
        }
        Some(at as u32)
    }

    /// The number of `v`, if counted.
    fn number(&self, v: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(v.as_bytes()).map(|i| *i as usize),
            None => self.values.iter().position(|(x, _)| *x == v),
        }
    }
}

/// A block's attribute columns and the key numbers its attributes are routed by.
struct Plan<'a> {
    cols: AttrColumns,
    keys: BlockKeys<'a>,
    operations: Operations,
}

/// The operations of a block's spans: service → (span name, kind), as `meta.json` lists them.
pub(crate) type Operations = BTreeMap<String, BTreeSet<(String, SpanKind)>>;

/// A block's data file and the operations of its spans.
pub(crate) struct Encoding {
    pub(crate) data: Vec<u8>,
    pub(crate) operations: Operations,
}

/// Picks the attribute columns of a block: the dynamic ones, (key, type) pairs that the fixed
/// columns do not take (or take only as text, where a packed type would hold the value: an
/// IPv4 `client.address`) and that enough spans carry, most frequent first, as many as
/// `attr_layout` can number; and the derived ones (see [`derivations`]).
fn plan_columns<'a, S: Borrow<Span>>(spans: &'a [S]) -> Result<Plan<'a>, BlockError> {
    let fixed = AttrColumns::for_writing(Vec::new())?;
    let router = AttrRouter::new(&fixed);
    let mut numbers: ContentMap<&'a str, u32> = ContentMap::default();
    let mut name_numbers: ContentMap<&'a str, u32> = ContentMap::default();
    let attrs: usize = spans.iter().map(|s| s.borrow().attributes.len()).sum();
    let mut keys = BlockKeys {
        keys: Vec::new(),
        of_attr: Vec::with_capacity(attrs),
        type_of_attr: Vec::with_capacity(attrs),
        names: Vec::new(),
        name_of_span: Vec::with_capacity(spans.len()),
        attr_start: Vec::with_capacity(spans.len()),
        counted_in: Vec::with_capacity(attrs),
        value_number: Vec::with_capacity(attrs),
        derived_numbers: Vec::new(),
    };
    let mut table = router.table(&[]);
    // By key number and type (`ty as usize`): how many attributes the fixed columns do not
    // take (counted in a hash map keyed by (key, type), that was one hash per attribute).
    let mut counts: Vec<[usize; ValueType::ALL.len()]> = Vec::new();
    // By span name number: the value counts of each derivable column its spans carry, the
    // columns in first-seen order (a name has a few).
    let mut by_name: Vec<Vec<(usize, ValueCounts<'a>)>> = Vec::new();
    let derivable: Vec<bool> = fixed
        .columns
        .iter()
        .map(|c| c.ty == ValueType::Str && c.prefix_of.is_none())
        .collect();
    let (mut used, mut slots) = (Vec::new(), Vec::new());
    // By span name number, where the key numbers of the last span of that name start in
    // `keys.of_attr`: spans of one name mostly carry the same keys in the same order, so
    // each key is first compared with the key at its position there, and hashed only when
    // that differs.
    let mut last_of_name: Vec<usize> = Vec::new();
    let too_many = || BlockError::Settings("over 2^32 distinct keys or names in a block".into());
    // The operations (service, name, kind) by numbers: a service's by the address of the
    // span's shared resource (looking the name up in the resource's attributes cost a cache
    // miss per span), a name's from above. Hashing the strings of every span's triple was
    // 1.1% of the server's CPU.
    let mut service_of_resource: FastMap<usize, u32> = FastMap::default();
    let mut services: Vec<&'a str> = Vec::new();
    let mut service_numbers: ContentMap<&'a str, u32> = ContentMap::default();
    let mut operations: std::collections::HashSet<(u32, u32, SpanKind), BuildFast> =
        Default::default();
    let mut prefetch = Prefetcher::default();
    for (k, s) in spans.iter().enumerate() {
        prefetch.before(spans, k + 1);
        let s: &'a Span = s.borrow();
        let next = u32::try_from(name_numbers.len()).map_err(|_| too_many())?;
        let name = *name_numbers.entry(s.name.as_str()).or_insert_with(|| {
            keys.names.push(s.name.as_str());
            next
        });
        keys.name_of_span.push(name);
        let service = match service_of_resource.entry(Arc::as_ptr(&s.resource) as usize) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let service = s.service_name();
                let next = u32::try_from(service_numbers.len()).map_err(|_| too_many())?;
                *e.insert(*service_numbers.entry(service).or_insert_with(|| {
                    services.push(service);
                    next
                }))
            }
        };
        operations.insert((service, name, s.kind));
        let at = keys.of_attr.len();
        keys.attr_start.push(at);
        let name = name as usize;
        if last_of_name.len() <= name {
            last_of_name.resize(name + 1, usize::MAX);
        }
        let last = last_of_name
            .get_mut(name)
            .map_or(usize::MAX, |l| std::mem::replace(l, at));
        for (pos, kv) in s.attributes.iter().enumerate() {
            let key = kv.key.as_str();
            let seen = last
                .checked_add(pos)
                .filter(|p| *p < at)
                .and_then(|p| keys.of_attr.get(p))
                .copied()
                .filter(|id| {
                    keys.keys
                        .get(*id as usize)
                        .is_some_and(|k| same_str(k, key))
                });
            let id = match seen {
                Some(id) => id,
                None => {
                    let next = u32::try_from(numbers.len()).map_err(|_| too_many())?;
                    *numbers.entry(key).or_insert_with(|| {
                        keys.keys.push(key);
                        next
                    })
                }
            };
            keys.of_attr.push(id);
            keys.type_of_attr.push(ValueType::of(&kv.value));
        }
        table.extend(&router, &keys.keys);
        // Field by field (not `of_span`), so that the other fields can grow meanwhile.
        let span = at..keys.of_attr.len();
        let ids = keys.of_attr.get(span.clone()).unwrap_or_default();
        let types = keys.type_of_attr.get(span).unwrap_or_default();
        table.route(&s.attributes, ids, types, &mut used, &mut slots);
        for (((kv, slot), id), ty) in s.attributes.iter().zip(&slots).zip(ids).zip(types) {
            let (mut counted_in, mut number) = (NOT_COUNTED, 0);
            if let (Some(i), AttributeValue::String(v)) = (slot, &kv.value) {
                if derivable.get(*i).copied().unwrap_or(false) {
                    if by_name.len() <= name {
                        by_name.resize_with(name + 1, Vec::new);
                    }
                    if let Some(cols) = by_name.get_mut(name) {
                        let values = match cols.iter().position(|(c, _)| c == i) {
                            Some(at) => cols.get_mut(at),
                            None => {
                                cols.push((*i, ValueCounts::default()));
                                cols.last_mut()
                            }
                        };
                        if let (Some((_, values)), Ok(col)) = (values, u8::try_from(*i)) {
                            // Not counted: the encoder then compares the value itself.
                            if let Some(n) = values.add(v) {
                                (counted_in, number) = (col, n);
                            }
                        }
                    }
                }
            }
            keys.counted_in.push(counted_in);
            keys.value_number.push(number);
            let Some(ty) = *ty else {
                continue;
            };
            let taken_as = slot.and_then(|i| fixed.columns.get(i)).map(|c| c.ty);
            if taken_as.is_none() || (ty.packs_strings() && taken_as != Some(ty)) {
                let id = *id as usize;
                if counts.len() <= id {
                    counts.resize(id + 1, [0; ValueType::ALL.len()]);
                }
                if let Some(n) = counts.get_mut(id).and_then(|c| c.get_mut(ty as usize)) {
                    *n += 1;
                }
            }
        }
    }
    let min = (spans.len() / DYNAMIC_MIN_SHARE).max(2);
    let mut chosen: Vec<((&str, ValueType), usize)> = counts
        .iter()
        .zip(&keys.keys)
        .flat_map(|(by_type, key)| {
            ValueType::ALL
                .iter()
                .zip(by_type)
                .filter(|(_, n)| **n >= min)
                .map(|(ty, n)| ((*key, *ty), *n))
        })
        .collect();
    chosen.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    chosen.truncate(MAX_ATTR_COLUMNS - DEDICATED.len());
    let mut dynamic: Vec<(String, ValueType)> = chosen
        .into_iter()
        .map(|((k, ty), _)| (k.to_owned(), ty))
        .collect();
    // A stable order makes files of the same data identical.
    dynamic.sort();
    let mut cols = AttrColumns::for_writing(dynamic)?;
    let counted = by_name.iter().enumerate().flat_map(|(name, cols)| {
        let name = keys.names.get(name).copied().unwrap_or_default();
        cols.iter().flat_map(move |(col, values)| {
            values
                .values
                .iter()
                .map(move |(v, n)| ((*col, name, *v), *n))
        })
    });
    let derived = derivations(counted, min)
        .into_iter()
        .filter_map(|(i, d)| Some((fixed.columns.get(i)?.column.clone(), d)))
        .collect();
    cols.set_derived(derived)?;
    keys.derived_numbers = vec![Vec::new(); cols.columns.len()];
    for (name, counted) in by_name.iter().enumerate() {
        let span_name = keys.names.get(name).copied().unwrap_or_default();
        for (col, values) in counted {
            let (Some(Some(d)), Some(numbers)) = (
                cols.columns.get(*col).map(|c| c.derived.as_ref()),
                keys.derived_numbers.get_mut(*col),
            ) else {
                continue;
            };
            if numbers.len() <= name {
                numbers.resize(name + 1, NOT_A_NUMBER);
            }
            if let (Some(n), Some(at)) =
                (numbers.get_mut(name), values.number(d.value_for(span_name)))
            {
                *n = at as u32;
            }
        }
    }
    let mut ops = Operations::new();
    for (service, name, kind) in operations {
        if let (Some(service), Some(name)) = (
            services.get(service as usize),
            keys.names.get(name as usize),
        ) {
            ops.entry((*service).to_owned())
                .or_default()
                .insert(((*name).to_owned(), kind));
        }
    }
    Ok(Plan {
        cols,
        keys,
        operations: ops,
    })
}

/// Whether two strings are equal, comparing their addresses before their bytes (keys shared
/// between spans are then equal without a look at their bytes).
fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

/// Most footer bytes the span-name lists of a file's derived columns may take: every reader
/// decodes them with the footer (and its cache holds them), and the reader's first footer
/// fetch is 64 KiB.
const DERIVED_NAME_BYTES: usize = 32 * 1024;

/// The derived columns of a block from the count of each (fixed column, span name, value):
/// per span name its most frequent value, the most frequent of those as the column's
/// default. A name whose value is not the default is listed when its rows pay for the entry
/// (at least one row per byte the entry takes; the rows that follow a listed name would each
/// store a dictionary index otherwise), the most frequent first while the lists stay within
/// [`DERIVED_NAME_BYTES`]. A column is derived when that covers at least half of its values,
/// and `min` of them. Every other row keeps its value, so the choice only decides how many
/// rows store one.
fn derivations<'a>(
    by_name: impl IntoIterator<Item = ((usize, &'a str, &'a str), usize)>,
    min: usize,
) -> BTreeMap<usize, Derived> {
    // Column → name → (its most frequent value, count), and the column's value count.
    // Names by hash: a tree compared every name byte by byte (2.5% of a block write).
    let mut best: BTreeMap<usize, ContentMap<&str, (&str, usize)>> = BTreeMap::new();
    let mut totals: BTreeMap<usize, usize> = BTreeMap::new();
    for ((col, name, value), n) in by_name {
        *totals.entry(col).or_default() += n;
        let e = best
            .entry(col)
            .or_default()
            .entry(name)
            .or_insert((value, 0));
        // Ties go to the smaller value, so the choice does not depend on hash order.
        if n > e.1 || (n == e.1 && value < e.0) {
            *e = (value, n);
        }
    }
    let mut defaults: BTreeMap<usize, &str> = BTreeMap::new();
    // (rows, column, name, value) of every name whose value is not its column's default.
    let mut listed: Vec<(usize, usize, &str, &str)> = Vec::new();
    for (col, names) in &best {
        let mut per_value: BTreeMap<&str, usize> = BTreeMap::new();
        for (value, n) in names.values() {
            *per_value.entry(value).or_default() += n;
        }
        let Some(default) = per_value
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(v, _)| *v)
        else {
            continue;
        };
        defaults.insert(*col, default);
        listed.extend(
            names
                .iter()
                .filter(|(_, (v, _))| *v != default)
                .map(|(name, (v, n))| (*n, *col, *name, *v)),
        );
    }
    listed.sort_by(|a, b| b.0.cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let mut by_col: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    let mut budget = DERIVED_NAME_BYTES;
    for (n, col, name, value) in listed {
        // The JSON of an entry: two quoted strings, a colon and a comma.
        let cost = name.len() + value.len() + 6;
        if n < cost || cost > budget {
            continue;
        }
        budget -= cost;
        by_col
            .entry(col)
            .or_default()
            .insert(name.to_owned(), value.to_owned());
    }
    let mut out = BTreeMap::new();
    for (col, default) in defaults {
        let by_name = by_col.remove(&col).unwrap_or_default();
        let covered: usize = best
            .get(&col)
            .into_iter()
            .flatten()
            .filter(|(name, (v, _))| {
                *v == by_name.get(**name).map(String::as_str).unwrap_or(default)
            })
            .map(|(_, (_, n))| n)
            .sum();
        let total = totals.get(&col).copied().unwrap_or(0);
        if covered >= min && 2 * covered >= total {
            out.insert(
                col,
                Derived {
                    default: default.to_owned(),
                    by_name,
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod derivation_tests {
    use super::*;

    #[test]
    fn names_are_listed_when_their_rows_pay_for_the_entry_and_the_budget_allows() {
        let mut counts: ContentMap<(usize, &str, &str), usize> = ContentMap::default();
        // Column 1: "/a" for most names; "GET /b" says "/b" often enough to be listed,
        // "GET /c" says "/c" too rarely, and "GET /d" is split between two values.
        counts.insert((1, "GET /a", "/a"), 1000);
        counts.insert((1, "GET /e", "/a"), 900);
        counts.insert((1, "GET /b", "/b"), 500);
        counts.insert((1, "GET /c", "/c"), 3);
        counts.insert((1, "GET /d", "/d"), 40);
        counts.insert((1, "GET /d", "/x"), 30);
        // Column 2: every name a value of its own, none frequent: not derived.
        for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            counts.insert((2, name, ["1", "2", "3", "4"][i]), 1);
        }
        let d = derivations(counts, 2);
        let route = d.get(&1).expect("column 1 is derived");
        assert_eq!(route.default, "/a");
        assert_eq!(
            route.by_name,
            BTreeMap::from([
                ("GET /b".to_owned(), "/b".to_owned()),
                ("GET /d".to_owned(), "/d".to_owned())
            ])
        );
        assert!(!d.contains_key(&2));

        // Past the byte budget, the most frequent names are listed first.
        let names: Vec<String> = (0..2000)
            .map(|i| format!("operation number {i:05}"))
            .collect();
        let mut counts: ContentMap<(usize, &str, &str), usize> = ContentMap::default();
        counts.insert((1, "main", "default value"), 1_000_000);
        for (i, name) in names.iter().enumerate() {
            counts.insert((1, name.as_str(), name.as_str()), 100 + i);
        }
        let d = derivations(counts, 2);
        let listed = &d.get(&1).expect("derived").by_name;
        let bytes: usize = listed.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
        assert!(bytes <= DERIVED_NAME_BYTES && bytes + 60 > DERIVED_NAME_BYTES);
        assert!(listed.contains_key("operation number 01999"));
        assert!(!listed.contains_key("operation number 00000"));
    }
}

/// The value derived column `col` (of `derived`) gives a span named `name`, `name_number` in
/// the block, remembered in `by_name`; `None` if `col` is not derived.
fn derived_value<'d>(
    derived: &'d [Option<Derived>],
    by_name: &'d mut [Vec<Option<Box<str>>>],
    col: usize,
    name: &str,
    name_number: u32,
) -> Option<&'d str> {
    let d = derived.get(col)?.as_ref()?;
    let by_name = by_name.get_mut(col)?;
    let at = name_number as usize;
    if by_name.len() <= at {
        by_name.resize(at + 1, None);
    }
    let cached = by_name.get_mut(at)?;
    Some(cached.get_or_insert_with(|| d.value_for(name).into()))
}

/// Column builders for one row group, borrowing from the spans (`'a`) they are fed.
struct RowGroupBuilder<'a> {
    schema: SchemaRef,
    rows: usize,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent_index: UInt32Builder,
    parent_span_id: FixedSizeBinaryBuilder,
    start: UInt64Builder,
    duration: UInt64Builder,
    service: StrDict<'a>,
    name: StrDict<'a>,
    kind: UInt8Builder,
    status_code: UInt8Builder,
    status_message: StrDict<'a>,
    flags: UInt32Builder,
    trace_state: StrDict<'a>,
    resource: BinDict,
    scope: BinDict,
    attr_layout: BinDict,
    attrs: BinaryBuilder,
    events: BinaryBuilder,
    links: BinaryBuilder,
    dropped_attributes: UInt32Builder,
    dropped_events: UInt32Builder,
    dropped_links: UInt32Builder,
    attr_columns: Vec<AttrBuilder>,
    /// Per attribute column, the rows it has a cell for: a row without a value gets its null
    /// when the column's next value comes, or at the end of the row group, so a span costs
    /// nothing in the columns it has no attribute for (each column got a null per span, and
    /// most columns are empty on most spans).
    attr_rows: Vec<usize>,
    /// Per attribute column, the column its values are stored relative to (shared-prefix
    /// columns only).
    prefix_of: Vec<Option<usize>>,
    /// Per attribute column, its derivation from the span name (derived columns only).
    derived: Vec<Option<Derived>>,
    /// Per attribute column, the derived value of each span name, by the name's number in
    /// the block: looked up in the derivation once per name instead of once per attribute
    /// (the lookup compared names byte by byte, 1% of server CPU).
    derived_by_name: Vec<Vec<Option<Box<str>>>>,
    /// The columns of each attribute key of the block, by key number.
    routes: RouteTable,
    /// The key number and value type of every span attribute of the block and the name
    /// number of every span, in planning order; each row's span's position in that order;
    /// the next row's span (in row order) and the current row's span's first attribute (in
    /// planning order).
    keys: BlockKeys<'a>,
    plan_of: &'a [u32],
    next_span: usize,
    attr_at: usize,
    /// The row group's `name` dictionary index of each span name, by the name's number in
    /// the block: the dictionary hashes each name once per row group, not once per span.
    name_keys: Vec<Option<i32>>,
    /// Buffers reused from span to span.
    used: Vec<bool>,
    slots: Vec<Option<usize>>,
    layout: Vec<u8>,
    generic: Vec<&'a KeyValue>,
    cell: Vec<u8>,
    /// Dictionary indexes of each resource (and its service name) and scope by the address of
    /// the shared `Arc`: the spans of one batch share them, so each is encoded and looked up
    /// once. The spans outlive this builder, so addresses are not reused meanwhile.
    resource_keys: FastMap<usize, (i32, i32)>,
    scope_keys: FastMap<usize, i32>,
    /// Rows per row group (the settings') and spans not yet in a finished row group, to size
    /// the builders by ([`RowGroupBuilder::presize`]).
    rows_per_group: usize,
    spans_left: usize,
}

impl<'a> RowGroupBuilder<'a> {
    /// Builders for the spans that `keys` numbered, row `k` being the `plan_of[k]`th span
    /// planned, `rows_per_group` rows at most per row group.
    fn new(
        cols: &AttrColumns,
        keys: BlockKeys<'a>,
        plan_of: &'a [u32],
        rows_per_group: usize,
    ) -> Self {
        let spans = keys.name_of_span.len();
        let mut b = Self {
            schema: arrow_schema(cols),
            rows: 0,
            trace_id: FixedSizeBinaryBuilder::new(16),
            span_id: FixedSizeBinaryBuilder::new(8),
            parent_index: UInt32Builder::new(),
            parent_span_id: FixedSizeBinaryBuilder::new(8),
            start: UInt64Builder::new(),
            duration: UInt64Builder::new(),
            service: StrDict::new(),
            name: StrDict::new(),
            kind: UInt8Builder::new(),
            status_code: UInt8Builder::new(),
            status_message: StrDict::new(),
            flags: UInt32Builder::new(),
            trace_state: StrDict::new(),
            resource: BinDict::new(),
            scope: BinDict::new(),
            attr_layout: BinDict::new(),
            attrs: BinaryBuilder::new(),
            events: BinaryBuilder::new(),
            links: BinaryBuilder::new(),
            dropped_attributes: UInt32Builder::new(),
            dropped_events: UInt32Builder::new(),
            dropped_links: UInt32Builder::new(),
            attr_columns: cols.columns.iter().map(AttrBuilder::new).collect(),
            attr_rows: vec![0; cols.columns.len()],
            prefix_of: cols.columns.iter().map(|c| c.prefix_of).collect(),
            derived: cols.columns.iter().map(|c| c.derived.clone()).collect(),
            derived_by_name: vec![Vec::new(); cols.columns.len()],
            routes: AttrRouter::new(cols).table(&keys.keys),
            name_keys: vec![None; keys.names.len()],
            keys,
            plan_of,
            next_span: 0,
            attr_at: 0,
            used: Vec::new(),
            slots: Vec::new(),
            layout: Vec::new(),
            generic: Vec::new(),
            cell: Vec::new(),
            resource_keys: FastMap::default(),
            scope_keys: FastMap::default(),
            rows_per_group,
            spans_left: spans,
        };
        b.presize();
        b
    }

    /// Sizes the builders that take a value (or null) for every row to the next row group's
    /// rows, so that they do not grow by doubling: each step copied the column so far and
    /// touched fresh pages (reallocations and page faults were 2–4% of the server's CPU).
    /// A row group ends with its last trace, so it can have a few rows more.
    fn presize(&mut self) {
        let rows = self.spans_left.min(self.rows_per_group.saturating_add(64));
        self.trace_id = FixedSizeBinaryBuilder::with_capacity(rows, 16);
        self.span_id = FixedSizeBinaryBuilder::with_capacity(rows, 8);
        self.parent_index = UInt32Builder::with_capacity(rows);
        self.parent_span_id = FixedSizeBinaryBuilder::with_capacity(rows, 8);
        self.start = UInt64Builder::with_capacity(rows);
        self.duration = UInt64Builder::with_capacity(rows);
        for d in [
            &mut self.service,
            &mut self.name,
            &mut self.status_message,
            &mut self.trace_state,
        ] {
            d.keys = Int32Builder::with_capacity(rows);
        }
        self.kind = UInt8Builder::with_capacity(rows);
        self.status_code = UInt8Builder::with_capacity(rows);
        self.flags = UInt32Builder::with_capacity(rows);
        for d in [&mut self.resource, &mut self.scope, &mut self.attr_layout] {
            d.keys = Int32Builder::with_capacity(rows);
        }
        self.attrs = BinaryBuilder::with_capacity(rows, 0);
        self.events = BinaryBuilder::with_capacity(rows, 0);
        self.links = BinaryBuilder::with_capacity(rows, 0);
        self.dropped_attributes = UInt32Builder::with_capacity(rows);
        self.dropped_events = UInt32Builder::with_capacity(rows);
        self.dropped_links = UInt32Builder::with_capacity(rows);
    }

    /// Appends the spans of one trace (all with the same trace ID, in row order), calling
    /// `before_span(i)` before the `i`th.
    fn append_trace<S: Borrow<Span>>(
        &mut self,
        trace: &'a [S],
        mut before_span: impl FnMut(usize),
    ) -> Result<(), BlockError> {
        // First row of each span ID within the trace: the parent ordinal points there. A
        // sorted list searched by bisection: no hashing, and traces are mostly small.
        let mut position: Vec<(SpanId, u32)> = Vec::with_capacity(trace.len());
        for (i, s) in trace.iter().map(Borrow::borrow).enumerate() {
            let i = u32::try_from(i).map_err(|_| {
                BlockError::Settings("a trace with over 4 billion spans cannot be stored".into())
            })?;
            position.push((s.span_id, i));
        }
        position.sort_unstable();
        position.dedup_by_key(|(id, _)| *id);
        for (i, s) in trace.iter().enumerate() {
            before_span(i);
            self.append_span(s.borrow(), &position)?;
        }
        Ok(())
    }

    /// Asks for what planning learnt of the spans of rows a little ahead of `row`. Planning
    /// wrote it in memory order and rows read it in trace order, so without this each row
    /// waited for two cache misses for its span's name number and first attribute, then four
    /// more for its attributes' numbers, types and counts.
    #[inline]
    fn ask_plan(&self, row: usize) {
        let k = &self.keys;
        if let Some(p) = self.plan_of.get(row.saturating_add(2 * prefetch::AHEAD)) {
            prefetch::element(&k.name_of_span, *p as usize);
            prefetch::element(&k.attr_start, *p as usize);
        }
        // Asked for `AHEAD` rows ago, so at hand by now.
        let ahead = self.plan_of.get(row.saturating_add(prefetch::AHEAD));
        if let Some(at) = ahead.and_then(|p| k.attr_start.get(*p as usize)) {
            let n = ahead
                .and_then(|p| k.attr_start.get(*p as usize + 1))
                .map_or(1, |end| end.saturating_sub(*at));
            prefetch::elements(&k.of_attr, *at, n);
            prefetch::elements(&k.type_of_attr, *at, n);
            prefetch::elements(&k.counted_in, *at, n);
            prefetch::elements(&k.value_number, *at, n);
        }
    }

    fn append_span(&mut self, s: &'a Span, position: &[(SpanId, u32)]) -> Result<(), BlockError> {
        self.rows += 1;
        self.trace_id.append_value(s.trace_id.0)?;
        self.span_id.append_value(s.span_id.0)?;
        match s.parent_span_id {
            None => {
                self.parent_index.append_null();
                self.parent_span_id.append_null();
            }
            Some(p) => match position
                .binary_search_by_key(&p, |(id, _)| *id)
                .ok()
                .and_then(|at| position.get(at))
            {
                Some(&(_, i)) => {
                    self.parent_index.append_value(i);
                    self.parent_span_id.append_null();
                }
                None => {
                    self.parent_index.append_null();
                    self.parent_span_id.append_value(p.0)?;
                }
            },
        }
        self.start.append_value(s.start.0);
        // Wrapping so that even an end before the start round-trips exactly.
        self.duration.append_value(s.end.0.wrapping_sub(s.start.0));
        let at = Arc::as_ptr(&s.resource) as usize;
        let (resource, service) = match self.resource_keys.get(&at) {
            Some(keys) => *keys,
            None => {
                let keys = (
                    self.resource
                        .intern(&codec::encode_resource(&s.resource)?)?,
                    self.service.intern(s.service_name())?,
                );
                self.resource_keys.insert(at, keys);
                keys
            }
        };
        self.service.keys.append_value(service);
        self.resource.append_key(resource);
        self.ask_plan(self.next_span);
        let planned = self.plan_of.get(self.next_span).map(|p| *p as usize);
        self.next_span += 1;
        let (Some(number), Some(attr_at)) = (
            planned.and_then(|p| self.keys.name_of_span.get(p)).copied(),
            planned.and_then(|p| self.keys.attr_start.get(p)).copied(),
        ) else {
            return Err(BlockError::Settings(
                "spans changed between planning and encoding".into(),
            ));
        };
        self.attr_at = attr_at;
        let name = match self.name_keys.get_mut(number as usize) {
            Some(Some(key)) => *key,
            Some(slot) => *slot.insert(self.name.intern(&s.name)?),
            None => {
                return Err(BlockError::Settings(
                    "spans changed between planning and encoding".into(),
                ))
            }
        };
        self.name.keys.append_value(name);
        self.kind.append_value(s.kind as u8);
        self.status_code.append_value(s.status.code as u8);
        self.status_message.append(&s.status.message)?;
        self.flags.append_value(s.flags);
        self.trace_state.append(&s.trace_state)?;

        let at = Arc::as_ptr(&s.scope) as usize;
        let scope = match self.scope_keys.get(&at) {
            Some(key) => *key,
            None => {
                let key = self.scope.intern(&codec::encode_scope(&s.scope)?)?;
                self.scope_keys.insert(at, key);
                key
            }
        };
        self.scope.append_key(scope);

        self.append_attributes(&s.attributes, &s.name, number)?;
        if s.events.is_empty() {
            self.events.append_null();
        } else {
            self.events
                .append_value(codec::encode_events(&s.events, s.start)?);
        }
        if s.links.is_empty() {
            self.links.append_null();
        } else {
            self.links.append_value(codec::encode_links(&s.links)?);
        }
        self.dropped_attributes
            .append_value(s.dropped_attributes_count);
        self.dropped_events.append_value(s.dropped_events_count);
        self.dropped_links.append_value(s.dropped_links_count);
        Ok(())
    }

    /// Splits attributes into typed columns and the generic list, recording the original order
    /// in `attr_layout` so that the list is rebuilt exactly.
    fn append_attributes(
        &mut self,
        attrs: &'a [KeyValue],
        name: &str,
        name_number: u32,
    ) -> Result<(), BlockError> {
        let (ids, types) = self.keys.of_span(self.attr_at, attrs.len());
        if ids.len() != attrs.len() {
            return Err(BlockError::Settings(
                "spans changed between planning and encoding".into(),
            ));
        }
        let first = self.attr_at;
        self.routes
            .route(attrs, ids, types, &mut self.used, &mut self.slots);
        self.layout.clear();
        self.generic.clear();
        // This span's row.
        let row = self.rows.saturating_sub(1);
        for (k, (kv, slot)) in attrs.iter().zip(&self.slots).enumerate() {
            let mut stored = false;
            // The reference column's value in this row: the attribute routed to it, wherever
            // it is in the span's list.
            let reference = slot
                .and_then(|i| *self.prefix_of.get(i)?)
                .and_then(|r| {
                    let at = self.slots.iter().position(|s| *s == Some(r))?;
                    match &attrs.get(at)?.value {
                        AttributeValue::String(s) => Some(s.as_str()),
                        _ => None,
                    }
                })
                .unwrap_or("");
            let at = first + k;
            let derived = match (slot, &kv.value) {
                // Counted in this column by the planning pass: the value's number tells.
                (Some(i), AttributeValue::String(_))
                    if self.keys.counted_in.get(at).map(|c| usize::from(*c)) == Some(*i) =>
                {
                    let number = self.keys.value_number.get(at);
                    self.keys
                        .derived_numbers
                        .get(*i)
                        .and_then(|n| n.get(name_number as usize))
                        .is_some_and(|n| Some(n) == number)
                }
                (Some(i), AttributeValue::String(v)) => derived_value(
                    &self.derived,
                    &mut self.derived_by_name,
                    *i,
                    name,
                    name_number,
                )
                .is_some_and(|d| d == v.as_str()),
                _ => false,
            };
            if let (Some(i), true) = (slot, derived) {
                // The null its column gets below stands for the derived value.
                self.layout.push((*i + 1) as u8);
                stored = true;
            } else if let Some((i, b, rows)) = slot
                .and_then(|i| Some((i, self.attr_columns.get_mut(i)?, self.attr_rows.get_mut(i)?)))
            {
                // The nulls of the rows since the column's last value.
                if row > *rows {
                    b.append_nulls(row - *rows);
                    *rows = row;
                }
                if b.append(&kv.value, reference)? {
                    *rows = row + 1;
                    // At most MAX_ATTR_COLUMNS (255) columns, so `i + 1` fits in a byte.
                    self.layout.push((i + 1) as u8);
                    stored = true;
                }
            }
            if !stored {
                self.layout.push(LAYOUT_GENERIC);
                self.generic.push(kv);
            }
        }
        let layout = self.attr_layout.intern(&self.layout)?;
        self.attr_layout.append_key(layout);
        if self.generic.is_empty() {
            self.attrs.append_null();
        } else {
            self.cell.clear();
            codec::put_attrs(&mut self.cell, self.generic.iter().copied(), 0)?;
            self.attrs.append_value(&self.cell);
        }
        Ok(())
    }

    /// Takes the rows appended so far as one record batch.
    fn finish(&mut self) -> Result<RecordBatch, BlockError> {
        for (b, rows) in self.attr_columns.iter_mut().zip(&mut self.attr_rows) {
            b.append_nulls(self.rows.saturating_sub(*rows));
            *rows = 0;
        }
        let rows = std::mem::take(&mut self.rows);
        // The name dictionary starts again with the next row group.
        self.name_keys.iter_mut().for_each(|k| *k = None);
        self.resource_keys.clear();
        self.scope_keys.clear();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_index.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.duration.finish()),
            self.service.finish()?,
            self.name.finish()?,
            Arc::new(self.kind.finish()),
            Arc::new(self.status_code.finish()),
            self.status_message.finish()?,
            Arc::new(self.flags.finish()),
            self.trace_state.finish()?,
            self.resource.finish()?,
            self.scope.finish()?,
            self.attr_layout.finish()?,
            Arc::new(self.attrs.finish()),
            Arc::new(self.events.finish()),
            Arc::new(self.links.finish()),
            Arc::new(self.dropped_attributes.finish()),
            Arc::new(self.dropped_events.finish()),
            Arc::new(self.dropped_links.finish()),
        ];
        for b in &mut self.attr_columns {
            cols.push(b.finish()?);
        }
        self.spans_left = self.spans_left.saturating_sub(rows);
        self.presize();
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

/// Encodes spans, already sorted by (trace ID, start), as a Parquet file. Row groups are cut
/// only at trace boundaries, so every trace lies within one row group: readers can then resolve
/// parent ordinals and skip row groups without ever seeing half a trace.
///
/// `planned` is the same spans in the order they lie in memory, and `plan_of[k]` the
/// position there of `spans[k]`: the planning pass reads every span and its attributes once
/// more, and in memory order that is a stream the hardware prefetches, where in trace order
/// it was a cache miss after another.
pub(crate) fn encode<'a>(
    spans: &[&'a Span],
    planned: &[&'a Span],
    plan_of: &'a [u32],
    settings: &BlockSettings,
) -> Result<Encoding, BlockError> {
    if planned.len() != spans.len() || plan_of.len() != spans.len() {
        return Err(BlockError::Settings(
            "spans changed between planning and encoding".into(),
        ));
    }
    let Plan {
        cols,
        keys,
        operations,
    } = plan_columns(planned)?;
    let props = settings.writer_properties(&cols)?;
    let mut builder = RowGroupBuilder::new(&cols, keys, plan_of, settings.row_group_rows);
    let mut writer = ArrowWriter::try_new(Vec::new(), builder.schema.clone(), Some(props))?;
    let mut prefetch = Prefetcher::default();
    let mut first = 0;
    for trace in spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
        // Span by span, not trace by trace: a trace longer than the prefetcher's distance
        // would have its stages catch up with each other.
        builder.append_trace(trace, |i| prefetch.before(spans, first + i + 1))?;
        first += trace.len();
        if builder.rows >= settings.row_group_rows {
            writer.write(&builder.finish()?)?;
            writer.flush()?;
        }
    }
    if builder.rows > 0 {
        writer.write(&builder.finish()?)?;
    }
    Ok(Encoding {
        data: writer.into_inner()?,
        operations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_counts_number_values_in_first_seen_order_past_the_short_list() {
        let values: Vec<String> = (0..40)
            .map(|i| match i % 3 {
                0 => format!("10.0.0.{i}"),
                1 => format!("a value longer than twenty-two bytes, number {i}"),
                _ => "x".repeat(i),
            })
            .collect();
        let mut counts = ValueCounts::default();
        for round in 0..3 {
            for (i, v) in values.iter().enumerate() {
                assert_eq!(counts.add(v), Some(i as u32), "{v} in round {round}");
            }
        }
        assert!(counts.index.is_some());
        assert!(counts.values.iter().all(|(_, n)| *n == 3));
        assert_eq!(counts.number("not counted"), None);
        assert_eq!(counts.number(&"x".repeat(22)), None);
        assert_eq!(counts.number(&"x".repeat(23)), Some(23));
        // Past the limit, new values are not counted; those counted still are.
        let more: Vec<String> = (40..MAX_COUNTED_VALUES).map(|i| format!("v{i}")).collect();
        for (i, v) in (40..).zip(&more) {
            assert_eq!(counts.add(v), Some(i));
        }
        assert_eq!(counts.add("one too many"), None);
        assert_eq!(counts.number("one too many"), None);
        assert_eq!(counts.add(&values[1]), Some(1));
        assert_eq!(counts.values.get(1).map(|(_, n)| *n), Some(4));
    }

    #[test]
    fn router_finds_column_keys_and_nothing_else() {
        let cols = AttrColumns::new(vec![
            ("httpxroute".to_owned(), ValueType::Str),
            ("http.route".to_owned(), ValueType::Int),
        ])
        .expect("columns");
        let router = AttrRouter::new(&cols);
        let route = cols
            .columns
            .iter()
            .position(|c| c.key == "http.route")
            .expect("fixed column");
        let (xoute, route_int) = (cols.columns.len() - 2, cols.columns.len() - 1);
        let of = |k: &str| router.columns_of(k).map(|c| c.to_vec());
        // Same length, first, middle and last byte as http.route: compared in full.
        assert_eq!(of("httpxroute"), Some(vec![(xoute, ValueType::Str)]));
        assert_eq!(
            of("http.route"),
            Some(vec![(route, ValueType::Str), (route_int, ValueType::Int)])
        );
        assert_eq!(of("hzzzzrzzze"), None);
        assert_eq!(of(""), None);
        let mut used = Vec::new();
        let mut slots = Vec::new();
        let attrs = vec![
            KeyValue::new("http.route", AttributeValue::Int(7)),
            KeyValue::new("http.route", AttributeValue::String("/a".into())),
            KeyValue::new("http.route", AttributeValue::String("/b".into())),
            KeyValue::new("nope", AttributeValue::Bool(true)),
        ];
        let keys = ["http.route", "nope"];
        let types: Vec<_> = attrs.iter().map(|kv| ValueType::of(&kv.value)).collect();
        router
            .table(&keys)
            .route(&attrs, &[0, 0, 0, 1], &types, &mut used, &mut slots);
        assert_eq!(slots, vec![Some(route_int), Some(route), None, None]);
    }
}
