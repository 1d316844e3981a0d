//! Record batches → spans: typed column access that tolerates hostile files, interning of
//! resources and scopes, and reassembly of parent links from ordinals.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BinaryArray, BooleanArray, DictionaryArray, FixedSizeBinaryArray, Float64Array,
    Int64Array, StringArray, UInt32Array, UInt64Array, UInt8Array,
};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;
use faultline_model::{
    AttributeValue, InstrumentationScope, KeyValue, Resource, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId, UnixNanos,
};

use crate::codec;
use crate::encode::LAYOUT_GENERIC;
use crate::schema::{self, AttrColumn, AttrColumns, ValueType};
use crate::BlockError;

fn missing(col: &str) -> BlockError {
    BlockError::corrupt(format!("column {col}"), "missing or of an unexpected type")
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, BlockError> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| missing(name))
}

pub(crate) fn fixed<'a>(
    batch: &'a RecordBatch,
    name: &str,
    width: i32,
) -> Result<&'a FixedSizeBinaryArray, BlockError> {
    column(batch, name)?
        .as_fixed_size_binary_opt()
        .filter(|a| a.value_length() == width)
        .ok_or_else(|| missing(name))
}

macro_rules! primitive_getter {
    ($fn:ident, $ty:ty) => {
        pub(crate) fn $fn<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a $ty, BlockError> {
            column(batch, name)?
                .as_any()
                .downcast_ref::<$ty>()
                .ok_or_else(|| missing(name))
        }
    };
}
primitive_getter!(u8s, UInt8Array);
primitive_getter!(u32s, UInt32Array);
primitive_getter!(u64s, UInt64Array);
primitive_getter!(i64s, Int64Array);
primitive_getter!(f64s, Float64Array);
primitive_getter!(bools, BooleanArray);

/// A string or binary column, plain or dictionary-encoded.
pub(crate) enum Cells<'a> {
    Str(&'a StringArray),
    Bin(&'a BinaryArray),
    Dict {
        keys: &'a DictionaryArray<Int32Type>,
        values: Box<Cells<'a>>,
    },
}

impl<'a> Cells<'a> {
    pub(crate) fn new(batch: &'a RecordBatch, name: &str) -> Result<Self, BlockError> {
        Self::of(column(batch, name)?).ok_or_else(|| missing(name))
    }

    fn of(a: &'a dyn Array) -> Option<Self> {
        if let Some(s) = a.as_string_opt::<i32>() {
            return Some(Self::Str(s));
        }
        if let Some(b) = a.as_binary_opt::<i32>() {
            return Some(Self::Bin(b));
        }
        let keys = a.as_dictionary_opt::<Int32Type>()?;
        let values = Self::of(keys.values().as_ref())?;
        if matches!(values, Self::Dict { .. }) {
            return None;
        }
        Some(Self::Dict {
            keys,
            values: Box::new(values),
        })
    }

    /// The bytes at `row`, `None` when null or out of range.
    pub(crate) fn get(&self, row: usize) -> Option<&'a [u8]> {
        match self {
            Self::Str(a) => (row < a.len() && a.is_valid(row)).then(|| a.value(row).as_bytes()),
            Self::Bin(a) => (row < a.len() && a.is_valid(row)).then(|| a.value(row)),
            Self::Dict { keys, values } => {
                let k = keys.keys();
                if row >= k.len() || k.is_null(row) {
                    return None;
                }
                usize::try_from(k.value(row))
                    .ok()
                    .and_then(|k| values.get(k))
            }
        }
    }

    /// Dictionary key at `row` (or the row itself when plain): equal keys mean equal values
    /// within one batch, which lets callers decode each distinct value once.
    pub(crate) fn key(&self, row: usize) -> usize {
        match self {
            Self::Dict { keys, .. } => keys
                .keys()
                .values()
                .get(row)
                .and_then(|k| usize::try_from(*k).ok())
                .unwrap_or(usize::MAX),
            _ => row,
        }
    }

    pub(crate) fn str(&self, row: usize, col: &str) -> Result<&'a str, BlockError> {
        let b = self
            .get(row)
            .ok_or_else(|| BlockError::corrupt(format!("column {col}"), "unexpected null"))?;
        std::str::from_utf8(b)
            .map_err(|_| BlockError::corrupt(format!("column {col}"), "not UTF-8"))
    }
}

