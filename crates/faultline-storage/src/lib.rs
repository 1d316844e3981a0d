//! Durable span storage for Faultline.
//!
//! Data flows `append` → write-ahead log (fsync, group commit) → in-memory head (serves recent
//! queries) → immutable Parquet blocks in an `object_store` (local disk by default) → background
//! compaction and retention. Trace-by-ID, search and listing queries see the head and the blocks
//! as one store. See `docs/storage.md` for the on-disk format.
//!
//! Modules: `wal` (segments, record codec, group-commit writer, replay), `head` (the in-memory
//! index), `lifecycle` (open and crash recovery, cut/flush, compaction, retention), `query`
//! (merging head, flushing heads and blocks), `store` (the [`Store`] handle and appends).
//!
//! Log records take the same path in `logs` ([`LogStore`], reached through [`Store::logs`]):
//! their own WAL directory (`wal-logs/`) and block tree (`logs/`), the same WAL code and commit
//! points.
//!
//! This crate knows nothing of wire protocols: it takes model spans plus the OTLP bytes that
//! describe them, and answers queries in model types. It must not encode or decode Parquet
//! itself (that is `faultline-block`), and it must never acknowledge an append before the
//! promised durability, nor hold unbounded data in memory.
#![deny(missing_docs)]

mod config;
mod cutting;
mod edges;
mod error;
mod head;
mod lifecycle;
mod logs;
#[cfg(test)]
mod pairing_bench;
mod query;
mod store;
#[cfg(test)]
mod test_util;
pub mod wal;

pub use config::{AckMode, AppendBatch, StoreConfig, StoreStats, StoreTuning, TraceData};
pub use error::StorageError;
pub use logs::{LogBatch, LogStore, LogStoreStats};
pub use store::Store;
