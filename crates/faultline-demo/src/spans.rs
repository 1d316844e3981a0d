//! Spans for the hops `faultline-instrument` has no helper for yet: queue PRODUCER/CONSUMER
//! spans and database CLIENT spans. Everything else (HTTP and gRPC hops, propagation, export,
//! log correlation) comes from `faultline-instrument`; these use its tracer and propagators.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use faultline_instrument::propagation::{MapExtractor, MapInjector};
use faultline_instrument::Telemetry;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};

/// The `messaging.system` of the embedded queue.
pub const QUEUE_SYSTEM: &str = "faultline-demo-queue";

/// Starts a PRODUCER span under the current context and writes its context into `headers`.
/// End it with `cx.span().end()` once the message is queued.
pub fn start_publish(
    telemetry: &Telemetry,
    topic: &str,
    headers: &mut HashMap<String, String>,
) -> Context {
    let tracer = telemetry.tracer();
    let parent = Context::current();
    let span = tracer
        .span_builder(format!("send {topic}"))
        .with_kind(SpanKind::Producer)
        .with_attributes([
            KeyValue::new("messaging.system", QUEUE_SYSTEM),
            KeyValue::new("messaging.destination.name", topic.to_owned()),
            KeyValue::new("messaging.operation.type", "send"),
        ])
        .start_with_context(tracer, &parent);
    let cx = parent.with_span(span);
    telemetry
        .propagation()
        .inject_context(&cx, &mut MapInjector(headers));
    cx
}

/// Starts a CONSUMER span whose parent is the context carried in `headers`.
pub fn start_process(
    telemetry: &Telemetry,
    topic: &str,
    message_id: u64,
    headers: &HashMap<String, String>,
    published_at: SystemTime,
) -> Context {
    let tracer = telemetry.tracer();
    let parent = telemetry
        .propagation()
        .extract_with_context(&Context::new(), &MapExtractor(headers));
    let waited = SystemTime::now()
        .duration_since(published_at)
        .unwrap_or_default();
    let span = tracer
        .span_builder(format!("process {topic}"))
        .with_kind(SpanKind::Consumer)
        .with_attributes([
            KeyValue::new("messaging.system", QUEUE_SYSTEM),
            KeyValue::new("messaging.destination.name", topic.to_owned()),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.message.id", message_id.to_string()),
            KeyValue::new("messaging.message.queue_time_ms", millis(waited)),
        ])
        .start_with_context(tracer, &parent);
    parent.with_span(span)
}

/// The attribute carrying how long a query waited for a pool connection, in milliseconds.
pub const POOL_WAIT_ATTRIBUTE: &str = "db.client.connection.wait_time_ms";

/// Starts a database CLIENT span under the current context.
///
/// `pool_wait` is how long the query's connection took to obtain; it is what shows an
/// exhausted pool in a trace.
pub fn start_query(
    telemetry: &Telemetry,
    operation: &'static str,
    table: &'static str,
    query: &'static str,
    pool_wait: Duration,
) -> Context {
    let tracer = telemetry.tracer();
    let parent = Context::current();
    let span = tracer
        .span_builder(format!("{operation} {table}"))
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("db.system.name", "sqlite"),
            KeyValue::new("db.operation.name", operation),
            KeyValue::new("db.collection.name", table),
            // Static text with `?` placeholders: nothing from a request is in it.
            KeyValue::new("db.query.text", query),
            KeyValue::new("peer.service", "inventory-db"),
            KeyValue::new(POOL_WAIT_ATTRIBUTE, millis(pool_wait)),
        ])
        .start_with_context(tracer, &parent);
    parent.with_span(span)
}

/// Marks the span of `cx` as failed with `error_type` and ends it.
pub fn fail(cx: &Context, error_type: &'static str, message: String) {
    let span = cx.span();
    span.set_attribute(KeyValue::new("error.type", error_type));
    span.set_status(Status::error(message));
    span.end();
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
