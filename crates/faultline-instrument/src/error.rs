//! The crate's error type.

/// Everything that can go wrong while setting up or running instrumentation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An `OTEL_*` variable or builder option holds a value the spec does not allow.
    #[error("invalid configuration {name}={value:?}: {reason}")]
    InvalidConfig {
        /// The variable or option name.
        name: &'static str,
        /// The rejected value.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The OTLP exporter could not be built.
    #[error("building the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// Flushing or shutting down the tracer provider failed.
    #[error("flushing or shutting down the tracer provider: {0}")]
    Sdk(#[from] opentelemetry_sdk::error::OTelSdkError),
    /// The export worker thread could not be started.
    #[error("starting the export worker: {0}")]
    Worker(#[source] std::io::Error),
}