/// Shares one `Arc` per distinct resource and scope across everything one reader returns.
#[derive(Default)]
pub(crate) struct Interner {
    resources: HashMap<Vec<u8>, Arc<Resource>>,
    scopes: HashMap<Vec<u8>, Arc<InstrumentationScope>>,
}

impl Interner {
    pub(crate) fn resource(&mut self, bytes: &[u8]) -> Result<Arc<Resource>, BlockError> {
        if let Some(r) = self.resources.get(bytes) {
            return Ok(r.clone());
        }
        let r = codec::decode_resource(bytes)?;
        self.resources.insert(bytes.to_vec(), r.clone());
        Ok(r)
    }

    fn scope(&mut self, bytes: &[u8]) -> Result<Arc<InstrumentationScope>, BlockError> {
        if let Some(s) = self.scopes.get(bytes) {
            return Ok(s.clone());
        }
        let s = codec::decode_scope(bytes)?;
        self.scopes.insert(bytes.to_vec(), s.clone());
        Ok(s)
    }
}

/// Per-batch cache from dictionary key to interned value.
#[derive(Default)]
pub(crate) struct KeyCache<T> {
    map: HashMap<usize, T>,
}

impl<T: Clone> KeyCache<T> {
    pub(crate) fn get_or(
        &mut self,
        key: usize,
        make: impl FnOnce() -> Result<T, BlockError>,
    ) -> Result<T, BlockError> {
        if key != usize::MAX {
            if let Some(v) = self.map.get(&key) {
                return Ok(v.clone());
            }
        }
        let v = make()?;
        if key != usize::MAX {
            self.map.insert(key, v.clone());
        }
        Ok(v)
    }
}

fn kind_from_u8(v: u8) -> Result<SpanKind, BlockError> {
    match v {
        0..=5 => Ok(SpanKind::from_i32(i32::from(v))),
        _ => Err(BlockError::corrupt("column kind", format!("value {v}"))),
    }
}

fn status_from_u8(v: u8) -> Result<StatusCode, BlockError> {
    match v {
        0..=2 => Ok(StatusCode::from_i32(i32::from(v))),
        _ => Err(BlockError::corrupt(
            "column status_code",
            format!("value {v}"),
        )),
    }
}

