//! The store: one handle over WAL, head and blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faultline_model::otlp::{spans_from_otlp, SpanLimits, TracesData};
use faultline_model::query::SpanQuery;
use faultline_model::{Span, SpanKind, TraceId, UnixNanos};
use object_store::ObjectStore;
use prost::Message;
use tokio::sync::RwLock;

use crate::head::{dedup_spans, span_bytes, Head};
use crate::wal::{self, record, RecordKind, Wal, WalOptions};
use crate::StorageError;

/// When an append is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AckMode {
    /// After the WAL record is fsynced (group-committed with concurrent appends).
    #[default]
    Durable,
    /// As soon as the batch is queued for the WAL; a crash can lose the last moments of data.
    Received,
}

/// Settings of a [`Store`].
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Local directory for the write-ahead log.
    pub data_dir: PathBuf,
    /// Where blocks are kept (local filesystem by default, in-memory in tests, S3 later).
    pub block_store: Arc<dyn ObjectStore>,
    /// Cut the head into a block once it holds this many bytes of spans.
    pub max_head_bytes: usize,
    /// Cut the head into a block once its oldest data is this old.
    pub max_head_age: Duration,
    /// Delete blocks whose newest span is older than this.
    pub retention: Duration,
    /// Keep at most this many spans per trace; the rest are counted and reported as a warning.
    pub max_spans_per_trace: usize,
    /// Bytes of not-yet-durable and head data above which appends are refused with
    /// [`StorageError::Overloaded`].
    pub memory_budget_bytes: usize,
    /// How often compaction and retention run.
    pub maintenance_interval: Duration,
}

/// Knobs below [`StoreConfig`] that rarely need changing; [`Store::open`] uses the defaults.
#[derive(Clone, Debug)]
pub struct StoreTuning {
    /// Requests the WAL queue holds before appenders wait for room.
    pub wal_queue_capacity: usize,
    /// Largest group the WAL writer commits with one fsync, in bytes.
    pub wal_max_group_bytes: usize,
}

impl Default for StoreTuning {
    fn default() -> Self {
        Self {
            wal_queue_capacity: 1024,
            wal_max_group_bytes: 8 * 1024 * 1024,
        }
    }
}

/// One batch handed to [`Store::append`].
#[derive(Clone, Debug)]
pub struct AppendBatch {
    /// The spans, already validated and limited.
    pub spans: Vec<Span>,
    /// An OTLP `TracesData` protobuf that decodes to exactly `spans` (written to the WAL and
    /// replayed on start).
    pub otlp: Bytes,
}

/// A trace as stored: its spans (from head and blocks, deduplicated) and any warnings.
#[derive(Clone, Debug, Default)]
pub struct TraceData {
    /// The trace's spans in no particular order.
    pub spans: Vec<Span>,
    /// Problems worth telling the user, e.g. spans dropped by the per-trace limit.
    pub warnings: Vec<String>,
}

/// Counters describing the store, for `/metrics` and benchmarks.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    /// Spans currently in the in-memory head.
    pub head_spans: u64,
    /// Bytes accounted to the head.
    pub head_bytes: u64,
    /// Number of blocks.
    pub blocks: u64,
    /// Spans dropped by the per-trace limit since start.
    pub spans_dropped_trace_limit: u64,
    /// Bytes queued for the WAL writer and not yet written.
    pub wal_queued_bytes: u64,
    /// Records replayed from the WAL when the store was opened.
    pub wal_replayed_records: u64,
}

/// The heads and where the WAL stands; guarded by one lock so that a WAL record and the head
/// holding its spans always change together.
pub(crate) struct State {
    pub(crate) head: Head,
    /// When the first span went into `head`, for age-based cuts.
    pub(crate) head_since: Option<Instant>,
}

/// The span store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    pub(crate) config: StoreConfig,
    pub(crate) wal_dir: PathBuf,
    pub(crate) wal: Wal,
    pub(crate) state: RwLock<State>,
    replayed_records: u64,
}

/// Limits loose enough that decoding a WAL record never changes a span: the spans were
/// limited once on ingest.
fn replay_limits() -> SpanLimits {
    SpanLimits {
        max_attribute_value_len: usize::MAX,
        max_attributes_per_span: usize::MAX,
        max_events_per_span: usize::MAX,
        max_links_per_span: usize::MAX,
        max_value_depth: usize::MAX,
    }
}

impl Store {
    /// Opens the store: replays the WAL and loads block metadata.
    pub async fn open(config: StoreConfig) -> Result<Arc<Self>, StorageError> {
        Self::open_with(config, StoreTuning::default()).await
    }

    /// Like [`Store::open`] with explicit tuning.
    pub async fn open_with(
        config: StoreConfig,
        tuning: StoreTuning,
    ) -> Result<Arc<Self>, StorageError> {
        let wal_dir = config.data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir).map_err(|e| StorageError::io(&wal_dir, e))?;

