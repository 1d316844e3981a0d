//! The `--storage` URL: where blocks live.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;

use crate::ServerError;

/// A parsed `--storage` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageUrl {
    /// A directory on local disk (`file://`).
    File(PathBuf),
    /// Process memory (`memory://`); for tests and throwaway demos.
    Memory,
    /// An S3-compatible bucket and key prefix (`s3://bucket/prefix`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket (may be empty).
        prefix: String,
    },
}

impl StorageUrl {
    /// Parses `file:///abs`, `file://rel`, `memory://` or `s3://bucket/prefix`.
    pub fn parse(url: &str) -> Result<Self, ServerError> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(ServerError::Config(
                    "--storage file:// needs a directory, e.g. file:///var/lib/faultline/blocks"
                        .into(),
                ));
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        if url == "memory://" || url == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(ServerError::Config(
                    "--storage s3:// needs a bucket, e.g. s3://traces/faultline".into(),
                ));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_end_matches('/').to_owned(),
            });
        }
        Err(ServerError::Config(format!(
            "--storage {url:?} is not understood; use file:///dir, memory:// or s3://bucket/prefix"
        )))
    }

    /// Opens the object store this URL names.
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, ServerError> {
        match self {
            Self::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    ServerError::Config(format!(
                        "cannot create block directory {}: {e}",
                        dir.display()
                    ))
                })?;
                let fs =
                    object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                        ServerError::Config(format!(
                            "cannot open block directory {}: {e}",
                            dir.display()
                        ))
                    })?;
                Ok(Arc::new(fs))
            }
            Self::Memory => Ok(Arc::new(object_store::memory::InMemory::new())),
            Self::S3 { .. } => Err(ServerError::Config(
                "S3-compatible storage is not available in this build yet; use a file:// directory"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(
            StorageUrl::parse("file:///a/b").unwrap(),
            StorageUrl::File("/a/b".into())
        );
        assert_eq!(
            StorageUrl::parse("file://rel").unwrap(),
            StorageUrl::File("rel".into())
        );
        assert_eq!(StorageUrl::parse("memory://").unwrap(), StorageUrl::Memory);
        assert_eq!(
            StorageUrl::parse("s3://bkt/some/prefix/").unwrap(),
            StorageUrl::S3 {
                bucket: "bkt".into(),
                prefix: "some/prefix".into()
            }
        );
        assert!(StorageUrl::parse("s3:///x").is_err());
        assert!(StorageUrl::parse("ftp://x").is_err());
        assert!(StorageUrl::parse("file://").is_err());
    }
}
