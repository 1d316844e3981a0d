//! Measures bytes per span of the block format on realistic synthetic traces.
//!
//! `cargo run -p faultline-block --example block_size -- [spans] [zstd-level] [page-rows]`
//! (defaults: 200000 spans, the default settings). Prints the file size per span and the
//! compressed size of every column per span, largest first.

#[allow(dead_code)]
#[path = "../src/testgen.rs"]
mod testgen;

use std::time::Instant;

use faultline_block::{
    data_path, read_all, read_traces, search, write_block, BlockInfo, BlockSettings,
};
use faultline_model::UnixNanos;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::file::metadata::ParquetMetaDataReader;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let mut settings = BlockSettings::default();
    if let Some(level) = args.next() {
        settings.zstd_level = level.parse()?;
    }
    if let Some(rows) = args.next() {
        settings.data_page_row_limit = rows.parse()?;
    }
    let spans = testgen::realistic_spans(42, n, UnixNanos(1_700_000_000_000_000_000));
    let ids: Vec<_> = spans
        .iter()
        .step_by(997)
        .map(|s| s.trace_id)
        .take(200)
        .collect();
    let n = spans.len();
    let attrs: usize = spans.iter().map(|s| s.attributes.len()).sum();
    let with_events = spans.iter().filter(|s| !s.events.is_empty()).count();
    let errors = spans
        .iter()
        .filter(|s| s.status.code == faultline_model::StatusCode::Error)
        .count();
    let store = InMemory::new();
    let root = Path::from("blocks");
    let t = Instant::now();
    let meta = write_block(&store, &root, spans, BlockInfo::default(), &settings).await?;
    let write_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let back = read_all(&store, &root, &meta).await?;
    let read_secs = t.elapsed().as_secs_f64();
    assert_eq!(back.len(), n);

    println!(
        "{n} spans in {} traces; {:.1} attributes/span, {:.1}% with events, {:.2}% errors",
        meta.trace_count,
        attrs as f64 / n as f64,
        100.0 * with_events as f64 / n as f64,
        100.0 * errors as f64 / n as f64
    );
    println!(
        "data.parquet: {} bytes = {:.1} B/span (zstd {}); meta.json {} bytes; write {write_secs:.2}s, read_all {read_secs:.2}s",
        meta.data_bytes,
        meta.data_bytes as f64 / n as f64,
        settings.zstd_level,
        meta.to_json()?.len()
    );

    let mut lookups = Vec::new();
    for id in &ids {
        let t = Instant::now();
        let got = read_traces(&store, &root, &meta, &[*id]).await?;
        lookups.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(!got.is_empty());
    }
    lookups.sort_by(f64::total_cmp);
    let pct = |p: f64| lookups[((lookups.len() - 1) as f64 * p) as usize];
    let q = faultline_model::query::SpanQuery {
        service: Some("svc-03".into()),
        tags: vec![("http.response.status_code".into(), "404".into())],
        start: meta.min_start,
        end: meta.max_start,
        limit: 20,
        ..Default::default()
    };
    let t = Instant::now();
    let hits = search(&store, &root, &meta, &q).await?;
    println!(
        "trace by ID (in-memory store): p50 {:.1} ms, p99 {:.1} ms; service+tag search: {} hits in {:.0} ms",
        pct(0.5),
        pct(0.99),
        hits.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    let bytes = store
        .get(&data_path(&root, &meta.id))
        .await?
        .bytes()
        .await?;
    let md = ParquetMetaDataReader::new().parse_and_finish(&bytes)?;
    let schema = md.file_metadata().schema_descr();
    let mut cols: Vec<(String, i64)> = (0..schema.num_columns())
        .map(|i| {
            let size = md
                .row_groups()
                .iter()
                .map(|rg| rg.column(i).compressed_size())
                .sum();
            (schema.column(i).name().to_owned(), size)
        })
        .collect();
    cols.sort_by_key(|(_, size)| -size);
    let data: i64 = cols.iter().map(|(_, s)| s).sum();
    println!(
        "column data {:.1} B/span, footer+index {:.1} B/span, {} row groups",
        data as f64 / n as f64,
        (meta.data_bytes as f64 - data as f64) / n as f64,
        md.num_row_groups()
    );
    for (name, size) in cols.iter().take(25) {
        println!("  {name:<32} {:>6.2}", *size as f64 / n as f64);
    }
    Ok(())
}
