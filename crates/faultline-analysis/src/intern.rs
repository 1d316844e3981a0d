//! A bounded string interner, so that the hot path keys maps by shared `Arc<str>` and does not
//! allocate for names it has seen before.

use std::num::NonZeroU32;
use std::sync::Arc;

/// Label value used for everything beyond a cardinality limit.
pub const OVERFLOW: &str = "__overflow__";

/// A name's number in an [`Interner`]: 4 bytes where an `Arc<str>` is 16 and shares a
/// reference count with every other holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameId(NonZeroU32);

impl NameId {
    /// The number of [`OVERFLOW`], in every interner.
    pub const OVERFLOW: NameId = NameId(NonZeroU32::MIN);

    /// Index into the interner's names (non-zero numbers leave `Option<NameId>` 4 bytes).
    fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// Interns up to `capacity` distinct strings; later ones map to [`OVERFLOW`].
#[derive(Debug)]
pub struct Interner {
    /// Seeded: names come from clients.
    ids: foldhash::HashMap<Arc<str>, NameId>,
    /// Every name by its number less one; number 1 is [`OVERFLOW`].
    names: Vec<Arc<str>>,
    capacity: usize,
    overflowed: u64,
}

impl Interner {
    /// An interner holding at most `capacity` names.
    pub fn new(capacity: usize) -> Self {
        Self {
            ids: foldhash::HashMap::default(),
            names: vec![Arc::from(OVERFLOW)],
            capacity,
            overflowed: 0,
        }
    }

    /// The shared copy of `name`, allocating only the first time it is seen.
    #[inline]
    pub fn get(&mut self, name: &str) -> Arc<str> {
        let id = self.id(name);
        Arc::clone(self.name(id))
    }

    /// The number of `name`, allocating only the first time it is seen.
    #[inline]
    pub fn id(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let next = u32::try_from(self.names.len() + 1)
            .ok()
            .and_then(NonZeroU32::new)
            .filter(|_| self.ids.len() < self.capacity);
        let Some(next) = next else {
            self.overflowed += 1;
            return NameId::OVERFLOW;
        };
        let id = NameId(next);
        let interned: Arc<str> = Arc::from(name);
        self.names.push(Arc::clone(&interned));
        self.ids.insert(interned, id);
        id
    }

    /// The name numbered `id` by this interner.
    #[inline]
    pub fn name(&self, id: NameId) -> &Arc<str> {
        // Ids only come from `id`, which numbers the names it pushes; 0 is always present.
        self.names.get(id.index()).unwrap_or(&self.names[0])
    }

    /// Lookups that fell into the overflow name.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_known_names_and_overflows_new_ones() {
        let mut i = Interner::new(2);
        let a = i.get("a");
        assert!(Arc::ptr_eq(&a, &i.get("a")));
        i.get("b");
        assert_eq!(&*i.get("c"), OVERFLOW);
        assert_eq!(&*i.get("b"), "b");
        assert_eq!(i.overflowed(), 1);
        let b = i.id("b");
        assert_eq!(&**i.name(b), "b");
        assert_ne!(b, i.id("a"));
        let d = i.id("d");
        assert_eq!((d, &**i.name(d)), (NameId::OVERFLOW, OVERFLOW));
    }
}
