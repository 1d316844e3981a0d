//! The server layer of a `Telemetry` decides requests itself before any SDK span exists: a
//! dropped request gets a non-recording span context that still propagates, and a kept one is
//! started by the SDK with that same decision (no second token spent, the same root trace id).

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use faultline_instrument::processor::BatchSettings;
use faultline_instrument::propagation::{MapInjector, Propagation};
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::Telemetry;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, TraceContextExt, TraceId};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SamplingDecision, ShouldSample};
use tower::ServiceExt;

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

fn telemetry(sampler: SamplerConfig) -> (Telemetry, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let telemetry = Telemetry::builder("decided")
        .sampler(sampler)
        .propagation(Propagation::default())
        .batch(BatchSettings {
            scheduled_delay: Duration::from_secs(3600),
            ..BatchSettings::default()
        })
        .install_global(false)
        .install_with_exporter(exporter.clone())
        .expect("telemetry");
    (telemetry, exporter)
}

/// What the handler sees: its context's span and the headers an outgoing call would carry.
async fn seen() -> String {
    let cx = Context::current();
    let span = cx.span();
    let sc = span.span_context();
    let mut headers = HashMap::new();
    Propagation::default().inject_context(&cx, &mut MapInjector(&mut headers));
    serde_json::json!({
        "trace_id": sc.trace_id().to_string(),
        "span_id": sc.span_id().to_string(),
        "sampled": sc.is_sampled(),
        "remote": sc.is_remote(),
        "recording": span.is_recording(),
        "baggage": cx.baggage().get("tenant").map(|v| v.to_string()),
        "traceparent": headers.get("traceparent"),
        "tracestate": headers.get("tracestate"),
    })
    .to_string()
}

fn app(telemetry: &Telemetry) -> Router {
    Router::new()
        .route("/orders/{id}", get(seen))
        .route("/health", get(seen))
        .layer(telemetry.server_layer())
}

async fn call(app: &Router, headers: &[(&str, &str)]) -> (http::HeaderMap, serde_json::Value) {
    call_path(app, "/orders/42", headers).await
}

async fn call_path(
    app: &Router,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::HeaderMap, serde_json::Value) {
    let mut request = http::Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (headers, serde_json::from_slice(&body).expect("json"))
}

fn traceparent(flags: &str) -> String {
    format!("00-{PARENT_TRACE}-{PARENT_SPAN}-{flags}")
}

#[tokio::test]
async fn a_dropped_request_still_propagates_its_trace_unsampled() {
    let (telemetry, exporter) = telemetry(SamplerConfig::AlwaysOff);
    let app = app(&telemetry);
    let parent = traceparent("01");
    let (headers, seen) = call(
        &app,
        &[
            ("traceparent", parent.as_str()),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("baggage", "tenant=acme"),
        ],
    )
    .await;
    assert_eq!(seen["trace_id"], PARENT_TRACE);
    // A span id of its own, as the SDK gives every span whatever the decision.
    assert_ne!(seen["span_id"], PARENT_SPAN);
    assert_eq!(seen["sampled"], false);
    assert_eq!(seen["remote"], false);
    assert_eq!(seen["recording"], false);
    assert_eq!(seen["baggage"], "acme");
    assert_eq!(
        seen["traceparent"],
        format!(
            "00-{PARENT_TRACE}-{}-00",
            seen["span_id"].as_str().expect("span id")
        )
    );
    assert_eq!(seen["tracestate"], "congo=t61rcWkgMzE");
    assert!(!headers.contains_key("traceresponse"));
    assert!(!headers.contains_key("x-trace-id"));
    telemetry.force_flush().expect("flush");
    assert!(exporter.get_finished_spans().expect("spans").is_empty());
}

#[tokio::test]
async fn parent_based_follows_the_callers_flag_both_ways() {
    let (telemetry, exporter) = telemetry(SamplerConfig::ParentBased(Box::new(
        SamplerConfig::AlwaysOn,
    )));
    let app = app(&telemetry);
    let unsampled = traceparent("00");
    let (_, seen) = call(&app, &[("traceparent", unsampled.as_str())]).await;
    assert_eq!(seen["trace_id"], PARENT_TRACE);
    assert_eq!(seen["sampled"], false);
    let sampled = traceparent("01");
    let (headers, seen) = call(&app, &[("traceparent", sampled.as_str())]).await;
    assert_eq!(seen["sampled"], true);
    assert_eq!(seen["recording"], true);
    assert!(headers.contains_key("traceresponse"));
    // B3 and Jaeger parents go through the SDK's propagators, then the same decision.
    let (_, seen) = call(
        &app,
        &[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0")],
    )
    .await;
    assert_eq!(seen["trace_id"], PARENT_TRACE);
    assert_eq!(seen["sampled"], false);
    // No parent: a root, kept.
    let (_, seen) = call(&app, &[]).await;
    assert_eq!(seen["sampled"], true);
    assert_ne!(seen["trace_id"], PARENT_TRACE);
    telemetry.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 2, "the sampled child and the root");
    let child = spans
        .iter()
        .find(|s| s.span_context.trace_id().to_string() == PARENT_TRACE)
        .expect("child span");
    assert_eq!(child.name, "GET /orders/{id}");
    assert_eq!(child.span_kind, SpanKind::Server);
    assert_eq!(child.parent_span_id.to_string(), PARENT_SPAN);
    assert!(child.parent_span_is_remote);
    assert!(child
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "http.response.status_code"));
}

