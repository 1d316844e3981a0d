//! The column layout of `data.parquet` and the writer settings that go with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use faultline_model::AttributeValue;

use crate::BlockError;

/// Version of the column layout that this build writes; bumped whenever a reader of the old
/// layout would misread. Version 2 added shared-prefix string columns (see [`PREFIXED`]) and
/// the `ipv4` dynamic column type.
pub const FORMAT_VERSION: u32 = 2;

/// Oldest column layout this build still reads: every version from here to
/// [`FORMAT_VERSION`] is read.
pub const OLDEST_READABLE_FORMAT: u32 = 1;

pub(crate) const TRACE_ID: &str = "trace_id";
pub(crate) const SPAN_ID: &str = "span_id";
pub(crate) const PARENT_INDEX: &str = "parent_index";
pub(crate) const PARENT_SPAN_ID: &str = "parent_span_id";
pub(crate) const START: &str = "start_time_unix_nano";
pub(crate) const DURATION: &str = "duration_nanos";
pub(crate) const SERVICE: &str = "service_name";
pub(crate) const NAME: &str = "name";
pub(crate) const KIND: &str = "kind";
pub(crate) const STATUS_CODE: &str = "status_code";
pub(crate) const STATUS_MESSAGE: &str = "status_message";
pub(crate) const FLAGS: &str = "flags";
pub(crate) const TRACE_STATE: &str = "trace_state";
pub(crate) const RESOURCE: &str = "resource";
pub(crate) const SCOPE: &str = "scope";
pub(crate) const ATTR_LAYOUT: &str = "attr_layout";
pub(crate) const ATTRS: &str = "attrs";
pub(crate) const EVENTS: &str = "events";
pub(crate) const LINKS: &str = "links";
pub(crate) const DROPPED_ATTRIBUTES: &str = "dropped_attributes_count";
pub(crate) const DROPPED_EVENTS: &str = "dropped_events_count";
pub(crate) const DROPPED_LINKS: &str = "dropped_links_count";

/// Value type of an attribute column.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) enum ValueType {
    /// Any string (Utf8, dictionary).
    Str,
    /// `Int` (Int64).
    Int,
    /// `Double` (Float64).
    Double,
    /// `Bool` (Boolean).
    Bool,
    /// A string in canonical lower-case UUID form, stored as its 16 bytes.
    Uuid,
    /// A string of at least [`HEX_MIN_DIGITS`] lower-case hex digits, even in number (request
    /// IDs, hashes, container IDs), stored as the bytes they spell: half the size, and the
    /// bytes are as random as the digits, so zstd gained nothing on the text.
    Hex,
    /// A string that is an IPv4 address in canonical dotted-quad form (`10.0.3.7`: four
    /// decimal numbers 0–255 without leading zeros), stored as its 4 bytes in network order.
    Ipv4,
}

/// Fewest digits a string needs to go to a `hex` column: shorter digit strings are mostly
/// numbers ("2024", "10"), which would split a key's values over two columns for no gain.
pub(crate) const HEX_MIN_DIGITS: usize = 16;

/// Whether `s` is a string a `hex` column holds (see [`ValueType::Hex`]).
pub(crate) fn is_hex(s: &str) -> bool {
    s.len() >= HEX_MIN_DIGITS
        && s.len().is_multiple_of(2)
        && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Appends the bytes that the hex digits of `s` spell (which [`is_hex`] accepted) to `out`.
pub(crate) fn hex_decode(s: &str, out: &mut Vec<u8>) {
    let digit = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
    out.extend(
        s.as_bytes()
            .chunks_exact(2)
            .map(|p| (digit(p[0]) << 4) | digit(p[1])),
    );
}

/// The 4 bytes of `s` if it is an IPv4 address in canonical dotted-quad form (the only form
/// [`ipv4_string`] gives back, so the round trip is exact): `010.0.0.1`, `1.2.3`, `1.2.3.256`
/// and `+1.2.3.4` are not.
pub(crate) fn ipv4_bytes(s: &str) -> Option<[u8; 4]> {
    // One pass over the bytes: routing asks this of every candidate value (an address column
    // takes a string only if it parses), and splitting on '.' first cost twice as much.
    let b = s.as_bytes();
    if b.len() > 15 {
        return None;
    }
    let mut out = [0u8; 4];
    // Parts finished, the value and digit count of the current part.
    let (mut n, mut v, mut digits) = (0usize, 0u16, 0usize);
    for &c in b {
        if c == b'.' {
            if digits == 0 {
                return None;
            }
            *out.get_mut(n)? = u8::try_from(v).ok()?;
            (n, v, digits) = (n + 1, 0, 0);
        } else if c.is_ascii_digit() {
            // No leading zero, at most three digits.
            if (digits == 1 && v == 0) || digits == 3 {
                return None;
            }
            digits += 1;
            v = v * 10 + u16::from(c - b'0');
        } else {
            return None;
        }
    }
    if n != 3 || digits == 0 {
        return None;
    }
    *out.get_mut(3)? = u8::try_from(v).ok()?;
    Some(out)
}

/// The dotted-quad form of 4 address bytes.
pub(crate) fn ipv4_string(b: &[u8]) -> String {
    let mut s = String::with_capacity(15);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        s.push_str(&x.to_string());
    }
    s
}

