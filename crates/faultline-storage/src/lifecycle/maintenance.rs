//! Compaction (merging small blocks into larger ones) and retention (deleting old blocks).
//!
//! A compaction commits by writing the merged block, whose `meta.json` names its inputs in
//! `sources`; only then are the inputs deleted. A crash in between leaves inputs that the next
//! open recognises as superseded and deletes, so no span is ever visible twice or lost.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use faultline_block::{
    delete_block, list_orphans, read_all, write_block, BlockId, BlockInfo, BlockMeta, EdgeTable,
};
use faultline_model::UnixNanos;

use crate::config::StoreTuning;
use crate::store::Store;
use crate::StorageError;

/// Most compactions one maintenance run performs, so a large backlog does not starve
/// retention or hold the maintenance lock for long.
const MAX_COMPACTIONS_PER_RUN: usize = 4;

impl Store {
    /// Runs one round of maintenance now: retries deletions that failed before, applies
    /// retention, then compacts while there is work (up to a few merges). The background task
    /// calls this every `maintenance_interval`; tests and tools may call it directly.
    pub async fn run_maintenance(&self) -> Result<(), StorageError> {
        let _one_at_a_time = self.maintenance_lock.lock().await;
        self.sweep_orphans().await?;
        self.retry_deletes().await?;
        self.apply_retention(UnixNanos::now()).await?;
        for _ in 0..MAX_COMPACTIONS_PER_RUN {
            if !self.compact_once().await? {
                break;
            }
        }
        Ok(())
    }

    /// Deletes half-written blocks left by a failed block write. Only runs after such a
    /// failure, and only while no block write can be in progress: flushes are held off by the
    /// flush lock, compactions by the maintenance lock the caller holds.
    async fn sweep_orphans(&self) -> Result<(), StorageError> {
        if !self.orphans_possible.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let _no_flush = self.flush_lock.lock().await;
        let objects = self.config.block_store.as_ref();
        let swept = async {
            for orphan in list_orphans(objects, &self.block_root).await? {
                tracing::info!(block = %orphan, "deleting a block left half-written by a failed write");
                delete_block(objects, &self.block_root, &orphan).await?;
            }
            Ok::<(), StorageError>(())
        }
        .await;
        if swept.is_err() {
            self.orphans_possible.store(true, Ordering::Relaxed);
        }
        swept
    }

    /// Deletes blocks whose removal failed earlier.
    async fn retry_deletes(&self) -> Result<(), StorageError> {
        let ids = std::mem::take(&mut *self.pending_deletes.lock().await);
        self.delete_blocks(ids).await;
        if self.pending_deletes.lock().await.is_empty() {
            Ok(())
        } else {
            Err(StorageError::Corrupt {
                what: "block store".into(),
                detail: "some retired blocks could not be deleted yet".into(),
            })
        }
    }

    /// Deletes blocks already removed from the live list; failures are kept for a retry.
    async fn delete_blocks(&self, ids: Vec<BlockId>) {
        for id in ids {
            self.footers.remove(&id);
            if let Err(e) =
                delete_block(self.config.block_store.as_ref(), &self.block_root, &id).await
            {
                tracing::warn!(block = %id, error = %e, "block deletion failed; will retry");
                self.pending_deletes.lock().await.push(id);
            }
        }
    }

