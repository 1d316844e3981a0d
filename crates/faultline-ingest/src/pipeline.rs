//! The path every export request takes, whatever the protocol: decode, validate and limit the
//! spans, build the WAL record, append, and describe the outcome.

use std::sync::Arc;

use bytes::Bytes;
use faultline_model::otlp::{spans_from_otlp, spans_to_otlp, TracesData};
use faultline_storage::{AppendBatch, Store};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{IngestConfig, IngestError, IngestStats};

/// How long a client refused by the concurrency limit is asked to wait. Requests finish in
/// milliseconds, so a second is plenty for a slot to free up without hammering the server.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// An export request body in one of the two OTLP encodings, already decompressed.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// Protobuf `ExportTraceServiceRequest` bytes.
    Protobuf(Bytes),
    /// OTLP/JSON `ExportTraceServiceRequest` text.
    Json(Bytes),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Self::Protobuf(b) | Self::Json(b) => b.len(),
        }
    }
}

/// What happened to the spans of one accepted request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExportOutcome {
    /// Spans appended to the store.
    pub accepted: u64,
    /// Spans refused as invalid.
    pub rejected: u64,
    /// Why they were refused; empty when none were.
    pub error_message: String,
}

impl ExportOutcome {
    /// The OTLP response: plain success, or partial success naming what was refused.
    pub fn to_response(&self) -> ExportTraceServiceResponse {
        let partial_success = (self.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(self.rejected).unwrap_or(i64::MAX),
            error_message: self.error_message.clone(),
        });
        ExportTraceServiceResponse { partial_success }
    }
}

/// Everything the receivers share: the store, the settings, the counters and the concurrency
/// limit. Cheap to clone.
#[derive(Clone)]
pub struct IngestState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    config: IngestConfig,
    stats: Arc<IngestStats>,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for IngestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestState")
            .field("config", &self.inner.config)
            .field("stats", &self.inner.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl IngestState {
    /// Validates `config` and builds the state the receivers run on.
    pub fn new(store: Arc<Store>, config: IngestConfig) -> Result<Self, IngestError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                in_flight: Arc::new(Semaphore::new(config.max_concurrent_requests)),
                config,
                stats: Arc::new(IngestStats::default()),
            }),
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &IngestConfig {
        &self.inner.config
    }

    /// The counters, shared with whoever reports them.
    pub fn stats(&self) -> Arc<IngestStats> {
        Arc::clone(&self.inner.stats)
    }

    /// Counts a request as received, whatever becomes of it.
    pub(crate) fn count_request(&self) {
        self.inner.stats.request();
    }

    /// Takes one of the `max_concurrent_requests` slots, without waiting: a queue here would
    /// hold request bodies in memory without bound.
    pub(crate) fn admit(&self) -> Result<OwnedSemaphorePermit, IngestError> {
        Arc::clone(&self.inner.in_flight)
            .try_acquire_owned()
            .map_err(|_| IngestError::TooManyRequests {
                limit: self.inner.config.max_concurrent_requests,
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            })
    }

    /// Counts a request that ended in `err`, wherever it failed.
    pub(crate) fn record_failure(&self, err: &IngestError) {
        if err.is_overload() {
            self.inner.stats.overload();
        } else if !matches!(err, IngestError::Storage(_)) {
            self.inner.stats.malformed();
        }
    }

    /// Decodes `payload` and stores its spans.
    pub(crate) async fn export(&self, payload: Payload) -> Result<ExportOutcome, IngestError> {
        self.inner.stats.payload(payload.len());
        let (request, raw) = match payload {
            Payload::Protobuf(bytes) => {
                let request = ExportTraceServiceRequest::decode(bytes.clone())?;
                (request, Some(bytes))
            }
            Payload::Json(bytes) => (crate::json::decode_request(&bytes)?, None),
        };
        self.store(request, raw).await
    }

    /// Converts, limits and appends. `raw` is the request's protobuf encoding when there is
    /// one: it becomes the WAL record as-is if nothing was rejected or changed, which saves
    /// re-encoding the whole batch on the common path.
    async fn store(
        &self,
        request: ExportTraceServiceRequest,
        raw: Option<Bytes>,
    ) -> Result<ExportOutcome, IngestError> {
        let converted = spans_from_otlp(request.resource_spans, &self.inner.config.limits);
        let outcome = ExportOutcome {
            accepted: converted.spans.len() as u64,
            rejected: converted.rejected,
            error_message: converted.error_message(),
        };
        if !converted.spans.is_empty() {
            let otlp = match raw {
                // ExportTraceServiceRequest and TracesData share field 1, so the bytes are a
                // valid TracesData too.
                Some(raw) if converted.rejected == 0 && !converted.modified => raw,
                _ => Bytes::from(
                    TracesData {
                        resource_spans: spans_to_otlp(&converted.spans),
                    }
                    .encode_to_vec(),
                ),
            };
            let batch = AppendBatch {
                spans: converted.spans,
                otlp,
            };
            self.inner
                .store
                .append(batch, self.inner.config.ack)
                .await?;
        }
        self.inner.stats.spans(outcome.accepted, outcome.rejected);
        Ok(outcome)
    }
}
