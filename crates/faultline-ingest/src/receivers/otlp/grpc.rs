//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export` and
//! `opentelemetry.proto.collector.logs.v1.LogsService/Export`, one service type per signal
//! ([`TraceGrpcService`], [`LogsGrpcService`]) over the same code.
//!
//! This is a hand-written twin of the generated `TraceServiceServer` rather than an
//! implementation of its `TraceService` trait, for two reasons. The generated server decodes
//! with tonic-prost, which answers malformed protobuf with `INTERNAL` where OTLP wants
//! `INVALID_ARGUMENT`; and it hands over a decoded message, so the WAL record would have to be
//! re-encoded. Here the codec passes the raw message bytes through, the pipeline decodes them,
//! and a clean request's bytes become the WAL record without being re-encoded.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{http, Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::Code;

use super::body::read_body_within;
use crate::pipeline::Payload;
use crate::{IngestError, IngestState};

/// Bytes gRPC puts before each message: a compression flag and a 32-bit length.
const GRPC_FRAME_HEADER_BYTES: usize = 5;

/// The gRPC path of the trace export method.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC path of the logs export method.
pub const LOGS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// One OTLP signal's export method: its path, response type, and pipeline entry.
pub trait ExportSignal: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The full gRPC path of the `Export` method.
    const PATH: &'static str;
    /// The response message.
    type Response: Message + Default + Send + 'static;
    /// Runs the pipeline for one request's protobuf bytes.
    fn export(state: IngestState, body: Bytes) -> BoxFuture<Self::Response, IngestError>;
}

/// Traces: `TraceService/Export`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracesSignal;

/// Logs: `LogsService/Export`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogsSignal;

impl ExportSignal for TracesSignal {
    const PATH: &'static str = EXPORT_PATH;
    type Response = ExportTraceServiceResponse;
    fn export(state: IngestState, body: Bytes) -> BoxFuture<Self::Response, IngestError> {
        Box::pin(async move {
            state
                .export(Payload::Protobuf(body))
                .await
                .map(|o| o.to_response())
        })
    }
}

impl ExportSignal for LogsSignal {
    const PATH: &'static str = LOGS_EXPORT_PATH;
    type Response = ExportLogsServiceResponse;
    fn export(state: IngestState, body: Bytes) -> BoxFuture<Self::Response, IngestError> {
        Box::pin(async move {
            state
                .export_logs(Payload::Protobuf(body))
                .await
                .map(|o| o.to_logs_response())
        })
    }
}

/// An OTLP export service, ready for `tonic::transport::Server::add_service`. Accepts gzip
/// requests, answers gzip to clients that accept it, and refuses messages over
/// `max_request_bytes` (before and after decompression).
#[derive(Clone, Debug)]
pub struct OtlpGrpcService<S> {
    state: IngestState,
    signal: PhantomData<S>,
}

/// The OTLP trace service.
pub type TraceGrpcService = OtlpGrpcService<TracesSignal>;

/// The OTLP logs service.
pub type LogsGrpcService = OtlpGrpcService<LogsSignal>;

/// Builds the OTLP/gRPC trace service over `state`.
pub fn grpc_service(state: IngestState) -> TraceGrpcService {
    OtlpGrpcService {
        state,
        signal: PhantomData,
    }
}

/// Builds the OTLP/gRPC logs service over `state`.
pub fn logs_grpc_service(state: IngestState) -> LogsGrpcService {
    OtlpGrpcService {
        state,
        signal: PhantomData,
    }
}

impl NamedService for TraceGrpcService {
    const NAME: &'static str =
        opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::SERVICE_NAME;
}

impl NamedService for LogsGrpcService {
    const NAME: &'static str =
        opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::SERVICE_NAME;
}

