//! `meta.json` of a log block: counts, time and trace-ID ranges and the trace-ID bloom filter.

use faultline_model::log::LogQuery;
use faultline_model::{TraceId, UnixNanos};
use serde::{Deserialize, Serialize};

use crate::{BlockError, BlockId, TraceBloom};

/// Column layout version of a log block's `data.parquet`.
pub const LOG_FORMAT_VERSION: u32 = 1;

/// Everything known about a log block without opening its data file.
#[derive(Clone, Debug, PartialEq)]
pub struct LogBlockMeta {
    /// The block's ID (also its directory name).
    pub id: BlockId,
    /// Column layout version of `data.parquet`.
    pub format_version: u32,
    /// Number of records.
    pub record_count: u64,
    /// Number of records carrying a trace ID.
    pub traced_count: u64,
    /// Size of `data.parquet` in bytes.
    pub data_bytes: u64,
    /// Earliest record time.
    pub min_time: UnixNanos,
    /// Latest record time.
    pub max_time: UnixNanos,
    /// Smallest trace ID in the block (zero when no record has one).
    pub min_trace_id: TraceId,
    /// Largest trace ID in the block.
    pub max_trace_id: TraceId,
    /// Services that wrote records in this block.
    pub services: Vec<String>,
    /// Highest severity number in the block.
    pub max_severity: i32,
    /// Bloom filter over the distinct trace IDs.
    pub trace_bloom: TraceBloom,
    /// Last WAL segment covered.
    pub wal_through: u64,
    /// Blocks this one was compacted from.
    pub sources: Vec<BlockId>,
    /// Compaction level.
    pub level: u32,
    /// When the block was written.
    pub created_at: UnixNanos,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaJson {
    id: String,
    format_version: u32,
    record_count: u64,
    traced_count: u64,
    data_bytes: u64,
    min_time_unix_nano: u64,
    max_time_unix_nano: u64,
    min_trace_id: String,
    max_trace_id: String,
    services: Vec<String>,
    max_severity: i32,
    trace_bloom: BloomJson,
    wal_through: u64,
    sources: Vec<String>,
    level: u32,
    created_at_unix_nano: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BloomJson {
    hashes: u32,
    bits: String,
}

impl LogBlockMeta {
    /// False when the block certainly holds no record of trace `id`.
    pub fn may_contain_trace(&self, id: &TraceId) -> bool {
        self.traced_count > 0
            && *id >= self.min_trace_id
            && *id <= self.max_trace_id
            && self.trace_bloom.may_contain(id)
    }

    /// False when the block certainly holds no record matching `q` (from meta alone).
    pub fn may_match(&self, q: &LogQuery) -> bool {
        if self.max_time < q.start || self.min_time > q.end {
            return false;
        }
        if q.trace_id
            .as_ref()
            .is_some_and(|t| !self.may_contain_trace(t))
        {
            return false;
        }
        if q.min_severity.is_some_and(|m| self.max_severity < m) {
            return false;
        }
        if q.service
            .as_ref()
            .is_some_and(|s| !self.services.iter().any(|have| have == s))
        {
            return false;
        }
        true
    }

    /// The `meta.json` bytes.
    pub fn to_json(&self) -> Result<Vec<u8>, BlockError> {
        let j = MetaJson {
            id: self.id.0.clone(),
            format_version: self.format_version,
            record_count: self.record_count,
            traced_count: self.traced_count,
            data_bytes: self.data_bytes,
            min_time_unix_nano: self.min_time.0,
            max_time_unix_nano: self.max_time.0,
            min_trace_id: self.min_trace_id.to_hex(),
            max_trace_id: self.max_trace_id.to_hex(),
            services: self.services.clone(),
            max_severity: self.max_severity,
            trace_bloom: BloomJson {
                hashes: self.trace_bloom.hashes(),
                bits: self.trace_bloom.bits_base64(),
            },
            wal_through: self.wal_through,
            sources: self.sources.iter().map(|s| s.0.clone()).collect(),
            level: self.level,
            created_at_unix_nano: self.created_at.0,
        };
        serde_json::to_vec_pretty(&j)
            .map_err(|e| BlockError::corrupt("log meta.json", e.to_string()))
    }

    /// Parses `meta.json`; rejects anything this code would not write.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BlockError> {
        let bad = |d: String| BlockError::corrupt("log meta.json", d);
        let j: MetaJson = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if j.format_version != LOG_FORMAT_VERSION {
            return Err(bad(format!("unknown format version {}", j.format_version)));
        }
        let trace = |s: &str| -> Result<TraceId, BlockError> {
            // A block without traced records stores the zero ID, which parsing refuses.
            if s.len() == 32 && s.bytes().all(|b| b == b'0') {
                return Ok(TraceId::default());
            }
            s.parse::<TraceId>()
                .map_err(|e| bad(format!("trace ID {s:?}: {e}")))
        };
        Ok(Self {
            id: BlockId(j.id),
            format_version: j.format_version,
            record_count: j.record_count,
            traced_count: j.traced_count,
            data_bytes: j.data_bytes,
            min_time: UnixNanos(j.min_time_unix_nano),
            max_time: UnixNanos(j.max_time_unix_nano),
            min_trace_id: trace(&j.min_trace_id)?,
            max_trace_id: trace(&j.max_trace_id)?,
            services: j.services,
            max_severity: j.max_severity,
            trace_bloom: TraceBloom::from_parts(j.trace_bloom.hashes, &j.trace_bloom.bits)?,
            wal_through: j.wal_through,
            sources: j.sources.into_iter().map(BlockId).collect(),
            level: j.level,
            created_at: UnixNanos(j.created_at_unix_nano),
        })
    }
}
