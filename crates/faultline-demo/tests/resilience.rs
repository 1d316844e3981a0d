//! The gateway's rate limiter and payment's circuit breaker act, and say so in the traces.

mod support;

use std::time::{Duration, Instant};

use faultline_demo::demo::DemoConfig;
use faultline_demo::fault::{FaultKind, FaultRequest};
use support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_429_beyond_its_rate_and_records_it() {
    let mut config = DemoConfig::ephemeral();
    config.gateway_rate_limit = 1.0;
    let h = Harness::start_with(config).await;
    let mut limited = None;
    for _ in 0..10 {
        let response = h
            .http
            .get(format!("{}/api/products/SKU-0001", h.gateway()))
            .send()
            .await
            .expect("answer");
        if response.status() == 429 {
            let trace_id = response
                .headers()
                .get("x-trace-id")
                .and_then(|v| v.to_str().ok())
                .expect("a refusal carries X-Trace-Id too")
                .to_owned();
            assert!(response.headers().contains_key("retry-after"));
            limited = Some(trace_id);
            break;
        }
    }
    let trace_id = limited.expect("10 requests at once exceed 1 per second");
    let t = h
        .trace_until(&trace_id, Duration::from_secs(20), |t| {
            t.find("gateway", "GET /api/products/{sku}").is_some()
        })
        .await;
    let span = t.expect("gateway", "GET /api/products/{sku}");
    assert_eq!(span.tag_i64("http.response.status_code"), Some(429));
    assert!(
        !span.error,
        "a 429 is the client's problem, not a server error"
    );
    assert!(
        span.events.iter().any(|e| e.contains("rate_limit")),
        "{:?}",
        span.events
    );
    assert_eq!(t.spans.len(), 1, "nothing behind the gateway was called");
    h.demo.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_opens_when_the_provider_keeps_failing() {
    let h = Harness::start().await;
    h.admin("payment")
        .inject(
            &FaultRequest::new(FaultKind::Errors { rate: 1.0 }).on_dependency("payment-provider"),
        )
        .await
        .expect("injected");
    let deadline = Instant::now() + Duration::from_secs(30);
    let trace_id = loop {
        let (status, trace_id) = h.checkout().await;
        assert_eq!(status, 502);
        let t = h
            .trace_until(&trace_id, Duration::from_secs(20), |t| {
                t.find("payment", "POST /charges").is_some()
            })
            .await;
        if t.expect("payment", "POST /charges")
            .tag_str("circuit_breaker.state")
            == Some("open")
        {
            break trace_id;
        }
        assert!(Instant::now() < deadline, "the breaker never opened");
    };
    let t = h
        .trace_until(&trace_id, Duration::from_secs(20), |t| {
            t.find("payment", "POST /charges").is_some()
        })
        .await;
    let charge = t.expect("payment", "POST /charges");
    assert_eq!(charge.tag_i64("http.response.status_code"), Some(503));
    assert!(
        charge
            .events
            .iter()
            .any(|e| e == "circuit_breaker.rejected"),
        "{:?}",
        charge.events
    );
    assert!(
        t.spans
            .iter()
            .all(|s| !(s.service == "payment" && s.kind == "client")),
        "an open breaker does not call the provider: {}",
        t.describe()
    );
    h.demo.shutdown().await.expect("clean shutdown");
}
