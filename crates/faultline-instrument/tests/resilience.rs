//! Rate-limit and circuit-breaker decisions are visible on the SERVER spans.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use faultline_instrument::resilience::{
    BreakerState, CircuitBreakerConfig, CircuitBreakerLayer, RateLimitLayer,
};
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::{Telemetry, TokenBucket};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tower::ServiceExt;

fn telemetry() -> (Telemetry, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let telemetry = Telemetry::builder("edge")
        .sampler(SamplerConfig::AlwaysOn)
        .install_global(false)
        .install_with_exporter(exporter.clone())
        .expect("telemetry");
    (telemetry, exporter)
}

async fn status(app: &Router, path: &str) -> StatusCode {
    app.clone()
        .oneshot(
            http::Request::get(path)
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response")
        .status()
}

fn has_event(span: &SpanData, name: &str) -> bool {
    span.events.iter().any(|e| e.name == name)
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[tokio::test]
async fn rate_limit_rejections_are_recorded() {
    let (telemetry, exporter) = telemetry();
    // No refill: exactly the burst gets through, however slowly the test runs.
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::with_bucket(Arc::new(TokenBucket::new(
            0.0, 2.0,
        ))))
        .layer(telemetry.server_layer());
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(status(&app, "/").await);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    telemetry.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 3);
    let rejected: Vec<_> = spans
        .iter()
        .filter(|s| has_event(s, "rate_limit.rejected"))
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        attr(rejected[0], "http.response.status_code").as_deref(),
        Some("429")
    );
    assert_eq!(
        attr(rejected[0], "rate_limit.rejected").as_deref(),
        Some("true")
    );
}

#[tokio::test]
async fn breaker_opens_and_rejections_show_in_spans() {
    let (telemetry, exporter) = telemetry();
    let breaker = CircuitBreakerLayer::new(CircuitBreakerConfig {
        failure_ratio: 0.5,
        window: 4,
        min_calls: 2,
        open_for: Duration::from_secs(3600),
        half_open_probes: 1,
    });
    let state = breaker.breaker();
    let app = Router::new()
        .route(
            "/flaky",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .layer(breaker)
        .layer(telemetry.server_layer());
    assert_eq!(
        status(&app, "/flaky").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(state.state(), BreakerState::Closed);
    assert_eq!(
        status(&app, "/flaky").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(state.state(), BreakerState::Open);
    assert_eq!(
        status(&app, "/flaky").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    telemetry.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 3);
    let opened: Vec<_> = spans
        .iter()
        .filter(|s| has_event(s, "circuit_breaker.state_change"))
        .collect();
    assert_eq!(opened.len(), 1, "the second call opened the breaker");
    let change = opened[0]
        .events
        .iter()
        .find(|e| e.name == "circuit_breaker.state_change")
        .expect("event");
    assert!(change
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "circuit_breaker.to" && kv.value.as_str() == "open"));
    let rejected: Vec<_> = spans
        .iter()
        .filter(|s| has_event(s, "circuit_breaker.rejected"))
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        attr(rejected[0], "circuit_breaker.state").as_deref(),
        Some("open")
    );
    assert_eq!(
        attr(rejected[0], "http.response.status_code").as_deref(),
        Some("503")
    );
}
