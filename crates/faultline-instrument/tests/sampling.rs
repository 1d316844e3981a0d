//! Sampler decisions, including strategies fetched from a local Jaeger-style sampling endpoint.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use faultline_instrument::sampling::{JaegerRemoteSampler, RateLimitingSampler, SamplerConfig};
use faultline_instrument::TokenBucket;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};
use serde_json::{json, Value};

fn decide(
    sampler: &dyn ShouldSample,
    parent: Option<&Context>,
    trace_id: u128,
    name: &str,
) -> bool {
    sampler
        .should_sample(
            parent,
            TraceId::from(trace_id),
            name,
            &SpanKind::Server,
            &[],
            &[],
        )
        .decision
        == SamplingDecision::RecordAndSample
}

/// Trace ids whose low 63 bits sit at the bottom and top of the ratio range.
const LOW_TRACE_ID: u128 = 1;
const HIGH_TRACE_ID: u128 = u64::MAX as u128;

fn remote_parent(sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(7_u128),
        SpanId::from(9_u64),
        flags,
        true,
        TraceState::default(),
    ))
}

#[test]
fn parent_based_ratio_follows_parents_and_ratios_roots() {
    let sampler = SamplerConfig::parse("parentbased_traceidratio", Some("0.5"))
        .expect("config")
        .build("svc")
        .expect("sampler");
    assert!(decide(sampler.as_ref(), None, LOW_TRACE_ID, "op"));
    assert!(!decide(sampler.as_ref(), None, HIGH_TRACE_ID, "op"));
    assert!(decide(
        sampler.as_ref(),
        Some(&remote_parent(true)),
        HIGH_TRACE_ID,
        "op"
    ));
    assert!(!decide(
        sampler.as_ref(),
        Some(&remote_parent(false)),
        LOW_TRACE_ID,
        "op"
    ));
    let off = SamplerConfig::AlwaysOff.build("svc").expect("sampler");
    assert!(!decide(
        off.as_ref(),
        Some(&remote_parent(true)),
        LOW_TRACE_ID,
        "op"
    ));
    let on = SamplerConfig::AlwaysOn.build("svc").expect("sampler");
    assert!(decide(
        on.as_ref(),
        Some(&remote_parent(false)),
        HIGH_TRACE_ID,
        "op"
    ));
}

#[test]
fn rate_limited_sampler_keeps_the_burst_then_drops() {
    // Zero refill makes the decision sequence independent of how fast the test runs.
    let sampler = RateLimitingSampler::with_bucket(Arc::new(TokenBucket::new(0.0, 3.0)));
    let kept = (0..10)
        .filter(|_| decide(&sampler, None, LOW_TRACE_ID, "op"))
        .count();
    assert_eq!(kept, 3);
}

type Strategies = Arc<Mutex<Option<Value>>>;

async fn strategies(
    State(state): State<(Strategies, Arc<Mutex<Vec<String>>>)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Json<Value>, axum::http::StatusCode> {
    let (doc, seen) = state;
    if let Ok(mut seen) = seen.lock() {
        seen.push(query.get("service").cloned().unwrap_or_default());
    }
    let doc = doc
        .lock()
        .map_err(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR)?
        .clone();
    doc.map(Json)
        .ok_or(axum::http::StatusCode::SERVICE_UNAVAILABLE)
}

async fn sampling_server(doc: Option<Value>) -> (SocketAddr, Strategies, Arc<Mutex<Vec<String>>>) {
    let doc = Arc::new(Mutex::new(doc));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/", get(strategies))
        .with_state((Arc::clone(&doc), Arc::clone(&seen)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, doc, seen)
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not met before the deadline"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_sampler_applies_per_operation_strategies() {
    let (addr, _, seen) = sampling_server(Some(json!({
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 0.0},
        "operationSampling": {
            "defaultSamplingProbability": 0.0,
            "defaultLowerBoundTracesPerSecond": 0.0,
            "perOperationStrategies": [
                {"operation": "GET /checkout", "probabilisticSampling": {"samplingRate": 1.0}}
            ]
        }
    })))
    .await;
    let sampler = JaegerRemoteSampler::builder("order service")
        .endpoint(format!("http://{addr}"))
        .poll_interval(Duration::from_millis(20))
        .default_sampler(Sampler::AlwaysOn)
        .build()
        .expect("sampler");
    // Before the first poll the default decides.
    let probe = sampler.clone();
    wait_until(move || probe.has_remote_strategy()).await;
    assert!(decide(&sampler, None, HIGH_TRACE_ID, "GET /checkout"));
    assert!(!decide(&sampler, None, LOW_TRACE_ID, "GET /health"));
    assert_eq!(
        seen.lock().expect("lock").first().map(String::as_str),
        Some("order service")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_sampler_switches_strategies_and_keeps_the_last_good_one() {
    let (addr, doc, _) = sampling_server(Some(json!({
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 0.0}
    })))
    .await;
    let sampler = JaegerRemoteSampler::builder("svc")
        .endpoint(format!("http://{addr}"))
        .poll_interval(Duration::from_millis(20))
        .default_sampler(Sampler::AlwaysOn)
        .build()
        .expect("sampler");
    let probe = sampler.clone();
    wait_until(move || probe.has_remote_strategy()).await;
    assert!(!decide(&sampler, None, LOW_TRACE_ID, "op"));

    *doc.lock().expect("lock") = Some(json!({
        "strategyType": "PROBABILISTIC",
        "probabilisticSampling": {"samplingRate": 1.0}
    }));
    let probe = sampler.clone();
    wait_until(move || decide(&probe, None, HIGH_TRACE_ID, "op")).await;

    // The endpoint goes bad: the last good strategy stays, the error is reported.
    *doc.lock().expect("lock") = None;
    let probe = sampler.clone();
    wait_until(move || probe.last_error().is_some()).await;
    assert!(decide(&sampler, None, HIGH_TRACE_ID, "op"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_sampler_falls_back_to_the_default_when_the_endpoint_is_down() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let sampler = JaegerRemoteSampler::builder("svc")
        .endpoint(format!("http://{closed}"))
        .poll_interval(Duration::from_millis(20))
        .default_sampler(Sampler::TraceIdRatioBased(0.5))
        .build()
        .expect("sampler");
    let probe = sampler.clone();
    wait_until(move || probe.last_error().is_some()).await;
    assert!(!sampler.has_remote_strategy());
    assert!(decide(&sampler, None, LOW_TRACE_ID, "op"));
    assert!(!decide(&sampler, None, HIGH_TRACE_ID, "op"));
}

#[test]
fn rate_limiting_strategy_from_the_endpoint_document() {
    let sampler = JaegerRemoteSampler::builder("svc")
        .endpoint("http://127.0.0.1:9")
        .poll_interval(Duration::from_secs(3600))
        .build()
        .expect("sampler");
    let doc: faultline_instrument::sampling::SamplingStrategyResponse =
        serde_json::from_value(json!({
            "strategyType": "RATE_LIMITING",
            "rateLimitingSampling": {"maxTracesPerSecond": 2}
        }))
        .expect("document");
    sampler.apply(&doc).expect("valid strategy");
    let kept = (0..50)
        .filter(|_| decide(&sampler, None, HIGH_TRACE_ID, "op"))
        .count();
    // Two tokens at once, plus whatever trickles in while the loop runs (far less than 48).
    assert!((2..10).contains(&kept), "kept {kept}");
    let bad: faultline_instrument::sampling::SamplingStrategyResponse =
        serde_json::from_value(json!({"strategyType": "SOMETIMES"})).expect("document");
    assert!(sampler.apply(&bad).is_err());
}
