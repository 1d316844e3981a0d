//! The path every export request takes, whatever the protocol: decode, validate and limit the
//! spans, build the WAL record, append, and describe the outcome.

use std::sync::Arc;

use bytes::Bytes;
use faultline_model::otlp::{
    decode_traces, spans_from_otlp, spans_to_otlp, Converted, SpanLimits, TracesData,
};
use faultline_model::otlp_logs::{
    logs_from_otlp, logs_to_otlp, ConvertedLogs, LogLimits, LogsData,
};
use faultline_storage::{AppendBatch, LogBatch, Store};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
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

    /// The OTLP logs response: plain success, or partial success naming what was refused.
    pub fn to_logs_response(&self) -> ExportLogsServiceResponse {
        let partial_success = (self.rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(self.rejected).unwrap_or(i64::MAX),
            error_message: self.error_message.clone(),
        });
        ExportLogsServiceResponse { partial_success }
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
    tap: Option<Arc<dyn SpanTap>>,
}

/// Something that watches the stream of accepted spans, such as the live analysis.
///
/// It sees a batch before it is appended and is told only when the append succeeded, so a
/// batch that fails and is retried by the client is not counted twice.
pub trait SpanTap: Send + Sync + 'static {
    /// Looks at a batch about to be appended; the returned closure runs once it is stored.
    fn prepare(&self, spans: &[faultline_model::Span]) -> Box<dyn FnOnce() + Send>;
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
        Self::with_tap(store, config, None)
    }

    /// Like [`IngestState::new`], with a [`SpanTap`] that sees every stored batch.
    pub fn with_tap(
        store: Arc<Store>,
        config: IngestConfig,
        tap: Option<Arc<dyn SpanTap>>,
    ) -> Result<Self, IngestError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                in_flight: Arc::new(Semaphore::new(config.max_concurrent_requests)),
                config,
                stats: Arc::new(IngestStats::default()),
                tap,
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
        } else if err.http_status().is_client_error() {
            self.inner.stats.malformed();
        }
    }

    /// Decodes `payload` and stores its spans.
    pub(crate) async fn export(&self, payload: Payload) -> Result<ExportOutcome, IngestError> {
        self.inner.stats.payload(payload.len());
        let limits = self.inner.config.limits;
        let (outcome, batch) = if payload.len() <= INLINE_PAYLOAD_BYTES {
            prepare(payload, &limits)?
        } else {
            run_blocking(move || prepare(payload, &limits)).await??
        };
        if let Some(batch) = batch {
            let on_stored = self.inner.tap.as_ref().map(|t| t.prepare(&batch.spans));
            self.inner
                .store
                .append(batch, self.inner.config.ack)
                .await?;
            if let Some(on_stored) = on_stored {
                on_stored();
            }
        }
        self.inner.stats.spans(outcome.accepted, outcome.rejected);
        Ok(outcome)
    }
}

impl IngestState {
    /// Decodes `payload` as an OTLP logs export and stores its records in the log store.
    pub(crate) async fn export_logs(&self, payload: Payload) -> Result<ExportOutcome, IngestError> {
        self.inner.stats.payload(payload.len());
        let limits = self.inner.config.log_limits;
        let (outcome, batch, truncated) = if payload.len() <= INLINE_PAYLOAD_BYTES {
            prepare_logs(payload, &limits)?
        } else {
            run_blocking(move || prepare_logs(payload, &limits)).await??
        };
        if let Some(batch) = batch {
            self.inner
                .store
                .logs()
                .append(batch, self.inner.config.ack)
                .await?;
        }
        self.inner
            .stats
            .log_records(outcome.accepted, outcome.rejected, truncated);
        Ok(outcome)
    }
}

/// [`prepare`] for logs; also returns how many records the limits truncated.
fn prepare_logs(
    payload: Payload,
    limits: &LogLimits,
) -> Result<(ExportOutcome, Option<LogBatch>, u64), IngestError> {
    let (request, raw): (ExportLogsServiceRequest, _) = match payload {
        Payload::Protobuf(bytes) => (
            ExportLogsServiceRequest::decode(bytes.clone()).map_err(IngestError::invalid_logs)?,
            Some(bytes),
        ),
        Payload::Json(bytes) => (crate::json::decode_request(&bytes)?, None),
    };
    let converted = logs_from_otlp(request.resource_logs, limits);
    let outcome = ExportOutcome {
        accepted: converted.records.len() as u64,
        rejected: converted.rejected,
        error_message: converted.error_message(),
    };
    let truncated = converted.truncated_bodies + converted.truncated_attributes;
    if converted.records.is_empty() {
        return Ok((outcome, None, truncated));
    }
    let otlp = logs_wal_record(&converted, raw);
    Ok((
        outcome,
        Some(LogBatch {
            records: converted.records,
            otlp,
        }),
        truncated,
    ))
}