/// One typed attribute column of a batch.
pub(crate) enum AttrCells<'a> {
    Str(Cells<'a>),
    Int(&'a Int64Array),
    Double(&'a Float64Array),
    Bool(&'a BooleanArray),
    Uuid(&'a FixedSizeBinaryArray),
    Hex(&'a BinaryArray),
    Ipv4(&'a FixedSizeBinaryArray),
    /// Shared-prefix cells ([`crate::prefix`]), relative to another column of the row.
    Prefixed(&'a BinaryArray),
}

impl<'a> AttrCells<'a> {
    pub(crate) fn new(b: &'a RecordBatch, c: &AttrColumn) -> Result<Self, BlockError> {
        if c.prefix_of.is_some() {
            return Ok(Self::Prefixed(
                column(b, &c.column)?
                    .as_binary_opt::<i32>()
                    .ok_or_else(|| missing(&c.column))?,
            ));
        }
        Ok(match c.ty {
            ValueType::Str => Self::Str(Cells::new(b, &c.column)?),
            ValueType::Int => Self::Int(i64s(b, &c.column)?),
            ValueType::Double => Self::Double(f64s(b, &c.column)?),
            ValueType::Bool => Self::Bool(bools(b, &c.column)?),
            ValueType::Uuid => Self::Uuid(fixed(b, &c.column, 16)?),
            ValueType::Hex => Self::Hex(
                column(b, &c.column)?
                    .as_binary_opt::<i32>()
                    .ok_or_else(|| missing(&c.column))?,
            ),
            ValueType::Ipv4 => Self::Ipv4(fixed(b, &c.column, 4)?),
        })
    }

    /// The value stored at `row`; `None` when null. Shared-prefix cells are only whole with
    /// their reference: [`TypedAttrs::value`] rebuilds them.
    fn get(&self, row: usize, column: &str) -> Result<Option<AttributeValue>, BlockError> {
        Ok(match self {
            Self::Str(c) => match c.get(row) {
                Some(b) => Some(AttributeValue::String(
                    std::str::from_utf8(b)
                        .map_err(|_| BlockError::corrupt(format!("column {column}"), "not UTF-8"))?
                        .into(),
                )),
                None => None,
            },
            Self::Int(c) => c.is_valid(row).then(|| AttributeValue::Int(c.value(row))),
            Self::Double(c) => c
                .is_valid(row)
                .then(|| AttributeValue::Double(c.value(row))),
            Self::Bool(c) => c.is_valid(row).then(|| AttributeValue::Bool(c.value(row))),
            Self::Uuid(c) => c
                .is_valid(row)
                .then(|| AttributeValue::String(schema::uuid_string(c.value(row)).into())),
            Self::Hex(c) => (row < c.len() && c.is_valid(row))
                .then(|| AttributeValue::String(schema::hex_string(c.value(row)).into())),
            Self::Ipv4(c) => c
                .is_valid(row)
                .then(|| AttributeValue::String(schema::ipv4_string(c.value(row)).into())),
            Self::Prefixed(_) => {
                return Err(BlockError::corrupt(
                    format!("column {column}"),
                    "a shared-prefix column read without its reference",
                ))
            }
        })
    }
}

/// The typed attribute columns of one batch that a reader needs, by attribute column index,
/// with what their values depend on: the reference column of a shared-prefix column, the span
/// name and `attr_layout` for a derived column.
pub(crate) struct TypedAttrs<'a> {
    cols: &'a AttrColumns,
    cells: Vec<Option<AttrCells<'a>>>,
    names: Option<Cells<'a>>,
    layouts: Option<Cells<'a>>,
}

impl<'a> TypedAttrs<'a> {
    /// `wanted` and the attribute columns their values depend on (indexes, sorted), and
    /// whether any of them is derived (then `name` and `attr_layout` are needed too).
    fn closure(cols: &AttrColumns, wanted: &[usize]) -> (Vec<usize>, bool) {
        let mut all: Vec<usize> = wanted.to_vec();
        for &i in wanted {
            all.extend(cols.columns.get(i).and_then(|c| c.prefix_of));
        }
        all.sort_unstable();
        all.dedup();
        let derived = all
            .iter()
            .any(|&i| cols.columns.get(i).is_some_and(|c| c.derived.is_some()));
        (all, derived)
    }

    /// The names of the file columns to read for the values of attribute columns `wanted`.
    pub(crate) fn columns_needed(cols: &AttrColumns, wanted: &[usize]) -> Vec<String> {
        let (all, derived) = Self::closure(cols, wanted);
        let mut out: Vec<String> = all
            .iter()
            .filter_map(|&i| Some(cols.columns.get(i)?.column.clone()))
            .collect();
        if derived {
            out.push(schema::NAME.to_owned());
            out.push(schema::ATTR_LAYOUT.to_owned());
        }
        out
    }

    /// The cells of attribute columns `wanted` (and those they depend on) in `batch`, which
    /// must hold [`Self::columns_needed`].
    pub(crate) fn new(
        batch: &'a RecordBatch,
        cols: &'a AttrColumns,
        wanted: &[usize],
    ) -> Result<Self, BlockError> {
        let (all, derived) = Self::closure(cols, wanted);
        let mut cells: Vec<Option<AttrCells<'a>>> = cols.columns.iter().map(|_| None).collect();
        for i in all {
            if let (Some(c), Some(slot)) = (cols.columns.get(i), cells.get_mut(i)) {
                *slot = Some(AttrCells::new(batch, c)?);
            }
        }
        let (names, layouts) = if derived {
            (
                Some(Cells::new(batch, schema::NAME)?),
                Some(Cells::new(batch, schema::ATTR_LAYOUT)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            cols,
            cells,
            names,
            layouts,
        })
    }

    /// All attribute columns of `batch`; `name` and `attr_layout` are taken as given.
    fn all(
        batch: &'a RecordBatch,
        cols: &'a AttrColumns,
        names: Cells<'a>,
        layouts: Cells<'a>,
    ) -> Result<Self, BlockError> {
        let cells = cols
            .columns
            .iter()
            .map(|c| Ok(Some(AttrCells::new(batch, c)?)))
            .collect::<Result<Vec<_>, BlockError>>()?;
        Ok(Self {
            cols,
            cells,
            names: Some(names),
            layouts: Some(layouts),
        })
    }

    /// The value of attribute column `i` at `row`: the stored one, rebuilt after its
    /// reference's for a shared-prefix column, or the one its span name gives for a derived
    /// column whose cell is null while `attr_layout` names it. `None` when the span has no
    /// attribute in this column.
    pub(crate) fn value(&self, i: usize, row: usize) -> Result<Option<AttributeValue>, BlockError> {
        let (Some(col), Some(Some(cells))) = (self.cols.columns.get(i), self.cells.get(i)) else {
            return Err(BlockError::corrupt(
                "attribute columns",
                format!("column {i} was not read"),
            ));
        };
        if let AttrCells::Prefixed(c) = cells {
            if row >= c.len() || c.is_null(row) {
                return Ok(None);
            }
            // Never itself a shared-prefix column (`AttrColumns::set_prefixes`): one step.
            let reference = match col.prefix_of {
                Some(r) => match self.value(r, row)? {
                    Some(AttributeValue::String(s)) => s,
                    _ => Default::default(),
                },
                None => Default::default(),
            };
            let value = crate::prefix::decode(reference.as_bytes(), c.value(row), &col.column)?;
            return Ok(Some(AttributeValue::String(value.into())));
        }
        if let Some(v) = cells.get(row, &col.column)? {
            return Ok(Some(v));
        }
        let Some(derived) = &col.derived else {
            return Ok(None);
        };
        let slot = u8::try_from(i + 1).ok();
        let named = self
            .layouts
            .as_ref()
            .and_then(|l| l.get(row))
            .is_some_and(|layout| slot.is_some_and(|s| layout.contains(&s)));
        if !named {
            return Ok(None);
        }
        let name = self
            .names
            .as_ref()
            .ok_or_else(|| BlockError::corrupt("column name", "not read"))?
            .str(row, schema::NAME)?;
        Ok(Some(AttributeValue::String(derived.value_for(name).into())))
    }
}

/// How a decoded span's parent is known before its whole trace has been read.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ParentRef {
    None,
    /// Row of the parent within the trace.
    Ordinal(u32),
    /// A parent that is not in this block.
    External(SpanId),
}

/// Every column of one batch, typed.
pub(crate) struct SpanColumns<'a> {
    pub(crate) trace_id: &'a FixedSizeBinaryArray,
    span_id: &'a FixedSizeBinaryArray,
    parent_index: &'a UInt32Array,
    parent_span_id: &'a FixedSizeBinaryArray,
    start: &'a UInt64Array,
    duration: &'a UInt64Array,
    name: Cells<'a>,
    kind: &'a UInt8Array,
    status_code: &'a UInt8Array,
    status_message: Cells<'a>,
    flags: &'a UInt32Array,
    trace_state: Cells<'a>,
    resource: Cells<'a>,
    scope: Cells<'a>,
    attr_layout: Cells<'a>,
    attrs: Cells<'a>,
    events: Cells<'a>,
    links: Cells<'a>,
    dropped_attributes: &'a UInt32Array,
    dropped_events: &'a UInt32Array,
    dropped_links: &'a UInt32Array,
    typed: TypedAttrs<'a>,
    resource_keys: KeyCache<Arc<Resource>>,
    scope_keys: KeyCache<Arc<InstrumentationScope>>,
}

pub(crate) fn trace_id_at(a: &FixedSizeBinaryArray, row: usize) -> Result<TraceId, BlockError> {
    let mut id = [0u8; 16];
    id.copy_from_slice(a.value(row));
    Ok(TraceId(id))
}

pub(crate) fn span_id_at(a: &FixedSizeBinaryArray, row: usize) -> SpanId {
    let mut id = [0u8; 8];
    id.copy_from_slice(a.value(row));
    SpanId(id)
}

/// The parent reference at `row` from the two parent columns.
pub(crate) fn parent_at(
    index: &UInt32Array,
    external: &FixedSizeBinaryArray,
    row: usize,
) -> ParentRef {
    if index.is_valid(row) {
        ParentRef::Ordinal(index.value(row))
    } else if external.is_valid(row) {
        ParentRef::External(span_id_at(external, row))
    } else {
        ParentRef::None
    }
}

impl<'a> SpanColumns<'a> {
    pub(crate) fn new(b: &'a RecordBatch, cols: &'a AttrColumns) -> Result<Self, BlockError> {
        let typed = TypedAttrs::all(
            b,
            cols,
            Cells::new(b, schema::NAME)?,
            Cells::new(b, schema::ATTR_LAYOUT)?,
        )?;
        Ok(Self {
            trace_id: fixed(b, schema::TRACE_ID, 16)?,
            span_id: fixed(b, schema::SPAN_ID, 8)?,
            parent_index: u32s(b, schema::PARENT_INDEX)?,
            parent_span_id: fixed(b, schema::PARENT_SPAN_ID, 8)?,
            start: u64s(b, schema::START)?,
            duration: u64s(b, schema::DURATION)?,
            name: Cells::new(b, schema::NAME)?,
            kind: u8s(b, schema::KIND)?,
            status_code: u8s(b, schema::STATUS_CODE)?,
            status_message: Cells::new(b, schema::STATUS_MESSAGE)?,
            flags: u32s(b, schema::FLAGS)?,
            trace_state: Cells::new(b, schema::TRACE_STATE)?,
            resource: Cells::new(b, schema::RESOURCE)?,
            scope: Cells::new(b, schema::SCOPE)?,
            attr_layout: Cells::new(b, schema::ATTR_LAYOUT)?,
            attrs: Cells::new(b, schema::ATTRS)?,
            events: Cells::new(b, schema::EVENTS)?,
            links: Cells::new(b, schema::LINKS)?,
            dropped_attributes: u32s(b, schema::DROPPED_ATTRIBUTES)?,
            dropped_events: u32s(b, schema::DROPPED_EVENTS)?,
            dropped_links: u32s(b, schema::DROPPED_LINKS)?,
            typed,
            resource_keys: KeyCache::default(),
            scope_keys: KeyCache::default(),
        })
    }

    /// The span at `row`, with its parent still as a reference.
    pub(crate) fn span(
        &mut self,
        row: usize,
        interner: &mut Interner,
    ) -> Result<(Span, ParentRef), BlockError> {
        let start = UnixNanos(self.start.value(row));
        let resource_bytes = self
            .resource
            .get(row)
            .ok_or_else(|| BlockError::corrupt("column resource", "unexpected null"))?;
        let resource = self
            .resource_keys
            .get_or(self.resource.key(row), || interner.resource(resource_bytes))?;
        let scope_bytes = self
            .scope
            .get(row)
            .ok_or_else(|| BlockError::corrupt("column scope", "unexpected null"))?;
        let scope = self
            .scope_keys
            .get_or(self.scope.key(row), || interner.scope(scope_bytes))?;
        let span = Span {
            trace_id: trace_id_at(self.trace_id, row)?,
            span_id: span_id_at(self.span_id, row),
            parent_span_id: None,
            trace_state: self.trace_state.str(row, schema::TRACE_STATE)?.to_owned(),
            flags: self.flags.value(row),
            name: self.name.str(row, schema::NAME)?.into(),
            kind: kind_from_u8(self.kind.value(row))?,
            start,
            end: UnixNanos(start.0.wrapping_add(self.duration.value(row))),
            attributes: self.attributes(row)?,
            dropped_attributes_count: self.dropped_attributes.value(row),
            events: match self.events.get(row) {
                Some(b) => codec::decode_events(b, start)?,
                None => Vec::new(),
            },
            dropped_events_count: self.dropped_events.value(row),
            links: match self.links.get(row) {
                Some(b) => codec::decode_links(b)?,
                None => Vec::new(),
            },
            dropped_links_count: self.dropped_links.value(row),
            status: Status {
                code: status_from_u8(self.status_code.value(row))?,
                message: self
                    .status_message
                    .str(row, schema::STATUS_MESSAGE)?
                    .to_owned(),
            },
            resource,
            scope,
        };
        Ok((span, parent_at(self.parent_index, self.parent_span_id, row)))
    }

    fn attributes(&self, row: usize) -> Result<Vec<KeyValue>, BlockError> {
        let layout = self
            .attr_layout
            .get(row)
            .ok_or_else(|| BlockError::corrupt("column attr_layout", "unexpected null"))?;
        let generic = match self.attrs.get(row) {
            Some(b) => codec::decode_attrs(b, "attrs column")?,
            None => Vec::new(),
        };
        let mut generic = generic.into_iter();
        let mut out = Vec::with_capacity(layout.len());
        for &slot in layout {
            if slot == LAYOUT_GENERIC {
                out.push(generic.next().ok_or_else(|| {
                    BlockError::corrupt("column attrs", "fewer entries than attr_layout says")
                })?);
                continue;
            }
            let i = usize::from(slot - 1);
            let col =
                self.typed.cols.columns.get(i).ok_or_else(|| {
                    BlockError::corrupt("column attr_layout", format!("slot {slot}"))
                })?;
            let value = self.typed.value(i, row)?.ok_or_else(|| {
                BlockError::corrupt(format!("column {}", col.column), "unexpected null")
            })?;
            out.push(KeyValue::new(col.key.clone(), value));
        }
        if generic.next().is_some() {
            return Err(BlockError::corrupt(
                "column attrs",
                "more entries than attr_layout says",
            ));
        }
        Ok(out)
    }
}

/// Collects rows trace by trace and resolves parent ordinals once a trace is complete. Rows
/// must arrive in file order, and every row of a trace that is pushed must be pushed.
#[derive(Default)]
pub(crate) struct TraceAssembler {
    current: Vec<(Span, ParentRef)>,
    pub(crate) out: Vec<Span>,
}

impl TraceAssembler {
    pub(crate) fn push(&mut self, span: Span, parent: ParentRef) -> Result<(), BlockError> {
        if self
            .current
            .first()
            .is_some_and(|(s, _)| s.trace_id != span.trace_id)
        {
            self.flush()?;
        }
        self.current.push((span, parent));
        Ok(())
    }

    pub(crate) fn flush(&mut self) -> Result<(), BlockError> {
        let ids: Vec<SpanId> = self.current.iter().map(|(s, _)| s.span_id).collect();
        for (mut span, parent) in self.current.drain(..) {
            span.parent_span_id = match parent {
                ParentRef::None => None,
                ParentRef::External(p) => Some(p),
                ParentRef::Ordinal(i) => Some(*ids.get(i as usize).ok_or_else(|| {
                    BlockError::corrupt(
                        "column parent_index",
                        format!("ordinal {i} in a trace of {} spans", ids.len()),
                    )
                })?),
            };
            self.out.push(span);
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<Vec<Span>, BlockError> {
        self.flush()?;
        Ok(self.out)
    }
}
