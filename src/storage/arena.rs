//! The item arena: for each size class, chunks of one size packed densely in pages.
//!
//! A class's live chunks always occupy numbers `0..len`: removing chunk `i` moves the
//! last chunk into `i` (the caller repoints the moved item's index entry and
//! neighbours). So the arena never holds free chunks, memory freed by one class is
//! reusable by any other (no slab calcification as in memcached), and a class's
//! memory is its live chunks plus at most one partly filled page. (The few bytes at
//! a page's end that no chunk fits are charged to the chunks: `CHUNK_CHARGE`.)
//!
//! Every page is 64 KiB, whatever its class, and a page a class no longer needs goes
//! to the arena's pool, from which any class takes its next page. Pages are thus not
//! handed back to `malloc` and asked for again each time a class's size crosses a
//! page boundary, where a freed 64 KiB block could be split by smaller allocations
//! and the next page need fresh memory. The pool keeps at most 4 pages or 1/32 of
//! the pages in use; beyond that a page is freed.
//!
//! A chunk's index holds its page and its slot in separate bits, so finding it is a
//! shift and a mask. A class's chunk indexes have 26 bits, so it can hold 2^15 to
//! 2^21 pages: at least 2 GiB of chunks per class per store (see `max_pages`).
//! Everything here is safe Rust: bounds-checked slices of boxed pages.

use super::class::{CLASS_COUNT, CLASS_SIZES};
use super::item::{class_of_handle, handle, index_of_handle, INDEX_BITS, MAX_PER_CLASS};

pub use super::class::PAGE_BYTES;

/// Pages the pool keeps at least (256 KiB).
const POOL_MIN: usize = 4;

/// `n / d` for any u32 `n`, with `magic = u64::MAX / d + 1` (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation", 2019: exact for 32-bit operands).
#[inline]
fn fastdiv(n: u32, magic: u64) -> u32 {
    ((u128::from(magic) * u128::from(n)) >> 64) as u32
}

/// The chunks of one size class.
struct Class {
    chunk: usize,
    per_page: u32,
    /// Bits of a chunk's index that number it within its page: the index of the
    /// chunk in slot `s` of page `p` is `p << slot_bits | s`, so finding it is a
    /// shift and a mask.
    slot_bits: u32,
    /// `u64::MAX / per_page + 1`, for [`fastdiv`] (allocation and freeing only).
    magic: u64,
    pages: Vec<Box<[u8]>>,
    len: u32,
}

impl Class {
    fn new(chunk: usize) -> Class {
        let per_page = (PAGE_BYTES / chunk) as u32;
        Class {
            chunk,
            per_page,
            slot_bits: u32::BITS - (per_page - 1).leading_zeros(),
            magic: u64::MAX / u64::from(per_page) + 1,
            pages: Vec::new(),
            len: 0,
        }
    }

    /// The index of the `k`-th live chunk (they fill pages in order).
    #[inline]
    fn index_of(&self, k: u32) -> u32 {
        let p = fastdiv(k, self.magic);
        (p << self.slot_bits) | (k - p * self.per_page)
    }

    /// Most pages a class can have: page numbers fill the index bits left over.
    fn max_pages(&self) -> usize {
        1 << (INDEX_BITS - self.slot_bits)
    }

    #[inline]
    fn locate(&self, i: u32) -> (usize, usize) {
        let slot = i & ((1 << self.slot_bits) - 1);
        ((i >> self.slot_bits) as usize, slot as usize * self.chunk)
    }

    #[inline]
    fn chunk(&self, i: u32) -> &[u8] {
        let (p, off) = self.locate(i);
        &self.pages[p][off..off + self.chunk]
    }

    #[inline]
    fn chunk_mut(&mut self, i: u32) -> &mut [u8] {
        let (p, off) = self.locate(i);
        let chunk = self.chunk;
        &mut self.pages[p][off..off + chunk]
    }

    /// Pages its live chunks need.
    fn pages_needed(&self) -> usize {
        self.len.div_ceil(self.per_page) as usize
    }
}

/// All size classes of one store.
pub struct Arena {
    classes: Vec<Class>,
    /// Empty pages, for any class.
    pool: Vec<Box<[u8]>>,
    /// Pages held by classes.
    pages_in_use: usize,
    limit: u32,
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

impl Arena {
    /// An empty arena; no page is allocated until a chunk is.
    pub fn new() -> Arena {
        Arena::with_limit(MAX_PER_CLASS)
    }

