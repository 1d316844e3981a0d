//! The store's lifecycle: recovery on open, cutting and flushing heads into blocks, and the
//! background tasks that drive flushing, compaction and retention.
//!
//! Crash safety rests on three commit points, none of which needs a manifest:
//! a WAL record is committed by its fsync; a block by its `meta.json` (written last); a
//! compaction by the new block's `meta.json`, whose `sources` list supersedes its inputs.
//! Recovery on open re-derives everything else from what is committed (see `open`).

#[cfg(test)]
mod dependency_tests;
mod flush;
mod maintenance;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use faultline_block::{delete_block, list_blocks, list_orphans, BlockId};
use faultline_model::otlp::{decode_traces, SpanLimits};
use object_store::path::Path as ObjectPath;
use tokio::sync::{watch, Mutex, Notify, RwLock};
use tokio::task::JoinHandle;

use crate::config::{StoreConfig, StoreTuning};
use crate::cutting::{cutter, next_round, stopped_within, CutHeads, RETRY_DELAY};
use crate::head::Head;
use crate::store::{Counters, State, Store};
use crate::wal::{self, RecordKind, Wal, WalOptions};
use crate::StorageError;

/// Where blocks live inside the block store.
pub(crate) const BLOCK_ROOT: &str = "blocks";

/// Handles of the background tasks and the signal that stops them.
pub(crate) struct Background {
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Background {
    fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(handle);
        }
    }

    /// Signals every task to stop and waits for them; a task finishes the step it is in.
    pub(crate) async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = match self.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// Opens the store.
///
/// 1. List committed blocks. A block named in another committed block's `sources` was merged
///    into it by a compaction that crashed before deleting its inputs: delete it. Directories
///    without `meta.json` are leftovers of an interrupted write or delete: delete them.
/// 2. Every WAL segment up to the highest `wal_through` of any block is in a block already:
///    delete those segments, replay the rest into the head.
/// 3. Start the WAL writer on a fresh segment numbered above everything seen, and the
///    background tasks.
pub(crate) async fn open(
    config: StoreConfig,
    tuning: StoreTuning,
) -> Result<Arc<Store>, StorageError> {
    validate(&config, &tuning)?;
    let wal_dir = config.data_dir.join("wal");
    std::fs::create_dir_all(&wal_dir).map_err(|e| StorageError::io(&wal_dir, e))?;
    let block_root = ObjectPath::from(BLOCK_ROOT);
    let objects = config.block_store.as_ref();

    let all = list_blocks(objects, &block_root).await?;
    let superseded: HashSet<&BlockId> = all.iter().flat_map(|m| m.sources.iter()).collect();
    let wal_through = all.iter().map(|m| m.wal_through).max();
    let mut blocks = Vec::new();
    // A failed delete does not stop the store: the block is out of the live list either way,
    // and maintenance retries (no compaction runs until it succeeds).
    let mut pending_deletes = Vec::new();
    for meta in &all {
        if superseded.contains(&meta.id) {
            tracing::info!(block = %meta.id, "deleting a block superseded by a compaction");
            if let Err(e) = delete_block(objects, &block_root, &meta.id).await {
                tracing::warn!(block = %meta.id, error = %e, "could not delete a superseded block; will retry");
                pending_deletes.push(meta.id.clone());
            }
        } else {
            blocks.push(Arc::new(meta.clone()));
        }
    }
    let mut orphans_possible = false;
    for orphan in list_orphans(objects, &block_root).await? {
        tracing::info!(block = %orphan, "deleting an uncommitted block left by a crash");
        if let Err(e) = delete_block(objects, &block_root, &orphan).await {
            tracing::warn!(block = %orphan, error = %e, "could not delete an uncommitted block; will retry");
            orphans_possible = true;
        }
    }

    let max_per_trace = config.max_spans_per_trace;
    let (wal, head, stats, first_seq) =
        reopen_wal(&wal_dir, wal_through, &tuning, move |dir, after| {
            replay_into_head(dir, after, max_per_trace)
        })
        .await?;
    tracing::info!(
        blocks = blocks.len(),
        replayed_records = stats.records,
        replayed_segments = stats.segments.len(),
        wal_segment = first_seq,
        "store opened"
    );
    // The replayed head pairs its calls with the newest blocks exactly as it would have before
    // the restart. (Its own footer cache: queries fill theirs with what they read.)
    let mut carry = crate::edges::rebuild(
        objects,
        &block_root,
        &blocks,
        tuning.dependency_carry_spans,
        &faultline_block::FooterCache::new(crate::store::FOOTER_CACHE_BYTES),
    )
    .await;
    // Orphans that expired while re-pairing old blocks expired before this start already.
    carry.expired_orphans = 0;
    let logs = crate::logs::LogStore::open(config.clone(), tuning.clone()).await?;
    let head_since = (!head.is_empty()).then(Instant::now);
    let in_memory = AtomicUsize::new(head.bytes);
    let store = Arc::new(Store {
        config,
        tuning,
        wal_dir,
        wal,
        block_root,
        state: RwLock::new(State {
            head,
            head_since,
            wal_seq: first_seq,
            flushing: VecDeque::new(),
            blocks,
            generation: 0,
        }),
        flush_lock: Mutex::new(()),
        maintenance_lock: Mutex::new(()),
        flush_wanted: Arc::new(Notify::new()),
        pending_deletes: Mutex::new(pending_deletes),
        background: Background::new(),
        counters: Counters::default(),
        replayed_records: stats.records,
        in_memory,
        orphans_possible: std::sync::atomic::AtomicBool::new(orphans_possible),
        footers: Arc::new(faultline_block::FooterCache::new(
            crate::store::FOOTER_CACHE_BYTES,
        )),
        logs,
        carry: Arc::new(std::sync::Mutex::new(carry)),
    });
    let weak = Arc::downgrade(&store);
    let write_wanted = Arc::new(Notify::new());
    store.background.spawn(cutter(
        weak.clone(),
        Arc::clone(&store.flush_wanted),
        Arc::clone(&write_wanted),
        store.background.stop.subscribe(),
    ));
    store.background.spawn(writer(
        weak.clone(),
        write_wanted,
        store.background.stop.subscribe(),
    ));
    store
        .background
        .spawn(maintainer(weak, store.background.stop.subscribe()));
    Ok(store)
}

