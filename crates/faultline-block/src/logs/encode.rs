//! Encoding log records as a Parquet file, and decoding them back.
//!
//! Rows are sorted by trace ID then time, records without a trace ID last (by time), so the
//! records of one trace are adjacent and the `trace_id` column's row-group and page statistics
//! narrow a lookup to a few pages. Service, severity text, event name, resource and scope are
//! dictionary-encoded (they repeat on almost every row); body and attributes use the span
//! blocks' binary value codec (`codec.rs`) and zstd.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, FixedSizeBinaryArray, FixedSizeBinaryBuilder,
    Int32Array, Int32Builder, StringArray, StringBuilder, UInt32Array, UInt32Builder, UInt64Array,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use faultline_model::{InstrumentationScope, LogRecord, Resource, SpanId, TraceId, UnixNanos};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::codec;
use crate::BlockError;

pub(crate) const TRACE_ID: &str = "trace_id";
pub(crate) const SPAN_ID: &str = "span_id";
pub(crate) const TIME: &str = "time_unix_nano";
pub(crate) const OBSERVED_TIME: &str = "observed_time_unix_nano";
pub(crate) const SEVERITY_NUMBER: &str = "severity_number";
pub(crate) const SEVERITY_TEXT: &str = "severity_text";
pub(crate) const SERVICE: &str = "service_name";
pub(crate) const BODY: &str = "body";
pub(crate) const ATTRS: &str = "attrs";
pub(crate) const FLAGS: &str = "flags";
pub(crate) const DROPPED_ATTRIBUTES: &str = "dropped_attributes_count";
pub(crate) const EVENT_NAME: &str = "event_name";
pub(crate) const RESOURCE: &str = "resource";
pub(crate) const SCOPE: &str = "scope";

/// How log blocks are written.
#[derive(Clone, Debug)]
pub struct LogBlockSettings {
    /// Rows per row group.
    pub row_group_rows: usize,
    /// Rows per data page; small pages let trace lookups read little.
    pub data_page_row_limit: usize,
    /// zstd level (1..=22).
    pub zstd_level: i32,
}

impl Default for LogBlockSettings {
    fn default() -> Self {
        Self {
            row_group_rows: 64 * 1024,
            data_page_row_limit: 4 * 1024,
            zstd_level: 3,
        }
    }
}

/// The Arrow schema of a log block.
pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(TRACE_ID, DataType::FixedSizeBinary(16), true),
        Field::new(SPAN_ID, DataType::FixedSizeBinary(8), true),
        Field::new(TIME, DataType::UInt64, false),
        Field::new(OBSERVED_TIME, DataType::UInt64, false),
        Field::new(SEVERITY_NUMBER, DataType::Int32, false),
        Field::new(SEVERITY_TEXT, DataType::Utf8, false),
        Field::new(SERVICE, DataType::Utf8, false),
        Field::new(BODY, DataType::Binary, false),
        Field::new(ATTRS, DataType::Binary, false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(DROPPED_ATTRIBUTES, DataType::UInt32, false),
        Field::new(EVENT_NAME, DataType::Utf8, false),
        Field::new(RESOURCE, DataType::Binary, false),
        Field::new(SCOPE, DataType::Binary, false),
    ]))
}

fn properties(s: &LogBlockSettings) -> Result<WriterProperties, BlockError> {
    if s.row_group_rows == 0 || s.data_page_row_limit == 0 {
        return Err(BlockError::Settings(
            "row group and page sizes must be positive".into(),
        ));
    }
    let level = ZstdLevel::try_new(s.zstd_level)
        .map_err(|e| BlockError::Settings(format!("zstd level {}: {e}", s.zstd_level)))?;
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(s.row_group_rows))
        .set_data_page_row_count_limit(s.data_page_row_limit)
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from(TRACE_ID), EnabledStatistics::Page);
    for col in [SEVERITY_TEXT, SERVICE, EVENT_NAME, RESOURCE, SCOPE] {
        b = b.set_column_dictionary_enabled(ColumnPath::from(col), true);
    }
    Ok(b.build())
}

/// Block order: traced records by (trace ID, time), then untraced ones by time.
pub(crate) fn sort_key(r: &LogRecord) -> (bool, TraceId, UnixNanos) {
    (r.trace_id.is_none(), r.trace_id.unwrap_or_default(), r.time)
}

