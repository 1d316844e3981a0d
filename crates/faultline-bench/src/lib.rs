//! Benchmarks for Faultline, run as `faultline bench ...`.
//!
//! `bench ingest` starts (or targets) a Faultline server in a separate process, streams
//! realistic OTLP/gRPC batches at it, and measures what the server spends: spans per second,
//! server CPU-seconds per million spans, peak RSS, bytes on disk per span once blocks are
//! written, and trace-by-ID and search latency percentiles on the stored data.
//!
//! `bench logs` does the same for OTLP/HTTP log ingest: records per server CPU-second, bytes
//! per record in log blocks, and logs-by-trace-ID latency.
//!
//! Benchmarks measure; they never assert. They run on loopback only.
#![deny(missing_docs)]

pub mod generator;
pub mod ingest;
pub mod logs;
mod process;
mod settle;
