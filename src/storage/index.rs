//! The hash index: key -> 32-bit item handle, in a `hashbrown::HashTable<u32>` (4
//! bytes per bucket plus one control byte). Keys are not stored here: comparing and
//! rehashing read them from the items, so a key is kept once.

use hashbrown::HashTable;

/// Key -> handle. The caller supplies the key of a handle.
pub struct Index {
    table: HashTable<u32>,
    hasher: ahash::RandomState,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            table: HashTable::new(),
            hasher: ahash::RandomState::new(),
        }
    }
}

impl Index {
    /// The hash of `key` (in-process only: `ahash`, seeded per store).
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The handle stored under `hash` for which `is_key` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        self.table.find(hash, |&h| is_key(h)).copied()
    }

    /// Adds handle `h` (of a key not present) under `hash`. `key_of` gives the key of
    /// any stored handle, for rehashing when the table grows.
    pub fn insert<'a>(&mut self, hash: u64, h: u32, key_of: impl Fn(u32) -> &'a [u8]) {
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, h, |&x| hasher.hash_one(key_of(x)));
    }

    /// Removes handle `h`, stored under `hash`.
    pub fn remove(&mut self, hash: u64, h: u32) {
        if let Ok(e) = self.table.find_entry(hash, |&x| x == h) {
            e.remove();
        } else {
            debug_assert!(false, "handle {h:#x} not in the index");
        }
    }

    /// The item under `hash` moved from handle `from` to `to`.
    pub fn repoint(&mut self, hash: u64, from: u32, to: u32) {
        match self.table.find_mut(hash, |&x| x == from) {
            Some(slot) => *slot = to,
            None => debug_assert!(false, "handle {from:#x} not in the index"),
        }
    }

    /// Entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes the table allocated.
    pub fn allocation_size(&self) -> usize {
        self.table.allocation_size()
    }
}
