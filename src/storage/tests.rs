//! The store's rules (the property test against a model is in `model_tests.rs`).

use std::time::Duration;

use super::class::{external_charge, CHUNK_CHARGE, CLASS_SIZES, INDEX_CHARGE, MAX_CHUNK};
use super::item::{HEADER, META};
use super::*;

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
    // A read marks "a" and leaves it where it is...
    assert_eq!(keys(&l), vec![k("c"), k("b"), k("a")]);
    // ...until eviction reaches it: a second chance at the head, and "b" goes.
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
fn a_read_item_outlives_unread_ones_and_gets_one_second_chance() {
    let now = Instant::now();
    let mut l = Store::new();
    for key in [b"a", b"b", b"c", b"d"] {
        l.insert(key, v(10, 1), None);
    }
    // Read the two oldest; they are evicted last, in their old order.
    assert!(l.get(b"a", now).is_some());
    assert!(l.get(b"b", now).is_some());
    assert_eq!(l.pop_oldest(), Some(charge(1, 10)));
    assert_eq!(keys(&l), vec![k("b"), k("a"), k("d")]);
    assert_eq!(l.pop_oldest(), Some(charge(1, 10)));
    assert_eq!(keys(&l), vec![k("b"), k("a")]);
    // Their marks were spent: unread since, "a" is next.
    assert_eq!(l.pop_oldest(), Some(charge(1, 10)));
    assert_eq!(keys(&l), vec![k("b")]);
    // A write clears the mark: a rewritten item is as if new.
    assert!(l.get(b"b", now).is_some());
    l.insert(b"b", v(10, 2), None);
    l.insert(b"e", v(10, 1), None);
    assert_eq!(l.pop_oldest(), Some(charge(1, 10)));
    assert_eq!(keys(&l), vec![k("e")]);
}

