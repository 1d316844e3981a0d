//! A bounded string interner, so that the hot path keys maps by shared `Arc<str>` and does not
//! allocate for names it has seen before.

use std::collections::HashSet;
use std::sync::Arc;

/// Label value used for everything beyond a cardinality limit.
pub const OVERFLOW: &str = "__overflow__";

/// Interns up to `capacity` distinct strings; later ones map to [`OVERFLOW`].
#[derive(Debug)]
pub struct Interner {
    names: HashSet<Arc<str>>,
    capacity: usize,
    overflow: Arc<str>,
    overflowed: u64,
}

impl Interner {
    /// An interner holding at most `capacity` names.
    pub fn new(capacity: usize) -> Self {
        Self {
            names: HashSet::new(),
            capacity,
            overflow: Arc::from(OVERFLOW),
            overflowed: 0,
        }
    }

    /// The shared copy of `name`, allocating only the first time it is seen.
    #[inline]
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(existing) = self.names.get(name) {
            return Arc::clone(existing);
        }
        if self.names.len() >= self.capacity {
            self.overflowed += 1;
            return Arc::clone(&self.overflow);
        }
        let interned: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&interned));
        interned
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
    }
}