/// Encodes records already in block order.
pub(crate) fn encode(records: &[&LogRecord], s: &LogBlockSettings) -> Result<Vec<u8>, BlockError> {
    let props = properties(s)?;
    let schema = schema();
    let mut writer = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props))?;
    // Resources and scopes are shared per batch; encode each distinct one once.
    let mut resources: HashMap<*const Resource, Vec<u8>> = HashMap::new();
    let mut scopes: HashMap<*const InstrumentationScope, Vec<u8>> = HashMap::new();
    for chunk in records.chunks(s.row_group_rows) {
        let n = chunk.len();
        let mut trace = FixedSizeBinaryBuilder::with_capacity(n, 16);
        let mut span = FixedSizeBinaryBuilder::with_capacity(n, 8);
        let mut time = UInt64Builder::with_capacity(n);
        let mut observed = UInt64Builder::with_capacity(n);
        let mut sev = Int32Builder::with_capacity(n);
        let mut sev_text = StringBuilder::new();
        let mut service = StringBuilder::new();
        let mut body = BinaryBuilder::new();
        let mut attrs = BinaryBuilder::new();
        let mut flags = UInt32Builder::with_capacity(n);
        let mut dropped = UInt32Builder::with_capacity(n);
        let mut event = StringBuilder::new();
        let mut resource = BinaryBuilder::new();
        let mut scope = BinaryBuilder::new();
        let mut cell = Vec::new();
        for r in chunk {
            match r.trace_id {
                Some(t) => trace.append_value(t.0)?,
                None => trace.append_null(),
            }
            match r.span_id {
                Some(id) => span.append_value(id.0)?,
                None => span.append_null(),
            }
            time.append_value(r.time.0);
            observed.append_value(r.observed_time.0);
            sev.append_value(r.severity_number);
            sev_text.append_value(&r.severity_text);
            service.append_value(r.service_name());
            cell.clear();
            codec::put_value(&mut cell, &r.body, 0)?;
            body.append_value(&cell);
            attrs.append_value(codec::encode_attrs(r.attributes.iter())?);
            flags.append_value(r.flags);
            dropped.append_value(r.dropped_attributes_count);
            event.append_value(&r.event_name);
            let res = match resources.entry(Arc::as_ptr(&r.resource)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(codec::encode_resource(&r.resource)?)
                }
            };
            resource.append_value(res);
            let sc = match scopes.entry(Arc::as_ptr(&r.scope)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(codec::encode_scope(&r.scope)?)
                }
            };
            scope.append_value(sc);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(trace.finish()),
            Arc::new(span.finish()),
            Arc::new(time.finish()),
            Arc::new(observed.finish()),
            Arc::new(sev.finish()),
            Arc::new(sev_text.finish()),
            Arc::new(service.finish()),
            Arc::new(body.finish()),
            Arc::new(attrs.finish()),
            Arc::new(flags.finish()),
            Arc::new(dropped.finish()),
            Arc::new(event.finish()),
            Arc::new(resource.finish()),
            Arc::new(scope.finish()),
        ];
        writer.write(&RecordBatch::try_new(Arc::clone(&schema), columns)?)?;
    }
    Ok(writer.into_inner()?)
}

/// Typed access to a decoded batch's columns.
pub(crate) struct LogColumns<'a> {
    trace: &'a FixedSizeBinaryArray,
    span: &'a FixedSizeBinaryArray,
    time: &'a UInt64Array,
    observed: &'a UInt64Array,
    sev: &'a Int32Array,
    sev_text: &'a StringArray,
    body: &'a BinaryArray,
    attrs: &'a BinaryArray,
    flags: &'a UInt32Array,
    dropped: &'a UInt32Array,
    event: &'a StringArray,
    resource: &'a BinaryArray,
    scope: &'a BinaryArray,
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, BlockError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            BlockError::corrupt("log block", format!("column {name} missing or mistyped"))
        })
}

/// Resources and scopes decoded once per distinct cell.
#[derive(Default)]
pub(crate) struct LogInterner {
    resources: HashMap<Vec<u8>, Arc<Resource>>,
    scopes: HashMap<Vec<u8>, Arc<InstrumentationScope>>,
}

impl<'a> LogColumns<'a> {
    pub(crate) fn new(batch: &'a RecordBatch) -> Result<Self, BlockError> {
        Ok(Self {
            trace: column(batch, TRACE_ID)?,
            span: column(batch, SPAN_ID)?,
            time: column(batch, TIME)?,
            observed: column(batch, OBSERVED_TIME)?,
            sev: column(batch, SEVERITY_NUMBER)?,
            sev_text: column(batch, SEVERITY_TEXT)?,
            body: column(batch, BODY)?,
            attrs: column(batch, ATTRS)?,
            flags: column(batch, FLAGS)?,
            dropped: column(batch, DROPPED_ATTRIBUTES)?,
            event: column(batch, EVENT_NAME)?,
            resource: column(batch, RESOURCE)?,
            scope: column(batch, SCOPE)?,
        })
    }

    /// The trace ID of row `i`.
    pub(crate) fn trace_id(&self, i: usize) -> Option<TraceId> {
        if self.trace.is_null(i) {
            return None;
        }
        TraceId::from_bytes(self.trace.value(i)).ok()
    }

    /// The time of row `i`.
    pub(crate) fn time(&self, i: usize) -> UnixNanos {
        UnixNanos(self.time.value(i))
    }

    /// Decodes row `i`.
    pub(crate) fn record(
        &self,
        i: usize,
        interner: &mut LogInterner,
    ) -> Result<LogRecord, BlockError> {
        let span_id = if self.span.is_null(i) {
            None
        } else {
            SpanId::from_bytes(self.span.value(i)).ok()
        };
        let body_cell = self.body.value(i);
        let body = {
            let mut r = codec::Reader::new(body_cell, "log body column");
            let v = r.value(0)?;
            r.finish()?;
            v
        };
        let res_cell = self.resource.value(i);
        let resource = match interner.resources.get(res_cell) {
            Some(r) => Arc::clone(r),
            None => {
                let r = codec::decode_resource(res_cell)?;
                interner.resources.insert(res_cell.to_vec(), Arc::clone(&r));
                r
            }
        };
        let scope_cell = self.scope.value(i);
        let scope = match interner.scopes.get(scope_cell) {
            Some(s) => Arc::clone(s),
            None => {
                let s = codec::decode_scope(scope_cell)?;
                interner.scopes.insert(scope_cell.to_vec(), Arc::clone(&s));
                s
            }
        };
        Ok(LogRecord {
            time: self.time(i),
            observed_time: UnixNanos(self.observed.value(i)),
            trace_id: self.trace_id(i),
            span_id,
            flags: self.flags.value(i),
            severity_number: self.sev.value(i),
            severity_text: self.sev_text.value(i).to_owned(),
            body,
            attributes: codec::decode_attrs(self.attrs.value(i), "log attrs column")?,
            dropped_attributes_count: self.dropped.value(i),
            event_name: self.event.value(i).to_owned(),
            resource,
            scope,
        })
    }
}
