//! The one place where query errors become HTTP responses.
//!
//! The Jaeger HTTP JSON API answers errors inside its usual envelope
//! (`{"data": null, ..., "errors": [{"code": 400, "msg": "..."}]}`); api_v3 answers them the way
//! Jaeger's grpc-gateway does (`{"error": {"httpCode": 400, "message": "..."}}`). Both are built
//! here from the same [`QueryError`], so a status code is decided once.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use faultline_model::TraceId;
use faultline_storage::StorageError;
use serde::Serialize;

/// Everything a query can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A request parameter is missing, malformed or out of range.
    #[error("invalid parameter '{param}': {reason}")]
    BadParameter {
        /// The parameter's name as the client sent it (e.g. `minDuration`).
        param: String,
        /// What was wrong and what is expected instead.
        reason: String,
    },
    /// The requested trace has no stored span.
    #[error("trace not found")]
    TraceNotFound(TraceId),
    /// The store failed to answer.
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
    /// The answer could not be encoded (a bug, not a bad request).
    #[error("failed to encode the answer: {0}")]
    Encode(String),
}

impl QueryError {
    /// Builds a [`QueryError::BadParameter`].
    pub fn bad_param(param: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::BadParameter {
            param: param.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadParameter { .. } => StatusCode::BAD_REQUEST,
            Self::TraceNotFound(_) => StatusCode::NOT_FOUND,
            // The store refuses reads only while shutting down or overloaded: both pass.
            Self::Storage(StorageError::ShuttingDown | StorageError::Overloaded { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Storage(_) | Self::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying, when the store says so.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Storage(StorageError::Overloaded {
                retry_after_secs, ..
            }) => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The status and headers shared by both error forms.
    fn head(&self) -> (StatusCode, HeaderMap) {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "query failed");
        }
        let mut headers = HeaderMap::new();
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        (status, headers)
    }
}

/// One entry of the Jaeger envelope's `errors` list.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub(crate) struct EnvelopeError {
    /// HTTP status code; absent for per-trace errors in a successful answer, as in Jaeger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Human-readable message.
    pub msg: String,
    /// The trace the error is about, for `traceID=` lookups.
    #[serde(rename = "traceID", skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// The Jaeger HTTP JSON API envelope.
#[derive(Serialize, Debug)]
pub(crate) struct Envelope<T> {
    pub data: T,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: Option<Vec<EnvelopeError>>,
}

impl<T> Envelope<T> {
    /// A successful answer; `total` counts the items of `data`.
    pub fn ok(data: T, total: usize) -> Self {
        Self {
            data,
            total,
            limit: 0,
            offset: 0,
            errors: None,
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let (status, headers) = self.head();
        let body: Envelope<Option<()>> = Envelope {
            data: None,
            total: 0,
            limit: 0,
            offset: 0,
            errors: Some(vec![EnvelopeError {
                code: Some(status.as_u16()),
                msg: self.to_string(),
                trace_id: None,
            }]),
        };
        (status, headers, Json(body)).into_response()
    }
}

/// A [`QueryError`] answered in api_v3's grpc-gateway error form.
#[derive(Debug)]
pub struct V3Error(pub QueryError);

impl From<QueryError> for V3Error {
    fn from(e: QueryError) -> Self {
        Self(e)
    }
}

impl From<StorageError> for V3Error {
    fn from(e: StorageError) -> Self {
        Self(QueryError::Storage(e))
    }
}

#[derive(Serialize)]
struct GatewayError {
    error: GatewayErrorDetails,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GatewayErrorDetails {
    http_code: u16,
    message: String,
}

impl IntoResponse for V3Error {
    fn into_response(self) -> Response {
        let (status, headers) = self.0.head();
        let body = GatewayError {
            error: GatewayErrorDetails {
                http_code: status.as_u16(),
                message: self.0.to_string(),
            },
        };
        (status, headers, Json(body)).into_response()
    }
}

/// A [`QueryError`] answered the way Tempo answers errors: the message as plain text, which
/// Grafana shows as it is (for a TraceQL error, under the query box).
#[derive(Debug)]
pub struct TempoError(pub QueryError);

impl From<QueryError> for TempoError {
    fn from(e: QueryError) -> Self {
        Self(e)
    }
}

impl IntoResponse for TempoError {
    fn into_response(self) -> Response {
        let (status, mut headers) = self.0.head();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        (status, headers, format!("{}\n", self.0)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overload_is_503_with_retry_after_in_both_forms() {
        let overloaded = || {
            QueryError::Storage(StorageError::Overloaded {
                used: 10,
                budget: 5,
                retry_after_secs: 2,
            })
        };
        for response in [
            overloaded().into_response(),
            V3Error(overloaded()).into_response(),
        ] {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response.headers().get(header::RETRY_AFTER),
                Some(&HeaderValue::from(2u64))
            );
        }
        let response = QueryError::bad_param("limit", "bad").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).expect("json"),
            serde_json::json!({"data": null, "total": 0, "limit": 0, "offset": 0,
                "errors": [{"code": 400, "msg": "invalid parameter 'limit': bad"}]})
        );
    }
}
