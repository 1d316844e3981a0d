//! Queries over the whole store: the head, the heads being flushed and the blocks, merged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use faultline_block::BlockMeta;
use faultline_model::query::SpanQuery;
use faultline_model::{Span, SpanKind, TraceId, UnixNanos};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use crate::config::TraceData;
use crate::head::dedup_spans;
use crate::store::{State, Store};
use crate::StorageError;

/// Blocks read concurrently by one query.
const QUERY_BLOCK_CONCURRENCY: usize = 8;

/// Blocks a search reads at once before it tightens its time floor: small, because a block
/// skipped thanks to the floor saves far more than reading it in parallel would, and search
/// decoding is CPU-bound anyway.
const SEARCH_WAVE_BLOCKS: usize = 2;

/// How often a query is retried when a block it planned to read was removed under it by
/// compaction or retention.
pub(crate) const QUERY_ATTEMPTS: usize = 3;

/// What a query saw under the state lock: in-memory results are already computed, blocks still
/// have to be read.
struct Snapshot {
    blocks: Vec<Arc<BlockMeta>>,
    generation: u64,
}

impl Store {
    /// The spans of one trace, or `None` when no span of it is stored.
    pub async fn trace(&self, id: TraceId) -> Result<Option<TraceData>, StorageError> {
        Ok(self.traces(&[id]).await?.pop().map(|(_, t)| t))
    }

