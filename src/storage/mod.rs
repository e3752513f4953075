//! Compact item storage for one cache of one core: items with per-item expiry in
//! CLOCK order (an approximation of LRU: reads mark, eviction gives marked items a
//! second chance; [`order`]), counting what every item really costs. O(1) get,
//! insert, remove, and evict (amortized; at most [`SECOND_CHANCES`] moves per
//! eviction). Not thread-safe by design: each core owns its own.
//!
//! # Where an item's bytes go
//!
//! An item of a 12-byte key and a 100-byte value costs 140 bytes charged, 128 of
//! them in one arena chunk:
//!
//! | what | bytes |
//! |---|---:|
//! | header: two 32-bit order links, 40-bit expiry, 24 bits of lengths and marks ([`item`]) | 16 |
//! | memcached metadata, only for items stored with it (see below) | 0 (12 with) |
//! | key and value, in the same chunk | 112 |
//! | rounding up to the size class ([`class`]) | 0 here; for other sizes up to 15 bytes below 256, up to 1/9 of a larger chunk |
//! | hash index: a 4-byte handle and a control byte per bucket, 7/16 to 7/8 full ([`index`]) | 5.7 to 11.4, charged 12 |
//!
//! No per-item heap allocation, no per-item `malloc` header: chunks of one size
//! class are packed in 32-64 KiB pages ([`arena`]), and a class stays dense
//! (removing an item moves its class's last chunk into the hole), so memory freed in
//! one class serves every other.
//!
//! # How values leave
//!
//! [`Store::get`] returns a [`ByteView`]. An item whose header, key and value fit in
//! a 2 KiB chunk is *copied* out into a fresh single-allocation `ByteView`. Why:
//! the connection copies values of up to 2 KiB into its output buffer anyway; a
//! chunk that could be shared would need a reference count and could not be reused
//! or moved while a connection held it; and the copy (one thread-cached `malloc`, a
//! 100-byte `memcpy`, a `free` once the connection has copied it on) costs less
//! than the cache misses the old layout paid for an `Arc` clone: a hit measured
//! 0.66x the old store's time, 0.65x with the copy into the output buffer counted
//! (medians of per-run ratios, docs/benchmarks.md, "Item store: hit, insert and
//! evict"). The price is one
//! allocation per small hit, where the old store allocated two per SET. Larger
//! items keep their key in a `Box` and their value as the reference-counted
//! `ByteView` they arrived as ([`class::External`]), so a hit is an `Arc` clone and
//! the connection writes the bytes straight from it with a vectored write.
//!
//! # Metadata
//!
//! A memcached item also has 32-bit client flags and a 64-bit CAS unique
//! ([`Meta`]). An item stored with [`Store::insert_meta`] carries them in 12 bytes
//! after its key and value, marked by a header bit ([`item`]); one stored with
//! [`Store::insert`] has none and costs what it did before. [`Store::get`] never
//! reads them (key and value are where they are without metadata, so a plain GET
//! runs the code it ran before: 550 instructions per hit of benches/storage.rs
//! under callgrind, against 547 before metadata existed); [`Store::get_meta`]
//! returns them with the value, for about 25 instructions more. The store does
//! not issue CAS values: the shard does, because it knows its core
//! ([`crate::shard`]).
//!
//! With metadata the item above takes a 144-byte chunk (140 bytes rounded up),
//! charged 145 + 12 = 157 bytes: 45 beyond key and value where the plain item has
//! 28. Measured for 1,000,000 such items: RSS grows by 26.6 bytes per item beyond
//! key and value without metadata and 42.7 with (the allocator's count in
//! tests/storage_memory.rs: 24.8 and 41.0). An out-of-line item pays nothing for
//! it: header, external index and metadata still fit the smallest, 32-byte, chunk.

pub mod arena;
pub mod class;
pub mod expiry;
pub mod index;
pub mod item;
mod meta;
pub mod order;
mod put;

use std::time::Instant;

use slab::Slab;

use crate::value::ByteView;
use arena::Arena;
pub use class::charge;
pub use class::item_charge;
use class::{external_charge, External};
use expiry::Clock;
use index::Index;
pub use item::Meta;
use item::{Layout, HEADER, NIL};
use order::Order;
#[cfg(test)]
pub use put::REHOME_MAX;

