//! Size classes and the charge: what an item really costs, in bytes.
//!
//! An item whose header, key and value fit in [`MAX_CHUNK`] bytes lives in one chunk
//! of the smallest size class that holds it. Classes are 16 bytes apart up to 256
//! bytes, then four per doubling up to 2 KiB: rounding wastes at most 15 bytes of a
//! chunk up to 256 bytes and at most 1/9 of a larger one (31 of 288, 127 of 1,152),
//! and that rounding is charged.

use std::time::Instant;

use crate::value::ByteView;

use super::item::{external_size, fits_lengths, inline_size};

/// Largest chunk; bigger items keep their key and value out of the arena.
pub const MAX_CHUNK: usize = 2048;

/// Number of size classes.
pub const CLASS_COUNT: usize = 39;

/// Chunk size of each class, ascending.
pub const CLASS_SIZES: [u32; CLASS_COUNT] = class_sizes();

const fn class_sizes() -> [u32; CLASS_COUNT] {
    let mut out = [0u32; CLASS_COUNT];
    let mut i = 0;
    let mut size = 32u32;
    while i < CLASS_COUNT {
        out[i] = size;
        size += if size < 256 {
            16
        } else if size < 512 {
            32
        } else if size < 1024 {
            64
        } else {
            128
        };
        i += 1;
    }
    out
}

/// Bytes of every arena page.
pub const PAGE_BYTES: usize = 64 * 1024;

/// What a chunk of each class costs: its share of a page, counting the bytes at the
/// page's end that no chunk of the class fits, rounded up to a byte: at most 2.1%
/// more (49 bytes for a 48-byte chunk, 1,171 for a 1,152-byte one).
pub const CHUNK_CHARGE: [u32; CLASS_COUNT] = chunk_charges();

const fn chunk_charges() -> [u32; CLASS_COUNT] {
    let mut out = [0u32; CLASS_COUNT];
    let mut i = 0;
    while i < CLASS_COUNT {
        let per_page = PAGE_BYTES as u32 / CLASS_SIZES[i];
        out[i] = (PAGE_BYTES as u32).div_ceil(per_page);
        i += 1;
    }
    out
}

/// `CLASS_OF[ceil(size / 16)]` is the class of an item of `size` bytes.
const CLASS_OF: [u8; MAX_CHUNK / 16 + 1] = class_table();

const fn class_table() -> [u8; MAX_CHUNK / 16 + 1] {
    let mut out = [0u8; MAX_CHUNK / 16 + 1];
    let mut u = 0;
    while u < out.len() {
        let need = (u * 16) as u32;
        let mut c = 0;
        while CLASS_SIZES[c] < need {
            c += 1;
        }
        out[u] = c as u8;
        u += 1;
    }
    out
}

/// The class holding an item of `size` bytes (header included); `size <= MAX_CHUNK`.
#[inline]
pub fn class_of(size: usize) -> usize {
    CLASS_OF[size.div_ceil(16)] as usize
}

/// The class of an item stored out of line: its chunk holds the header, a 4-byte
/// index into the external table, and the metadata if any. With or without
/// metadata that is the smallest class, so metadata costs such an item nothing.
pub fn external_class() -> usize {
    class_of(external_size(true))
}

const _: () = assert!(external_size(true) <= CLASS_SIZES[0] as usize);

/// Index bytes charged per item. The hash index is a table of 4-byte slot numbers
/// plus one control byte per bucket; hashbrown keeps it between 7/16 and 7/8 full,
/// so an item costs 5.7 to 11.4 bytes of it. 12 covers the worst case.
pub const INDEX_CHARGE: usize = 12;

/// Bytes of one slot of the external table (a `slab::Slab` entry).
pub const EXTERNAL_SLOT: usize = std::mem::size_of::<External>() + 8;

/// Bytes `malloc` (glibc) really takes for an `n`-byte block: an 8-byte size word,
/// rounded up to 16 bytes, at least 32; blocks of 128 KiB and more are mapped pages.
pub fn heap_block(n: usize) -> usize {
    if n + 8 >= 128 * 1024 {
        (n + 16).next_multiple_of(4096)
    } else {
        (n + 8).next_multiple_of(16).max(32)
    }
}

/// An item kept out of line: its key, its reference-counted value (written to
/// sockets straight from here, without a copy) and its exact expiry. Items too big
/// for a chunk live here, and so do items whose expiry lies beyond the header's 40
/// bits (about 26 years ahead), so that no TTL is ever clamped.
pub struct External {
    /// The key.
    pub key: Box<[u8]>,
    /// The value.
    pub value: ByteView,
    /// When it stops being served, if ever.
    pub expires: Option<Instant>,
}

/// Whether an item of this key and value, with metadata or without, is stored
/// inline, in one chunk.
#[inline]
pub fn fits_inline(key_len: usize, value_len: usize, meta: bool) -> bool {
    inline_size(key_len, value_len, meta) <= MAX_CHUNK && fits_lengths(key_len, value_len)
}

/// What an entry costs against a budget: its chunk (with its share of the page's
/// unusable end, [`CHUNK_CHARGE`]) and its share of the index; for
/// an item stored out of line (too big for a chunk) see [`external_charge`].
///
/// The one exception: an item small enough for a chunk whose expiry lies more than
/// about 26 years ahead is kept out of line too, and costs [`external_charge`].
pub fn charge(key_len: usize, value_len: usize) -> usize {
    item_charge(key_len, value_len, false)
}