/// The OTLP `LogsData` bytes the log WAL stores: the request's own bytes when they describe
/// exactly the accepted records (`ExportLogsServiceRequest` and `LogsData` share field 1).
fn logs_wal_record(converted: &ConvertedLogs, raw: Option<Bytes>) -> Bytes {
    match raw {
        Some(raw) if converted.rejected == 0 && !converted.modified => raw,
        _ => Bytes::from(
            LogsData {
                resource_logs: logs_to_otlp(&converted.records),
            }
            .encode_to_vec(),
        ),
    }
}

/// Payloads up to this size are decoded on the async worker: a few dozen spans take less time
/// to decode than a hop to the blocking pool. Larger ones would stall every connection that
/// shares the worker (including queries), so they are decoded on the blocking pool.
pub(crate) const INLINE_PAYLOAD_BYTES: usize = 32 * 1024;

/// Runs CPU-heavy work (decompression, decoding) off the async workers.
pub(crate) async fn run_blocking<T, F>(work: F) -> Result<T, IngestError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| IngestError::Internal(format!("decoding task did not finish: {e}")))
}

/// Decodes, validates and limits the spans of `payload`, and builds the batch to append (none
/// when no span was accepted).
///
/// Protobuf is decoded straight into model spans by [`decode_traces`]; JSON goes through the
/// prost types and [`spans_from_otlp`]. `raw`, the request's protobuf encoding, becomes the WAL
/// record as-is when nothing was rejected or changed, which saves re-encoding the whole batch
/// on the common path.
fn prepare(
    payload: Payload,
    limits: &SpanLimits,
) -> Result<(ExportOutcome, Option<AppendBatch>), IngestError> {
    let (converted, raw) = match payload {
        Payload::Protobuf(bytes) => (
            decode_traces(&bytes, limits).map_err(IngestError::invalid_traces)?,
            Some(bytes),
        ),
        Payload::Json(bytes) => {
            let request: ExportTraceServiceRequest = crate::json::decode_request(&bytes)?;
            (spans_from_otlp(request.resource_spans, limits), None)
        }
    };
    let outcome = ExportOutcome {
        accepted: converted.spans.len() as u64,
        rejected: converted.rejected,
        error_message: converted.error_message(),
    };
    let batch = (!converted.spans.is_empty()).then(|| {
        let otlp = wal_record(&converted, raw);
        AppendBatch {
            spans: converted.spans,
            otlp,
        }
    });
    Ok((outcome, batch))
}

