//! Block lifecycle on the object store: write (data, then meta as the commit point), list,
//! find orphans, delete (meta first).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use faultline_model::{Span, SpanKind, TraceId, UnixNanos};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::schema::FORMAT_VERSION;
use crate::{encode, BlockError, BlockId, BlockInfo, BlockMeta, BlockSettings, TraceBloom};

/// Name of the data file inside a block directory.
pub const DATA_FILE: &str = "data.parquet";
/// Name of the metadata file inside a block directory; its presence commits the block.
pub const META_FILE: &str = "meta.json";

/// `<root>/<id>/data.parquet`.
pub fn data_path(root: &Path, id: &BlockId) -> Path {
    root.clone().join(id.0.as_str()).join(DATA_FILE)
}

/// `<root>/<id>/meta.json`.
pub fn meta_path(root: &Path, id: &BlockId) -> Path {
    root.clone().join(id.0.as_str()).join(META_FILE)
}

/// Everything about a block's spans that `meta.json` records.
struct SpanStats {
    span_count: u64,
    trace_count: u64,
    min_start: UnixNanos,
    max_start: UnixNanos,
    max_end: UnixNanos,
    operations: BTreeMap<String, BTreeSet<(String, SpanKind)>>,
    bloom: TraceBloom,
}

/// Statistics of a block's (non-empty) spans from what sorting them found and the operations
/// the encoder found: neither reads the spans again (on a flushed head each read of a span
/// is a cache miss).
fn stats(spans: usize, order: &BlockOrder, operations: encode::Operations) -> SpanStats {
    let mut bloom = TraceBloom::with_capacity(order.traces.len());
    for id in &order.traces {
        bloom.insert(id);
    }
    SpanStats {
        span_count: spans as u64,
        trace_count: order.traces.len() as u64,
        min_start: order.min_start,
        max_start: order.max_start,
        max_end: order.max_end,
        operations,
        bloom,
    }
}

/// Spans a block can be written from in place, without first copying them into a `Vec`.
pub trait SpanSource: Send + Sync + 'static {
    /// The spans to write, in any order; best in the order they lie in memory, which is the
    /// order the writer's first pass reads them in. A span given more than once is written
    /// once (see [`write_block`]).
    fn spans(&self) -> Vec<&Span>;
}

/// Sorts spans by (trace ID, start), writes `<root>/<id>/data.parquet`, then
/// `<root>/<id>/meta.json` last: the meta file is the commit point (a block without
/// `meta.json` does not exist).
///
/// A span given more than once (same trace ID, span ID, kind, start, end and name: a
/// client's retried batch, a WAL replay, two blocks being compacted that both hold it) is
/// written once, the first copy given.
pub async fn write_block(
    store: &dyn ObjectStore,
    root: &Path,
    spans: Vec<Span>,
    info: BlockInfo,
    settings: &BlockSettings,
) -> Result<BlockMeta, BlockError> {
    if spans.is_empty() {
        return Err(BlockError::Empty);
    }
    let settings = settings.clone();
    // Sorting and zstd are CPU-bound for a second or more on big blocks: keep them off the
    // async workers.
    let encoded = tokio::task::spawn_blocking(move || encode_sorted(&spans, &settings))
        .await
        .map_err(|e| BlockError::Task(e.to_string()))??;
    commit(store, root, encoded, info).await
}

/// [`write_block`] from spans that stay where they are (an in-memory head being flushed):
/// only references are sorted, so writing a block does not double the memory its spans take.
pub async fn write_block_from<T: SpanSource>(
    store: &dyn ObjectStore,
    root: &Path,
    source: std::sync::Arc<T>,
    info: BlockInfo,
    settings: &BlockSettings,
) -> Result<BlockMeta, BlockError> {
    let settings = settings.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let spans = source.spans();
        if spans.is_empty() {
            return Err(BlockError::Empty);
        }
        encode_sorted(&spans, &settings)
    })
    .await
    .map_err(|e| BlockError::Task(e.to_string()))??;
    commit(store, root, encoded, info).await
}

/// A block's data file and what its meta needs, before anything is written.
struct Encoded {
    data: Vec<u8>,
    stats: SpanStats,
    min_trace_id: TraceId,
    max_trace_id: TraceId,
}

