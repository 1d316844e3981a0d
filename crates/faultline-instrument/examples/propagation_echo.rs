//! A tiny traced HTTP service that reports the trace context it received and writes its own
//! context back in a chosen propagation format. The Python round-trip tests drive it.
//!
//! `GET /echo?format=b3multi` answers
//! `{"trace_id", "span_id", "sampled", "baggage": {..}, "headers": {..}}` where the ids are those
//! of the SERVER span (a child of whatever context arrived) and `headers` is that span's
//! context injected with `format` (`tracecontext`, `b3`, `b3multi` or `jaeger`).
//!
//! Run with `cargo run -p faultline-instrument --example propagation_echo`; it prints
//! `listening on ADDR` once ready.

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use faultline_instrument::propagation::{Format, MapInjector, Propagation};
use faultline_instrument::sampling::SamplerConfig;
use faultline_instrument::Telemetry;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use serde_json::{json, Value};

async fn echo(
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let name = query
        .get("format")
        .map(String::as_str)
        .unwrap_or("tracecontext");
    let mut formats =
        vec![Format::parse(name)
            .ok_or((StatusCode::BAD_REQUEST, format!("unknown format {name}")))?];
    if formats[0] == Format::TraceContext {
        formats.push(Format::Baggage);
    }
    let cx = Context::current();
    let span = cx.span();
    let sc = span.span_context();
    let mut headers = HashMap::new();
    Propagation::new(&formats).inject_context(&cx, &mut MapInjector(&mut headers));
    let baggage: HashMap<String, String> = cx
        .baggage()
        .iter()
        .map(|(k, (v, _))| (k.to_string(), v.to_string()))
        .collect();
    Ok(Json(json!({
        "trace_id": sc.trace_id().to_string(),
        "span_id": sc.span_id().to_string(),
        "sampled": sc.is_sampled(),
        "baggage": baggage,
        "headers": headers,
    })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Spans stay in memory: this program checks propagation, not export.
    let telemetry = Telemetry::builder("propagation-echo")
        .sampler(SamplerConfig::ParentBased(Box::new(
            SamplerConfig::AlwaysOn,
        )))
        .propagation(Propagation::default())
        .install_with_exporter(InMemorySpanExporter::default())?;
    let app = Router::new()
        .route("/echo", get(echo))
        .layer(telemetry.server_layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
