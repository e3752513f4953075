//! The stable hashes every node and client must compute identically.
//!
//! XXH3-64 is used because its output is specified and identical on every platform,
//! build and language (unlike ahash, whose output varies by design), it is fast on
//! short keys, and implementations exist for every common language.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Seed of the shard hash, so that a key's core is independent of its ring position
/// (a node owns many narrow arcs of the ring; reusing the ring hash would send each
/// arc's keys to one or two cores).
pub const SHARD_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// The ring hash of a key or a virtual node name: XXH3-64 with seed 0.
#[inline]
pub fn key_hash(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// The shard hash of a key: XXH3-64 with seed [`SHARD_SEED`].
#[inline]
pub fn shard_hash(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, SHARD_SEED)
}

/// The shard (core) of a key inside a node with `shards` shards:
/// `shard_hash(key) % shards`. `shards` of 0 is treated as 1.
#[inline]
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    (shard_hash(key) % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_the_published_xxh3_values() {
        // XXH3-64 of the empty input with seed 0 is a published constant.
        assert_eq!(key_hash(b""), 0x2d06_8005_38d3_94c2);
        assert_ne!(key_hash(b"k"), shard_hash(b"k"));
    }

    #[test]
    fn shards_spread_evenly() {
        let mut counts = [0usize; 4];
        for i in 0..40_000 {
            counts[shard_of(format!("key-{i}").as_bytes(), 4)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