    /// Several traces at once (missing ones are left out), each whole: spans from the head,
    /// heads being flushed and every block that may hold the trace, without repeats.
    pub async fn traces(&self, ids: &[TraceId]) -> Result<Vec<(TraceId, TraceData)>, StorageError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut found: HashMap<TraceId, (Vec<Span>, u64)> = HashMap::new();
            let snap = {
                let st = self.state.read().await;
                st.head.collect_traces(ids, &mut found);
                for f in &st.flushing {
                    f.head.collect_traces(ids, &mut found);
                }
                self.snapshot(&st, |b| ids.iter().any(|id| b.may_contain_trace(id)))
            };
            let wanted: Arc<[TraceId]> = ids.into();
            let reads = snap.blocks.iter().map(|meta| {
                let (objects, root, meta) = self.block_handles(meta);
                let wanted = Arc::clone(&wanted);
                let footers = Arc::clone(&self.footers);
                async move {
                    faultline_block::read_traces_cached(
                        objects.as_ref(),
                        &root,
                        &meta,
                        &wanted,
                        &footers,
                    )
                    .await
                }
            });
            let read = run_reads(reads).await;
            match read {
                Ok(parts) => {
                    for span in parts.into_iter().flatten() {
                        found.entry(span.trace_id).or_default().0.push(span);
                    }
                    let mut out = Vec::with_capacity(found.len());
                    for id in ids {
                        if let Some((spans, dropped)) = found.remove(id) {
                            out.push((*id, self.finish_trace(spans, dropped)));
                        }
                    }
                    return Ok(out);
                }
                Err(e) => self.retry_or_fail(e, &snap, attempt).await?,
            }
        }
    }

    /// Owned handles for reading one block, so the read future borrows nothing from the
    /// caller (query futures must be `Send + 'static` for HTTP handlers and `tokio::spawn`).
    fn block_handles(
        &self,
        meta: &Arc<BlockMeta>,
    ) -> (Arc<dyn ObjectStore>, ObjectPath, Arc<BlockMeta>) {
        (
            Arc::clone(&self.config.block_store),
            self.block_root.clone(),
            Arc::clone(meta),
        )
    }

    /// The live blocks passing `keep`, and the generation they belong to.
    fn snapshot(&self, st: &State, keep: impl Fn(&BlockMeta) -> bool) -> Snapshot {
        Snapshot {
            blocks: st.blocks.iter().filter(|b| keep(b)).cloned().collect(),
            generation: st.generation,
        }
    }

    /// Decides whether a failed block read is worth another go: only when a block was removed
    /// since the snapshot (compaction or retention deleted it under the query).
    async fn retry_or_fail(
        &self,
        err: faultline_block::BlockError,
        snap: &Snapshot,
        attempt: usize,
    ) -> Result<(), StorageError> {
        let moved = self.state.read().await.generation != snap.generation;
        if moved && attempt < QUERY_ATTEMPTS {
            tracing::debug!(error = %err, "block removed during a query; retrying");
            Ok(())
        } else {
            Err(err.into())
        }
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

    /// IDs of traces with a span matching `query`, most recent matching span first, at most
    /// `query.limit`.
    ///
    /// Blocks are read newest first, a few at a time. Once `limit` traces are known, a block
    /// whose spans all started before the `limit`-th latest hit cannot change the answer and is
    /// skipped, and the rest are searched only from that time on: a search over a long range
    /// reads the recent blocks, not all of them.
    pub async fn search(&self, query: &SpanQuery) -> Result<Vec<TraceId>, StorageError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut hits: HashMap<TraceId, UnixNanos> = HashMap::new();
            let mut snap = {
                let st = self.state.read().await;
                st.head.search(query, &mut hits);
                for f in &st.flushing {
                    f.head.search(query, &mut hits);
                }
                self.snapshot(&st, |b| b.may_match(query))
            };
            snap.blocks
                .sort_by(|a, b| b.max_start.cmp(&a.max_start).then(b.id.cmp(&a.id)));
            match self.search_blocks(query, &snap.blocks, &mut hits).await {
                Ok(()) => return Ok(top_hits(hits, query.limit)),
                Err(e) => self.retry_or_fail(e, &snap, attempt).await?,
            }
        }
    }

    /// Adds the hits of `blocks` (newest first) to `hits`, skipping what cannot reach the top.
    async fn search_blocks(
        &self,
        query: &SpanQuery,
        blocks: &[Arc<BlockMeta>],
        hits: &mut HashMap<TraceId, UnixNanos>,
    ) -> Result<(), faultline_block::BlockError> {
        for wave in blocks.chunks(SEARCH_WAVE_BLOCKS) {
            // Every value in `hits` is at most its trace's latest matching start, so the
            // `limit`-th largest is at most the true `limit`-th: spans starting before it
            // cannot enter the answer, and a trace already in it keeps its later start.
            let floor = limit_floor(hits, query.limit);
            let mut q = query.clone();
            if let Some(floor) = floor {
                q.start = q.start.max(floor);
            }
            let q = Arc::new(q);
            let reads = wave
                .iter()
                .filter(|meta| floor.is_none_or(|f| meta.max_start >= f))
                .map(|meta| {
                    let (objects, root, meta) = self.block_handles(meta);
                    let footers = Arc::clone(&self.footers);
                    let q = Arc::clone(&q);
                    async move {
                        faultline_block::search_cached(objects.as_ref(), &root, &meta, &q, &footers)
                            .await
                    }
                });
            // Each part holds its block's `limit` latest traces, so the overall top `limit`
            // is among their union.
            for (start, id) in run_reads(reads).await?.into_iter().flatten() {
                let e = hits.entry(id).or_insert(start);
                *e = (*e).max(start);
            }
        }
        Ok(())
    }

    /// All service names, sorted.
    pub async fn services(&self) -> Result<Vec<String>, StorageError> {
        let st = self.state.read().await;
        let mut out: BTreeSet<&str> = st.head.operations.keys().map(String::as_str).collect();
        for f in &st.flushing {
            out.extend(f.head.operations.keys().map(String::as_str));
        }
        for b in &st.blocks {
            out.extend(b.operations.keys().map(String::as_str));
        }
        Ok(out.into_iter().map(str::to_owned).collect())
    }

    /// Operations (span name and kind) of one service, or of all services, sorted.
    pub async fn operations(
        &self,
        service: Option<&str>,
    ) -> Result<Vec<(String, SpanKind)>, StorageError> {
        let st = self.state.read().await;
        let mut set = BTreeSet::new();
        collect_operations(&st.head.operations, service, &mut set);
        for f in &st.flushing {
            collect_operations(&f.head.operations, service, &mut set);
        }
        for b in &st.blocks {
            collect_operations(&b.operations, service, &mut set);
        }
        Ok(set.into_iter().collect())
    }

    /// Calls between services (parent service → child service → count) among spans that started
    /// in `[start, end]`, rounded out to whole buckets of the blocks' edge tables (ten seconds).
    ///
    /// A call counts wherever its parent and child spans are stored, as long as the child
    /// arrived within the pairing window of its parent's head or the other way round (see
    /// `edges.rs`): blocks answer from the tables in their `meta.json`, the heads not yet
    /// written are paired now exactly as their flush will pair them. Blocks written before
    /// edge tables existed are read and count only calls stored within them.
    pub async fn dependencies(
        &self,
        start: UnixNanos,
        end: UnixNanos,
    ) -> Result<Vec<(String, String, u64)>, StorageError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut edges: BTreeMap<(String, String), i64> = BTreeMap::new();
            let snap = {
                let st = self.state.read().await;
                {
                    let carry = self
                        .carry
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    // Heads already paired have their table; the rest (a prefix is paired,
                    // the writer goes in cut order) are paired against the carry, read-only.
                    let mut unpaired = Vec::new();
                    for f in &st.flushing {
                        match f.edges.get() {
                            Some(t) => t.sum_into(start, end, &mut edges),
                            None => unpaired.push(&f.head),
                        }
                    }
                    unpaired.push(&st.head);
                    carry
                        .pair_heads(&unpaired, false)
                        .table
                        .sum_into(start, end, &mut edges);
                }
                for b in &st.blocks {
                    if let Some(t) = &b.edges {
                        t.sum_into(start, end, &mut edges);
                    }
                }
                self.snapshot(&st, |b| b.edges.is_none() && b.overlaps(start, end))
            };
            let reads = snap.blocks.iter().map(|meta| {
                let (objects, root, meta) = self.block_handles(meta);
                let footers = Arc::clone(&self.footers);
                async move {
                    let mut part = BTreeMap::new();
                    faultline_block::dependencies_cached(
                        objects.as_ref(),
                        &root,
                        &meta,
                        (start, end),
                        &mut part,
                        &footers,
                    )
                    .await
                    .map(|()| part)
                }
            });
            let read = run_reads(reads).await;
            match read {
                Ok(parts) => {
                    for (k, n) in parts.into_iter().flatten() {
                        *edges.entry(k).or_default() += i64::try_from(n).unwrap_or(i64::MAX);
                    }
                    // A call taken back in a block whose counterpart retention already deleted
                    // can leave a negative sum; it counts as none.
                    return Ok(edges
                        .into_iter()
                        .filter_map(|((p, c), n)| {
                            u64::try_from(n).ok().filter(|&n| n > 0).map(|n| (p, c, n))
                        })
                        .collect());
                }
                Err(e) => self.retry_or_fail(e, &snap, attempt).await?,
            }
        }
    }
}

