//! Attribute keys, interned.
//!
//! The same few hundred keys (`http.request.method`, `service.name`, ...) label almost every
//! span, so a server that kept one `String` per attribute allocated, copied and later freed the
//! same bytes millions of times. A [`Key`] is instead a reference into a process-wide table of
//! keys seen before, or an owned string when the table will not take it.
//!
//! The table only grows, so it is bounded: keys longer than [`MAX_INTERNED_LEN`] bytes, and
//! every new key once [`MAX_INTERNED`] are held, stay owned. A client sending random keys thus
//! costs at most the table's bound, and only makes later new keys slower, never wrong.
//!
//! Each thread looks keys up in a cache of its own first, so the shared table is locked only
//! for a key the thread has not met yet. A decoder, which meets the same dozen keys on every
//! span, keeps a [`KeyCache`] in front of that: a comparison of bytes instead of a hash look-up
//! in a thread-local, and no UTF-8 check for a key it already knows.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{OnceLock, RwLock};

/// Most distinct keys the process-wide table holds.
pub const MAX_INTERNED: usize = 8192;
/// Longest key interned, in bytes; longer keys are owned.
pub const MAX_INTERNED_LEN: usize = 128;

/// An attribute key: interned when it is a common one, owned otherwise.
///
/// It reads as a `&str` (it derefs to one), compares, orders and hashes as its text, and is
/// built from any string with `From`. Two interned keys are equal exactly when they are the same
/// table entry, which makes their comparison a pointer comparison.
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    Interned(&'static str),
    Owned(Box<str>),
}

fn table() -> &'static RwLock<HashSet<&'static str>> {
    static TABLE: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    TABLE.get_or_init(|| RwLock::new(HashSet::new()))
}

thread_local! {
    static CACHE: RefCell<HashSet<&'static str, foldhash::fast::RandomState>> =
        RefCell::new(HashSet::default());
}

/// The table's entry for `s`, added if the table has room; `None` when `s` stays owned.
fn intern(s: &str) -> Option<&'static str> {
    if s.len() > MAX_INTERNED_LEN {
        return None;
    }
    if let Some(hit) = CACHE.with(|c| c.borrow().get(s).copied()) {
        return Some(hit);
    }
    let found = {
        let t = table().read().unwrap_or_else(|e| e.into_inner());
        match t.get(s) {
            Some(e) => Some(*e),
            // Full: every new key stays owned, without taking the write lock each time.
            None if t.len() >= MAX_INTERNED => return None,
            None => None,
        }
    };
    let entry = match found {
        Some(e) => e,
        None => admit(
            &mut table().write().unwrap_or_else(|e| e.into_inner()),
            s,
            MAX_INTERNED,
        )?,
    };
    CACHE.with(|c| c.borrow_mut().insert(entry));
    Some(entry)
}

