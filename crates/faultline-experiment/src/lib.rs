//! `faultline experiment`: runs the demo shop under load, injects faults of every type into
//! several services in a seeded random order with quiet periods between them, and measures
//! what Faultline makes of them: time to detect, time to localize, top-1 and top-3 accuracy of
//! the root-cause ranking, false alarms per hour of quiet time, topology visibility, and
//! log-retrieval accuracy by trace ID against the usual time-window keyword search. Writes a
//! Markdown report with SVG plots.
//!
//! Faultline is used like any user would: through its HTTP API. The ground truth comes from
//! the demo's fault ledger, never from Faultline.

#![deny(missing_docs)]

pub mod api;
pub mod cli;
mod error;
pub mod logs;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run;
pub mod svg;

pub use error::ExperimentError;

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