/// The lower-case hex digits of `b`: the form [`is_hex`] accepts, so the round trip is exact.
pub(crate) fn hex_string(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * b.len());
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    s
}

impl ValueType {
    /// Every type, each at its own position (`ty as usize`).
    pub(crate) const ALL: [Self; 7] = [
        Self::Str,
        Self::Int,
        Self::Double,
        Self::Bool,
        Self::Uuid,
        Self::Hex,
        Self::Ipv4,
    ];

    /// The type of a value as attribute columns see it; `None` for bytes, arrays, kvlists and
    /// empty values, which always stay in the generic list.
    pub(crate) fn of(v: &AttributeValue) -> Option<Self> {
        Some(match v {
            AttributeValue::String(s) if uuid_bytes(s).is_some() => Self::Uuid,
            AttributeValue::String(s) if is_hex(s) => Self::Hex,
            AttributeValue::String(s) if ipv4_bytes(s).is_some() => Self::Ipv4,
            AttributeValue::String(_) => Self::Str,
            AttributeValue::Int(_) => Self::Int,
            AttributeValue::Double(_) => Self::Double,
            AttributeValue::Bool(_) => Self::Bool,
            _ => return None,
        })
    }

    /// Whether a column of this type can hold `v` exactly. The encoder asks [`Self::takes`]
    /// of the type it found once per value; this is what that must agree with.
    #[cfg(test)]
    pub(crate) fn holds(self, v: &AttributeValue) -> bool {
        match (self, v) {
            (Self::Str, AttributeValue::String(_)) => true,
            (Self::Uuid, AttributeValue::String(s)) => uuid_bytes(s).is_some(),
            (Self::Hex, AttributeValue::String(s)) => is_hex(s),
            (Self::Ipv4, AttributeValue::String(s)) => ipv4_bytes(s).is_some(),
            (Self::Int, AttributeValue::Int(_)) => true,
            (Self::Double, AttributeValue::Double(_)) => true,
            (Self::Bool, AttributeValue::Bool(_)) => true,
            _ => false,
        }
    }

    /// [`ValueType::holds`] for a value whose type [`ValueType::of`] gave as `of`, without
    /// looking at the value again: a `str` column holds every string, any other type only
    /// its own values. (The packed string types exclude each other: a UUID has hyphens, a
    /// hex string at least 16 characters, an IPv4 address at most 15 and dots.)
    pub(crate) fn takes(self, of: Option<Self>) -> bool {
        match (self, of) {
            (Self::Str, Some(of)) => of == Self::Str || of.packs_strings(),
            (ty, Some(of)) => ty == of,
            (_, None) => false,
        }
    }

    /// Whether this type holds only strings of one shape, stored packed: a column of it takes
    /// such a string before a `str` column of the same key does.
    pub(crate) fn packs_strings(self) -> bool {
        matches!(self, Self::Uuid | Self::Hex | Self::Ipv4)
    }

    fn name(self) -> &'static str {
        match self {
            Self::Str => "str",
            Self::Int => "int",
            Self::Double => "double",
            Self::Bool => "bool",
            Self::Uuid => "uuid",
            Self::Hex => "hex",
            Self::Ipv4 => "ipv4",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "str" => Self::Str,
            "int" => Self::Int,
            "double" => Self::Double,
            "bool" => Self::Bool,
            "uuid" => Self::Uuid,
            "hex" => Self::Hex,
            "ipv4" => Self::Ipv4,
            _ => return None,
        })
    }

    fn data_type(self) -> DataType {
        match self {
            // Dictionary-encoded in Parquet all the same (see `writer_properties`); files
            // written before said Dictionary(Int32, Utf8) here, and readers take both.
            Self::Str => DataType::Utf8,
            Self::Int => DataType::Int64,
            Self::Double => DataType::Float64,
            Self::Bool => DataType::Boolean,
            Self::Uuid => DataType::FixedSizeBinary(16),
            Self::Hex => DataType::Binary,
            Self::Ipv4 => DataType::FixedSizeBinary(4),
        }
    }
}