#[test]
fn one_eviction_gives_at_most_second_chances_read_items_a_second_chance() {
    let now = Instant::now();
    let mut l = Store::new();
    let n = SECOND_CHANCES + 10;
    let key = |i: usize| format!("k{i:03}").into_bytes();
    for i in 0..n {
        l.insert(&key(i), v(10, 1), None);
    }
    for i in 0..n {
        assert!(l.get(&key(i), now).is_some());
    }
    // Every item is read: the first SECOND_CHANCES go to the head, and the next
    // tail goes although read.
    assert_eq!(l.pop_oldest(), Some(charge(4, 10)));
    assert!(!l.contains(&key(SECOND_CHANCES)));
    let order = keys(&l);
    assert_eq!(order.len(), n - 1);
    assert_eq!(order[order.len() - 1], key(SECOND_CHANCES + 1));
    assert_eq!(order[0], key(SECOND_CHANCES - 1));
    // The next eviction second-chances the 9 read items left at the tail and
    // evicts the oldest item whose mark is spent: the first one moved.
    assert_eq!(l.pop_oldest(), Some(charge(4, 10)));
    assert!(!l.contains(&key(0)));
    let order = keys(&l);
    assert_eq!(order[0], key(n - 1));
    assert_eq!(order[order.len() - 1], key(1));
    assert_eq!(l.len(), n - 2);
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
fn get_with_sees_small_values_in_place_and_large_ones_shared() {
    let now = Instant::now();
    let mut l = Store::new();
    l.insert(b"small", v(100, 1), Some(now + Duration::from_secs(5)));
    let huge = v(REHOME_MAX + 1, 2);
    l.insert(b"huge", huge.clone(), None);
    let small = l.get_with(b"small", now, |value, expires| {
        assert!(value.shared().is_none());
        assert!(expires.is_some());
        value.bytes().to_vec()
    });
    assert_eq!(small, Some(vec![1; 100]));
    let shared = l.get_with(b"huge", now, |value, expires| {
        assert!(expires.is_none());
        value.shared().map(|view| view.as_ptr())
    });
    assert_eq!(shared, Some(Some(huge.as_ptr())));
    assert!(l.get_with(b"absent", now, |_, _| ()).is_none());
    // Expired: absent, and removed; a read marks the item as `get` does.
    assert!(l
        .get_with(b"small", now + Duration::from_secs(5), |_, _| ())
        .is_none());
    assert!(!l.contains(b"small"));
    l.insert(b"a", v(1, 1), None);
    l.insert(b"b", v(1, 1), None);
    assert!(l.get_with(b"huge", now, |_, _| ()).is_some());
    assert_eq!(l.pop_oldest(), Some(charge(1, 1)));
    assert!(l.contains(b"huge") && !l.contains(b"a"));
}

#[test]
fn prefetch_changes_nothing() {
    let now = Instant::now();
    let mut l = Store::new();
    l.insert(b"small", v(100, 1), None);
    l.insert(b"inline-max", v(MAX_CHUNK - HEADER - 10, 2), None);
    l.insert(b"huge", v(REHOME_MAX + 1, 3), None);
    let before = (keys(&l), l.len(), l.bytes());
    for key in [&b"small"[..], b"inline-max", b"huge", b"absent", b""] {
        l.prefetch(l.hash(key));
    }
    assert_eq!((keys(&l), l.len(), l.bytes()), before);
    // Prefetching marks nothing read: "small", the tail, is still evicted first.
    assert_eq!(l.pop_oldest(), Some(charge(5, 100)));
    assert!(l.get(b"huge", now).is_some());
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
    let got: Vec<u8> = taken.iter().map(|t| t.key[0]).collect();
    assert_eq!(got, (0..50u8).filter(|i| i % 2 == 0).collect::<Vec<_>>());
    for Taken {
        key,
        value,
        expires,
        meta,
    } in &taken
    {
        assert_eq!(*meta, None);
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

#[test]
fn metadata_round_trips_and_a_plain_insert_drops_it() {
    let now = Instant::now();
    let mut l = Store::new();
    let m = Meta {
        flags: 0xdead_beef,
        cas: 42,
    };
    // Inline, out of line (too big), out of line (far expiry).
    let far = now + Duration::from_millis(u64::MAX);
    for (n, expires) in [(100, None), (5000, None), (1, Some(far))] {
        l.insert_meta(b"k", v(n, 1), expires, m);
        assert_eq!(l.bytes(), expected_charge(n, expires, true));
        let (hit, got) = l.get_meta(b"k", now).unwrap();
        assert_eq!((hit.value, hit.expires, got), (v(n, 1), expires, m));
        assert_eq!(l.peek_meta(b"k", now), Some(m));
        // A plain get returns the same value; a plain insert drops the metadata.
        assert_eq!(l.get(b"k", now).unwrap().value, v(n, 1));
        l.insert(b"k", v(n, 2), expires);
        assert_eq!(l.get_meta(b"k", now).unwrap().1, Meta::NONE);
        assert_eq!(l.peek_meta(b"k", now), Some(Meta::NONE));
        assert_eq!(l.bytes(), expected_charge(n, expires, false));
        l.remove(b"k");
    }
    assert_eq!(l.bytes(), 0);
    assert_eq!(l.externals.len(), 0);
    assert_eq!(l.peek_meta(b"k", now), None);
}

/// The charge of an `n`-byte value under a 1-byte key, with or without metadata:
/// out of line if it has an expiry (the test's only one lies too far ahead).
fn expected_charge(n: usize, expires: Option<Instant>, meta: bool) -> usize {
    match expires {
        Some(_) => external_charge(1, n),
        None => item_charge(1, n, meta),
    }
}

#[test]
fn metadata_takes_12_bytes_of_the_chunk_and_keeps_key_and_value_apart() {
    let now = Instant::now();
    let mut l = Store::new();
    // The largest inline value with metadata fills a 2 KiB chunk exactly.
    let fit = MAX_CHUNK - HEADER - META - 1;
    let m = Meta { flags: 1, cas: 2 };
    l.insert_meta(b"a", v(fit, 3), None, m);
    assert_eq!(l.externals.len(), 0);
    assert_eq!(l.bytes(), MAX_CHUNK + INDEX_CHARGE);
    // One byte more goes out of line.
    l.insert_meta(b"b", v(fit + 1, 4), None, m);
    assert_eq!(l.externals.len(), 1);
    // Items with and without metadata side by side in one class, with removals
    // moving chunks around.
    for i in 0..200u32 {
        let key = i.to_be_bytes();
        if i % 2 == 0 {
            l.insert_meta(
                &key,
                v(80, i as u8),
                None,
                Meta {
                    flags: i,
                    cas: u64::from(i) + 1,
                },
            );
        } else {
            l.insert(&key, v(92, i as u8), None);
        }
    }
    for i in (0..200u32).step_by(3) {
        assert!(l.remove(&i.to_be_bytes()));
    }
    for i in (0..200u32).filter(|i| i % 3 != 0) {
        let (hit, meta) = l.get_meta(&i.to_be_bytes(), now).unwrap();
        if i % 2 == 0 {
            assert_eq!(hit.value, v(80, i as u8));
            assert_eq!(
                meta,
                Meta {
                    flags: i,
                    cas: u64::from(i) + 1
                }
            );
        } else {
            assert_eq!(hit.value, v(92, i as u8));
            assert_eq!(meta, Meta::NONE);
        }
    }
    assert_eq!(l.get_meta(b"a", now).unwrap().0.value, v(fit, 3));
    assert_eq!(l.get_meta(b"b", now).unwrap().1, m);
}

#[test]
fn touch_keeps_value_and_metadata_and_moves_between_layouts() {
    let now = Instant::now();
    let mut l = Store::new();
    let m = Meta { flags: 7, cas: 9 };
    l.insert_meta(b"k", v(10, 1), Some(now + Duration::from_secs(1)), m);
    l.insert(b"other", v(10, 2), None);
    // Touched: later expiry, same value and metadata, most recently used.
    let later = now + Duration::from_secs(100);
    assert_eq!(l.touch(b"k", Some(later), now), Some(m));
    assert_eq!(keys(&l), vec![k("k"), k("other")]);
    let (hit, got) = l.get_meta(b"k", now + Duration::from_secs(50)).unwrap();
    assert_eq!((hit.value, got), (v(10, 1), m));
    assert!(hit.expires.unwrap() > later - Duration::from_millis(1));
    // A far expiry moves it out of line, a near one back inline.
    let far = now + Duration::from_millis(u64::MAX);
    assert_eq!(l.touch(b"k", Some(far), now), Some(m));
    assert_eq!(l.externals.len(), 1);
    assert_eq!(l.get_meta(b"k", now).unwrap().0.expires, Some(far));
    assert_eq!(l.touch(b"k", None, now), Some(m));
    assert_eq!(l.externals.len(), 0);
    assert_eq!(l.bytes(), item_charge(1, 10, true) + charge(5, 10));
    assert_eq!(l.get_meta(b"k", now).unwrap().1, m);
    // An expired item is absent for touch, and removed.
    l.insert_meta(b"gone", v(5000, 3), Some(now + Duration::from_secs(1)), m);
    assert_eq!(l.touch(b"gone", None, now + Duration::from_secs(1)), None);
    assert!(!l.contains(b"gone"));
    assert_eq!(l.touch(b"never", None, now), None);
    // An out-of-line item too big for a chunk stays out of line.
    l.insert(b"big", v(5000, 4), None);
    assert_eq!(l.touch(b"big", Some(later), now), Some(Meta::NONE));
    assert_eq!(l.get(b"big", now).unwrap().expires, Some(later));
    assert_eq!(l.externals.len(), 1);
}
