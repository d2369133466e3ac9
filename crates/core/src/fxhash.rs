//! The Fx hash (from rustc) for the engine's in-memory maps, also used by
//! the store's per-request grouping, [`Interner`]: distinct strings as
//! small ids, and [`Recent`]: a bounded map of answers already computed.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// The Fx hash (from rustc): one multiply per word. Much faster than the
/// default SipHash for the short keys of the engine (channel names, state
/// tuples, subject and person ids); the keys come from the user's own
/// data, so hash flooding is no concern.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
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
        self.hash
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A `HashSet` with [`FxHasher`].
pub type FxHashSet<T> = HashSet<T, BuildHasherDefault<FxHasher>>;

/// Distinct strings numbered in order of first appearance: a column of
/// 100,000 group keys or 850,000 channel steps holds `u32`s, and each
/// distinct string is copied once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interner {
    names: Vec<Box<str>>,
    ids: FxHashMap<Box<str>, u32>,
}

impl Interner {
    /// The id of `name`, numbering it if new.
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    /// The id of `name`, if it was numbered.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The string of `id` (panics on an id this interner did not give).
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// The strings, by id.
    pub fn names(&self) -> &[Box<str>] {
        &self.names
    }
}

/// Answers computed before, kept until there are `max` of them, then
/// forgotten all at once. The per-thread caches of the hot paths use it
/// (`Sym::new`, a person's CEL strings, a lead's score map, import labels):
/// the few values that repeat are answered from it, and a stream of
/// distinct values cannot make it grow without bound.
pub struct Recent<K, V> {
    map: FxHashMap<K, V>,
    max: usize,
}

impl<K: Hash + Eq, V: Clone> Recent<K, V> {
    /// An empty map that keeps at most `max` answers.
    pub fn new(max: usize) -> Recent<K, V> {
        Recent {
            map: FxHashMap::default(),
            max,
        }
    }

    /// The answer for `key`; when there is none, `make` gives the key to
    /// keep it under and the answer.
    pub fn get_or_make<Q>(&mut self, key: &Q, make: impl FnOnce() -> (K, V)) -> V
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(v) = self.map.get(key) {
            return v.clone();
        }
        let (k, v) = make();
        if self.map.len() >= self.max {
            self.map.clear();
        }
        self.map.insert(k, v.clone());
        v
    }

    /// How many answers it holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds no answer.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_answers_from_memory_and_starts_over_when_full() {
        let mut r: Recent<String, usize> = Recent::new(2);
        let mut made = 0;
        let mut ask = |r: &mut Recent<String, usize>, k: &str| {
            r.get_or_make(k, || {
                made += 1;
                (k.to_string(), k.len())
            })
        };
        assert_eq!(
            (ask(&mut r, "a"), ask(&mut r, "bb"), ask(&mut r, "a")),
            (1, 2, 1)
        );
        assert_eq!(r.len(), 2);
        // A third key: the two are forgotten, the third kept.
        assert_eq!(ask(&mut r, "ccc"), 3);
        assert_eq!(r.len(), 1);
        assert_eq!(ask(&mut r, "a"), 1);
        assert_eq!(made, 4, "a, bb, ccc, then a again after the reset");
    }

    #[test]
    fn interner_numbers_each_distinct_string_once() {
        let mut i = Interner::default();
        assert_eq!((i.id("b"), i.id("a"), i.id("b")), (0, 1, 0));
        assert_eq!((i.get("a"), i.get("c")), (Some(1), None));
        assert_eq!((i.name(0), i.names().len()), ("b", 2));
    }
}
