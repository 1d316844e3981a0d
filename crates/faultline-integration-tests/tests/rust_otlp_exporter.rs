//! The Rust `opentelemetry-otlp` exporter (tonic) sends spans to the real binary; they come back
//! through the Jaeger API with IDs, parent links, kinds, status, attributes, events and resource.

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

use faultline_integration_tests::ServerProcess;

fn tag<'a>(span: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    span["tags"].as_array()?.iter().find(|t| t["key"] == key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await;

    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://127.0.0.1:{}", server.grpc_port))
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("rust-checkout")
                .with_attribute(KeyValue::new("deployment.environment", "it"))
                .build(),
        )
        .build();
    let tracer = provider.tracer("faultline-it");

    let (trace_id, root_id, child_id) = {
        let root = tracer
            .span_builder("POST /orders")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("http.response.status_code", 201_i64)])
            .start(&tracer);
        let ids = (
            root.span_context().trace_id(),
            root.span_context().span_id(),
        );
        let cx = opentelemetry::Context::current_with_span(root);
        let mut child = tracer
            .span_builder("SELECT stock")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("db.system.name", "sqlite"),
                KeyValue::new("rows", 3_i64),
            ])
            .start_with_context(&tracer, &cx);
        child.add_event("pool.wait", vec![KeyValue::new("wait.ms", 12.5)]);
        child.set_status(Status::error("deadlock"));
        let child_id = child.span_context().span_id();
        child.end();
        cx.span().end();
        (ids.0, ids.1, child_id)
    };
    let flush = tokio::task::spawn_blocking(move || {
        provider.force_flush().map_err(|e| e.to_string())?;
        provider.shutdown().map_err(|e| e.to_string())
    });
    flush.await.unwrap().unwrap();

    let trace = server
        .jaeger_trace(&trace_id.to_string())
        .await
        .expect("trace stored");
    let spans = trace["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let root = spans
        .iter()
        .find(|s| s["spanID"] == root_id.to_string())
        .unwrap();
    let child = spans
        .iter()
        .find(|s| s["spanID"] == child_id.to_string())
        .unwrap();
    assert_eq!(root["operationName"], "POST /orders");
    assert_eq!(root["references"].as_array().unwrap().len(), 0);
    assert_eq!(tag(root, "span.kind").unwrap()["value"], "server");
    assert_eq!(
        tag(root, "http.response.status_code").unwrap()["value"],
        201
    );
    assert_eq!(
        tag(root, "http.response.status_code").unwrap()["type"],
        "int64"
    );
    assert_eq!(child["references"][0]["refType"], "CHILD_OF");
    assert_eq!(child["references"][0]["spanID"], root_id.to_string());
    assert_eq!(tag(child, "span.kind").unwrap()["value"], "client");
    assert_eq!(tag(child, "otel.status_code").unwrap()["value"], "ERROR");
    assert_eq!(tag(child, "error").unwrap()["value"], true);
    assert_eq!(tag(child, "db.system.name").unwrap()["value"], "sqlite");
    let log = &child["logs"][0];
    assert!(log["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["key"] == "event" && f["value"] == "pool.wait"));
    assert!(log["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["key"] == "wait.ms" && f["value"] == 12.5));
    let process = &trace["processes"][root["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "rust-checkout");
    assert!(process["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "deployment.environment" && t["value"] == "it"));
}