    /// Deletes every block whose newest span ended before `now - retention`.
    pub(crate) async fn apply_retention(&self, now: UnixNanos) -> Result<(), StorageError> {
        let retention = u64::try_from(self.config.retention.as_nanos()).unwrap_or(u64::MAX);
        let cutoff = UnixNanos(now.0.saturating_sub(retention));
        let expired: Vec<BlockId> = {
            let mut st = self.state.write().await;
            let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut st.blocks)
                .into_iter()
                .partition(|b| b.max_end < cutoff);
            st.blocks = live;
            if !expired.is_empty() {
                st.generation += 1;
            }
            expired.iter().map(|b| b.id.clone()).collect()
        };
        if !expired.is_empty() {
            tracing::info!(blocks = expired.len(), "deleting blocks past retention");
            self.counters
                .blocks_expired
                .fetch_add(expired.len() as u64, Ordering::Relaxed);
        }
        self.delete_blocks(expired).await;
        Ok(())
    }

    /// Performs one compaction if one is due; returns whether it did.
    pub(crate) async fn compact_once(&self) -> Result<bool, StorageError> {
        // An input whose own sources are not yet deleted must not be merged away: once it is
        // gone, nothing would mark those leftovers as superseded.
        if !self.pending_deletes.lock().await.is_empty() {
            return Ok(false);
        }
        let blocks = self.state.read().await.blocks.clone();
        let Some((level, inputs)) = plan_compaction(&self.tuning, &blocks) else {
            return Ok(false);
        };
        let objects = self.config.block_store.as_ref();
        let mut spans = Vec::new();
        // The merged block's dependencies are its inputs' tables summed: each input's calls
        // were resolved when it was written, across heads, so pairing the merged spans again
        // would count calls between inputs twice. An input written before edge tables gets
        // the table of its own spans, which is what queries counted for it.
        let mut edges = EdgeTable::new(crate::edges::EDGE_BUCKET_SECS);
        for meta in &inputs {
            let part = read_all(objects, &self.block_root, meta).await?;
            if !meta.edges.as_ref().is_some_and(|t| edges.merge(t)) {
                let own = crate::edges::Carry::default()
                    .pair_spans(&part, false)
                    .table;
                edges.merge(&own);
            }
            spans.extend(part);
        }
        // Crash replays and client retries can put one span into two blocks: `write_block`
        // writes it once.
        let info = BlockInfo {
            wal_through: inputs.iter().map(|b| b.wal_through).max().unwrap_or(0),
            sources: inputs.iter().map(|b| b.id.clone()).collect(),
            level: level + 1,
            edges: Some(edges),
        };
        let merged = write_block(
            objects,
            &self.block_root,
            spans,
            info,
            &self.tuning.block_settings,
        )
        .await
        .inspect_err(|_| self.orphans_possible.store(true, Ordering::Relaxed))?;
        tracing::info!(
            block = %merged.id,
            level = merged.level,
            inputs = inputs.len(),
            spans = merged.span_count,
            bytes = merged.data_bytes,
            "compacted blocks"
        );
        let sources = merged.sources.clone();
        self.warm_footer(&merged).await;
        {
            let mut st = self.state.write().await;
            st.blocks.retain(|b| !sources.contains(&b.id));
            let merged = Arc::new(merged);
            let at = st.blocks.partition_point(|b| b.id < merged.id);
            st.blocks.insert(at, merged);
            st.generation += 1;
        }
        self.counters.compactions.fetch_add(1, Ordering::Relaxed);
        self.delete_blocks(sources).await;
        Ok(true)
    }
}

