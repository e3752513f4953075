//! The item arena: for each size class, chunks of one size packed densely in pages.
//!
//! A class's live chunks always occupy numbers `0..len`: removing chunk `i` moves the
//! last chunk into `i` (the caller repoints the moved item's index entry and
//! neighbours). So the arena never holds free chunks, memory freed by one class is
//! reusable by any other (no slab calcification as in memcached), and a class's
//! memory is its live chunks plus at most two partly or wholly empty pages.
//!
//! Pages hold a power of two of chunks (32 to 64 KiB), so finding a chunk is a shift
//! and a mask. Everything here is safe Rust: bounds-checked slices of boxed pages.

use super::class::{CLASS_COUNT, CLASS_SIZES};
use super::item::{class_of_handle, handle, index_of_handle, MAX_PER_CLASS};

/// Target page size.
const PAGE_BYTES: usize = 64 * 1024;

/// The chunks of one size class.
struct Class {
    chunk: usize,
    /// log2 of chunks per page.
    shift: u32,
    pages: Vec<Box<[u8]>>,
    len: u32,
}

impl Class {
    fn new(chunk: usize) -> Class {
        let per_page = (PAGE_BYTES / chunk).max(1);
        // Round down to a power of two.
        let shift = usize::BITS - 1 - per_page.leading_zeros();
        Class {
            chunk,
            shift,
            pages: Vec::new(),
            len: 0,
        }
    }

    fn per_page(&self) -> usize {
        1 << self.shift
    }

    #[inline]
    fn locate(&self, i: u32) -> (usize, usize) {
        let i = i as usize;
        (i >> self.shift, (i & (self.per_page() - 1)) * self.chunk)
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
}

/// All size classes of one store.
pub struct Arena {
    classes: Vec<Class>,
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
        let i = c.len;
        if (i as usize) >> c.shift == c.pages.len() {
            c.pages
                .push(vec![0u8; c.per_page() * c.chunk].into_boxed_slice());
        }
        c.len += 1;
        Some(handle(class, i))
    }

    /// Frees chunk `h` by moving its class's last chunk into it. Returns the handle
    /// the moved chunk had, if one moved (it is now at `h`).
    pub fn free(&mut self, h: u32) -> Option<u32> {
        let class = class_of_handle(h);
        let c = &mut self.classes[class];
        let i = index_of_handle(h);
        debug_assert!(i < c.len);
        let last = c.len - 1;
        c.len = last;
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
        // Keep at most one empty page beyond those in use, so a class that hovers
        // at a page boundary does not allocate and free a page on every item.
        let needed = (c.len as usize).div_ceil(c.per_page());
        while c.pages.len() > needed + 1 {
            c.pages.pop();
        }
        moved
    }

    /// Live chunks of `class`.
    pub fn class_len(&self, class: usize) -> u32 {
        self.classes[class].len
    }

    /// Bytes of the live chunks: what the items occupy.
    pub fn chunk_bytes(&self) -> usize {
        self.classes.iter().map(|c| c.len as usize * c.chunk).sum()
    }

    /// Bytes of all pages held: live chunks plus the unused tail of each class.
    pub fn page_bytes(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.pages.len() * c.per_page() * c.chunk)
            .sum()
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
        assert_eq!(a.page_bytes(), 3 * 64 * 1024);
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
    fn empty_pages_are_given_back_but_one() {
        let mut a = Arena::new();
        let hs: Vec<u32> = (0..32 * 4).map(|_| a.alloc(38).unwrap()).collect();
        assert_eq!(a.page_bytes(), 4 * 64 * 1024);
        for &h in hs.iter().rev().take(32 * 3) {
            assert_eq!(a.free(h), None);
        }
        assert_eq!(a.class_len(38), 32);
        assert_eq!(a.page_bytes(), 2 * 64 * 1024);
        for &h in hs.iter().take(32).rev() {
            a.free(h);
        }
        assert_eq!(a.page_bytes(), 64 * 1024);
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
    fn pages_hold_a_power_of_two_of_chunks() {
        for &s in CLASS_SIZES.iter() {
            let c = Class::new(s as usize);
            let page = c.per_page() * c.chunk;
            assert!(page <= PAGE_BYTES && page > PAGE_BYTES / 2, "class {s}");
        }
    }
}
