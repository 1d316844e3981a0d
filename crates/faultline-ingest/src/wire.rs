//! The one place where [`IngestError`]s become wire answers: `tonic::Status` for OTLP/gRPC,
//! status code, headers and a `google.rpc.Status` body for OTLP/HTTP.
//!
//! OTLP clients decide whether to retry from these codes alone: gRPC `RESOURCE_EXHAUSTED` is
//! retried only when it carries `RetryInfo`, `UNAVAILABLE` always, `INVALID_ARGUMENT` never;
//! HTTP 429, 502, 503 and 504 are retried (honouring `Retry-After`), other 4xx never.
//!
//! | situation | gRPC | HTTP | retried |
//! |---|---|---|---|
//! | some spans invalid (bad IDs) | `OK` + `partial_success` | 200 + `partialSuccess` | no |
//! | malformed protobuf / JSON / gzip | `INVALID_ARGUMENT` | 400 | no |
//! | unsupported `Content-Type` / `Content-Encoding` | — | 415 | no |
//! | over `max_request_bytes`, sent or decompressed | `RESOURCE_EXHAUSTED`, no `RetryInfo` | 413 | no |
//! | store over its memory budget, or `max_concurrent_requests` busy | `RESOURCE_EXHAUSTED` + `RetryInfo` | 429 + `Retry-After` | yes |
//! | store shutting down or failing to write | `UNAVAILABLE` | 503 + `Retry-After` | yes |
//! | body not received within `body_timeout_secs` | `DEADLINE_EXCEEDED` | 408 | gRPC only |

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use faultline_storage::StorageError;
use prost::Message;
use serde::Serialize;
use tonic::Code;

use crate::IngestError;

/// Which encoding an HTTP answer is written in: the request's, or JSON when the request's
/// encoding is unknown (an unsupported content type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HttpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl HttpEncoding {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of OTLP error responses and of gRPC `grpc-status-details-bin`.
#[derive(Clone, PartialEq, Message, Serialize)]
pub(crate) struct RpcStatus {
    /// A `google.rpc.Code` value.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Developer-facing English message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details, such as `RetryInfo`.
    #[prost(message, repeated, tag = "3")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message, Serialize)]
pub(crate) struct ProtoAny {
    /// Type URL of the packed message.
    #[prost(string, tag = "1")]
    #[serde(rename = "@type")]
    pub type_url: String,
    /// The packed message.
    #[prost(bytes = "vec", tag = "2")]
    #[serde(skip)]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RetryInfo {
    /// How long the client should wait.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Fraction of a second in nanoseconds.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

impl IngestError {
    /// The gRPC code for this error.
    pub(crate) fn grpc_code(&self) -> Code {
        match self {
            Self::InvalidConfig(_) | Self::Internal(_) => Code::Internal,
            Self::UnsupportedContentType(_)
            | Self::UnsupportedContentEncoding(_)
            | Self::BodyRead(_)
            | Self::InvalidGzip(_)
            | Self::InvalidProtobuf { .. }
            | Self::InvalidJson(_) => Code::InvalidArgument,
            // Without RetryInfo clients treat this as final, which is right for a request that
            // will never fit.
            Self::BodyTooLarge { .. } | Self::DecompressedTooLarge { .. } => {
                Code::ResourceExhausted
            }
            Self::TooManyRequests { .. } => Code::ResourceExhausted,
            Self::BodyTimeout { .. } => Code::DeadlineExceeded,
            Self::Storage(StorageError::Overloaded { .. }) => Code::ResourceExhausted,
            Self::Storage(StorageError::BatchTooLarge { .. }) => Code::ResourceExhausted,
            // A failed or refused write loses nothing the client still holds: let it retry.
            Self::Storage(_) => Code::Unavailable,
        }
    }

