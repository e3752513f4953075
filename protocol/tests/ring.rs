//! Ring properties: balance at the default vnode count, minimal movement when a member
//! joins or leaves, and independence from the order of the member list.

use groupcached_protocol::{Ring, DEFAULT_VNODES};
use proptest::prelude::*;

const KEYS: usize = 100_000;

fn members(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("10.0.0.{i}:7000")).collect()
}

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS).map(|i| format!("key-{i}").into_bytes()).collect()
}

fn owners(ring: &Ring, keys: &[Vec<u8>]) -> Vec<usize> {
    keys.iter().map(|k| ring.owner_index(k).unwrap()).collect()
}

/// Every member's share of 100k keys is within ±15% of the mean, for 3..=10 members,
/// with two styles of member names.
#[test]
fn members_get_an_even_share_at_default_vnodes() {
    let keys = keys();
    for n in 3..=10 {
        let styles = [
            members(n),
            (0..n).map(|i| format!("cache-{i}.internal:7000")).collect(),
        ];
        for members in styles {
            let ring = Ring::new(&members, DEFAULT_VNODES);
            let mut counts = vec![0usize; n];
            for i in owners(&ring, &keys) {
                counts[i] += 1;
            }
            let mean = KEYS as f64 / n as f64;
            for (m, &c) in ring.members().iter().zip(&counts) {
                let dev = (c as f64 - mean) / mean;
                assert!(
                    dev.abs() <= 0.15,
                    "{n} members: {m} owns {c} keys, {:.1}% off the mean; all: {counts:?}",
                    dev * 100.0
                );
            }
        }
    }
}

/// Going from 3 to 4 members moves about a quarter of the keys, all of them to the new
/// member; removing it again moves exactly those keys back.
#[test]
fn adding_a_member_moves_only_keys_to_it() {
    let keys = keys();
    let three = Ring::new(&members(3), DEFAULT_VNODES);
    let four = Ring::new(&members(4), DEFAULT_VNODES);
    let new_member = "10.0.0.4:7000";
    let mut moved = 0;
    for key in &keys {
        let before = three.owner(key).unwrap();
        let after = four.owner(key).unwrap();
        if before != after {
            moved += 1;
            assert_eq!(after, new_member, "a key moved between old members");
        }
    }
    let fraction = moved as f64 / KEYS as f64;
    assert!(
        (0.18..=0.32).contains(&fraction),
        "{:.3} of the keys moved",
        fraction
    );
}

#[test]
fn removing_a_member_moves_only_its_keys() {
    let keys = keys();
    let all = members(6);
    let six = Ring::new(&all, DEFAULT_VNODES);
    let gone = "10.0.0.3:7000";
    let rest: Vec<&String> = all.iter().filter(|m| *m != gone).collect();
    let five = Ring::new(&rest, DEFAULT_VNODES);
    for key in &keys {
        let before = six.owner(key).unwrap();
        let after = five.owner(key).unwrap();
        if before != gone {
            assert_eq!(before, after, "a key of a remaining member moved");
        }
        assert_ne!(after, gone);
    }
}

#[test]
fn a_single_member_owns_everything() {
    let ring = Ring::new(&["only:1"], DEFAULT_VNODES);
    for key in keys().iter().take(1000) {
        assert_eq!(ring.owner(key), Some("only:1"));
    }
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}:[0-9]{1,5}",
        "[a-z][a-z0-9.-]{0,20}:[0-9]{1,5}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any permutation of the member list, with any duplicates added, gives the same
    /// ring: same members, same fingerprint, same owner for every key.
    #[test]
    fn ring_does_not_depend_on_member_order_or_duplicates(
        (members, shuffled) in prop::collection::vec(member_name(), 1..8)
            .prop_flat_map(|m| (Just(m.clone()), Just(m).prop_shuffle())),
        dup in any::<prop::sample::Index>(),
        vnodes in 1u32..64,
        probe in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..24), 50),
    ) {
        let mut with_dup = shuffled.clone();
        with_dup.push(dup.get(&members).clone());
        let a = Ring::new(&members, vnodes);
        let b = Ring::new(&with_dup, vnodes);
        prop_assert_eq!(a.members(), b.members());
        prop_assert_eq!(a.fingerprint(), b.fingerprint());
        for key in &probe {
            prop_assert_eq!(a.owner(key), b.owner(key));
            let owner = a.owner(key).unwrap();
            prop_assert!(members.iter().any(|m| m == owner));
        }
        let mut sorted = members.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(a.members(), &sorted[..]);
    }

    /// Adding any member to any ring only moves keys to that member.
    #[test]
    fn adding_any_member_moves_keys_only_to_it(
        members in prop::collection::btree_set(member_name(), 1..6),
        extra in member_name(),
        probe in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..24), 100),
    ) {
        prop_assume!(!members.contains(&extra));
        let members: Vec<String> = members.into_iter().collect();
        let mut bigger = members.clone();
        bigger.push(extra.clone());
        let a = Ring::new(&members, 32);
        let b = Ring::new(&bigger, 32);
        prop_assert_ne!(a.fingerprint(), b.fingerprint());
        for key in &probe {
            let (before, after) = (a.owner(key).unwrap(), b.owner(key).unwrap());
            prop_assert!(before == after || after == extra, "{:?} moved {} -> {}", key, before, after);
        }
    }
}
