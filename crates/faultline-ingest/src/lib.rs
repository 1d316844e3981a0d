//! OTLP trace receivers for Faultline.
//!
//! The gRPC service ([`grpc_service`]) and the HTTP router ([`http_router`]) turn OTLP export
//! requests into [`faultline_storage::Store::append`] calls through one shared pipeline:
//! decode (protobuf or OTLP/JSON, gzip allowed, size bounded before and after decompression),
//! validate and limit the spans, build the WAL record, append, and answer with OTLP success,
//! partial success, or an error code clients know how to act on.
//!
//! This crate must not bind sockets, own runtimes or know how spans are stored: the server
//! crate wires listeners, the storage crate persists. Every byte it reads is hostile, so no
//! input may make it panic or grow memory past its configured limits.
#![deny(missing_docs)]

mod config;
mod error;
mod json;
mod pipeline;
pub mod receivers;
mod stats;
mod wire;

#[cfg(test)]
mod test_support;

pub use config::IngestConfig;
pub use error::IngestError;
pub use pipeline::IngestState;
pub use receivers::otlp::grpc::{grpc_service, TraceGrpcService};
pub use receivers::otlp::http::http_router;
pub use stats::{IngestStats, IngestStatsSnapshot};
