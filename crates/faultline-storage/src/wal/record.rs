//! The WAL record codec: `[len u32 LE][crc32c u32 LE][kind u8][payload]`.
//!
//! `len` counts the payload bytes only; the CRC-32C covers the kind byte followed by the
//! payload, so a flipped kind is caught as well as a flipped payload byte. Decoding never
//! trusts `len` beyond [`MAX_PAYLOAD_LEN`], so a corrupt length cannot make replay allocate
//! gigabytes.

use std::io::{self, Read};

/// Bytes before the payload: length, checksum and kind.
pub const HEADER_LEN: usize = 9;

/// Largest payload accepted; anything longer is treated as corruption. Well above the 16 MiB
/// request limit so that a legitimate batch always fits.
pub const MAX_PAYLOAD_LEN: usize = 256 * 1024 * 1024;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// An OTLP `TracesData` protobuf.
    Traces,
    /// An OTLP `LogsData` protobuf (written to the log WAL, `wal-logs/`).
    Logs,
    /// A kind this version does not know (written by a newer version); skipped on replay.
    Unknown(u8),
}

impl RecordKind {
    /// The byte stored in the record.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Traces => 1,
            Self::Logs => 2,
            Self::Unknown(b) => b,
        }
    }

    /// The kind for a stored byte.
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::Traces,
            2 => Self::Logs,
            other => Self::Unknown(other),
        }
    }
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// What the payload is.
    pub kind: RecordKind,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// Why decoding stopped before the end of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeStop {
    /// The input ended inside a record: a torn write.
    Truncated,
    /// The checksum did not match.
    BadChecksum,
    /// The length field is larger than [`MAX_PAYLOAD_LEN`].
    BadLength,
}

impl std::fmt::Display for DecodeStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Truncated => "record cut short",
            Self::BadChecksum => "checksum mismatch",
            Self::BadLength => "implausible record length",
        })
    }
}

/// The checksum stored in a record header.
pub fn checksum(kind: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload)
}

/// Appends one encoded record to `out`. Fails only when the payload exceeds
/// [`MAX_PAYLOAD_LEN`].
pub fn encode(kind: RecordKind, payload: &[u8], out: &mut Vec<u8>) -> Result<(), usize> {
    let header = header(kind, payload)?;
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// The header of a record of `payload`. Fails only when the payload exceeds
/// [`MAX_PAYLOAD_LEN`].
fn header(kind: RecordKind, payload: &[u8]) -> Result<[u8; HEADER_LEN], usize> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= MAX_PAYLOAD_LEN)
        .ok_or(payload.len())?;
    let kind = kind.to_byte();
    let mut header = [0; HEADER_LEN];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..8].copy_from_slice(&checksum(kind, payload).to_le_bytes());
    header[8] = kind;
    Ok(header)
}

/// A record ready for the WAL writer: its header, and the payload it covers, shared rather
/// than copied (the writer hands both to the kernel as they are, with one `writev` per group).
#[derive(Clone, Debug)]
pub struct Encoded {
    header: [u8; HEADER_LEN],
    payload: bytes::Bytes,
}

impl Encoded {
    /// Checksums `payload` as a record of `kind`. Fails only when the payload exceeds
    /// [`MAX_PAYLOAD_LEN`], with its length.
    pub fn new(kind: RecordKind, payload: bytes::Bytes) -> Result<Self, usize> {
        Ok(Self {
            header: header(kind, &payload)?,
            payload,
        })
    }

    /// Bytes the record takes in the WAL.
    pub fn wal_bytes(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// The record's bytes as two slices, header then payload: together exactly what [`encode`]
    /// writes.
    pub fn io_slices(&self) -> [io::IoSlice<'_>; 2] {
        [
            io::IoSlice::new(&self.header),
            io::IoSlice::new(&self.payload),
        ]
    }
}

/// Reads records one by one from a byte stream, tracking the offset of the end of the last
/// good record so that a torn tail can be cut off there.
pub struct RecordReader<R> {
    inner: R,
    good_end: u64,
}

/// One step of [`RecordReader::next_record`].
#[derive(Debug)]
pub enum ReadStep {
    /// A complete, checksummed record.
    Record(Record),
    /// Clean end of input, exactly at a record boundary.
    End,
    /// Decoding stopped at [`RecordReader::good_end`] for this reason.
    Stop(DecodeStop),
}

impl<R: Read> RecordReader<R> {
    /// Starts reading at offset 0 of `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, good_end: 0 }
    }

    /// Offset just past the last complete, valid record returned.
    pub fn good_end(&self) -> u64 {
        self.good_end
    }

