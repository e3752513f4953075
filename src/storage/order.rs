//! Eviction order: a doubly linked list threaded through the item headers with
//! 32-bit handles (8 bytes per item), head = most recently written.
//!
//! Reads do not move items: they set a mark in the item's header
//! ([`super::item::set_referenced`]), and eviction gives a marked tail a second
//! chance (unmarked, back to the head) instead of evicting it. This is CLOCK, the
//! usual approximation of LRU: an item read since it last reached the head
//! outlives every unread one, and read items leave in the order they were written
//! rather than last read. Why not move on every read: a move writes the item's two
//! neighbours, and with a large cache those are two cache misses on every hit
//! (measured: 15-20% of a 1-thread GET-hit run's throughput, docs/benchmarks.md).
//! Each read marks an item at most once and each second chance spends one mark, so
//! the moves eviction makes are at most the reads since the last pass.

use super::arena::Arena;
use super::item::{next, prev, set_next, set_prev, NIL};

/// Head and tail of the list; the links live in the items.
#[derive(Debug)]
pub struct Order {
    head: u32,
    tail: u32,
}

impl Default for Order {
    fn default() -> Self {
        Order {
            head: NIL,
            tail: NIL,
        }
    }
}

impl Order {
    /// Most recently written (or second-chanced) item, or NIL.
    pub fn head(&self) -> u32 {
        self.head
    }

    /// The item eviction looks at first, or NIL.
    pub fn tail(&self) -> u32 {
        self.tail
    }

    /// Puts unlinked item `h` at the head.
    #[inline]
    pub fn push_front(&mut self, arena: &mut Arena, h: u32) {
        let old = self.head;
        let c = arena.chunk_mut(h);
        set_prev(c, NIL);
        set_next(c, old);
        if old != NIL {
            set_prev(arena.chunk_mut(old), h);
        } else {
            self.tail = h;
        }
        self.head = h;
    }

    /// Takes item `h` out of the list.
    #[inline]
    pub fn unlink(&mut self, arena: &mut Arena, h: u32) {
        let c = arena.chunk(h);
        let (p, n) = (prev(c), next(c));
        if p != NIL {
            set_next(arena.chunk_mut(p), n);
        } else {
            self.head = n;
        }
        if n != NIL {
            set_prev(arena.chunk_mut(n), p);
        } else {
            self.tail = p;
        }
    }

    /// Puts item `h` at the head.
    #[inline]
    pub fn move_to_front(&mut self, arena: &mut Arena, h: u32) {
        if self.head != h {
            self.unlink(arena, h);
            self.push_front(arena, h);
        }
    }

    /// The item that was `from` now sits at `to` (its links came with it): points
    /// its neighbours, or the list's ends, at `to`.
    pub fn relocated(&mut self, arena: &mut Arena, from: u32, to: u32) {
        let c = arena.chunk(to);
        let (p, n) = (prev(c), next(c));
        if p != NIL {
            set_next(arena.chunk_mut(p), to);
        } else {
            debug_assert_eq!(self.head, from);
            self.head = to;
        }
        if n != NIL {
            set_prev(arena.chunk_mut(n), to);
        } else {
            debug_assert_eq!(self.tail, from);
            self.tail = to;
        }
    }
}
