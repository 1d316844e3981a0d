//! Reading log blocks: the records of some traces, whole blocks, and filtered searches.
//!
//! Reads go through parquet's `ParquetObjectReader` (ranged `get`s on the object store), which
//! parquet 60 deprecates in favour of hand-written `AsyncFileReader`s; it is still the simplest
//! correct reader, so its use is allowed here until the span blocks' `DataFile` is shared.
#![allow(deprecated)]

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, FixedSizeBinaryArray};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use faultline_model::log::LogQuery;
use faultline_model::{LogRecord, TraceId};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{ArrowPredicateFn, ArrowReaderOptions, RowFilter};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::PageIndexPolicy;

use super::encode::{LogColumns, LogInterner, TRACE_ID};
use super::LogBlockMeta;
use crate::blocks::data_path;
use crate::BlockError;

type Builder = ParquetRecordBatchStreamBuilder<ParquetObjectReader>;

async fn open(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
    meta: &LogBlockMeta,
) -> Result<Builder, BlockError> {
    let reader = ParquetObjectReader::new(Arc::clone(store), data_path(root, &meta.id))
        .with_file_size(meta.data_bytes);
    Ok(ParquetRecordBatchStreamBuilder::new_with_options(
        reader,
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
    )
    .await?)
}

fn trace_leaf(b: &Builder) -> Result<usize, BlockError> {
    b.metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == TRACE_ID)
        .ok_or_else(|| BlockError::corrupt("log block", "no trace_id column"))
}

/// Decodes every row of `batches` passing `keep`.
async fn collect(
    builder: Builder,
    mut keep: impl FnMut(&LogColumns<'_>, usize) -> bool,
) -> Result<Vec<LogRecord>, BlockError> {
    let mut stream = builder.build()?;
    let mut interner = LogInterner::default();
    let mut out = Vec::new();
    while let Some(batch) = stream.try_next().await? {
        let cols = LogColumns::new(&batch)?;
        for i in 0..batch.num_rows() {
            if keep(&cols, i) {
                out.push(cols.record(i, &mut interner)?);
            }
        }
    }
    Ok(out)
}

/// The records of the given traces, in block order (trace, then time). Row groups whose
/// `trace_id` statistics rule every wanted ID out are not read, and inside the rest only rows
/// of a wanted trace are decoded beyond their `trace_id`.
pub async fn read_logs_of_traces(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
    meta: &LogBlockMeta,
    ids: &[TraceId],
) -> Result<Vec<LogRecord>, BlockError> {
    let wanted: BTreeSet<TraceId> = ids
        .iter()
        .filter(|id| meta.may_contain_trace(id))
        .copied()
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let builder = open(store, root, meta).await?;
    let leaf = trace_leaf(&builder)?;
    let groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| {
            let stats = rg.column(leaf).statistics();
            let (Some(min), Some(max)) = (
                stats.and_then(|s| s.min_bytes_opt()),
                stats.and_then(|s| s.max_bytes_opt()),
            ) else {
                // No statistics: a group of untraced records only, or a writer that kept none.
                return stats.is_none();
            };
            wanted
                .iter()
                .any(|id| id.0.as_slice() >= min && id.0.as_slice() <= max)
        })
        .map(|(i, _)| i)
        .collect();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mask = ProjectionMask::leaves(builder.metadata().file_metadata().schema_descr(), [leaf]);
    let filter_ids = wanted.clone();
    let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .ok_or_else(|| ArrowError::SchemaError("trace_id is not 16-byte binary".into()))?;
        Ok((0..col.len())
            .map(|i| {
                Some(
                    !col.is_null(i)
                        && TraceId::from_bytes(col.value(i)).is_ok_and(|t| filter_ids.contains(&t)),
                )
            })
            .collect::<BooleanArray>())
    });
    let builder = builder
        .with_row_groups(groups)
        .with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
    collect(builder, |cols, i| {
        cols.trace_id(i).is_some_and(|t| wanted.contains(&t))
    })
    .await
}

/// Every record of the block (for compaction).
pub async fn read_all_logs(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
    meta: &LogBlockMeta,
) -> Result<Vec<LogRecord>, BlockError> {
    collect(open(store, root, meta).await?, |_, _| true).await
}

/// The newest `query.limit` records of the block that match `query` (whose text must be
/// normalised), newest first.
pub async fn search_logs(
    store: &Arc<dyn ObjectStore>,
    root: &Path,
    meta: &LogBlockMeta,
    query: &LogQuery,
) -> Result<Vec<LogRecord>, BlockError> {
    if !meta.may_match(query) {
        return Ok(Vec::new());
    }
    if let Some(t) = query.trace_id {
        let mut out: Vec<LogRecord> = read_logs_of_traces(store, root, meta, &[t])
            .await?
            .into_iter()
            .filter(|r| query.matches(r))
            .collect();
        newest_first(&mut out, query.limit);
        return Ok(out);
    }
    let builder = open(store, root, meta).await?;
    let mut out = Vec::new();
    let mut stream = builder.build()?;
    let mut interner = LogInterner::default();
    while let Some(batch) = stream.try_next().await? {
        let cols = LogColumns::new(&batch)?;
        for i in 0..batch.num_rows() {
            let t = cols.time(i);
            if t < query.start || t > query.end {
                continue;
            }
            let r = cols.record(i, &mut interner)?;
            if query.matches(&r) {
                out.push(r);
            }
        }
        // Keep memory bounded on large blocks: only the newest `limit` can be returned.
        if out.len() > query.limit.saturating_mul(2).max(1024) {
            newest_first(&mut out, query.limit);
        }
    }
    newest_first(&mut out, query.limit);
    Ok(out)
}

/// Sorts newest first and keeps `limit`.
pub(crate) fn newest_first(records: &mut Vec<LogRecord>, limit: usize) {
    records.sort_by_key(|r| std::cmp::Reverse(r.time));
    records.truncate(limit);
}