/// The 16 bytes of `s` if it is a UUID in canonical lower-case hyphenated form (the only form
/// that [`uuid_string`] gives back, so the round trip is exact).
pub(crate) fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    let mut hex = b.iter().filter(|&&c| c != b'-');
    for byte in &mut out {
        let mut v = 0u8;
        for _ in 0..2 {
            let c = *hex.next()?;
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                _ => return None,
            };
            v = (v << 4) | d;
        }
        *byte = v;
    }
    hex.next().is_none().then_some(out)
}

/// The canonical form of a UUID's bytes.
pub(crate) fn uuid_string(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if h.len() != 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Semantic-convention keys that get their own typed column (`attr.<key>`). A span attribute
/// goes there when its key matches, its value has the column's type, and it is the first such
/// key on the span; everything else stays in the generic `attrs` list. The order is part of the
/// format: `attr_layout` refers to these by position.
pub(crate) const DEDICATED: &[(&str, ValueType)] = &[
    ("http.request.method", ValueType::Str),
    ("http.route", ValueType::Str),
    ("http.response.status_code", ValueType::Int),
    ("url.path", ValueType::Str),
    ("url.full", ValueType::Str),
    ("url.scheme", ValueType::Str),
    ("url.query", ValueType::Str),
    ("server.address", ValueType::Str),
    ("server.port", ValueType::Int),
    ("client.address", ValueType::Str),
    ("client.port", ValueType::Int),
    ("network.peer.address", ValueType::Str),
    ("network.peer.port", ValueType::Int),
    ("network.protocol.name", ValueType::Str),
    ("network.protocol.version", ValueType::Str),
    ("network.transport", ValueType::Str),
    ("user_agent.original", ValueType::Str),
    ("http.request.body.size", ValueType::Int),
    ("http.response.body.size", ValueType::Int),
    ("rpc.system", ValueType::Str),
    ("rpc.service", ValueType::Str),
    ("rpc.method", ValueType::Str),
    ("rpc.grpc.status_code", ValueType::Int),
    ("db.system.name", ValueType::Str),
    ("db.system", ValueType::Str),
    ("db.namespace", ValueType::Str),
    ("db.collection.name", ValueType::Str),
    ("db.operation.name", ValueType::Str),
    ("db.query.text", ValueType::Str),
    ("db.statement", ValueType::Str),
    ("db.response.returned_rows", ValueType::Int),
    ("messaging.system", ValueType::Str),
    ("messaging.destination.name", ValueType::Str),
    ("messaging.operation.type", ValueType::Str),
    ("messaging.batch.message_count", ValueType::Int),
    ("peer.service", ValueType::Str),
    ("error.type", ValueType::Str),
    ("exception.type", ValueType::Str),
    ("http.method", ValueType::Str),
    ("http.status_code", ValueType::Int),
    ("http.url", ValueType::Str),
    ("http.target", ValueType::Str),
    ("net.peer.name", ValueType::Str),
    ("thread.id", ValueType::Int),
    ("thread.name", ValueType::Str),
    ("code.function.name", ValueType::Str),
];

/// Most attribute columns one file may have: `attr_layout` numbers them in one byte.
pub(crate) const MAX_ATTR_COLUMNS: usize = 255;

/// Dictionary size limit of the `resource` and `scope` columns.
const RESOURCE_DICTIONARY_BYTES: usize = 16 * 1024 * 1024;

/// Dictionary size above which an integer attribute column falls back to delta encoding.
const INT_DICTIONARY_BYTES: usize = 16 * 1024;

/// Key of the Parquet footer metadata entry listing a file's dynamic attribute columns.
pub(crate) const DYNAMIC_KEY: &str = "faultline.dynamic_attributes";

/// Key of the Parquet footer metadata entry listing a file's shared-prefix columns.
pub(crate) const PREFIXED_KEY: &str = "faultline.prefixed_attributes";

/// String attributes whose values usually begin with another attribute's value on the same
/// span, as (attribute, reference attribute): a path starts with its route up to the first
/// parameter (`/orders/{id}` and `/orders/1234`), often with the whole route. Their fixed
/// columns store each value as the bytes it shares with the reference left out (see
/// [`crate::prefix`]). Files list the pairs they use in the footer under [`PREFIXED_KEY`].
pub(crate) const PREFIXED: &[(&str, &str)] =
    &[("url.path", "http.route"), ("http.target", "http.route")];

/// Key of the Parquet footer metadata entry listing a file's derived columns.
pub(crate) const DERIVED_KEY: &str = "faultline.derived_attributes";

/// The values of a string attribute column that follow from the span name in one file: the
/// route, method or server address of an operation is nearly always the same, and a row
/// whose value is the one derived here stores a null instead (its `attr_layout` still names
/// the column, which tells that null from an absent attribute). Other values are stored as
/// usual, so a derivation only has to be right for most rows to pay.
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Derived {
    /// The value for span names not in `by_name`.
    pub(crate) default: String,
    /// Span name → value, for names whose value is not `default`.
    pub(crate) by_name: BTreeMap<String, String>,
}

impl Derived {
    /// The value a span named `name` gets when its cell is null.
    pub(crate) fn value_for(&self, name: &str) -> &str {
        self.by_name.get(name).unwrap_or(&self.default)
    }
}

/// One typed attribute column.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct AttrColumn {
    pub(crate) key: String,
    pub(crate) ty: ValueType,
    pub(crate) column: String,
    /// For a shared-prefix column, the index (in [`AttrColumns::columns`]) of the string
    /// column its values are stored relative to.
    pub(crate) prefix_of: Option<usize>,
    /// For a derived column, the values that follow from the span name.
    pub(crate) derived: Option<Derived>,
}

