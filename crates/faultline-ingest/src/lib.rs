//! OTLP trace and log receivers for Faultline.
//!
//! The gRPC service ([`grpc_service`]) and the HTTP router ([`http_router`]) turn OTLP export
//! requests into [`faultline_storage::Store::append`] calls through one shared pipeline:
//! decode (protobuf or OTLP/JSON, gzip allowed, size bounded before and after decompression),
//! validate and limit the spans, build the WAL record, append, and answer with OTLP success,
//! partial success, or an error code clients know how to act on. Logs (`/v1/logs`,
//! [`logs_grpc_service`]) take the same path into [`faultline_storage::Store::logs`].
//!
//! This crate must not bind sockets, own runtimes or know how spans are stored: the server
//! crate wires listeners, the storage crate persists. Every byte it reads is hostile, so no
//! input may make it panic or grow memory past its configured limits.
//!
//! ```no_run
//! # async fn wire(store: std::sync::Arc<faultline_storage::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use faultline_ingest::{grpc_service, http_router, IngestConfig, IngestState};
//!
//! let state = IngestState::new(store, IngestConfig::default())?;
//! let grpc = tonic::transport::Server::builder()
//!     .add_service(grpc_service(state.clone()))
//!     .serve("127.0.0.1:4317".parse()?);
//! let http = axum::serve(
//!     tokio::net::TcpListener::bind("127.0.0.1:4318").await?,
//!     http_router(state.clone()),
//! );
//! let (grpc, http) = tokio::join!(grpc, http);
//! grpc?;
//! http?;
//! println!("{:?}", state.stats().snapshot());
//! # Ok(())
//! # }
//! ```
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
pub use pipeline::{IngestState, SpanTap};
pub use receivers::otlp::grpc::{
    grpc_service, logs_grpc_service, LogsGrpcService, OtlpGrpcService, TraceGrpcService,
};
pub use receivers::otlp::http::http_router;
pub use stats::{IngestStats, IngestStatsSnapshot};
