//! The server's own numbers on `/metrics`: what the receivers took in and refused, and what the
//! span and log stores hold and have done. These are what a platform team watches to see that
//! the backend keeps up (WAL group commit, heads waiting to be written, refusals under load).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use faultline_analysis::{SelfMetric, SelfMetricsSource};
use faultline_ingest::IngestStats;
use faultline_storage::{LogStoreStats, Store, StoreStats};

/// Reads the receivers' and the stores' counters for each scrape.
pub(crate) struct ServerMetrics {
    pub(crate) store: Arc<Store>,
    pub(crate) ingest: Arc<IngestStats>,
}

impl SelfMetricsSource for ServerMetrics {
    fn collect(&self) -> Pin<Box<dyn Future<Output = Vec<SelfMetric>> + Send + '_>> {
        Box::pin(async move {
            let mut out = receiver_metrics(&self.ingest);
            out.extend(store_metrics(&self.store.stats().await));
            out.extend(log_store_metrics(&self.store.logs().stats().await));
            out
        })
    }
}

fn receiver_metrics(stats: &IngestStats) -> Vec<SelfMetric> {
    let s = stats.snapshot();
    vec![
        SelfMetric::counter(
            "faultline_receiver_requests_total",
            "Export requests received over OTLP gRPC and HTTP, whatever their outcome.",
            s.requests,
        ),
        SelfMetric::counter(
            "faultline_receiver_received_bytes_total",
            "Payload bytes received, after decompression.",
            s.bytes,
        ),
        SelfMetric::counter(
            "faultline_receiver_accepted_spans_total",
            "Spans stored (acknowledged to the sender).",
            s.spans_accepted,
        ),
        SelfMetric::counter(
            "faultline_receiver_refused_spans_total",
            "Spans refused as invalid, reported to the sender as partial success.",
            s.spans_rejected,
        ),
        SelfMetric::counter(
            "faultline_receiver_overload_rejections_total",
            "Requests refused because the server was over its memory budget (the sender retries).",
            s.overload_rejections,
        ),
        SelfMetric::counter(
            "faultline_receiver_malformed_requests_total",
            "Requests refused as malformed, oversized or of an unsupported content type.",
            s.malformed_requests,
        ),
        SelfMetric::counter(
            "faultline_receiver_accepted_log_records_total",
            "Log records stored.",
            s.log_records_accepted,
        ),
        SelfMetric::counter(
            "faultline_receiver_refused_log_records_total",
            "Log records refused (bad IDs, over the per-request limit).",
            s.log_records_rejected,
        ),
        SelfMetric::counter(
            "faultline_receiver_truncated_log_records_total",
            "Log records stored with a truncated body or attributes.",
            s.log_records_truncated,
        ),
    ]
}

fn store_metrics(s: &StoreStats) -> Vec<SelfMetric> {
    vec![
        SelfMetric::gauge(
            "faultline_store_head_spans",
            "Spans in the in-memory head, not yet cut into a block.",
            s.head_spans,
        ),
        SelfMetric::gauge(
            "faultline_store_head_bytes",
            "Bytes accounted to the in-memory head.",
            s.head_bytes,
        ),
        SelfMetric::gauge(
            "faultline_store_flushing_heads",
            "Heads cut off and waiting to be written as blocks; a rising value means block writes fall behind.",
            s.flushing_heads,
        ),
        SelfMetric::gauge(
            "faultline_store_flushing_bytes",
            "Bytes accounted to heads waiting to be written as blocks.",
            s.flushing_bytes,
        ),
        SelfMetric::gauge(
            "faultline_store_blocks",
            "Span blocks in the block store.",
            s.blocks,
        ),
        SelfMetric::gauge(
            "faultline_store_block_spans",
            "Spans in blocks.",
            s.block_spans,
        ),
        SelfMetric::gauge(
            "faultline_store_block_bytes",
            "Bytes of block data files.",
            s.block_bytes,
        ),
        SelfMetric::gauge(
            "faultline_store_wal_queued_bytes",
            "Bytes waiting for the WAL writer.",
            s.wal_queued_bytes,
        ),
        SelfMetric::gauge(
            "faultline_store_wal_replayed_records",
            "WAL records replayed when the store was opened.",
            s.wal_replayed_records,
        ),
        SelfMetric::counter(
            "faultline_store_wal_records_total",
            "WAL records written.",
            s.wal_records_written,
        ),
        SelfMetric::counter(
            "faultline_store_wal_bytes_total",
            "WAL bytes written.",
            s.wal_bytes_written,
        ),
        SelfMetric::counter(
            "faultline_store_wal_syncs_total",
            "WAL fsyncs; records per fsync shows how well group commit works.",
            s.wal_syncs,
        ),
        SelfMetric::counter(
            "faultline_store_blocks_flushed_total",
            "Blocks written from heads.",
            s.blocks_flushed,
        ),
        SelfMetric::counter(
            "faultline_store_compactions_total",
            "Compactions completed.",
            s.compactions,
        ),
        SelfMetric::counter(
            "faultline_store_blocks_expired_total",
            "Blocks deleted by retention.",
            s.blocks_expired,
        ),
        SelfMetric::counter(
            "faultline_store_refused_appends_total",
            "Appends refused because the store was over its memory budget.",
            s.appends_refused,
        ),
        SelfMetric::counter(
            "faultline_store_dependency_orphans_expired_total",
            "Child spans whose parent did not arrive within the pairing window: their call is missing from /api/dependencies.",
            s.dependency_orphans_expired,
        ),
        SelfMetric::counter(
            "faultline_store_trace_limit_dropped_spans_total",
            "Spans dropped because their trace already held the most spans kept per trace.",
            s.spans_dropped_trace_limit,
        ),
    ]
}

fn log_store_metrics(s: &LogStoreStats) -> Vec<SelfMetric> {
    vec![
        SelfMetric::gauge(
            "faultline_log_store_head_records",
            "Log records in the in-memory head.",
            s.head_records,
        ),
        SelfMetric::gauge(
            "faultline_log_store_in_memory_bytes",
            "Bytes of log records held in memory (head and heads being written).",
            s.in_memory_bytes,
        ),
        SelfMetric::gauge("faultline_log_store_blocks", "Log blocks.", s.blocks),
        SelfMetric::gauge(
            "faultline_log_store_block_records",
            "Log records in blocks.",
            s.block_records,
        ),
        SelfMetric::gauge(
            "faultline_log_store_block_bytes",
            "Bytes of log block data files.",
            s.block_bytes,
        ),
        SelfMetric::gauge(
            "faultline_log_store_wal_replayed_records",
            "Log WAL records replayed when the store was opened.",
            s.wal_replayed_records,
        ),
        SelfMetric::counter(
            "faultline_log_store_refused_appends_total",
            "Log appends refused because the log store was over its memory budget.",
            s.appends_refused,
        ),
        SelfMetric::counter(
            "faultline_log_store_compactions_total",
            "Log block compactions completed.",
            s.compactions,
        ),
    ]
}
