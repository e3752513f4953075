//! The 16-byte item header at the start of every chunk, and handles naming chunks.
//!
//! ```text
//! bytes 0..4   prev    u32  handle of the item nearer the head (NIL at the head)
//! bytes 4..8   next    u32  handle of the item nearer the tail (NIL at the tail)
//! bytes 8..13  expires u40  expiry::Clock code: 0 = never, else ms since the epoch + 1
//!                            (inline items; an external entry holds its own expiry)
//! bytes 13..16 lengths u24  bit 23: stored out of line; bit 22: metadata follows
//!                            the body; bit 21: referenced (read since it was last
//!                            written or given its second chance, [`super::order`]);
//!                            bits 0..10 key length; bits 10..21 value length
//!                            (inline items only)
//! then the body: the key, then the value (inline), or a u32 index into the
//! external table (out of line);
//! then, if bit 22 is set, memcached's metadata (12 bytes, [`META`]):
//!   flags u32  the client's opaque flags
//!   cas   u64  the item's CAS unique (never 0)
//! ```
//!
//! Little-endian throughout. 11 bits of value length suffice because an inline
//! item's header, key, value and metadata fit in a 2,048-byte chunk; a key of more
//! than 1,023 bytes (10 bits) sends its item out of line ([`fits_lengths`]).
//!
//! Why a bit per item and not a store-wide switch: an item pays for metadata only
//! if it has some. Items written through groupcached's own protocol, and every item
//! of a node without the memcached front end, keep the 16-byte header and the charge
//! issue 11 measured; an item written by a memcached client (or any item, once the
//! shard gives every write a CAS) takes 12 bytes more.
//!
//! Why after the body and not after the header: key and value stay at the offsets
//! they have without metadata, so a plain GET runs exactly the code it ran before
//! (the length masks already leave bit 22 out), and only a reader that asks for
//! the metadata computes where it is (header + key + value, or header + index). An
//! out-of-line item keeps its metadata in its chunk too: header, index and metadata
//! take 32 bytes, the smallest chunk, so metadata costs such an item nothing.

/// Bytes of the header.
pub const HEADER: usize = 16;

/// "No item": the end of the recency list.
pub const NIL: u32 = u32::MAX;

/// Bits of a handle that number a chunk within its class; the rest name the class.
pub const INDEX_BITS: u32 = 26;

/// Bound on the chunks one class can hold (2^26; see [`super::arena`] for the
/// exact, slightly lower, figure of each class).
pub const MAX_PER_CLASS: u32 = 1 << INDEX_BITS;

/// Bytes of the optional metadata (flags u32, cas u64) after the key and value (or the external index).
pub const META: usize = 12;

const EXTERNAL_FLAG: u32 = 1 << 23;
const META_FLAG: u32 = 1 << 22;
/// Set by a read, cleared by a write and by the second chance (see [`super::order`]).
const REFERENCED_FLAG: u32 = 1 << 21;
const KEY_BITS: u32 = 10;
const KEY_MASK: u32 = (1 << KEY_BITS) - 1;
const VALUE_MASK: u32 = (1 << 11) - 1;

/// Whether an inline item's lengths fit the header's fields (the chunk size
/// bounds the value; the 10-bit field bounds the key).
#[inline]
pub fn fits_lengths(key_len: usize, value_len: usize) -> bool {
    key_len <= KEY_MASK as usize && value_len <= VALUE_MASK as usize
}

/// A 32-bit handle: size class and chunk number.
#[inline]
pub fn handle(class: usize, index: u32) -> u32 {
    ((class as u32) << INDEX_BITS) | index
}

/// The class of a handle.
#[inline]
pub fn class_of_handle(h: u32) -> usize {
    (h >> INDEX_BITS) as usize
}

/// The chunk number of a handle within its class.
#[inline]
pub fn index_of_handle(h: u32) -> u32 {
    h & (MAX_PER_CLASS - 1)
}

#[inline]
fn u32_at(c: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([c[at], c[at + 1], c[at + 2], c[at + 3]])
}

