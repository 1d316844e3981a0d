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
    AttributeValue::String(s.to_owned())
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
        parent_span_id: None,
        trace_state: String::new(),
        flags: 1,
        name: name.to_owned(),
        kind,
        start: UnixNanos(start),
        end: UnixNanos(start + duration),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Status::default(),
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
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

#[tokio::test]
async fn trace_by_id_is_the_full_jaeger_model() {
    let f = Fixture::new().await;
    let (status, body) = f.get(&format!("/api/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK);
    let want = json!({
        "data": [expected_trace_a()],
        "total": 1, "limit": 0, "offset": 0, "errors": null,
    });
    assert_eq!(body, want);

    // Upper-case and start/end hints are accepted.
    let (status, upper) = f
        .get(&format!(
            "/api/traces/{}?start=1&end=2",
            TRACE_A.to_uppercase()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upper, want);

    let (status, b) = f.get(&format!("/api/traces/{TRACE_B}")).await;
    assert_eq!(status, StatusCode::OK);
    let span = &b["data"][0]["spans"][0];
    assert_eq!(
        span["warnings"],
        json!(["2 attributes of this span were dropped"])
    );
    assert_eq!(
        span["tags"],
        json!([
            {"key": "otel.scope.name", "type": "string", "value": "cart-lib"},
            {"key": "tenant", "type": "string", "value": "acme"},
            {"key": "span.kind", "type": "string", "value": "internal"},
            {"key": "w3c.tracestate", "type": "string", "value": "vendor=1"},
        ])
    );
    assert_eq!(span["duration"], json!(2_000_000));
    f.close().await;
}

#[tokio::test]
async fn trace_by_id_errors() {
    let f = Fixture::new().await;
    let (status, body) = f.get("/api/traces/ffff").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"data": null, "total": 0, "limit": 0, "offset": 0,
               "errors": [{"code": 404, "msg": "trace not found"}]})
    );
    let (status, body) = f.get("/api/traces/zz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request(
            "invalid parameter 'traceID': \"zz\" is not a trace ID (ID is not hexadecimal: \"zz\"); expected 1 to 32 hexadecimal digits"
        )
    );
    for bad in ["0", "0123456789abcdef0123456789abcdef01", "%FF%FE"] {
        let (status, body) = f.get(&format!("/api/traces/{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let msg = body["errors"][0]["msg"].as_str().expect("msg");
        assert!(
            msg.starts_with("invalid parameter 'traceID'"),
            "{bad}: {msg}"
        );
        assert_eq!(body["data"], Value::Null);
    }
    let (status, body) = f.get(&format!("/api/traces/{TRACE_A}?start=soon")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request("invalid parameter 'start': \"soon\" is not a whole number of microseconds since the Unix epoch")
    );
    f.close().await;
}

#[tokio::test]
async fn services_and_operations() {
    let f = Fixture::new().await;
    let (status, body) = f.get("/api/services").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": ["cart", "frontend"], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );

    let (_, body) = f.get("/api/services/frontend/operations").await;
    assert_eq!(
        body,
        json!({"data": ["GET /checkout", "POST /cart"], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );
    let (_, body) = f.get("/api/services/nobody/operations").await;
    assert_eq!(body["data"], json!([]));

    let (status, body) = f.get("/api/operations?service=cart").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": [
            {"name": "POST /cart", "spanKind": "server"},
            {"name": "refresh", "spanKind": "internal"},
        ], "total": 2, "limit": 0, "offset": 0, "errors": null})
    );
    let (_, body) = f
        .get("/api/operations?service=frontend&spanKind=client")
        .await;
    assert_eq!(
        body,
        json!({"data": [{"name": "POST /cart", "spanKind": "client"}],
               "total": 1, "limit": 0, "offset": 0, "errors": null})
    );

    let (status, body) = f.get("/api/operations?spanKind=server").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request(
            "invalid parameter 'service': is required: the service whose operations to list"
        )
    );
    let (status, body) = f.get("/api/operations?service=cart&spanKind=sever").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request("invalid parameter 'spanKind': \"sever\" is not a span kind; expected server, client, producer, consumer, internal or unspecified")
    );
    f.close().await;
}

