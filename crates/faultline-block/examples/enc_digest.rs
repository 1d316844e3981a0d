//! Digests of the data files written from fixed span sets: an encoder change that must not
//! change the format is checked by running this before and after it and comparing the output.
//!
//! `cargo run --release -p faultline-block --example enc_digest`
#[allow(dead_code)]
#[path = "../src/testgen.rs"]
mod testgen;

use std::hash::{Hash, Hasher};

use faultline_block::{data_path, write_block, BlockInfo, BlockSettings};
use faultline_model::{AttributeValue as V, KeyValue, Span, UnixNanos};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStoreExt;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Prints the size and digest of the block written from `spans`, and a digest of its meta's
/// operations, trace count and time range.
async fn digest(name: &str, spans: Vec<Span>, settings: &BlockSettings) -> Result<()> {
    let store = InMemory::new();
    let root = Path::from("b");
    let meta = write_block(&store, &root, spans, BlockInfo::default(), settings).await?;
    let bytes = store
        .get(&data_path(&root, &meta.id))
        .await?
        .bytes()
        .await?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let ops = format!(
        "{:?} {} {:?} {:?} {:?} {:?} {:?}",
        meta.operations,
        meta.trace_count,
        meta.min_start,
        meta.max_start,
        meta.max_end,
        meta.min_trace_id,
        meta.max_trace_id
    );
    let mut h2 = std::collections::hash_map::DefaultHasher::new();
    ops.hash(&mut h2);
    println!(
        "{name}: {} bytes, digest {:016x}, meta {:016x}",
        bytes.len(),
        h.finish(),
        h2.finish()
    );
    Ok(())
}

/// Realistic spans made awkward: extra span names, packed-looking and empty values and ints in
/// string columns, repeated keys, rare keys, reversed attribute lists, a key of mixed types,
/// arrays and empty values, paths without routes, spans without attributes.
fn adversarial(seed: u64, n: usize) -> Vec<Span> {
    let mut rng = testgen::Rng::new(seed);
    let mut spans = testgen::realistic_spans(seed, n, UnixNanos(1_700_000_000_000_000_000));
    for (k, s) in spans.iter_mut().enumerate() {
        match rng.below(20) {
            0 => s.name = format!("extra name {}", rng.below(5000)).into(),
            1 => {
                for kv in &mut s.attributes {
                    if &*kv.key == "http.route"
                        || &*kv.key == "url.path"
                        || &*kv.key == "server.address"
                    {
                        kv.value = match rng.below(5) {
                            0 => V::String(rng.uuid().into()),
                            1 => V::String(
                                format!("{:016x}{:08x}", rng.next(), rng.next() as u32).into(),
                            ),
                            2 => V::String(
                                format!("10.{}.0.{}", rng.below(3), rng.below(256)).into(),
                            ),
                            3 => V::String(Default::default()),
                            _ => V::Int(rng.below(10) as i64),
                        };
                    }
                }
            }
            2 => {
                s.attributes.push(KeyValue::new("http.route", V::Int(7)));
                s.attributes
                    .push(KeyValue::new("http.route", V::String("/dup".into())));
                s.attributes
                    .push(KeyValue::new("url.path", V::String("/dup/1".into())));
            }
            3 => s.attributes.push(KeyValue::new(
                format!("rare.key.{}", rng.below(3000)).as_str(),
                V::String("x".into()),
            )),
            4 => s.attributes.reverse(),
            5 => s.attributes.push(KeyValue::new(
                "app.mixed",
                match rng.below(4) {
                    0 => V::Int(rng.below(100) as i64),
                    1 => V::String(format!("10.9.{}.{}", rng.below(4), rng.below(200)).into()),
                    2 => V::String(rng.uuid().into()),
                    _ => V::Bytes(vec![1, 2, 3]),
                },
            )),
            6 => {
                s.attributes
                    .push(KeyValue::new("arr", V::Array(vec![V::Int(1), V::Empty])));
                s.attributes.push(KeyValue::new("empty", V::Empty));
            }
            7 => {
                s.attributes.push(KeyValue::new(
                    "url.path",
                    V::String(format!("/p/{}", rng.below(100)).into()),
                ));
            }
            8 if k % 2 == 0 => s.attributes.clear(),
            9 => s.attributes.push(KeyValue::new(
                "rpc.system",
                V::String(format!("sys{}", rng.below(30)).into()),
            )),
            _ => {}
        }
    }
    spans
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let t0 = UnixNanos(1_700_000_000_000_000_000);
    let d = BlockSettings::default();
    digest(
        "realistic200k",
        testgen::realistic_spans(42, 200_000, t0),
        &d,
    )
    .await?;
    let small = BlockSettings {
        row_group_rows: 1000,
        ..BlockSettings::default()
    };
    digest(
        "realistic20k-rg1000",
        testgen::realistic_spans(3, 20_000, t0),
        &small,
    )
    .await?;
    digest("adversarial40k", adversarial(5, 40_000), &d).await?;
    digest(
        "adversarial20k-rg700",
        adversarial(9, 20_000),
        &BlockSettings {
            row_group_rows: 700,
            ..BlockSettings::default()
        },
    )
    .await?;
    digest("tiny", testgen::realistic_spans(1, 5, t0), &d).await?;
    Ok(())
}
