//! Reads the blocks a server wrote and writes them again with this build's encoder: prints the
//! bytes per span of every column before and after, and checks that every span reads back
//! exactly. This measures a format change on real data without rerunning the ingest benchmark.
//! It also times trace lookups and service + tag searches (the ingest benchmark's query) on
//! both sets of blocks, in this process, footers cached as the server caches them.
//!
//! `cargo run --release -p faultline-block --example block_reencode -- DATA_DIR [ZSTD_LEVEL [OUT_DIR]]`
//! (`DATA_DIR` holds `blocks/<id>/data.parquet` and `meta.json`, as `faultline serve` writes;
//! the level defaults to the production setting; with `OUT_DIR` the new blocks are kept there,
//! in the same layout, instead of in memory).

use std::collections::BTreeMap;

use std::time::Instant;

use faultline_block::{
    data_path, list_blocks, read_all, read_traces_cached, search_cached, write_block, BlockInfo,
    BlockMeta, BlockSettings, FooterCache,
};
use faultline_model::query::SpanQuery;
use faultline_model::{TraceId, UnixNanos};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::file::metadata::ParquetMetaDataReader;

/// Compressed bytes per column (dynamic columns named by their key and type), summed over
/// `files`.
async fn column_bytes(
    store: &dyn ObjectStore,
    files: &[Path],
    out: &mut BTreeMap<String, i64>,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut total = 0;
    for path in files {
        let bytes = store.get(path).await?.bytes().await?;
        total += bytes.len() as u64;
        let md = ParquetMetaDataReader::new().parse_and_finish(&bytes)?;
        let dynamic: Vec<(String, String)> = md
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|e| e.key == "faultline.dynamic_attributes"))
            .and_then(|e| e.value.as_deref())
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        let schema = md.file_metadata().schema_descr();
        for i in 0..schema.num_columns() {
            let mut name = schema.column(i).path().string();
            if let Some((k, ty)) = name
                .strip_prefix("dyn.")
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| dynamic.get(n))
            {
                name = format!("dyn {k} ({ty})");
            }
            let size: i64 = md
                .row_groups()
                .iter()
                .map(|rg| rg.column(i).compressed_size())
                .sum();
            *out.entry(name).or_default() += size;
        }
    }
    Ok(total)
}

/// Median and 99th percentile of `ms`.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms.get(((ms.len().max(1) - 1) as f64 * p) as usize).copied();
    (at(0.5).unwrap_or(0.0), at(0.99).unwrap_or(0.0))
}

/// Times trace lookups of `ids` and service + `http.response.status_code=500` searches over
/// every block, newest first, as the store runs them (without its early stop).
async fn time_queries(
    store: &dyn ObjectStore,
    root: &Path,
    metas: &[BlockMeta],
    ids: &[TraceId],
) -> Result<((f64, f64), (f64, f64)), Box<dyn std::error::Error>> {
    let footers = FooterCache::new(64 << 20);
    for m in metas {
        faultline_block::load_footer(store, root, m, &footers).await?;
    }
    let mut lookups = Vec::new();
    for id in ids {
        let t = Instant::now();
        for m in metas {
            read_traces_cached(store, root, m, &[*id], &footers).await?;
        }
        lookups.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let mut searches = Vec::new();
    for i in 0..20 {
        let q = SpanQuery {
            service: Some(format!("svc-{:02}", i % 20)),
            tags: vec![("http.response.status_code".into(), "500".into())],
            start: UnixNanos(0),
            end: UnixNanos(u64::MAX),
            limit: 20,
            ..Default::default()
        };
        let t = Instant::now();
        for m in metas.iter().rev() {
            search_cached(store, root, m, &q, &footers).await?;
        }
        searches.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((percentiles(lookups), percentiles(searches)))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: block_reencode DATA_DIR")?;
    let old = LocalFileSystem::new_with_prefix(&dir)?;
    let new: Box<dyn ObjectStore> = match std::env::args().nth(3) {
        Some(out) => {
            std::fs::create_dir_all(&out)?;
            Box::new(LocalFileSystem::new_with_prefix(out)?)
        }
        None => Box::new(InMemory::new()),
    };
    let new = new.as_ref();
    let root = Path::from("blocks");
    let mut settings = BlockSettings::default();
    if let Some(level) = std::env::args().nth(2) {
        settings.zstd_level = level.parse()?;
    }
    let (mut spans_total, mut mismatches) = (0u64, 0usize);
    let (mut old_files, mut new_files) = (Vec::new(), Vec::new());
    let (mut old_metas, mut new_metas, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for meta in list_blocks(&old, &root).await? {
        let spans = read_all(&old, &root, &meta).await?;
        ids.extend(spans.iter().step_by(4999).map(|s| s.trace_id));
        spans_total += spans.len() as u64;
        let written =
            write_block(new, &root, spans.clone(), BlockInfo::default(), &settings).await?;
        let back = read_all(new, &root, &written).await?;
        mismatches += spans.iter().zip(&back).filter(|(a, b)| a != b).count();
        mismatches += spans.len().abs_diff(back.len());
        old_files.push(data_path(&root, &meta.id));
        new_files.push(data_path(&root, &written.id));
        old_metas.push(meta);
        new_metas.push(written);
    }
    let (mut before, mut after) = (BTreeMap::new(), BTreeMap::new());
    let old_total = column_bytes(&old, &old_files, &mut before).await?;
    let new_total = column_bytes(new, &new_files, &mut after).await?;
    let n = spans_total.max(1) as f64;
    println!(
        "{} blocks, {spans_total} spans, {mismatches} spans read back differently",
        old_files.len()
    );
    println!(
        "B/span: {:.2} before, {:.2} after",
        old_total as f64 / n,
        new_total as f64 / n
    );
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names.sort_by_key(|k| -(before.get(*k).copied().unwrap_or(0)));
    println!("  {:<44} {:>8} {:>8}", "column", "before", "after");
    for k in names {
        let (b, a) = (
            before.get(k).copied().unwrap_or(0),
            after.get(k).copied().unwrap_or(0),
        );
        if a > 0 || b > 0 {
            println!("  {k:<44} {:>8.2} {:>8.2}", b as f64 / n, a as f64 / n);
        }
    }
    let (old_lookup, old_search) = time_queries(&old, &root, &old_metas, &ids).await?;
    let (new_lookup, new_search) = time_queries(new, &root, &new_metas, &ids).await?;
    println!(
        "trace by ID over all blocks, p50 / p99: {:.1} / {:.1} ms before, {:.1} / {:.1} ms after ({} lookups)",
        old_lookup.0,
        old_lookup.1,
        new_lookup.0,
        new_lookup.1,
        ids.len()
    );
    println!(
        "service + tag search over all blocks, p50 / p99: {:.1} / {:.1} ms before, {:.1} / {:.1} ms after",
        old_search.0, old_search.1, new_search.0, new_search.1
    );
    if mismatches > 0 {
        return Err(format!("{mismatches} spans did not round-trip").into());
    }
    Ok(())
}