impl AttrColumn {
    /// The column's Arrow type: a shared-prefix column holds bytes (a length, then the rest of
    /// the string), every other its type's.
    pub(crate) fn data_type(&self) -> DataType {
        match self.prefix_of {
            Some(_) => DataType::Binary,
            None => self.ty.data_type(),
        }
    }
}

/// The attribute columns of one file: the fixed [`DEDICATED`] ones (`attr.<key>`), then the
/// file's dynamic ones (`dyn.<n>`), chosen per block for keys frequent in it and listed in the
/// footer under [`DYNAMIC_KEY`]. `attr_layout` byte `i + 1` refers to `columns[i]`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct AttrColumns {
    pub(crate) columns: Vec<AttrColumn>,
}

impl AttrColumns {
    pub(crate) fn new(dynamic: Vec<(String, ValueType)>) -> Result<Self, BlockError> {
        let mut columns: Vec<AttrColumn> = DEDICATED
            .iter()
            .map(|(k, ty)| AttrColumn {
                key: (*k).to_owned(),
                ty: *ty,
                column: format!("attr.{k}"),
                prefix_of: None,
                derived: None,
            })
            .collect();
        for (n, (key, ty)) in dynamic.into_iter().enumerate() {
            columns.push(AttrColumn {
                key,
                ty,
                column: format!("dyn.{n}"),
                prefix_of: None,
                derived: None,
            });
        }
        if columns.len() > MAX_ATTR_COLUMNS {
            return Err(BlockError::corrupt(
                "dynamic attribute list",
                format!(
                    "{} attribute columns, at most {MAX_ATTR_COLUMNS}",
                    columns.len()
                ),
            ));
        }
        Ok(Self { columns })
    }

