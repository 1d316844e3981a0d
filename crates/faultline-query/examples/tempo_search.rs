//! Times TraceQL searches (`/api/search`) over a store of many small traces: queries the store
//! can pre-filter (pushdown) and queries it cannot (scan within the budget).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-release cargo run --release -p faultline-query \
//!     --example tempo_search -- 20000
//! ```
//!
//! Traces have 10 spans (a server root and nine children over 12 services); one trace in 100
//! has an error span, one in 1,000 an `http.response.status_code` of 503.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use faultline_model::otlp::{spans_to_otlp, TracesData};
use faultline_model::{
    AttributeValue, InstrumentationScope, KeyValue, Resource, Span, SpanId, SpanKind, Status,
    StatusCode, TraceId, UnixNanos,
};
use faultline_storage::{AckMode, AppendBatch, Store, StoreConfig};
use prost::Message;
use tower::ServiceExt;

fn text(s: impl Into<faultline_model::CompactString>) -> AttributeValue {
    AttributeValue::String(s.into())
}

fn trace(t: u64, services: &[Arc<Resource>], scope: &Arc<InstrumentationScope>) -> Vec<Span> {
    let t0 = 1_700_000_000_000_000_000u64 + t * 1_000_000;
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(t + 1).to_be_bytes());
    (0..10u64)
        .map(|i| {
            let status = if t.is_multiple_of(100) && i == 5 {
                StatusCode::Error
            } else {
                StatusCode::Unset
            };
            let code = if t % 1_000 == 7 && i == 0 { 503 } else { 200 };
            Span {
                trace_id: TraceId(id),
                span_id: SpanId((t * 16 + i + 1).to_be_bytes()),
                parent_span_id: (i > 0).then(|| SpanId((t * 16 + 1).to_be_bytes())),
                trace_state: String::new(),
                flags: 1,
                name: format!("op-{}", i % 5).into(),
                kind: if i == 0 {
                    SpanKind::Server
                } else {
                    SpanKind::Client
                },
                start: UnixNanos(t0 + i * 1_000),
                end: UnixNanos(t0 + i * 1_000 + (i + 1) * 100_000),
                attributes: vec![
                    KeyValue::new("http.response.status_code", AttributeValue::Int(code)),
                    KeyValue::new("http.route", text(format!("/r/{}", t % 20))),
                ],
                dropped_attributes_count: 0,
                events: Vec::new(),
                dropped_events_count: 0,
                links: Vec::new(),
                dropped_links_count: 0,
                status: Status {
                    code: status,
                    message: String::new(),
                },
                resource: Arc::clone(&services[((t + i) % 12) as usize]),
                scope: Arc::clone(scope),
            }
        })
        .collect()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig {
        data_dir: dir.path().to_path_buf(),
        block_store: Arc::new(object_store::memory::InMemory::new()),
        max_head_bytes: 64 << 20,
        max_head_age: Duration::from_secs(3600),
        retention: Duration::from_secs(3650 * 24 * 3600),
        max_spans_per_trace: 1_000,
        memory_budget_bytes: 8 << 30,
        maintenance_interval: Duration::from_secs(3600),
    })
    .await?;
    let services: Vec<Arc<Resource>> = (0..12)
        .map(|i| Arc::new(Resource::for_service(format!("svc-{i}"))))
        .collect();
    let scope = Arc::new(InstrumentationScope::default());
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let spans: Vec<Span> = chunk
            .iter()
            .flat_map(|&t| trace(t, &services, &scope))
            .collect();
        let otlp = TracesData {
            resource_spans: spans_to_otlp(&spans),
        }
        .encode_to_vec();
        store
            .append(
                AppendBatch {
                    spans,
                    otlp: otlp.into(),
                },
                AckMode::Durable,
            )
            .await?;
    }
    let app = faultline_query::router(
        faultline_query::QueryState::new(Arc::clone(&store))
            .with_clock(|| UnixNanos(1_700_000_000_000_000_000 + 3_600_000_000_000)),
    );
    println!("traces: {n} ({} spans)", n * 10);
    for q in [
        r#"{ resource.service.name = "svc-3" && status = error }"#,
        r#"{ span.http.response.status_code = 503 }"#,
        r#"{ span.http.response.status_code >= 500 }"#,
        r#"{ kind = server } >> { status = error }"#,
        r#"{ } | count() > 9"#,
        r#"{ name =~ "op-4" && duration > 900us }"#,
    ] {
        let mut times = Vec::new();
        let mut last = serde_json::Value::Null;
        for _ in 0..3 {
            let t = Instant::now();
            let response = app
                .clone()
                .oneshot(
                    Request::get(format!("/api/search?limit=20&q={}", enc(q)))
                        .body(Body::empty())?,
                )
                .await?;
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
            times.push(t.elapsed());
            last = serde_json::from_slice(&body)?;
        }
        times.sort();
        println!(
            "{q:<60} {:>6.0} ms  found {:>2}  inspected {:>5} traces  jobs {}",
            times[1].as_secs_f64() * 1e3,
            last["traces"].as_array().map_or(0, Vec::len),
            last["metrics"]["inspectedTraces"],
            last["metrics"]["completedJobs"],
        );
    }
    store.shutdown().await?;
    Ok(())
}
