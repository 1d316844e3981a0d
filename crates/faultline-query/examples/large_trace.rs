//! Times `/api/traces/{id}` for one large trace, split into its parts: reading the trace from
//! the store, converting and encoding the Jaeger JSON, and the whole request through the
//! router (what a client waits for, minus the network).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-release cargo run --release -p faultline-query \
//!     --example large_trace -- 100000
//! ```
//!
//! The trace has the UI benchmark's shape: fan-out 8, depth 7, 12 services (each with a
//! resource of 10 attributes), 8 attributes per span and an event on every tenth span.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request};
use faultline_model::otlp::{spans_to_otlp, TracesData};
use faultline_model::{
    AttributeValue, Event, InstrumentationScope, KeyValue, Resource, Span, SpanId, SpanKind,
    Status, StatusCode, TraceId, UnixNanos,
};
use faultline_storage::{AckMode, AppendBatch, Store, StoreConfig};
use prost::Message;
use tower::ServiceExt;

const RUNS: usize = 5;

fn text(s: impl Into<faultline_model::CompactString>) -> AttributeValue {
    AttributeValue::String(s.into())
}

fn build_trace(n: usize) -> Vec<Span> {
    let services: Vec<Arc<Resource>> = (0..12)
        .map(|i| {
            let mut attributes = vec![KeyValue::new("service.name", text(format!("svc-{i}")))];
            for k in 0..9 {
                attributes.push(KeyValue::new(
                    format!("k8s.attr.{k}"),
                    text(format!("value-{i}-{k}")),
                ));
            }
            Arc::new(Resource {
                attributes,
                ..Default::default()
            })
        })
        .collect();
    let scope = Arc::new(InstrumentationScope {
        name: "bench".into(),
        version: "1.0".into(),
        ..Default::default()
    });
    let t0 = 1_700_000_000_000_000_000u64;
    let trace_id = TraceId([0x42; 16]);
    let mut spans = Vec::with_capacity(n);
    // Breadth-first tree: span i's parent is (i - 1) / 8, capped at depth 7 by reusing
    // shallower parents once the tree is deep enough.
    for i in 0..n {
        let parent = (i > 0).then(|| {
            let mut p = (i - 1) / 8;
            while depth(p) >= 6 {
                p = (p.saturating_sub(1)) / 8;
            }
            p
        });
        let mut attributes = vec![
            KeyValue::new("http.request.method", text("GET")),
            KeyValue::new("http.route", text(format!("/api/items/{}", i % 50))),
            KeyValue::new("http.response.status_code", AttributeValue::Int(200)),
            KeyValue::new("net.peer.name", text("10.0.0.1")),
            KeyValue::new("retry", AttributeValue::Bool(i % 7 == 0)),
            KeyValue::new("ratio", AttributeValue::Double(i as f64 / 3.0)),
            KeyValue::new("user.id", text(format!("user-{}", i % 1000))),
            KeyValue::new("db.statement", text("SELECT * FROM items WHERE id = ?")),
        ];
        attributes.truncate(8);
        let start = t0 + i as u64 * 1_000;
        spans.push(Span {
            trace_id,
            span_id: SpanId((i as u64 + 1).to_be_bytes()),
            parent_span_id: parent.map(|p| SpanId((p as u64 + 1).to_be_bytes())),
            trace_state: String::new(),
            flags: 1,
            name: format!("GET /api/items/{}", i % 50).into(),
            kind: if i % 2 == 0 {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            start: UnixNanos(start),
            end: UnixNanos(start + 500_000),
            attributes,
            dropped_attributes_count: 0,
            events: if i % 10 == 0 {
                vec![Event {
                    time: UnixNanos(start + 100),
                    name: "cache.miss".into(),
                    attributes: vec![KeyValue::new("key", text(format!("item-{i}")))],
                    dropped_attributes_count: 0,
                }]
            } else {
                Vec::new()
            },
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Status {
                code: if i % 100 == 0 {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                message: String::new(),
            },
            resource: Arc::clone(&services[i % 12]),
            scope: Arc::clone(&scope),
        });
    }
    spans
}

/// Depth of node `i` in a complete 8-ary tree laid out breadth-first.
fn depth(mut i: usize) -> usize {
    let mut d = 0;
    while i > 0 {
        i = (i - 1) / 8;
        d += 1;
    }
    d
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let store = Store::open(StoreConfig {
        data_dir: dir.path().to_path_buf(),
        block_store: Arc::new(object_store::memory::InMemory::new()),
        max_head_bytes: 64 << 20,
        max_head_age: Duration::from_secs(3600),
        retention: Duration::from_secs(30 * 24 * 3600),
        max_spans_per_trace: n.max(1),
        memory_budget_bytes: 8 << 30,
        maintenance_interval: Duration::from_secs(3600),
    })
    .await?;
    let spans = build_trace(n);
    let id = spans[0].trace_id;
    for chunk in spans.chunks(5_000) {
        let chunk = chunk.to_vec();
        let otlp = TracesData {
            resource_spans: spans_to_otlp(&chunk),
        }
        .encode_to_vec();
        store
            .append(
                AppendBatch {
                    spans: chunk,
                    otlp: otlp.into(),
                },
                AckMode::Durable,
            )
            .await?;
    }
    drop(spans);
    let app = faultline_query::router(faultline_query::QueryState::new(Arc::clone(&store)));

    let (mut fetch, mut convert, mut encode, mut whole) = (vec![], vec![], vec![], vec![]);
    let mut streamed = vec![];
    let mut tempo = vec![];
    let (mut dropping, mut to_otlp, mut proto_encode) = (vec![], vec![], vec![]);
    let mut bytes = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let data = store.trace(id).await?.ok_or("trace not stored")?;
        fetch.push(t.elapsed());
        let t = Instant::now();
        let jaeger = faultline_query::jaeger_json::trace_to_jaeger(id, &data.spans, &data.warnings);
        convert.push(t.elapsed());
        let t = Instant::now();
        let body = serde_json::to_vec(&jaeger)?;
        encode.push(t.elapsed());
        drop(jaeger);
        let t = Instant::now();
        let trace = faultline_query::jaeger_stream::TraceJson::new(id, &data.spans, &data.warnings);
        let mut out = Vec::with_capacity(trace.size_hint());
        serde_json::to_writer(&mut out, &trace)?;
        streamed.push(t.elapsed());
        assert_eq!(out, body, "streamed JSON differs");
        drop(out);
        let t = Instant::now();
        let mut ordered: Vec<&Span> = data.spans.iter().collect();
        ordered.sort_by_key(|s| (s.start, s.span_id));
        let otlp = TracesData {
            resource_spans: spans_to_otlp(ordered),
        };
        to_otlp.push(t.elapsed());
        let t = Instant::now();
        let encoded = otlp.encode_to_vec();
        proto_encode.push(t.elapsed());
        drop((otlp, encoded));
        let t = Instant::now();
        drop(data);
        dropping.push(t.elapsed());
        let t = Instant::now();
        let response = app
            .clone()
            .oneshot(
                Request::get(format!("/api/traces/{}", id.to_hex()))
                    .header(header::ACCEPT, "application/json")
                    .body(Body::empty())?,
            )
            .await?;
        let full = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        whole.push(t.elapsed());
        if let Some(path) = std::env::var_os("LARGE_TRACE_DUMP") {
            std::fs::write(path, &full)?;
        }
        let t = Instant::now();
        let response = app
            .clone()
            .oneshot(
                Request::get(format!("/api/v2/traces/{}", id.to_hex()))
                    .header(header::ACCEPT, "application/protobuf")
                    .body(Body::empty())?,
            )
            .await?;
        let proto = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        tempo.push((t.elapsed(), proto.len()));
        bytes = full.len();
        assert!(full.len() >= body.len());
    }
    println!("spans: {n}, JSON: {:.1} MB", bytes as f64 / 1e6);
    println!("store.trace (fetch):            {}", ms(median(fetch)));
    println!("trace_to_jaeger (model build):  {}", ms(median(convert)));
    println!("serde_json::to_vec (encode):    {}", ms(median(encode)));
    println!("TraceJson streamed encode:      {}", ms(median(streamed)));
    println!("drop(TraceData):                {}", ms(median(dropping)));
    println!("spans_to_otlp (OTLP build):     {}", ms(median(to_otlp)));
    println!(
        "prost encode_to_vec:            {}",
        ms(median(proto_encode))
    );
    println!("GET /api/traces/{{id}} (router): {}", ms(median(whole)));
    let proto_len = tempo.first().map_or(0, |t| t.1);
    println!(
        "GET /api/v2/traces/{{id}} protobuf (router): {} ({:.1} MB)",
        ms(median(tempo.into_iter().map(|t| t.0).collect())),
        proto_len as f64 / 1e6
    );
    store.shutdown().await?;
    Ok(())
}
