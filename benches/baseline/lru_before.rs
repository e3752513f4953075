//! The item store as it was before issue 11 (commit 000b807, `src/shard/lru.rs`),
//! kept only so that `benches/storage.rs` can time it against the compact store in
//! the same run, side by side: on a shared, noisy machine that is the only fair
//! comparison. Test-only code; trimmed to what the benchmark calls.

#![allow(dead_code)]

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use groupcached::ByteView;

/// Bytes charged per entry on top of key and value: the node, the map slot and the
/// two reference-count headers, rounded up. Documented in docs/operations.md.
pub const ENTRY_OVERHEAD: usize = 128;

const NIL: u32 = u32::MAX;

/// What an entry cost against a budget.
pub fn charge(key_len: usize, value_len: usize) -> usize {
    key_len + value_len + ENTRY_OVERHEAD
}

struct Node {
    key: Rc<[u8]>,
    value: ByteView,
    expires: Option<Instant>,
    prev: u32,
    next: u32,
}

/// A least-recently-used list. It counts bytes but does not enforce a budget: its
/// owner decides what to evict, because the main and hot caches share one budget.
pub struct Lru {
    map: HashMap<Rc<[u8]>, u32, ahash::RandomState>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    bytes: usize,
}

/// A value found in the cache, with its expiry.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The value.
    pub value: ByteView,
    /// When it stops being served, if ever.
    pub expires: Option<Instant>,
}

impl Default for Lru {
    fn default() -> Self {
        Lru::new()
    }
}

impl Lru {
    /// An empty list.
    pub fn new() -> Lru {
        Lru {
            map: HashMap::default(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
        }
    }

    /// Bytes charged by all entries.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value under `key` if present and not expired at `now`; marks it most
    /// recently used. An expired entry is removed and reported as absent.
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<Hit> {
        let idx = *self.map.get(key)?;
        let node = &self.nodes[idx as usize];
        if node.expires.is_some_and(|e| e <= now) {
            self.remove_idx(idx);
            return None;
        }
        let hit = Hit {
            value: node.value.clone(),
            expires: node.expires,
        };
        self.move_to_front(idx);
        Some(hit)
    }

    /// Whether `key` is present (expired or not), without touching recency.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// Inserts or replaces `key` as most recently used.
    pub fn insert(&mut self, key: &[u8], value: ByteView, expires: Option<Instant>) {
        if let Some(&idx) = self.map.get(key) {
            let node = &mut self.nodes[idx as usize];
            self.bytes -= charge(node.key.len(), node.value.len());
            self.bytes += charge(key.len(), value.len());
            node.value = value;
            node.expires = expires;
            self.move_to_front(idx);
            return;
        }
        let key: Rc<[u8]> = Rc::from(key);
        self.bytes += charge(key.len(), value.len());
        let node = Node {
            key: key.clone(),
            value,
            expires,
            prev: NIL,
            next: NIL,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.link_front(idx);
        self.map.insert(key, idx);
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.get(key) {
            Some(&idx) => {
                self.remove_idx(idx);
                true
            }
            None => false,
        }
    }

    /// Removes the least recently used entry; returns its charge.
    pub fn pop_oldest(&mut self) -> Option<usize> {
        if self.tail == NIL {
            return None;
        }
        let idx = self.tail;
        let n = &self.nodes[idx as usize];
        let c = charge(n.key.len(), n.value.len());
        self.remove_idx(idx);
        Some(c)
    }

    /// Removes every entry whose key matches `pred` and hands them back (key, value,
    /// expiry), oldest first, so re-inserting them elsewhere keeps their order.
    pub fn take_where(
        &mut self,
        mut pred: impl FnMut(&[u8]) -> bool,
    ) -> Vec<(Rc<[u8]>, ByteView, Option<Instant>)> {
        let mut out = Vec::new();
        let mut i = self.tail;
        while i != NIL {
            let prev = self.nodes[i as usize].prev;
            if pred(&self.nodes[i as usize].key) {
                let n = &self.nodes[i as usize];
                out.push((n.key.clone(), n.value.clone(), n.expires));
                self.remove_idx(i);
            }
            i = prev;
        }
        out
    }

    /// Keys from most to least recently used (for tests and debugging).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len());
        let mut i = self.head;
        while i != NIL {
            out.push(self.nodes[i as usize].key.to_vec());
            i = self.nodes[i as usize].next;
        }
        out
    }

    fn remove_idx(&mut self, idx: u32) {
        self.unlink(idx);
        let node = &mut self.nodes[idx as usize];
        self.bytes -= charge(node.key.len(), node.value.len());
        let key = std::mem::replace(&mut node.key, Rc::from(&[][..]));
        node.value = ByteView::from_vec(Vec::new());
        self.map.remove(&key[..]);
        self.free.push(idx);
    }

    fn unlink(&mut self, idx: u32) {
        let (prev, next) = {
            let n = &self.nodes[idx as usize];
            (n.prev, n.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    fn link_front(&mut self, idx: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[idx as usize];
            n.prev = NIL;
            n.next = old;
        }
        if old != NIL {
            self.nodes[old as usize].prev = idx;
        } else {
            self.tail = idx;
        }
        self.head = idx;
    }

    fn move_to_front(&mut self, idx: u32) {
        if self.head != idx {
            self.unlink(idx);
            self.link_front(idx);
        }
    }
}
