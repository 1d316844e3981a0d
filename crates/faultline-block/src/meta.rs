//! Block identity and metadata (`meta.json`), and the pruning decisions made from it alone.

use std::collections::{BTreeMap, BTreeSet};

use faultline_model::query::SpanQuery;
use faultline_model::{SpanKind, TraceId, UnixNanos};
use serde::{Deserialize, Serialize};

use crate::edges::EdgeTableJson;
use crate::{BlockError, EdgeTable, TraceBloom};

/// A block's ID: a UUID v7 string, so IDs sort by creation time.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct BlockId(pub String);

impl BlockId {
    /// A fresh ID for a block created now.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl Default for BlockId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for BlockId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the caller knows about a block that the spans do not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockInfo {
    /// Opaque WAL position covered by this block (stored as given).
    pub wal_through: u64,
    /// Blocks this one was compacted from.
    pub sources: Vec<BlockId>,
    /// Compaction level.
    pub level: u32,
    /// Service dependencies resolved when the block was written (see [`BlockMeta::edges`]).
    pub edges: Option<EdgeTable>,
}

/// Everything known about a block without opening its data file; stored as `meta.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockMeta {
    /// The block's ID (also its directory name).
    pub id: BlockId,
    /// Column layout version of `data.parquet`.
    pub format_version: u32,
    /// Number of spans.
    pub span_count: u64,
    /// Number of distinct trace IDs.
    pub trace_count: u64,
    /// Size of `data.parquet` in bytes.
    pub data_bytes: u64,
    /// Earliest span start.
    pub min_start: UnixNanos,
    /// Latest span start.
    pub max_start: UnixNanos,
    /// Latest span end.
    pub max_end: UnixNanos,
    /// Smallest trace ID.
    pub min_trace_id: TraceId,
    /// Largest trace ID.
    pub max_trace_id: TraceId,
    /// Service name → (span name, kind) pairs present.
    pub operations: BTreeMap<String, BTreeSet<(String, SpanKind)>>,
    /// Bloom filter over the trace IDs.
    pub trace_bloom: TraceBloom,
    /// Opaque WAL position given by the caller.
    pub wal_through: u64,
    /// Blocks this one was compacted from.
    pub sources: Vec<BlockId>,
    /// Compaction level.
    pub level: u32,
    /// When the block was written.
    pub created_at: UnixNanos,
    /// Calls between services that the writer resolved, by time bucket: a dependencies query
    /// sums these instead of reading the data file. `None` in blocks written before the table
    /// existed, whose dependencies are computed from the data file.
    pub edges: Option<EdgeTable>,
}

impl BlockMeta {
    /// False when the block certainly holds no span of trace `id`.
    pub fn may_contain_trace(&self, id: &TraceId) -> bool {
        *id >= self.min_trace_id && *id <= self.max_trace_id && self.trace_bloom.may_contain(id)
    }

    /// Whether some span may start within `[start, end]` (inclusive).
    pub fn overlaps(&self, start: UnixNanos, end: UnixNanos) -> bool {
        self.min_start <= end && self.max_start >= start && start <= end
    }

    /// False when no span of this block can match `q` (time range, service, operation, kind).
    pub fn may_match(&self, q: &SpanQuery) -> bool {
        if !self.overlaps(q.start, q.end) {
            return false;
        }
        let op_ok = |ops: &BTreeSet<(String, SpanKind)>| {
            ops.iter().any(|(name, kind)| {
                q.operation.as_deref().is_none_or(|o| o == name)
                    && q.kind.is_none_or(|k| k == *kind)
            })
        };
        match q.service.as_deref() {
            Some(s) => self.operations.get(s).is_some_and(op_ok),
            None => self.operations.values().any(op_ok),
        }
    }

