//! Cost of anomaly detection at 10 000 operations and 1 000 edges: time per tick and memory.
//! Ignored by default (a measurement, not a check); run with
//! `cargo test -p faultline-analysis --test detect_cost -- --ignored --nocapture`
//! (numbers in BENCHMARKS.md are from `--release`).

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use faultline_analysis::{AnalysisConfig, Analyzer, Detector};
use faultline_model::{Resource, Span, SpanKind, UnixNanos};

const SECOND: u64 = 1_000_000_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// One span of each of 10 000 SERVER operations (200 services × 50) and a CLIENT/SERVER pair
/// for each of 1 000 edges, all in one arrival slot.
fn traffic(base: UnixNanos) -> Vec<Span> {
    let mut resources: HashMap<String, Arc<Resource>> = HashMap::new();
    let mut out = Vec::with_capacity(12_000);
    let mut share = |mut s: Span| {
        let name = s.service_name().to_owned();
        s.resource = Arc::clone(
            resources
                .entry(name)
                .or_insert_with(|| Arc::clone(&s.resource)),
        );
        s
    };
    let mut trace = 0u8;
    for svc in 0..200 {
        for op in 0..50 {
            trace = trace.wrapping_add(1);
            out.push(share(support::span(
                base,
                &format!("svc-{svc}"),
                &format!("op-{op}"),
                trace,
                1,
                None,
                SpanKind::Server,
                0,
                2_000 + op * 10,
            )));
        }
    }
    for e in 0..1_000u64 {
        let (from, to) = (e % 200, (e / 200 + 1 + e) % 200);
        let mut client = support::span(
            base,
            &format!("svc-{from}"),
            "call",
            (e % 250) as u8,
            (e % 250) as u8,
            None,
            SpanKind::Client,
            0,
            1_000,
        );
        client.trace_id.0[..8].copy_from_slice(&e.to_be_bytes());
        let mut server = support::span(
            base,
            &format!("svc-{to}"),
            "op-0",
            0,
            0,
            None,
            SpanKind::Server,
            100,
            900,
        );
        server.trace_id = client.trace_id;
        server.span_id.0[..8].copy_from_slice(&(e + 1_000_000).to_be_bytes());
        server.parent_span_id = Some(client.span_id);
        out.push(share(client));
        out.push(share(server));
    }
    out
}

#[test]
#[ignore]
fn detection_cost_at_10k_operations_and_1k_edges() {
    let before = rss_kib();
    let analyzer = Analyzer::new(AnalysisConfig::default()).expect("config");
    let t0 = (UnixNanos::now().0 / SECOND) * SECOND;
    // Ten minutes of arrivals, one batch per 10 s slot: every series holds every slot.
    let batch = traffic(UnixNanos(t0));
    let mut observe_nanos = 0u128;
    for slot in 0..60u64 {
        let start = Instant::now();
        analyzer.observe_at(&batch, UnixNanos(t0 + slot * 10 * SECOND));
        observe_nanos += start.elapsed().as_nanos();
    }
    let now = t0 + 600 * SECOND;
    let snapshot = analyzer.metrics_snapshot();
    let analysis_kib = rss_kib().saturating_sub(before);
    let mut detector = Detector::new(&analyzer);
    let start = Instant::now();
    detector.tick_at(&analyzer, UnixNanos(now));
    let first = start.elapsed();
    let mut steady = Vec::new();
    for i in 1..=12u64 {
        let at = UnixNanos(now + i * 5 * SECOND);
        // New traffic every other tick so that slots close and are learnt.
        if i % 2 == 0 {
            analyzer.observe_at(&batch, at);
        }
        let start = Instant::now();
        detector.tick_at(&analyzer, at);
        steady.push(start.elapsed());
    }
    steady.sort();
    let total_kib = rss_kib().saturating_sub(before);
    let stats = detector.stats();
    println!(
        "series held {}, edges {}, watched by the detector {} (overflow ticks {})",
        snapshot.series_held,
        snapshot.edges.len(),
        stats.series,
        stats.series_overflow
    );
    println!(
        "observe: {:.2} µs/span over {} spans",
        observe_nanos as f64 / 1e3 / (60 * batch.len()) as f64,
        60 * batch.len()
    );
    println!(
        "detector tick: first (learns 58 slots per series) {:.1} ms, steady median {:.2} ms, max {:.2} ms",
        first.as_secs_f64() * 1e3,
        steady[steady.len() / 2].as_secs_f64() * 1e3,
        steady[steady.len() - 1].as_secs_f64() * 1e3
    );
    println!(
        "RSS: analysis with full windows +{} KiB, detector baselines +{} KiB",
        analysis_kib,
        total_kib.saturating_sub(analysis_kib)
    );
    // Every SERVER series and every edge has a baseline.
    assert_eq!(stats.series, 10_000 + snapshot.edges.len() as u64);
    assert_eq!(snapshot.edges.len(), 1_000);
    assert_eq!(stats.series_overflow, 0);
}
