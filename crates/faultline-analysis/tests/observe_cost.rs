//! Cost of [`Analyzer::observe`] per span. Ignored by default (a timing, not a check); run with
//! `cargo test -p faultline-analysis --test observe_cost -- --ignored --nocapture`.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use faultline_analysis::{AnalysisConfig, Analyzer};
use faultline_model::{Resource, Span, SpanKind, UnixNanos};

/// Batches of 100 spans shaped like the demo shop: 10 services, 50 operations each, every
/// trace a server span calling the next service (client + server halves) plus internal work.
fn batches(count: usize) -> Vec<Vec<Span>> {
    let base = UnixNanos::now();
    let mut resources: HashMap<String, Arc<Resource>> = HashMap::new();
    (0..count)
        .map(|b| {
            let mut batch = Vec::with_capacity(100);
            for t in 0..20u8 {
                let svc = format!("svc-{}", (b + t as usize) % 10);
                let next = format!("svc-{}", (b + t as usize + 1) % 10);
                let op = format!("op-{}", (b * 7 + t as usize) % 50);
                let trace = (b as u8).wrapping_mul(31).wrapping_add(t);
                let mut spans = [
                    support::span(base, &svc, &op, trace, 1, None, SpanKind::Server, 0, 3_000),
                    support::span(
                        base,
                        &svc,
                        "call",
                        trace,
                        2,
                        Some(1),
                        SpanKind::Client,
                        100,
                        2_900,
                    ),
                    support::span(
                        base,
                        &next,
                        &op,
                        trace,
                        3,
                        Some(2),
                        SpanKind::Server,
                        200,
                        2_800,
                    ),
                    support::span(
                        base,
                        &next,
                        "work",
                        trace,
                        4,
                        Some(3),
                        SpanKind::Internal,
                        300,
                        2_700,
                    ),
                    support::span(
                        base,
                        &next,
                        "db",
                        trace,
                        5,
                        Some(3),
                        SpanKind::Client,
                        400,
                        2_600,
                    ),
                ];
                // Distinct span IDs per batch so that pairs do not collide across batches; one
                // resource per service, shared as OTLP decoding shares it per ResourceSpans.
                for s in &mut spans {
                    let name = s.service_name().to_owned();
                    s.resource = Arc::clone(
                        resources
                            .entry(name)
                            .or_insert_with(|| Arc::clone(&s.resource)),
                    );
                    s.trace_id.0[..8].copy_from_slice(&(b as u64).to_be_bytes());
                }
                batch.extend(spans);
            }
            batch
        })
        .collect()
}

#[test]
#[ignore = "timing; run explicitly"]
fn observe_cost_per_span() {
    let analyzer = Analyzer::new(AnalysisConfig::default()).expect("config");
    let batches = batches(2_000);
    let spans: usize = batches.iter().map(Vec::len).sum();
    // Warm up: series and edges exist, maps have grown.
    for b in &batches[..200] {
        analyzer.observe(b);
    }
    // The machine is shared: the fastest of several rounds is the cost, the rest is noise.
    let mut best = f64::MAX;
    for round in 0..5 {
        let start = Instant::now();
        for b in &batches {
            analyzer.observe(b);
        }
        let per_span = start.elapsed().as_nanos() as f64 / spans as f64;
        println!("round {round}: {spans} spans, {per_span:.0} ns/span");
        best = best.min(per_span);
    }
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimised"
    };
    println!("observe: best {best:.0} ns/span ({build} build)");
    let render = Instant::now();
    let text = analyzer.prometheus(faultline_analysis::Format::OpenMetrics, &[]);
    let snap = analyzer.metrics_snapshot();
    println!(
        "/metrics: {} bytes in {:?} ({} series, {} edges)",
        text.len(),
        render.elapsed(),
        snap.series.len(),
        snap.edges.len()
    );
}