/// Read items [`Store::pop_oldest`] moves back to the head at most, in one call,
/// before it evicts the tail whatever its mark: a bound on the work one eviction
/// (so one SET) can do, at the price of evicting a read item when more than this
/// many read items sit at the tail.
pub const SECOND_CHANCES: usize = 64;

/// A value found in the store, with its expiry.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The value.
    pub value: ByteView,
    /// When it stops being served, if ever (rounded down to the millisecond).
    pub expires: Option<Instant>,
}

/// A stored value, seen where it lies: the bytes of a small item's chunk, or the
/// shared buffer of a large one (which a connection may queue without copying).
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    /// Inside the item's chunk: copy it out before the store changes.
    Inline(&'a [u8]),
    /// The out-of-line value, reference-counted.
    Shared(&'a ByteView),
}

impl<'a> ValueRef<'a> {
    /// The value's bytes.
    #[inline]
    pub fn bytes(self) -> &'a [u8] {
        match self {
            ValueRef::Inline(b) => b,
            ValueRef::Shared(v) => v,
        }
    }

    /// The shared buffer, for a value stored out of line.
    #[inline]
    pub fn shared(self) -> Option<&'a ByteView> {
        match self {
            ValueRef::Inline(_) => None,
            ValueRef::Shared(v) => Some(v),
        }
    }

    /// An owned view: a copy of an inline value (one allocation), a reference-count
    /// increment of a shared one.
    #[inline]
    pub fn to_view(self) -> ByteView {
        match self {
            ValueRef::Inline(b) => ByteView::copy_from_slice(b),
            ValueRef::Shared(v) => v.clone(),
        }
    }
}

/// An item taken out of a store by [`Store::take_where`].
#[derive(Debug)]
pub struct Taken {
    /// The key.
    pub key: Box<[u8]>,
    /// The value.
    pub value: ByteView,
    /// When it stops being served, if ever.
    pub expires: Option<Instant>,
    /// Its metadata, if it was stored with some.
    pub meta: Option<Meta>,
}

/// A store of items in CLOCK order. It counts bytes but does not enforce a
/// budget: its owner decides what to evict, because the main and hot caches share
/// one budget.
pub struct Store {
    index: Index,
    arena: Arena,
    externals: Slab<External>,
    order: Order,
    clock: Clock,
    bytes: usize,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

/// Asks the CPU to start loading the cache line at `p` (a no-op where there is no
/// such instruction).
#[inline(always)]
fn prefetch_read(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    // SAFETY: `_mm_prefetch` is a hint. It never faults and has no architectural
    // effect for any address, valid or not; it requires SSE, which the cfg above
    // checks is enabled (it is in the x86_64 baseline). Exercised by every
    // Store::prefetch call in the tests (storage::tests, pipelined server tests).
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = p;
}

/// The key of item `h`.
#[inline]
fn key_of<'a>(arena: &'a Arena, externals: &'a Slab<External>, h: u32) -> &'a [u8] {
    let c = arena.chunk(h);
    match item::layout(c) {
        Layout::Inline { key_len, .. } => &c[HEADER..HEADER + key_len],
        Layout::External => &externals[item::external_index(c) as usize].key,
    }
}

impl Store {
    /// An empty store. It allocates nothing until the first insert.
    pub fn new() -> Store {
        Store::with_arena(Arena::new())
    }

    fn with_arena(arena: Arena) -> Store {
        Store {
            index: Index::default(),
            arena,
            externals: Slab::new(),
            order: Order::default(),
            clock: Clock::new(),
            bytes: 0,
        }
    }

    /// Bytes charged by all entries (see [`charge`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    #[inline]
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let (arena, externals) = (&self.arena, &self.externals);
        self.index
            .find(hash, |h| key_of(arena, externals, h) == key)
    }

    /// The value under `key` if present and not expired at `now`; marks it read
    /// (it will get a second chance at eviction). An expired entry is removed and
    /// reported as absent.
    #[inline]
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<Hit> {
        self.lookup::<false, _>(key, now, |value, expires, _| Hit {
            value: value.to_view(),
            expires,
        })
    }