/// What an entry costs, with memcached metadata ([`super::item::META`] bytes more
/// in an inline item's chunk) or without: [`charge`] is `item_charge(.., false)`.
pub fn item_charge(key_len: usize, value_len: usize, meta: bool) -> usize {
    if fits_inline(key_len, value_len, meta) {
        CHUNK_CHARGE[class_of(inline_size(key_len, value_len, meta))] as usize + INDEX_CHARGE
    } else {
        external_charge(key_len, value_len)
    }
}

/// What an item kept out of line costs: a minimal chunk, its index share, the
/// external slot, the key's block and the value's blocks (`Arc` + `Vec` header, then
/// the bytes).
pub fn external_charge(key_len: usize, value_len: usize) -> usize {
    CHUNK_CHARGE[external_class()] as usize
        + INDEX_CHARGE
        + EXTERNAL_SLOT
        + heap_block(key_len)
        + heap_block(16 + 24)
        + heap_block(value_len)
}

/// The largest value a `budget` can hold under a `key_len`-byte key (0 if none).
#[cfg(test)]
pub fn largest_value(key_len: usize, budget: usize) -> usize {
    largest_value_with(key_len, budget, false)
}

/// `largest_value` for an item with metadata (`meta`) or without.
pub fn largest_value_with(key_len: usize, budget: usize, meta: bool) -> usize {
    // The charge grows with the value length, so search for the last length that fits.
    let charge = |v| item_charge(key_len, v, meta);
    let (mut lo, mut hi) = (0usize, budget);
    if charge(0) > budget {
        return 0;
    }
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if charge(mid) <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::super::item::{HEADER, META};
    use super::*;

    #[test]
    fn every_size_gets_the_smallest_class_that_holds_it() {
        for size in 1..=MAX_CHUNK {
            let c = class_of(size);
            assert!(CLASS_SIZES[c] as usize >= size, "size {size}");
            if c > 0 {
                assert!((CLASS_SIZES[c - 1] as usize) < size, "size {size}");
            }
        }
        assert_eq!(CLASS_SIZES[CLASS_COUNT - 1] as usize, MAX_CHUNK);
        assert!(CLASS_SIZES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_chunk_costs_its_size_and_at_most_2_percent_more() {
        for (c, &size) in CLASS_SIZES.iter().enumerate() {
            let per_page = PAGE_BYTES / size as usize;
            let charged = CHUNK_CHARGE[c] as usize;
            assert!(charged >= size as usize && charged * per_page >= PAGE_BYTES);
            assert!(
                (charged - size as usize) * 1000 <= size as usize * 21,
                "{size}"
            );
        }
        assert_eq!(CHUNK_CHARGE[class_of(128)], 128);
        assert_eq!(CHUNK_CHARGE[class_of(48)], 49);
    }

    #[test]
    fn the_benchmark_item_costs_its_chunk_and_index_share() {
        // 16-byte header + 12-byte key + 100-byte value = one 128-byte chunk.
        assert_eq!(charge(12, 100), 128 + INDEX_CHARGE);
        assert_eq!(charge(2, 100), 128 + INDEX_CHARGE);
        assert_eq!(charge(1, 0), 32 + INDEX_CHARGE);
    }

    #[test]
    fn the_out_of_line_example_of_operations_md_holds() {
        // docs/operations.md: a 64 KiB value under a 20-byte key costs 65,732 bytes.
        assert_eq!(EXTERNAL_SLOT, 56);
        assert_eq!(charge(20, 65536), 32 + 12 + 56 + 32 + 48 + 65552);
        assert_eq!(charge(20, 65536), 65_732);
    }

    #[test]
    fn charge_grows_with_the_value_and_largest_value_inverts_it() {
        let mut last = 0;
        for v in 0..20_000 {
            let c = charge(10, v);
            assert!(c >= last && c >= 10 + v);
            last = c;
        }
        for budget in [0, 40, 44, 100, 1000, 2100, 10_000, 1 << 20] {
            let v = largest_value(10, budget);
            if charge(10, 0) <= budget {
                assert!(charge(10, v) <= budget);
                assert!(charge(10, v + 1) > budget);
            } else {
                assert_eq!(v, 0);
            }
        }
    }

    #[test]
    fn metadata_costs_12_bytes_inline_and_nothing_out_of_line() {
        // The benchmark item: 16 + 12 + 12 + 100 = 140 bytes, a 144-byte chunk
        // (charged 145: 455 of them fill a page but for 16 bytes).
        assert_eq!(CHUNK_CHARGE[class_of(140)], 145);
        assert_eq!(item_charge(12, 100, true), 145 + INDEX_CHARGE);
        assert_eq!(item_charge(12, 100, false), charge(12, 100));
        for v in 0..3000 {
            let (plain, meta) = (item_charge(10, v, false), item_charge(10, v, true));
            assert!(meta >= plain, "{v}");
            if !fits_inline(10, v, false) {
                assert_eq!(meta, plain, "{v}");
            }
        }
        // The largest inline item with metadata fills a chunk exactly.
        assert!(fits_inline(1, MAX_CHUNK - HEADER - META - 1, true));
        assert!(!fits_inline(1, MAX_CHUNK - HEADER - META, true));
        let v = largest_value_with(10, 200, true);
        assert!(item_charge(10, v, true) <= 200 && item_charge(10, v + 1, true) > 200);
    }

    #[test]
    fn heap_blocks_follow_glibc() {
        assert_eq!(heap_block(1), 32);
        assert_eq!(heap_block(24), 32);
        assert_eq!(heap_block(25), 48);
        assert_eq!(heap_block(100), 112);
        assert_eq!(heap_block(1 << 20), (1 << 20) + 4096);
    }
}
