//! Prints the compressed size of every column of existing block files, per span, largest
//! first: what a real server wrote, where `block_size` measures generated data.
//!
//! `cargo run --release -p faultline-block --example block_columns -- DATA_DIR_OR_FILES...`
//! (directories are searched for `data.parquet` files; columns are summed over all of them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parquet::file::metadata::ParquetMetaDataReader;

fn files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        if let Ok(entries) = std::fs::read_dir(p) {
            for e in entries.flatten() {
                files(&e.path(), out);
            }
        }
    } else if p.file_name().is_some_and(|n| n == "data.parquet") {
        out.push(p.to_owned());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut paths = Vec::new();
    for a in std::env::args().skip(1) {
        files(Path::new(&a), &mut paths);
    }
    let mut cols: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let (mut rows, mut total, mut row_groups) = (0i64, 0u64, 0usize);
    for path in &paths {
        let bytes = bytes::Bytes::from(std::fs::read(path)?);
        total += bytes.len() as u64;
        let md = ParquetMetaDataReader::new().parse_and_finish(&bytes)?;
        let unindexed = md
            .row_groups()
            .iter()
            .flat_map(|rg| rg.columns())
            .filter(|c| c.offset_index_offset().is_none())
            .count();
        if unindexed > 0 {
            println!(
                "{}: {unindexed} column chunks without an offset index",
                path.display()
            );
        }
        rows += md.file_metadata().num_rows();
        row_groups += md.num_row_groups();
        let schema = md.file_metadata().schema_descr();
        let dynamic = md
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|e| e.key == "faultline.dynamic_attributes"))
            .and_then(|e| e.value.clone())
            .and_then(|v| serde_json::from_str::<Vec<(String, String)>>(&v).ok())
            .unwrap_or_default();
        for i in 0..schema.num_columns() {
            let mut name = schema.column(i).path().string();
            if let Some(n) = name
                .strip_prefix("dyn.")
                .and_then(|n| n.parse::<usize>().ok())
            {
                if let Some((k, ty)) = dynamic.get(n) {
                    name = format!("dyn {k} ({ty})");
                }
            }
            let e = cols.entry(name).or_default();
            for rg in md.row_groups() {
                e.0 += rg.column(i).compressed_size();
                e.1 += rg.column(i).uncompressed_size();
            }
        }
    }
    let n = rows.max(1) as f64;
    let data: i64 = cols.values().map(|c| c.0).sum();
    println!(
        "{} files, {rows} spans, {row_groups} row groups: {:.2} B/span; column data {:.2}, footer and indexes {:.2}",
        paths.len(),
        total as f64 / n,
        data as f64 / n,
        (total as f64 - data as f64) / n
    );
    let mut sorted: Vec<_> = cols.into_iter().collect();
    sorted.sort_by_key(|(_, (c, _))| -c);
    println!("  {:<44} {:>8} {:>8}", "column", "B/span", "raw");
    for (name, (c, u)) in sorted.iter().filter(|(_, (c, _))| *c > 0) {
        println!("  {name:<44} {:>8.2} {:>8.2}", *c as f64 / n, *u as f64 / n);
    }
    Ok(())
}