impl<S, B> Service<http::Request<B>> for OtlpGrpcService<S>
where
    S: ExportSignal,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            if request.uri().path() != S::PATH {
                return Ok(tonic::Status::unimplemented(format!(
                    "unknown method {}; this service implements {}",
                    request.uri().path(),
                    S::PATH
                ))
                .into_http());
            }
            state.count_request();
            // Taken before the body is read, so refused requests cost no buffering.
            let _permit = match state.admit() {
                Ok(permit) => permit,
                Err(err) => {
                    state.record_failure(&err);
                    return Ok(err.to_grpc_status().into_http());
                }
            };
            let limit = state.config().max_request_bytes;
            // Read the body here rather than in tonic, so that a stalled client is cut off
            // after `body_timeout_secs` instead of holding its slot for as long as it likes.
            let (parts, body) = request.into_parts();
            let timeout = state.config().body_timeout_secs;
            let body = axum::body::Body::new(body);
            let body_limit = limit.saturating_add(GRPC_FRAME_HEADER_BYTES);
            let body = match read_body_within(body, &parts.headers, body_limit, timeout).await {
                Ok(body) => body,
                Err(err) => {
                    state.record_failure(&err);
                    return Ok(err.to_grpc_status().into_http());
                }
            };
            let request = http::Request::from_parts(parts, axum::body::Body::from(body));
            let mut grpc = Grpc::new(RawRequestCodec::<S::Response>(PhantomData))
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            let handled = Arc::new(AtomicBool::new(false));
            let handler = ExportHandler::<S> {
                state: state.clone(),
                handled: Arc::clone(&handled),
                signal: PhantomData,
            };
            let mut response = grpc.unary(handler, request).await;
            oversized_frame_to_final(&mut response);
            if !handled.load(Ordering::Relaxed) && failed(&response) {
                // tonic refused the frame itself (size, compression, framing): the client
                // sent something unusable.
                state.stats().malformed();
            }
            Ok(response)
        })
    }
}

