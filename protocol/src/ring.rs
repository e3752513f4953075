//! The consistent-hash ring: which member owns a key.

use xxhash_rust::xxh3::xxh3_64;

use crate::hash::key_hash;

/// Default virtual nodes per member. With 512, every member of a 3..10 member ring
/// gets within ±15% of an even share of keys (checked by this crate's tests), and a
/// 10-member ring is 5,120 points (80 KiB), small enough to stay in cache.
pub const DEFAULT_VNODES: u32 = 512;

/// A consistent-hash ring over a set of members (`host:port` strings).
///
/// The ring depends only on the *set* of members and the virtual-node count: members
/// are sorted and de-duplicated first, a virtual node's name (`member`, a 0x00 byte,
/// the index as a big-endian u32) cannot be produced by any other (member, index)
/// pair, and two points with the same hash are resolved in favour of the
/// byte-wise smaller member. So every node and client computes the same owners.
#[derive(Clone)]
pub struct Ring {
    members: Vec<String>,
    points: Vec<u64>,
    owners: Vec<u32>,
    vnodes: u32,
    fingerprint: u64,
    hasher: fn(&[u8]) -> u64,
}

impl Ring {
    /// A ring over `members` with `vnodes` virtual nodes each (0 is treated as 1).
    pub fn new<S: AsRef<str>>(members: &[S], vnodes: u32) -> Ring {
        Ring::with_hasher(members, vnodes, key_hash)
    }

    /// A ring with another hash function, for tests that want predictable points.
    /// Anything on the wire must use [`Ring::new`].
    pub fn with_hasher<S: AsRef<str>>(
        members: &[S],
        vnodes: u32,
        hasher: fn(&[u8]) -> u64,
    ) -> Ring {
        let vnodes = vnodes.max(1);
        let mut members: Vec<String> = members.iter().map(|m| m.as_ref().to_owned()).collect();
        members.sort_unstable();
        members.dedup();

        let mut pairs: Vec<(u64, u32)> = Vec::with_capacity(members.len() * vnodes as usize);
        let mut name = Vec::new();
        for (idx, m) in members.iter().enumerate() {
            for i in 0..vnodes {
                name.clear();
                name.extend_from_slice(m.as_bytes());
                name.push(0);
                name.extend_from_slice(&i.to_be_bytes());
                pairs.push((hasher(&name), idx as u32));
            }
        }
        // Members are sorted, so on equal hashes the smaller index is the smaller member.
        pairs.sort_unstable();
        pairs.dedup_by_key(|p| p.0);

        let fingerprint = fingerprint(&members, vnodes);
        Ring {
            points: pairs.iter().map(|p| p.0).collect(),
            owners: pairs.iter().map(|p| p.1).collect(),
            members,
            vnodes,
            fingerprint,
            hasher,
        }
    }

    /// The index (into [`Ring::members`]) of the member that owns `key`, or `None` for
    /// an empty ring: the first point at or after the key's hash, wrapping around.
    #[inline]
    pub fn owner_index(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let h = (self.hasher)(key);
        let i = self.points.partition_point(|&p| p < h);
        let i = if i == self.points.len() { 0 } else { i };
        Some(self.owners[i] as usize)
    }

    /// The member that owns `key`, or `None` for an empty ring.
    #[inline]
    pub fn owner(&self, key: &[u8]) -> Option<&str> {
        self.owner_index(key).map(|i| self.members[i].as_str())
    }

    /// The members, sorted and de-duplicated.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Virtual nodes per member.
    pub fn vnodes(&self) -> u32 {
        self.vnodes
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the ring has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// A 64-bit summary of the ring's inputs (sorted members and vnode count), sent in
    /// HELLO so nodes can tell when their member lists disagree.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("members", &self.members)
            .field("vnodes", &self.vnodes)
            .field("points", &self.points.len())
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .finish()
    }
}

/// XXH3-64 (seed 0) of `"groupcached-ring-v1"`, a 0x00 byte, the vnode count as a
/// big-endian u32, then each sorted member as a big-endian u16 length and its bytes.
fn fingerprint(sorted_members: &[String], vnodes: u32) -> u64 {
    let mut buf = Vec::new();
    buf.extend_from_slice(b"groupcached-ring-v1\0");
    buf.extend_from_slice(&vnodes.to_be_bytes());
    for m in sorted_members {
        buf.extend_from_slice(&(m.len() as u16).to_be_bytes());
        buf.extend_from_slice(m.as_bytes());
    }
    xxh3_64(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ring_has_no_owner() {
        let r = Ring::new::<&str>(&[], DEFAULT_VNODES);
        assert_eq!(r.owner(b"k"), None);
    }

    #[test]
    fn order_and_duplicates_do_not_matter() {
        let a = Ring::new(&["1.2.3.4:7000", "11.2.3.4:7000", "b:1"], 64);
        let b = Ring::new(&["b:1", "11.2.3.4:7000", "1.2.3.4:7000", "b:1"], 64);
        assert_eq!(a.fingerprint(), b.fingerprint());
        for i in 0..2000 {
            let k = format!("k{i}");
            assert_eq!(a.owner(k.as_bytes()), b.owner(k.as_bytes()));
        }
    }

    #[test]
    fn fingerprint_changes_with_members_and_vnodes() {
        let a = Ring::new(&["a:1", "b:1"], 64);
        assert_ne!(
            a.fingerprint(),
            Ring::new(&["a:1", "c:1"], 64).fingerprint()
        );
        assert_ne!(
            a.fingerprint(),
            Ring::new(&["a:1", "b:1"], 65).fingerprint()
        );
        // Length-prefixed members: "ab" + "c" differs from "a" + "bc".
        assert_ne!(
            Ring::new(&["ab", "c"], 1).fingerprint(),
            Ring::new(&["a", "bc"], 1).fingerprint()
        );
    }

    /// Every point hashes to 0: the collision rule must give all keys to the smallest member.
    #[test]
    fn colliding_points_go_to_the_smaller_member_whatever_the_order() {
        let h = |_: &[u8]| 0u64;
        let a = Ring::with_hasher(&["z:1", "a:1"], 4, h);
        let b = Ring::with_hasher(&["a:1", "z:1"], 4, h);
        assert_eq!(a.owner(b"x"), Some("a:1"));
        assert_eq!(b.owner(b"x"), Some("a:1"));
    }

    /// An identity-like hash makes point positions predictable, as groupcache's test does.
    #[test]
    fn owner_is_first_point_at_or_after_the_key_with_wraparound() {
        fn h(b: &[u8]) -> u64 {
            // vnode names end in 0x00 + u32 index; keys are ASCII numbers.
            if let Some(pos) = b.iter().position(|&c| c == 0) {
                let member: u64 = std::str::from_utf8(&b[..pos]).unwrap().parse().unwrap();
                let idx = u32::from_be_bytes(b[pos + 1..].try_into().unwrap()) as u64;
                member + idx * 10
            } else {
                std::str::from_utf8(b).unwrap().parse().unwrap()
            }
        }
        // Points: member 2 -> 2,12,22; member 4 -> 4,14,24; member 6 -> 6,16,26.
        let r = Ring::with_hasher(&["6", "4", "2"], 3, h);
        for (key, want) in [
            ("2", "2"),
            ("11", "2"),
            ("23", "4"),
            ("27", "2"),
            ("3", "4"),
        ] {
            assert_eq!(r.owner(key.as_bytes()), Some(want), "key {key}");
        }
    }
}
