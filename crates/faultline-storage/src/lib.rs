//! Durable span storage for Faultline.
//!
//! Data flows `append` → write-ahead log (fsync, group commit) → in-memory head (serves recent
//! queries) → immutable Parquet blocks in an `object_store` (local disk by default) → background
//! compaction and retention. Trace-by-ID, search and listing queries see the head and the blocks
//! as one store. See `docs/storage.md` for the on-disk format.
//!
//! This crate knows nothing of wire protocols: it takes model spans plus the OTLP bytes that
//! describe them, and answers queries in model types.
#![deny(missing_docs)]

mod config;
mod error;
mod head;
mod lifecycle;
mod query;
mod store;
#[cfg(test)]
mod test_util;
pub mod wal;

pub use config::{AckMode, AppendBatch, StoreConfig, StoreStats, StoreTuning, TraceData};
pub use error::StorageError;
pub use store::Store;
