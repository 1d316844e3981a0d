//! Receiver counters, read by `/metrics` and the benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by all receivers of one [`crate::IngestState`]. Updated with relaxed atomics:
/// each counter is exact, but a reader may see one counter ahead of another.
#[derive(Debug, Default)]
pub struct IngestStats {
    requests: AtomicU64,
    spans_accepted: AtomicU64,
    spans_rejected: AtomicU64,
    bytes: AtomicU64,
    overload_rejections: AtomicU64,
    malformed_requests: AtomicU64,
    log_records_accepted: AtomicU64,
    log_records_rejected: AtomicU64,
    log_records_truncated: AtomicU64,
}

/// A copy of [`IngestStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestStatsSnapshot {
    /// Export requests received (every outcome).
    pub requests: u64,
    /// Spans appended to the store.
    pub spans_accepted: u64,
    /// Spans refused as invalid (reported to clients as partial success).
    pub spans_rejected: u64,
    /// Payload bytes received, after decompression.
    pub bytes: u64,
    /// Requests refused because the receivers or the store were over their limits.
    pub overload_rejections: u64,
    /// Requests refused as malformed, oversized or of an unsupported type.
    pub malformed_requests: u64,
    /// Log records appended to the store.
    pub log_records_accepted: u64,
    /// Log records refused (bad IDs, over the per-request limit).
    pub log_records_rejected: u64,
    /// Log records stored with a truncated body or attributes.
    pub log_records_truncated: u64,
}

impl IngestStats {
    /// The current values.
    pub fn snapshot(&self) -> IngestStatsSnapshot {
        IngestStatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            spans_accepted: self.spans_accepted.load(Ordering::Relaxed),
            spans_rejected: self.spans_rejected.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            overload_rejections: self.overload_rejections.load(Ordering::Relaxed),
            malformed_requests: self.malformed_requests.load(Ordering::Relaxed),
            log_records_accepted: self.log_records_accepted.load(Ordering::Relaxed),
            log_records_rejected: self.log_records_rejected.load(Ordering::Relaxed),
            log_records_truncated: self.log_records_truncated.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn payload(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn spans(&self, accepted: u64, rejected: u64) {
        self.spans_accepted.fetch_add(accepted, Ordering::Relaxed);
        self.spans_rejected.fetch_add(rejected, Ordering::Relaxed);
    }

    pub(crate) fn log_records(&self, accepted: u64, rejected: u64, truncated: u64) {
        self.log_records_accepted
            .fetch_add(accepted, Ordering::Relaxed);
        self.log_records_rejected
            .fetch_add(rejected, Ordering::Relaxed);
        self.log_records_truncated
            .fetch_add(truncated, Ordering::Relaxed);
    }

    pub(crate) fn overload(&self) {
        self.overload_rejections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn malformed(&self) {
        self.malformed_requests.fetch_add(1, Ordering::Relaxed);
    }
}
