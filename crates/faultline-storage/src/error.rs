//! Storage errors.

/// Everything that can go wrong in the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The write path is over its memory budget; the caller should retry later.
    #[error("storage is over its memory budget ({used} of {budget} bytes in use); retry after {retry_after_secs}s")]
    Overloaded {
        /// Bytes currently reserved.
        used: usize,
        /// The configured budget.
        budget: usize,
        /// Suggested wait before retrying, in seconds.
        retry_after_secs: u64,
    },
    /// One batch is too large for a WAL record.
    #[error("batch of {bytes} bytes exceeds the largest WAL record ({max} bytes)")]
    BatchTooLarge {
        /// Size of the batch's OTLP encoding.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A setting makes no sense (e.g. a zero memory budget).
    #[error("invalid storage configuration: {0}")]
    InvalidConfig(String),
    /// The store is shutting down and takes no more writes.
    #[error("storage is shutting down")]
    ShuttingDown,
    /// A local file operation failed (WAL, data directory).
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The object store failed.
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// A block could not be written, listed or read.
    #[error("block error: {0}")]
    Block(#[from] faultline_block::BlockError),
    /// A Parquet block could not be written or read.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// An Arrow conversion failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Stored data is not in the expected form.
    #[error("corrupt data in {what}: {detail}")]
    Corrupt {
        /// Which file or record.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
