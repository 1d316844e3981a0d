//! The log store: log records take the same path as spans (WAL with group commit → in-memory
//! head → Parquet blocks → compaction and retention), with their own WAL directory
//! (`<data_dir>/wal-logs`, records of kind 2) and their own block tree (`logs/` in the block
//! store, the format of `faultline_block::logs`).
//!
//! It shares the span store's machinery rather than copying it: the WAL writer, record codec,
//! replay and segment deletion are the same code, and the commit points are the same (fsynced
//! WAL record; `meta.json`; a compacted block's `sources`), so the recovery rules of
//! `lifecycle` hold here unchanged. What differs is the head (a record list indexed by trace)
//! and the block codec.

mod head;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use faultline_block::logs::{
    list_log_blocks, read_all_logs, read_logs_of_traces, search_logs, write_log_block,
    LogBlockMeta, LogBlockSettings,
};
use faultline_block::{delete_block, list_orphans, BlockId, BlockInfo};
use faultline_model::log::LogQuery;
use faultline_model::otlp_logs::{logs_from_otlp, LogLimits, LogsData};
use faultline_model::{LogRecord, TraceId, UnixNanos};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use prost::Message;
use tokio::sync::{watch, Mutex, Notify, RwLock};

use crate::config::{AckMode, StoreConfig, StoreTuning};
use crate::cutting::{cutter, next_round, CutHeads};
use crate::lifecycle::reopen_wal;
use crate::query::QUERY_ATTEMPTS;
use crate::wal::{self, record, RecordKind, Wal};
use crate::StorageError;
use head::{dedup_records, record_bytes, FrozenLogHead, LogHead};

/// Where log blocks live inside the block store.
pub(crate) const LOG_BLOCK_ROOT: &str = "logs";
/// The log WAL's directory inside the data directory.
pub(crate) const LOG_WAL_DIR: &str = "wal-logs";

/// One batch handed to [`LogStore::append`].
#[derive(Clone, Debug)]
pub struct LogBatch {
    /// The records, already validated and limited.
    pub records: Vec<LogRecord>,
    /// An OTLP `LogsData` protobuf that decodes to exactly `records` (the WAL record).
    pub otlp: Bytes,
}

/// Counters of the log store.
#[derive(Clone, Debug, Default)]
pub struct LogStoreStats {
    /// Records in the in-memory head.
    pub head_records: u64,
    /// Bytes accounted to the head and heads being flushed.
    pub in_memory_bytes: u64,
    /// Log blocks.
    pub blocks: u64,
    /// Records in blocks.
    pub block_records: u64,
    /// Bytes of block data files.
    pub block_bytes: u64,
    /// Records replayed from the WAL on open.
    pub wal_replayed_records: u64,
    /// Appends refused as over the memory budget.
    pub appends_refused: u64,
    /// Compactions completed since start.
    pub compactions: u64,
}

struct LogState {
    head: LogHead,
    head_since: Option<Instant>,
    wal_seq: u64,
    flushing: Vec<Arc<FrozenLogHead>>,
    blocks: Vec<Arc<LogBlockMeta>>,
    /// Bumped whenever a block leaves `blocks` (compaction, retention), so that a query whose
    /// block was deleted under it knows to run again rather than fail.
    generation: u64,
}

