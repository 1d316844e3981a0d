//! Log export over OTLP to real receivers on loopback: a tonic `LogsService` for gRPC and an
//! axum `/v1/logs` route for HTTP/protobuf. Events raised inside a traced request must carry
//! that request's SERVER span ids, although the layers attach an OpenTelemetry context and no
//! `tracing` span.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use faultline_instrument::logs::OtlpLogLayer;
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::{Protocol, Telemetry};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message;
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

type Received = Arc<Mutex<Vec<ExportLogsServiceRequest>>>;

/// One exported record with the `service.name` of the resource it came under.
#[derive(Debug)]
struct Exported {
    service: String,
    record: LogRecord,
}

fn text(value: &Option<AnyValue>) -> Option<String> {
    match value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn exported(received: &Received) -> Vec<Exported> {
    let mut out = Vec::new();
    for request in received.lock().expect("lock").iter() {
        for resource_logs in &request.resource_logs {
            let service = resource_logs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| text(&kv.value))
                .unwrap_or_default();
            for scope_logs in &resource_logs.scope_logs {
                for record in &scope_logs.log_records {
                    out.push(Exported {
                        service: service.clone(),
                        record: record.clone(),
                    });
                }
            }
        }
    }
    out
}

fn attribute(record: &LogRecord, key: &str) -> Option<String> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| text(&kv.value))
}

fn body(record: &LogRecord) -> Option<String> {
    text(&record.body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Default)]
struct GrpcLogsReceiver(Received);

#[tonic::async_trait]
impl LogsService for GrpcLogsReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.lock().expect("lock").push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// Accepts the spans that go to the same collector; this test looks only at logs.
#[derive(Clone, Default)]
struct GrpcTracesSink;

#[tonic::async_trait]
impl TraceService for GrpcTracesSink {
    async fn export(
        &self,
        _request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts a gRPC receiver (logs recorded, spans accepted) on its own runtime and returns its
/// address.
fn grpc_receiver(runtime: &tokio::runtime::Runtime, received: &Received) -> std::net::SocketAddr {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = LogsServiceServer::new(GrpcLogsReceiver(Arc::clone(received)));
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .add_service(TraceServiceServer::new(GrpcTracesSink))
                .serve_with_incoming(incoming)
                .await;
        });
        addr
    })
}

async fn http_logs_receiver(State(received): State<Received>, body: Bytes) -> Vec<u8> {
    if let Ok(request) = ExportLogsServiceRequest::decode(body) {
        received.lock().expect("lock").push(request);
    }
    ExportLogsServiceResponse::default().encode_to_vec()
}

/// Starts an HTTP/protobuf receiver answering `/v1/logs` (and accepting `/v1/traces`).
fn http_receiver(runtime: &tokio::runtime::Runtime, received: &Received) -> std::net::SocketAddr {
    let app = Router::new()
        .route("/v1/logs", post(http_logs_receiver))
        .route("/v1/traces", post(|| async { Vec::<u8>::new() }))
        .with_state(Arc::clone(received));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    })
}

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn charge() -> &'static str {
    tracing::warn!(order_id = 42_i64, paid = true, "card charged");
    "ok"
}

/// Sends one request with a W3C parent and baggage; returns the server span id from the
/// `traceresponse` header.
fn call(runtime: &tokio::runtime::Runtime, app: Router, path: &str) -> String {
    let request = http::Request::get(path)
        .header("traceparent", PARENT)
        .header("baggage", "request_id=req-7")
        .body(Body::empty())
        .expect("request");
    let response = runtime.block_on(app.oneshot(request)).expect("infallible");
    assert_eq!(response.status(), 200);
    let header = response
        .headers()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .expect("traceresponse");
    header.split('-').nth(2).expect("span id").to_owned()
}

