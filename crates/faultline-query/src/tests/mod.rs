//! End-to-end tests of the router over a real store: handcrafted spans go in through
//! `Store::append`, requests go through the router in-process, answers are compared as JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use faultline_model::otlp::{spans_to_otlp, TracesData};
use faultline_model::{
    AttributeValue, Event, InstrumentationScope, KeyValue, Link, Resource, Span, SpanId, SpanKind,
    Status, StatusCode as SpanStatus, TraceId, UnixNanos,
};
use faultline_storage::{AckMode, AppendBatch, Store, StoreConfig};
use prost::Message;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::{router, QueryState};

mod api_v3;
mod jaeger_api;
mod tempo_api;

/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000_000_000_000;
const T0_US: u64 = T0 / 1_000;
const MS: u64 = 1_000_000;
const MINUTE: u64 = 60_000 * MS;
const HOUR: u64 = 60 * MINUTE;
const TRACE_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const TRACE_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

fn test_now() -> UnixNanos {
    UnixNanos(T0 + HOUR)
}

fn kv(key: &str, value: AttributeValue) -> KeyValue {
    KeyValue::new(key, value)
}

fn text(s: &str) -> AttributeValue {
    AttributeValue::String(s.into())
}

fn base_span(
    trace: u8,
    id: u8,
    name: &str,
    kind: SpanKind,
    start: u64,
    duration: u64,
    (resource, scope): (&Arc<Resource>, &Arc<InstrumentationScope>),
) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        flags: 1,
        name: name.into(),
        kind,
        start: UnixNanos(start),
        end: UnixNanos(start + duration),
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
        ..Default::default()
    }
}

