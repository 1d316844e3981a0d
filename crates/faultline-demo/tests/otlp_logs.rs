//! Every service exports its own logs over OTLP, under its own `service.name`, and every log
//! line of one customer request (OTLP record and JSON line alike) carries the request id the
//! gateway took from `X-Request-Id`, carried to the other services in W3C baggage.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use faultline_demo::shop::{start_shop, ShopConfig};
use faultline_instrument::logs::{CorrelatedFormat, OtlpLogLayer};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use prost::Message;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

type Received = Arc<Mutex<Vec<ExportLogsServiceRequest>>>;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn logs_receiver(State(received): State<Received>, body: Bytes) -> Vec<u8> {
    if let Ok(request) = ExportLogsServiceRequest::decode(body) {
        received.lock().expect("lock").push(request);
    }
    ExportLogsServiceResponse::default().encode_to_vec()
}

fn text(value: &Option<AnyValue>) -> Option<String> {
    match value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    }
}

/// `(service.name, body, trace id, request_id)` of every record received so far.
fn records(received: &Received) -> Vec<(String, String, String, Option<String>)> {
    let mut out = Vec::new();
    for request in received.lock().expect("lock").iter() {
        for resource_logs in &request.resource_logs {
            let service = resource_logs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| text(&kv.value))
                .unwrap_or_default();
            for scope in &resource_logs.scope_logs {
                for record in &scope.log_records {
                    let request_id = record
                        .attributes
                        .iter()
                        .find(|kv| kv.key == "request_id")
                        .and_then(|kv| text(&kv.value));
                    let trace_id: String =
                        record.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                    out.push((
                        service.clone(),
                        text(&record.body).unwrap_or_default(),
                        trace_id,
                        request_id,
                    ));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_exports_its_logs_with_the_request_id() {
    let received = Received::default();
    let app = Router::new()
        .route("/v1/logs", post(logs_receiver))
        // Spans are not looked at here.
        .route("/v1/traces", post(|| async { Vec::<u8>::new() }))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(CorrelatedFormat::json().with_baggage(&["request_id"]))
                .with_writer(move || writer.clone()),
        )
        .with(OtlpLogLayer::routed())
        .init();

    let data = tempfile::tempdir().expect("temp dir");
    let mut config = ShopConfig::new(format!("http://{receiver}"), data.path().to_owned());
    config.base_port = 0;
    let shop = start_shop(config).await.expect("shop starts");
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/api/checkout", shop.gateway_url()))
        .header("content-type", "application/json")
        .header("x-request-id", "it-req-0001")
        .body(r#"{"user_id":42,"items":[{"sku":"SKU-0007","quantity":2}]}"#)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status().as_u16(), 201);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let trace_id = header("x-trace-id").expect("X-Trace-Id");
    assert_eq!(header("x-request-id").as_deref(), Some("it-req-0001"));

    // A request without an id gets one made up, and hears about it.
    let response = http
        .get(format!("{}/api/products?limit=1", shop.gateway_url()))
        .send()
        .await
        .expect("gateway answers");
    let made_up = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Request-Id on every answer");
    assert_eq!(made_up.len(), 16, "{made_up}");
    assert!(made_up.bytes().all(|b| b.is_ascii_hexdigit()), "{made_up}");

    let expected = [
        ("gateway", "checkout completed"),
        ("order", "order placed"),
        ("inventory", "stock reserved"),
        ("payment", "charged"),
        ("notification", "confirmation sent"),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        shop.flush().await;
        let got = records(&received);
        let missing: Vec<_> = expected
            .iter()
            .filter(|(service, message)| {
                !got.iter().any(|(s, body, t, id)| {
                    s == service
                        && body == message
                        && *t == trace_id
                        && id.as_deref() == Some("it-req-0001")
                })
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no OTLP record for {missing:?} with trace {trace_id} and request_id it-req-0001 in {got:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The JSON lines carry the request id too.
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    for (_, message) in expected {
        let line = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|json| json["message"] == message && json["trace_id"] == trace_id.as_str())
            .unwrap_or_else(|| panic!("no JSON line {message:?} in\n{text}"));
        assert_eq!(line["request_id"], "it-req-0001", "{line}");
    }
    shop.shutdown().await;
}
