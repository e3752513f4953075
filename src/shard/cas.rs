//! CAS uniques: one counter per shard, the core's number in the high bits.
//!
//! memcached gives every write of an item a new 64-bit "CAS unique" and a `cas`
//! command stores only if the item still has the unique the client read. Here the
//! owner's core is the only writer of its keys, so a counter per shard suffices:
//!
//! ```text
//! bits 54..64  core number (0..1024)
//! bits  0..54  counter, from the seed, +1 per write; never 0
//! ```
//!
//! Two cores of a node never issue the same value (their high bits differ), and one
//! core's values increase with every write. A value survives only as long as its
//! item: every write of the item gives it a new one, and a deleted or evicted key
//! gets a new one when it is written again.
//!
//! What the seed is for: a restarted node's counters start again, and a client may
//! still hold a unique read before the restart. Seeding with the wall clock in
//! microseconds (the wiring's choice, [`CasSource::new`]) makes a restarted core
//! issue values above those it issued before, unless it averaged more than a million
//! writes a second. Across nodes values are not coordinated: after a ring change a
//! key's new owner issues its own, and an old unique can only match by coincidence
//! of two independent counters (the old owner's copy is dropped or demoted by the
//! ring change either way).

/// Bits of the counter; the core number takes the rest.
pub const COUNTER_BITS: u32 = 54;

const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;

/// Issues the CAS uniques of one shard.
#[derive(Debug, Clone)]
pub struct CasSource {
    /// The core's number, shifted into place.
    high: u64,
    /// The next counter value, 1..=COUNTER_MASK.
    next: u64,
}

impl Default for CasSource {
    /// Core 0, counting from 1 (tests, and shards that never
    /// [`crate::shard::Shard::enable_meta`]).
    fn default() -> Self {
        CasSource::new(0, 0)
    }
}

impl CasSource {
    /// Uniques of core `core` (its low 10 bits are used), the counter starting at
    /// `seed` (its low 54 bits; 0 counts as 1). The wiring passes the wall clock in
    /// microseconds since the Unix epoch as the seed (see the module comment).
    pub fn new(core: u16, seed: u64) -> CasSource {
        CasSource {
            high: u64::from(core & 0x3ff) << COUNTER_BITS,
            next: (seed & COUNTER_MASK).max(1),
        }
    }

    /// A new unique: greater than every earlier one of this source (until the
    /// counter wraps after 2^54 writes, to 1), never 0.
    #[inline]
    pub fn issue(&mut self) -> u64 {
        let c = self.next;
        self.next = if c == COUNTER_MASK { 1 } else { c + 1 };
        self.high | c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniques_increase_and_two_cores_never_share_one() {
        let mut a = CasSource::new(0, 0);
        let mut b = CasSource::new(1, 0);
        let xs: Vec<u64> = (0..1000).map(|_| a.issue()).collect();
        let ys: Vec<u64> = (0..1000).map(|_| b.issue()).collect();
        assert_eq!(xs[0], 1);
        assert!(xs.windows(2).all(|w| w[0] < w[1]));
        assert!(ys.windows(2).all(|w| w[0] < w[1]));
        assert!(xs.iter().all(|x| !ys.contains(x)));
        assert_eq!(ys[0], (1 << COUNTER_BITS) | 1);
    }

    #[test]
    fn the_seed_starts_the_counter_and_it_wraps_past_zero() {
        let mut s = CasSource::new(1023, u64::MAX);
        let top = s.issue();
        assert_eq!(top, u64::MAX);
        assert_eq!(s.issue(), (1023 << COUNTER_BITS) | 1);
        let mut s = CasSource::new(5, 1_700_000_000_000_000);
        assert_eq!(s.issue() & COUNTER_MASK, 1_700_000_000_000_000);
        assert_ne!(CasSource::default().issue(), 0);
    }
}