    /// Serialises to the `meta.json` form.
    pub fn to_json(&self) -> Result<Vec<u8>, BlockError> {
        let wire = MetaJson {
            id: self.id.0.clone(),
            format_version: self.format_version,
            span_count: self.span_count,
            trace_count: self.trace_count,
            data_bytes: self.data_bytes,
            min_start: self.min_start.0,
            max_start: self.max_start.0,
            max_end: self.max_end.0,
            min_trace_id: self.min_trace_id.to_hex(),
            max_trace_id: self.max_trace_id.to_hex(),
            operations: self
                .operations
                .iter()
                .map(|(svc, ops)| {
                    let ops = ops
                        .iter()
                        .map(|(name, kind)| (name.clone(), kind_name(*kind).to_owned()))
                        .collect();
                    (svc.clone(), ops)
                })
                .collect(),
            trace_bloom: BloomJson {
                hashes: self.trace_bloom.hashes(),
                bits: self.trace_bloom.bits_base64(),
            },
            wal_through: self.wal_through,
            sources: self.sources.iter().map(|s| s.0.clone()).collect(),
            level: self.level,
            created_at: self.created_at.0,
            edges: self.edges.as_ref().map(EdgeTable::to_json),
        };
        serde_json::to_vec_pretty(&wire)
            .map_err(|e| BlockError::corrupt("meta.json", format!("cannot serialise: {e}")))
    }

    /// Parses `meta.json`, validating every field.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BlockError> {
        let bad = |d: String| BlockError::corrupt("meta.json", d);
        let w: MetaJson = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let trace_id = |s: &str| {
            s.parse::<TraceId>()
                .map_err(|e| bad(format!("trace ID {s:?}: {e}")))
        };
        let mut operations = BTreeMap::new();
        for (svc, ops) in w.operations {
            let mut set = BTreeSet::new();
            for (name, kind) in ops {
                let kind = SpanKind::from_jaeger_str(&kind)
                    .ok_or_else(|| bad(format!("unknown span kind {kind:?}")))?;
                set.insert((name, kind));
            }
            operations.insert(svc, set);
        }
        let readable = crate::schema::OLDEST_READABLE_FORMAT..=crate::schema::FORMAT_VERSION;
        if !readable.contains(&w.format_version) {
            return Err(bad(format!(
                "format version {} is not supported (this build reads {} to {})",
                w.format_version,
                readable.start(),
                readable.end()
            )));
        }
        Ok(Self {
            id: BlockId(w.id),
            format_version: w.format_version,
            span_count: w.span_count,
            trace_count: w.trace_count,
            data_bytes: w.data_bytes,
            min_start: UnixNanos(w.min_start),
            max_start: UnixNanos(w.max_start),
            max_end: UnixNanos(w.max_end),
            min_trace_id: trace_id(&w.min_trace_id)?,
            max_trace_id: trace_id(&w.max_trace_id)?,
            operations,
            trace_bloom: TraceBloom::from_parts(w.trace_bloom.hashes, &w.trace_bloom.bits)?,
            wal_through: w.wal_through,
            sources: w.sources.into_iter().map(BlockId).collect(),
            level: w.level,
            created_at: UnixNanos(w.created_at),
            edges: w.edges.map(EdgeTable::from_json).transpose()?,
        })
    }
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        k => k.as_jaeger_str(),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BloomJson {
    hashes: u32,
    bits: String,
}

