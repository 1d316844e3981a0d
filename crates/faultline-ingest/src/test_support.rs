//! Shared fixtures for the receiver tests: a real store in a temporary directory, servers on
//! ephemeral ports, and requests built from a few knobs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use faultline_model::otlp::spans_to_otlp;
use faultline_model::TraceId;
use faultline_storage::{Store, StoreConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value::Value, AnyValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use serde_json::json;

use crate::{grpc_service, http_router, IngestConfig, IngestState};

/// A store on a temporary directory and in-memory blocks, plus the directory guard.
pub(crate) struct TestStore {
    pub store: Arc<Store>,
    _dir: tempfile::TempDir,
}

pub(crate) async fn test_store(memory_budget_bytes: usize) -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(StoreConfig {
        data_dir: dir.path().to_path_buf(),
        block_store: Arc::new(object_store::memory::InMemory::new()),
        max_head_bytes: 64 * 1024 * 1024,
        max_head_age: Duration::from_secs(3600),
        retention: Duration::from_secs(24 * 3600),
        max_spans_per_trace: 10_000,
        memory_budget_bytes,
        maintenance_interval: Duration::from_secs(3600),
    })
    .await
    .expect("open store");
    TestStore { store, _dir: dir }
}

pub(crate) fn state(store: &TestStore, config: IngestConfig) -> IngestState {
    IngestState::new(Arc::clone(&store.store), config).expect("valid config")
}

pub(crate) async fn serve_http(state: IngestState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, http_router(state))
            .await
            .expect("http server");
    });
    addr
}

pub(crate) async fn serve_grpc(state: IngestState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(grpc_service(state))
            .serve_with_incoming(incoming)
            .await
            .expect("grpc server");
    });
    addr
}

pub(crate) fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub(crate) fn trace_id(seed: u8) -> Vec<u8> {
    let mut id = vec![0xab; 16];
    id[15] = seed;
    id
}

/// A span of trace `seed` with a server kind, an error status, typed attributes, an event and
/// a link: every field the receivers must carry through.
pub(crate) fn span(seed: u8, index: u8, parent: Option<u8>) -> Span {
    Span {
        trace_id: trace_id(seed),
        span_id: vec![seed, index, 1, 2, 3, 4, 5, 6],
        parent_span_id: parent
            .map(|p| vec![seed, p, 1, 2, 3, 4, 5, 6])
            .unwrap_or_default(),
        trace_state: "vendor=1".into(),
        flags: 1,
        name: format!("GET /item/{index}"),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(index) * 1_000,
        end_time_unix_nano: 1_700_000_000_000_500_000 + u64::from(index) * 1_000,
        attributes: vec![
            kv("http.request.method", Value::StringValue("GET".into())),
            kv("http.response.status_code", Value::IntValue(503)),
            kv("retry", Value::BoolValue(true)),
            kv("ratio", Value::DoubleValue(0.25)),
        ],
        dropped_attributes_count: 0,
        events: vec![span::Event {
            time_unix_nano: 1_700_000_000_000_100_000,
            name: "exception".into(),
            attributes: vec![kv("exception.message", Value::StringValue("boom".into()))],
            dropped_attributes_count: 0,
        }],
        dropped_events_count: 0,
        links: vec![span::Link {
            trace_id: trace_id(seed.wrapping_add(100)),
            span_id: vec![9; 8],
            trace_state: String::new(),
            attributes: vec![],
            dropped_attributes_count: 0,
            flags: 0,
        }],
        dropped_links_count: 0,
        status: Some(Status {
            message: "upstream unavailable".into(),
            code: 2,
        }),
    }
}

/// A request holding `spans`, all from service `checkout`.
pub(crate) fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", Value::StringValue("checkout".into())),
                    kv("host.name", Value::StringValue("web-1".into())),
                ],
                dropped_attributes_count: 0,
                entity_refs: vec![],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.test".into(),
                    version: "1.2.3".into(),
                    attributes: vec![],
                    dropped_attributes_count: 0,
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
        }],
    }
}

