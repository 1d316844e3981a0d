//! The instrumentation crate's log layer (`faultline_instrument`, `otlp_logs(true)`) exporting
//! over OTLP to the real binary, HTTP/protobuf and gRPC: an event logged while a traced request
//! is handled comes back from `/api/logs?traceID=` attached to that request's SERVER span,
//! and that span is in the trace the trace view shows.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::{Protocol, Telemetry};
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

use faultline_integration_tests::ServerProcess;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn charge() -> &'static str {
    tracing::warn!(order_id = 42_i64, paid = true, "card charged");
    "ok"
}

/// Serves one request with a W3C parent on a current-thread runtime (so the thread-local
/// subscriber sees its events); returns the server span ID from `traceresponse`.
fn call(app: Router) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let request = http::Request::get("/charge")
        .header("traceparent", PARENT)
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

async fn round_trip(protocol: Protocol, service: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &[]).await;
    let endpoint = match protocol {
        Protocol::Grpc => format!("http://127.0.0.1:{}", server.grpc_port),
        _ => format!("http://127.0.0.1:{}", server.otlp_http_port),
    };
    let service_owned = service.to_owned();
    // The instrumented service runs on its own threads, as a separate program would.
    let span_id = std::thread::spawn(move || {
        let telemetry = Telemetry::builder(&service_owned)
            .protocol(protocol)
            .endpoint(endpoint)
            .sampler(SamplerConfig::AlwaysOn)
            .otlp_logs(true)
            .install_global(false)
            .install()
            .expect("install");
        let subscriber = tracing_subscriber::registry().with(telemetry.log_layer());
        let app = Router::new()
            .route("/charge", get(charge))
            .layer(telemetry.server_layer());
        let span_id = tracing::subscriber::with_default(subscriber, || call(app));
        telemetry.shutdown().expect("shutdown flushes");
        span_id
    })
    .join()
    .expect("instrumented service");

    let client = reqwest::Client::new();
    let logs: serde_json::Value = client
        .get(format!("{}/api/logs?traceID={TRACE}", server.api()))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    let records = logs["data"].as_array().expect("data");
    assert_eq!(records.len(), 1, "{logs}\n{}", server.logs());
    let r = &records[0];
    assert_eq!(r["body"], "card charged");
    assert_eq!(r["severityNumber"], 13);
    assert_eq!(r["traceID"], TRACE);
    assert_eq!(r["spanID"], span_id.as_str(), "the SERVER span");
    assert_eq!(r["attributes"]["order_id"], 42);
    assert_eq!(r["attributes"]["paid"], true);
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        assert_eq!(r["serviceName"], service);
    }
    // The span the line is attached to is in the trace the UI shows next to it.
    let trace = server.jaeger_trace(TRACE).await.expect("trace stored");
    assert!(
        trace["spans"]
            .as_array()
            .expect("spans")
            .iter()
            .any(|s| s["spanID"] == span_id.as_str()),
        "{trace}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrument_log_layer_over_http() {
    round_trip(Protocol::HttpProtobuf, "instrumented-http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instrument_log_layer_over_grpc() {
    round_trip(Protocol::Grpc, "instrumented-grpc").await;
}