/// The on-disk form of [`BlockMeta`]: plain JSON types, IDs as hex, times as integer nanos.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaJson {
    id: String,
    format_version: u32,
    span_count: u64,
    trace_count: u64,
    data_bytes: u64,
    min_start: u64,
    max_start: u64,
    max_end: u64,
    min_trace_id: String,
    max_trace_id: String,
    operations: BTreeMap<String, Vec<(String, String)>>,
    trace_bloom: BloomJson,
    wal_through: u64,
    sources: Vec<String>,
    level: u32,
    created_at: u64,
    /// Absent in blocks written before edge tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edges: Option<EdgeTableJson>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BlockMeta {
        let mut bloom = TraceBloom::with_capacity(2);
        let (a, b) = (TraceId([1; 16]), TraceId([9; 16]));
        bloom.insert(&a);
        bloom.insert(&b);
        let mut ops = BTreeMap::new();
        ops.insert(
            "api".to_owned(),
            BTreeSet::from([
                ("GET /x".to_owned(), SpanKind::Server),
                ("db".to_owned(), SpanKind::Unspecified),
            ]),
        );
        BlockMeta {
            id: BlockId::new(),
            format_version: crate::schema::FORMAT_VERSION,
            span_count: 3,
            trace_count: 2,
            data_bytes: 100,
            min_start: UnixNanos(100),
            max_start: UnixNanos(200),
            max_end: UnixNanos(300),
            min_trace_id: a,
            max_trace_id: b,
            operations: ops,
            trace_bloom: bloom,
            wal_through: 42,
            sources: vec![BlockId("x".into())],
            level: 1,
            created_at: UnixNanos(7),
            edges: Some({
                let mut t = EdgeTable::new(10);
                t.add("api", "db", 170, 3);
                t
            }),
        }
    }

    #[test]
    fn json_round_trip() {
        let m = sample();
        assert_eq!(BlockMeta::from_json(&m.to_json().unwrap()).unwrap(), m);
    }

    #[test]
    fn reads_every_format_from_the_oldest_readable_on_and_refuses_newer() {
        for (version, readable) in [(0, false), (1, true), (2, true), (3, false)] {
            let mut m = sample();
            m.format_version = version;
            assert_eq!(
                BlockMeta::from_json(&m.to_json().unwrap()).is_ok(),
                readable,
                "format {version}"
            );
        }
        assert_eq!(crate::schema::FORMAT_VERSION, 2);
    }

    #[test]
    fn meta_without_an_edge_table_still_parses() {
        let mut m = sample();
        m.edges = None;
        let json = String::from_utf8(m.to_json().unwrap()).unwrap();
        assert!(
            !json.contains("edges"),
            "an old block's meta.json has no such key"
        );
        assert_eq!(BlockMeta::from_json(json.as_bytes()).unwrap(), m);
    }

    #[test]
    fn garbage_json_is_an_error() {
        let json = sample().to_json().unwrap();
        for cut in [0, 1, json.len() / 2, json.len() - 1] {
            assert!(BlockMeta::from_json(&json[..cut]).is_err());
        }
        let text = String::from_utf8(json).unwrap();
        let bad_id = text.replace(&sample().min_trace_id.to_hex(), "zz");
        assert!(BlockMeta::from_json(bad_id.as_bytes()).is_err());
        assert!(BlockMeta::from_json(b"{\"id\": 1}").is_err());
    }

    #[test]
    fn pruning() {
        let m = sample();
        assert!(m.may_contain_trace(&TraceId([1; 16])));
        assert!(!m.may_contain_trace(&TraceId([10; 16])));
        assert!(!m.may_contain_trace(&TraceId([0; 16])));
        assert!(m.overlaps(UnixNanos(200), UnixNanos(1000)));
        assert!(!m.overlaps(UnixNanos(201), UnixNanos(1000)));
        assert!(!m.overlaps(UnixNanos(0), UnixNanos(99)));
        let q = |svc: Option<&str>, op: Option<&str>, kind: Option<SpanKind>| SpanQuery {
            service: svc.map(str::to_owned),
            operation: op.map(str::to_owned),
            kind,
            start: UnixNanos(0),
            end: UnixNanos(u64::MAX),
            limit: 10,
            ..Default::default()
        };
        assert!(m.may_match(&q(Some("api"), None, None)));
        assert!(m.may_match(&q(Some("api"), Some("GET /x"), Some(SpanKind::Server))));
        assert!(!m.may_match(&q(Some("api"), Some("GET /x"), Some(SpanKind::Client))));
        assert!(!m.may_match(&q(Some("web"), None, None)));
        assert!(m.may_match(&q(None, Some("db"), None)));
        assert!(!m.may_match(&q(None, Some("nope"), None)));
        let mut late = q(None, None, None);
        late.start = UnixNanos(201);
        assert!(!m.may_match(&late));
    }
}