    /// An arena whose classes hold at most `limit` chunks each (tests use a small one).
    pub fn with_limit(limit: u32) -> Arena {
        Arena {
            classes: CLASS_SIZES
                .iter()
                .map(|&s| Class::new(s as usize))
                .collect(),
            pool: Vec::new(),
            pages_in_use: 0,
            limit: limit.min(MAX_PER_CLASS),
        }
    }

    /// The chunk named by handle `h`.
    #[inline]
    pub fn chunk(&self, h: u32) -> &[u8] {
        self.classes[class_of_handle(h)].chunk(index_of_handle(h))
    }

    /// The chunk named by handle `h`, writable.
    #[inline]
    pub fn chunk_mut(&mut self, h: u32) -> &mut [u8] {
        self.classes[class_of_handle(h)].chunk_mut(index_of_handle(h))
    }

    /// A new chunk of `class` (contents unspecified), or `None` if the class is full.
    pub fn alloc(&mut self, class: usize) -> Option<u32> {
        let c = &mut self.classes[class];
        if c.len >= self.limit {
            return None;
        }
        if c.len as usize == c.pages.len() * c.per_page as usize {
            if c.pages.len() == c.max_pages() {
                return None;
            }
            let page = self
                .pool
                .pop()
                .unwrap_or_else(|| vec![0u8; PAGE_BYTES].into_boxed_slice());
            c.pages.push(page);
            self.pages_in_use += 1;
        }
        let i = c.index_of(c.len);
        c.len += 1;
        Some(handle(class, i))
    }

    /// Frees chunk `h` by moving its class's last chunk into it. Returns the handle
    /// the moved chunk had, if one moved (it is now at `h`).
    pub fn free(&mut self, h: u32) -> Option<u32> {
        let class = class_of_handle(h);
        let c = &mut self.classes[class];
        let i = index_of_handle(h);
        let last = c.index_of(c.len - 1);
        c.len -= 1;
        let moved = if i != last {
            let (pi, oi) = c.locate(i);
            let (pl, ol) = c.locate(last);
            let n = c.chunk;
            if pi == pl {
                c.pages[pi].copy_within(ol..ol + n, oi);
            } else {
                // pi < pl: the last chunk is on a later page.
                let (lo, hi) = c.pages.split_at_mut(pl);
                lo[pi][oi..oi + n].copy_from_slice(&hi[0][ol..ol + n]);
            }
            Some(handle(class, last))
        } else {
            None
        };
        if c.pages.len() > c.pages_needed() {
            let page = c.pages.pop().expect("a page beyond those needed");
            self.pages_in_use -= 1;
            self.pool.push(page);
            self.pool.truncate(POOL_MIN.max(self.pages_in_use / 32));
        }
        moved
    }

    /// Live chunks of `class`.
    #[cfg(test)]
    pub fn class_len(&self, class: usize) -> u32 {
        self.classes[class].len
    }

    /// Bytes of the live chunks: what the items occupy.
    #[cfg(test)]
    pub fn chunk_bytes(&self) -> usize {
        self.classes.iter().map(|c| c.len as usize * c.chunk).sum()
    }

