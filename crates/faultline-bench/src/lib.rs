//! Benchmarks for Faultline, run as `faultline bench ...`.
//!
//! `bench ingest` starts (or targets) a Faultline server in a separate process, streams
//! realistic OTLP/gRPC batches at it, and measures what the server spends: spans per second,
//! server CPU-seconds per million spans, peak RSS, bytes on disk per span once blocks are
//! written, and trace-by-ID and search latency percentiles on the stored data.
//!
//! Benchmarks measure; they never assert. They run on loopback only.
#![deny(missing_docs)]

pub mod generator;
pub mod ingest;
mod process;
