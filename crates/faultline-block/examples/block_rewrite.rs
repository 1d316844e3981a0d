//! Rewrites the blocks a server wrote with this build's encoder and prints the size of every
//! column per span, largest first: how a format change would do on real data.
//!
//! `cargo run --release -p faultline-block --example block_rewrite -- BLOCK_ROOT_DIR`
//! (the `blocks` directory under a server's data directory). All blocks' spans are merged
//! into one block, as a compaction would.

use faultline_block::{data_path, list_blocks, read_all, write_block, BlockInfo, BlockSettings};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::file::metadata::ParquetMetaDataReader;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: block_rewrite BLOCK_ROOT_DIR")?;
    let local = LocalFileSystem::new_with_prefix(&dir)?;
    let root = Path::from("");
    let mut spans = Vec::new();
    for meta in list_blocks(&local, &root).await? {
        spans.extend(read_all(&local, &root, &meta).await?);
    }
    let n = spans.len();
    let store = InMemory::new();
    let out = Path::from("blocks");
    let t = std::time::Instant::now();
    let meta = write_block(
        &store,
        &out,
        spans,
        BlockInfo::default(),
        &BlockSettings::default(),
    )
    .await?;
    println!(
        "{n} spans: {:.2} B/span, written in {:.2}s",
        meta.data_bytes as f64 / n as f64,
        t.elapsed().as_secs_f64()
    );
    let bytes = store.get(&data_path(&out, &meta.id)).await?.bytes().await?;
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
    for (name, size) in cols.iter().take(20) {
        println!("  {name:<32} {:>6.2}", *size as f64 / n as f64);
    }
    Ok(())
}
