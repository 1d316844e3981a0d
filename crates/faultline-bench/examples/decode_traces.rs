//! Decoding realistic OTLP export requests into model spans, the two ways the server has had:
//! prost's `ExportTraceServiceRequest::decode` followed by `spans_from_otlp`, and
//! `decode_traces` straight from the bytes. Same binary, same requests, rounds alternated.
//!
//! `cargo run --release -p faultline-bench --example decode_traces -- [rounds] [requests]
//! [prost|direct]` (the last to run one path only, for a profiler)
//!
//! Prints, per round, nanoseconds per span to decode and to drop the decoded spans (the head
//! drops them after a flush), then the medians.

use std::time::Instant;

use faultline_bench::generator::SpanGenerator;
use faultline_model::otlp::{decode_traces, spans_from_otlp, Converted, SpanLimits};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

// The server's allocator, so that allocation costs are the server's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn prost_path(bytes: &[u8], limits: &SpanLimits) -> Converted {
    match ExportTraceServiceRequest::decode(bytes) {
        Ok(request) => spans_from_otlp(request.resource_spans, limits),
        Err(e) => panic!("generated request does not decode: {e}"),
    }
}

fn direct_path(bytes: &[u8], limits: &SpanLimits) -> Converted {
    match decode_traces(bytes, limits) {
        Ok(c) => c,
        Err(e) => panic!("generated request does not decode: {e}"),
    }
}

/// Decodes every request, keeping the results as the head would, then drops them; returns
/// (decode, drop) nanoseconds per span.
fn run(
    requests: &[Vec<u8>],
    spans: usize,
    limits: &SpanLimits,
    decode: fn(&[u8], &SpanLimits) -> Converted,
) -> (f64, f64) {
    let started = Instant::now();
    let kept: Vec<Converted> = requests.iter().map(|r| decode(r, limits)).collect();
    let decoded = started.elapsed();
    let started = Instant::now();
    drop(kept);
    let dropped = started.elapsed();
    (
        decoded.as_nanos() as f64 / spans as f64,
        dropped.as_nanos() as f64 / spans as f64,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let only = args.next();
    let mut generator = SpanGenerator::new(7, 1_764_000_000_000_000_000);
    let mut spans = 0;
    let requests: Vec<Vec<u8>> = (0..count)
        .map(|_| {
            // The shape `faultline bench ingest` sends: 50 traces per request.
            let (request, n, _) = generator.request(50);
            spans += n;
            request.encode_to_vec()
        })
        .collect();
    let bytes: usize = requests.iter().map(Vec::len).sum();
    let limits = SpanLimits::default();
    for r in &requests {
        let (a, b) = (prost_path(r, &limits), direct_path(r, &limits));
        assert_eq!(a.spans, b.spans, "the two paths disagree");
    }
    println!(
        "{count} requests, {spans} spans, {:.0} bytes/span encoded",
        bytes as f64 / spans as f64
    );
    let (mut prost, mut direct) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut pair = [
            ("prost", prost_path as fn(&[u8], &SpanLimits) -> Converted),
            ("direct", direct_path),
        ];
        if round % 2 == 1 {
            pair.reverse();
        }
        for (name, f) in pair {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let (decode, drop) = run(&requests, spans, &limits, f);
            println!(
                "round {round} {name:>6}: decode {decode:7.1} ns/span, drop {drop:6.1} ns/span"
            );
            if name == "prost" {
                prost.push((decode, drop));
            } else {
                direct.push((decode, drop));
            }
        }
    }
    for (name, v) in [("prost", &prost), ("direct", &direct)] {
        if v.is_empty() {
            continue;
        }
        println!(
            "median {name:>6}: decode {:7.1} ns/span, drop {:6.1} ns/span",
            median(v.iter().map(|x| x.0).collect()),
            median(v.iter().map(|x| x.1).collect()),
        );
    }
}