/// The entry of `table` for `s`, added when the table holds fewer than `max` keys.
fn admit(table: &mut HashSet<&'static str>, s: &str, max: usize) -> Option<&'static str> {
    if let Some(e) = table.get(s) {
        return Some(e);
    }
    if table.len() >= max {
        return None;
    }
    // The one place keys are leaked: bounded by MAX_INTERNED × MAX_INTERNED_LEN.
    let e: &'static str = Box::leak(Box::from(s));
    table.insert(e);
    Some(e)
}

/// Slots of a [`KeyCache`]: several times the distinct keys of a typical export request (span,
/// event and scope keys; resource keys mostly come from the resource cache), so that two keys
/// of one request seldom share a slot and evict each other on every span (with 128 slots they
/// did: 2% more instructions per span in the decode example). 4 KiB, zeroed per request.
const KEY_CACHE_SLOTS: usize = 256;

/// A small cache of interned keys, looked up by their bytes, for one decoder.
///
/// Direct-mapped: a key has one slot, chosen by a hash of its length and last (up to) eight
/// bytes, and a key remembered there replaces the one before. A hit is a key whose text is
/// exactly the bytes looked up, so it is what [`Key::from`] would give for them: the table only
/// grows, and its entry for a text never changes. Only interned keys are remembered; an owned
/// key (too long, or the table full) is built again each time.
pub(crate) struct KeyCache {
    slots: [Option<&'static str>; KEY_CACHE_SLOTS],
}

impl KeyCache {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        Self {
            slots: [None; KEY_CACHE_SLOTS],
        }
    }

    fn slot(bytes: &[u8]) -> usize {
        let tail = match bytes.last_chunk::<8>() {
            Some(tail) => u64::from_le_bytes(*tail),
            None => bytes.iter().fold(0u64, |h, &b| (h << 8) | u64::from(b)),
        };
        let h = (tail ^ bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> (64 - KEY_CACHE_SLOTS.trailing_zeros())) as usize
    }

    /// The interned key whose text is `bytes`, when this cache holds it. Its text is valid
    /// UTF-8, so a hit needs no check of `bytes`.
    #[inline]
    pub(crate) fn get(&self, bytes: &[u8]) -> Option<Key> {
        match self.slots[Self::slot(bytes)] {
            Some(e) if e.as_bytes() == bytes => Some(Key(Repr::Interned(e))),
            _ => None,
        }
    }

    /// Remembers `key` for [`KeyCache::get`] of its text, when it is interned.
    pub(crate) fn remember(&mut self, key: &Key) {
        if let Repr::Interned(e) = key.0 {
            self.slots[Self::slot(e.as_bytes())] = Some(e);
        }
    }
}

impl Key {
    /// The key's text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Interned(s) => s,
            Repr::Owned(s) => s,
        }
    }

    /// Whether the key is a shared table entry (it then takes no memory of its own).
    pub fn is_interned(&self) -> bool {
        matches!(self.0, Repr::Interned(_))
    }

    /// Bytes this key holds on the heap by itself: none when interned.
    pub fn heap_size(&self) -> usize {
        match &self.0 {
            Repr::Interned(_) => 0,
            Repr::Owned(s) => s.len(),
        }
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        match intern(s) {
            Some(e) => Self(Repr::Interned(e)),
            None => Self(Repr::Owned(Box::from(s))),
        }
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        match intern(&s) {
            Some(e) => Self(Repr::Interned(e)),
            None => Self(Repr::Owned(s.into_boxed_str())),
        }
    }
}

impl From<&String> for Key {
    fn from(s: &String) -> Self {
        Self::from(s.as_str())
    }
}

impl From<Key> for String {
    fn from(k: Key) -> Self {
        match k.0 {
            Repr::Interned(s) => s.to_owned(),
            Repr::Owned(s) => s.into_string(),
        }
    }
}

impl Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Key {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // One table entry per text: same entry exactly when same text.
            (Repr::Interned(a), Repr::Interned(b)) => std::ptr::eq(*a, *b),
            _ => self.as_str() == other.as_str(),
        }
    }
}

impl Eq for Key {}

