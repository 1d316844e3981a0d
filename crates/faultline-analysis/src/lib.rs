//! Live analysis of the span stream: the service graph, RED metrics, their Prometheus
//! exposition, and per-trace critical path analysis.
//!
//! The ingest pipeline prepares each batch with [`Analyzer::prepare`] and, once the store has
//! it, counts it with [`Analyzer::commit`] ([`Analyzer::observe`] does both), which updates
//! the service graph (pairing the client and server halves of each call, with virtual nodes
//! for uninstrumented dependencies) and the RED series (per service, operation and span kind)
//! over sliding windows. [`router`] serves `/metrics` (names as Tempo's metrics generator) and
//! JSON under `/api/analysis`, including [`analyze_trace`] on any stored trace. See
//! `docs/analysis.md`.
//!
//! A [`Detector`] ([`spawn_detector`] in the server) compares recent windows with baselines
//! learnt per series, opens [`Incident`]s and ranks their root causes from traces sampled in
//! the store ([`rank`]); `/api/incidents` and `/api/rca` serve them.
//!
//! This crate must not block or do I/O in `prepare`/`commit`/`observe`, must not hold memory without a bound
//! (every map has a limit and counts what overflows), and must not write spans: it reads the
//! store only to fetch traces for analysis, a bounded number per request or ranking pass.
#![deny(missing_docs)]

mod analyzer;
mod config;
mod detect;
mod error;
mod exposition;
mod graph;
mod histogram;
mod http;
mod incident;
mod intern;
mod pairing;
mod rank;
mod rca;
mod red;
#[cfg(test)]
mod test_spans;
mod trace;
mod window;

pub use analyzer::{Analyzer, PreparedBatch};
pub use config::{AnalysisConfig, DetectionConfig};
pub use detect::{Detector, DetectorStats, RankRequest};
pub use error::AnalysisError;
pub use exposition::{EdgeExport, Format, MetricKind, MetricsSnapshot, SelfMetric, SeriesExport};
pub use graph::{EdgeKind, EdgeSnapshot, PairingStats};
pub use histogram::{Exemplar, Histogram, BUCKET_BOUNDS_NANOS};
pub use http::{parse_duration, router, SelfMetricsSource, DEFAULT_WINDOW};
pub use incident::{
    AttributeEvidence, AttributeRef, CauseKind, EdgeRef, Evidence, Incident, IncidentStatus,
    RootCause, Signal, SpanRef, Symptom,
};
pub use intern::OVERFLOW;
pub use rank::{rank, RankInput};
pub use rca::{detect_and_rank, spawn_detector, DetectorHandle, WindowAnalysis};
pub use red::RedSnapshot;
pub use trace::{
    analyze_trace, ErrorOrigin, PathSegment, ServiceBreakdown, SpanAnalysis, TraceAnalysis,
};
pub use window::WindowStats;