    /// Bytes of all pages held: pages in use (live chunks, the unused tail of each
    /// class's last page, and the few bytes at the end of each page that no chunk
    /// fits) and pages in the pool.
    pub fn page_bytes(&self) -> usize {
        (self.pages_in_use + self.pool.len()) * PAGE_BYTES
    }
}

// Class 63 is never used, so NIL (u32::MAX) names no chunk.
const _: () = assert!(CLASS_COUNT < (1 << (32 - super::item::INDEX_BITS)) - 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeing_moves_the_last_chunk_into_the_hole_across_pages() {
        let mut a = Arena::new();
        let class = 38; // 2 KiB chunks, 32 per page
        let hs: Vec<u32> = (0..70).map(|_| a.alloc(class).unwrap()).collect();
        for (n, &h) in hs.iter().enumerate() {
            a.chunk_mut(h).fill(n as u8);
        }
        assert_eq!(a.page_bytes(), 3 * PAGE_BYTES);
        // Chunk 0 (page 0) is refilled from chunk 69 (page 2).
        assert_eq!(a.free(hs[0]), Some(hs[69]));
        assert!(a.chunk(hs[0]).iter().all(|&b| b == 69));
        // Chunk 65 is refilled from chunk 68, on the same page.
        assert_eq!(a.free(hs[65]), Some(hs[68]));
        assert!(a.chunk(hs[65]).iter().all(|&b| b == 68));
        // Freeing the last chunk moves nothing.
        assert_eq!(a.free(hs[67]), None);
        assert_eq!(a.class_len(class), 67);
        assert_eq!(a.chunk_bytes(), 67 * 2048);
    }

    #[test]
    fn chunks_of_every_class_are_distinct_and_within_their_page() {
        for (class, &size) in CLASS_SIZES.iter().enumerate() {
            let mut a = Arena::new();
            let n = 3 * (PAGE_BYTES / size as usize) as u32 + 5;
            let hs: Vec<u32> = (0..n).map(|_| a.alloc(class).unwrap()).collect();
            for &h in &hs {
                a.chunk_mut(h)[..4].copy_from_slice(&h.to_le_bytes());
            }
            for &h in &hs {
                assert_eq!(a.chunk(h).len(), size as usize);
                assert_eq!(a.chunk(h)[..4], h.to_le_bytes(), "class {class}");
            }
            assert_eq!(a.page_bytes(), 4 * PAGE_BYTES);
        }
    }

    #[test]
    fn fastdiv_is_exact() {
        for &size in CLASS_SIZES.iter() {
            let d = (PAGE_BYTES / size as usize) as u32;
            let magic = u64::MAX / u64::from(d) + 1;
            let edges = [
                0,
                1,
                d - 1,
                d,
                d + 1,
                MAX_PER_CLASS - 1,
                u32::MAX - 1,
                u32::MAX,
            ];
            for n in edges.into_iter().chain((0..200_000).map(|k| k * 7919)) {
                assert_eq!(fastdiv(n, magic), n / d, "{n} / {d}");
            }
        }
    }

    #[test]
    fn empty_pages_go_to_the_pool_and_serve_any_class() {
        let mut a = Arena::new();
        let hs: Vec<u32> = (0..32 * 4).map(|_| a.alloc(38).unwrap()).collect();
        assert_eq!(a.page_bytes(), 4 * PAGE_BYTES);
        for &h in hs.iter().rev().take(32 * 3) {
            assert_eq!(a.free(h), None);
        }
        assert_eq!(a.class_len(38), 32);
        assert_eq!((a.pages_in_use, a.pool.len()), (1, 3));
        // Another class takes its pages from the pool: no new memory.
        for _ in 0..3 * (PAGE_BYTES / 32) {
            a.alloc(0).unwrap();
        }
        assert_eq!((a.pages_in_use, a.pool.len()), (4, 0));
        assert_eq!(a.page_bytes(), 4 * PAGE_BYTES);
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut a = Arena::new();
        let n = 200 * (PAGE_BYTES / 2048) as u32;
        let hs: Vec<u32> = (0..n).map(|_| a.alloc(38).unwrap()).collect();
        for &h in hs.iter().rev() {
            a.free(h);
        }
        assert_eq!(a.pages_in_use, 0);
        assert_eq!(a.pool.len(), POOL_MIN);
        assert_eq!(a.chunk_bytes(), 0);
    }

    #[test]
    fn a_full_class_refuses_more_chunks() {
        let mut a = Arena::with_limit(3);
        for _ in 0..3 {
            assert!(a.alloc(0).is_some());
        }
        assert_eq!(a.alloc(0), None);
        assert!(a.alloc(1).is_some());
    }

    #[test]
    fn every_class_fills_its_pages_but_for_less_than_a_chunk() {
        for &s in CLASS_SIZES.iter() {
            let c = Class::new(s as usize);
            let used = c.per_page as usize * c.chunk;
            assert!(PAGE_BYTES - used < c.chunk, "class {s}");
            // At most 1.6% of a page is lost at its end.
            assert!((PAGE_BYTES - used) * 1000 <= PAGE_BYTES * 16, "class {s}");
            // Indexes fit their 26 bits, and a class can hold at least 2 GiB.
            let last = ((c.max_pages() as u32 - 1) << c.slot_bits) | (c.per_page - 1);
            assert!(last < MAX_PER_CLASS, "class {s}");
            assert!(c.max_pages() * PAGE_BYTES >= 2 << 30, "class {s}");
        }
    }
}
