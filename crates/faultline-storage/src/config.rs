//! The store's configuration and the values its API takes and returns.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use faultline_block::BlockSettings;
use faultline_model::Span;
use object_store::ObjectStore;

/// When an append is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AckMode {
    /// After the WAL record is fsynced (group-committed with concurrent appends).
    #[default]
    Durable,
    /// As soon as the batch is queued for the WAL; a crash can lose the last moments of data.
    Received,
}

/// Settings of a [`Store`](crate::Store).
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
    /// [`StorageError::Overloaded`](crate::StorageError::Overloaded).
    pub memory_budget_bytes: usize,
    /// How often compaction and retention run.
    pub maintenance_interval: Duration,
}

/// Knobs below [`StoreConfig`] that rarely need changing; [`Store::open`](crate::Store::open) uses the defaults.
/// Crash tests shrink the compaction thresholds here (and `max_head_bytes`,
/// `max_head_age`, `maintenance_interval` in [`StoreConfig`]) to make cuts and compactions
/// happen every few seconds.
#[derive(Clone, Debug)]
pub struct StoreTuning {
    /// Requests the WAL queue holds before appenders wait for room.
    pub wal_queue_capacity: usize,
    /// Largest group the WAL writer commits with one fsync, in bytes.
    pub wal_max_group_bytes: usize,
    /// How blocks are encoded.
    pub block_settings: BlockSettings,
    /// Compact a level once it has at least this many small blocks.
    pub compaction_min_blocks: usize,
    /// Most blocks merged by one compaction.
    pub compaction_max_blocks: usize,
    /// Blocks whose data file is at least this large are left alone.
    pub compaction_small_block_bytes: u64,
    /// Blocks holding at least this many spans are left alone (`u64::MAX`: none is). A head
    /// cut for size already makes a block of this order, and merging it again costs about as
    /// much CPU as writing it did (every span is decoded and encoded once more) for a few
    /// times fewer blocks; blocks cut small by `max_head_age` under light load are still
    /// merged. Service dependencies do not depend on it: they are resolved across heads when
    /// each head is written.
    pub compaction_small_block_spans: u64,
    /// Most spans read into memory by one compaction; bounds its memory use.
    pub compaction_max_spans: u64,
    /// Blocks at this level are never compacted further.
    pub compaction_max_level: u32,
    /// Spans of earlier heads kept in memory for pairing the calls of later heads with them
    /// (service dependencies across a head cut): the previous head is always kept, older ones
    /// while all kept heads hold at most this many spans. About 70 bytes per span.
    pub dependency_carry_spans: u64,
}

impl Default for StoreTuning {
    fn default() -> Self {
        Self {
            wal_queue_capacity: 1024,
            wal_max_group_bytes: 8 * 1024 * 1024,
            block_settings: BlockSettings::default(),
            compaction_min_blocks: 4,
            compaction_max_blocks: 8,
            compaction_small_block_bytes: 64 * 1024 * 1024,
            // A compaction holds its inputs as decoded spans, around 1.5 KB each with ten-odd
            // attributes: 500k keeps that under a gigabyte.
            compaction_max_spans: 500_000,
            compaction_max_level: 3,
            // Heads cut for size (~85k spans of the bench's shape) stay as they are: merging them
            // again cost ~30% of server CPU per span (BENCHMARKS.md, runs 5 and 7b).
            compaction_small_block_spans: 50_000,
            // Two heads cut for size (~85k spans each of the bench's shape), or many small ones.
            dependency_carry_spans: 200_000,
        }
    }
}

/// One batch handed to [`Store::append`](crate::Store::append).
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
    /// WAL records written since start.
    pub wal_records_written: u64,
    /// WAL bytes written since start.
    pub wal_bytes_written: u64,
    /// WAL fsyncs since start; records per fsync shows how well group commit works.
    pub wal_syncs: u64,
    /// Heads cut off and still being written as blocks.
    pub flushing_heads: u64,
    /// Bytes accounted to those heads.
    pub flushing_bytes: u64,
    /// Spans in blocks.
    pub block_spans: u64,
    /// Bytes of block data files.
    pub block_bytes: u64,
    /// Blocks written from heads since start.
    pub blocks_flushed: u64,
    /// Compactions completed since start.
    pub compactions: u64,
    /// Blocks deleted by retention since start.
    pub blocks_expired: u64,
    /// Appends refused with [`crate::StorageError::Overloaded`] since start.
    pub appends_refused: u64,
    /// Child spans whose parent did not arrive within the heads kept for pairing
    /// ([`StoreTuning::dependency_carry_spans`]) since start: their call is not counted in the
    /// service dependencies.
    pub dependency_orphans_expired: u64,
}
