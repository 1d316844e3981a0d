//! The per-block bloom filter over trace IDs.

use base64::Engine;
use faultline_model::TraceId;

use crate::BlockError;

/// Bits per distinct trace ID; with [`HASHES`] probes this gives a ~1% false-positive rate.
const BITS_PER_ITEM: f64 = 9.6;
/// Probes per ID (optimal for ~1% at 9.6 bits per item).
const HASHES: u32 = 7;

/// A bloom filter over the trace IDs of one block (~1% false positives), so that trace-by-ID
/// lookups skip blocks without touching their data files.
///
/// Layout: `bits` is a little-endian array of `u64` words; bit `j` lives in word `j / 64` at
/// position `j % 64`. For an ID with halves `a = le_u64(id[0..8])`, `b = le_u64(id[8..16])`,
/// `h1 = splitmix64(a ^ splitmix64(b))`, `h2 = splitmix64(h1) | 1`, and probe `i` (0-based, up
/// to `hashes`) sets bit `(h1 + i * h2) mod m` (wrapping `u64` arithmetic, `m` = bit count).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TraceBloom {
    hashes: u32,
    words: Vec<u64>,
}

impl TraceBloom {
    /// An empty filter sized for `expected` distinct IDs.
    pub fn with_capacity(expected: usize) -> Self {
        let bits = ((expected.max(1) as f64) * BITS_PER_ITEM).ceil() as usize;
        Self {
            hashes: HASHES,
            words: vec![0; bits.div_ceil(64).max(1)],
        }
    }

    /// Adds an ID.
    pub fn insert(&mut self, id: &TraceId) {
        let m = self.bit_count();
        for bit in probes(id, self.hashes, m) {
            if let Some(w) = self.words.get_mut((bit / 64) as usize) {
                *w |= 1 << (bit % 64);
            }
        }
    }

    /// False when `id` was certainly never inserted.
    pub fn may_contain(&self, id: &TraceId) -> bool {
        let m = self.bit_count();
        probes(id, self.hashes, m).all(|bit| {
            self.words
                .get((bit / 64) as usize)
                .is_some_and(|w| w & (1 << (bit % 64)) != 0)
        })
    }

    /// Number of probes per ID.
    pub fn hashes(&self) -> u32 {
        self.hashes
    }

    /// The bit array as base64 of little-endian `u64` words (the form stored in `meta.json`).
    pub fn bits_base64(&self) -> String {
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Rebuilds a filter from its stored form; rejects anything this code would not write.
    pub fn from_parts(hashes: u32, bits_base64: &str) -> Result<Self, BlockError> {
        let bad = |d: String| BlockError::corrupt("meta.json trace_bloom", d);
        if !(1..=32).contains(&hashes) {
            return Err(bad(format!("{hashes} hashes is out of range 1..=32")));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(bits_base64)
            .map_err(|e| bad(format!("bits are not base64: {e}")))?;
        if bytes.is_empty() || bytes.len() % 8 != 0 {
            return Err(bad(format!(
                "bit array of {} bytes is not a non-empty multiple of 8",
                bytes.len()
            )));
        }
        let words = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect();
        Ok(Self { hashes, words })
    }

    fn bit_count(&self) -> u64 {
        self.words.len() as u64 * 64
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn probes(id: &TraceId, hashes: u32, m: u64) -> impl Iterator<Item = u64> {
    let mut a = [0u8; 8];
    let mut b = [0u8; 8];
    a.copy_from_slice(&id.0[..8]);
    b.copy_from_slice(&id.0[8..]);
    let (a, b) = (u64::from_le_bytes(a), u64::from_le_bytes(b));
    let h1 = splitmix64(a ^ splitmix64(b));
    let h2 = splitmix64(h1) | 1;
    (0..u64::from(hashes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> TraceId {
        let mut b = [0u8; 16];
        b[8..].copy_from_slice(&n.to_be_bytes());
        TraceId(b)
    }

    #[test]
    fn no_false_negatives_and_about_one_percent_false_positives() {
        let mut bloom = TraceBloom::with_capacity(10_000);
        for n in 0..10_000 {
            bloom.insert(&id(n));
        }
        assert!((0..10_000).all(|n| bloom.may_contain(&id(n))));
        let fp = (1_000_000..1_100_000)
            .filter(|n| bloom.may_contain(&id(*n)))
            .count();
        // 1% expected; 2% leaves room for variance without hiding a broken hash.
        assert!(fp < 2_000, "{fp} false positives in 100000");
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut bloom = TraceBloom::with_capacity(3);
        bloom.insert(&id(7));
        let back = TraceBloom::from_parts(bloom.hashes(), &bloom.bits_base64()).unwrap();
        assert_eq!(back, bloom);
        assert!(TraceBloom::from_parts(0, &bloom.bits_base64()).is_err());
        assert!(TraceBloom::from_parts(7, "!!").is_err());
        assert!(TraceBloom::from_parts(7, "").is_err());
        assert!(TraceBloom::from_parts(7, "AAAA").is_err());
    }
}
