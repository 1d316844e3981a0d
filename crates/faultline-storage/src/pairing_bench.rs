//! A measurement, not a check: the cost per span of pairing written heads for the
//! dependencies table (`Carry::pair_heads` and `Carry::advance`, as `pair_edges` runs them),
//! on heads shaped like `faultline bench ingest`'s (20 services of 3 pods, traces of 3-15
//! spans with random kinds, 8-12 attributes, all naming a `server.address`). Run with
//! `cargo test --release -p faultline-storage pairing_cost -- --ignored --nocapture`; it
//! prints the least and median on-CPU time per span over a few rounds and a digest of the
//! tables, so that two builds can be compared for speed and for identical output.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;

use faultline_block::EdgeTable;
use faultline_model::{
    AttributeValue, KeyValue, Resource, Span, SpanId, SpanKind, TraceId, UnixNanos,
};

use crate::edges::{Carry, EDGE_BUCKET_SECS};
use crate::head::Head;

/// splitmix64: a fixed, fast sequence (no `rand` in this crate).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn text(s: String) -> AttributeValue {
    AttributeValue::String(s.into())
}

/// One batch of `traces` traces, its spans grouped by resource as an OTLP request has them.
fn batch(rng: &mut Rng, resources: &[Arc<Resource>], traces: usize, clock: &mut u64) -> Vec<Span> {
    let mut by_resource: Vec<Vec<Span>> = vec![Vec::new(); resources.len()];
    for _ in 0..traces {
        let trace_id =
            TraceId(((u128::from(rng.next()) << 64) | u128::from(rng.next())).to_be_bytes());
        let n = 3 + rng.below(13) as usize;
        let start = *clock;
        *clock += 100_000 + rng.below(1_900_000);
        let mut ids: Vec<SpanId> = Vec::with_capacity(n);
        for i in 0..n {
            let span_id = SpanId(rng.next().to_be_bytes());
            let parent = (i > 0).then(|| ids[rng.below(i as u64) as usize]);
            ids.push(span_id);
            let svc = if i == 0 { 0 } else { rng.below(20) as usize };
            let res = svc * 3 + rng.below(3) as usize;
            let mut attributes = vec![
                KeyValue::new("http.request.method", text("GET".into())),
                KeyValue::new("http.route", text(format!("/api/v1/svc-{svc:02}/items"))),
                KeyValue::new(
                    "url.path",
                    text(format!("/api/v1/svc-{svc:02}/items/{}", rng.below(10_000))),
                ),
                KeyValue::new("http.response.status_code", AttributeValue::Int(200)),
                KeyValue::new("server.address", text(format!("svc-{svc:02}.shop.svc"))),
                KeyValue::new("server.port", AttributeValue::Int(8080)),
                KeyValue::new("network.protocol.version", text("1.1".into())),
                KeyValue::new("user_agent.original", text("faultline-bench/1.0".into())),
            ];
            let optional = [
                (
                    "client.address",
                    text(format!("10.0.{}.{}", rng.below(255), rng.below(255))),
                ),
                ("db.system.name", text("postgresql".into())),
                ("db.operation.name", text("SELECT".into())),
                ("request.id", text(format!("{:032x}", rng.next()))),
            ];
            let extra = rng.below(5) as usize;
            attributes.extend(
                optional
                    .into_iter()
                    .take(extra)
                    .map(|(k, v)| KeyValue::new(k, v)),
            );
            let at = start + rng.below(10_000_000);
            by_resource[res].push(Span {
                trace_id,
                span_id,
                parent_span_id: parent,
                flags: 1,
                name: "GET /api/v1/items".into(),
                kind: SpanKind::from_i32(1 + rng.below(3) as i32),
                start: UnixNanos(at),
                end: UnixNanos(at + 1_000_000),
                attributes,
                resource: Arc::clone(&resources[res]),
                ..Default::default()
            });
        }
    }
    by_resource.into_iter().flatten().collect()
}

fn on_cpu_nanos() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn pairing_cost() {
    let resources: Vec<Arc<Resource>> = (0..60)
        .map(|i| Arc::new(Resource::for_service(format!("svc-{:02}", i / 3))))
        .collect();
    let mut rng = Rng(42);
    let mut clock = 1_700_000_000_000_000_000u64;
    // Six heads of ~100k spans, in batches of 50 traces.
    let heads: Vec<Head> = (0..6)
        .map(|_| {
            let mut head = Head::default();
            while head.spans < 100_000 {
                head.insert(batch(&mut rng, &resources, 50, &mut clock), 10_000);
            }
            head
        })
        .collect();
    let spans: u64 = heads.iter().map(|h| h.spans).sum();
    let mut times = Vec::new();
    let mut digest = 0;
    for _ in 0..5 {
        let mut carry = Carry::new(200_000);
        let mut total = EdgeTable::new(EDGE_BUCKET_SECS);
        let mut cpu = 0;
        for head in &heads {
            let before = on_cpu_nanos().unwrap_or(0);
            let mut pairing = carry.pair_heads(&[head], true);
            carry.advance(&mut pairing);
            cpu += on_cpu_nanos().unwrap_or(0).saturating_sub(before);
            assert!(total.merge(&pairing.table));
        }
        let mut edges = BTreeMap::new();
        total.sum_into(UnixNanos(0), UnixNanos(u64::MAX), &mut edges);
        // Cells summed by bucket and sorted: the tables' own order is a hash map's.
        let mut cells: BTreeMap<(&str, &str, u64), i64> = BTreeMap::new();
        for ((p, c), list) in &total.counts {
            for &(b, n) in list {
                *cells.entry((p, c, b)).or_default() += n;
            }
        }
        cells.retain(|_, n| *n != 0);
        digest = BuildHasherDefault::<DefaultHasher>::default().hash_one(format!("{cells:?}"));
        times.push(cpu as f64 / spans as f64);
        assert!(!edges.is_empty());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "pairing {spans} spans in 6 heads, 5 rounds: least {:.1}, median {:.1} ns/span on CPU; tables digest {digest:016x}",
        times[0],
        times[times.len() / 2]
    );
}