/// The OTLP `TracesData` bytes the store logs for `converted`: the request's own bytes when
/// they describe exactly the accepted spans, otherwise a fresh encoding of those spans.
fn wal_record(converted: &Converted, raw: Option<Bytes>) -> Bytes {
    match raw {
        // ExportTraceServiceRequest and TracesData share field 1, so the bytes are a valid
        // TracesData too.
        Some(raw) if converted.rejected == 0 && !converted.modified => raw,
        _ => Bytes::from(
            TracesData {
                resource_spans: spans_to_otlp(&converted.spans),
            }
            .encode_to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use faultline_storage::AckMode;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList};
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::*;

    /// Replays a WAL record the way the store does on start.
    fn replay(record: &Bytes) -> Converted {
        decode_traces(record, &SpanLimits::default()).expect("WAL record is TracesData")
    }

    #[test]
    fn clean_protobuf_is_logged_without_re_encoding() {
        let raw = Bytes::from(trace_request(1).encode_to_vec());
        let converted = decode_traces(&raw, &SpanLimits::default()).expect("decodes");
        let record = wal_record(&converted, Some(raw.clone()));
        assert_eq!(record.as_ptr(), raw.as_ptr(), "same buffer, no copy");
        assert_eq!(replay(&record).spans, converted.spans);
    }

    #[test]
    fn limited_or_rejected_spans_are_re_encoded_to_what_was_accepted() {
        let limits = SpanLimits {
            max_attribute_value_len: 100,
            ..SpanLimits::default()
        };
        let mut huge = span(2, 1, None);
        huge.attributes
            .push(kv("blob", Value::StringValue("é".repeat(1_000_000))));
        let mut invalid = span(2, 2, None);
        invalid.trace_id.clear();
        for (what, spans) in [
            ("huge attribute", vec![huge.clone()]),
            ("invalid span", vec![span(2, 3, None), invalid]),
        ] {
            let raw = Bytes::from(request(spans).encode_to_vec());
            let converted = decode_traces(&raw, &limits).expect("decodes");
            let record = wal_record(&converted, Some(raw.clone()));
            assert_ne!(record, raw, "{what}: the request bytes no longer fit");
            assert_eq!(replay(&record).spans, converted.spans, "{what}");
        }
        let converted = spans_from_otlp(request(vec![huge]).resource_spans, &limits);
        let record = wal_record(&converted, None);
        assert!(
            record.len() < 2_000,
            "truncated value logged: {} bytes",
            record.len()
        );
    }

    fn nested(depth: usize) -> AnyValue {
        let mut value = AnyValue {
            value: Some(Value::StringValue("leaf".into())),
        };
        for _ in 0..depth {
            value = AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(value),
                        ..Default::default()
                    }],
                })),
            };
        }
        value
    }

    #[tokio::test]
    async fn nesting_is_cut_to_the_depth_limit_or_refused() {
        let store = test_store(usize::MAX).await;
        let state = state(&store, crate::IngestConfig::default());

        let mut shallow = span(3, 1, None);
        shallow.attributes.push(KeyValue {
            key: "deep".into(),
            value: Some(nested(20)),
            ..Default::default()
        });
        let body = Bytes::from(request(vec![shallow]).encode_to_vec());
        let outcome = state.export(Payload::Protobuf(body)).await.expect("stored");
        assert_eq!(outcome.accepted, 1);

        // prost refuses messages nested past 100 levels; each kvlist level is three.
        let mut deep = span(3, 2, None);
        deep.attributes.push(KeyValue {
            key: "deep".into(),
            value: Some(nested(200)),
            ..Default::default()
        });
        let body = Bytes::from(request(vec![deep]).encode_to_vec());
        let err = state
            .export(Payload::Protobuf(body))
            .await
            .expect_err("too deep");
        assert!(matches!(err, IngestError::InvalidProtobuf { .. }), "{err}");
        assert!(err.to_string().contains("recursion"), "{err}");
    }

    /// When `bytes` decode, the WAL record built from them replays to the accepted spans.
    /// Compared in encoded form because corrupted doubles may be NaN, which is never equal.
    fn assert_replays_exactly(bytes: &Bytes) {
        let Ok(converted) = decode_traces(bytes, &SpanLimits::default()) else {
            return;
        };
        let record = wal_record(&converted, Some(bytes.clone()));
        let encode = |spans: &[faultline_model::Span]| {
            TracesData {
                resource_spans: spans_to_otlp(spans),
            }
            .encode_to_vec()
        };
        assert_eq!(encode(&replay(&record).spans), encode(&converted.spans));
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the bytes, the pipeline answers with a result, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let rt = runtime();
            rt.block_on(async {
                let store = test_store(usize::MAX).await;
                let state = state(&store, crate::IngestConfig {
                    ack: AckMode::Received,
                    ..crate::IngestConfig::default()
                });
                let bytes = Bytes::from(bytes);
                let _ = state.export(Payload::Protobuf(bytes.clone())).await;
                let _ = state.export(Payload::Json(bytes)).await;
            });
        }

        /// Valid requests with a few bytes changed, cut short or extended: the closest thing to
        /// the malformed input real clients send. Accepted spans must replay from the WAL
        /// record exactly.
        #[test]
        fn corrupted_requests_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
            json in any::<bool>(),
        ) {
            let valid = if json {
                serde_json::to_vec(&trace_request(9)).expect("serialize")
            } else {
                trace_request(9).encode_to_vec()
            };
            let mut bytes = valid;
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1).max(1));
            let rt = runtime();
            rt.block_on(async {
                let store = test_store(usize::MAX).await;
                let state = state(&store, crate::IngestConfig {
                    ack: AckMode::Received,
                    ..crate::IngestConfig::default()
                });
                let bytes = Bytes::from(bytes);
                if !json {
                    assert_replays_exactly(&bytes);
                }
                let payload = if json { Payload::Json(bytes) } else { Payload::Protobuf(bytes) };
                let _ = state.export(payload).await;
            });
        }
    }
}