/// Runs block reads, a few at a time, collecting their results or the first error.
async fn run_reads<T, F>(
    reads: impl Iterator<Item = F>,
) -> Result<Vec<T>, faultline_block::BlockError>
where
    F: std::future::Future<Output = Result<T, faultline_block::BlockError>>,
{
    // Collecting the futures first keeps closures out of the stream, which is what lets the
    // surrounding future be `Send` for any caller lifetime.
    let reads: Vec<F> = reads.collect();
    futures::stream::iter(reads)
        .buffer_unordered(QUERY_BLOCK_CONCURRENCY)
        .try_collect()
        .await
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

/// The `limit`-th latest start among `hits`, or `None` while there are fewer hits.
fn limit_floor(hits: &HashMap<TraceId, UnixNanos>, limit: usize) -> Option<UnixNanos> {
    if limit == 0 || hits.len() < limit {
        return None;
    }
    let mut starts: Vec<UnixNanos> = hits.values().copied().collect();
    let (_, kth, _) = starts.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
    Some(*kth)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{batch, span, trace_id};
    use crate::{AckMode, StoreConfig};
    use object_store::memory::InMemory;
    use std::time::Duration;

    fn config(dir: &std::path::Path, objects: Arc<InMemory>) -> StoreConfig {
        StoreConfig {
            data_dir: dir.to_owned(),
            block_store: objects,
            max_head_bytes: 64 * 1024 * 1024,
            max_head_age: Duration::from_secs(3600),
            retention: Duration::from_secs(3600 * 24 * 365 * 100),
            max_spans_per_trace: 1000,
            memory_budget_bytes: 256 * 1024 * 1024,
            maintenance_interval: Duration::from_secs(3600),
        }
    }

    /// Writes `blocks` blocks of ten one-span traces each; trace `t`'s span starts at
    /// `start(t)`. Returns every (start, trace) written.
    async fn blocks_of(
        store: &Store,
        blocks: u64,
        start: impl Fn(u64) -> u64,
    ) -> Vec<(UnixNanos, TraceId)> {
        let mut all = Vec::new();
        for b in 0..blocks {
            for t in b * 10..b * 10 + 10 {
                let s = span(t, t + 1, start(t), "svc", "op");
                all.push((s.start, s.trace_id));
                store
                    .append(batch(vec![s]), AckMode::Durable)
                    .await
                    .unwrap();
            }
            store.flush().await.unwrap();
        }
        all
    }

    fn newest(mut all: Vec<(UnixNanos, TraceId)>, limit: usize) -> Vec<TraceId> {
        all.sort_unstable_by(|a, b| b.cmp(a));
        all.into_iter().take(limit).map(|(_, id)| id).collect()
    }

    fn query(limit: usize) -> SpanQuery {
        SpanQuery {
            service: Some("svc".into()),
            end: UnixNanos(u64::MAX),
            limit,
            ..SpanQuery::default()
        }
    }

    #[tokio::test]
    async fn search_stops_reading_blocks_older_than_its_answer() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Arc::new(InMemory::new());
        let store = Store::open(config(dir.path(), Arc::clone(&objects)))
            .await
            .unwrap();
        // Each block holds a later stretch of time than the one before.
        let all = blocks_of(&store, 6, |t| 1_000_000 + t * 1_000).await;
        // Flushes load each new block's footer.
        assert_eq!(store.footers.len(), 6);
        store.shutdown().await.unwrap();
        drop(store);
        // A reopened store starts with no footers: the ones a search loads show what it read.
        let store = Store::open(config(dir.path(), objects)).await.unwrap();
        assert!(store.footers.is_empty());
        assert_eq!(store.search(&query(5)).await.unwrap(), newest(all, 5));
        // The newest wave answered it; the four older blocks were never opened.
        assert_eq!(store.footers.len(), SEARCH_WAVE_BLOCKS);
    }

    #[tokio::test]
    async fn search_over_blocks_overlapping_in_time_finds_the_true_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(config(dir.path(), Arc::new(InMemory::new())))
            .await
            .unwrap();
        // Starts interleave across blocks, so no block can be skipped wholesale; the later
        // waves are searched only from the floor on and must still find what lies above it.
        let all = blocks_of(&store, 5, |t| 1_000_000 + (t % 10) * 1_000 + t).await;
        // One more span for an old trace, later than everything: its trace moves to the top.
        let late = span(3, 999, 5_000_000, "svc", "op");
        store
            .append(batch(vec![late.clone()]), AckMode::Durable)
            .await
            .unwrap();
        store.flush().await.unwrap();
        let mut expected: Vec<(UnixNanos, TraceId)> = all
            .into_iter()
            .filter(|(_, id)| *id != trace_id(3))
            .collect();
        expected.push((late.start, late.trace_id));
        for limit in [1, 3, 7, 10, 49, 50, 100] {
            assert_eq!(
                store.search(&query(limit)).await.unwrap(),
                newest(expected.clone(), limit),
                "limit {limit}"
            );
        }
    }

    #[test]
    fn limit_floor_is_the_limit_th_latest() {
        let hits: HashMap<TraceId, UnixNanos> =
            (1..=5).map(|i| (trace_id(i), UnixNanos(i * 10))).collect();
        assert_eq!(limit_floor(&hits, 0), None);
        assert_eq!(limit_floor(&hits, 1), Some(UnixNanos(50)));
        assert_eq!(limit_floor(&hits, 5), Some(UnixNanos(10)));
        assert_eq!(limit_floor(&hits, 6), None);
    }
}