    /// [`Store::get`] without taking the value out: `f` sees it where it lies (and
    /// its expiry), so a caller that only copies it on (into a connection's output)
    /// pays for no allocation.
    #[inline]
    pub fn get_with<R>(
        &mut self,
        key: &[u8],
        now: Instant,
        f: impl FnOnce(ValueRef<'_>, Option<Instant>) -> R,
    ) -> Option<R> {
        self.lookup::<false, _>(key, now, |value, expires, _| f(value, expires))
    }

    /// The lookup behind every read: finds a live item, marks it read and hands
    /// `f` its value, expiry and, if `WITH_META`, its metadata ([`Meta::NONE`]
    /// otherwise). `WITH_META` is a constant so that `get` compiles to exactly the
    /// lookup it was, without reading the metadata.
    #[inline(always)]
    pub fn lookup<const WITH_META: bool, R>(
        &mut self,
        key: &[u8],
        now: Instant,
        f: impl FnOnce(ValueRef<'_>, Option<Instant>, Meta) -> R,
    ) -> Option<R> {
        let hash = self.index.hash(key);
        let h = self.find(hash, key)?;
        if self.expired(h, now) {
            self.remove_handle(h, hash);
            return None;
        }
        // A read only marks the item (CLOCK, see [`order`]): moving it to the head
        // would write its two neighbours, two more cache misses per hit.
        let c = self.arena.chunk_mut(h);
        if !item::referenced(c) {
            item::set_referenced(c);
        }
        let c = self.arena.chunk(h);
        let meta = if WITH_META { item::meta(c) } else { Meta::NONE };
        Some(match item::layout(c) {
            Layout::Inline { key_len, value_len } => {
                let at = HEADER + key_len;
                let expires = self.clock.decode(item::expires(c));
                f(ValueRef::Inline(&c[at..at + value_len]), expires, meta)
            }
            Layout::External => {
                let e = &self.externals[item::external_index(c) as usize];
                f(ValueRef::Shared(&e.value), e.expires, meta)
            }
        })
    }

    /// The hash this store files `key` under (seeded per store), for
    /// [`Store::prefetch`].
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.index.hash(key)
    }

    /// Starts bringing the items filed under `hash` (from [`Store::hash`]) into the
    /// CPU cache, without waiting for them: a caller about to look up several keys
    /// (a pipelined batch) hashes them all, then prefetches them all, so their
    /// cache misses overlap instead of coming one after another. Changes nothing;
    /// a hint only.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        let arena = &self.arena;
        self.index.find(hash, |h| {
            // Header and key, then the value (up to 4 lines: what a hit copies).
            let c = arena.chunk(h);
            for line in (0..c.len()).step_by(64).take(4) {
                prefetch_read(c[line..].as_ptr());
            }
            false // visit every candidate: their items are what a lookup reads next
        });
    }

