//! The tower client layer over a stand-in for a hyper client.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faultline_instrument::client::PeerService;
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::Telemetry;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};

fn telemetry() -> (Telemetry, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let telemetry = Telemetry::builder("caller")
        .sampler(SamplerConfig::AlwaysOn)
        .install_global(false)
        .install_with_exporter(exporter.clone())
        .expect("telemetry");
    (telemetry, exporter)
}

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

#[tokio::test]
async fn injects_context_and_marks_5xx() {
    let (telemetry, exporter) = telemetry();
    let seen = Arc::new(Mutex::new(None));
    let seen_by_client = Arc::clone(&seen);
    let fake_client = service_fn(move |request: http::Request<String>| {
        let traceparent = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        *seen_by_client.lock().expect("lock") = traceparent;
        async {
            Ok::<_, Infallible>(
                http::Response::builder()
                    .status(503)
                    .body(String::new())
                    .expect("response"),
            )
        }
    });
    let client = telemetry.client_layer().layer(fake_client);
    let mut request = http::Request::post("https://payments.example:8443/charge?token=secret")
        .body("{}".to_owned())
        .expect("request");
    request
        .extensions_mut()
        .insert(PeerService("payments".to_owned()));
    let response = client.oneshot(request).await.expect("response");
    assert_eq!(response.status(), 503);

    telemetry.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(span.name, "POST");
    let traceparent = seen
        .lock()
        .expect("lock")
        .clone()
        .expect("traceparent injected");
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            span.span_context.trace_id(),
            span.span_context.span_id()
        )
    );
    assert_eq!(attr(span, "peer.service"), Some(Value::from("payments")));
    assert_eq!(
        attr(span, "server.address"),
        Some(Value::from("payments.example"))
    );
    assert_eq!(attr(span, "server.port"), Some(Value::I64(8443)));
    assert_eq!(
        attr(span, "url.full"),
        Some(Value::from("https://payments.example:8443/charge"))
    );
    assert_eq!(
        attr(span, "http.response.status_code"),
        Some(Value::I64(503))
    );
    assert_eq!(span.status, Status::error(""));
}

#[tokio::test]
async fn timeouts_are_errors_of_type_timeout() {
    let (telemetry, exporter) = telemetry();
    let hanging = service_fn(|_request: http::Request<String>| {
        std::future::pending::<Result<http::Response<String>, Infallible>>()
    });
    let client = ServiceBuilder::new()
        .layer(telemetry.client_layer().with_peer_service("slow-api"))
        .timeout(Duration::from_millis(5))
        .service(hanging);
    let request = http::Request::get("http://slow.example/")
        .body(String::new())
        .expect("request");
    let err = client.oneshot(request).await.expect_err("must time out");
    assert!(err.is::<tower::timeout::error::Elapsed>());

    telemetry.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 1);
    assert_eq!(attr(&spans[0], "error.type"), Some(Value::from("timeout")));
    assert_eq!(
        attr(&spans[0], "peer.service"),
        Some(Value::from("slow-api"))
    );
    assert!(matches!(spans[0].status, Status::Error { .. }));
}
