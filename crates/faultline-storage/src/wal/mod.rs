//! Write-ahead log: numbered segment files of checksummed records under `<data_dir>/wal/`.
//!
//! Every batch is written here, and fsynced unless the caller opted out, before it is
//! acknowledged. Segment `N` is the file `<N as 20 decimal digits>.wal`; the store rotates to
//! `N + 1` whenever it cuts the head, so a block built from a head can name the last segment it
//! covers and those segments can be deleted once the block is committed.

pub mod record;
mod replay;
mod writer;

use std::path::{Path, PathBuf};

pub use record::{Record, RecordKind};
pub use replay::{replay, ReplayStats};
pub use writer::{Pending, Wal, WalCounters, WalOptions, WalPermit};

use crate::StorageError;

const SEGMENT_SUFFIX: &str = ".wal";

/// The file name of segment `seq`.
pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
}

/// Sequence numbers of the segment files in `dir`, ascending. Other files are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name
            .strip_suffix(SEGMENT_SUFFIX)
            .and_then(|n| n.parse::<u64>().ok())
        {
            out.push(seq);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Deletes every segment with a sequence number `<= through`; returns how many were removed.
pub fn delete_segments_through(dir: &Path, through: u64) -> Result<usize, StorageError> {
    let mut removed = 0;
    for seq in list_segments(dir)? {
        if seq > through {
            break;
        }
        let path = segment_path(dir, seq);
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&path, e)),
        }
    }
    Ok(removed)
}

/// Makes a directory entry change (create, rename) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}
