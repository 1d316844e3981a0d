//! The crate's error type.

use std::net::SocketAddr;

/// Everything that can stop the demo from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for {what}: {source}; is another process using the port? Pick others with --shop-port, --otlp-grpc, --otlp-http or --http")]
    Bind {
        /// What the listener is for.
        what: String,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Instrumentation could not be set up.
    #[error("setting up telemetry for {service}: {source}")]
    Telemetry {
        /// The service.
        service: &'static str,
        /// Why.
        source: faultline_instrument::Error,
    },
    /// The inventory database could not be opened or seeded.
    #[error("inventory database: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded Faultline server failed.
    #[error(transparent)]
    Server(#[from] faultline_server::ServerError),
    /// A setting is invalid; the message says which and what is expected.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A fault request was refused.
    #[error(transparent)]
    Fault(#[from] crate::fault::FaultError),
    /// Talking to a service's admin endpoint or the gateway failed.
    #[error("{url}: {detail}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// Which file or directory.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}