/// Picks the inputs of the next compaction: the oldest small blocks (below both
/// `compaction_small_block_bytes` and `compaction_small_block_spans`) of the lowest level that
/// has enough of them, as many as fit in `compaction_max_blocks` and `compaction_max_spans`.
fn plan_compaction(
    t: &StoreTuning,
    blocks: &[Arc<BlockMeta>],
) -> Option<(u32, Vec<Arc<BlockMeta>>)> {
    for level in 0..t.compaction_max_level {
        // A block that alone fills a compaction's span budget has nothing to merge with.
        let mut small: Vec<&Arc<BlockMeta>> = blocks
            .iter()
            .filter(|b| {
                b.level == level
                    && b.data_bytes < t.compaction_small_block_bytes
                    && b.span_count < t.compaction_small_block_spans
                    && b.span_count < t.compaction_max_spans
            })
            .collect();
        if small.len() < t.compaction_min_blocks.max(2) {
            continue;
        }
        small.sort_by(|a, b| a.min_start.cmp(&b.min_start).then(a.id.cmp(&b.id)));
        let mut picked = Vec::new();
        let mut spans = 0u64;
        for b in small {
            if picked.len() >= t.compaction_max_blocks
                || spans + b.span_count > t.compaction_max_spans
            {
                break;
            }
            spans += b.span_count;
            picked.push(Arc::clone(b));
        }
        if picked.len() >= 2 {
            return Some((level, picked));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_block::{BlockId, TraceBloom};
    use faultline_model::TraceId;

    fn meta(level: u32, spans: u64, bytes: u64, start: u64) -> Arc<BlockMeta> {
        Arc::new(BlockMeta {
            id: BlockId::new(),
            format_version: faultline_block::FORMAT_VERSION,
            span_count: spans,
            trace_count: 1,
            data_bytes: bytes,
            min_start: UnixNanos(start),
            max_start: UnixNanos(start),
            max_end: UnixNanos(start),
            min_trace_id: TraceId([1; 16]),
            max_trace_id: TraceId([1; 16]),
            operations: Default::default(),
            trace_bloom: TraceBloom::with_capacity(1),
            wal_through: 1,
            sources: Vec::new(),
            level,
            created_at: UnixNanos(start),
            edges: None,
        })
    }

    fn tuning() -> StoreTuning {
        StoreTuning {
            compaction_min_blocks: 3,
            compaction_max_blocks: 4,
            compaction_small_block_bytes: 1_000,
            compaction_max_spans: 100,
            compaction_small_block_spans: u64::MAX,
            compaction_max_level: 2,
            ..StoreTuning::default()
        }
    }

    #[test]
    fn waits_for_enough_small_blocks() {
        let blocks = vec![
            meta(0, 10, 10, 1),
            meta(0, 10, 10, 2),
            meta(0, 10, 5_000, 3),
        ];
        assert!(plan_compaction(&tuning(), &blocks).is_none());
    }

    #[test]
    fn merges_the_oldest_within_the_limits() {
        let blocks: Vec<_> = (0..6).rev().map(|i| meta(0, 30, 10, i)).collect();
        let (level, picked) = plan_compaction(&tuning(), &blocks).unwrap();
        assert_eq!(level, 0);
        // 100 spans allow three blocks of 30, the oldest ones.
        let starts: Vec<u64> = picked.iter().map(|b| b.min_start.0).collect();
        assert_eq!(starts, vec![0, 1, 2]);
    }

    #[test]
    fn skips_blocks_too_big_to_merge_and_the_top_level() {
        let mut blocks = vec![meta(0, 500, 10, 0)];
        blocks.extend((1..4).map(|i| meta(0, 10, 10, i)));
        let (_, picked) = plan_compaction(&tuning(), &blocks).unwrap();
        assert_eq!(picked.len(), 3);
        assert!(picked.iter().all(|b| b.span_count == 10));
        let top: Vec<_> = (0..5).map(|i| meta(2, 10, 10, i)).collect();
        assert!(plan_compaction(&tuning(), &top).is_none());
        let mid: Vec<_> = (0..5).map(|i| meta(1, 10, 10, i)).collect();
        assert_eq!(plan_compaction(&tuning(), &mid).unwrap().0, 1);
    }

    #[test]
    fn leaves_blocks_with_enough_spans_alone() {
        // Five blocks of 70 spans (cut for size), three of 10 (cut for age): with the knob at
        // 60 only the three small ones are merged, and without them nothing is due.
        let t = StoreTuning {
            compaction_small_block_spans: 60,
            ..tuning()
        };
        // Off, two of the big blocks are merged (as many as `compaction_max_spans` allows).
        let big: Vec<_> = (0..4).map(|i| meta(0, 50, 10, i)).collect();
        assert_eq!(plan_compaction(&tuning(), &big).unwrap().1.len(), 2);
        let t50 = StoreTuning {
            compaction_small_block_spans: 50,
            ..tuning()
        };
        assert!(plan_compaction(&t50, &big).is_none());
        let mut blocks: Vec<_> = (0..5).map(|i| meta(0, 70, 10, i)).collect();
        blocks.extend((5..8).map(|i| meta(0, 10, 10, i)));
        let (_, picked) = plan_compaction(&t, &blocks).unwrap();
        assert_eq!(picked.len(), 3);
        assert!(picked.iter().all(|b| b.span_count == 10));
        blocks.truncate(6);
        assert!(plan_compaction(&t, &blocks).is_none());
    }
}
