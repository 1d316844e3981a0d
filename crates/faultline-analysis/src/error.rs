//! The crate's errors and, in one place, their HTTP answers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use faultline_storage::StorageError;

/// Everything the analysis can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A request parameter is malformed or out of range.
    #[error("invalid parameter '{name}': {message}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// The trace ID is well formed but no span of it is stored.
    #[error("trace not found")]
    TraceNotFound,
    /// No incident has this ID (it never existed or was dropped from the bounded log).
    #[error("incident not found")]
    IncidentNotFound,
    /// The store could not answer.
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
    /// A setting of [`AnalysisConfig`](crate::AnalysisConfig) makes no sense.
    #[error("invalid analysis configuration: {0}")]
    InvalidConfig(String),
}

impl AnalysisError {
    /// The HTTP status this error answers with.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            Self::TraceNotFound | Self::IncidentNotFound => StatusCode::NOT_FOUND,
            Self::Storage(StorageError::Overloaded { .. } | StorageError::ShuttingDown) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Storage(_) | Self::InvalidConfig(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AnalysisError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        if status.is_server_error() {
            tracing::warn!(error = %self, "analysis request failed");
        }
        let retry_after = match &self {
            Self::Storage(StorageError::Overloaded {
                retry_after_secs, ..
            }) => Some(*retry_after_secs),
            _ => None,
        };
        // The Jaeger envelope, as the rest of the query API answers errors.
        let body = serde_json::json!({
            "data": null,
            "errors": [{"code": status.as_u16(), "msg": self.to_string()}],
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
