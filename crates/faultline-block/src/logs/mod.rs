//! Log blocks: log records stored as one Parquet file (`data.parquet`) plus `meta.json`, in
//! their own directory tree (the caller passes a root such as `logs/`), with the same commit
//! protocol as span blocks (data first, `meta.json` last; delete meta first).
//!
//! `docs/storage.md` ("Log blocks") describes the columns and the meta file.

mod encode;
mod meta;
mod read;

use std::collections::BTreeSet;
use std::sync::Arc;

use faultline_model::{LogRecord, TraceId, UnixNanos};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub use encode::LogBlockSettings;
pub use meta::{LogBlockMeta, LOG_FORMAT_VERSION};
pub use read::{read_all_logs, read_logs_of_traces, search_logs};

use crate::blocks::{data_path, meta_path, read_metas};
use crate::{BlockError, BlockId, BlockInfo, TraceBloom};

/// Records a log block can be written from in place (an in-memory head being flushed).
pub trait LogSource: Send + Sync + 'static {
    /// The records to write, in any order; each exactly once.
    fn records(&self) -> Vec<&LogRecord>;
}

impl LogSource for Vec<LogRecord> {
    fn records(&self) -> Vec<&LogRecord> {
        self.iter().collect()
    }
}

/// Sorts the records into block order, writes `<root>/<id>/data.parquet`, then
/// `<root>/<id>/meta.json` as the commit point.
pub async fn write_log_block<T: LogSource>(
    store: &dyn ObjectStore,
    root: &Path,
    source: Arc<T>,
    info: BlockInfo,
    settings: &LogBlockSettings,
) -> Result<LogBlockMeta, BlockError> {
    let settings = settings.clone();
    let (data, mut meta) = tokio::task::spawn_blocking(move || {
        let mut records = source.records();
        if records.is_empty() {
            return Err(BlockError::Empty);
        }
        records.sort_by_key(|r| encode::sort_key(r));
        let data = encode::encode(&records, &settings)?;
        Ok((data, stats(&records)))
    })
    .await
    .map_err(|e| BlockError::Task(e.to_string()))??;
    meta.data_bytes = data.len() as u64;
    meta.wal_through = info.wal_through;
    meta.sources = info.sources;
    meta.level = info.level;
    store
        .put(&data_path(root, &meta.id), PutPayload::from(data))
        .await?;
    store
        .put(
            &meta_path(root, &meta.id),
            PutPayload::from(meta.to_json()?),
        )
        .await?;
    Ok(meta)
}

/// Meta of records in block order (non-empty).
fn stats(records: &[&LogRecord]) -> LogBlockMeta {
    let traced: Vec<TraceId> = records.iter().filter_map(|r| r.trace_id).collect();
    let mut distinct = traced.clone();
    distinct.dedup();
    let mut bloom = TraceBloom::with_capacity(distinct.len());
    for t in &distinct {
        bloom.insert(t);
    }
    let services: BTreeSet<&str> = records.iter().map(|r| r.service_name()).collect();
    LogBlockMeta {
        id: BlockId::new(),
        format_version: LOG_FORMAT_VERSION,
        record_count: records.len() as u64,
        traced_count: traced.len() as u64,
        data_bytes: 0,
        min_time: records.iter().map(|r| r.time).min().unwrap_or_default(),
        max_time: records.iter().map(|r| r.time).max().unwrap_or_default(),
        min_trace_id: traced.first().copied().unwrap_or_default(),
        max_trace_id: traced.last().copied().unwrap_or_default(),
        services: services.into_iter().map(str::to_owned).collect(),
        max_severity: records.iter().map(|r| r.severity_number).max().unwrap_or(0),
        trace_bloom: bloom,
        wal_through: 0,
        sources: Vec::new(),
        level: 0,
        created_at: UnixNanos::now(),
    }
}

/// Committed log blocks under `root`, sorted by ID; unreadable metas are skipped with a
/// warning.
pub async fn list_log_blocks(
    store: &dyn ObjectStore,
    root: &Path,
) -> Result<Vec<LogBlockMeta>, BlockError> {
    read_metas(store, root, LogBlockMeta::from_json, |m| &m.id).await
}

#[cfg(test)]
mod tests;