/// The layer's decision is handed to the SDK, not taken again: a rate limit of three traces
/// keeps exactly three of ten requests arriving at once (a second decision would spend two
/// tokens per kept request and keep fewer).
#[tokio::test]
async fn a_kept_request_spends_one_token() {
    let (telemetry, exporter) = telemetry(SamplerConfig::RateLimited(3.0));
    let app = app(&telemetry);
    let mut kept = 0;
    for _ in 0..10 {
        let (_, seen) = call(&app, &[]).await;
        if seen["sampled"] == true {
            kept += 1;
        }
    }
    assert_eq!(kept, 3);
    telemetry.force_flush().expect("flush");
    assert_eq!(exporter.get_finished_spans().expect("spans").len(), 3);
}

/// A root is kept under the trace id its decision was made for. Were the SDK to pick another
/// id, it would judge the root again by that id and keep a quarter of the roots instead of
/// half (400 requests: 200 ± 10 against 100 ± 9); and every exported root passes the ratio
/// rule for its own id.
#[tokio::test]
async fn a_kept_root_has_the_trace_id_it_was_judged_by() {
    let (telemetry, exporter) = telemetry(SamplerConfig::TraceIdRatio(0.5));
    let app = app(&telemetry);
    let mut kept = 0;
    for _ in 0..400 {
        let (_, seen) = call(&app, &[]).await;
        if seen["sampled"] == true {
            kept += 1;
        }
    }
    assert!((150..250).contains(&kept), "{kept} of 400 kept");
    telemetry.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), kept);
    let ratio = Sampler::TraceIdRatioBased(0.5);
    for span in &spans {
        let trace_id: TraceId = span.span_context.trace_id();
        let decision = ratio
            .should_sample(None, trace_id, "", &SpanKind::Server, &[], &[])
            .decision;
        assert_eq!(decision, SamplingDecision::RecordAndSample, "{trace_id}");
    }
}

/// A `ServerLayer` built by hand on a provider this crate did not build cannot decide first:
/// the SDK decides while starting the span, with the same outcome.
#[tokio::test]
async fn a_hand_built_layer_lets_the_sdk_decide() {
    use faultline_instrument::server::ServerLayer;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    for keep in [true, false] {
        let exporter = InMemorySpanExporter::default();
        let sampler = if keep {
            Sampler::AlwaysOn
        } else {
            Sampler::AlwaysOff
        };
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_simple_exporter(exporter.clone())
            .build();
        let app = Router::new()
            .route("/orders/{id}", get(seen))
            .layer(ServerLayer::new(
                provider.tracer("hand-built"),
                Propagation::default(),
            ));
        let parent = traceparent("01");
        let (headers, seen) = call(
            &app,
            &[("traceparent", parent.as_str()), ("host", "shop:8080")],
        )
        .await;
        assert_eq!(seen["trace_id"], PARENT_TRACE);
        assert_ne!(seen["span_id"], PARENT_SPAN);
        assert_eq!(seen["sampled"], keep);
        assert_eq!(headers.contains_key("traceresponse"), keep);
        let spans = exporter.get_finished_spans().expect("spans");
        if keep {
            assert_eq!(spans.len(), 1);
            let span = &spans[0];
            assert_eq!(span.name, "GET /orders/{id}");
            let attr = |key: &str| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.to_string())
            };
            assert_eq!(attr("http.route").as_deref(), Some("/orders/{id}"));
            assert_eq!(attr("server.address").as_deref(), Some("shop"));
            assert_eq!(attr("server.port").as_deref(), Some("8080"));
            assert_eq!(attr("http.response.status_code").as_deref(), Some("200"));
        } else {
            assert!(spans.is_empty());
        }
        provider.shutdown().expect("shutdown");
    }
}

/// A sampler that decides by span name (Jaeger per-operation strategies) is asked with the full
/// `GET /route` name, before the span exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sampler_reading_names_gets_the_route_name() {
    let doc = serde_json::json!({
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 0.0},
        "operationSampling": {
            "defaultSamplingProbability": 0.0,
            "defaultLowerBoundTracesPerSecond": 0.0,
            "perOperationStrategies": [
                {"operation": "GET /orders/{id}", "probabilisticSampling": {"samplingRate": 1.0}}
            ]
        }
    });
    let strategies = Router::new().route(
        "/",
        get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, strategies).await;
    });
    let (telemetry, exporter) = telemetry(SamplerConfig::ParentBased(Box::new(
        SamplerConfig::JaegerRemote {
            endpoint,
            poll_interval: Duration::from_millis(50),
            initial_sampling_rate: 0.0,
        },
    )));
    let app = app(&telemetry);
    // Until the first poll answers, the initial rate (0) drops everything.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, seen) = call_path(&app, "/orders/42", &[]).await;
        if seen["sampled"] == true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "strategy never applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..5 {
        let (_, seen) = call_path(&app, "/health", &[]).await;
        assert_eq!(seen["sampled"], false, "GET /health has probability 0");
        let (_, seen) = call_path(&app, "/orders/7", &[]).await;
        assert_eq!(
            seen["sampled"], true,
            "GET /orders/{{id}} has probability 1"
        );
    }
    telemetry.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    assert!(spans.iter().all(|s| s.name == "GET /orders/{id}"));
}