    /// The next record, a clean end, or the reason decoding cannot go on. I/O errors other
    /// than an early end of input are returned as errors.
    pub fn next_record(&mut self) -> io::Result<ReadStep> {
        let mut header = [0u8; HEADER_LEN];
        match read_full(&mut self.inner, &mut header)? {
            0 => return Ok(ReadStep::End),
            n if n < HEADER_LEN => return Ok(ReadStep::Stop(DecodeStop::Truncated)),
            _ => {}
        }
        let [l0, l1, l2, l3, c0, c1, c2, c3, kind] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        if len > MAX_PAYLOAD_LEN {
            return Ok(ReadStep::Stop(DecodeStop::BadLength));
        }
        // Grow the buffer as bytes actually arrive rather than trusting `len` up front: a
        // corrupt length within the cap must not allocate far more than the file holds.
        let mut payload = Vec::new();
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut payload)?;
        if got < len {
            return Ok(ReadStep::Stop(DecodeStop::Truncated));
        }
        if checksum(kind, &payload) != crc {
            return Ok(ReadStep::Stop(DecodeStop::BadChecksum));
        }
        self.good_end += (HEADER_LEN + len) as u64;
        Ok(ReadStep::Record(Record {
            kind: RecordKind::from_byte(kind),
            payload,
        }))
    }
}

/// Fills `buf` as far as the input allows; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decodes every record of an in-memory buffer: the good records and, if decoding stopped
/// early, why and where.
pub fn decode_all(buf: &[u8]) -> (Vec<Record>, Option<(u64, DecodeStop)>) {
    let mut reader = RecordReader::new(buf);
    let mut records = Vec::new();
    loop {
        // Reading from a slice cannot fail with an I/O error.
        match reader.next_record() {
            Ok(ReadStep::Record(r)) => records.push(r),
            Ok(ReadStep::End) | Err(_) => return (records, None),
            Ok(ReadStep::Stop(why)) => return (records, Some((reader.good_end(), why))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode_all(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            encode(r.kind, &r.payload, &mut out).unwrap();
        }
        out
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(k, payload)| {
            Record {
                kind: RecordKind::from_byte(k),
                payload,
            }
        })
    }

    #[test]
    fn a_queued_record_writes_the_bytes_encode_does() {
        let payload = bytes::Bytes::from_static(b"some otlp bytes");
        let mut direct = Vec::new();
        encode(RecordKind::Logs, &payload, &mut direct).unwrap();
        let queued = Encoded::new(RecordKind::Logs, payload).unwrap();
        let written: Vec<u8> = queued.io_slices().iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(queued.wal_bytes(), direct.len());
        assert_eq!(written, direct);
    }

    #[test]
    fn layout_is_as_documented() {
        let mut out = Vec::new();
        encode(RecordKind::Traces, b"abc", &mut out).unwrap();
        assert_eq!(&out[0..4], &3u32.to_le_bytes());
        assert_eq!(&out[4..8], &checksum(1, b"abc").to_le_bytes());
        assert_eq!(out[8], 1);
        assert_eq!(&out[9..], b"abc");
    }

    #[test]
    fn implausible_length_stops_without_allocating() {
        let mut buf = vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1];
        buf.extend_from_slice(&[0; 16]);
        let (records, stop) = decode_all(&buf);
        assert!(records.is_empty());
        assert_eq!(stop, Some((0, DecodeStop::BadLength)));
        let mut buf = (MAX_PAYLOAD_LEN as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&[0; 5]);
        assert_eq!(decode_all(&buf).1, Some((0, DecodeStop::Truncated)));
    }

    proptest! {
        #[test]
        fn records_round_trip(records in proptest::collection::vec(arb_record(), 0..20)) {
            let buf = encode_all(&records);
            let (decoded, stop) = decode_all(&buf);
            prop_assert_eq!(stop, None);
            prop_assert_eq!(decoded, records);
        }

        #[test]
        fn truncation_yields_a_prefix(
            records in proptest::collection::vec(arb_record(), 1..10),
            cut in any::<prop::sample::Index>(),
        ) {
            let buf = encode_all(&records);
            let cut = cut.index(buf.len() + 1);
            let (decoded, stop) = decode_all(&buf[..cut]);
            prop_assert!(decoded.len() <= records.len());
            prop_assert_eq!(&decoded[..], &records[..decoded.len()]);
            let good: usize = decoded.iter().map(|r| HEADER_LEN + r.payload.len()).sum();
            match stop {
                None => prop_assert_eq!(good, cut),
                Some((at, why)) => {
                    prop_assert_eq!(at as usize, good);
                    prop_assert_eq!(why, DecodeStop::Truncated);
                }
            }
        }

        #[test]
        fn bit_flips_yield_a_prefix(
            records in proptest::collection::vec(arb_record(), 1..10),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        ) {
            let mut buf = encode_all(&records);
            let len = buf.len();
            let mut first = len;
            for (at, bit) in flips {
                let i = at.index(len);
                buf[i] ^= 1 << bit;
                first = first.min(i);
            }
            let (decoded, stop) = decode_all(&buf);
            prop_assert!(decoded.len() <= records.len());
            prop_assert_eq!(&decoded[..], &records[..decoded.len()]);
            // Every record wholly before the first flipped byte survives.
            let mut intact = 0;
            let mut end = 0;
            for r in &records {
                end += HEADER_LEN + r.payload.len();
                if end <= first { intact += 1; } else { break; }
            }
            prop_assert!(decoded.len() >= intact);
            if decoded.len() < records.len() {
                prop_assert!(stop.is_some());
            }
        }
    }
}
