//! incr/decr, touch, get-and-touch and delete with a CAS.

use super::*;

#[test]
fn incr_and_decr_follow_memcached() {
    let now = Instant::now();
    let mut s = s();
    assert_eq!(s.arith(now, 0, b"n", incr(1)), NotFound);
    let c0 = set(&mut s, now, b"n", "100", 5);
    let Number {
        value: 105,
        cas: c1,
    } = s.arith(now, 0, b"n", incr(5))
    else {
        panic!()
    };
    assert!(c1 > c0);
    // Flags kept, new CAS.
    assert_eq!(read(&mut s, now, b"n"), Some(("105".into(), 5, c1)));
    // A shorter result is padded with spaces to the old length, as memcached does.
    assert!(matches!(
        s.arith(now, 0, b"n", decr(96)),
        Number { value: 9, .. }
    ));
    assert_eq!(read(&mut s, now, b"n").unwrap().0, "9  ");
    // decr stops at 0.
    assert!(matches!(
        s.arith(now, 0, b"n", decr(1000)),
        Number { value: 0, .. }
    ));
    assert_eq!(read(&mut s, now, b"n").unwrap().0, "0  ");
    // A longer one is written as it is.
    assert!(matches!(
        s.arith(now, 0, b"n", incr(12345)),
        Number { value: 12345, .. }
    ));
    assert_eq!(read(&mut s, now, b"n").unwrap().0, "12345");
}

#[test]
fn incr_wraps_at_2_to_the_64() {
    let now = Instant::now();
    let mut s = s();
    set(&mut s, now, b"n", "18446744073709551615", 0);
    assert!(matches!(
        s.arith(now, 0, b"n", incr(1)),
        Number { value: 0, .. }
    ));
    assert_eq!(
        read(&mut s, now, b"n").unwrap().0,
        format!("0{}", " ".repeat(19))
    );
    set(&mut s, now, b"n", "18446744073709551610", 0);
    assert!(matches!(
        s.arith(now, 0, b"n", incr(u64::MAX)),
        Number {
            value: 18446744073709551609,
            ..
        }
    ));
    // A value past 2^64 - 1 is not a number.
    set(&mut s, now, b"n", "18446744073709551616", 0);
    assert_eq!(s.arith(now, 0, b"n", incr(1)), NonNumeric);
}

#[test]
fn incr_of_a_non_number_changes_nothing() {
    let now = Instant::now();
    let mut s = s();
    for bad in ["", "abc", "12abc", "-1", "1.5"] {
        let c = set(&mut s, now, b"n", bad, 3);
        assert_eq!(s.arith(now, 0, b"n", incr(1)), NonNumeric, "{bad:?}");
        assert_eq!(s.arith(now, 0, b"n", decr(1)), NonNumeric, "{bad:?}");
        assert_eq!(read(&mut s, now, b"n"), Some((bad.into(), 3, c)));
    }
}

#[test]
fn incr_of_an_expired_or_origin_only_counter_is_not_found_unless_vivified() {
    let now = Instant::now();
    let mut s = s();
    s.store(now, 0, b"n", v("5"), w(StoreMode::Set, 0, Some(SECOND)));
    assert_eq!(s.arith(now + SECOND, 0, b"n", incr(1)), NotFound);
    // The origin may have "m": the cache does not, so NOT_FOUND, and no load starts.
    assert_eq!(s.arith(now, 0, b"m", incr(1)), NotFound);
    assert_eq!(s.loads_in_flight(), 0);
    // ma N J: created with the initial value, the delta not applied.
    let a = Arith {
        vivify: Some(Vivify {
            initial: 10,
            ttl: Some(SECOND),
        }),
        ..incr(3)
    };
    let Number { value: 10, cas } = s.arith(now, 0, b"m", a) else {
        panic!()
    };
    assert_eq!(read(&mut s, now, b"m"), Some(("10".into(), 0, cas)));
    assert!(matches!(s.arith(now, 0, b"m", a), Number { value: 13, .. }));
    assert_eq!(read(&mut s, now + SECOND, b"m"), None);
}

#[test]
fn arith_with_a_cas_applies_only_on_a_match() {
    let now = Instant::now();
    let mut s = s();
    let with = |c| Arith {
        cas: Some(c),
        ..incr(1)
    };
    assert_eq!(s.arith(now, 0, b"n", with(1)), NotFound);
    let c = set(&mut s, now, b"n", "1", 0);
    assert_eq!(s.arith(now, 0, b"n", with(c + 1000)), Exists);
    assert!(matches!(
        s.arith(now, 0, b"n", with(c)),
        Number { value: 2, .. }
    ));
    assert_eq!(s.arith(now, 0, b"n", with(c)), Exists);
}

#[test]
fn touch_sets_a_new_ttl_and_keeps_value_flags_and_cas() {
    let now = Instant::now();
    let mut s = s();
    assert_eq!(s.touch(now, 0, b"k", Some(SECOND)), NotFound);
    let c = match s.store(now, 0, b"k", v("x"), w(StoreMode::Set, 4, Some(SECOND))) {
        Stored { cas } => cas,
        o => panic!("{o:?}"),
    };
    assert_eq!(s.touch(now, 0, b"k", Some(10 * SECOND)), Touched { cas: c });
    assert_eq!(
        read(&mut s, now + 5 * SECOND, b"k"),
        Some(("x".into(), 4, c))
    );
    // No expiry at all (Some(ZERO)), then expired: absent.
    assert_eq!(
        s.touch(now, 0, b"k", Some(Duration::ZERO)),
        Touched { cas: c }
    );
    assert_eq!(
        read(&mut s, now + 1000 * SECOND, b"k"),
        Some(("x".into(), 4, c))
    );
    s.touch(now, 0, b"k", Some(SECOND));
    assert_eq!(s.touch(now + SECOND, 0, b"k", None), NotFound);
}

#[test]
fn get_and_touch_returns_the_item_with_its_new_ttl() {
    let now = Instant::now();
    let mut s = s();
    assert_eq!(s.get_and_touch(now, 0, b"k", Some(SECOND)), None);
    let c = set(&mut s, now, b"k", "x", 6);
    let hit = s.get_and_touch(now, 0, b"k", Some(30 * SECOND)).unwrap();
    assert_eq!(
        (hit.value, hit.flags, hit.cas, hit.ttl_ms),
        (v("x"), 6, c, 30_000)
    );
    assert_eq!(read(&mut s, now + 29 * SECOND, b"k").unwrap().2, c);
    assert_eq!(s.get_and_touch(now + 30 * SECOND, 0, b"k", None), None);
    assert_eq!(s.loads_in_flight(), 0);
}

#[test]
fn delete_with_a_cas_removes_only_on_a_match() {
    let now = Instant::now();
    let mut s = s();
    assert_eq!(s.delete_cas(now, 0, b"k", None), NotFound);
    let c = set(&mut s, now, b"k", "x", 0);
    assert_eq!(s.delete_cas(now, 0, b"k", Some(c + 1)), Exists);
    assert_eq!(s.delete_cas(now, 0, b"k", Some(c)), Deleted);
    assert_eq!(read(&mut s, now, b"k"), None);
    // An expired item is not found, and is removed.
    s.store(now, 0, b"t", v("x"), w(StoreMode::Set, 0, Some(SECOND)));
    assert_eq!(s.delete_cas(now + SECOND, 0, b"t", None), NotFound);
    assert_eq!(s.cache_bytes(0), (0, 0));
}