/// The log store. Opened and owned by [`crate::Store`]; reach it with [`crate::Store::logs`].
pub struct LogStore {
    config: StoreConfig,
    tuning: StoreTuning,
    settings: LogBlockSettings,
    wal_dir: PathBuf,
    wal: Wal,
    root: ObjectPath,
    state: RwLock<LogState>,
    flush_lock: Mutex<()>,
    maintenance_lock: Mutex<()>,
    flush_wanted: Arc<Notify>,
    /// Retired blocks whose deletion failed, retried by maintenance; no compaction runs while
    /// any is left (a merged block must not lose the `sources` entry that supersedes them).
    pending_deletes: Mutex<Vec<BlockId>>,
    in_memory: AtomicUsize,
    replayed: u64,
    refused: AtomicU64,
    compactions: AtomicU64,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Longest an append waits for room in the WAL queue.
const WAL_QUEUE_WAIT: Duration = Duration::from_secs(2);

impl LogStore {
    /// Opens the log store: drops blocks superseded by a committed compaction and half-written
    /// ones, deletes WAL segments already in blocks, replays the rest, starts the background
    /// task.
    pub(crate) async fn open(
        config: StoreConfig,
        tuning: StoreTuning,
    ) -> Result<Arc<Self>, StorageError> {
        let wal_dir = config.data_dir.join(LOG_WAL_DIR);
        std::fs::create_dir_all(&wal_dir).map_err(|e| StorageError::io(&wal_dir, e))?;
        let root = ObjectPath::from(LOG_BLOCK_ROOT);
        let objects = config.block_store.as_ref();
        let all = list_log_blocks(objects, &root).await?;
        let superseded: HashSet<&BlockId> = all.iter().flat_map(|m| m.sources.iter()).collect();
        let wal_through = all.iter().map(|m| m.wal_through).max();
        let mut blocks = Vec::new();
        let mut pending_deletes = Vec::new();
        for meta in &all {
            if superseded.contains(&meta.id) {
                if let Err(e) = delete_block(objects, &root, &meta.id).await {
                    tracing::warn!(block = %meta.id, error = %e, "could not delete a superseded log block");
                    pending_deletes.push(meta.id.clone());
                }
            } else {
                blocks.push(Arc::new(meta.clone()));
            }
        }
        for orphan in list_orphans(objects, &root).await? {
            if let Err(e) = delete_block(objects, &root, &orphan).await {
                tracing::warn!(block = %orphan, error = %e, "could not delete an uncommitted log block");
            }
        }
        let (wal, head, stats, first_seq) =
            reopen_wal(&wal_dir, wal_through, &tuning, replay).await?;
        let in_memory = AtomicUsize::new(head.bytes);
        let store = Arc::new(Self {
            settings: LogBlockSettings::default(),
            config,
            tuning,
            wal_dir,
            wal,
            root,
            state: RwLock::new(LogState {
                head_since: (!head.is_empty()).then(Instant::now),
                head,
                wal_seq: first_seq,
                flushing: Vec::new(),
                blocks,
                generation: 0,
            }),
            flush_lock: Mutex::new(()),
            maintenance_lock: Mutex::new(()),
            flush_wanted: Arc::new(Notify::new()),
            pending_deletes: Mutex::new(pending_deletes),
            in_memory,
            replayed: stats.records,
            refused: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            stop: watch::channel(false).0,
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        let write_wanted = Arc::new(Notify::new());
        let handles = [
            tokio::spawn(cutter(
                Arc::downgrade(&store),
                Arc::clone(&store.flush_wanted),
                Arc::clone(&write_wanted),
                store.stop.subscribe(),
            )),
            tokio::spawn(writer(
                Arc::downgrade(&store),
                write_wanted,
                store.stop.subscribe(),
            )),
        ];
        if let Ok(mut t) = store.tasks.lock() {
            t.extend(handles);
        }
        Ok(store)
    }

    /// Appends a batch; returns once it is acknowledged according to `ack` (with
    /// [`AckMode::Durable`], after the WAL record is fsynced). Over the memory budget the
    /// batch is refused at once with [`StorageError::Overloaded`].
    pub async fn append(&self, batch: LogBatch, ack: AckMode) -> Result<(), StorageError> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let incoming = batch.records.iter().map(record_bytes).sum::<usize>() + batch.otlp.len();
        let used = self.in_memory.load(Ordering::Relaxed) + self.wal.queued_bytes();
        if used.saturating_add(incoming) > self.config.memory_budget_bytes {
            return Err(self.overloaded(used));
        }
        let rec = record::Encoded::new(RecordKind::Logs, batch.otlp).map_err(|len| {
            StorageError::BatchTooLarge {
                bytes: len,
                max: record::MAX_PAYLOAD_LEN,
            }
        })?;
        let permit = match tokio::time::timeout(WAL_QUEUE_WAIT, self.wal.reserve()).await {
            Ok(permit) => permit?,
            Err(_) => return Err(self.overloaded(used)),
        };
        let (pending, cut) = {
            let mut st = self.state.write().await;
            let pending = permit.append(rec, ack == AckMode::Durable, &self.wal_dir);
            if st.head_since.is_none() {
                st.head_since = Some(Instant::now());
            }
            let before = st.head.bytes;
            st.head.insert(batch.records);
            self.in_memory
                .fetch_add(st.head.bytes - before, Ordering::Relaxed);
            (pending, st.head.bytes >= self.cut_bytes())
        };
        if cut {
            self.flush_wanted.notify_one();
        }
        match pending {
            Some(p) => p.wait().await,
            None => Ok(()),
        }
    }

    fn overloaded(&self, used: usize) -> StorageError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.flush_wanted.notify_one();
        StorageError::Overloaded {
            used,
            budget: self.config.memory_budget_bytes,
            retry_after_secs: 1,
        }
    }

