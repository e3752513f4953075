//! Writing items: inserting or replacing one, inline or out of line, with or
//! without metadata.

use std::time::Instant;

use super::class::{class_of, external_charge, external_class, fits_inline, External};
use super::item::{self, inline_size, Layout, Meta, HEADER};
use super::{item_charge, key_of, Store};
use crate::value::ByteView;

impl Store {
    /// Inserts or replaces `key` at the head, unread. A value that fits a chunk
    /// with its key is copied in (and `value` dropped); a larger one, or one whose
    /// expiry lies beyond the header's range, is kept out of line as it is.
    ///
    /// If the item's size class already holds 2^26 items (only possible past 2 GiB
    /// of items of one size in one store), the key is left absent: a cache may
    /// always miss.
    ///
    /// The item has no metadata (see [`Store::insert_meta`]), whatever it had.
    pub fn insert(&mut self, key: &[u8], value: ByteView, expires: Option<Instant>) {
        self.put(key, value, expires, None)
    }

    /// Inserts or replaces `key` (as [`Store::insert`]), with or without metadata.
    pub(super) fn put(
        &mut self,
        key: &[u8],
        value: ByteView,
        expires: Option<Instant>,
        meta: Option<Meta>,
    ) {
        let hash = self.index.hash(key);
        let with = meta.is_some();
        let code = self
            .clock
            .encode(expires)
            .filter(|_| fits_inline(key.len(), value.len(), with));
        let class = match code {
            Some(_) => class_of(inline_size(key.len(), value.len(), with)),
            None => external_class(),
        };
        if let Some(h) = self.find(hash, key) {
            let same_class = item::class_of_handle(h) == class;
            match (item::layout(self.arena.chunk(h)), code) {
                (Layout::Inline { .. }, Some(code)) if same_class => {
                    self.bytes -= self.charge_of(h);
                    write_inline(self.arena.chunk_mut(h), key, &value, code, meta);
                }
                (Layout::External, None) => {
                    self.bytes -= self.charge_of(h);
                    let c = self.arena.chunk_mut(h);
                    let i = item::external_index(c);
                    write_external(c, i, meta);
                    let e = &mut self.externals[i as usize];
                    e.value = rehome(value);
                    e.expires = expires;
                }
                _ => {
                    self.remove_handle(h, hash);
                    return self.insert_new(hash, class, key, value, code, expires, meta);
                }
            }
            self.bytes += self.charge_of(h);
            self.order.move_to_front(&mut self.arena, h);
            return;
        }
        self.insert_new(hash, class, key, value, code, expires, meta);
    }

    /// Adds an absent key: inline with expiry `code`, or out of line if `code` is
    /// `None`.
    #[allow(clippy::too_many_arguments)] // One private call path; a struct would only rename them.
    fn insert_new(
        &mut self,
        hash: u64,
        class: usize,
        key: &[u8],
        value: ByteView,
        code: Option<u64>,
        expires: Option<Instant>,
        meta: Option<Meta>,
    ) {
        let Some(h) = self.arena.alloc(class) else {
            return;
        };
        let c = self.arena.chunk_mut(h);
        match code {
            Some(code) => {
                self.bytes += item_charge(key.len(), value.len(), meta.is_some());
                write_inline(c, key, &value, code, meta);
            }
            None => {
                self.bytes += external_charge(key.len(), value.len());
                let i = self.externals.insert(External {
                    key: key.into(),
                    value: rehome(value),
                    expires,
                });
                write_external(c, i as u32, meta);
            }
        }
        self.order.push_front(&mut self.arena, h);
        let (arena, externals) = (&self.arena, &self.externals);
        self.index.insert(hash, h, |x| key_of(arena, externals, x));
    }
}

/// Out-of-line values up to this size are copied when stored (see `rehome`).
pub const REHOME_MAX: usize = 128 * 1024;

/// The value an out-of-line item keeps: for values up to [`REHOME_MAX`], a copy made
/// on the store's own thread; larger ones as they came.
///
/// Why copy: a SET's value is allocated on the core that read it and a loaded value
/// on a loader thread, and glibc gives each thread its own heap arena. A value stored
/// on another core is freed there, on eviction, into the arena it came from, which
/// that core's next values do not draw from; with SETs of 2-5 KiB values churning a
/// full 64 MiB cache of 2 cores, RSS grew to 1.28-1.38 times the budget this way
/// (1.05 with `MALLOC_ARENA_MAX=1`). A copy made here is freed here and its memory
/// serves the next one. Values over 128 KiB are `mmap`ed by glibc, freed straight
/// back to the system, and not worth a copy. Hits still share the stored value
/// without copying it.
fn rehome(value: ByteView) -> ByteView {
    if value.len() <= REHOME_MAX {
        ByteView::copy_from_slice(&value)
    } else {
        value
    }
}

/// Writes an inline item's header fields (links excepted), key, value and metadata.
#[inline]
fn write_inline(c: &mut [u8], key: &[u8], value: &[u8], code: u64, meta: Option<Meta>) {
    item::set_expires(c, code);
    item::set_layout(
        c,
        Layout::Inline {
            key_len: key.len(),
            value_len: value.len(),
        },
        meta.is_some(),
    );
    c[HEADER..HEADER + key.len()].copy_from_slice(key);
    let at = HEADER + key.len();
    c[at..at + value.len()].copy_from_slice(value);
    if let Some(m) = meta {
        item::set_meta(c, m);
    }
}

/// Writes an out-of-line item's header fields (links excepted), external index `i`
/// and metadata.
fn write_external(c: &mut [u8], i: u32, meta: Option<Meta>) {
    item::set_expires(c, 0);
    item::set_layout(c, Layout::External, meta.is_some());
    item::set_external_index(c, i);
    if let Some(m) = meta {
        item::set_meta(c, m);
    }
}