#[tokio::test]
async fn search_by_each_parameter() {
    let f = Fixture::new().await;
    let a = || TRACE_A.to_owned();
    let b = || TRACE_B.to_owned();

    // Most recent first: B's span starts ten minutes after A's.
    assert_eq!(f.search("service=cart").await, vec![b(), a()]);
    assert_eq!(f.search("").await, vec![b(), a()]);
    assert_eq!(f.search("service=frontend").await, vec![a()]);
    assert_eq!(f.search("service=nobody").await, Vec::<String>::new());
    assert_eq!(f.search("service=cart&operation=refresh").await, vec![b()]);
    assert_eq!(
        f.search(&format!("operation={}", enc("GET /checkout")))
            .await,
        vec![a()]
    );

    // Tags: JSON object, repeated tag=k:v, resource attributes, error status, span kind.
    let tags = enc(r#"{"http.response.status_code":"500"}"#);
    assert_eq!(f.search(&format!("tags={tags}")).await, vec![a()]);
    let tags = enc(r#"{"http.response.status_code":500,"http.request.method":"GET"}"#);
    assert_eq!(f.search(&format!("tags={tags}")).await, vec![a()]);
    let tags = enc(r#"{"http.response.status_code":"404"}"#);
    assert_eq!(
        f.search(&format!("tags={tags}")).await,
        Vec::<String>::new()
    );
    assert_eq!(f.search("tag=tenant:acme").await, vec![b()]);
    assert_eq!(
        f.search("tag=tenant:acme&tag=retry:true").await,
        Vec::<String>::new()
    );
    assert_eq!(f.search("tag=retry:true&tag=ratio:0.5").await, vec![a()]);
    assert_eq!(f.search("tag=error:true").await, vec![a()]);
    assert_eq!(f.search("tag=host.name:cart-1").await, vec![b(), a()]);
    assert_eq!(f.search("tag=span.kind:internal").await, vec![b()]);
    assert_eq!(
        f.search("service=cart&tag=span.kind:server").await,
        vec![a()]
    );

    // Durations in Go syntax.
    assert_eq!(f.search("minDuration=1s").await, vec![b()]);
    assert_eq!(f.search("minDuration=1.5s&maxDuration=2s").await, vec![b()]);
    assert_eq!(f.search("maxDuration=35ms").await, vec![a()]);
    assert_eq!(
        f.search(&format!("minDuration=41ms&maxDuration={}", enc("50000µs")))
            .await,
        vec![a()]
    );
    assert_eq!(f.search("minDuration=1h30m").await, Vec::<String>::new());

    // Time window: start/end in µs, lookback relative to end.
    let (s, e) = (T0_US + 5 * 60_000_000, T0_US + 20 * 60_000_000);
    assert_eq!(f.search(&format!("start={s}&end={e}")).await, vec![b()]);
    assert_eq!(f.search(&format!("end={s}")).await, vec![a()]);
    assert_eq!(f.search("service=cart&lookback=55m").await, vec![b()]);
    assert_eq!(f.search("service=cart&lookback=2d").await, vec![b(), a()]);
    assert_eq!(
        f.search(&format!("service=cart&lookback=custom&start={s}"))
            .await,
        vec![b()]
    );

    // Limit keeps the most recent.
    assert_eq!(f.search("service=cart&limit=1").await, vec![b()]);
    assert_eq!(f.search("service=cart&limit=100000").await, vec![b(), a()]);
    f.close().await;
}

#[tokio::test]
async fn search_returns_full_traces() {
    let f = Fixture::new().await;
    let (status, body) = f.get("/api/traces?service=frontend").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": [expected_trace_a()], "total": 1, "limit": 0, "offset": 0, "errors": null})
    );
    f.close().await;
}

#[tokio::test]
async fn search_by_trace_ids() {
    let f = Fixture::new().await;
    let (status, body) = f
        .get(&format!(
            "/api/traces?traceID={TRACE_B}&traceID=ffff&traceID={TRACE_A}&traceID={TRACE_B}&traceID=FFFF"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["traceID"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![TRACE_B, TRACE_A]);
    assert_eq!(body["data"][1], expected_trace_a());
    assert_eq!(body["total"], json!(2));
    assert_eq!(
        body["errors"],
        json!([{"msg": "trace not found", "traceID": "0000000000000000000000000000ffff"}])
    );
    f.close().await;
}

#[tokio::test]
async fn search_rejects_each_bad_parameter() {
    let f = Fixture::new().await;
    let cases: Vec<(String, &str)> = vec![
        (
            "minDuration=abc".into(),
            "invalid parameter 'minDuration': \"abc\" is not a duration; expected a Go duration such as 250ms, 1.5s or 1h30m (units ns, us, µs, ms, s, m, h)",
        ),
        (
            "maxDuration=5".into(),
            "invalid parameter 'maxDuration': \"5\" has a number without a unit; expected a Go duration such as 250ms, 1.5s or 1h30m (units ns, us, µs, ms, s, m, h)",
        ),
        (
            "minDuration=2s&maxDuration=1s".into(),
            "invalid parameter 'maxDuration': must not be less than 'minDuration'",
        ),
        (
            format!("tags={}", enc("{bad")),
            "invalid parameter 'tags': expected a JSON object of string values such as {\"http.status_code\":\"500\"}, but it is not JSON: key must be a string at line 1 column 2",
        ),
        (
            format!("tags={}", enc(r#"["a"]"#)),
            "invalid parameter 'tags': expected a JSON object of string values such as {\"http.status_code\":\"500\"}, got \"[\\\"a\\\"]\"",
        ),
        (
            "tag=novalue".into(),
            "invalid parameter 'tag': \"novalue\" is not a tag condition; expected key:value",
        ),
        (
            "limit=-1".into(),
            "invalid parameter 'limit': \"-1\" is negative; expected a whole number of traces, at most 1500",
        ),
        (
            "limit=lots".into(),
            "invalid parameter 'limit': \"lots\" is not a number; expected a whole number of traces, at most 1500",
        ),
        (
            "start=20&end=10".into(),
            "invalid parameter 'start': start (20 µs) is after end (10 µs); expected start <= end",
        ),
        (
            "start=yesterday".into(),
            "invalid parameter 'start': \"yesterday\" is not a whole number of microseconds since the Unix epoch",
        ),
        (
            "end=1.5".into(),
            "invalid parameter 'end': \"1.5\" is not a whole number of microseconds since the Unix epoch",
        ),
        (
            "lookback=forever".into(),
            "invalid parameter 'lookback': \"forever\" is not a lookback; expected a duration such as 1h, 2d or 1w, or \"custom\"",
        ),
        (
            "traceID=xyz".into(),
            "invalid parameter 'traceID': \"xyz\" is not a trace ID (ID is not hexadecimal: \"xyz\"); expected 1 to 32 hexadecimal digits",
        ),
    ];
    for (query, msg) in cases {
        let (status, body) = f.get(&format!("/api/traces?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body, bad_request(msg), "{query}");
    }
    f.close().await;
}

#[tokio::test]
async fn dependencies() {
    let f = Fixture::new().await;
    let end_ms = (T0 + HOUR) / MS;
    let edge = json!({"data": [{"parent": "frontend", "child": "cart", "callCount": 1}],
                      "total": 1, "limit": 0, "offset": 0, "errors": null});
    let empty = json!({"data": [], "total": 0, "limit": 0, "offset": 0, "errors": null});
    let lookback_ms = 2 * HOUR / MS;
    let (status, body) = f
        .get(&format!(
            "/api/dependencies?endTs={end_ms}&lookback={lookback_ms}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, edge);
    // Defaults: now (the test clock) and a day back.
    assert_eq!(f.get("/api/dependencies").await.1, edge);
    assert_eq!(f.get("/api/dependencies?service=frontend").await.1, edge);
    assert_eq!(f.get("/api/dependencies?service=nobody").await.1, empty);
    // A window that ends before the trace started sees nothing.
    let before = T0 / MS - 1;
    assert_eq!(
        f.get(&format!("/api/dependencies?endTs={before}&lookback=60000"))
            .await
            .1,
        empty
    );
    let (status, body) = f.get("/api/dependencies?endTs=now").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request("invalid parameter 'endTs': \"now\" is not a whole number of milliseconds since the Unix epoch")
    );
    let (status, body) = f.get("/api/dependencies?lookback=1h").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_request("invalid parameter 'lookback': \"1h\" is not a whole number of milliseconds")
    );
    f.close().await;
}

#[tokio::test]
async fn trace_warnings_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(&dir, 2).await;
    append(&store, fixture()).await;
    let app = router(QueryState::new(Arc::clone(&store)).with_clock(test_now));
    let f = Fixture {
        app,
        store,
        _dir: dir,
    };
    let (status, body) = f.get(&format!("/api/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK);
    let trace = &body["data"][0];
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(2));
    let warnings = trace["warnings"].as_array().expect("warnings is a list");
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].as_str().is_some_and(|w| w.contains("dropped")),
        "{warnings:?}"
    );
    f.close().await;
}

/// Waits until the store has flushed `blocks` heads and holds nothing in its head, or panics at
/// the deadline.
async fn wait_for_flush(store: &Store, blocks: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = store.stats().await;
        if stats.blocks_flushed >= blocks && stats.flushing_heads == 0 && stats.head_spans == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "store did not flush {blocks} blocks in time: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn trace_split_across_blocks_comes_back_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Every append fills the head, so each batch below becomes its own block.
    let store = open_store_cutting_at(&dir, 1000, 1).await;
    let spans = fixture();
    for (i, span) in spans.iter().enumerate() {
        append(&store, vec![span.clone()]).await;
        if i < 2 {
            wait_for_flush(&store, i as u64 + 1).await;
        }
    }
    let app = router(QueryState::new(Arc::clone(&store)).with_clock(test_now));
    let f = Fixture {
        app,
        store,
        _dir: dir,
    };
    let (status, body) = f.get(&format!("/api/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"data": [expected_trace_a()], "total": 1, "limit": 0, "offset": 0, "errors": null})
    );
    assert_eq!(f.search("service=cart").await, vec![TRACE_B, TRACE_A]);
    assert_eq!(
        f.get("/api/services").await.1["data"],
        json!(["cart", "frontend"])
    );
    let (_, v3) = f.get(&format!("/api/v3/traces/{TRACE_A}")).await;
    assert_eq!(
        v3["result"]["resourceSpans"].as_array().map(Vec::len),
        Some(2)
    );
    f.close().await;
}

fn attr(key: &str, value: Value) -> Value {
    json!({"key": key, "value": value})
}

#[tokio::test]
async fn v3_trace_by_id_is_otlp_json_grouped_by_resource() {
    let f = Fixture::new().await;
    let (status, body) = f.get(&format!("/api/v3/traces/{TRACE_A}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resource_spans = body["result"]["resourceSpans"]
        .as_array()
        .expect("resourceSpans");
    assert_eq!(resource_spans.len(), 2);

    let frontend = &resource_spans[0];
    assert_eq!(
        frontend["resource"]["attributes"],
        json!([
            attr("service.name", json!({"stringValue": "frontend"})),
            attr("host.name", json!({"stringValue": "web-1"})),
            attr("process.pid", json!({"intValue": "4242"})),
        ])
    );
    let scope_spans = frontend["scopeSpans"].as_array().expect("scopeSpans");
    assert_eq!(scope_spans.len(), 1);
    assert_eq!(scope_spans[0]["scope"]["name"], json!("frontend-lib"));
    assert_eq!(scope_spans[0]["scope"]["version"], json!("1.0.0"));
    let spans = scope_spans[0]["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 2);
    let root = &spans[0];
    assert_eq!(root["traceId"], json!(TRACE_A));
    assert_eq!(root["spanId"], json!("0101010101010101"));
    assert_eq!(root["parentSpanId"], json!(""));
    assert_eq!(root["name"], json!("GET /checkout"));
    assert_eq!(root["kind"], json!(2));
    assert_eq!(root["flags"], json!(0x301));
    assert_eq!(root["startTimeUnixNano"], json!(T0.to_string()));
    assert_eq!(root["endTimeUnixNano"], json!((T0 + 50 * MS).to_string()));
    assert_eq!(
        root["attributes"],
        json!([
            attr("http.request.method", json!({"stringValue": "GET"})),
            attr("http.response.status_code", json!({"intValue": "500"})),
        ])
    );
    assert_eq!(
        root["status"],
        json!({"message": "upstream failed", "code": 2})
    );
    assert_eq!(root["events"][0]["name"], json!("exception"));
    assert_eq!(
        root["events"][0]["timeUnixNano"],
        json!((T0 + 40 * MS).to_string())
    );
    // The client span, every field as OTLP JSON writes it.
    assert_eq!(
        spans[1],
        json!({
            "traceId": TRACE_A,
            "spanId": "0202020202020202",
            "parentSpanId": "0101010101010101",
            "traceState": "",
            "flags": 1,
            "name": "POST /cart",
            "kind": 3,
            "startTimeUnixNano": (T0 + 5 * MS).to_string(),
            "endTimeUnixNano": (T0 + 45 * MS).to_string(),
            "attributes": [
                attr("retry", json!({"boolValue": true})),
                attr("ratio", json!({"doubleValue": 0.5})),
                attr("payload", json!({"bytesValue": "AQID"})),
            ],
            "droppedAttributesCount": 0,
            "events": [],
            "droppedEventsCount": 0,
            "links": [{
                "traceId": TRACE_B,
                "spanId": "0404040404040404",
                "traceState": "",
                "attributes": [],
                "droppedAttributesCount": 0,
                "flags": 0,
            }],
            "droppedLinksCount": 0,
            "status": null,
        })
    );

    let cart = &resource_spans[1];
    assert_eq!(
        cart["resource"]["attributes"][0],
        attr("service.name", json!({"stringValue": "cart"}))
    );
    let cart_span = &cart["scopeSpans"][0]["spans"][0];
    assert_eq!(cart_span["spanId"], json!("0303030303030303"));
    assert_eq!(cart_span["parentSpanId"], json!("0202020202020202"));
    assert_eq!(cart_span["status"]["code"], json!(1));
    f.close().await;
}

#[tokio::test]
async fn v3_search_services_operations() {
    let f = Fixture::new().await;
    let window = format!(
        "query.start_time_min={}&query.start_time_max={}",
        enc("2023-11-14T22:00:00Z"),
        enc("2023-11-14T23:59:59.999+00:00")
    );
    let first_trace_ids = |body: &Value| -> Vec<String> {
        body["result"]["resourceSpans"]
            .as_array()
            .expect("resourceSpans")
            .iter()
            .map(|rs| {
                rs["scopeSpans"][0]["spans"][0]["traceId"]
                    .as_str()
                    .expect("traceId")
                    .to_owned()
            })
            .collect()
    };
    let (status, body) = f
        .get(&format!("/api/v3/traces?query.service_name=cart&{window}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // B (one resource) first, then A's two resources.
    assert_eq!(first_trace_ids(&body), vec![TRACE_B, TRACE_A, TRACE_A]);

    let attributes = enc(r#"{"tenant":"acme"}"#);
    let (_, body) = f
        .get(&format!(
            "/api/v3/traces?{window}&query.attributes={attributes}"
        ))
        .await;
    assert_eq!(first_trace_ids(&body), vec![TRACE_B]);
    let (_, body) = f
        .get(&format!(
            "/api/v3/traces?{window}&query.operationName=POST%20%2Fcart&query.duration_max=35ms"
        ))
        .await;
    assert_eq!(first_trace_ids(&body), vec![TRACE_A, TRACE_A]);
    let (_, body) = f
        .get(&format!(
            "/api/v3/traces?{window}&query.duration_min=1s&query.search_depth=5"
        ))
        .await;
    assert_eq!(first_trace_ids(&body), vec![TRACE_B]);
    let (_, body) = f
        .get(&format!("/api/v3/traces?{window}&query.num_traces=1"))
        .await;
    assert_eq!(first_trace_ids(&body), vec![TRACE_B]);
    let (status, body) = f
        .get(&format!(
            "/api/v3/traces?{window}&query.service_name=nobody"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"result": {"resourceSpans": []}}));

    let (status, body) = f.get("/api/v3/services").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"services": ["cart", "frontend"]}));
    let (_, body) = f.get("/api/v3/operations?service=cart").await;
    assert_eq!(
        body,
        json!({"operations": [
            {"name": "POST /cart", "spanKind": "server"},
            {"name": "refresh", "spanKind": "internal"},
        ]})
    );
    let (_, body) = f
        .get("/api/v3/operations?service=cart&span_kind=internal")
        .await;
    assert_eq!(
        body,
        json!({"operations": [{"name": "refresh", "spanKind": "internal"}]})
    );
    let (_, body) = f.get("/api/v3/operations").await;
    assert_eq!(
        body,
        json!({"operations": [
            {"name": "GET /checkout", "spanKind": "server"},
            {"name": "POST /cart", "spanKind": "server"},
            {"name": "POST /cart", "spanKind": "client"},
            {"name": "refresh", "spanKind": "internal"},
        ]})
    );
    f.close().await;
}

#[tokio::test]
async fn v3_errors() {
    let f = Fixture::new().await;
    let gateway =
        |code: u16, message: &str| json!({"error": {"httpCode": code, "message": message}});
    let (status, body) = f.get("/api/v3/traces/ffff").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, gateway(404, "trace not found"));
    let (status, body) = f.get("/api/v3/traces/not-hex").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'trace_id': \"not-hex\" is not a trace ID (ID is not hexadecimal: \"not-hex\"); expected 1 to 32 hexadecimal digits")
    );
    let (status, body) = f.get("/api/v3/traces?query.service_name=cart").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'query.start_time_min': query.start_time_min and query.start_time_max are both required, as RFC 3339 times such as 2024-05-01T12:00:00Z")
    );
    let (status, body) = f
        .get("/api/v3/traces?query.start_time_min=2023-11-14T23:00:00Z&query.start_time_max=2023-11-14T22:00:00Z")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'query.start_time_min': query.start_time_min must be before query.start_time_max")
    );
    let (status, body) = f
        .get("/api/v3/traces?query.start_time_min=2023-11-14T22:00:00Z&query.start_time_max=2023-11-14T23:00:00Z&query.duration_min=fast")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'query.duration_min': \"fast\" is not a duration; expected a Go duration such as 250ms, 1.5s or 1h30m (units ns, us, µs, ms, s, m, h)")
    );
    let (status, body) = f.get("/api/v3/operations?span_kind=everything").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        gateway(400, "invalid parameter 'span_kind': \"everything\" is not a span kind; expected server, client, producer, consumer, internal or unspecified")
    );
    f.close().await;
}
