//! The column layout of `data.parquet` and the writer settings that go with it.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::BlockError;

/// Version of the column layout; bumped whenever a reader of the old layout would misread.
pub const FORMAT_VERSION: u32 = 1;

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

/// Value type of a dedicated attribute column.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum DedicatedType {
    Str,
    Int,
}

/// Semantic-convention keys that get their own typed column (`attr.<key>`). A span attribute
/// goes there when its key matches, its value has the column's type, and it is the first such
/// key on the span; everything else stays in the generic `attrs` list. The order is part of the
/// format: `attr_layout` refers to these by position.
pub(crate) const DEDICATED: &[(&str, DedicatedType)] = &[
    ("http.request.method", DedicatedType::Str),
    ("http.route", DedicatedType::Str),
    ("http.response.status_code", DedicatedType::Int),
    ("url.path", DedicatedType::Str),
    ("url.full", DedicatedType::Str),
    ("url.scheme", DedicatedType::Str),
    ("url.query", DedicatedType::Str),
    ("server.address", DedicatedType::Str),
    ("server.port", DedicatedType::Int),
    ("client.address", DedicatedType::Str),
    ("client.port", DedicatedType::Int),
    ("network.peer.address", DedicatedType::Str),
    ("network.peer.port", DedicatedType::Int),
    ("network.protocol.name", DedicatedType::Str),
    ("network.protocol.version", DedicatedType::Str),
    ("network.transport", DedicatedType::Str),
    ("user_agent.original", DedicatedType::Str),
    ("http.request.body.size", DedicatedType::Int),
    ("http.response.body.size", DedicatedType::Int),
    ("rpc.system", DedicatedType::Str),
    ("rpc.service", DedicatedType::Str),
    ("rpc.method", DedicatedType::Str),
    ("rpc.grpc.status_code", DedicatedType::Int),
    ("db.system.name", DedicatedType::Str),
    ("db.system", DedicatedType::Str),
    ("db.namespace", DedicatedType::Str),
    ("db.collection.name", DedicatedType::Str),
    ("db.operation.name", DedicatedType::Str),
    ("db.query.text", DedicatedType::Str),
    ("db.statement", DedicatedType::Str),
    ("db.response.returned_rows", DedicatedType::Int),
    ("messaging.system", DedicatedType::Str),
    ("messaging.destination.name", DedicatedType::Str),
    ("messaging.operation.type", DedicatedType::Str),
    ("messaging.batch.message_count", DedicatedType::Int),
    ("peer.service", DedicatedType::Str),
    ("error.type", DedicatedType::Str),
    ("exception.type", DedicatedType::Str),
    ("http.method", DedicatedType::Str),
    ("http.status_code", DedicatedType::Int),
    ("http.url", DedicatedType::Str),
    ("http.target", DedicatedType::Str),
    ("net.peer.name", DedicatedType::Str),
    ("thread.id", DedicatedType::Int),
    ("thread.name", DedicatedType::Str),
    ("code.function.name", DedicatedType::Str),
];

/// Column name of dedicated attribute `i`.
pub(crate) fn dedicated_column(key: &str) -> String {
    format!("attr.{key}")
}

/// Position of `key` in [`DEDICATED`].
pub(crate) fn dedicated_index(key: &str) -> Option<usize> {
    DEDICATED.iter().position(|(k, _)| *k == key)
}

fn dict_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn dict_binary() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary))
}

/// Columns that are written with Parquet dictionary encoding (strings and low-cardinality
/// values); IDs, timestamps and durations are not, as dictionaries only bloat random data.
fn dictionary_columns() -> Vec<String> {
    let mut cols: Vec<String> = [
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
    cols.extend(DEDICATED.iter().map(|(k, _)| dedicated_column(k)));
    cols
}

/// The Arrow schema of a block's data file.
pub(crate) fn arrow_schema() -> SchemaRef {
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
    for (key, ty) in DEDICATED {
        let dt = match ty {
            DedicatedType::Str => dict_utf8(),
            DedicatedType::Int => DataType::Int64,
        };
        fields.push(Field::new(dedicated_column(key), dt, true));
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
    pub(crate) fn writer_properties(&self) -> Result<WriterProperties, BlockError> {
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
        for col in dictionary_columns() {
            b = b.set_column_dictionary_enabled(ColumnPath::from(col), true);
        }
        Ok(b.build())
    }
}