/// Rejects settings under which the store could not work.
fn validate(config: &StoreConfig, tuning: &StoreTuning) -> Result<(), StorageError> {
    let bad = |what: &str| Err(StorageError::InvalidConfig(what.to_owned()));
    if config.memory_budget_bytes == 0 {
        return bad("memory_budget_bytes must be positive");
    }
    if config.max_head_bytes == 0 {
        return bad("max_head_bytes must be positive");
    }
    if config.max_spans_per_trace == 0 {
        return bad("max_spans_per_trace must be positive");
    }
    if config.max_head_age.is_zero() {
        return bad("max_head_age must be positive");
    }
    if tuning.wal_queue_capacity == 0 || tuning.wal_max_group_bytes == 0 {
        return bad("WAL queue capacity and group size must be positive");
    }
    Ok(())
}

/// Reopens a signal's WAL after a restart: deletes the segments whose data is already in blocks
/// (through `wal_through`), replays the rest with `replay` (off the async runtime), starts the
/// writer on the segment after the newest one, and removes segments left empty. Returns the
/// writer, what `replay` rebuilt, the replay counters and the writer's first segment.
pub(crate) async fn reopen_wal<H: Send + 'static>(
    wal_dir: &Path,
    wal_through: Option<u64>,
    tuning: &StoreTuning,
    replay: impl FnOnce(&Path, Option<u64>) -> Result<(H, wal::ReplayStats), StorageError>
        + Send
        + 'static,
) -> Result<(Wal, H, wal::ReplayStats, u64), StorageError> {
    let (rebuilt, stats) = {
        let dir = wal_dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(through) = wal_through {
                wal::delete_segments_through(&dir, through)?;
            }
            replay(&dir, wal_through)
        })
        .await
        .map_err(|e| StorageError::io(wal_dir, std::io::Error::other(e)))??
    };
    let last_seq = stats.segments.last().copied().max(wal_through).unwrap_or(0);
    let first_seq = last_seq + 1;
    let wal = Wal::start(
        WalOptions {
            dir: wal_dir.to_path_buf(),
            queue_capacity: tuning.wal_queue_capacity,
            max_group_bytes: tuning.wal_max_group_bytes,
        },
        first_seq,
    )?;
    // Segments left empty by a restart or a cut hold nothing; without this every restart
    // would leave one more behind.
    for seq in &stats.segments {
        let path = wal::segment_path(wal_dir, *seq);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(segment = %path.display(), error = %e, "could not delete an empty WAL segment");
            }
        }
    }
    Ok((wal, rebuilt, stats, first_seq))
}

/// Reads WAL segments numbered above `after` into a fresh head.
fn replay_into_head(
    dir: &Path,
    after: Option<u64>,
    max_per_trace: usize,
) -> Result<(Head, wal::ReplayStats), StorageError> {
    let mut head = Head::default();
    let limits = SpanLimits::unlimited();
    let stats = wal::replay(dir, after, |seq, rec| match rec.kind {
        RecordKind::Traces => match decode_traces(&rec.payload, &limits) {
            Ok(converted) => {
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
        RecordKind::Logs | RecordKind::Unknown(_) => {
            let kind = rec.kind.to_byte();
            tracing::warn!(
                segment = seq,
                kind,
                "WAL record of unknown kind (written by a newer version?); skipped"
            );
        }
    })?;
    Ok((head, stats))
}

/// Writes cut heads as blocks, oldest first, when the cutter has cut one (and every check
/// interval, which retries a failed write).
async fn writer(weak: Weak<Store>, wanted: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    while let Some(store) = next_round(&weak, &wanted, &mut stop).await {
        let result = store.flush_cut_heads().await;
        drop(store);
        if let Err(e) = result {
            tracing::error!(error = %e, "writing the head as a block failed; will retry");
            if stopped_within(&mut stop, RETRY_DELAY).await {
                return;
            }
        }
    }
}

/// Runs compaction and retention every `maintenance_interval`.
async fn maintainer(weak: Weak<Store>, mut stop: watch::Receiver<bool>) {
    loop {
        let Some(every) = weak.upgrade().map(|s| s.config.maintenance_interval) else {
            return;
        };
        if stopped_within(&mut stop, every.max(Duration::from_millis(10))).await {
            return;
        }
        let Some(store) = weak.upgrade() else { return };
        if let Err(e) = store.run_maintenance().await {
            tracing::error!(error = %e, "compaction or retention failed; will retry");
        }
    }
}

impl CutHeads for Store {
    const HEAD: &'static str = "head";

    fn max_head_age(&self) -> Duration {
        self.config.max_head_age
    }

    fn head_due(&self) -> impl std::future::Future<Output = bool> + Send {
        Store::head_due(self)
    }

    fn cut_head(&self) -> impl std::future::Future<Output = Result<(), StorageError>> + Send {
        Store::cut_head(self)
    }
}