        let (head, stats) = {
            let wal_dir = wal_dir.clone();
            let max_per_trace = config.max_spans_per_trace;
            tokio::task::spawn_blocking(move || replay_into_head(&wal_dir, None, max_per_trace))
                .await
                .map_err(|e| StorageError::io("WAL replay", std::io::Error::other(e)))??
        };
        let last_seq = stats.segments.last().copied().unwrap_or(0);
        let wal = Wal::start(
            WalOptions {
                dir: wal_dir.clone(),
                queue_capacity: tuning.wal_queue_capacity,
                max_group_bytes: tuning.wal_max_group_bytes,
            },
            last_seq + 1,
        )?;
        let head_since = (!head.is_empty()).then(Instant::now);
        Ok(Arc::new(Self {
            config,
            wal_dir,
            wal,
            state: RwLock::new(State { head, head_since }),
            replayed_records: stats.records,
        }))
    }

    /// Appends a batch; returns once it is acknowledged according to `ack`.
    pub async fn append(&self, batch: AppendBatch, ack: AckMode) -> Result<(), StorageError> {
        if batch.spans.is_empty() {
            return Ok(());
        }
        let bytes = batch_bytes(&batch.spans, &batch.otlp);
        self.check_budget(bytes).await?;
        let mut rec = Vec::with_capacity(record::HEADER_LEN + batch.otlp.len());
        record::encode(RecordKind::Traces, &batch.otlp, &mut rec).map_err(|len| {
            StorageError::BatchTooLarge {
                bytes: len,
                max: record::MAX_PAYLOAD_LEN,
            }
        })?;
        let permit = self.wal.reserve().await?;
        let pending = {
            let mut st = self.state.write().await;
            let pending = permit.append(rec, ack == AckMode::Durable, &self.wal_dir);
            if st.head_since.is_none() {
                st.head_since = Some(Instant::now());
            }
            st.head.insert(batch.spans, self.config.max_spans_per_trace);
            pending
        };
        match pending {
            Some(p) => p.wait().await,
            None => Ok(()),
        }
    }

    /// Refuses a batch of `incoming` bytes when memory in flight would exceed the budget.
    async fn check_budget(&self, incoming: usize) -> Result<(), StorageError> {
        let budget = self.config.memory_budget_bytes;
        let used = self.state.read().await.head.bytes + self.wal.queued_bytes();
        if used.saturating_add(incoming) > budget {
            return Err(StorageError::Overloaded {
                used,
                budget,
                retry_after_secs: 1,
            });
        }
        Ok(())
    }

    /// The spans of one trace, or `None` when no span of it is stored.
    pub async fn trace(&self, id: TraceId) -> Result<Option<TraceData>, StorageError> {
        let mut spans = Vec::new();
        let mut dropped = 0;
        let mut found = false;
        {
            let st = self.state.read().await;
            if let Some(t) = st.head.traces.get(&id) {
                found = true;
                spans.extend(t.spans.iter().cloned());
                dropped += t.dropped;
            }
        }
        if !found {
            return Ok(None);
        }
        Ok(Some(self.finish_trace(spans, dropped)))
    }

    fn finish_trace(&self, mut spans: Vec<Span>, mut dropped: u64) -> TraceData {
        dedup_spans(&mut spans);
        let limit = self.config.max_spans_per_trace;
        if spans.len() > limit {
            // Spans of one trace can sit in several heads and blocks, each under the limit.
            dropped += (spans.len() - limit) as u64;
            spans.sort_by_key(|s| s.start);
            spans.truncate(limit);
        }
        TraceData {
            spans,
            warnings: dropped_warning(dropped, limit),
        }
    }

    /// Several traces at once (missing ones are left out).
    pub async fn traces(&self, ids: &[TraceId]) -> Result<Vec<(TraceId, TraceData)>, StorageError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(t) = self.trace(*id).await? {
                out.push((*id, t));
            }
        }
        Ok(out)
    }

    /// IDs of traces with a span matching `query`, most recent matching span first, at most
    /// `query.limit`.
    pub async fn search(&self, query: &SpanQuery) -> Result<Vec<TraceId>, StorageError> {
        let mut hits: HashMap<TraceId, UnixNanos> = HashMap::new();
        self.state.read().await.head.search(query, &mut hits);
        Ok(top_hits(hits, query.limit))
    }

    /// All service names, sorted.
    pub async fn services(&self) -> Result<Vec<String>, StorageError> {
        Ok(self
            .state
            .read()
            .await
            .head
            .operations
            .keys()
            .cloned()
            .collect())
    }

    /// Operations (span name and kind) of one service, or of all services, sorted.
    pub async fn operations(
        &self,
        service: Option<&str>,
    ) -> Result<Vec<(String, SpanKind)>, StorageError> {
        let st = self.state.read().await;
        let mut set = BTreeSet::new();
        collect_operations(&st.head.operations, service, &mut set);
        Ok(set.into_iter().collect())
    }

    /// Calls between services (parent service → child service → count) among spans that started
    /// in `[start, end]`.
    pub async fn dependencies(
        &self,
        start: UnixNanos,
        end: UnixNanos,
    ) -> Result<Vec<(String, String, u64)>, StorageError> {
        let mut edges: BTreeMap<(String, String), u64> = BTreeMap::new();
        self.state
            .read()
            .await
            .head
            .dependencies(start, end, &mut edges);
        Ok(edges.into_iter().map(|((p, c), n)| (p, c, n)).collect())
    }

    /// Current counters.
    pub async fn stats(&self) -> StoreStats {
        let st = self.state.read().await;
        StoreStats {
            head_spans: st.head.spans,
            head_bytes: st.head.bytes as u64,
            blocks: 0,
            spans_dropped_trace_limit: st.head.dropped,
            wal_queued_bytes: self.wal.queued_bytes() as u64,
            wal_replayed_records: self.replayed_records,
        }
    }

    /// Flushes what is pending and stops background work.
    pub async fn shutdown(&self) -> Result<(), StorageError> {
        self.wal.close().await
    }
}

