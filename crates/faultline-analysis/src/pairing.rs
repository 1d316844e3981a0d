//! The pairing store: call halves waiting for their other half, in arrival order.
//!
//! Every half of the ingest stream is looked up here, and in a busy system the store holds
//! tens of thousands of halves, far more than the CPU caches do. A hash map of the halves
//! themselves (64-byte entries, 8 MB at the default limit) cost two or three cache misses per
//! half: one to look it up, more to insert it and to take it out again when it expired.
//!
//! Here the halves lie in a queue in the order they came, which is also the order they
//! expire and are evicted in, so inserting and expiring read and write the queue's two ends.
//! A table of 4-byte queue positions, hashed by key, finds a half: at the default limit it is
//! about 650 KB and mostly stays cached, so a lookup only reads the queue where a key
//! matches. A half that leaves early (it paired) leaves an empty slot; the queue is compacted
//! when it grows past twice the store's limit, so it stays bounded.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;

/// A waiting half's key: (trace ID, client span ID) as three words.
pub(crate) type Key = [u64; 3];

/// An entry of the store: its key, its deadline and what it carries.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiting<T> {
    pub(crate) key: Key,
    pub(crate) expires_at: u64,
    pub(crate) value: T,
}

/// Halves by key, in arrival order. Positions are sequence numbers: the `n`th half ever
/// inserted has number `n` (modulo 2^32; the queue never holds 2^31 of them).
#[derive(Debug)]
pub(crate) struct PairingStore<T> {
    /// Arrival order; `None` where a half left before its turn.
    queue: VecDeque<Option<Waiting<T>>>,
    /// Sequence number of `queue[0]`.
    front: u32,
    /// Sequence numbers of the waiting halves, by the hash of their key.
    index: HashTable<u32>,
    /// Keys are chosen by clients, so the hash is seeded.
    hasher: foldhash::fast::RandomState,
    /// Halves waiting (`Some` slots of the queue).
    live: usize,
    /// The limit the queue's length is kept near (twice this at most).
    limit: usize,
}

impl<T: Copy> PairingStore<T> {
    /// An empty store whose queue is compacted past twice `limit` slots.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            front: 0,
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            live: 0,
            limit: limit.max(16),
        }
    }

    /// Halves waiting.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Slots of the queue, empty ones included.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.queue.len()
    }

    fn hash(&self, key: &Key) -> u64 {
        hash_key(&self.hasher, key)
    }

    /// The half waiting under `key`, if any.
    pub(crate) fn get(&self, key: &Key) -> Option<&Waiting<T>> {
        let (queue, front) = (&self.queue, self.front);
        let seq = self.index.find(self.hash(key), |seq| {
            slot(queue, front, *seq).is_some_and(|w| w.key == *key)
        })?;
        slot(queue, front, *seq)
    }

    /// Takes the half waiting under `key` out of the store.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<Waiting<T>> {
        let hash = self.hash(key);
        let (queue, front) = (&mut self.queue, self.front);
        let entry = self
            .index
            .find_entry(hash, |seq| {
                slot(queue, front, *seq).is_some_and(|w| w.key == *key)
            })
            .ok()?;
        let (seq, _) = entry.remove();
        self.live -= 1;
        queue
            .get_mut(seq.wrapping_sub(front) as usize)
            .and_then(Option::take)
    }

    /// Adds a half that no waiting half has the key of (the caller looked).
    pub(crate) fn insert(&mut self, key: Key, expires_at: u64, value: T) {
        // At least half the slots are empty then, so compacting costs O(1) per insert.
        if self.queue.len() >= 2 * self.limit.max(self.live) {
            self.compact();
        }
        let seq = self.front.wrapping_add(self.queue.len() as u32);
        self.queue.push_back(Some(Waiting {
            key,
            expires_at,
            value,
        }));
        self.live += 1;
        let hash = self.hash(&key);
        let (queue, front, hasher) = (&self.queue, self.front, &self.hasher);
        self.index.insert_unique(hash, seq, |seq| {
            slot(queue, front, *seq).map_or(0, |w| hash_key(hasher, &w.key))
        });
    }

    /// Takes the oldest waiting half out of the store if `due` says so.
    pub(crate) fn pop_oldest_if(
        &mut self,
        due: impl Fn(&Waiting<T>) -> bool,
    ) -> Option<Waiting<T>> {
        loop {
            match self.queue.front()? {
                None => {
                    self.queue.pop_front();
                    self.front = self.front.wrapping_add(1);
                }
                Some(w) if !due(w) => return None,
                Some(w) => {
                    let (w, seq) = (*w, self.front);
                    self.queue.pop_front();
                    self.front = self.front.wrapping_add(1);
                    let hash = self.hash(&w.key);
                    if let Ok(entry) = self.index.find_entry(hash, |s| *s == seq) {
                        entry.remove();
                    }
                    self.live -= 1;
                    return Some(w);
                }
            }
        }
    }

    /// Drops the empty slots and numbers the halves again from the front.
    fn compact(&mut self) {
        self.queue.retain(Option::is_some);
        self.index.clear();
        let (queue, front, hasher) = (&self.queue, self.front, &self.hasher);
        for (i, w) in queue.iter().enumerate() {
            if let Some(w) = w {
                let seq = front.wrapping_add(i as u32);
                self.index
                    .insert_unique(hash_key(hasher, &w.key), seq, |seq| {
                        slot(queue, front, *seq).map_or(0, |w| hash_key(hasher, &w.key))
                    });
            }
        }
    }
}