    fn cut_bytes(&self) -> usize {
        self.config
            .max_head_bytes
            .min(self.config.memory_budget_bytes / 2)
            .max(1)
    }

    async fn head_due(&self) -> bool {
        let st = self.state.read().await;
        !st.head.is_empty()
            && (st.head.bytes >= self.cut_bytes()
                || st
                    .head_since
                    .is_some_and(|t| t.elapsed() >= self.config.max_head_age))
    }

    /// Cuts the head now and waits until it and every earlier cut head are committed as
    /// blocks and their WAL segments deleted.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let _order = self.flush_lock.lock().await;
        self.cut_head().await?;
        self.write_cut_heads_locked().await
    }

    /// Writes heads already cut (a failed write is retried here) as blocks.
    async fn write_cut_heads(&self) -> Result<(), StorageError> {
        let _order = self.flush_lock.lock().await;
        self.write_cut_heads_locked().await
    }

    /// Swaps in an empty head and moves to a new WAL segment under the state lock (as the
    /// span store's cut does); the old head stays queryable until its block is committed.
    /// Cuts may run while heads are written: rotations are queued under the state lock, in
    /// segment order.
    async fn cut_head(&self) -> Result<(), StorageError> {
        let permit = self.wal.reserve().await?;
        let cut = {
            let mut st = self.state.write().await;
            if st.head.is_empty() {
                None
            } else {
                let pending = permit.rotate(&self.wal_dir);
                let head = std::mem::take(&mut st.head);
                let wal_through = st.wal_seq;
                st.flushing
                    .push(Arc::new(FrozenLogHead { head, wal_through }));
                st.wal_seq += 1;
                st.head_since = None;
                Some((pending, wal_through))
            }
        };
        if let Some((pending, wal_through)) = cut {
            let closed = pending.wait().await?;
            if closed != wal_through {
                return Err(StorageError::Corrupt {
                    what: "log WAL".into(),
                    detail: format!("rotation closed segment {closed}, expected {wal_through}"),
                });
            }
        }
        Ok(())
    }

    /// Writes cut heads as blocks, oldest first, stopping at the first failure: blocks commit
    /// in WAL order.
    async fn write_cut_heads_locked(&self) -> Result<(), StorageError> {
        loop {
            let Some(frozen) = self.state.read().await.flushing.first().cloned() else {
                return Ok(());
            };
            let meta = write_log_block(
                self.config.block_store.as_ref(),
                &self.root,
                Arc::clone(&frozen),
                BlockInfo {
                    wal_through: frozen.wal_through,
                    sources: Vec::new(),
                    level: 0,
                    edges: None,
                },
                &self.settings,
            )
            .await?;
            {
                let mut st = self.state.write().await;
                let meta = Arc::new(meta);
                let at = st.blocks.partition_point(|b| b.id < meta.id);
                st.blocks.insert(at, meta);
                if st.flushing.first().is_some_and(|f| Arc::ptr_eq(f, &frozen)) {
                    st.flushing.remove(0);
                    self.in_memory
                        .fetch_sub(frozen.head.bytes, Ordering::Relaxed);
                }
            }
            let dir = self.wal_dir.clone();
            let through = frozen.wal_through;
            if let Ok(Err(e)) =
                tokio::task::spawn_blocking(move || wal::delete_segments_through(&dir, through))
                    .await
            {
                tracing::warn!(error = %e, "could not delete flushed log WAL segments");
            }
        }
    }

