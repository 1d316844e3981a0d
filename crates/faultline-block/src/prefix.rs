//! Shared-prefix cells: a string stored relative to another string of the same row (a URL path
//! relative to its route), as the number of the reference's bytes to drop from its end and the
//! bytes that follow what is left.
//!
//! A cell is a LEB128 varint `drop`, then the `suffix` bytes; the value is
//! `reference[..reference.len() - drop]` followed by `suffix`. Without a reference (the row has
//! none) the reference is the empty string, so `drop` is 0 and the suffix is the whole value.
//! The encoder keeps the longest common prefix, so `/api/orders/1234` after the route
//! `/api/orders` is `0`, `/1234`, and `/orders/1234` after `/orders/{id}` is `4`, `1234`: cells of
//! one route differ only where the values do, which the column's dictionary and zstd exploit.

use crate::codec::{self, Reader};
use crate::BlockError;

/// Appends the cell of `value` relative to `reference` to `out`.
pub(crate) fn encode(reference: &str, value: &str, out: &mut Vec<u8>) {
    let shared = common_prefix(reference.as_bytes(), value.as_bytes());
    codec::put_varint(out, (reference.len() - shared) as u64);
    out.extend_from_slice(value.as_bytes().get(shared..).unwrap_or_default());
}

/// The length of the longest common prefix of `a` and `b`, compared 8 bytes at a time (byte
/// by byte it was 1.7% of the server's CPU: a route and its paths share 10–30 bytes).
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut shared = 0;
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    for (x, y) in (&mut wa).zip(&mut wb) {
        let mut v = [0u8; 8];
        v.copy_from_slice(x);
        let mut w = [0u8; 8];
        w.copy_from_slice(y);
        // Little-endian: the lowest differing bit is in the first differing byte.
        let diff = u64::from_le_bytes(v) ^ u64::from_le_bytes(w);
        if diff != 0 {
            return shared + (diff.trailing_zeros() / 8) as usize;
        }
        shared += 8;
    }
    let (ra, rb) = (
        a.get(shared..).unwrap_or_default(),
        b.get(shared..).unwrap_or_default(),
    );
    shared + ra.iter().zip(rb).take_while(|(x, y)| x == y).count()
}

/// The string a cell stands for, given the reference's bytes (empty when the row has none).
/// A `drop` larger than the reference, or a result that is not UTF-8, is corrupt.
pub(crate) fn decode(reference: &[u8], cell: &[u8], column: &str) -> Result<String, BlockError> {
    let what = "shared-prefix cell";
    let mut r = Reader::new(cell, what);
    let drop = r.varint()?;
    let keep = usize::try_from(drop)
        .ok()
        .and_then(|d| reference.len().checked_sub(d))
        .ok_or_else(|| {
            BlockError::corrupt(
                format!("column {column}"),
                format!("drops {drop} bytes of a {}-byte reference", reference.len()),
            )
        })?;
    let suffix = r.rest();
    let mut out = Vec::with_capacity(keep + suffix.len());
    out.extend_from_slice(reference.get(..keep).unwrap_or_default());
    out.extend_from_slice(suffix);
    String::from_utf8(out).map_err(|_| BlockError::corrupt(format!("column {column}"), "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cell(reference: &str, value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode(reference, value, &mut out);
        out
    }

    #[test]
    fn keeps_the_longest_common_prefix() {
        assert_eq!(cell("/api/orders", "/api/orders/1234"), b"\x00/1234");
        assert_eq!(cell("/orders/{id}", "/orders/1234"), b"\x041234");
        assert_eq!(cell("", "/x"), b"\x00/x");
        assert_eq!(cell("/a/b", "/a"), b"\x02");
        assert_eq!(cell("/x", ""), b"\x02");
    }

    #[test]
    fn damaged_cells_are_errors() {
        assert!(decode(b"/a", b"\x03", "c").is_err());
        assert!(decode(b"/a", b"", "c").is_err());
        assert!(decode(b"/a", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "c").is_err());
        // Dropping half of a two-byte character leaves invalid UTF-8.
        assert!(decode("é".as_bytes(), b"\x01", "c").is_err());
    }

    proptest! {
        #[test]
        fn common_prefix_is_the_bytewise_one(a in proptest::collection::vec(0u8..4, 0..40), b in proptest::collection::vec(0u8..4, 0..40)) {
            let bytewise = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(common_prefix(&a, &b), bytewise);
            let mut longer = a.clone();
            longer.extend_from_slice(&b);
            prop_assert_eq!(common_prefix(&a, &longer), a.len());
        }

        #[test]
        fn round_trips(reference in "(/[a-zé{}]{0,4}){0,4}", value in "(/[a-zé0-9]{0,4}){0,4}") {
            let c = cell(&reference, &value);
            prop_assert_eq!(decode(reference.as_bytes(), &c, "c").unwrap(), value.clone());
            // The empty reference stores the whole value.
            prop_assert_eq!(decode(b"", &cell("", &value), "c").unwrap(), value);
        }
    }
}