    /// Whether `key` is present (expired or not), without touching recency.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(self.index.hash(key), key).is_some()
    }

    /// The charge of item `h`.
    fn charge_of(&self, h: u32) -> usize {
        let c = self.arena.chunk(h);
        match item::layout(c) {
            Layout::Inline { key_len, value_len } => {
                item_charge(key_len, value_len, item::has_meta(c))
            }
            Layout::External => {
                let e = &self.externals[item::external_index(c) as usize];
                external_charge(e.key.len(), e.value.len())
            }
        }
    }

    /// The value, expiry and metadata of item `h` (the value copied out if it is
    /// inline).
    fn value_of(&self, h: u32) -> (ByteView, Option<Instant>, Option<Meta>) {
        let c = self.arena.chunk(h);
        let meta = item::has_meta(c).then(|| item::meta(c));
        match item::layout(c) {
            Layout::Inline { key_len, value_len } => {
                let at = HEADER + key_len;
                (
                    ByteView::copy_from_slice(&c[at..at + value_len]),
                    self.clock.decode(item::expires(c)),
                    meta,
                )
            }
            Layout::External => {
                let e = &self.externals[item::external_index(c) as usize];
                (e.value.clone(), e.expires, meta)
            }
        }
    }

    /// Whether item `h` is expired at `now`.
    fn expired(&self, h: u32, now: Instant) -> bool {
        let c = self.arena.chunk(h);
        match item::layout(c) {
            Layout::Inline { .. } => self.clock.expired(item::expires(c), now),
            Layout::External => self.externals[item::external_index(c) as usize]
                .expires
                .is_some_and(|t| t <= now),
        }
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let hash = self.index.hash(key);
        match self.find(hash, key) {
            Some(h) => {
                self.remove_handle(h, hash);
                true
            }
            None => false,
        }
    }

    /// Removes the entry next in eviction order; returns its charge. That is the
    /// tail, except that a tail read since it reached the head gets a second chance:
    /// unmarked and moved to the head, and the next tail is looked at, up to
    /// [`SECOND_CHANCES`] of them in one call (then the tail goes, read or not).
    pub fn pop_oldest(&mut self) -> Option<usize> {
        let mut h = self.order.tail();
        if h == NIL {
            return None;
        }
        for _ in 0..SECOND_CHANCES {
            let c = self.arena.chunk_mut(h);
            if !item::referenced(c) {
                break;
            }
            item::clear_referenced(c);
            self.order.move_to_front(&mut self.arena, h);
            h = self.order.tail();
        }
        let c = self.charge_of(h);
        let hash = self.index.hash(key_of(&self.arena, &self.externals, h));
        self.remove_handle(h, hash);
        Some(c)
    }

    /// Removes every entry whose key matches `pred` and hands them back (key, value,
    /// expiry, metadata), oldest first, so re-inserting them elsewhere keeps their
    /// order.
    pub fn take_where(&mut self, mut pred: impl FnMut(&[u8]) -> bool) -> Vec<Taken> {
        let mut out = Vec::new();
        let mut h = self.order.tail();
        while h != NIL {
            let mut prev = item::prev(self.arena.chunk(h));
            let key = key_of(&self.arena, &self.externals, h);
            if pred(key) {
                let hash = self.index.hash(key);
                let key: Box<[u8]> = key.into();
                let (value, expires, meta) = self.value_of(h);
                out.push(Taken {
                    key,
                    value,
                    expires,
                    meta,
                });
                // The newer neighbour may be the chunk that moves into `h`.
                if self.remove_handle(h, hash) == Some(prev) {
                    prev = h;
                }
            }
            h = prev;
        }
        out
    }

    /// Keys from the head (most recently written) to the tail (for tests and
    /// debugging).
    pub fn keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len());
        let mut h = self.order.head();
        while h != NIL {
            out.push(key_of(&self.arena, &self.externals, h).to_vec());
            h = item::next(self.arena.chunk(h));
        }
        out
    }

    /// Heap bytes the store holds: its pages, index table and external table exactly,
    /// plus for out-of-line items an estimate of their key and value blocks (a value
    /// may be `Vec`-backed, with one more small block). For tests and benchmarks.
    pub fn heap_bytes(&self) -> usize {
        let externals: usize = self
            .externals
            .iter()
            .map(|(_, e)| class::heap_block(e.key.len()) + class::heap_block(16 + e.value.len()))
            .sum();
        self.arena.page_bytes()
            + self.index.allocation_size()
            + self.externals.capacity() * class::EXTERNAL_SLOT
            + externals
    }

    /// Removes item `h` (stored under `hash`). Returns the handle of the item that
    /// moved into `h`'s chunk, if one did.
    fn remove_handle(&mut self, h: u32, hash: u64) -> Option<u32> {
        self.bytes -= self.charge_of(h);
        self.order.unlink(&mut self.arena, h);
        self.index.remove(hash, h);
        let c = self.arena.chunk(h);
        if item::layout(c) == Layout::External {
            self.externals.remove(item::external_index(c) as usize);
        }
        let from = self.arena.free(h)?;
        // The class's last item now sits in `h`: repoint its neighbours and index.
        self.order.relocated(&mut self.arena, from, h);
        let moved_hash = self.index.hash(key_of(&self.arena, &self.externals, h));
        self.index.repoint(moved_hash, from, h);
        Some(from)
    }
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
