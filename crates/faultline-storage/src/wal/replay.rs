//! Reading the WAL back on start.

use std::fs::OpenOptions;
use std::io::BufReader;
use std::path::Path;

use super::record::{ReadStep, Record, RecordReader};
use super::{list_segments, segment_path};
use crate::StorageError;

/// What replay found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Segments read (those after the `after` bound).
    pub segments: Vec<u64>,
    /// Records handed to the callback.
    pub records: u64,
    /// Bytes cut off a torn or corrupt tail of the last segment.
    pub truncated_bytes: u64,
    /// Older segments whose rest was skipped because of corruption in the middle.
    pub corrupt_segments: Vec<u64>,
}

/// Replays every record of the segments numbered above `after`, in order.
///
/// A torn or corrupt tail of the last segment is what a crash mid-write leaves, so it is cut off
/// (with a warning) and the file is fsynced at its new length. Corruption inside an older
/// segment cannot come from a crash (that segment was complete before the next one was
/// created); the rest of that segment is skipped with an error log and replay goes on with the
/// next segment, because refusing to start would lose far more data.
pub fn replay(
    dir: &Path,
    after: Option<u64>,
    mut on_record: impl FnMut(u64, Record),
) -> Result<ReplayStats, StorageError> {
    let segments: Vec<u64> = list_segments(dir)?
        .into_iter()
        .filter(|s| after.is_none_or(|a| *s > a))
        .collect();
    let mut stats = ReplayStats {
        segments: segments.clone(),
        ..ReplayStats::default()
    };
    let last = segments.last().copied();
    for seq in segments {
        let path = segment_path(dir, seq);
        let file = std::fs::File::open(&path).map_err(|e| StorageError::io(&path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| StorageError::io(&path, e))?
            .len();
        let mut reader = RecordReader::new(BufReader::with_capacity(1 << 20, file));
        loop {
            match reader
                .next_record()
                .map_err(|e| StorageError::io(&path, e))?
            {
                ReadStep::Record(r) => {
                    stats.records += 1;
                    on_record(seq, r);
                }
                ReadStep::End => break,
                ReadStep::Stop(why) => {
                    let at = reader.good_end();
                    if Some(seq) == last {
                        tracing::warn!(
                            segment = %path.display(),
                            offset = at,
                            cut_bytes = file_len.saturating_sub(at),
                            "WAL tail is incomplete ({why}); truncating it (an interrupted write)"
                        );
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(|e| StorageError::io(&path, e))?;
                        f.set_len(at)
                            .and_then(|()| f.sync_data())
                            .map_err(|e| StorageError::io(&path, e))?;
                        stats.truncated_bytes = file_len.saturating_sub(at);
                    } else {
                        tracing::error!(
                            segment = %path.display(),
                            offset = at,
                            skipped_bytes = file_len.saturating_sub(at),
                            "WAL segment is corrupt in the middle ({why}); skipping the rest of it"
                        );
                        stats.corrupt_segments.push(seq);
                    }
                    break;
                }
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::super::record::{encode, RecordKind};
    use super::*;

    fn write_segment(dir: &Path, seq: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for p in payloads {
            encode(RecordKind::Traces, p, &mut buf).unwrap();
        }
        std::fs::write(segment_path(dir, seq), &buf).unwrap();
        buf
    }

    fn collect(dir: &Path, after: Option<u64>) -> (Vec<(u64, Vec<u8>)>, ReplayStats) {
        let mut got = Vec::new();
        let stats = replay(dir, after, |seq, r| got.push((seq, r.payload))).unwrap();
        (got, stats)
    }

    #[test]
    fn torn_tail_of_last_segment_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 1, &[b"a", b"b"]);
        let full = write_segment(dir.path(), 2, &[b"c", b"d"]);
        let path = segment_path(dir.path(), 2);
        std::fs::write(&path, &full[..full.len() - 1]).unwrap();

        let (got, stats) = collect(dir.path(), None);
        let payloads: Vec<_> = got.iter().map(|(s, p)| (*s, p.as_slice())).collect();
        assert_eq!(payloads, vec![(1, &b"a"[..]), (1, b"b"), (2, b"c")],);
        assert_eq!(stats.truncated_bytes, 10 - 1);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 10);
        // A second replay sees a clean log.
        let (again, stats) = collect(dir.path(), None);
        assert_eq!(again.len(), 3);
        assert_eq!(stats.truncated_bytes, 0);
    }

    #[test]
    fn corruption_inside_an_older_segment_skips_its_rest_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = write_segment(dir.path(), 7, &[b"one", b"two", b"three"]);
        old[12 + 9] ^= 0x40; // a payload byte of the second record
        std::fs::write(segment_path(dir.path(), 7), &old).unwrap();
        write_segment(dir.path(), 8, &[b"four"]);

        let (got, stats) = collect(dir.path(), None);
        let payloads: Vec<_> = got.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, vec![&b"one"[..], b"four"]);
        assert_eq!(stats.corrupt_segments, vec![7]);
        // The older segment is left as it was, for inspection.
        assert_eq!(std::fs::read(segment_path(dir.path(), 7)).unwrap(), old);
    }

    #[test]
    fn segments_at_or_below_the_bound_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 3, &[b"old"]);
        write_segment(dir.path(), 4, &[b"new"]);
        std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();
        let (got, stats) = collect(dir.path(), Some(3));
        assert_eq!(got, vec![(4, b"new".to_vec())]);
        assert_eq!(stats.segments, vec![4]);
    }
}
