//! The store's rules, and a property test against a plain model of an LRU.

use std::time::Duration;

use proptest::prelude::*;

use super::class::{external_charge, CHUNK_CHARGE, CLASS_SIZES, INDEX_CHARGE, MAX_CHUNK};
use super::*;
use class::is_inline;

fn v(n: usize, fill: u8) -> ByteView {
    ByteView::from_vec(vec![fill; n])
}

fn keys(l: &Store) -> Vec<Vec<u8>> {
    l.keys()
}

fn k(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[test]
fn recency_order_and_byte_count() {
    let now = Instant::now();
    let mut l = Store::new();
    l.insert(b"a", v(10, 1), None);
    l.insert(b"b", v(20, 2), None);
    l.insert(b"c", v(30, 3), None);
    assert_eq!(l.bytes(), charge(1, 10) + charge(1, 20) + charge(1, 30));
    assert_eq!(&l.get(b"a", now).unwrap().value[..], &[1; 10][..]);
    assert_eq!(keys(&l), vec![k("a"), k("c"), k("b")]);
    assert_eq!(l.pop_oldest(), Some(charge(1, 20)));
    assert_eq!(keys(&l), vec![k("a"), k("c")]);
    l.insert(b"c", v(5, 4), None);
    assert_eq!(keys(&l), vec![k("c"), k("a")]);
    assert_eq!(l.bytes(), charge(1, 10) + charge(1, 5));
    assert!(l.remove(b"a"));
    assert!(!l.remove(b"a"));
    assert_eq!(l.pop_oldest(), Some(charge(1, 5)));
    assert_eq!(l.pop_oldest(), None);
    assert_eq!(l.bytes(), 0);
    assert!(l.is_empty());
}

#[test]
fn expired_entries_are_never_served() {
    let now = Instant::now();
    let mut l = Store::new();
    l.insert(b"k", v(1, 1), Some(now + Duration::from_secs(1)));
    let hit = l.get(b"k", now).unwrap();
    let e = hit.expires.unwrap();
    assert!(e <= now + Duration::from_secs(1) && e > now + Duration::from_millis(999));
    assert!(l.get(b"k", now + Duration::from_secs(1)).is_none());
    assert!(!l.contains(b"k"));
    assert_eq!(l.bytes(), 0);
    // An expiry already past is stored, and never served.
    l.insert(b"old", v(1, 1), Some(now));
    assert!(l.contains(b"old"));
    assert!(l.get(b"old", now).is_none());
    // No expiry: served forever.
    l.insert(b"forever", v(1, 1), None);
    let hit = l
        .get(b"forever", now + Duration::from_secs(1 << 30))
        .unwrap();
    assert_eq!(hit.expires, None);
}

#[test]
fn an_expiry_beyond_40_bits_is_kept_exactly_out_of_line() {
    // docs/protocol.md: TTLs are never clamped; 2^64 - 1 ms reads back as itself.
    let now = Instant::now();
    let mut l = Store::new();
    let far = now + Duration::from_millis(u64::MAX);
    l.insert(b"forever", v(1, 1), Some(far));
    assert_eq!(l.bytes(), external_charge(7, 1));
    let hit = l.get(b"forever", now + Duration::from_secs(3600)).unwrap();
    assert_eq!(hit.expires, Some(far));
    assert_eq!(hit.value, v(1, 1));
    // Back to a near expiry: inline again, charged as such.
    l.insert(b"forever", v(1, 2), Some(now + Duration::from_secs(1)));
    assert_eq!(l.bytes(), charge(7, 1));
    assert_eq!(l.externals.len(), 0);
    assert_eq!(l.get(b"forever", now).unwrap().value, v(1, 2));
    assert!(l.get(b"forever", now + Duration::from_secs(1)).is_none());
    // Expired out-of-line items are never served either.
    l.insert(b"big", v(5000, 3), Some(now + Duration::from_secs(1)));
    assert!(l.get(b"big", now).is_some());
    assert!(l.get(b"big", now + Duration::from_secs(1)).is_none());
    assert_eq!(l.bytes(), 0);
}

#[test]
fn replacing_a_value_with_one_of_another_size_moves_it_between_classes() {
    let now = Instant::now();
    let mut l = Store::new();
    l.insert(b"other", v(100, 9), None);
    // Inline 10 bytes -> inline 1,000 (another class) -> out of line 5,000 -> out of
    // line 3,000 -> inline 100 (same class as "other") -> inline 99 (same class).
    for (n, fill) in [(10, 1), (1000, 2), (5000, 3), (3000, 4), (100, 5), (99, 6)] {
        l.insert(
            b"key",
            v(n, fill),
            Some(now + Duration::from_secs(n as u64)),
        );
        let hit = l.get(b"key", now).unwrap();
        assert_eq!(hit.value, v(n, fill), "value of {n} bytes");
        assert!(
            hit.expires.unwrap() > now + Duration::from_secs(n as u64) - Duration::from_millis(1)
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l.bytes(), charge(5, 100) + charge(3, n));
        assert_eq!(keys(&l), vec![k("key"), k("other")]);
        assert_eq!(l.get(b"other", now).unwrap().value, v(100, 9));
        l.get(b"other", now);
        // Replacing makes the key the most recently used again.
        l.insert(b"key", v(n, fill), None);
        assert_eq!(keys(&l), vec![k("key"), k("other")]);
    }
    assert_eq!(l.externals.len(), 0, "the out-of-line slot is freed");
}

#[test]
fn large_values_are_shared_not_copied() {
    let now = Instant::now();
    let mut l = Store::new();
    // Up to 128 KiB an out-of-line value is copied once, when stored, then shared
    // by every hit.
    let big = v(MAX_CHUNK, 7);
    l.insert(b"big", big.clone(), None);
    let a = l.get(b"big", now).unwrap().value;
    let b = l.get(b"big", now).unwrap().value;
    assert_eq!(a, big);
    assert_ne!(a.as_ptr(), big.as_ptr());
    assert_eq!(a.as_ptr(), b.as_ptr());
    // Larger ones are kept as they came.
    let huge = v(REHOME_MAX + 1, 8);
    l.insert(b"huge", huge.clone(), None);
    let c = l.get(b"huge", now).unwrap().value;
    assert_eq!(c.as_ptr(), huge.as_ptr());
    // The largest inline item fills a 2 KiB chunk exactly and is copied out.
    let key = b"k";
    let fit = MAX_CHUNK - HEADER - key.len();
    let small = v(fit, 9);
    l.insert(key, small.clone(), None);
    let d = l.get(key, now).unwrap().value;
    assert_eq!(d, small);
    assert_ne!(d.as_ptr(), small.as_ptr());
    assert_eq!(charge(1, fit), MAX_CHUNK + INDEX_CHARGE);
}

#[test]
fn removing_from_the_middle_keeps_every_other_item_and_the_order() {
    let now = Instant::now();
    let mut l = Store::new();
    // 300 items of one class span several pages; remove every third, which moves
    // the class's last chunks into the holes.
    for i in 0..300u32 {
        l.insert(&i.to_be_bytes(), v(100, i as u8), None);
    }
    for i in (0..300u32).step_by(3) {
        assert!(l.remove(&i.to_be_bytes()));
    }
    let expect: Vec<Vec<u8>> = (0..300u32)
        .rev()
        .filter(|i| i % 3 != 0)
        .map(|i| i.to_be_bytes().to_vec())
        .collect();
    assert_eq!(keys(&l), expect);
    for i in 0..300u32 {
        let hit = l.get(&i.to_be_bytes(), now);
        assert_eq!(hit.is_some(), i % 3 != 0, "key {i}");
        if let Some(h) = hit {
            assert_eq!(h.value, v(100, i as u8));
        }
    }
    assert_eq!(l.bytes(), 200 * charge(4, 100));
}

#[test]
fn take_where_hands_items_back_oldest_first_while_chunks_move() {
    let now = Instant::now();
    let mut l = Store::new();
    for i in 0..50u8 {
        let n = if i % 5 == 0 {
            3000
        } else {
            20 + i as usize % 3
        };
        l.insert(&[i], v(n, i), Some(now + Duration::from_secs(60)));
    }
    let taken = l.take_where(|key| key[0] % 2 == 0);
    let got: Vec<u8> = taken.iter().map(|t| t.0[0]).collect();
    assert_eq!(got, (0..50u8).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    for (key, value, expires) in &taken {
        let i = key[0];
        let n = if i % 5 == 0 {
            3000
        } else {
            20 + i as usize % 3
        };
        assert_eq!(*value, v(n, i));
        assert!(expires.unwrap() > now + Duration::from_secs(59));
    }
    let left: Vec<Vec<u8>> = (0..50u8)
        .rev()
        .filter(|i| i % 2 == 1)
        .map(|i| vec![i])
        .collect();
    assert_eq!(keys(&l), left);
    let bytes: usize = (0..50u8)
        .filter(|i| i % 2 == 1)
        .map(|i| {
            charge(
                1,
                if i % 5 == 0 {
                    3000
                } else {
                    20 + i as usize % 3
                },
            )
        })
        .sum();
    assert_eq!(l.bytes(), bytes);
}

#[test]
fn a_full_size_class_leaves_the_key_absent() {
    let now = Instant::now();
    let mut l = Store::with_arena(arena::Arena::with_limit(2));
    l.insert(b"a", v(10, 1), None);
    l.insert(b"b", v(10, 2), None);
    l.insert(b"c", v(10, 3), None);
    assert!(l.get(b"c", now).is_none());
    assert_eq!(l.len(), 2);
    assert_eq!(l.bytes(), 2 * charge(1, 10));
    // Another class still has room.
    l.insert(b"c", v(500, 3), None);
    assert!(l.get(b"c", now).is_some());
}

#[test]
fn slots_are_reused() {
    let now = Instant::now();
    let mut l = Store::new();
    for i in 0..100_000u32 {
        l.insert(&i.to_be_bytes(), v(100, 1), None);
        if l.len() > 10 {
            l.pop_oldest();
        }
    }
    assert_eq!(l.len(), 10);
    assert!(l.get(&99_999u32.to_be_bytes(), now).is_some());
    assert!(l.get(&0u32.to_be_bytes(), now).is_none());
    // One page of the class in use, nothing else.
    assert_eq!(l.arena.page_bytes(), arena::PAGE_BYTES);
}

#[test]
fn charged_bytes_match_what_the_store_holds() {
    let mut l = Store::new();
    let n = 100_000usize;
    for i in 0..n as u32 {
        l.insert(format!("key:{i:08}").as_bytes(), v(100, 1), None);
    }
    assert_eq!(l.bytes(), n * (128 + INDEX_CHARGE));
    assert_eq!(l.arena.chunk_bytes(), n * 128);
    // The allocator's view: pages (only the last one partly used) and the table.
    let heap = l.heap_bytes();
    assert!(heap <= l.bytes(), "heap {heap} > charged {}", l.bytes());
    assert!(heap >= n * 128, "heap {heap}");
    // Out-of-line items.
    let mut l = Store::new();
    for i in 0..1000u32 {
        l.insert(
            &i.to_be_bytes(),
            ByteView::copy_from_slice(&[1; 5000]),
            None,
        );
    }
    // Less than a page of 32-byte chunks is in use: the rest of it is the base.
    assert!(l.heap_bytes() <= l.bytes() + 64 * 1024 - 1000 * 32);
    assert!(l.heap_bytes() >= 1000 * 5000 + l.arena.page_bytes());
}

#[test]
fn every_class_round_trips_its_largest_item() {
    let now = Instant::now();
    let mut l = Store::new();
    for (i, &size) in CLASS_SIZES.iter().enumerate() {
        let value_len = size as usize - HEADER - 1;
        l.insert(&[i as u8], v(value_len, i as u8), None);
        assert_eq!(
            charge(1, value_len),
            CHUNK_CHARGE[i] as usize + INDEX_CHARGE
        );
    }
    for (i, &size) in CLASS_SIZES.iter().enumerate() {
        let hit = l.get(&[i as u8], now).unwrap();
        assert_eq!(hit.value, v(size as usize - HEADER - 1, i as u8));
    }
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    Insert {
        key: u8,
        len: usize,
        ttl_ms: Option<u64>,
    },
    Get {
        key: u8,
    },
    Remove {
        key: u8,
    },
    PopOldest,
    TakeOdd,
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![0usize..120, 120usize..2100, 2100usize..5000];
    prop_oneof![
        4 => (0u8..24, len, proptest::option::of(prop_oneof![9 => 1u64..50, 1 => Just(u64::MAX)]))
            .prop_map(|(key, len, ttl_ms)| Op::Insert { key, len, ttl_ms }),
        3 => (0u8..24).prop_map(|key| Op::Get { key }),
        1 => (0u8..24).prop_map(|key| Op::Remove { key }),
        1 => Just(Op::PopOldest),
        1 => Just(Op::TakeOdd),
        1 => (0u64..30).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The model: entries most recent first, as (key, value, expiry, charge).
type Model = Vec<(Vec<u8>, Vec<u8>, Option<Instant>, usize)>;

fn key_bytes(key: u8) -> Vec<u8> {
    // Keys of different lengths, some long enough to push items out of line.
    let len = 1 + (key as usize % 4) * (key as usize % 4) * 200;
    vec![key; len]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn store_behaves_like_a_plain_lru(ops in proptest::collection::vec(op(), 1..120)) {
        // Times are whole milliseconds after the clock's epoch-relative rounding
        // point would not matter: expiries are compared as the store rounds them.
        let start = Instant::now();
        let mut now = start;
        let mut l = Store::new();
        let mut m: Model = Vec::new();
        for op in ops {
            match op {
                Op::Insert { key, len, ttl_ms } => {
                    let kb = key_bytes(key);
                    let value = vec![key.wrapping_add(len as u8); len];
                    let expires = ttl_ms.map(|t| now + Duration::from_millis(t));
                    l.insert(&kb, ByteView::from_vec(value.clone()), expires);
                    // Inline items keep their expiry rounded down to the ms; items
                    // out of line (too big, or expiring too far ahead) keep it exact.
                    let (expires, cost) = match l.clock.encode(expires) {
                        Some(code) if is_inline(kb.len(), len) => {
                            (l.clock.decode(code), charge(kb.len(), len))
                        }
                        _ => (expires, external_charge(kb.len(), len)),
                    };
                    m.retain(|e| e.0 != kb);
                    m.insert(0, (kb, value, expires, cost));
                }
                Op::Get { key } => {
                    let kb = key_bytes(key);
                    let got = l.get(&kb, now);
                    let pos = m.iter().position(|e| e.0 == kb);
                    match pos {
                        Some(p) if m[p].2.is_some_and(|e| e <= now) => {
                            m.remove(p);
                            prop_assert!(got.is_none());
                        }
                        Some(p) => {
                            let e = m.remove(p);
                            let hit = got.expect("present");
                            prop_assert_eq!(&hit.value[..], &e.1[..]);
                            prop_assert_eq!(hit.expires, e.2);
                            m.insert(0, e);
                        }
                        None => prop_assert!(got.is_none()),
                    }
                }
                Op::Remove { key } => {
                    let kb = key_bytes(key);
                    let was = m.iter().any(|e| e.0 == kb);
                    m.retain(|e| e.0 != kb);
                    prop_assert_eq!(l.remove(&kb), was);
                }
                Op::PopOldest => {
                    let expect = m.pop().map(|e| e.3);
                    prop_assert_eq!(l.pop_oldest(), expect);
                }
                Op::TakeOdd => {
                    let taken = l.take_where(|k| k[0] % 2 == 1);
                    let expect: Vec<_> = m.iter().rev().filter(|e| e.0[0] % 2 == 1).cloned().collect();
                    m.retain(|e| e.0[0] % 2 == 0);
                    prop_assert_eq!(taken.len(), expect.len());
                    for (t, e) in taken.iter().zip(&expect) {
                        prop_assert_eq!(&t.0[..], &e.0[..]);
                        prop_assert_eq!(&t.1[..], &e.1[..]);
                        prop_assert_eq!(t.2, e.2);
                    }
                }
                Op::Advance { ms } => now += Duration::from_millis(ms),
            }
            let model_keys: Vec<Vec<u8>> = m.iter().map(|e| e.0.clone()).collect();
            prop_assert_eq!(l.keys(), model_keys);
            prop_assert_eq!(l.len(), m.len());
            prop_assert_eq!(l.bytes(), m.iter().map(|e| e.3).sum::<usize>());
            for e in &m {
                prop_assert!(l.contains(&e.0));
            }
        }
    }
}
