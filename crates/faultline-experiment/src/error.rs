//! The crate's error type.

/// Everything that can stop an experiment.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The demo (server or shop) failed to start or stop.
    #[error(transparent)]
    Demo(#[from] faultline_demo::DemoError),
    /// A fault could not be injected or cleared.
    #[error("fault injection: {0}")]
    Fault(#[from] faultline_demo::fault::FaultError),
    /// An HTTP request to Faultline's API failed before an answer came.
    #[error("{url}: {source}")]
    Http {
        /// The URL asked.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// Faultline's API answered with an error status.
    #[error("{url} answered {status}: {body}")]
    Api {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// An answer was not the JSON expected.
    #[error("{what}: {source}")]
    Json {
        /// What was parsed.
        what: String,
        /// Why it failed.
        source: serde_json::Error,
    },
    /// A file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The options make no sense.
    #[error("{0}")]
    Config(String),
}
