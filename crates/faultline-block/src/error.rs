//! Block errors.

/// Everything that can go wrong writing, listing or reading blocks.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The object store failed (I/O, missing object, permissions).
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// The Parquet file could not be written or decoded.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building or reading Arrow arrays failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Stored data is not in the form this format version writes.
    #[error("corrupt block data in {what}: {detail}")]
    Corrupt {
        /// Which file, column or record.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// `write_block` was given no spans: a block must hold at least one.
    #[error("a block must contain at least one span")]
    Empty,
    /// The settings cannot produce a valid file (e.g. a zstd level out of range).
    #[error("invalid block settings: {0}")]
    Settings(String),
    /// A blocking encode task panicked or was cancelled.
    #[error("block encoding task failed: {0}")]
    Task(String),
}

impl BlockError {
    /// Shorthand for [`BlockError::Corrupt`].
    pub(crate) fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }
}
