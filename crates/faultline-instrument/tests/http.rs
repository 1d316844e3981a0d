//! An instrumented axum app calling an instrumented downstream over reqwest, with spans
//! collected by the SDK's in-memory exporter.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use faultline_instrument::processor::BatchSettings;
use faultline_instrument::propagation::Propagation;
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::Telemetry;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use reqwest_middleware::ClientWithMiddleware;

fn telemetry(service: &str) -> (Telemetry, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let telemetry = Telemetry::builder(service)
        .sampler(SamplerConfig::ParentBased(Box::new(
            SamplerConfig::AlwaysOn,
        )))
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

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

#[derive(Clone)]
struct AppState {
    client: ClientWithMiddleware,
    downstream: String,
}

async fn order(State(state): State<AppState>, Path(id): Path<u32>) -> (StatusCode, String) {
    let url = format!("{}/stock/{id}", state.downstream);
    match state.client.get(url).send().await {
        Ok(response) => (response.status(), format!("order {id}")),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()),
    }
}

async fn panics() -> &'static str {
    panic!("inventory exploded")
}

async fn fails() -> StatusCode {
    StatusCode::SERVICE_UNAVAILABLE
}

struct Fixture {
    frontend: SocketAddr,
    front_spans: InMemorySpanExporter,
    back_spans: InMemorySpanExporter,
    front: Telemetry,
    back: Telemetry,
}

impl Fixture {
    async fn start(downstream_override: Option<String>) -> Fixture {
        let (back, back_spans) = telemetry("inventory");
        let backend = serve(
            Router::new()
                .route(
                    "/stock/{id}",
                    get(|Path(id): Path<u32>| async move {
                        if id == 404 {
                            StatusCode::NOT_FOUND
                        } else {
                            StatusCode::OK
                        }
                    }),
                )
                .layer(back.server_layer()),
        )
        .await;
        let (front, front_spans) = telemetry("orders");
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(front.reqwest_middleware())
            .build();
        let state = AppState {
            client,
            downstream: downstream_override.unwrap_or_else(|| format!("http://{backend}")),
        };
        let frontend = serve(
            Router::new()
                .route("/orders/{id}", get(order))
                .route("/panic", get(panics))
                .route("/fail", get(fails))
                .with_state(state)
                .layer(front.server_layer()),
        )
        .await;
        Fixture {
            frontend,
            front_spans,
            back_spans,
            front,
            back,
        }
    }

    fn spans(&self) -> (Vec<SpanData>, Vec<SpanData>) {
        self.front.force_flush().expect("flush");
        self.back.force_flush().expect("flush");
        (
            self.front_spans.get_finished_spans().expect("spans"),
            self.back_spans.get_finished_spans().expect("spans"),
        )
    }
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.to_string())
}

fn only(spans: &[SpanData], kind: SpanKind) -> &SpanData {
    let matching: Vec<_> = spans.iter().filter(|s| s.span_kind == kind).collect();
    assert_eq!(matching.len(), 1, "spans of kind {kind:?}: {spans:#?}");
    matching[0]
}

