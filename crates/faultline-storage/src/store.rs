//! The store: one handle over WAL, heads and blocks; appends, stats and shutdown. Queries are
//! in `query.rs`, the lifecycle (open, flush, compaction, retention) in `lifecycle/`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use faultline_block::BlockMeta;
use object_store::path::Path as ObjectPath;
use tokio::sync::{Mutex, Notify, RwLock};

use crate::config::{AckMode, AppendBatch, StoreConfig, StoreStats, StoreTuning};
use crate::head::{span_bytes, FrozenHead, Head};
use crate::wal::{record, RecordKind, Wal};
use crate::StorageError;

/// Memory for cached block footers. A footer with its page index is a few hundred KiB for a
/// large block, so this keeps every footer of a store of some hundred blocks.
pub(crate) const FOOTER_CACHE_BYTES: usize = 64 << 20;

/// Longest an append waits for room in the WAL queue before it is refused as overloaded.
const WAL_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Everything the queries see, guarded by one lock so that a WAL record and the head holding
/// its spans, or a committed block and the frozen head it replaces, always change together.
pub(crate) struct State {
    /// The head receiving appends.
    pub(crate) head: Head,
    /// When the first span went into `head`, for age-based cuts.
    pub(crate) head_since: Option<Instant>,
    /// The WAL segment `head`'s newest records go to.
    pub(crate) wal_seq: u64,
    /// Heads cut off and waiting to become blocks, oldest first.
    pub(crate) flushing: VecDeque<Arc<FrozenHead>>,
    /// Committed blocks not superseded by a compaction, sorted by ID.
    pub(crate) blocks: Vec<Arc<BlockMeta>>,
    /// Bumped whenever a block leaves `blocks`, so a query that raced with it can retry.
    pub(crate) generation: u64,
}

impl State {
    pub(crate) fn flushing_bytes(&self) -> usize {
        self.flushing.iter().map(|f| f.head.bytes).sum()
    }
}

/// Counters kept outside the state lock.
#[derive(Default)]
pub(crate) struct Counters {
    /// Spans dropped by the per-trace limit in heads already written as blocks (the live heads
    /// count their own), so the reported total never goes down at a flush.
    pub(crate) dropped_flushed: AtomicU64,
    /// The carry's count of orphans that expired unpaired, as of the last head paired.
    pub(crate) dependency_orphans_expired: AtomicU64,
    pub(crate) blocks_flushed: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) blocks_expired: AtomicU64,
    pub(crate) appends_refused: AtomicU64,
}

