//! Spans → Parquet bytes.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BinaryDictionaryBuilder, FixedSizeBinaryBuilder, Int64Builder,
    StringDictionaryBuilder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow::datatypes::{Int32Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use faultline_model::{AttributeValue, KeyValue, Span, SpanId};
use parquet::arrow::ArrowWriter;

use crate::codec;
use crate::schema::{arrow_schema, BlockSettings, DedicatedType, DEDICATED};
use crate::BlockError;

/// `attr_layout` byte meaning "the next entry of the generic `attrs` list"; byte `i + 1` means
/// dedicated column `i`.
pub(crate) const LAYOUT_GENERIC: u8 = 0;

enum DedicatedBuilder {
    Str(StringDictionaryBuilder<Int32Type>),
    Int(Int64Builder),
}

/// Column builders for one row group.
struct RowGroupBuilder {
    schema: SchemaRef,
    rows: usize,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent_index: UInt32Builder,
    parent_span_id: FixedSizeBinaryBuilder,
    start: UInt64Builder,
    duration: UInt64Builder,
    service: StringDictionaryBuilder<Int32Type>,
    name: StringDictionaryBuilder<Int32Type>,
    kind: UInt8Builder,
    status_code: UInt8Builder,
    status_message: StringDictionaryBuilder<Int32Type>,
    flags: UInt32Builder,
    trace_state: StringDictionaryBuilder<Int32Type>,
    resource: BinaryDictionaryBuilder<Int32Type>,
    scope: BinaryDictionaryBuilder<Int32Type>,
    attr_layout: BinaryDictionaryBuilder<Int32Type>,
    attrs: BinaryBuilder,
    events: BinaryBuilder,
    links: BinaryBuilder,
    dropped_attributes: UInt32Builder,
    dropped_events: UInt32Builder,
    dropped_links: UInt32Builder,
    dedicated: Vec<DedicatedBuilder>,
    /// Encoded resources and scopes by `Arc` address: spans of one batch share them, so each is
    /// encoded once. The spans outlive this builder, so addresses are not reused meanwhile.
    resource_cache: HashMap<usize, Vec<u8>>,
    scope_cache: HashMap<usize, Vec<u8>>,
}

impl RowGroupBuilder {
    fn new() -> Self {
        Self {
            schema: arrow_schema(),
            rows: 0,
            trace_id: FixedSizeBinaryBuilder::new(16),
            span_id: FixedSizeBinaryBuilder::new(8),
            parent_index: UInt32Builder::new(),
            parent_span_id: FixedSizeBinaryBuilder::new(8),
            start: UInt64Builder::new(),
            duration: UInt64Builder::new(),
            service: StringDictionaryBuilder::new(),
            name: StringDictionaryBuilder::new(),
            kind: UInt8Builder::new(),
            status_code: UInt8Builder::new(),
            status_message: StringDictionaryBuilder::new(),
            flags: UInt32Builder::new(),
            trace_state: StringDictionaryBuilder::new(),
            resource: BinaryDictionaryBuilder::new(),
            scope: BinaryDictionaryBuilder::new(),
            attr_layout: BinaryDictionaryBuilder::new(),
            attrs: BinaryBuilder::new(),
            events: BinaryBuilder::new(),
            links: BinaryBuilder::new(),
            dropped_attributes: UInt32Builder::new(),
            dropped_events: UInt32Builder::new(),
            dropped_links: UInt32Builder::new(),
            dedicated: DEDICATED
                .iter()
                .map(|(_, ty)| match ty {
                    DedicatedType::Str => DedicatedBuilder::Str(StringDictionaryBuilder::new()),
                    DedicatedType::Int => DedicatedBuilder::Int(Int64Builder::new()),
                })
                .collect(),
            resource_cache: HashMap::new(),
            scope_cache: HashMap::new(),
        }
    }

    /// Appends the spans of one trace (all with the same trace ID, in row order).
    fn append_trace(&mut self, trace: &[Span]) -> Result<(), BlockError> {
        // First row of each span ID within the trace: the parent ordinal points there.
        let mut position: HashMap<SpanId, u32> = HashMap::with_capacity(trace.len());
        for (i, s) in trace.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| {
                BlockError::Settings("a trace with over 4 billion spans cannot be stored".into())
            })?;
            position.entry(s.span_id).or_insert(i);
        }
        for s in trace {
            self.append_span(s, &position)?;
        }
        Ok(())
    }

    fn append_span(&mut self, s: &Span, position: &HashMap<SpanId, u32>) -> Result<(), BlockError> {
        self.rows += 1;
        self.trace_id.append_value(s.trace_id.0)?;
        self.span_id.append_value(s.span_id.0)?;
        match s.parent_span_id {
            None => {
                self.parent_index.append_null();
                self.parent_span_id.append_null();
            }
            Some(p) => match position.get(&p) {
                Some(&i) => {
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
        self.service.append_value(s.service_name());
        self.name.append_value(&s.name);
        self.kind.append_value(s.kind as u8);
        self.status_code.append_value(s.status.code as u8);
        self.status_message.append_value(&s.status.message);
        self.flags.append_value(s.flags);
        self.trace_state.append_value(&s.trace_state);

        let key = Arc::as_ptr(&s.resource) as usize;
        let bytes = match self.resource_cache.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(codec::encode_resource(&s.resource)?),
        };
        self.resource.append_value(bytes);
        let key = Arc::as_ptr(&s.scope) as usize;
        let bytes = match self.scope_cache.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(codec::encode_scope(&s.scope)?),
        };
        self.scope.append_value(bytes);

        self.append_attributes(&s.attributes)?;
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

    /// Splits attributes into dedicated columns and the generic list, recording the original
    /// order in `attr_layout` so that the list is rebuilt exactly.
    fn append_attributes(&mut self, attrs: &[KeyValue]) -> Result<(), BlockError> {
        let mut layout = Vec::with_capacity(attrs.len());
        let mut used = vec![false; DEDICATED.len()];
        let mut generic: Vec<&KeyValue> = Vec::new();
        for kv in attrs {
            let slot = crate::schema::dedicated_index(&kv.key).filter(|&i| {
                !used[i]
                    && matches!(
                        (DEDICATED[i].1, &kv.value),
                        (DedicatedType::Str, AttributeValue::String(_))
                            | (DedicatedType::Int, AttributeValue::Int(_))
                    )
            });
            match slot {
                Some(i) => {
                    used[i] = true;
                    // DEDICATED has far fewer than 255 entries, so `i + 1` fits in a byte.
                    layout.push((i + 1) as u8);
                    match (&mut self.dedicated[i], &kv.value) {
                        (DedicatedBuilder::Str(b), AttributeValue::String(v)) => b.append_value(v),
                        (DedicatedBuilder::Int(b), AttributeValue::Int(v)) => b.append_value(*v),
                        _ => {}
                    }
                }
                None => {
                    layout.push(LAYOUT_GENERIC);
                    generic.push(kv);
                }
            }
        }
        for (i, b) in self.dedicated.iter_mut().enumerate() {
            if !used[i] {
                match b {
                    DedicatedBuilder::Str(b) => b.append_null(),
                    DedicatedBuilder::Int(b) => b.append_null(),
                }
            }
        }
        self.attr_layout.append_value(&layout);
        if generic.is_empty() {
            self.attrs.append_null();
        } else {
            self.attrs.append_value(codec::encode_attrs(generic)?);
        }
        Ok(())
    }

    /// Takes the rows appended so far as one record batch.
    fn finish(&mut self) -> Result<RecordBatch, BlockError> {
        self.rows = 0;
        self.resource_cache.clear();
        self.scope_cache.clear();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_index.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.resource.finish()),
            Arc::new(self.scope.finish()),
            Arc::new(self.attr_layout.finish()),
            Arc::new(self.attrs.finish()),
            Arc::new(self.events.finish()),
            Arc::new(self.links.finish()),
            Arc::new(self.dropped_attributes.finish()),
            Arc::new(self.dropped_events.finish()),
            Arc::new(self.dropped_links.finish()),
        ];
        for b in &mut self.dedicated {
            cols.push(match b {
                DedicatedBuilder::Str(b) => Arc::new(b.finish()),
                DedicatedBuilder::Int(b) => Arc::new(b.finish()),
            });
        }
        Ok(RecordBatch::try_new(self.schema.clone(), cols)?)
    }
}

/// Encodes spans, already sorted by (trace ID, start), as a Parquet file. Row groups are cut
/// only at trace boundaries, so every trace lies within one row group: readers can then resolve
/// parent ordinals and skip row groups without ever seeing half a trace.
pub(crate) fn encode(spans: &[Span], settings: &BlockSettings) -> Result<Vec<u8>, BlockError> {
    let props = settings.writer_properties()?;
    let mut builder = RowGroupBuilder::new();
    let mut writer = ArrowWriter::try_new(Vec::new(), builder.schema.clone(), Some(props))?;
    for trace in spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
        builder.append_trace(trace)?;
        if builder.rows >= settings.row_group_rows {
            writer.write(&builder.finish()?)?;
            writer.flush()?;
        }
    }
    if builder.rows > 0 {
        writer.write(&builder.finish()?)?;
    }
    Ok(writer.into_inner()?)
}
