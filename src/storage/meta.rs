//! The store's operations on items with memcached metadata (flags and CAS), kept
//! apart from the plain paths of `mod.rs` that groupcached's own protocol uses.

use std::time::Instant;

use super::class::fits_inline;
use super::item::{self, Layout, Meta};
use super::{Hit, Store};
use crate::value::ByteView;

impl Store {
    /// Inserts or replaces `key` at the head, unread, with metadata `meta` kept
    /// in the 12 bytes after the item's key and value (see [`item`]). Otherwise as
    /// [`Store::insert`]: inline if it fits a chunk, out of line if not.
    pub fn insert_meta(
        &mut self,
        key: &[u8],
        value: ByteView,
        expires: Option<Instant>,
        meta: Meta,
    ) {
        self.put(key, value, expires, Some(meta))
    }

    /// [`Store::insert_meta`] if `meta` is given, else [`Store::insert`].
    pub fn insert_with(
        &mut self,
        key: &[u8],
        value: ByteView,
        expires: Option<Instant>,
        meta: Option<Meta>,
    ) {
        self.put(key, value, expires, meta)
    }

    /// [`Store::get`] that also returns the item's metadata ([`Meta::NONE`] for an
    /// item stored without). A separate function so that a plain `get` never reads
    /// the metadata.
    #[inline]
    pub fn get_meta(&mut self, key: &[u8], now: Instant) -> Option<(Hit, Meta)> {
        self.lookup::<true, _>(key, now, |value, expires, meta| {
            let value = value.to_view();
            (Hit { value, expires }, meta)
        })
    }

    /// The metadata of `key` if it is present and not expired at `now`, without
    /// touching recency or removing anything.
    pub fn peek_meta(&self, key: &[u8], now: Instant) -> Option<Meta> {
        let h = self.find(self.index.hash(key), key)?;
        (!self.expired(h, now)).then(|| item::meta(self.arena.chunk(h)))
    }

    /// Gives `key`, if present and not expired at `now`, a new expiry, keeping its
    /// value and metadata (a touch is not a write: memcached keeps the CAS too), and
    /// puts it at the head, unread, as a write would. Returns its metadata, or `None` if it is absent
    /// (an expired item is removed). An item moves in or out of line if the new
    /// expiry needs it to (see [`super::expiry`]); otherwise it is updated in place.
    pub fn touch(&mut self, key: &[u8], expires: Option<Instant>, now: Instant) -> Option<Meta> {
        let hash = self.index.hash(key);
        let h = self.find(hash, key)?;
        if self.expired(h, now) {
            self.remove_handle(h, hash);
            return None;
        }
        let c = self.arena.chunk(h);
        let meta = item::meta(c);
        let code = self.clock.encode(expires);
        match (item::layout(c), code) {
            (Layout::Inline { .. }, Some(code)) => {
                item::set_expires(self.arena.chunk_mut(h), code);
            }
            (Layout::External, code) => {
                let i = item::external_index(c) as usize;
                let e = &self.externals[i];
                if code.is_some() && fits_inline(e.key.len(), e.value.len(), item::has_meta(c)) {
                    // Held out of line only for its far expiry: back inline.
                    return self.reput(h, key, expires);
                }
                self.externals[i].expires = expires;
            }
            (Layout::Inline { .. }, None) => return self.reput(h, key, expires),
        }
        // A touch places the item as a write does: at the head, unread.
        self.order.move_to_front(&mut self.arena, h);
        item::clear_referenced(self.arena.chunk_mut(h));
        Some(meta)
    }

    /// Stores item `h` (under `key`) again with a new expiry, same value and
    /// metadata: for a change of layout.
    fn reput(&mut self, h: u32, key: &[u8], expires: Option<Instant>) -> Option<Meta> {
        let (value, _, meta) = self.value_of(h);
        self.put(key, value, expires, meta);
        Some(meta.unwrap_or(Meta::NONE))
    }
}