    /// Retention (blocks whose newest record is older than the retention) and one compaction
    /// of small level-0/1 blocks when enough have accumulated.
    pub async fn run_maintenance(&self) -> Result<(), StorageError> {
        let _one = self.maintenance_lock.lock().await;
        let retry = std::mem::take(&mut *self.pending_deletes.lock().await);
        self.delete_blocks(&retry).await;
        let retention = u64::try_from(self.config.retention.as_nanos()).unwrap_or(u64::MAX);
        let cutoff = UnixNanos(UnixNanos::now().0.saturating_sub(retention));
        let expired: Vec<BlockId> = {
            let mut st = self.state.write().await;
            let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut st.blocks)
                .into_iter()
                .partition(|b| b.max_time < cutoff);
            st.blocks = live;
            if !expired.is_empty() {
                st.generation += 1;
            }
            expired.iter().map(|b| b.id.clone()).collect()
        };
        self.delete_blocks(&expired).await;
        self.compact_once().await?;
        Ok(())
    }

    async fn delete_blocks(&self, ids: &[BlockId]) {
        for id in ids {
            if let Err(e) = delete_block(self.config.block_store.as_ref(), &self.root, id).await {
                tracing::warn!(block = %id, error = %e, "log block deletion failed; will retry");
                self.pending_deletes.lock().await.push(id.clone());
            }
        }
    }

    /// Merges the oldest small blocks of the lowest level that has enough of them.
    async fn compact_once(&self) -> Result<bool, StorageError> {
        if !self.pending_deletes.lock().await.is_empty() {
            return Ok(false);
        }
        let t = &self.tuning;
        let blocks = self.state.read().await.blocks.clone();
        let mut plan = None;
        for level in 0..t.compaction_max_level {
            let mut small: Vec<&Arc<LogBlockMeta>> = blocks
                .iter()
                .filter(|b| {
                    b.level == level
                        && b.data_bytes < t.compaction_small_block_bytes
                        && b.record_count < t.compaction_max_spans
                })
                .collect();
            if small.len() < t.compaction_min_blocks.max(2) {
                continue;
            }
            small.sort_by(|a, b| a.min_time.cmp(&b.min_time).then(a.id.cmp(&b.id)));
            let mut picked = Vec::new();
            let mut n = 0u64;
            for b in small {
                if picked.len() >= t.compaction_max_blocks
                    || n + b.record_count > t.compaction_max_spans
                {
                    break;
                }
                n += b.record_count;
                picked.push(Arc::clone(b));
            }
            if picked.len() >= 2 {
                plan = Some((level, picked));
                break;
            }
        }
        let Some((level, inputs)) = plan else {
            return Ok(false);
        };
        let mut records = Vec::new();
        for meta in &inputs {
            records.extend(read_all_logs(&self.config.block_store, &self.root, meta).await?);
        }
        dedup_records(&mut records);
        let merged = write_log_block(
            self.config.block_store.as_ref(),
            &self.root,
            Arc::new(records),
            BlockInfo {
                wal_through: inputs.iter().map(|b| b.wal_through).max().unwrap_or(0),
                sources: inputs.iter().map(|b| b.id.clone()).collect(),
                level: level + 1,
                edges: None,
            },
            &self.settings,
        )
        .await?;
        let sources = merged.sources.clone();
        {
            let mut st = self.state.write().await;
            st.blocks.retain(|b| !sources.contains(&b.id));
            st.generation += 1;
            let merged = Arc::new(merged);
            let at = st.blocks.partition_point(|b| b.id < merged.id);
            st.blocks.insert(at, merged);
        }
        self.compactions.fetch_add(1, Ordering::Relaxed);
        self.delete_blocks(&sources).await;
        Ok(true)
    }

    /// Every stored record of the given traces (head, heads being flushed, blocks), without
    /// repeats, in time order.
    pub async fn logs_of_traces(&self, ids: &[TraceId]) -> Result<Vec<LogRecord>, StorageError> {
        let mut attempt = 1;
        loop {
            let (result, generation) = self.logs_of_traces_once(ids).await;
            match result {
                Err(e) if attempt < QUERY_ATTEMPTS && self.moved_since(generation).await => {
                    tracing::debug!(error = %e, "log block removed during a query; retrying");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Whether a block left the store since `generation`.
    async fn moved_since(&self, generation: u64) -> bool {
        self.state.read().await.generation != generation
    }

    /// One attempt of [`Self::logs_of_traces`] over a snapshot of the blocks, and the generation
    /// of that snapshot.
    async fn logs_of_traces_once(
        &self,
        ids: &[TraceId],
    ) -> (Result<Vec<LogRecord>, StorageError>, u64) {
        let (mut out, blocks, generation) = {
            let st = self.state.read().await;
            let mut out = Vec::new();
            st.head.collect_traces(ids, &mut out);
            for f in &st.flushing {
                f.head.collect_traces(ids, &mut out);
            }
            let blocks: Vec<Arc<LogBlockMeta>> = st
                .blocks
                .iter()
                .filter(|b| ids.iter().any(|id| b.may_contain_trace(id)))
                .cloned()
                .collect();
            (out, blocks, st.generation)
        };
        let objects = Arc::clone(&self.config.block_store);
        let root = self.root.clone();
        let wanted: Arc<[TraceId]> = ids.into();
        let parts: Result<Vec<Vec<LogRecord>>, _> = futures::stream::iter(blocks)
            .map(|meta| {
                let (objects, root, wanted) =
                    (Arc::clone(&objects), root.clone(), Arc::clone(&wanted));
                async move { read_logs_of_traces(&objects, &root, &meta, &wanted).await }
            })
            .buffer_unordered(8)
            .try_collect()
            .await;
        let parts = match parts {
            Ok(parts) => parts,
            Err(e) => return (Err(e.into()), generation),
        };
        out.extend(parts.into_iter().flatten());
        dedup_records(&mut out);
        out.sort_by_key(|r| r.time);
        (Ok(out), generation)
    }

    /// Records matching `query`, newest first, at most `query.limit`.
    pub async fn search(&self, query: &LogQuery) -> Result<Vec<LogRecord>, StorageError> {
        let q = query.clone().normalised();
        if let Some(t) = q.trace_id {
            let mut out: Vec<LogRecord> = self
                .logs_of_traces(&[t])
                .await?
                .into_iter()
                .filter(|r| q.matches(r))
                .collect();
            out.sort_by_key(|r| std::cmp::Reverse(r.time));
            out.truncate(q.limit);
            return Ok(out);
        }
        let mut attempt = 1;
        loop {
            let (result, generation) = self.search_once(&q).await;
            match result {
                Err(e) if attempt < QUERY_ATTEMPTS && self.moved_since(generation).await => {
                    tracing::debug!(error = %e, "log block removed during a search; retrying");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt of a search without a trace ID over a snapshot of the blocks, and the
    /// generation of that snapshot.
    async fn search_once(&self, q: &LogQuery) -> (Result<Vec<LogRecord>, StorageError>, u64) {
        let (mut out, mut blocks, generation) = {
            let st = self.state.read().await;
            let mut out = Vec::new();
            st.head.search(q, &mut out);
            for f in &st.flushing {
                f.head.search(q, &mut out);
            }
            let blocks: Vec<Arc<LogBlockMeta>> = st
                .blocks
                .iter()
                .filter(|b| b.may_match(q))
                .cloned()
                .collect();
            (out, blocks, st.generation)
        };
        dedup_records(&mut out);
        out.sort_by_key(|r| std::cmp::Reverse(r.time));
        out.truncate(q.limit);
        // Newest blocks first; once `limit` records are newer than a block's newest, no older
        // block can contribute.
        blocks.sort_by_key(|b| std::cmp::Reverse(b.max_time));
        for meta in blocks {
            if out.len() >= q.limit && out.last().is_some_and(|r| r.time > meta.max_time) {
                break;
            }
            match search_logs(&self.config.block_store, &self.root, &meta, q).await {
                Ok(found) => out.extend(found),
                Err(e) => return (Err(e.into()), generation),
            }
            dedup_records(&mut out);
            out.sort_by_key(|r| std::cmp::Reverse(r.time));
            out.truncate(q.limit);
        }
        (Ok(out), generation)
    }

    /// Current counters.
    pub async fn stats(&self) -> LogStoreStats {
        let st = self.state.read().await;
        LogStoreStats {
            head_records: st.head.records.len() as u64,
            in_memory_bytes: self.in_memory.load(Ordering::Relaxed) as u64,
            blocks: st.blocks.len() as u64,
            block_records: st.blocks.iter().map(|b| b.record_count).sum(),
            block_bytes: st.blocks.iter().map(|b| b.data_bytes).sum(),
            wal_replayed_records: self.replayed,
            appends_refused: self.refused.load(Ordering::Relaxed),
            compactions: self.compactions.load(Ordering::Relaxed),
        }
    }

    /// Stops the background tasks and closes the WAL (queued records are written and synced).
    pub(crate) async fn shutdown(&self) -> Result<(), StorageError> {
        let _ = self.stop.send(true);
        let tasks = self
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        self.wal.close().await
    }
}

/// Reads log WAL segments numbered above `after` into a fresh head.
fn replay(
    dir: &std::path::Path,
    after: Option<u64>,
) -> Result<(LogHead, wal::ReplayStats), StorageError> {
    let mut head = LogHead::default();
    let limits = LogLimits::unlimited();
    let stats = wal::replay(dir, after, |seq, rec| match rec.kind {
        RecordKind::Logs => match LogsData::decode(rec.payload.as_slice()) {
            Ok(data) => head.insert(logs_from_otlp(data.resource_logs, &limits).records),
            Err(e) => {
                tracing::error!(segment = seq, error = %e, "log WAL record is not valid OTLP; skipped")
            }
        },
        other => tracing::warn!(
            segment = seq,
            kind = other.to_byte(),
            "unexpected record kind in the log WAL; skipped"
        ),
    })?;
    Ok((head, stats))
}

impl CutHeads for LogStore {
    const HEAD: &'static str = "log head";

    fn max_head_age(&self) -> Duration {
        self.config.max_head_age
    }

    fn head_due(&self) -> impl std::future::Future<Output = bool> + Send {
        LogStore::head_due(self)
    }

    fn cut_head(&self) -> impl std::future::Future<Output = Result<(), StorageError>> + Send {
        LogStore::cut_head(self)
    }
}

/// Writes cut log heads as blocks when one was cut, and every check interval (which retries
/// a failed write even if no new record arrives); runs maintenance every
/// `maintenance_interval`.
async fn writer(weak: Weak<LogStore>, wanted: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut last_maintenance = Instant::now();
    while let Some(store) = next_round(&weak, &wanted, &mut stop).await {
        if let Err(e) = store.write_cut_heads().await {
            tracing::error!(error = %e, "writing the log head as a block failed; will retry");
        }
        if last_maintenance.elapsed() >= store.config.maintenance_interval {
            last_maintenance = Instant::now();
            if let Err(e) = store.run_maintenance().await {
                tracing::error!(error = %e, "log compaction or retention failed; will retry");
            }
        }
    }
}

#[cfg(test)]
mod tests;
