//! `/v1/logs` and `LogsService/Export` against a real store: storage, partial success, limits,
//! and the same error answers as traces.

use std::io::Write;
use std::net::SocketAddr;

use faultline_model::TraceId;
use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::StatusCode;

use crate::test_support::*;
use crate::IngestConfig;

fn record(trace: u8, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_000 + u64::from(trace),
        severity_number: 9,
        severity_text: "INFO".into(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        attributes: vec![kv("k", Value::StringValue("v".into()))],
        trace_id: if trace == 0 { vec![] } else { trace_id(trace) },
        span_id: if trace == 0 { vec![] } else { vec![trace; 8] },
        ..Default::default()
    }
}

fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("svc".into()))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(
    addr: SocketAddr,
    ct: &str,
    gzip: bool,
    body: Vec<u8>,
) -> (StatusCode, Option<String>, bytes::Bytes) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/v1/logs"))
        .header("content-type", ct);
    let body = if gzip {
        req = req.header("content-encoding", "gzip");
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(&body).expect("gzip");
        e.finish().expect("gzip")
    } else {
        body
    };
    let r = req.body(body).send().await.expect("send");
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    (r.status(), retry, r.bytes().await.expect("body"))
}

#[tokio::test]
async fn protobuf_json_and_gzip_logs_are_stored_by_trace() {
    let store = test_store(usize::MAX).await;
    let state = state(&store, IngestConfig::default());
    let addr = serve_http(state.clone()).await;
    let (status, _, body) = post(
        addr,
        "application/x-protobuf",
        true,
        logs_request(vec![record(1, "a"), record(0, "untraced")]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response = ExportLogsServiceResponse::decode(body).expect("response");
    assert_eq!(response.partial_success, None);
    let json = serde_json::to_vec(&logs_request(vec![record(1, "b")])).expect("json");
    let (status, _, body) = post(addr, "application/json", false, json).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(&body[..], b"{}");
    let got = store
        .store
        .logs()
        .logs_of_traces(&[TraceId::from_bytes(&trace_id(1)).expect("id")])
        .await
        .expect("query");
    let bodies: Vec<String> = got.iter().map(|r| r.body_text()).collect();
    assert_eq!(bodies, ["a", "b"]);
    assert_eq!(got[0].service_name(), "svc");
    assert_eq!(state.stats().snapshot().log_records_accepted, 3);
}

#[tokio::test]
async fn bad_ids_are_partial_success_and_long_bodies_are_cut_and_counted() {
    let store = test_store(usize::MAX).await;
    let mut config = IngestConfig::default();
    config.log_limits.max_body_len = 10;
    let state = state(&store, config);
    let addr = serve_http(state.clone()).await;
    let mut bad = record(2, "bad");
    bad.trace_id = vec![1, 2, 3];
    let long = record(3, &"x".repeat(1000));
    let (status, _, body) = post(
        addr,
        "application/x-protobuf",
        false,
        logs_request(vec![bad, long]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let partial = ExportLogsServiceResponse::decode(body)
        .expect("response")
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial.error_message.contains("trace_id"),
        "{}",
        partial.error_message
    );
    let snapshot = state.stats().snapshot();
    assert_eq!(
        (
            snapshot.log_records_accepted,
            snapshot.log_records_rejected,
            snapshot.log_records_truncated
        ),
        (1, 1, 1)
    );
    let got = store
        .store
        .logs()
        .logs_of_traces(&[TraceId::from_bytes(&trace_id(3)).expect("id")])
        .await
        .expect("query");
    assert_eq!(got[0].body_text(), "x".repeat(10));
}

#[tokio::test]
async fn errors_answer_like_traces() {
    let store = test_store(usize::MAX).await;
    let config = IngestConfig {
        max_request_bytes: 1000,
        ..IngestConfig::default()
    };
    let addr = serve_http(state(&store, config)).await;
    let (status, _, _) = post(addr, "text/plain", false, b"x".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _, body) = post(addr, "application/x-protobuf", false, vec![0xff; 50]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The message names the logs request, not the traces one.
    let message = crate::wire::RpcStatus::decode(body)
        .expect("google.rpc.Status body")
        .message;
    assert!(
        message.starts_with("payload is not a valid OTLP ExportLogsServiceRequest protobuf: "),
        "{message}"
    );
    let big = logs_request(vec![record(1, &"y".repeat(5000))]).encode_to_vec();
    let (status, _, _) = post(addr, "application/x-protobuf", false, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // A one-byte memory budget refuses every append: 429 with Retry-After.
    let tiny = test_store(1).await;
    let addr = serve_http(state(&tiny, IngestConfig::default())).await;
    let (status, retry, _) = post(
        addr,
        "application/x-protobuf",
        false,
        logs_request(vec![record(1, "a")]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.is_some());
}

#[tokio::test]
async fn grpc_logs_service_stores_and_refuses_like_traces() {
    let store = test_store(usize::MAX).await;
    let state = state(&store, IngestConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let svc = crate::logs_grpc_service(state.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await
            .expect("grpc server");
    });
    let mut client = LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let response = client
        .export(logs_request(vec![record(4, "over grpc")]))
        .await
        .expect("export")
        .into_inner();
    assert_eq!(response.partial_success, None);
    let got = store
        .store
        .logs()
        .logs_of_traces(&[TraceId::from_bytes(&trace_id(4)).expect("id")])
        .await
        .expect("query");
    assert_eq!(got.len(), 1);

    let tiny = test_store(1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let svc = crate::logs_grpc_service(crate::test_support::state(&tiny, IngestConfig::default()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await
            .expect("grpc server");
    });
    let mut client = LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");
    let err = client
        .export(logs_request(vec![record(4, "refused")]))
        .await
        .expect_err("over budget");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(!err.details().is_empty(), "RetryInfo attached");
}