    /// The HTTP status for this error.
    pub(crate) fn http_status(&self) -> StatusCode {
        match self {
            Self::InvalidConfig(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UnsupportedContentType(_) | Self::UnsupportedContentEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::BodyRead(_)
            | Self::InvalidGzip(_)
            | Self::InvalidProtobuf { .. }
            | Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. }
            | Self::DecompressedTooLarge { .. }
            | Self::Storage(StorageError::BatchTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests { .. } | Self::Storage(StorageError::Overloaded { .. }) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Seconds the client should wait before retrying, when retrying makes sense.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::TooManyRequests {
                retry_after_secs, ..
            }
            | Self::Storage(StorageError::Overloaded {
                retry_after_secs, ..
            }) => Some((*retry_after_secs).max(1)),
            Self::Storage(StorageError::BatchTooLarge { .. }) => None,
            Self::Storage(_) => Some(1),
            _ => None,
        }
    }

    fn rpc_status(&self) -> RpcStatus {
        let code = self.grpc_code();
        let details = match (code, self.retry_after_secs()) {
            (Code::ResourceExhausted, Some(secs)) => vec![ProtoAny {
                type_url: RETRY_INFO_TYPE_URL.to_owned(),
                value: RetryInfo {
                    retry_delay: Some(ProtoDuration {
                        seconds: i64::try_from(secs).unwrap_or(i64::MAX),
                        nanos: 0,
                    }),
                }
                .encode_to_vec(),
            }],
            _ => Vec::new(),
        };
        RpcStatus {
            code: code as i32,
            message: self.to_string(),
            details,
        }
    }

    /// The `tonic::Status` for OTLP/gRPC, with `RetryInfo` when the client should come back.
    pub(crate) fn to_grpc_status(&self) -> tonic::Status {
        let status = self.rpc_status();
        if status.details.is_empty() {
            tonic::Status::new(self.grpc_code(), status.message)
        } else {
            let details = Bytes::from(status.encode_to_vec());
            tonic::Status::with_details(self.grpc_code(), status.message, details)
        }
    }

    /// The OTLP/HTTP answer: status code, `Retry-After` where useful, and a `google.rpc.Status`
    /// body in `encoding`.
    pub(crate) fn to_http_response(&self, encoding: HttpEncoding) -> Response {
        let status = self.rpc_status();
        let body = match encoding {
            HttpEncoding::Protobuf => status.encode_to_vec(),
            // Serialising a struct of strings and integers cannot fail; fall back to an empty
            // object rather than panic if it ever did.
            HttpEncoding::Json => serde_json::to_vec(&status).unwrap_or_else(|_| b"{}".to_vec()),
        };
        let mut response = (
            self.http_status(),
            [(header::CONTENT_TYPE, encoding.content_type())],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overloaded() -> IngestError {
        IngestError::Storage(StorageError::Overloaded {
            used: 10,
            budget: 5,
            retry_after_secs: 3,
        })
    }

    #[test]
    fn overload_carries_retry_info() {
        let status = overloaded().to_grpc_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = RpcStatus::decode(status.details()).expect("details are google.rpc.Status");
        assert_eq!(details.code, Code::ResourceExhausted as i32);
        let [any] = details.details.as_slice() else {
            panic!("expected one detail, got {:?}", details.details);
        };
        assert_eq!(any.type_url, RETRY_INFO_TYPE_URL);
        let info = RetryInfo::decode(any.value.as_slice()).expect("RetryInfo");
        assert_eq!(info.retry_delay.map(|d| d.seconds), Some(3));
    }

    #[test]
    fn final_errors_have_no_retry_hint() {
        let too_big = IngestError::BodyTooLarge { limit: 1 };
        let status = too_big.to_grpc_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.details().is_empty());
        let response = too_big.to_http_response(HttpEncoding::Json);
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn http_overload_has_retry_after() {
        let response = overloaded().to_http_response(HttpEncoding::Protobuf);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(3u64))
        );
        let shutting_down = IngestError::Storage(StorageError::ShuttingDown);
        assert_eq!(shutting_down.grpc_code(), Code::Unavailable);
        assert_eq!(shutting_down.http_status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