/// The span store. Cheap to share behind an `Arc`; all methods take `&self`.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use faultline_model::otlp::{spans_from_otlp, SpanLimits, TracesData};
/// use faultline_storage::{AckMode, AppendBatch, Store, StoreConfig};
/// use prost::Message;
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(StoreConfig {
///     data_dir: dir.path().to_owned(),
///     block_store: Arc::new(object_store::memory::InMemory::new()),
///     max_head_bytes: 64 << 20,
///     max_head_age: Duration::from_secs(60),
///     retention: Duration::from_secs(72 * 3600),
///     max_spans_per_trace: 10_000,
///     memory_budget_bytes: 256 << 20,
///     maintenance_interval: Duration::from_secs(30),
/// })
/// .await?;
///
/// // A receiver decodes a request, converts it, and hands both forms to the store.
/// let request = TracesData::default(); // normally decoded from the wire
/// let otlp = request.encode_to_vec().into();
/// let spans = spans_from_otlp(request.resource_spans, &SpanLimits::default()).spans;
/// store.append(AppendBatch { spans, otlp }, AckMode::Durable).await?;
///
/// assert!(store.services().await?.is_empty());
/// store.shutdown().await?;
/// # Ok(())
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct Store {
    pub(crate) config: StoreConfig,
    pub(crate) tuning: StoreTuning,
    pub(crate) wal_dir: PathBuf,
    pub(crate) wal: Wal,
    pub(crate) block_root: ObjectPath,
    pub(crate) state: RwLock<State>,
    /// Serialises cutting and flushing, so blocks are committed in WAL order.
    pub(crate) flush_lock: Mutex<()>,
    /// Serialises compaction and retention.
    pub(crate) maintenance_lock: Mutex<()>,
    /// Wakes the cutter when the head is over its size.
    pub(crate) flush_wanted: Arc<Notify>,
    /// Retired blocks (compacted or expired) whose deletion failed, to retry.
    pub(crate) pending_deletes: Mutex<Vec<faultline_block::BlockId>>,
    pub(crate) background: crate::lifecycle::Background,
    pub(crate) counters: Counters,
    pub(crate) replayed_records: u64,
    /// Bytes of the head and the flushing heads, readable without the state lock.
    pub(crate) in_memory: AtomicUsize,
    /// Set when a block write failed and may have left a data file without its meta.
    pub(crate) orphans_possible: std::sync::atomic::AtomicBool,
    /// Decoded Parquet footers of recently read blocks: decoding one (page index included)
    /// took most of a trace-by-ID lookup's time.
    pub(crate) footers: Arc<faultline_block::FooterCache>,
    /// The log records' store, beside the spans' (own WAL directory and block tree).
    pub(crate) logs: Arc<crate::logs::LogStore>,
    /// What heads already written leave for pairing the service dependencies of later ones.
    /// Locked after the state lock when both are taken.
    pub(crate) carry: Arc<std::sync::Mutex<crate::edges::Carry>>,
}

impl Store {
    /// Opens the store: loads block metadata, cleans up after a crash, replays the WAL and
    /// starts the background cutter, writer and maintenance tasks.
    pub async fn open(config: StoreConfig) -> Result<Arc<Self>, StorageError> {
        Self::open_with(config, StoreTuning::default()).await
    }

    /// Like [`Store::open`] with explicit tuning.
    pub async fn open_with(
        config: StoreConfig,
        tuning: StoreTuning,
    ) -> Result<Arc<Self>, StorageError> {
        crate::lifecycle::open(config, tuning).await
    }

    /// Appends a batch; returns once it is acknowledged according to `ack`.
    ///
    /// With [`AckMode::Durable`], `Ok` means a WAL record holding the batch has been fsynced.
    /// When the bytes in flight (queued for the WAL, in the head, in heads being flushed) would
    /// exceed the memory budget, the batch is refused at once with
    /// [`StorageError::Overloaded`] and nothing of it is stored.
    pub async fn append(&self, batch: AppendBatch, ack: AckMode) -> Result<(), StorageError> {
        if batch.spans.is_empty() {
            return Ok(());
        }
        let batch_bytes: usize = batch.spans.iter().map(span_bytes).sum();
        let incoming = batch_bytes + batch.otlp.len();
        self.check_budget(incoming)?;
        let rec = record::Encoded::new(RecordKind::Traces, batch.otlp).map_err(|len| {
            StorageError::BatchTooLarge {
                bytes: len,
                max: record::MAX_PAYLOAD_LEN,
            }
        })?;
        // The queue is full only when the disk falls behind; waiting a little smooths bursts,
        // waiting long would hide an overload from the client.
        let permit = match tokio::time::timeout(WAL_QUEUE_WAIT, self.wal.reserve()).await {
            Ok(permit) => permit?,
            Err(_) => {
                let used = self.in_memory.load(Ordering::Relaxed) + self.wal.queued_bytes();
                return Err(self.overloaded(used));
            }
        };
        let (pending, cut) = {
            let mut st = self.state.write().await;
            // Exact check under the lock: concurrent appends all passed the early check.
            let used = st.head.bytes + st.flushing_bytes() + self.wal.queued_bytes();
            if used.saturating_add(incoming) > self.config.memory_budget_bytes {
                return Err(self.overloaded(used));
            }
            let pending = permit.append(rec, ack == AckMode::Durable, &self.wal_dir);
            if st.head_since.is_none() {
                st.head_since = Some(Instant::now());
            }
            let before = st.head.bytes;
            st.head
                .insert_sized(batch.spans, batch_bytes, self.config.max_spans_per_trace);
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

    /// Head size at which it is cut: the configured size, but never more than half the memory
    /// budget, so that a head being flushed and a filling head fit in it together.
    pub(crate) fn cut_bytes(&self) -> usize {
        self.config
            .max_head_bytes
            .min(self.config.memory_budget_bytes / 2)
            .max(1)
    }

    /// Refuses a batch of `incoming` bytes when memory in flight would exceed the budget.
    /// A cheap first check, before any work is done for the batch.
    fn check_budget(&self, incoming: usize) -> Result<(), StorageError> {
        let used = self.in_memory.load(Ordering::Relaxed) + self.wal.queued_bytes();
        if used.saturating_add(incoming) > self.config.memory_budget_bytes {
            return Err(self.overloaded(used));
        }
        Ok(())
    }

    /// Counts and builds an overload refusal.
    fn overloaded(&self, used: usize) -> StorageError {
        self.counters
            .appends_refused
            .fetch_add(1, Ordering::Relaxed);
        // The head may be over its cut size with the cutter idle (e.g. a lone huge batch).
        self.flush_wanted.notify_one();
        StorageError::Overloaded {
            used,
            budget: self.config.memory_budget_bytes,
            retry_after_secs: 1,
        }
    }

    /// Puts a just-committed block's footer into the cache, so queries never find it cold.
    /// A failure only means the first query reads the footer itself.
    pub(crate) async fn warm_footer(&self, meta: &BlockMeta) {
        if let Err(e) = faultline_block::load_footer(
            self.config.block_store.as_ref(),
            &self.block_root,
            meta,
            &self.footers,
        )
        .await
        {
            tracing::debug!(block = %meta.id, error = %e, "could not preload a block footer");
        }
    }

    /// Current counters.
    pub async fn stats(&self) -> StoreStats {
        let st = self.state.read().await;
        StoreStats {
            head_spans: st.head.spans,
            head_bytes: st.head.bytes as u64,
            blocks: st.blocks.len() as u64,
            spans_dropped_trace_limit: self.counters.dropped_flushed.load(Ordering::Relaxed)
                + st.head.dropped
                + st.flushing.iter().map(|f| f.head.dropped).sum::<u64>(),
            wal_queued_bytes: self.wal.queued_bytes() as u64,
            wal_replayed_records: self.replayed_records,
            wal_records_written: self.wal.counters().records.load(Ordering::Relaxed),
            wal_bytes_written: self.wal.counters().bytes.load(Ordering::Relaxed),
            wal_syncs: self.wal.counters().syncs.load(Ordering::Relaxed),
            flushing_heads: st.flushing.len() as u64,
            flushing_bytes: st.flushing_bytes() as u64,
            block_spans: st.blocks.iter().map(|b| b.span_count).sum(),
            block_bytes: st.blocks.iter().map(|b| b.data_bytes).sum(),
            blocks_flushed: self.counters.blocks_flushed.load(Ordering::Relaxed),
            compactions: self.counters.compactions.load(Ordering::Relaxed),
            blocks_expired: self.counters.blocks_expired.load(Ordering::Relaxed),
            appends_refused: self.counters.appends_refused.load(Ordering::Relaxed),
            dependency_orphans_expired: self
                .counters
                .dependency_orphans_expired
                .load(Ordering::Relaxed),
        }
    }

    /// Stops background work (letting a block write in progress finish), then writes and fsyncs
    /// whatever is queued for the WAL. The head is not flushed: the WAL replays it on the next
    /// open. Appends after this fail with [`StorageError::ShuttingDown`].
    pub async fn shutdown(&self) -> Result<(), StorageError> {
        self.background.stop().await;
        let logs = self.logs.shutdown().await;
        self.wal.close().await?;
        logs
    }

    /// The log store that lives beside the spans (see [`crate::LogStore`]).
    pub fn logs(&self) -> &Arc<crate::logs::LogStore> {
        &self.logs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{batch, span, trace_id};
    use faultline_model::query::SpanQuery;
    use faultline_model::UnixNanos;
    use object_store::memory::InMemory;
    use std::time::Duration;

    pub(crate) fn config(dir: &std::path::Path) -> StoreConfig {
        StoreConfig {
            data_dir: dir.to_owned(),
            block_store: Arc::new(InMemory::new()),
            max_head_bytes: 64 * 1024 * 1024,
            max_head_age: Duration::from_secs(3600),
            retention: Duration::from_secs(3600 * 24 * 365 * 100),
            max_spans_per_trace: 1000,
            memory_budget_bytes: 256 * 1024 * 1024,
            maintenance_interval: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn acknowledged_spans_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path())).await.unwrap();
        for t in 0..10u64 {
            let spans = (1..=3)
                .map(|i| span(t, t * 10 + i, 1_000 + t, "svc", "op"))
                .collect();
            store.append(batch(spans), AckMode::Durable).await.unwrap();
        }
        store
            .append(batch(vec![span(99, 1, 5, "late", "op")]), AckMode::Received)
            .await
            .unwrap();
        store.shutdown().await.unwrap();
        drop(store);

        let store = Store::open(config(dir.path())).await.unwrap();
        assert_eq!(store.stats().await.wal_replayed_records, 11);
        for t in 0..10u64 {
            let trace = store.trace(trace_id(t)).await.unwrap().unwrap();
            assert_eq!(trace.spans.len(), 3);
        }
        assert!(store.trace(trace_id(99)).await.unwrap().is_some());
        assert_eq!(store.services().await.unwrap(), vec!["late", "svc"]);
        let q = SpanQuery {
            service: Some("svc".into()),
            end: UnixNanos(u64::MAX),
            limit: 3,
            ..SpanQuery::default()
        };
        assert_eq!(
            store.search(&q).await.unwrap(),
            vec![trace_id(9), trace_id(8), trace_id(7)]
        );
    }

    #[tokio::test]
    async fn torn_wal_tail_loses_only_the_torn_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path())).await.unwrap();
        store
            .append(batch(vec![span(1, 1, 10, "a", "x")]), AckMode::Durable)
            .await
            .unwrap();
        store
            .append(batch(vec![span(2, 1, 10, "a", "x")]), AckMode::Durable)
            .await
            .unwrap();
        store.shutdown().await.unwrap();
        drop(store);
        let seg = crate::wal::segment_path(&dir.path().join("wal"), 1);
        let len = std::fs::metadata(&seg).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 3).unwrap();

        let store = Store::open(config(dir.path())).await.unwrap();
        assert!(store.trace(trace_id(1)).await.unwrap().is_some());
        assert!(store.trace(trace_id(2)).await.unwrap().is_none());
        // New writes go to a fresh segment and survive another reopen.
        store
            .append(batch(vec![span(3, 1, 10, "a", "x")]), AckMode::Durable)
            .await
            .unwrap();
        store.shutdown().await.unwrap();
        drop(store);
        let store = Store::open(config(dir.path())).await.unwrap();
        assert!(store.trace(trace_id(1)).await.unwrap().is_some());
        assert!(store.trace(trace_id(3)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn per_trace_drops_stay_counted_after_the_head_is_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.max_spans_per_trace = 2;
        let store = Store::open(cfg).await.unwrap();
        let spans = (1..=5).map(|i| span(1, i, 10 * i, "a", "x")).collect();
        store.append(batch(spans), AckMode::Durable).await.unwrap();
        assert_eq!(store.stats().await.spans_dropped_trace_limit, 3);
        store.flush().await.unwrap();
        let stats = store.stats().await;
        assert_eq!((stats.head_spans, stats.blocks), (0, 1));
        assert_eq!(stats.spans_dropped_trace_limit, 3);
        store
            .append(batch(vec![span(2, 1, 10, "a", "x")]), AckMode::Durable)
            .await
            .unwrap();
        assert_eq!(store.stats().await.spans_dropped_trace_limit, 3);
    }

    #[tokio::test]
    async fn retried_batches_are_shown_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path())).await.unwrap();
        let spans = vec![span(1, 1, 10, "a", "x"), span(1, 2, 20, "a", "y")];
        store
            .append(batch(spans.clone()), AckMode::Durable)
            .await
            .unwrap();
        store.append(batch(spans), AckMode::Durable).await.unwrap();
        assert_eq!(
            store.trace(trace_id(1)).await.unwrap().unwrap().spans.len(),
            2
        );
    }
}