/// Reads WAL segments numbered above `after` into a fresh head.
fn replay_into_head(
    dir: &std::path::Path,
    after: Option<u64>,
    max_per_trace: usize,
) -> Result<(Head, wal::ReplayStats), StorageError> {
    let mut head = Head::default();
    let limits = replay_limits();
    let stats = wal::replay(dir, after, |seq, rec| match rec.kind {
        RecordKind::Traces => match TracesData::decode(rec.payload.as_slice()) {
            Ok(data) => {
                let converted = spans_from_otlp(data.resource_spans, &limits);
                if converted.rejected > 0 {
                    tracing::warn!(
                        segment = seq,
                        rejected = converted.rejected,
                        "WAL record held invalid spans: {}",
                        converted.error_message()
                    );
                }
                head.insert(converted.spans, max_per_trace);
            }
            Err(e) => {
                // The checksum matched, so these bytes are what was written: a writer bug, not
                // disk damage. Keep going; one bad batch must not hide the rest.
                tracing::error!(segment = seq, error = %e, "WAL record is not valid OTLP; skipped");
            }
        },
        RecordKind::Unknown(kind) => {
            tracing::warn!(
                segment = seq,
                kind,
                "WAL record of unknown kind (written by a newer version?); skipped"
            );
        }
    })?;
    Ok((head, stats))
}

pub(crate) fn collect_operations(
    ops: &BTreeMap<String, BTreeSet<(String, SpanKind)>>,
    service: Option<&str>,
    out: &mut BTreeSet<(String, SpanKind)>,
) {
    match service {
        Some(s) => {
            if let Some(o) = ops.get(s) {
                out.extend(o.iter().cloned());
            }
        }
        None => {
            for o in ops.values() {
                out.extend(o.iter().cloned());
            }
        }
    }
}

/// The `limit` traces with the latest matching span, latest first.
pub(crate) fn top_hits(hits: HashMap<TraceId, UnixNanos>, limit: usize) -> Vec<TraceId> {
    let mut hits: Vec<(UnixNanos, TraceId)> = hits.into_iter().map(|(id, t)| (t, id)).collect();
    hits.sort_unstable_by(|a, b| b.cmp(a));
    hits.truncate(limit);
    hits.into_iter().map(|(_, id)| id).collect()
}

/// The warning shown on a trace whose spans were cut by the per-trace limit.
fn dropped_warning(dropped: u64, limit: usize) -> Vec<String> {
    if dropped == 0 {
        return Vec::new();
    }
    vec![format!(
        "{dropped} spans of this trace were dropped because it exceeded the limit of {limit} spans per trace"
    )]
}

fn batch_bytes(spans: &[Span], otlp: &Bytes) -> usize {
    spans.iter().map(span_bytes).sum::<usize>() + otlp.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{batch, span, trace_id};
    use object_store::memory::InMemory;

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

    #[tokio::test]
    async fn over_budget_appends_fail_fast() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.memory_budget_bytes = 4096;
        let store = Store::open(cfg).await.unwrap();
        let mut refused = false;
        for i in 0..100 {
            match store
                .append(batch(vec![span(i, 1, 10, "a", "x")]), AckMode::Durable)
                .await
            {
                Ok(()) => {}
                Err(StorageError::Overloaded { budget, .. }) => {
                    assert_eq!(budget, 4096);
                    refused = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(refused);
    }
}
