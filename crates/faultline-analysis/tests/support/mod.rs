//! Spans, a store and an app for the integration tests.
#![allow(dead_code)]

pub mod promtext;

use std::sync::Arc;
use std::time::Duration;

use faultline_analysis::{AnalysisConfig, Analyzer};
use faultline_model::otlp::{spans_to_otlp, TracesData};
use faultline_model::{
    AttributeValue, KeyValue, Resource, Span, SpanId, SpanKind, TraceId, UnixNanos,
};
use faultline_storage::{AckMode, AppendBatch, Store, StoreConfig};
use prost::Message;

/// A span of `service` in trace `[trace; 16]`, ID `[id; 8]`, `start_us..end_us` after `base`.
#[allow(clippy::too_many_arguments)]
pub fn span(
    base: UnixNanos,
    service: &str,
    name: &str,
    trace: u8,
    id: u8,
    parent: Option<u8>,
    kind: SpanKind,
    start_us: u64,
    end_us: u64,
) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        name: name.into(),
        kind,
        start: UnixNanos(base.0 + start_us * 1_000),
        end: UnixNanos(base.0 + end_us * 1_000),
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AttributeValue::String(service.into()),
            )],
            dropped_attributes_count: 0,
            schema_url: String::new(),
        }),
        ..Default::default()
    }
}

/// A checkout trace: frontend server → frontend client → cart server (an error) → cart's
/// database client (no server half: a virtual node), 3 ms end to end.
pub fn checkout_trace(base: UnixNanos, trace: u8) -> Vec<Span> {
    let mut db = span(
        base,
        "cart",
        "SELECT carts",
        trace,
        4,
        Some(3),
        SpanKind::Client,
        1_200,
        2_200,
    );
    db.attributes.push(KeyValue::new(
        "db.system.name",
        AttributeValue::String("postgresql".into()),
    ));
    db.status.code = faultline_model::StatusCode::Error;
    db.status.message = "pool timeout \"carts\"".into();
    let mut cart = span(
        base,
        "cart",
        "GetCart",
        trace,
        3,
        Some(2),
        SpanKind::Server,
        1_100,
        2_400,
    );
    cart.status.code = faultline_model::StatusCode::Error;
    vec![
        span(
            base,
            "frontend",
            "GET /checkout",
            trace,
            1,
            None,
            SpanKind::Server,
            0,
            3_000,
        ),
        span(
            base,
            "frontend",
            "cart.GetCart",
            trace,
            2,
            Some(1),
            SpanKind::Client,
            1_000,
            2_500,
        ),
        cart,
        db,
    ]
}

/// A store in a temporary directory with blocks in memory.
pub async fn store(dir: &tempfile::TempDir) -> Arc<Store> {
    let config = StoreConfig {
        data_dir: dir.path().to_path_buf(),
        block_store: Arc::new(object_store::memory::InMemory::new()),
        max_head_bytes: 64 << 20,
        max_head_age: Duration::from_secs(3600),
        retention: Duration::from_secs(30 * 24 * 3600),
        max_spans_per_trace: 10_000,
        memory_budget_bytes: 256 << 20,
        maintenance_interval: Duration::from_secs(3600),
    };
    Store::open(config).await.expect("store opens")
}

/// Appends `spans` as the ingest pipeline does.
pub async fn append(store: &Store, spans: Vec<Span>) {
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
        .await
        .expect("append");
}

/// An analyzer with a short pairing wait so that virtual nodes appear quickly.
pub fn analyzer() -> Arc<Analyzer> {
    Arc::new(
        Analyzer::new(AnalysisConfig {
            pairing_wait: Duration::from_millis(50),
            ..AnalysisConfig::default()
        })
        .expect("valid config"),
    )
}
