//! A small, fast, unkeyed hasher (the multiply-rotate scheme of rustc's `FxHasher`) for the
//! encoder's lookup tables. std's SipHash took a tenth of the CPU of writing a block.
//!
//! Unkeyed means predictable, so it is only used where clients cannot choose what gets
//! inserted: tables keyed by pointers, or by keys this crate chose (a client key that collides
//! with one only costs that one lookup a longer probe).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// See the module documentation.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // The multiply leaves the best-mixed bits at the top, but hashbrown picks buckets with
        // the low bits: rotate them down (as rustc-hash 2 does).
        self.hash.rotate_left(26)
    }
}

/// Builds [`FastHasher`]s.
pub(crate) type BuildFast = BuildHasherDefault<FastHasher>;

/// A `HashMap` using [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildFast>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(t: T) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(t)
    }

    #[test]
    fn distinguishes_nearby_keys() {
        let keys = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "http.method",
            "http.methoe",
            "12345678",
            "123456789",
        ];
        let mut hashes: Vec<u64> = keys.iter().map(hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), keys.len());
        assert_ne!(hash(1usize), hash(2usize));
        let mut m: FastMap<String, usize> = FastMap::default();
        for (i, k) in keys.iter().enumerate() {
            m.insert((*k).to_owned(), i);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.get(*k), Some(&i));
        }
    }
}