/// Trace A: frontend server → frontend client → cart server, with an error, events, a link and
/// typed attributes. Trace B: one internal cart span, ten minutes later.
fn fixture() -> Vec<Span> {
    let frontend = Arc::new(Resource {
        attributes: vec![
            kv("service.name", text("frontend")),
            kv("host.name", text("web-1")),
            kv("process.pid", AttributeValue::Int(4242)),
        ],
        ..Default::default()
    });
    let cart = Arc::new(Resource {
        attributes: vec![
            kv("service.name", text("cart")),
            kv("host.name", text("cart-1")),
        ],
        ..Default::default()
    });
    let frontend_lib = Arc::new(InstrumentationScope {
        name: "frontend-lib".into(),
        version: "1.0.0".into(),
        ..Default::default()
    });
    let cart_lib = Arc::new(InstrumentationScope {
        name: "cart-lib".into(),
        ..Default::default()
    });

    let mut s1 = base_span(
        0xa1,
        1,
        "GET /checkout",
        SpanKind::Server,
        T0,
        50 * MS,
        (&frontend, &frontend_lib),
    );
    s1.flags = 0x301;
    s1.attributes = vec![
        kv("http.request.method", text("GET")),
        kv("http.response.status_code", AttributeValue::Int(500)),
    ];
    s1.status = Status {
        code: SpanStatus::Error,
        message: "upstream failed".into(),
    };
    s1.events = vec![Event {
        time: UnixNanos(T0 + 40 * MS),
        name: "exception".into(),
        attributes: vec![kv("exception.message", text("cart timeout"))],
        dropped_attributes_count: 0,
    }];

    let mut s2 = base_span(
        0xa1,
        2,
        "POST /cart",
        SpanKind::Client,
        T0 + 5 * MS,
        40 * MS,
        (&frontend, &frontend_lib),
    );
    s2.parent_span_id = Some(SpanId([1; 8]));
    s2.attributes = vec![
        kv("retry", AttributeValue::Bool(true)),
        kv("ratio", AttributeValue::Double(0.5)),
        kv("payload", AttributeValue::Bytes(vec![1, 2, 3])),
    ];
    s2.links = vec![Link {
        trace_id: TraceId([0xb2; 16]),
        span_id: SpanId([4; 8]),
        ..Default::default()
    }];

    let mut s3 = base_span(
        0xa1,
        3,
        "POST /cart",
        SpanKind::Server,
        T0 + 10 * MS,
        30 * MS,
        (&cart, &cart_lib),
    );
    s3.parent_span_id = Some(SpanId([2; 8]));
    s3.attributes = vec![kv("cart.items", AttributeValue::Int(3))];
    s3.status = Status {
        code: SpanStatus::Ok,
        message: String::new(),
    };
    s3.events = vec![Event {
        time: UnixNanos(T0 + 20 * MS),
        name: "db.query".into(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }];

    let mut s4 = base_span(
        0xb2,
        4,
        "refresh",
        SpanKind::Internal,
        T0 + 10 * MINUTE,
        2_000 * MS,
        (&cart, &cart_lib),
    );
    s4.attributes = vec![kv("tenant", text("acme"))];
    s4.trace_state = "vendor=1".into();
    s4.dropped_attributes_count = 2;

    vec![s1, s2, s3, s4]
}

/// A real store in a temporary directory with in-memory blocks.
async fn open_store(dir: &tempfile::TempDir, max_spans_per_trace: usize) -> Arc<Store> {
    open_store_cutting_at(dir, max_spans_per_trace, 64 << 20).await
}

/// Like [`open_store`], cutting the head into a block once it holds `max_head_bytes`.
async fn open_store_cutting_at(
    dir: &tempfile::TempDir,
    max_spans_per_trace: usize,
    max_head_bytes: usize,
) -> Arc<Store> {
    let config = StoreConfig {
        data_dir: dir.path().to_path_buf(),
        block_store: Arc::new(object_store::memory::InMemory::new()),
        max_head_bytes,
        max_head_age: Duration::from_secs(3600),
        retention: Duration::from_secs(30 * 24 * 3600),
        max_spans_per_trace,
        memory_budget_bytes: 256 << 20,
        maintenance_interval: Duration::from_secs(3600),
    };
    Store::open(config).await.expect("store opens")
}

async fn append(store: &Store, spans: Vec<Span>) {
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

struct Fixture {
    app: Router,
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(&dir, 1000).await;
        append(&store, fixture()).await;
        let app = router(QueryState::new(Arc::clone(&store)).with_clock(test_now));
        Self {
            app,
            store,
            _dir: dir,
        }
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let response = self
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{uri}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{uri}"
        );
        (status, body)
    }

    /// The trace IDs of a successful Jaeger search, in answer order.
    async fn search(&self, query: &str) -> Vec<String> {
        let (status, body) = self.get(&format!("/api/traces?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(body["errors"], Value::Null, "{query}");
        let ids: Vec<String> = body["data"]
            .as_array()
            .expect("data is a list")
            .iter()
            .map(|t| t["traceID"].as_str().expect("traceID").to_owned())
            .collect();
        assert_eq!(body["total"], json!(ids.len()), "{query}");
        ids
    }

    async fn close(self) {
        self.store.shutdown().await.expect("shutdown");
    }
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn bad_request(msg: &str) -> Value {
    json!({"data": null, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": 400, "msg": msg}]})
}

fn expected_trace_a() -> Value {
    let s = |k: &str, v: &str| json!({"key": k, "type": "string", "value": v});
    json!({
        "traceID": TRACE_A,
        "spans": [
            {
                "traceID": TRACE_A,
                "spanID": "0101010101010101",
                "flags": 1,
                "operationName": "GET /checkout",
                "references": [],
                "startTime": T0_US,
                "duration": 50_000,
                "tags": [
                    s("otel.scope.name", "frontend-lib"),
                    s("otel.scope.version", "1.0.0"),
                    s("http.request.method", "GET"),
                    {"key": "http.response.status_code", "type": "int64", "value": 500},
                    s("span.kind", "server"),
                    s("otel.status_code", "ERROR"),
                    {"key": "error", "type": "bool", "value": true},
                    s("otel.status_description", "upstream failed"),
                ],
                "logs": [{
                    "timestamp": T0_US + 40_000,
                    "fields": [s("event", "exception"), s("exception.message", "cart timeout")],
                }],
                "processID": "p1",
                "warnings": null,
            },
            {
                "traceID": TRACE_A,
                "spanID": "0202020202020202",
                "flags": 1,
                "operationName": "POST /cart",
                "references": [
                    {"refType": "CHILD_OF", "traceID": TRACE_A, "spanID": "0101010101010101"},
                    {"refType": "FOLLOWS_FROM", "traceID": TRACE_B, "spanID": "0404040404040404"},
                ],
                "startTime": T0_US + 5_000,
                "duration": 40_000,
                "tags": [
                    s("otel.scope.name", "frontend-lib"),
                    s("otel.scope.version", "1.0.0"),
                    {"key": "retry", "type": "bool", "value": true},
                    {"key": "ratio", "type": "float64", "value": 0.5},
                    {"key": "payload", "type": "binary", "value": "AQID"},
                    s("span.kind", "client"),
                ],
                "logs": [],
                "processID": "p1",
                "warnings": null,
            },
            {
                "traceID": TRACE_A,
                "spanID": "0303030303030303",
                "flags": 1,
                "operationName": "POST /cart",
                "references": [
                    {"refType": "CHILD_OF", "traceID": TRACE_A, "spanID": "0202020202020202"},
                ],
                "startTime": T0_US + 10_000,
                "duration": 30_000,
                "tags": [
                    s("otel.scope.name", "cart-lib"),
                    {"key": "cart.items", "type": "int64", "value": 3},
                    s("span.kind", "server"),
                    s("otel.status_code", "OK"),
                ],
                "logs": [{"timestamp": T0_US + 20_000, "fields": [s("event", "db.query")]}],
                "processID": "p2",
                "warnings": null,
            },
        ],
        "processes": {
            "p1": {
                "serviceName": "frontend",
                "tags": [s("host.name", "web-1"), {"key": "process.pid", "type": "int64", "value": 4242}],
            },
            "p2": {"serviceName": "cart", "tags": [s("host.name", "cart-1")]},
        },
        "warnings": null,
    })
}

/// Whatever the query string, every endpoint answers JSON with 200, 400 or 404, never a 500 or
/// a panic.
#[test]
fn router_answers_any_query_string_with_json() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let f = rt.block_on(Fixture::new());
    let paths = vec![
        "/api/services",
        "/api/services/cart/operations",
        "/api/operations",
        "/api/traces",
        "/api/traces/a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
        "/api/dependencies",
        "/api/v3/traces",
        "/api/v3/traces/a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
        "/api/v3/services",
        "/api/v3/operations",
    ];
    let names = vec![
        "service",
        "operation",
        "tag",
        "tags",
        "minDuration",
        "maxDuration",
        "start",
        "end",
        "lookback",
        "limit",
        "traceID",
        "endTs",
        "raw",
        "spanKind",
        "span_kind",
        "query.service_name",
        "query.start_time_min",
        "query.start_time_max",
        "query.attributes",
        "query.duration_min",
        "query.search_depth",
        "start_time",
    ];
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 300,
        ..Default::default()
    });
    let strategy = (
        proptest::sample::select(paths),
        proptest::collection::vec((proptest::sample::select(names), "\\PC{0,24}"), 0..6),
        "[%0-9A-Fa-z&=]{0,8}",
    );
    let result = runner.run(&strategy, |(path, pairs, raw_tail)| {
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        let uri = format!("{path}?{}&{raw_tail}", query.join("&"));
        let (status, body) = rt.block_on(f.get(&uri));
        proptest::prop_assert!(
            matches!(
                status,
                StatusCode::OK | StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND
            ),
            "{uri}: {status} {body}"
        );
        Ok(())
    });
    rt.block_on(f.close());
    if let Err(e) = result {
        panic!("{e}");
    }
}
