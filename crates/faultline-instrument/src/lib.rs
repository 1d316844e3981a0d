//! Instrumentation for Rust services: make an axum/tower/reqwest/tonic service fully traced in a
//! few lines, exporting over OTLP to any OpenTelemetry backend.
//!
//! [`init`] configures the tracer provider, OTLP exporter, resource, sampler and propagators from
//! the standard `OTEL_*` environment variables. Tower layers then trace incoming and outgoing
//! HTTP and gRPC calls, messaging and database helpers trace the rest, a log formatter puts
//! `trace_id`/`span_id` into every log line, and (opt-in) the same events leave over OTLP as log
//! records carrying those ids.
//!
//! This crate must not depend on any Faultline server crate, must never block or panic on the
//! request path (headers from the network are hostile), and must never await the exporter
//! while serving a request: spans that do not fit the export queue are dropped and counted, and
//! log records that do not fit theirs are dropped.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod client;
pub mod db;
mod error;
pub mod grpc;
pub mod logs;
pub mod messaging;
pub mod processor;
pub mod propagation;
mod request_headers;
pub mod resilience;
pub mod sampling;
mod semconv;
pub mod server;
mod setup;
mod token_bucket;

pub use error::Error;
pub use setup::{init, Protocol, Telemetry, TelemetryBuilder};
pub use token_bucket::TokenBucket;