/// A three-span trace: a root and two children.
pub(crate) fn trace_request(seed: u8) -> ExportTraceServiceRequest {
    request(vec![
        span(seed, 1, None),
        span(seed, 2, Some(1)),
        span(seed, 3, Some(1)),
    ])
}

/// Reads trace `seed` back from the store and checks it is exactly `expected` (one resource,
/// one scope), compared field by field through the OTLP form.
pub(crate) async fn assert_stored(store: &Store, seed: u8, expected: &ExportTraceServiceRequest) {
    let id = TraceId::from_bytes(&trace_id(seed)).expect("valid id");
    let trace = store
        .trace(id)
        .await
        .expect("query store")
        .expect("trace is stored");
    let mut stored = spans_to_otlp(&trace.spans);
    for rs in &mut stored {
        for ss in &mut rs.scope_spans {
            ss.spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        }
    }
    let mut expected = expected.resource_spans.clone();
    for rs in &mut expected {
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|s| s.trace_id == trace_id(seed));
            ss.spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
        }
    }
    assert_eq!(stored, expected);
    let root = trace
        .spans
        .iter()
        .find(|s| s.parent_span_id.is_none())
        .expect("root span");
    assert_eq!(root.service_name(), "checkout");
    assert_eq!(root.name, "GET /item/1");
}

/// The OTLP/JSON form of `request`, written by hand the way the spec and the OpenTelemetry
/// SDKs write it rather than by the serde derives under test.
pub(crate) fn otlp_json(request: &ExportTraceServiceRequest) -> serde_json::Value {
    fn value(v: &Value) -> serde_json::Value {
        match v {
            Value::StringValue(s) => json!({ "stringValue": s }),
            Value::BoolValue(b) => json!({ "boolValue": b }),
            // 64-bit integers are strings in OTLP/JSON.
            Value::IntValue(i) => json!({ "intValue": i.to_string() }),
            Value::DoubleValue(d) => json!({ "doubleValue": d }),
            other => panic!("fixture uses no {other:?}"),
        }
    }
    fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> serde_json::Value {
        kvs.iter()
            .map(|kv| {
                let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                json!({ "key": kv.key, "value": v.map(value).unwrap_or(json!({})) })
            })
            .collect()
    }
    let resource_spans: Vec<serde_json::Value> = request
        .resource_spans
        .iter()
        .map(|rs| {
            let resource = rs.resource.as_ref().expect("fixture has a resource");
            let scope_spans: Vec<serde_json::Value> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let scope = ss.scope.as_ref().expect("fixture has a scope");
                    let spans: Vec<serde_json::Value> = ss
                        .spans
                        .iter()
                        .map(|s| {
                            let status = s.status.as_ref().expect("fixture has a status");
                            json!({
                                "traceId": hex(&s.trace_id),
                                "spanId": hex(&s.span_id),
                                "parentSpanId": hex(&s.parent_span_id),
                                "traceState": s.trace_state,
                                "flags": s.flags,
                                "name": s.name,
                                "kind": s.kind,
                                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                                "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                                "attributes": attrs(&s.attributes),
                                "events": s.events.iter().map(|e| json!({
                                    "timeUnixNano": e.time_unix_nano.to_string(),
                                    "name": e.name,
                                    "attributes": attrs(&e.attributes),
                                })).collect::<Vec<_>>(),
                                "links": s.links.iter().map(|l| json!({
                                    "traceId": hex(&l.trace_id),
                                    "spanId": hex(&l.span_id),
                                })).collect::<Vec<_>>(),
                                "status": { "message": status.message, "code": status.code },
                            })
                        })
                        .collect();
                    json!({
                        "scope": { "name": scope.name, "version": scope.version },
                        "spans": spans,
                    })
                })
                .collect();
            json!({
                "resource": { "attributes": attrs(&resource.attributes) },
                "scopeSpans": scope_spans,
                "schemaUrl": rs.schema_url,
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