#[inline]
fn put_u32(c: &mut [u8], at: usize, v: u32) {
    c[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// The newer neighbour.
#[inline]
pub fn prev(c: &[u8]) -> u32 {
    u32_at(c, 0)
}

/// The older neighbour.
#[inline]
pub fn next(c: &[u8]) -> u32 {
    u32_at(c, 4)
}

/// Sets the newer neighbour.
#[inline]
pub fn set_prev(c: &mut [u8], h: u32) {
    put_u32(c, 0, h)
}

/// Sets the older neighbour.
#[inline]
pub fn set_next(c: &mut [u8], h: u32) {
    put_u32(c, 4, h)
}

/// The expiry code (see [`super::expiry::Clock`]).
#[inline]
pub fn expires(c: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..5].copy_from_slice(&c[8..13]);
    u64::from_le_bytes(b)
}

/// Sets the expiry code; it must fit in 40 bits.
#[inline]
pub fn set_expires(c: &mut [u8], code: u64) {
    debug_assert!(code < 1 << 40);
    c[8..13].copy_from_slice(&code.to_le_bytes()[..5]);
}

/// A memcached item's metadata: the client's flags and the item's CAS unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Opaque 32-bit flags the client stored with the item (memcached clients keep
    /// their serialization format here).
    pub flags: u32,
    /// The item's CAS unique: a new one for every write of the item. 0 means "none"
    /// (an item stored without metadata) and is never issued.
    pub cas: u64,
}

impl Meta {
    /// What an item without metadata reports: flags 0, no CAS.
    pub const NONE: Meta = Meta { flags: 0, cas: 0 };
}

/// How an item's key and value are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Key and value follow the header.
    Inline {
        /// Key bytes.
        key_len: usize,
        /// Value bytes.
        value_len: usize,
    },
    /// A u32 index into the external table follows the header.
    External,
}

#[inline]
fn lengths(c: &[u8]) -> u32 {
    u32::from_le_bytes([c[13], c[14], c[15], 0])
}

/// The item's layout.
#[inline]
pub fn layout(c: &[u8]) -> Layout {
    let w = lengths(c);
    if w & EXTERNAL_FLAG != 0 {
        Layout::External
    } else {
        Layout::Inline {
            key_len: (w & KEY_MASK) as usize,
            value_len: ((w >> KEY_BITS) & VALUE_MASK) as usize,
        }
    }
}

/// Whether the item was read since it was last written or last given its second
/// chance.
#[inline]
pub fn referenced(c: &[u8]) -> bool {
    lengths(c) & REFERENCED_FLAG != 0
}

/// Marks the item read. Byte 15 holds bits 16..24 of the lengths word.
#[inline]
pub fn set_referenced(c: &mut [u8]) {
    c[15] |= (REFERENCED_FLAG >> 16) as u8;
}

/// Clears the read mark.
#[inline]
pub fn clear_referenced(c: &mut [u8]) {
    c[15] &= !((REFERENCED_FLAG >> 16) as u8);
}

/// Whether the item carries metadata (12 bytes after its body).
#[inline]
pub fn has_meta(c: &[u8]) -> bool {
    lengths(c) & META_FLAG != 0
}

/// Bytes of an inline item of this key and value, with metadata or without.
#[inline]
pub fn inline_size(key_len: usize, value_len: usize, meta: bool) -> usize {
    HEADER + key_len + value_len + if meta { META } else { 0 }
}

/// Bytes of an out-of-line item's chunk: header, external index, and metadata if
/// any.
pub const fn external_size(meta: bool) -> usize {
    HEADER + 4 + if meta { META } else { 0 }
}

/// Where the metadata of an item of layout `l` starts: after its body.
#[inline]
fn meta_at(l: Layout) -> usize {
    match l {
        Layout::Inline { key_len, value_len } => HEADER + key_len + value_len,
        Layout::External => HEADER + 4,
    }
}

/// The item's metadata, or [`Meta::NONE`] if it has none.
#[inline]
pub fn meta(c: &[u8]) -> Meta {
    if has_meta(c) {
        let at = meta_at(layout(c));
        let mut cas = [0u8; 8];
        cas.copy_from_slice(&c[at + 4..at + META]);
        Meta {
            flags: u32_at(c, at),
            cas: u64::from_le_bytes(cas),
        }
    } else {
        Meta::NONE
    }
}

/// Records the layout, and whether metadata follows the body (written with
/// [`set_meta`]); clears the referenced bit, as any write does.
#[inline]
pub fn set_layout(c: &mut [u8], l: Layout, meta: bool) {
    let w = match l {
        Layout::Inline { key_len, value_len } => {
            debug_assert!(fits_lengths(key_len, value_len));
            key_len as u32 | (value_len as u32) << KEY_BITS
        }
        Layout::External => EXTERNAL_FLAG,
    } | if meta { META_FLAG } else { 0 };
    c[13..16].copy_from_slice(&w.to_le_bytes()[..3]);
}