#[tokio::test]
async fn traces_a_call_across_two_services() {
    let fixture = Fixture::start(None).await;
    let response = reqwest::Client::new()
        .get(format!("http://{}/orders/42?secret=1", fixture.frontend))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("user-agent", "integration-test/1.0")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let trace_id_header = response
        .headers()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let traceresponse = response
        .headers()
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("traceresponse header");

    let (front, back) = fixture.spans();
    let server = only(&front, SpanKind::Server);
    let client = only(&front, SpanKind::Client);
    let downstream = only(&back, SpanKind::Server);

    assert_eq!(server.name, "GET /orders/{id}");
    assert_eq!(
        server.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(server.parent_span_is_remote);
    assert_eq!(
        trace_id_header.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        traceresponse,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            server.span_context.span_id()
        )
    );
    assert_eq!(
        attr_str(server, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attr_str(server, "http.route").as_deref(),
        Some("/orders/{id}")
    );
    assert_eq!(attr_str(server, "url.path").as_deref(), Some("/orders/42"));
    assert_eq!(attr_str(server, "url.scheme").as_deref(), Some("http"));
    assert_eq!(
        attr_str(server, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr(server, "server.port"),
        Some(&Value::I64(i64::from(fixture.frontend.port())))
    );
    assert_eq!(
        attr_str(server, "client.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr_str(server, "user_agent.original").as_deref(),
        Some("integration-test/1.0")
    );
    assert_eq!(
        attr_str(server, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        attr(server, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(
        attr(server, "http.response.body.size"),
        Some(&Value::I64(8))
    );
    assert_eq!(server.status, Status::Unset);

    assert_eq!(client.name, "GET");
    assert_eq!(client.parent_span_id, server.span_context.span_id());
    assert_eq!(
        client.span_context.trace_id(),
        server.span_context.trace_id()
    );
    assert_eq!(
        attr_str(client, "peer.service").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr_str(client, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    let url_full = attr_str(client, "url.full").expect("url.full");
    assert!(url_full.ends_with("/stock/42"), "{url_full}");
    assert_eq!(
        attr(client, "http.response.status_code"),
        Some(&Value::I64(200))
    );

    assert_eq!(downstream.name, "GET /stock/{id}");
    assert_eq!(downstream.parent_span_id, client.span_context.span_id());
    assert_eq!(
        downstream.span_context.trace_id(),
        server.span_context.trace_id()
    );
}

#[tokio::test]
async fn panic_becomes_a_recorded_500() {
    let fixture = Fixture::start(None).await;
    let response = reqwest::get(format!("http://{}/panic", fixture.frontend))
        .await
        .expect("request");
    assert_eq!(response.status(), 500);
    assert!(response.headers().contains_key("x-trace-id"));
    let (front, _) = fixture.spans();
    let server = only(&front, SpanKind::Server);
    assert_eq!(server.name, "GET /panic");
    assert!(
        matches!(&server.status, Status::Error { description } if description.contains("inventory exploded"))
    );
    let event = server
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("exception event");
    assert!(event
        .attributes
        .iter()
        .any(|kv| kv.key.as_str() == "exception.message"
            && kv.value.as_str() == "inventory exploded"));
    assert_eq!(
        attr(server, "http.response.status_code"),
        Some(&Value::I64(500))
    );
    // A new root: no context arrived.
    assert_eq!(server.parent_span_id, opentelemetry::trace::SpanId::INVALID);

    // The server keeps serving after the panic.
    let again = reqwest::get(format!("http://{}/fail", fixture.frontend))
        .await
        .expect("request");
    assert_eq!(again.status(), 503);
}

#[tokio::test]
async fn server_errors_and_client_errors_are_marked() {
    let fixture = Fixture::start(None).await;
    let fail = reqwest::get(format!("http://{}/fail", fixture.frontend))
        .await
        .expect("request");
    assert_eq!(fail.status(), 503);
    let not_found = reqwest::get(format!("http://{}/orders/404", fixture.frontend))
        .await
        .expect("request");
    assert_eq!(not_found.status(), 404);
    let unknown = reqwest::get(format!("http://{}/nowhere", fixture.frontend))
        .await
        .expect("request");
    assert_eq!(unknown.status(), 404);

    let (front, back) = fixture.spans();
    let failed = front
        .iter()
        .find(|s| s.name == "GET /fail")
        .expect("fail span");
    assert_eq!(failed.status, Status::error(""));
    assert_eq!(attr_str(failed, "error.type").as_deref(), Some("503"));

    // 404 is an error for the client but not for either server.
    let client = only(&front, SpanKind::Client);
    assert_eq!(client.status, Status::error(""));
    assert_eq!(attr_str(client, "error.type").as_deref(), Some("404"));
    let order = front
        .iter()
        .find(|s| s.name == "GET /orders/{id}")
        .expect("order span");
    assert_eq!(order.status, Status::Unset);
    assert_eq!(only(&back, SpanKind::Server).status, Status::Unset);

    // Unmatched routes have no template, so the span is named by the method alone.
    assert!(front
        .iter()
        .any(|s| s.name == "GET" && s.span_kind == SpanKind::Server));
}

#[tokio::test]
async fn transport_errors_mark_the_client_span() {
    // Bind and drop a listener to get a port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let fixture = Fixture::start(Some(format!("http://{closed}"))).await;
    let response = reqwest::get(format!("http://{}/orders/1", fixture.frontend))
        .await
        .expect("request");
    assert_eq!(response.status(), 502);
    let (front, _) = fixture.spans();
    let client = only(&front, SpanKind::Client);
    assert!(matches!(client.status, Status::Error { .. }));
    assert_eq!(attr_str(client, "error.type").as_deref(), Some("connect"));
}

#[tokio::test]
async fn b3_and_jaeger_contexts_are_continued() {
    let fixture = Fixture::start(None).await;
    let cases = [
        (
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
            "80f198ee56343ba864fe8b2a57d3eff7",
            "e457b5a2e4d86bd1",
        ),
        (
            "x-b3-traceid",
            "463ac35c9f6413ad48485a3953bb6124",
            "463ac35c9f6413ad48485a3953bb6124",
            "0020000000000001",
        ),
        (
            "uber-trace-id",
            "a3ce929d0e0e4736:2:0:1",
            "0000000000000000a3ce929d0e0e4736",
            "0000000000000002",
        ),
    ];
    for (header, value, trace, parent) in cases {
        let mut request = reqwest::Client::new()
            .get(format!("http://{}/fail", fixture.frontend))
            .header(header, value);
        if header == "x-b3-traceid" {
            request = request
                .header("x-b3-spanid", "0020000000000001")
                .header("x-b3-sampled", "1");
        }
        let response = request.send().await.expect("request");
        assert_eq!(
            response
                .headers()
                .get("x-trace-id")
                .and_then(|v| v.to_str().ok()),
            Some(trace),
            "{header}"
        );
        let (front, _) = fixture.spans();
        let span = front
            .iter()
            .find(|s| s.span_context.trace_id().to_string() == trace)
            .expect("span in the propagated trace");
        assert_eq!(span.parent_span_id.to_string(), parent);
    }
}

#[tokio::test]
async fn hostile_headers_start_a_new_root() {
    let fixture = Fixture::start(None).await;
    let response = reqwest::Client::new()
        .get(format!("http://{}/fail", fixture.frontend))
        .header("traceparent", "00-zzzz-yyyy-01")
        .header("b3", "-----")
        .header("uber-trace-id", ":::::::")
        .header("host", "[::1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    let (front, _) = fixture.spans();
    let server = only(&front, SpanKind::Server);
    assert_eq!(server.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert_eq!(attr_str(server, "server.address"), None);
}

#[tokio::test]
async fn response_headers_are_configurable() {
    use tower::ServiceExt;
    let (telemetry, _spans) = telemetry("orders");
    let renamed = Router::new().route("/", get(|| async { "ok" })).layer(
        telemetry
            .server_layer()
            .trace_id_header(Some(http::HeaderName::from_static("x-request-trace")))
            .traceresponse(false),
    );
    let response = renamed
        .oneshot(
            http::Request::get("/")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert!(response.headers().contains_key("x-request-trace"));
    assert!(!response.headers().contains_key("x-trace-id"));
    assert!(!response.headers().contains_key("traceresponse"));
}

/// The layer applied with `Layer::layer` around a whole router (which spares axum wrapping
/// every route again) traces every request, but sees it before the router matches: the span is
/// named by the method alone and has no `http.route`, and everything else is as usual.
#[tokio::test]
async fn around_a_whole_router_names_spans_by_method() {
    use tower::{Layer, ServiceExt};
    let (telemetry, spans) = telemetry("orders");
    let router = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route("/panics", get(panics));
    let app = telemetry.server_layer().layer(router);
    // `axum::serve` takes it as docs/instrumenting.md shows (built, not awaited).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let make_service =
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(
            app.clone(),
        );
    drop(axum::serve(listener, make_service));
    let response = app
        .clone()
        .oneshot(
            http::Request::get("/orders/42")
                .header("host", "shop:8080")
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-trace-id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let panicked = app
        .oneshot(
            http::Request::get("/panics")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
    telemetry.force_flush().expect("flush");
    let spans = spans.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let order = &spans[0];
    assert_eq!(order.name, "GET");
    assert_eq!(order.span_kind, SpanKind::Server);
    assert_eq!(attr(order, "http.route"), None);
    assert_eq!(attr_str(order, "url.path").as_deref(), Some("/orders/42"));
    assert_eq!(attr_str(order, "server.address").as_deref(), Some("shop"));
    assert_eq!(
        attr(order, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(
        order.span_context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(order.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(spans[1].events.iter().any(|e| e.name == "exception"));
}

/// A router nested as a service under two prefixes shares its traced routes, and axum builds
/// each request's `MatchedPath` (`/a/orders/{id}`, `/b/orders/{id}`) anew: every span must
/// still carry its own route, not the one first seen.
#[tokio::test]
async fn routes_nested_under_two_prefixes_keep_their_own_names() {
    use tower::ServiceExt;
    let (telemetry, spans) = telemetry("orders");
    let inner = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(telemetry.server_layer());
    let app = Router::new()
        .nest_service("/a", inner.clone())
        .nest_service("/b", inner);
    for prefix in ["a", "b", "a", "b", "b", "a"] {
        let response = app
            .clone()
            .oneshot(
                http::Request::get(format!("/{prefix}/orders/7"))
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }
    telemetry.force_flush().expect("flush");
    let names: Vec<String> = spans
        .get_finished_spans()
        .expect("spans")
        .iter()
        .map(|span| {
            format!(
                "{} {}",
                span.name,
                attr_str(span, "http.route").unwrap_or_default()
            )
        })
        .collect();
    let expected: Vec<String> = ["a", "b", "a", "b", "b", "a"]
        .iter()
        .map(|p| format!("GET /{p}/orders/{{id}} /{p}/orders/{{id}}"))
        .collect();
    assert_eq!(names, expected);
}
