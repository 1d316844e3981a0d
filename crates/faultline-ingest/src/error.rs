//! Ingest errors. How each one looks on the wire is decided in [`crate::wire`] only.

use faultline_model::otlp::DecodeError;
use faultline_storage::StorageError;

/// Everything that can go wrong while receiving one export request.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The configuration cannot work (never sent to a client).
    #[error("invalid ingest configuration: {0}")]
    InvalidConfig(String),
    /// The HTTP `Content-Type` is neither OTLP protobuf nor OTLP JSON.
    #[error(
        "unsupported Content-Type {0:?}: OTLP/HTTP accepts application/x-protobuf or application/json"
    )]
    UnsupportedContentType(String),
    /// The HTTP `Content-Encoding` is neither gzip nor identity.
    #[error("unsupported Content-Encoding {0:?}: OTLP/HTTP accepts gzip or identity")]
    UnsupportedContentEncoding(String),
    /// The request body as sent is over `max_request_bytes`.
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The request body decompresses to more than `max_request_bytes`.
    #[error("request body decompresses to more than the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The client took longer than `body_timeout_secs` to send the body.
    #[error("request body was not received within {secs}s")]
    BodyTimeout {
        /// The configured limit.
        secs: u64,
    },
    /// The connection failed while the body was read.
    #[error("request body could not be read: {0}")]
    BodyRead(String),
    /// `Content-Encoding: gzip` but the body is not valid gzip.
    #[error("request body is not valid gzip: {0}")]
    InvalidGzip(std::io::Error),
    /// The payload is not a valid OTLP export request protobuf (traces are decoded by
    /// [`decode_traces`](faultline_model::otlp::decode_traces), logs by prost).
    #[error("payload is not a valid OTLP {request} protobuf: {source}")]
    InvalidProtobuf {
        /// The message the payload should have been: `ExportTraceServiceRequest` or
        /// `ExportLogsServiceRequest`.
        request: &'static str,
        /// What is wrong with it.
        source: DecodeError,
    },
    /// The payload is not valid OTLP/JSON.
    #[error("payload is not valid OTLP/JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    /// More requests are being decoded than `max_concurrent_requests` allows.
    #[error(
        "too many export requests in progress (limit {limit}); retry after {retry_after_secs}s"
    )]
    TooManyRequests {
        /// The configured limit.
        limit: usize,
        /// Suggested wait before retrying, in seconds.
        retry_after_secs: u64,
    },
    /// A bug or a runtime shutting down stopped the work midway.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store refused or failed the append.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The protobuf message of a traces export, as [`IngestError::InvalidProtobuf`] names it.
pub(crate) const TRACES_REQUEST: &str = "ExportTraceServiceRequest";
/// The protobuf message of a logs export, as [`IngestError::InvalidProtobuf`] names it.
pub(crate) const LOGS_REQUEST: &str = "ExportLogsServiceRequest";

impl IngestError {
    /// A traces export whose protobuf does not decode.
    pub(crate) fn invalid_traces(source: DecodeError) -> Self {
        Self::InvalidProtobuf {
            request: TRACES_REQUEST,
            source,
        }
    }

    /// A logs export whose protobuf does not decode.
    pub(crate) fn invalid_logs(source: prost::DecodeError) -> Self {
        Self::InvalidProtobuf {
            request: LOGS_REQUEST,
            source: DecodeError::Wire(source),
        }
    }
}

impl IngestError {
    /// Whether this error means "come back later" rather than "this request is wrong".
    pub fn is_overload(&self) -> bool {
        matches!(
            self,
            Self::TooManyRequests { .. } | Self::Storage(StorageError::Overloaded { .. })
        )
    }
}
