//! Reads the blocks a server wrote and writes them again with this build's encoder: prints the
//! bytes per span of every column before and after, and checks that every span reads back
//! exactly. This measures a format change on real data without rerunning the ingest benchmark.
//!
//! `cargo run --release -p faultline-block --example block_reencode -- DATA_DIR [ZSTD_LEVEL]`
//! (`DATA_DIR` holds `blocks/<id>/data.parquet` and `meta.json`, as `faultline serve` writes;
//! the level defaults to the production setting).

use std::collections::BTreeMap;

use faultline_block::{data_path, list_blocks, read_all, write_block, BlockInfo, BlockSettings};
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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: block_reencode DATA_DIR")?;
    let old = LocalFileSystem::new_with_prefix(&dir)?;
    let new = InMemory::new();
    let root = Path::from("blocks");
    let mut settings = BlockSettings::default();
    if let Some(level) = std::env::args().nth(2) {
        settings.zstd_level = level.parse()?;
    }
    let (mut spans_total, mut mismatches) = (0u64, 0usize);
    let (mut old_files, mut new_files) = (Vec::new(), Vec::new());
    for meta in list_blocks(&old, &root).await? {
        let spans = read_all(&old, &root, &meta).await?;
        spans_total += spans.len() as u64;
        let written =
            write_block(&new, &root, spans.clone(), BlockInfo::default(), &settings).await?;
        let back = read_all(&new, &root, &written).await?;
        mismatches += spans.iter().zip(&back).filter(|(a, b)| a != b).count();
        mismatches += spans.len().abs_diff(back.len());
        old_files.push(data_path(&root, &meta.id));
        new_files.push(data_path(&root, &written.id));
    }
    let (mut before, mut after) = (BTreeMap::new(), BTreeMap::new());
    let old_total = column_bytes(&old, &old_files, &mut before).await?;
    let new_total = column_bytes(&new, &new_files, &mut after).await?;
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
    if mismatches > 0 {
        return Err(format!("{mismatches} spans did not round-trip").into());
    }
    Ok(())
}