/// Sorts (non-empty) `spans` into block order and encodes them.
///
/// Only references are sorted, so that neither a flushed head's spans nor owned ones are
/// moved; the encoder also gets the kept spans in the order given (for a head, the order
/// they lie in memory) for its planning pass.
fn encode_sorted<S: Borrow<Span>>(
    spans: &[S],
    settings: &BlockSettings,
) -> Result<Encoded, BlockError> {
    let order = sort_for_block(spans);
    let sorted: Vec<&Span> = order
        .from
        .iter()
        .filter_map(|i| spans.get(*i))
        .map(Borrow::borrow)
        .collect();
    // Row of each given span (`NOT_KEPT` for a repeat), then the kept ones in given order
    // and each row's position among them: two linear passes, no second sort.
    const NOT_KEPT: u32 = u32::MAX;
    let too_many = || BlockError::Settings("over 2^32 - 1 spans in one block".into());
    let mut row_of = vec![NOT_KEPT; spans.len()];
    for (row, i) in order.from.iter().enumerate() {
        if let Some(r) = row_of.get_mut(*i) {
            *r = u32::try_from(row)
                .ok()
                .filter(|r| *r != NOT_KEPT)
                .ok_or_else(too_many)?;
        }
    }
    let mut planned: Vec<&Span> = Vec::with_capacity(sorted.len());
    let mut plan_of = vec![0u32; sorted.len()];
    for row in row_of.into_iter().filter(|r| *r != NOT_KEPT) {
        if let (Some(s), Some(p)) = (sorted.get(row as usize), plan_of.get_mut(row as usize)) {
            *p = u32::try_from(planned.len()).map_err(|_| too_many())?;
            planned.push(s);
        }
    }
    let encode::Encoding { data, operations } =
        encode::encode(&sorted, &planned, &plan_of, settings)?;
    Ok(Encoded {
        data,
        stats: stats(sorted.len(), &order, operations),
        min_trace_id: order.traces.first().copied().unwrap_or_default(),
        max_trace_id: order.traces.last().copied().unwrap_or_default(),
    })
}

/// What sorting a block's spans found out: the block's rows, its trace IDs in block order,
/// each once, and the extremes of its spans' times.
struct BlockOrder {
    /// Row `k` is the span given at `from[k]`; repeats have no row.
    from: Vec<usize>,
    traces: Vec<TraceId>,
    min_start: UnixNanos,
    max_start: UnixNanos,
    max_end: UnixNanos,
}

/// Orders spans by (trace ID, start, span ID), keeping the given order of equal ones, and
/// leaves repeated spans (see [`write_block`]) out.
///
/// Sorting the spans themselves compared IDs through two references per comparison, most of
/// them cache misses on a head of borrowed spans; this sorts contiguous keys (IDs read as
/// big-endian integers, which order like their bytes).
fn sort_for_block<'s, S: Borrow<Span>>(spans: &'s [S]) -> BlockOrder {
    let mut min_start = UnixNanos(u64::MAX);
    let (mut max_start, mut max_end) = (UnixNanos(0), UnixNanos(0));
    let mut order: Vec<(u128, u64, u64, usize)> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.borrow();
            min_start = min_start.min(s.start);
            max_start = max_start.max(s.start);
            max_end = max_end.max(s.end);
            (
                u128::from_be_bytes(s.trace_id.0),
                s.start.0,
                u64::from_be_bytes(s.span_id.0),
                i,
            )
        })
        .collect();
    // The index makes every key distinct, so an unstable sort gives the stable order.
    order.sort_unstable();
    let mut traces: Vec<TraceId> = Vec::new();
    // Copies of a span share the key up to the index, so they are neighbours; only spans
    // whose (trace, start, span ID) repeats (hardly any but copies) are compared further:
    // with the kept spans of the run one by one while it is short, through a set once it
    // is long (a client can send a whole trace of spans sharing the key; comparing each
    // with all before it would take quadratic time).
    const LONG_RUN: usize = 16;
    let rest = |t: &'s Span| (t.kind, t.end, t.name.as_str());
    let mut long_run: HashSet<(SpanKind, UnixNanos, &str)> = HashSet::new();
    let mut from: Vec<usize> = Vec::with_capacity(order.len());
    let mut run = 0;
    for (k, &(id, start, span_id, i)) in order.iter().enumerate() {
        let prev = k.checked_sub(1).and_then(|p| order.get(p));
        if prev.is_none_or(|&(p_id, p_start, p_span, _)| {
            (p_id, p_start, p_span) != (id, start, span_id)
        }) {
            run = from.len();
            long_run.clear();
            let id = TraceId(id.to_be_bytes());
            if traces.last() != Some(&id) {
                traces.push(id);
            }
        } else if let Some(s) = spans.get(i).map(Borrow::borrow) {
            let kept = from.get(run..).unwrap_or_default();
            let span_of = |j: &usize| spans.get(*j).map(Borrow::borrow);
            let copy = if kept.len() < LONG_RUN {
                kept.iter().filter_map(span_of).any(|t| rest(t) == rest(s))
            } else {
                if long_run.is_empty() {
                    long_run.extend(kept.iter().filter_map(span_of).map(rest));
                }
                !long_run.insert(rest(s))
            };
            if copy {
                continue;
            }
        }
        from.push(i);
    }
    BlockOrder {
        from,
        traces,
        min_start,
        max_start,
        max_end,
    }
}

