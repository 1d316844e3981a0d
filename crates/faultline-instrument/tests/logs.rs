//! Log lines written while a request is handled carry that request's trace and span ids.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use faultline_instrument::logs::CorrelatedFormat;
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::Telemetry;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use serde_json::Value;
use tower::ServiceExt;

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

#[tokio::test]
async fn handler_logs_carry_the_server_span_ids() {
    let exporter = InMemorySpanExporter::default();
    let telemetry = Telemetry::builder("orders")
        .sampler(SamplerConfig::AlwaysOn)
        .install_global(false)
        .install_with_exporter(exporter.clone())
        .expect("telemetry");
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .event_format(CorrelatedFormat::json())
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                tracing::info!(step = "lookup", "loading order");
                tokio::task::yield_now().await;
                tracing::info!(step = "render", "rendering order");
                "ok"
            }),
        )
        .layer(telemetry.server_layer());
    let response = app
        .oneshot(
            http::Request::get("/orders/7")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    tracing::info!("after the request");

    telemetry.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server span");
    let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in &lines[..2] {
        assert_eq!(
            line["trace_id"],
            Value::String(server.span_context.trace_id().to_string())
        );
        assert_eq!(
            line["span_id"],
            Value::String(server.span_context.span_id().to_string())
        );
    }
    assert!(
        lines[2].get("trace_id").is_none(),
        "no span is current after the request"
    );
}
