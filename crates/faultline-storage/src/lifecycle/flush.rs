//! Cutting the head and writing cut heads as level-0 blocks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use faultline_block::{write_block_from, BlockInfo};

use crate::head::FrozenHead;
use crate::store::Store;
use crate::{wal, StorageError};

impl Store {
    /// Whether the head should be cut now (over its size or age).
    pub(crate) async fn head_due(&self) -> bool {
        let st = self.state.read().await;
        !st.head.is_empty()
            && (st.head.bytes >= self.cut_bytes()
                || st
                    .head_since
                    .is_some_and(|t| t.elapsed() >= self.config.max_head_age))
    }

    /// Cuts the head now (if it holds anything) and waits until it, and every head cut before
    /// it, is committed as a block and its WAL segments are deleted.
    pub async fn flush(&self) -> Result<(), StorageError> {
        let _order = self.flush_lock.lock().await;
        self.cut_head().await?;
        self.flush_cut_heads_locked().await
    }

    /// Writes heads already cut (after an earlier failure) as blocks.
    pub(crate) async fn flush_cut_heads(&self) -> Result<(), StorageError> {
        let _order = self.flush_lock.lock().await;
        self.flush_cut_heads_locked().await
    }

    /// Swaps in an empty head and moves to a new WAL segment, in one step under the state lock:
    /// every record queued before the rotation is in the old head, every later one in the new
    /// head. The old head stays queryable until its block is committed.
    ///
    /// Cuts may run while heads are written, and two cuts at once are safe: the rotation is
    /// queued and the segment number taken under the same state lock, so rotations reach the
    /// WAL writer in segment order.
    pub(crate) async fn cut_head(&self) -> Result<(), StorageError> {
        let permit = self.wal.reserve().await?;
        let (pending, wal_through) = {
            let mut st = self.state.write().await;
            if st.head.is_empty() {
                return Ok(());
            }
            let pending = permit.rotate(&self.wal_dir);
            let head = std::mem::take(&mut st.head);
            let wal_through = st.wal_seq;
            st.flushing.push_back(Arc::new(FrozenHead {
                head,
                wal_through,
                edges: std::sync::OnceLock::new(),
            }));
            st.wal_seq += 1;
            st.head_since = None;
            (pending, wal_through)
        };
        let closed = pending.wait().await?;
        if closed != wal_through {
            // Never expected; deleting segments by a wrong number could lose data, so stop.
            return Err(StorageError::Corrupt {
                what: "WAL".into(),
                detail: format!("rotation closed segment {closed}, expected {wal_through}"),
            });
        }
        Ok(())
    }

    /// The cut head's service dependencies, pairing it with the carry (and adding it to the
    /// carry) the first time; a retried write gets the same table.
    async fn pair_edges(
        &self,
        frozen: &Arc<FrozenHead>,
    ) -> Result<faultline_block::EdgeTable, StorageError> {
        let carry = Arc::clone(&self.carry);
        let frozen = Arc::clone(frozen);
        let (table, expired) = tokio::task::spawn_blocking(move || {
            let mut carry = carry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(t) = frozen.edges.get() {
                return (t.clone(), carry.expired_orphans);
            }
            let mut pairing = carry.pair_heads(&[&frozen.head], true);
            carry.advance(&mut pairing);
            let table = frozen.edges.get_or_init(|| pairing.table).clone();
            (table, carry.expired_orphans)
        })
        .await
        .map_err(|e| StorageError::io(&self.wal_dir, std::io::Error::other(e)))?;
        // Published here so that `stats` (a `/metrics` scrape) never waits for a pairing.
        self.counters
            .dependency_orphans_expired
            .store(expired, Ordering::Relaxed);
        Ok(table)
    }

    /// Writes each cut head as a block, oldest first, stopping at the first failure so that
    /// blocks are committed (and WAL segments deleted) strictly in WAL order.
    async fn flush_cut_heads_locked(&self) -> Result<(), StorageError> {
        loop {
            let Some(frozen) = self.state.read().await.flushing.front().cloned() else {
                return Ok(());
            };
            let meta = if frozen.head.spans == 0 {
                None
            } else {
                let edges = self.pair_edges(&frozen).await?;
                let info = BlockInfo {
                    wal_through: frozen.wal_through,
                    sources: Vec::new(),
                    level: 0,
                    edges: Some(edges),
                };
                let meta = write_block_from(
                    self.config.block_store.as_ref(),
                    &self.block_root,
                    Arc::clone(&frozen),
                    info,
                    &self.tuning.block_settings,
                )
                .await
                .inspect_err(|_| self.orphans_possible.store(true, Ordering::Relaxed))?;
                tracing::debug!(
                    block = %meta.id,
                    spans = meta.span_count,
                    bytes = meta.data_bytes,
                    wal_through = meta.wal_through,
                    "head written as a block"
                );
                self.warm_footer(&meta).await;
                Some(Arc::new(meta))
            };
            {
                // The block appears and the head it replaces disappears in one step, so no
                // query sees both or neither.
                let mut st = self.state.write().await;
                if let Some(meta) = meta {
                    self.counters.blocks_flushed.fetch_add(1, Ordering::Relaxed);
                    let at = st.blocks.partition_point(|b| b.id < meta.id);
                    st.blocks.insert(at, meta);
                }
                if st.flushing.front().is_some_and(|f| Arc::ptr_eq(f, &frozen)) {
                    st.flushing.pop_front();
                    self.in_memory
                        .fetch_sub(frozen.head.bytes, Ordering::Relaxed);
                    self.counters
                        .dropped_flushed
                        .fetch_add(frozen.head.dropped, Ordering::Relaxed);
                }
            }
            let dir = self.wal_dir.clone();
            let through = frozen.wal_through;
            // A failure here only leaves segments that the next open deletes.
            match tokio::task::spawn_blocking(move || wal::delete_segments_through(&dir, through))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "could not delete flushed WAL segments"),
                Err(e) => tracing::warn!(error = %e, "could not delete flushed WAL segments"),
            }
        }
    }
}