/// Writes the data file, then `meta.json` as the commit point.
async fn commit(
    store: &dyn ObjectStore,
    root: &Path,
    encoded: Encoded,
    info: BlockInfo,
) -> Result<BlockMeta, BlockError> {
    let Encoded {
        data,
        stats: st,
        min_trace_id,
        max_trace_id,
    } = encoded;
    let id = BlockId::new();
    let data_bytes = data.len() as u64;
    store
        .put(&data_path(root, &id), PutPayload::from(data))
        .await?;
    let meta = BlockMeta {
        id,
        format_version: FORMAT_VERSION,
        span_count: st.span_count,
        trace_count: st.trace_count,
        data_bytes,
        min_start: st.min_start,
        max_start: st.max_start,
        max_end: st.max_end,
        min_trace_id,
        max_trace_id,
        operations: st.operations,
        trace_bloom: st.bloom,
        wal_through: info.wal_through,
        sources: info.sources,
        level: info.level,
        created_at: UnixNanos::now(),
        edges: info.edges,
    };
    store
        .put(
            &meta_path(root, &meta.id),
            PutPayload::from(meta.to_json()?),
        )
        .await?;
    Ok(meta)
}

/// Block directories under `root`: name → whether `meta.json` is present.
pub(crate) async fn block_dirs(
    store: &dyn ObjectStore,
    root: &Path,
) -> Result<BTreeMap<String, bool>, BlockError> {
    let mut dirs: BTreeMap<String, bool> = BTreeMap::new();
    let mut listing = store.list(Some(root));
    while let Some(obj) = listing.next().await {
        let obj = obj?;
        let Some(mut parts) = obj.location.prefix_match(root) else {
            continue;
        };
        let (Some(dir), Some(file), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let has_meta = dirs.entry(dir.as_ref().to_owned()).or_default();
        *has_meta |= file.as_ref() == META_FILE;
    }
    Ok(dirs)
}

/// Committed blocks under `root` (meta present and valid), sorted by ID. A `meta.json` that
/// does not parse is skipped with a warning rather than failing the whole listing.
pub async fn list_blocks(
    store: &dyn ObjectStore,
    root: &Path,
) -> Result<Vec<BlockMeta>, BlockError> {
    read_metas(store, root, BlockMeta::from_json, |m| &m.id).await
}

/// Every committed block's `meta.json` under `root` decoded with `parse`, sorted by ID; for
/// both signals' block trees. A meta that does not parse, or names another block, is skipped
/// with a warning rather than failing the whole listing.
pub(crate) async fn read_metas<M: Send>(
    store: &dyn ObjectStore,
    root: &Path,
    parse: fn(&[u8]) -> Result<M, BlockError>,
    id_of: fn(&M) -> &BlockId,
) -> Result<Vec<M>, BlockError> {
    let dirs = block_dirs(store, root).await?;
    let ids: Vec<BlockId> = dirs
        .into_iter()
        .filter(|(_, has_meta)| *has_meta)
        .map(|(dir, _)| BlockId(dir))
        .collect();
    let metas: Vec<Option<M>> = futures::stream::iter(ids)
        .map(|id| async move {
            let path = meta_path(root, &id);
            let bytes = match store.get(&path).await {
                Ok(got) => got.bytes().await?,
                // Deleted since the listing: it is simply gone.
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(BlockError::from(e)),
            };
            match parse(&bytes) {
                Ok(meta) if *id_of(&meta) == id => Ok(Some(meta)),
                Ok(meta) => {
                    tracing::warn!(%path, found = %id_of(&meta), "block meta names another block; skipped");
                    Ok(None)
                }
                Err(e) => {
                    tracing::warn!(%path, error = %e, "unreadable block meta; skipped");
                    Ok(None)
                }
            }
        })
        .buffered(16)
        .try_collect()
        .await?;
    let mut metas: Vec<M> = metas.into_iter().flatten().collect();
    metas.sort_by(|a, b| id_of(a).cmp(id_of(b)));
    Ok(metas)
}

/// Block directories with files but no `meta.json`: leftovers of a crash during write or
/// delete, for garbage collection. A block being written right now also looks like this, so a
/// collector must only remove orphans that no writer of this process is producing.
pub async fn list_orphans(
    store: &dyn ObjectStore,
    root: &Path,
) -> Result<Vec<BlockId>, BlockError> {
    Ok(block_dirs(store, root)
        .await?
        .into_iter()
        .filter(|(_, has_meta)| !*has_meta)
        .map(|(dir, _)| BlockId(dir))
        .collect())
}

/// Deletes a block: `meta.json` first (uncommitting it), then the data. Missing files are not
/// an error, so a crashed delete can simply be repeated.
pub async fn delete_block(
    store: &dyn ObjectStore,
    root: &Path,
    id: &BlockId,
) -> Result<(), BlockError> {
    for path in [meta_path(root, id), data_path(root, id)] {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use faultline_model::{SpanId, TraceId, UnixNanos};

    use super::*;
    use crate::testgen;

    #[test]
    fn block_order_is_the_stable_sort_by_trace_start_and_span() {
        let mut rng = testgen::Rng::new(7);
        // Few distinct values, so that many spans tie on all three and their given order
        // must survive; the span name tells them apart.
        let spans: Vec<Span> = (0..5000)
            .map(|i| {
                let mut trace = [0u8; 16];
                trace[0] = rng.below(3) as u8;
                trace[15] = rng.below(4) as u8;
                Span {
                    trace_id: TraceId(trace),
                    span_id: SpanId((rng.below(3) << 56 | rng.below(2)).to_be_bytes()),
                    start: UnixNanos(rng.below(4) << 40 | rng.below(2)),
                    end: UnixNanos(rng.below(1 << 42)),
                    name: i.to_string().into(),
                    ..Default::default()
                }
            })
            .collect();
        let mut expected: Vec<&Span> = spans.iter().collect();
        expected.sort_by(|a, b| {
            (a.trace_id, a.start, a.span_id).cmp(&(b.trace_id, b.start, b.span_id))
        });
        let borrowed: Vec<&Span> = spans.iter().collect();
        let order = sort_for_block(&borrowed);
        let rows: Vec<&Span> = order.from.iter().map(|i| borrowed[*i]).collect();
        assert_eq!(rows, expected);
        let mut traces: Vec<TraceId> = expected.iter().map(|s| s.trace_id).collect();
        traces.dedup();
        assert_eq!(order.traces, traces);
        let starts = || expected.iter().map(|s| s.start);
        assert_eq!(Some(order.min_start), starts().min());
        assert_eq!(Some(order.max_start), starts().max());
        assert_eq!(Some(order.max_end), expected.iter().map(|s| s.end).max());
        // Owned spans order the same.
        let owned = sort_for_block(&spans);
        assert_eq!(owned.from, order.from);
        assert!(sort_for_block::<Span>(&[]).from.is_empty());
    }

    #[test]
    fn repeats_are_left_out_of_short_and_long_runs_alike() {
        // 3,000 spans sharing (trace, start, span ID), their names repeating every 1,000:
        // past the first 16 the run is checked through a set.
        let spans: Vec<Span> = (0..3000)
            .map(|i| Span {
                trace_id: TraceId([1; 16]),
                span_id: SpanId([2; 8]),
                start: UnixNanos(5),
                end: UnixNanos(9),
                name: (i % 1000).to_string().into(),
                ..Default::default()
            })
            .collect();
        assert_eq!(sort_for_block(&spans).from, (0..1000).collect::<Vec<_>>());
        // A short run: five spans, each given twice, the copies after all five.
        let short: Vec<Span> = spans.iter().take(5).cycle().take(10).cloned().collect();
        assert_eq!(sort_for_block(&short).from, vec![0, 1, 2, 3, 4]);
        // One field apart is another span, in either kind of run.
        let mut apart = spans.clone();
        for (i, s) in apart.iter_mut().enumerate().skip(1000) {
            s.end = UnixNanos(10 + i as u64 / 1000);
        }
        assert_eq!(sort_for_block(&apart).from.len(), 3000);
    }
}
