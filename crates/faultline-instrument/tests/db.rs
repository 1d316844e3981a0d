//! Query spans: names, sanitised text, pool wait time and errors, nested under the caller.

use std::sync::Arc;

use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::Telemetry;
use opentelemetry::trace::{FutureExt, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use tokio::sync::Semaphore;

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

#[tokio::test]
async fn query_spans_record_pool_wait_and_errors() {
    let exporter = InMemorySpanExporter::default();
    let telemetry = Telemetry::builder("orders")
        .sampler(SamplerConfig::AlwaysOn)
        .install_global(false)
        .install_with_exporter(exporter.clone())
        .expect("telemetry");
    let db = telemetry.database("postgresql");
    // A pool of one connection, held elsewhere until the query is waiting for it.
    let pool = Arc::new(Semaphore::new(1));
    let held = Arc::clone(&pool).acquire_owned().await.expect("permit");
    let parent = telemetry.tracer().start("handler");
    let parent_cx = opentelemetry::Context::current_with_span(parent);
    let release = tokio::spawn(async move {
        tokio::task::yield_now().await;
        drop(held);
    });
    let rows: Result<u64, String> = db
        .query(
            "SELECT * FROM orders WHERE customer = 'alice@example.com' AND total > 100",
            async { pool.acquire().await.map_err(|e| e.to_string()) },
            |_conn| async { Ok(3) },
        )
        .with_context(parent_cx.clone())
        .await;
    release.await.expect("release task");
    assert_eq!(rows, Ok(3));
    let failed: Result<u64, String> = db
        .query(
            "DELETE FROM orders",
            async { Err::<(), _>("pool timed out".to_owned()) },
            |_conn| async { Ok(0) },
        )
        .await;
    assert!(failed.is_err());
    parent_cx.span().end();

    telemetry.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let select = spans
        .iter()
        .find(|s| s.name == "SELECT orders")
        .expect("select span");
    assert_eq!(select.span_kind, SpanKind::Client);
    assert_eq!(
        select.parent_span_id,
        parent_cx.span().span_context().span_id()
    );
    assert_eq!(
        attr(select, "db.system.name"),
        Some(Value::from("postgresql"))
    );
    assert_eq!(
        attr(select, "db.operation.name"),
        Some(Value::from("SELECT"))
    );
    assert_eq!(
        attr(select, "db.query.text"),
        Some(Value::from(
            "SELECT * FROM orders WHERE customer = ? AND total > ?"
        ))
    );
    assert!(
        matches!(attr(select, "db.client.connection.wait_time"), Some(Value::F64(w)) if w >= 0.0)
    );
    assert_eq!(select.status, Status::Unset);

    let delete = spans
        .iter()
        .find(|s| s.name == "DELETE orders")
        .expect("delete span");
    assert_eq!(
        attr(delete, "error.type"),
        Some(Value::from("pool.acquire"))
    );
    assert_eq!(delete.status, Status::error("pool timed out"));
}