#[test]
fn exports_logs_over_otlp_grpc_with_the_request_span_ids() {
    let receiver_runtime = tokio::runtime::Runtime::new().expect("runtime");
    let received = Received::default();
    let addr = grpc_receiver(&receiver_runtime, &received);

    let telemetry = Telemetry::builder("checkout")
        .protocol(Protocol::Grpc)
        .endpoint(format!("http://{addr}"))
        .sampler(SamplerConfig::AlwaysOn)
        .otlp_logs(true)
        .log_baggage(["request_id"])
        .install_global(false)
        .install()
        .expect("install");
    let subscriber = tracing_subscriber::registry().with(telemetry.log_layer());
    let app = Router::new()
        .route("/charge", get(charge))
        .layer(telemetry.server_layer());
    // Requests are served on this thread, so a thread-local subscriber sees their events.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let span_id = tracing::subscriber::with_default(subscriber, || {
        let span_id = call(&runtime, app, "/charge");
        tracing::info!(phase = "idle", "between requests");
        span_id
    });
    // The guard flushes: everything logged is at the receiver once shutdown returns.
    telemetry.shutdown().expect("shutdown flushes");

    let records = exported(&received);
    let charged = records
        .iter()
        .find(|e| body(&e.record).as_deref() == Some("card charged"))
        .unwrap_or_else(|| panic!("no 'card charged' record in {records:?}"));
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        assert_eq!(charged.service, "checkout");
    }
    let record = &charged.record;
    assert_eq!(hex(&record.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        hex(&record.span_id),
        span_id,
        "the SERVER span, not the caller's"
    );
    assert_ne!(span_id, "00f067aa0ba902b7");
    assert_eq!(record.severity_number, 13, "WARN");
    assert_eq!(record.severity_text, "WARN");
    assert_eq!(attribute(record, "order_id").as_deref(), Some("42"));
    assert_eq!(attribute(record, "paid").as_deref(), Some("true"));
    assert_eq!(attribute(record, "request_id").as_deref(), Some("req-7"));

    let idle = records
        .iter()
        .find(|e| body(&e.record).as_deref() == Some("between requests"))
        .unwrap_or_else(|| panic!("no 'between requests' record in {records:?}"));
    assert!(idle.record.trace_id.is_empty(), "{:?}", idle.record);
    assert_eq!(idle.record.severity_number, 9, "INFO");
    assert_eq!(attribute(&idle.record, "phase").as_deref(), Some("idle"));
    assert_eq!(attribute(&idle.record, "request_id"), None);
}

#[test]
fn routes_each_event_to_the_service_handling_the_request() {
    let receiver_runtime = tokio::runtime::Runtime::new().expect("runtime");
    let received = Received::default();
    let addr = http_receiver(&receiver_runtime, &received);
    let service = |name: &str| {
        Telemetry::builder(name)
            .protocol(Protocol::HttpProtobuf)
            .endpoint(format!("http://{addr}"))
            .sampler(SamplerConfig::AlwaysOn)
            .otlp_logs(true)
            .install_global(false)
            .install()
            .expect("install")
    };
    let alpha = service("alpha");
    let beta = service("beta");
    let app = |telemetry: &Telemetry| {
        Router::new()
            .route("/charge", get(charge))
            .layer(telemetry.server_layer())
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let subscriber = tracing_subscriber::registry().with(OtlpLogLayer::routed());
    let (alpha_span, beta_span) = tracing::subscriber::with_default(subscriber, || {
        let alpha_span = call(&runtime, app(&alpha), "/charge");
        let beta_span = call(&runtime, app(&beta), "/charge");
        tracing::info!("belongs to no service");
        (alpha_span, beta_span)
    });
    alpha.shutdown().expect("alpha flushes");
    beta.shutdown().expect("beta flushes");

    let records = exported(&received);
    assert_eq!(records.len(), 2, "{records:?}");
    if std::env::var("OTEL_SERVICE_NAME").is_ok() {
        return;
    }
    for (service, span_id) in [("alpha", alpha_span), ("beta", beta_span)] {
        let mine: Vec<_> = records.iter().filter(|e| e.service == service).collect();
        assert_eq!(mine.len(), 1, "{service}: {records:?}");
        assert_eq!(hex(&mine[0].record.span_id), span_id);
        assert_eq!(body(&mine[0].record).as_deref(), Some("card charged"));
    }
}

#[test]
fn log_layer_is_inert_without_log_export() {
    let telemetry = Telemetry::builder("quiet")
        .otlp_logs(false)
        .install_global(false)
        .install_with_exporter(opentelemetry_sdk::trace::InMemorySpanExporter::default())
        .expect("install");
    assert!(telemetry.log_layer().is_none());
    assert!(telemetry.logger_provider().is_none());
}