    /// The dynamic columns as stored in the footer: a JSON array of `[key, type]`.
    pub(crate) fn dynamic_json(&self) -> String {
        let list: Vec<(&str, &str)> = self.columns[DEDICATED.len()..]
            .iter()
            .map(|c| (c.key.as_str(), c.ty.name()))
            .collect();
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_owned())
    }

    /// The columns a new file is written with: fixed and `dynamic` ones, the [`PREFIXED`]
    /// pairs stored as shared-prefix columns.
    pub(crate) fn for_writing(dynamic: Vec<(String, ValueType)>) -> Result<Self, BlockError> {
        let mut cols = Self::new(dynamic)?;
        let pairs: Vec<(String, String)> = PREFIXED
            .iter()
            .map(|(k, r)| (format!("attr.{k}"), format!("attr.{r}")))
            .collect();
        cols.set_prefixes(pairs)?;
        Ok(cols)
    }

    /// Makes each `(column, reference column)` pair a shared-prefix column. Both must be
    /// string columns, and no column may be both a reference and stored relative to one (a
    /// value is then rebuilt from a plain string in one step).
    fn set_prefixes(&mut self, pairs: Vec<(String, String)>) -> Result<(), BlockError> {
        let bad = |d: String| BlockError::corrupt(PREFIXED_KEY, d);
        let index = |name: &str| {
            self.columns
                .iter()
                .position(|c| c.column == name && c.ty == ValueType::Str)
                .ok_or_else(|| bad(format!("{name:?} is not a string attribute column")))
        };
        let mut resolved = Vec::with_capacity(pairs.len());
        for (column, reference) in &pairs {
            resolved.push((index(column)?, index(reference)?));
        }
        for &(c, r) in &resolved {
            if resolved.iter().any(|&(c2, r2)| c2 == r || r2 == c) {
                return Err(bad(format!(
                    "column {c} or {r} is both stored relative and a reference"
                )));
            }
            match self.columns.get_mut(c) {
                Some(col) if col.prefix_of.is_none() => col.prefix_of = Some(r),
                _ => return Err(bad(format!("column {c} listed twice"))),
            }
        }
        Ok(())
    }

    /// The shared-prefix columns as stored in the footer: a JSON array of `[column, reference
    /// column]` names.
    pub(crate) fn prefixed_json(&self) -> String {
        let list: Vec<(&str, &str)> = self
            .columns
            .iter()
            .filter_map(|c| {
                let r = self.columns.get(c.prefix_of?)?;
                Some((c.column.as_str(), r.column.as_str()))
            })
            .collect();
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Makes the named columns derived ones. Each must be a string column that is not a
    /// shared-prefix one.
    pub(crate) fn set_derived(
        &mut self,
        derived: BTreeMap<String, Derived>,
    ) -> Result<(), BlockError> {
        for (name, d) in derived {
            let col = self
                .columns
                .iter_mut()
                .find(|c| c.column == name && c.ty == ValueType::Str && c.prefix_of.is_none())
                .ok_or_else(|| {
                    BlockError::corrupt(
                        DERIVED_KEY,
                        format!("{name:?} is not a plain string attribute column"),
                    )
                })?;
            col.derived = Some(d);
        }
        Ok(())
    }

    /// The derived columns as stored in the footer: a JSON object from column name to
    /// `{"default": value, "by_name": {span name: value}}`.
    pub(crate) fn derived_json(&self) -> String {
        let map: BTreeMap<&str, &Derived> = self
            .columns
            .iter()
            .filter_map(|c| Some((c.column.as_str(), c.derived.as_ref()?)))
            .collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads the footer entries: the dynamic columns, the shared-prefix pairs and the derived
    /// columns (absent means none, as in files of format 1).
    pub(crate) fn from_footer(
        dynamic: Option<&str>,
        prefixed: Option<&str>,
        derived: Option<&str>,
    ) -> Result<Self, BlockError> {
        let bad = |d: String| BlockError::corrupt(DYNAMIC_KEY, d);
        let mut cols = match dynamic {
            None => Self::new(Vec::new())?,
            Some(json) => {
                let list: Vec<(String, String)> =
                    serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
                let dynamic = list
                    .into_iter()
                    .map(|(k, t)| {
                        ValueType::from_name(&t)
                            .map(|ty| (k, ty))
                            .ok_or_else(|| bad(format!("unknown type {t:?}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Self::new(dynamic)?
            }
        };
        if let Some(json) = prefixed {
            let pairs: Vec<(String, String)> = serde_json::from_str(json)
                .map_err(|e| BlockError::corrupt(PREFIXED_KEY, e.to_string()))?;
            cols.set_prefixes(pairs)?;
        }
        if let Some(json) = derived {
            let map: BTreeMap<String, Derived> = serde_json::from_str(json)
                .map_err(|e| BlockError::corrupt(DERIVED_KEY, e.to_string()))?;
            cols.set_derived(map)?;
        }
        Ok(cols)
    }
}

fn dict_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn dict_binary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary))
}

/// Columns that are written with Parquet dictionary encoding (strings and low-cardinality
/// values); IDs, timestamps and durations are not, as dictionaries only bloat random data.
/// Parent ordinals are small numbers (below the trace's span count): as dictionary indexes
/// they take a few bits each, 0.46 bytes per span against 0.74 plain (1M spans of the
/// ingest benchmark).
fn dictionary_columns() -> Vec<String> {
    let cols: Vec<String> = [
        PARENT_INDEX,
        SERVICE,
        NAME,
        KIND,
        STATUS_CODE,
        STATUS_MESSAGE,
        FLAGS,
        TRACE_STATE,
        RESOURCE,
        SCOPE,
        ATTR_LAYOUT,
        DROPPED_ATTRIBUTES,
        DROPPED_EVENTS,
        DROPPED_LINKS,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cols
}

/// The Arrow schema of a block's data file with these attribute columns.
pub(crate) fn arrow_schema(attr_columns: &AttrColumns) -> SchemaRef {
    let mut fields = vec![
        Field::new(TRACE_ID, DataType::FixedSizeBinary(16), false),
        Field::new(SPAN_ID, DataType::FixedSizeBinary(8), false),
        Field::new(PARENT_INDEX, DataType::UInt32, true),
        Field::new(PARENT_SPAN_ID, DataType::FixedSizeBinary(8), true),
        Field::new(START, DataType::UInt64, false),
        Field::new(DURATION, DataType::UInt64, false),
        Field::new(SERVICE, dict_utf8(), false),
        Field::new(NAME, dict_utf8(), false),
        Field::new(KIND, DataType::UInt8, false),
        Field::new(STATUS_CODE, DataType::UInt8, false),
        Field::new(STATUS_MESSAGE, dict_utf8(), false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(TRACE_STATE, dict_utf8(), false),
        Field::new(RESOURCE, dict_binary(), false),
        Field::new(SCOPE, dict_binary(), false),
        Field::new(ATTR_LAYOUT, dict_binary(), false),
        Field::new(ATTRS, DataType::Binary, true),
        Field::new(EVENTS, DataType::Binary, true),
        Field::new(LINKS, DataType::Binary, true),
        Field::new(DROPPED_ATTRIBUTES, DataType::UInt32, false),
        Field::new(DROPPED_EVENTS, DataType::UInt32, false),
        Field::new(DROPPED_LINKS, DataType::UInt32, false),
    ];
    for c in &attr_columns.columns {
        fields.push(Field::new(&c.column, c.data_type(), true));
    }
    Arc::new(Schema::new(fields))
}

/// How blocks are written. `Default` holds the production values.
#[derive(Clone, Debug)]
pub struct BlockSettings {
    /// Target rows per row group. Row groups are cut only between traces (so a trace never
    /// straddles two), hence a group can exceed this by one trace.
    pub row_group_rows: usize,
    /// zstd compression level (1..=22).
    pub zstd_level: i32,
    /// Maximum rows per data page; smaller pages let `read_traces` skip more but cost bytes.
    pub data_page_row_limit: usize,
    /// Maximum bytes per data page.
    pub data_page_bytes: usize,
}

impl Default for BlockSettings {
    fn default() -> Self {
        Self {
            row_group_rows: 128 * 1024,
            zstd_level: 3,
            data_page_row_limit: 20_000,
            data_page_bytes: 1024 * 1024,
        }
    }
}

impl BlockSettings {
    /// The Parquet writer properties for these settings.
    pub(crate) fn writer_properties(
        &self,
        attr_columns: &AttrColumns,
    ) -> Result<WriterProperties, BlockError> {
        if self.row_group_rows == 0 || self.data_page_row_limit == 0 || self.data_page_bytes == 0 {
            return Err(BlockError::Settings(
                "row group and page sizes must be positive".into(),
            ));
        }
        let level = ZstdLevel::try_new(self.zstd_level)
            .map_err(|e| BlockError::Settings(format!("zstd level {}: {e}", self.zstd_level)))?;
        let mut b = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            // Row groups are cut by the encoder at trace boundaries, never by the writer.
            .set_max_row_group_row_count(None)
            .set_max_row_group_bytes(None)
            .set_data_page_row_count_limit(self.data_page_row_limit)
            .set_data_page_size_limit(self.data_page_bytes)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_column_statistics_enabled(ColumnPath::from(TRACE_ID), EnabledStatistics::Page)
            .set_sorting_columns(Some(vec![
                SortingColumn {
                    column_idx: 0,
                    descending: false,
                    nulls_first: false,
                },
                SortingColumn {
                    column_idx: 4,
                    descending: false,
                    nulls_first: false,
                },
            ]));
        for col in [START, DURATION] {
            // Times are random in their low three bytes and nearly constant above. Split into
            // one stream per byte position, zstd packs the constant streams to nothing and
            // codes each random one by its own byte distribution; interleaved, it found only
            // short matches of the zero bytes. 1M spans of the ingest benchmark: duration
            // 3.56 → 2.96 bytes per span, start 3.49 → 3.34 (DELTA_BINARY_PACKED: 4.27, as
            // rows jump in time from trace to trace).
            b = b.set_column_encoding(ColumnPath::from(col), Encoding::BYTE_STREAM_SPLIT);
        }
        for col in dictionary_columns() {
            b = b.set_column_dictionary_enabled(ColumnPath::from(col), true);
        }
        for col in [RESOURCE, SCOPE] {
            // A thousand pods' resources are over a megabyte of dictionary; past the limit the
            // writer would store every row's full resource instead of a small index.
            b = b.set_column_dictionary_page_size_limit(
                ColumnPath::from(col),
                RESOURCE_DICTIONARY_BYTES,
            );
        }
        for col in [RESOURCE, SCOPE, ATTR_LAYOUT, ATTRS, EVENTS, LINKS] {
            // Min/max of encoded cells prune nothing, and the writer compared every row's
            // bytes to keep them: for the kilobyte resource cell that was a tenth of a flush.
            b = b.set_column_statistics_enabled(ColumnPath::from(col), EnabledStatistics::None);
        }
        for c in &attr_columns.columns {
            let path = || ColumnPath::from(c.column.as_str());
            // Attribute values repeat (methods, routes, ports); UUIDs and doubles rarely do.
            if matches!(c.ty, ValueType::Str | ValueType::Int | ValueType::Bool) {
                b = b.set_column_dictionary_enabled(path(), true);
            }
            if c.ty == ValueType::Ipv4 {
                // Addresses of one network share their leading bytes: one stream per byte
                // position lets zstd code those streams to almost nothing.
                b = b.set_column_encoding(path(), Encoding::BYTE_STREAM_SPLIT);
            }
            if c.ty == ValueType::Int {
                // High-cardinality integers (user IDs, sizes) are cheaper bit-packed as deltas
                // than as a huge dictionary: a small dictionary limit makes the writer fall back.
                b = b
                    .set_column_dictionary_page_size_limit(path(), INT_DICTIONARY_BYTES)
                    .set_column_encoding(path(), Encoding::DELTA_BINARY_PACKED);
            }
        }
        b = b.set_key_value_metadata(Some(vec![
            parquet::file::metadata::KeyValue::new(
                DYNAMIC_KEY.to_owned(),
                attr_columns.dynamic_json(),
            ),
            parquet::file::metadata::KeyValue::new(
                PREFIXED_KEY.to_owned(),
                attr_columns.prefixed_json(),
            ),
            parquet::file::metadata::KeyValue::new(
                DERIVED_KEY.to_owned(),
                attr_columns.derived_json(),
            ),
        ]));
        Ok(b.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_strings_round_trip_only_in_lower_case_with_enough_digits() {
        for h in ["0123456789abcdef", "00000000000000000000000000000000ff"] {
            assert!(is_hex(h), "{h}");
            let mut b = Vec::new();
            hex_decode(h, &mut b);
            assert_eq!(b.len(), h.len() / 2);
            assert_eq!(hex_string(&b), h);
        }
        for not in [
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789abcdeg",
            "2024",
            "",
        ] {
            assert!(!is_hex(not), "{not}");
        }
    }

    #[test]
    fn uuids_round_trip_only_in_canonical_form() {
        let u = "0192f3c4-5b6a-7d8e-9f00-a1b2c3d4e5f6";
        assert_eq!(uuid_string(&uuid_bytes(u).unwrap()), u);
        for not in [
            "0192F3C4-5B6A-7D8E-9F00-A1B2C3D4E5F6",
            "0192f3c45b6a7d8e9f00a1b2c3d4e5f6",
            "0192f3c4-5b6a-7d8e-9f00-a1b2c3d4e5f",
            "0192f3c4-5b6a-7d8e-9f00-a1b2c3d4e5fg",
            "0192f3c4+5b6a-7d8e-9f00-a1b2c3d4e5f6",
            "",
        ] {
            assert!(uuid_bytes(not).is_none(), "{not}");
        }
    }

    #[test]
    fn ipv4_addresses_round_trip_only_in_canonical_form() {
        for a in ["10.0.3.7", "0.0.0.0", "255.255.255.255", "192.168.100.1"] {
            let b = ipv4_bytes(a).unwrap_or_else(|| panic!("{a}"));
            assert_eq!(ipv4_string(&b), a);
            assert_eq!(
                ValueType::of(&AttributeValue::String(a.into())),
                Some(ValueType::Ipv4)
            );
        }
        assert_eq!(ipv4_bytes("10.0.3.7"), Some([10, 0, 3, 7]));
        for not in [
            "010.0.3.7",
            "10.0.3",
            "10.0.3.7.1",
            "10.0.3.256",
            "10.0..7",
            "+1.2.3.4",
            "1.2.3.4 ",
            "::1",
            "1000.0.0.1",
            "10.0.3.7.",
            ".10.0.3.7",
            "0010.0.3.7",
            "",
        ] {
            assert!(ipv4_bytes(not).is_none(), "{not}");
        }
        // Every string of up to 8 characters of a few digits and dots agrees with std's
        // parser, which also refuses leading zeros.
        let alphabet = ['0', '1', '2', '5', '.'];
        let mut strings = vec![String::new()];
        for _ in 0..8 {
            let longer: Vec<String> = strings
                .iter()
                .filter(|s| s.len() == strings.last().map_or(0, String::len))
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(longer);
        }
        let mut addresses = 0;
        for s in &strings {
            let std = s.parse::<std::net::Ipv4Addr>().ok().map(|a| a.octets());
            assert_eq!(ipv4_bytes(s), std, "{s:?}");
            addresses += usize::from(std.is_some());
        }
        assert!(addresses > 500, "{addresses}");
    }

    #[test]
    fn every_type_is_at_its_own_position() {
        for (i, ty) in ValueType::ALL.iter().enumerate() {
            assert_eq!(*ty as usize, i);
            assert_eq!(ValueType::from_name(ty.name()), Some(*ty));
        }
    }

    #[test]
    fn takes_agrees_with_holds_on_every_kind_of_value() {
        let values = [
            AttributeValue::String("0192f3c4-5b6a-7d8e-9f00-a1b2c3d4e5f6".into()),
            AttributeValue::String("0192F3C4-5B6A-7D8E-9F00-A1B2C3D4E5F6".into()),
            AttributeValue::String("0123456789abcdef".into()),
            AttributeValue::String("0123456789abcdef0".into()),
            AttributeValue::String("10.0.3.7".into()),
            AttributeValue::String("010.0.3.7".into()),
            AttributeValue::String("255.255.255.255".into()),
            AttributeValue::String("/orders/{id}".into()),
            AttributeValue::String(Default::default()),
            AttributeValue::Int(7),
            AttributeValue::Double(0.5),
            AttributeValue::Bool(true),
            AttributeValue::Bytes(vec![1, 2]),
            AttributeValue::Array(vec![AttributeValue::Int(1)]),
            AttributeValue::Empty,
        ];
        let types = [
            ValueType::Str,
            ValueType::Int,
            ValueType::Double,
            ValueType::Bool,
            ValueType::Uuid,
            ValueType::Hex,
            ValueType::Ipv4,
        ];
        let mut taken = 0;
        for v in &values {
            for ty in types {
                assert_eq!(ty.takes(ValueType::of(v)), ty.holds(v), "{ty:?} {v:?}");
                taken += usize::from(ty.holds(v));
            }
        }
        // Each string of a packed type is held by two types, other strings and scalars by one.
        assert_eq!(taken, 16);
    }

    #[test]
    fn footer_list_round_trips_and_rejects_garbage() {
        let cols = AttrColumns::for_writing(vec![
            ("a".into(), ValueType::Uuid),
            ("b".into(), ValueType::Bool),
            ("c".into(), ValueType::Ipv4),
        ])
        .unwrap();
        let mut cols = cols;
        cols.set_derived(BTreeMap::from([(
            "attr.http.route".to_owned(),
            Derived {
                default: "/a".into(),
                by_name: BTreeMap::from([("GET /b".to_owned(), "/b".to_owned())]),
            },
        )]))
        .unwrap();
        let back = AttrColumns::from_footer(
            Some(&cols.dynamic_json()),
            Some(&cols.prefixed_json()),
            Some(&cols.derived_json()),
        )
        .unwrap();
        assert_eq!(back, cols);
        assert_eq!(
            cols.prefixed_json(),
            r#"[["attr.url.path","attr.http.route"],["attr.http.target","attr.http.route"]]"#
        );
        let old = AttrColumns::from_footer(None, None, None).unwrap();
        assert_eq!(old.columns.len(), DEDICATED.len());
        assert!(old.columns.iter().all(|c| c.prefix_of.is_none()));
        assert!(AttrColumns::from_footer(Some("[[\"a\", \"blob\"]]"), None, None).is_err());
        assert!(AttrColumns::from_footer(Some("{"), None, None).is_err());
        let too_many: Vec<(String, &str)> = (0..300).map(|i| (i.to_string(), "int")).collect();
        assert!(AttrColumns::from_footer(
            Some(&serde_json::to_string(&too_many).unwrap()),
            None,
            None
        )
        .is_err());
        // Prefix pairs must name two string columns, neither both a reference and relative.
        for bad in [
            "{",
            r#"[["attr.url.path","attr.server.port"]]"#,
            r#"[["attr.url.path","attr.nope"]]"#,
            r#"[["attr.url.path","attr.url.path"]]"#,
            r#"[["attr.url.path","attr.http.route"],["attr.http.route","attr.url.full"]]"#,
            r#"[["attr.url.path","attr.http.route"],["attr.url.path","attr.url.full"]]"#,
        ] {
            assert!(
                AttrColumns::from_footer(None, Some(bad), None).is_err(),
                "{bad}"
            );
        }
        // Derived columns must be plain string columns, and the JSON well-formed.
        for bad in [
            "[",
            r#"{"attr.server.port": {"default": "", "by_name": {}}}"#,
            r#"{"attr.nope": {"default": "", "by_name": {}}}"#,
            r#"{"attr.http.route": {"default": ""}}"#,
            r#"{"attr.http.route": {"default": "", "by_name": {}, "x": 1}}"#,
        ] {
            assert!(
                AttrColumns::from_footer(None, None, Some(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(AttrColumns::from_footer(
            None,
            Some(r#"[["attr.url.path","attr.http.route"]]"#),
            Some(r#"{"attr.url.path": {"default": "", "by_name": {}}}"#)
        )
        .is_err());
    }
}
