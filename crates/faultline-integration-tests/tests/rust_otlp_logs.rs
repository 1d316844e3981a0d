//! `tracing` events bridged to OpenTelemetry logs (`opentelemetry-appender-tracing`) and
//! exported with the Rust `opentelemetry-otlp` log exporter, over OTLP/HTTP and OTLP/gRPC, from
//! inside a span: they come back from `/api/logs?traceID=` with body, severity, trace and span
//! IDs, attributes and resource.

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{LogExporter, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;

use faultline_integration_tests::{with_query, ServerProcess};

fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(KeyValue::new("deployment.environment", "it"))
        .build()
}

/// Emits two events inside a span through `provider` and returns (trace, span) IDs in hex.
fn emit(provider: &SdkLoggerProvider, service: &str) -> (String, String) {
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource(service))
        .build();
    let tracer = tracer_provider.tracer("faultline-it");
    let subscriber = tracing_subscriber::registry().with(OpenTelemetryTracingBridge::new(provider));
    let span = tracer.start("POST /orders");
    let ids = (
        span.span_context().trace_id().to_string(),
        span.span_context().span_id().to_string(),
    );
    let cx = opentelemetry::Context::current_with_span(span);
    {
        let _attached = cx.clone().attach();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(order_id = 7_i64, paid = true, "order accepted");
            tracing::error!(reason = "stock", "order failed");
        });
    }
    cx.span().end();
    ids
}

async fn check(server: &ServerProcess, trace_id: &str, span_id: &str, service: &str) {
    let answer: serde_json::Value = reqwest::Client::new()
        .get(with_query(
            &format!("{}/api/logs", server.api()),
            &[("traceID", trace_id)],
        ))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    let records = answer["data"].as_array().expect("data");
    assert_eq!(records.len(), 2, "{answer}\n{}", server.logs());
    let (info, error) = (&records[0], &records[1]);
    assert_eq!(info["body"], "order accepted");
    assert_eq!(info["severityNumber"], 9);
    assert_eq!(info["severityText"], "INFO");
    assert_eq!(info["attributes"]["order_id"], 7);
    assert_eq!(info["attributes"]["paid"], true);
    assert_eq!(error["body"], "order failed");
    assert_eq!(error["severityNumber"], 17);
    assert_eq!(error["attributes"]["reason"], "stock");
    for r in records {
        assert_eq!(r["traceID"], trace_id);
        assert_eq!(r["spanID"], span_id);
        assert_eq!(r["serviceName"], service);
        assert_eq!(r["resource"]["deployment.environment"], "it");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_exporter_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await;
    let endpoint = format!("http://127.0.0.1:{}/v1/logs", server.otlp_http_port);
    // The simple processor runs on a plain thread, as in a synchronous service. Which reqwest
    // client the exporter uses depends on the features the workspace unifies (async when any
    // crate enables `reqwest-client`), so give it a runtime to run on either way.
    let (trace_id, span_id) = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let _entered = runtime.enter();
        let exporter = LogExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
            .expect("exporter");
        let provider = SdkLoggerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(resource("rust-logs-http"))
            .build();
        let ids = emit(&provider, "rust-logs-http");
        provider.force_flush().expect("flush");
        provider.shutdown().expect("shutdown");
        ids
    })
    .join()
    .expect("emitting thread");
    check(&server, &trace_id, &span_id, "rust-logs-http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_exporter_over_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await;
    let exporter = LogExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://127.0.0.1:{}", server.grpc_port))
        .build()
        .expect("exporter");
    let provider = SdkLoggerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource("rust-logs-grpc"))
        .build();
    let (trace_id, span_id) = emit(&provider, "rust-logs-grpc");
    let flush = tokio::task::spawn_blocking(move || {
        provider.force_flush().map_err(|e| e.to_string())?;
        provider.shutdown().map_err(|e| e.to_string())
    });
    flush.await.unwrap().unwrap();
    check(&server, &trace_id, &span_id, "rust-logs-grpc").await;
}
