//! Microbenchmark of the live analysis per span: feeds `faultline bench ingest`'s batches
//! (from `faultline_bench::generator`) through [`Analyzer::prepare`] and
//! [`Analyzer::commit_at`] at a simulated 150k spans/s, and prints the time per span and a
//! digest of the `/metrics` text, so that two builds can be compared for speed and for
//! identical output.
//!
//! `cargo run --release -p faultline-analysis --example analysis_per_span -- [requests] [rounds]`

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::time::Instant;

use faultline_analysis::{AnalysisConfig, Analyzer, Format};
use faultline_bench::generator::SpanGenerator;
use faultline_model::otlp::{spans_from_otlp, SpanLimits};
use faultline_model::UnixNanos;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let start = 1_700_000_000_000_000_000u64;
    let mut generator = SpanGenerator::new(42, start);
    let limits = SpanLimits::unlimited();
    let batches: Vec<_> = (0..requests)
        .map(|_| spans_from_otlp(generator.request(50).0.resource_spans, &limits).spans)
        .collect();
    let spans: usize = batches.iter().map(Vec::len).sum();
    // Each round feeds every batch to a fresh analyzer; the rounds' times are on-CPU times of
    // this thread (from /proc/thread-self/schedstat: the machine is shared, so wall time
    // counts other processes' turns too), and the least and the median are reported.
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..rounds {
        let analyzer = Analyzer::new(AnalysisConfig::default())?;
        // Arrival at 150k spans/s.
        let per_span_nanos = 1_000_000_000 / 150_000;
        let mut now = start;
        let began = (on_cpu_nanos(), Instant::now());
        for batch in &batches {
            let prepared = analyzer.prepare(batch);
            analyzer.commit_at(prepared, UnixNanos(now));
            now += batch.len() as u64 * per_span_nanos;
        }
        let cpu = match (began.0, on_cpu_nanos()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => began.1.elapsed().as_nanos() as u64,
        };
        times.push(cpu as f64 / spans as f64);
        last = Some((analyzer, now));
    }
    let Some((analyzer, now)) = last else {
        return Ok(());
    };
    times.sort_by(f64::total_cmp);
    // Everything the analysis exposes, at the end of the run and after every wait is over.
    analyzer.expire(UnixNanos(now));
    let text = analyzer.prometheus(Format::Prometheus, &[]);
    let digest = BuildHasherDefault::<DefaultHasher>::default().hash_one(&text);
    let edges = analyzer.edges(UnixNanos(now), 60);
    let counters: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("traces_service_graph_dropped")
                || l.starts_with("traces_service_graph_unpaired")
        })
        .collect();
    println!(
        "{spans} spans in {requests} batches, {rounds} rounds: least {:.1}, median {:.1} ns/span on CPU; {} edges; metrics digest {digest:016x} ({} bytes); {counters:?}",
        times[0],
        times[times.len() / 2],
        edges.len(),
        text.len(),
    );
    Ok(())
}

/// Time this thread has spent on a CPU, in nanoseconds (Linux).
fn on_cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}