impl PartialEq<str> for Key {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Key {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Key {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Key> for str {
    fn eq(&self, other: &Key) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Key> for &str {
    fn eq(&self, other: &Key) -> bool {
        *self == other.as_str()
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As the text, so that maps keyed by `Key` can be looked up by `&str`.
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Default for Key {
    fn default() -> Self {
        Self::from("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn common_keys_share_one_entry_and_compare_by_it() {
        let a = Key::from("http.request.method");
        let b = Key::from(String::from("http.request.method"));
        assert!(a.is_interned() && b.is_interned());
        assert_eq!(a, b);
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr());
        assert_eq!(a.heap_size(), 0);
        assert_ne!(a, Key::from("http.response.status_code"));
    }

    #[test]
    fn long_keys_stay_owned_and_still_equal_their_text() {
        let long = "k".repeat(MAX_INTERNED_LEN + 1);
        let k = Key::from(long.as_str());
        assert!(!k.is_interned());
        assert_eq!(k.heap_size(), long.len());
        assert_eq!(k, Key::from(long.clone()));
        assert_eq!(k, long.as_str());
        assert_eq!(String::from(k), long);
    }

    #[test]
    fn an_owned_key_equals_an_interned_one_of_the_same_text() {
        let interned = Key::from("db.system.name");
        let owned = Key(Repr::Owned(Box::from("db.system.name")));
        assert_eq!(interned, owned);
        assert_eq!(owned, interned);
        // Hash agrees with equality and with `str`, so maps can be read by `&str`.
        let mut m: HashMap<Key, u32> = HashMap::new();
        m.insert(owned, 7);
        assert_eq!(m.get(&interned), Some(&7));
        assert_eq!(m.get("db.system.name"), Some(&7));
    }

    #[test]
    fn keys_interned_on_one_thread_are_found_on_another() {
        let here = Key::from("messaging.destination.name");
        let there = std::thread::spawn(|| Key::from("messaging.destination.name"))
            .join()
            .expect("thread ran");
        assert!(here.is_interned() && there.is_interned());
        assert!(std::ptr::eq(here.as_str(), there.as_str()));
    }

    #[test]
    fn the_table_stops_growing_at_its_bound() {
        let mut t = HashSet::new();
        let a = admit(&mut t, "a", 2).expect("room");
        assert!(admit(&mut t, "b", 2).is_some());
        assert_eq!(admit(&mut t, "c", 2), None);
        // Keys already held are still found once the table is full.
        assert!(std::ptr::eq(admit(&mut t, "a", 2).expect("held"), a));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn the_key_cache_finds_exactly_the_keys_it_remembered() {
        let mut cache = KeyCache::new();
        let keys = [
            "http.route",
            "http.routf",
            "http.rout",
            "ttp.route",
            "url.path",
            "url.pati",
            "",
            "a",
            "b",
        ];
        for k in keys {
            assert!(cache.get(k.as_bytes()).is_none(), "{k} before remembering");
        }
        for k in keys {
            cache.remember(&Key::from(k));
        }
        // Each hit is exactly its own text; keys differing in their last byte, one byte
        // shorter or longer, or only in their first byte are different keys.
        let mut hits = 0;
        for k in keys {
            if let Some(hit) = cache.get(k.as_bytes()) {
                assert_eq!(hit, k);
                assert!(hit.is_interned());
                assert!(std::ptr::eq(hit.as_str(), Key::from(k).as_str()));
                hits += 1;
            }
        }
        // Direct-mapped: a later key may have taken an earlier one's slot, never its text.
        assert!(hits >= 2, "{hits} of {} keys kept", keys.len());
        assert!(cache.get(b"http.routg").is_none());
        assert!(cache.get(b"http.route ").is_none());
        assert!(cache.get(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn the_key_cache_keeps_no_owned_key_and_a_slot_takes_the_last_key() {
        let mut cache = KeyCache::new();
        let long = "k".repeat(MAX_INTERNED_LEN + 1);
        let owned = Key::from(long.as_str());
        assert!(!owned.is_interned());
        cache.remember(&owned);
        assert!(cache.get(long.as_bytes()).is_none());
        // Two keys of one slot and one length: the slot holds the first, which is no hit for
        // the second; the second then replaces the first, which is then a miss.
        let first = Key::from("cache.slot.first");
        let slot = KeyCache::slot(first.as_bytes());
        let second = (0..100_000)
            .map(|i| format!("cache.slot.{i:05}"))
            .find(|k| KeyCache::slot(k.as_bytes()) == slot)
            .expect("some key shares the slot");
        assert_eq!(second.len(), first.len());
        cache.remember(&first);
        assert_eq!(cache.get(first.as_bytes()), Some(first.clone()));
        assert!(cache.get(second.as_bytes()).is_none());
        cache.remember(&Key::from(second.as_str()));
        assert!(cache.get(first.as_bytes()).is_none());
        assert_eq!(
            cache.get(second.as_bytes()).as_deref(),
            Some(second.as_str())
        );
    }

    #[test]
    fn ordering_is_by_text() {
        let mut keys: Vec<Key> = ["b", "a", "c"].into_iter().map(Key::from).collect();
        keys.sort();
        let texts: Vec<&str> = keys.iter().map(Key::as_str).collect();
        assert_eq!(texts, ["a", "b", "c"]);
    }
}