/// tonic refuses a frame over the size limit with `OUT_OF_RANGE`, which OTLP clients retry
/// forever; rewrite it to `RESOURCE_EXHAUSTED` without `RetryInfo`, which they treat as final
/// (and which tonic already uses when the limit is hit during decompression).
fn oversized_frame_to_final(response: &mut http::Response<tonic::body::Body>) {
    let headers = response.headers_mut();
    let out_of_range = http::HeaderValue::from(Code::OutOfRange as i32);
    if headers.get(tonic::Status::GRPC_STATUS) == Some(&out_of_range) {
        headers.insert(
            tonic::Status::GRPC_STATUS,
            http::HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
}

/// Whether `response` is a trailers-only error, the form tonic uses for refused requests.
fn failed(response: &http::Response<tonic::body::Body>) -> bool {
    let ok = http::HeaderValue::from(Code::Ok as i32);
    response
        .headers()
        .get(tonic::Status::GRPC_STATUS)
        .is_some_and(|code| *code != ok)
}

/// Runs one export through the shared pipeline.
struct ExportHandler<S> {
    state: IngestState,
    /// Set once the request reached the handler, so that the caller can tell tonic's own
    /// refusals from the pipeline's.
    handled: Arc<AtomicBool>,
    signal: PhantomData<S>,
}

impl<S: ExportSignal> UnaryService<Bytes> for ExportHandler<S> {
    type Response = S::Response;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        self.handled.store(true, Ordering::Relaxed);
        let state = self.state.clone();
        Box::pin(async move {
            match S::export(state.clone(), request.into_inner()).await {
                Ok(response) => Ok(tonic::Response::new(response)),
                Err(err) => {
                    state.record_failure(&err);
                    tracing::debug!(error = %err, "OTLP/gRPC export refused");
                    Err(err.to_grpc_status())
                }
            }
        })
    }
}

/// Passes request messages through as bytes and encodes responses with prost.
#[derive(Debug)]
struct RawRequestCodec<R>(PhantomData<R>);

impl<R: Message + Send + 'static> Codec for RawRequestCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ResponseEncoder<R>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

#[derive(Debug)]
struct ResponseEncoder<R>(PhantomData<R>);

impl<R: Message> Encoder for ResponseEncoder<R> {
    type Item = R;
    type Error = tonic::Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(format!("encoding the response failed: {e}")))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        // DecodeBuf splits its underlying BytesMut here, so this is not a copy.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use tonic::transport::Channel;

    use super::*;
    use crate::test_support::*;
    use crate::wire::{RetryInfo, RpcStatus};
    use crate::IngestConfig;

    async fn client(addr: std::net::SocketAddr) -> TraceServiceClient<Channel> {
        TraceServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect")
    }

    /// Sends arbitrary bytes as the Export message, as a broken or hostile client would.
    async fn export_raw(addr: std::net::SocketAddr, body: Bytes) -> Result<(), tonic::Status> {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
        grpc.unary::<_, ExportTraceServiceResponse, _>(
            tonic::Request::new(body),
            path,
            RawClientCodec,
        )
        .await
        .map(|_| ())
    }

    #[derive(Clone, Copy, Default)]
    struct RawClientCodec;

    struct RawEncoder;
    struct ResponseDecoder;

    impl Codec for RawClientCodec {
        type Encode = Bytes;
        type Decode = ExportTraceServiceResponse;
        type Encoder = RawEncoder;
        type Decoder = ResponseDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> ResponseDecoder {
            ResponseDecoder
        }
    }

    impl Encoder for RawEncoder {
        type Item = Bytes;
        type Error = tonic::Status;
        fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }

    impl Decoder for ResponseDecoder {
        type Item = ExportTraceServiceResponse;
        type Error = tonic::Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
            ExportTraceServiceResponse::decode(src)
                .map(Some)
                .map_err(|e| tonic::Status::internal(e.to_string()))
        }
    }

    #[tokio::test]
    async fn export_is_stored_field_by_field() {
        let store = test_store(usize::MAX).await;
        let state = state(&store, IngestConfig::default());
        let addr = serve_grpc(state.clone()).await;
        let mut client = client(addr).await;

        let sent = trace_request(1);
        let response = client
            .export(sent.clone())
            .await
            .expect("export")
            .into_inner();
        assert_eq!(response.partial_success, None);
        assert_stored(&store.store, 1, &sent).await;

        let mut gzip_client = client.send_compressed(CompressionEncoding::Gzip);
        let sent = trace_request(2);
        gzip_client.export(sent.clone()).await.expect("gzip export");
        assert_stored(&store.store, 2, &sent).await;

        let stats = state.stats().snapshot();
        assert_eq!(stats.requests, 2);
        assert_eq!(stats.spans_accepted, 6);
        assert_eq!(stats.spans_rejected, 0);
        assert!(stats.bytes > 0);
    }

    #[tokio::test]
    async fn invalid_ids_are_a_partial_success() {
        let store = test_store(usize::MAX).await;
        let addr = serve_grpc(state(&store, IngestConfig::default())).await;
        let mut bad_trace = span(3, 7, None);
        bad_trace.trace_id = vec![1; 15];
        let mut bad_span = span(3, 8, None);
        bad_span.span_id = vec![0; 8];
        let good = span(3, 1, None);
        let sent = request(vec![bad_trace, good.clone(), bad_span]);

        let response = client(addr).await.export(sent).await.expect("export");
        let partial = response
            .into_inner()
            .partial_success
            .expect("partial success");
        assert_eq!(partial.rejected_spans, 2);
        assert!(
            partial.error_message.contains("trace_id") && partial.error_message.contains("span_id"),
            "{}",
            partial.error_message
        );
        assert_stored(&store.store, 3, &request(vec![good])).await;
    }

    #[tokio::test]
    async fn empty_request_succeeds() {
        let store = test_store(usize::MAX).await;
        let addr = serve_grpc(state(&store, IngestConfig::default())).await;
        let response = client(addr)
            .await
            .export(ExportTraceServiceRequest::default())
            .await
            .expect("empty export");
        assert_eq!(response.into_inner().partial_success, None);
    }

    #[tokio::test]
    async fn malformed_messages_are_invalid_argument_and_server_keeps_serving() {
        let store = test_store(usize::MAX).await;
        let addr = serve_grpc(state(&store, IngestConfig::default())).await;
        let valid = Bytes::from(trace_request(4).encode_to_vec());
        let cases = [
            ("truncated", valid.slice(..valid.len() / 2)),
            ("garbage", Bytes::from_static(&[0xff; 64])),
            ("wrong wire type", Bytes::from_static(&[0x0b, 0x01, 0x02])),
        ];
        for (what, body) in cases {
            let status = export_raw(addr, body).await.expect_err(what);
            assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
            assert!(
                status.message().contains("ExportTraceServiceRequest"),
                "{what}: {}",
                status.message()
            );
        }
        export_raw(addr, valid).await.expect("still serving");
        assert_stored(&store.store, 4, &trace_request(4)).await;
    }

    #[tokio::test]
    async fn oversized_messages_are_refused_for_good() {
        let store = test_store(usize::MAX).await;
        let config = IngestConfig {
            max_request_bytes: 64 * 1024,
            ..IngestConfig::default()
        };
        let state = state(&store, config);
        let addr = serve_grpc(state.clone()).await;
        let mut big = span(5, 1, None);
        big.attributes
            .push(kv("payload", Value::StringValue("x".repeat(200 * 1024))));
        let big = request(vec![big]);

        let status = client(addr)
            .await
            .export(big.clone())
            .await
            .expect_err("plain oversized message");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.details().is_empty(), "no RetryInfo: not retryable");

        // Compresses to a few hundred bytes, so only the decompressed size can catch it.
        let status = client(addr)
            .await
            .send_compressed(CompressionEncoding::Gzip)
            .export(big)
            .await
            .expect_err("gzip bomb");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.details().is_empty(), "no RetryInfo: not retryable");

        client(addr)
            .await
            .export(trace_request(6))
            .await
            .expect("still serving");
        assert_eq!(state.stats().snapshot().malformed_requests, 2);
    }

    #[tokio::test]
    async fn overloaded_store_answers_resource_exhausted_with_retry_info() {
        let store = test_store(1).await;
        let addr = serve_grpc(state(&store, IngestConfig::default())).await;
        let mut client = client(addr).await;
        let mut refused = None;
        for seed in 0..100 {
            if let Err(status) = client.export(trace_request(seed)).await {
                refused = Some(status);
                break;
            }
        }
        let status = refused.expect("a one-byte budget must refuse appends");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let details = RpcStatus::decode(status.details()).expect("google.rpc.Status details");
        let info = details
            .details
            .iter()
            .find(|d| d.type_url.ends_with("google.rpc.RetryInfo"))
            .expect("RetryInfo");
        let info = RetryInfo::decode(info.value.as_slice()).expect("RetryInfo decodes");
        assert!(info.retry_delay.is_some_and(|d| d.seconds >= 1));
    }

    #[tokio::test]
    async fn stopped_store_answers_unavailable() {
        let store = test_store(usize::MAX).await;
        let addr = serve_grpc(state(&store, IngestConfig::default())).await;
        let mut client = client(addr).await;
        client.export(trace_request(1)).await.expect("export");
        store.store.shutdown().await.expect("shutdown");
        let status = client
            .export(trace_request(2))
            .await
            .expect_err("store is stopped");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }

    #[tokio::test]
    async fn unknown_methods_are_unimplemented() {
        let store = test_store(usize::MAX).await;
        let addr = serve_grpc(state(&store, IngestConfig::default())).await;
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let status = grpc
            .unary::<_, ExportTraceServiceResponse, _>(
                tonic::Request::new(Bytes::new()),
                http::uri::PathAndQuery::from_static(
                    "/opentelemetry.proto.collector.trace.v1.TraceService/Nope",
                ),
                RawClientCodec,
            )
            .await
            .expect_err("unknown method");
        assert_eq!(status.code(), Code::Unimplemented);
    }
}