/// Writes the metadata bytes after the body (the layout must be recorded, and
/// say they are there).
#[inline]
pub fn set_meta(c: &mut [u8], m: Meta) {
    let at = meta_at(layout(c));
    put_u32(c, at, m.flags);
    c[at + 4..at + META].copy_from_slice(&m.cas.to_le_bytes());
}

/// The external-table index of an out-of-line item.
#[inline]
pub fn external_index(c: &[u8]) -> u32 {
    u32_at(c, HEADER)
}

/// Sets the external-table index.
#[inline]
pub fn set_external_index(c: &mut [u8], i: u32) {
    put_u32(c, HEADER, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_do_not_overlap() {
        let mut c = [0u8; 64];
        set_prev(&mut c, 0xdead_beef);
        set_next(&mut c, NIL);
        set_expires(&mut c, (1 << 40) - 1);
        set_layout(
            &mut c,
            Layout::Inline {
                key_len: 1023,
                value_len: 1,
            },
            false,
        );
        assert_eq!(prev(&c), 0xdead_beef);
        assert_eq!(next(&c), NIL);
        assert_eq!(expires(&c), (1 << 40) - 1);
        assert_eq!(
            layout(&c),
            Layout::Inline {
                key_len: 1023,
                value_len: 1
            }
        );
        assert!(c[HEADER..].iter().all(|&b| b == 0));
        assert!(!has_meta(&c));
        assert_eq!(meta(&c), Meta::NONE);
        set_layout(&mut c, Layout::External, false);
        set_external_index(&mut c, 7);
        assert_eq!(layout(&c), Layout::External);
        assert_eq!(external_index(&c), 7);
        assert_eq!(expires(&c), (1 << 40) - 1);
    }

    #[test]
    fn metadata_follows_the_body_and_leaves_key_and_value_in_place() {
        let mut c = [0u8; 64];
        set_expires(&mut c, 12345);
        let l = Layout::Inline {
            key_len: 3,
            value_len: 5,
        };
        set_layout(&mut c, l, true);
        c[HEADER..HEADER + 8].copy_from_slice(b"keyvalue");
        let m = Meta {
            flags: u32::MAX,
            cas: u64::MAX - 1,
        };
        set_meta(&mut c, m);
        // The plain layout is read as if there were no metadata.
        assert_eq!(layout(&c), l);
        assert!(has_meta(&c));
        assert_eq!(meta(&c), m);
        assert_eq!(&c[HEADER..HEADER + 8], b"keyvalue");
        assert_eq!(u32_at(&c, HEADER + 8), u32::MAX);
        assert_eq!(inline_size(3, 5, true), HEADER + 8 + META);
        assert_eq!(expires(&c), 12345);
        // The largest lengths still read back with the bit set.
        let big = Layout::Inline {
            key_len: 1023,
            value_len: 2047,
        };
        assert!(fits_lengths(1023, 2047));
        assert!(!fits_lengths(1024, 1) && !fits_lengths(1, 2048));
        set_layout(&mut c, big, true);
        assert_eq!(layout(&c), big);
        assert!(has_meta(&c));
        // The read mark sits beside the lengths without changing them, and any
        // write of the layout clears it.
        set_referenced(&mut c);
        assert!(referenced(&c));
        assert_eq!(layout(&c), big);
        assert!(has_meta(&c));
        clear_referenced(&mut c);
        assert!(!referenced(&c));
        assert_eq!(layout(&c), big);
        set_referenced(&mut c);
        set_layout(&mut c, big, true);
        assert!(!referenced(&c));
        // Out of line: the metadata follows the index.
        set_layout(&mut c, Layout::External, true);
        set_external_index(&mut c, 9);
        set_meta(&mut c, m);
        assert_eq!(meta(&c), m);
        assert_eq!(external_index(&c), 9);
        assert_eq!(u32_at(&c, HEADER + 4), u32::MAX);
        assert_eq!(external_size(true), 32);
        assert_eq!(expires(&c), 12345);
    }

    #[test]
    fn handles_round_trip() {
        let h = handle(38, MAX_PER_CLASS - 1);
        assert_ne!(h, NIL);
        assert_eq!(class_of_handle(h), 38);
        assert_eq!(index_of_handle(h), MAX_PER_CLASS - 1);
    }
}
