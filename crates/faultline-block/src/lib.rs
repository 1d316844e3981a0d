//! The Parquet block format: immutable sets of spans stored as one Apache Parquet file
//! (`data.parquet`) plus a small JSON metadata file (`meta.json`) in an
//! [`object_store::ObjectStore`].
//!
//! This crate encodes spans into blocks, lists, deletes and reads them back (by trace ID, whole,
//! by span search, as a service graph), and answers from `meta.json` alone whether a block can
//! be skipped. Rows are sorted by trace ID then start, every trace lies within one row group,
//! and readers fetch only the row groups, pages and columns they need through ranged reads.
//! `docs/storage.md` ("Blocks") describes the format byte by byte.
//!
//! ```
//! use std::sync::Arc;
//! use faultline_block::{list_blocks, read_traces, write_block, BlockInfo, BlockSettings};
//! use faultline_model::{Span, SpanId, SpanKind, Status, TraceId, UnixNanos};
//! use object_store::{memory::InMemory, path::Path};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), faultline_block::BlockError> {
//! let store = InMemory::new();
//! let root = Path::from("blocks");
//! let span = Span {
//!     trace_id: TraceId([7; 16]), span_id: SpanId([1; 8]), parent_span_id: None,
//!     trace_state: String::new(), flags: 1, name: "GET /".into(), kind: SpanKind::Server,
//!     start: UnixNanos(1_000), end: UnixNanos(2_000), attributes: vec![],
//!     dropped_attributes_count: 0, events: vec![], dropped_events_count: 0, links: vec![],
//!     dropped_links_count: 0, status: Status::default(),
//!     resource: Arc::default(), scope: Arc::default(),
//! };
//! let meta = write_block(&store, &root, vec![span.clone()], BlockInfo::default(), &BlockSettings::default()).await?;
//! assert_eq!(list_blocks(&store, &root).await?, vec![meta.clone()]);
//! assert!(meta.may_contain_trace(&span.trace_id));
//! assert_eq!(read_traces(&store, &root, &meta, &[span.trace_id]).await?, vec![span]);
//! # Ok(())
//! # }
//! ```
//!
//! Log records have their own block layout in [`logs`] (same directory protocol, their own
//! columns, sorted by trace ID with a trace-ID bloom filter in `meta.json`).
//!
//! It must not decide *when* blocks are written, compacted or deleted, hold state between
//! calls (a [`FooterCache`] is owned and passed in by the caller), or touch the WAL: that is
//! `faultline-storage`'s job. Every byte it reads is treated as hostile: a damaged block yields
//! a [`BlockError`], never a panic.
#![deny(missing_docs)]

mod blocks;
mod bloom;
mod codec;
mod decode;
mod edges;
mod encode;
mod error;
mod fasthash;
mod footer_cache;
pub mod logs;
mod meta;
mod prefetch;
mod prefix;
mod query;
mod read;
mod schema;

pub use blocks::{
    data_path, delete_block, list_blocks, list_orphans, meta_path, write_block, write_block_from,
    SpanSource, DATA_FILE, META_FILE,
};
pub use bloom::TraceBloom;
pub use edges::EdgeTable;
pub use error::BlockError;
pub use footer_cache::FooterCache;
pub use meta::{BlockId, BlockInfo, BlockMeta};
pub use query::{
    dependencies, dependencies_cached, load_footer, read_all, read_edge_spans, read_traces,
    read_traces_cached, search, search_cached,
};
pub use schema::{BlockSettings, FORMAT_VERSION, OLDEST_READABLE_FORMAT};

/// Time in nanoseconds since the Unix epoch (re-exported for callers of this crate's API).
pub use faultline_model::UnixNanos;

#[cfg(test)]
mod testgen;
#[cfg(test)]
mod tests;