/// The hash of `key`: its three words written to the seeded hasher (the table's look-ups and
/// its growth must agree on it, hence one function).
fn hash_key(hasher: &foldhash::fast::RandomState, key: &Key) -> u64 {
    let mut h = hasher.build_hasher();
    for word in key {
        h.write_u64(*word);
    }
    h.finish()
}

/// The half numbered `seq` in a queue whose front is numbered `front`.
fn slot<T>(queue: &VecDeque<Option<Waiting<T>>>, front: u32, seq: u32) -> Option<&Waiting<T>> {
    queue.get(seq.wrapping_sub(front) as usize)?.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Key {
        [i, !i, i.wrapping_mul(0x9e37_79b9)]
    }

    #[test]
    fn halves_are_found_taken_and_expired_in_arrival_order() {
        let mut s: PairingStore<u64> = PairingStore::new(16);
        for i in 0..10 {
            s.insert(key(i), 100 + i, i * 7);
        }
        assert_eq!(s.len(), 10);
        assert_eq!(s.get(&key(3)).map(|w| w.value), Some(21));
        assert!(s.get(&key(10)).is_none());
        assert_eq!(s.remove(&key(3)).map(|w| w.value), Some(21));
        assert!(s.remove(&key(3)).is_none());
        assert!(s.get(&key(3)).is_none());
        assert_eq!(s.len(), 9);
        // Oldest first, the taken one skipped, and only while due.
        let mut expired = Vec::new();
        while let Some(w) = s.pop_oldest_if(|w| w.expires_at <= 105) {
            expired.push(w.value / 7);
        }
        assert_eq!(expired, vec![0, 1, 2, 4, 5]);
        assert_eq!(s.len(), 4);
        assert!(s.get(&key(4)).is_none());
        assert_eq!(s.get(&key(6)).map(|w| w.expires_at), Some(106));
        // A key can wait again once it left.
        s.insert(key(3), 200, 1);
        assert_eq!(s.get(&key(3)).map(|w| w.value), Some(1));
    }

    #[test]
    fn the_queue_stays_bounded_when_halves_leave_early() {
        let mut s: PairingStore<u64> = PairingStore::new(16);
        for i in 0..10_000u64 {
            s.insert(key(i), i, i);
            if i % 10 != 0 {
                assert!(s.remove(&key(i)).is_some());
            }
            // As the service graph does: the oldest leaves when the limit is passed.
            while s.len() > 16 {
                assert!(s.pop_oldest_if(|_| true).is_some());
            }
            assert!(s.slots() <= 2 * 16);
        }
        // Every half still waiting is found after the compactions, and they leave in order.
        for i in (9_840..10_000u64).step_by(10) {
            assert_eq!(s.get(&key(i)).map(|w| w.value), Some(i), "{i}");
        }
        let mut left = Vec::new();
        while let Some(w) = s.pop_oldest_if(|_| true) {
            left.push(w.value);
        }
        assert_eq!(left, (9_840..10_000u64).step_by(10).collect::<Vec<_>>());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_store_past_its_limit_compacts_only_when_half_is_empty() {
        let mut s: PairingStore<u64> = PairingStore::new(16);
        for i in 0..1_000u64 {
            s.insert(key(i), i, i);
        }
        assert_eq!((s.len(), s.slots()), (1_000, 1_000));
        assert!((0..1_000).all(|i| s.get(&key(i)).is_some()));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut s: PairingStore<u32> = PairingStore::new(16);
        s.front = u32::MAX - 3;
        for i in 0..8 {
            s.insert(key(i), 0, i as u32);
        }
        for i in 0..8 {
            assert_eq!(s.get(&key(i)).map(|w| w.value), Some(i as u32));
        }
        assert_eq!(s.remove(&key(5)).map(|w| w.value), Some(5));
        assert_eq!(s.pop_oldest_if(|_| true).map(|w| w.value), Some(0));
        assert_eq!(s.len(), 6);
    }
}
