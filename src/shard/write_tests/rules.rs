//! What every write does: size limits, superseding loads, hot copies, flush, budget.

use super::*;

#[test]
fn a_value_too_large_is_refused_and_a_plain_set_drops_the_old_item() {
    let now = Instant::now();
    let mut s = s();
    let big = "x".repeat(1001);
    set(&mut s, now, b"k", "old", 0);
    let r = s.store(now, 0, b"k", v(&big), w(StoreMode::Replace, 0, None));
    assert_eq!(r, TooLarge { max: 1000 });
    assert_eq!(read(&mut s, now, b"k").unwrap().0, "old");
    // Appending past the limit changes nothing.
    let c = set(&mut s, now, b"k", &"y".repeat(600), 0);
    let r = s.store(
        now,
        0,
        b"k",
        v(&"z".repeat(600)),
        w(StoreMode::Append, 0, None),
    );
    assert_eq!(r, TooLarge { max: 1000 });
    assert_eq!(read(&mut s, now, b"k").unwrap().2, c);
    // memcached's rule: a failed set removes the key's old value.
    let r = s.store(now, 0, b"k", v(&big), w(StoreMode::Set, 0, None));
    assert_eq!(r, TooLarge { max: 1000 });
    assert_eq!(read(&mut s, now, b"k"), None);
    assert_eq!(s.cache_bytes(0), (0, 0));
}

#[test]
fn writes_during_a_load_supersede_it_and_drop_the_hot_copy() {
    let now = Instant::now();
    for write in 0..4 {
        let mut s = s();
        let mut out = Vec::new();
        set(&mut s, now, b"k", "1", 0);
        s.insert_hot(now, 0, b"h", v("hot"), 0);
        s.get(now, 0, b"gone", 1, || false, &mut out);
        let Some(Effect::Load { id, .. }) = out.pop() else {
            panic!()
        };
        match write {
            0 => assert!(matches!(
                s.store(now, 0, b"gone", v("w"), w(StoreMode::Add, 0, None)),
                Stored { .. }
            )),
            1 => assert!(matches!(
                s.store(now, 0, b"gone", v("w"), w(StoreMode::Set, 0, None)),
                Stored { .. }
            )),
            2 => {
                let viv = Arith {
                    vivify: Some(Vivify {
                        initial: 0,
                        ttl: None,
                    }),
                    ..incr(1)
                };
                assert!(matches!(s.arith(now, 0, b"gone", viv), Number { .. }));
            }
            _ => assert_eq!(s.delete_cas(now, 0, b"gone", None), NotFound),
        }
        let written = read(&mut s, now, b"gone");
        s.on_load_done(
            now,
            0,
            id,
            Ok(Some(Loaded::new(b"stale".to_vec()))),
            |_| true,
            &mut out,
        );
        // The load's waiter is answered; the cache keeps what the write left.
        assert_eq!(out.len(), 1);
        assert_eq!(read(&mut s, now, b"gone"), written, "write {write}");
        // A write of a key drops this shard's hot copy of it.
        s.store(now, 0, b"h", v("new"), w(StoreMode::Set, 0, None));
        assert_eq!(s.cache_bytes(0).1, 0);
    }
}

#[test]
fn hot_copies_keep_the_flags_through_demotion_and_fetches() {
    let now = Instant::now();
    let mut s = s();
    let c = set(&mut s, now, b"k", "x", 77);
    assert_eq!(s.demote_unowned(now, |_| false), 1);
    assert_eq!(s.main_keys(0).len(), 0);
    assert_eq!(read(&mut s, now, b"k"), Some(("x".into(), 77, c)));
    // A fetch answered with the owner's metadata is kept with it.
    let mut out = Vec::new();
    s.get(now, 0, b"f", 1, || true, &mut out);
    let Some(Effect::Fetch { id, .. }) = out.pop() else {
        panic!()
    };
    let m = Meta {
        flags: 9,
        cas: 1234,
    };
    let value = FetchOutcome::Value {
        value: v("remote"),
        ttl_ms: 0,
    };
    s.on_fetch_done_meta(now, 0, id, value, Some(m), true, &mut out);
    assert_eq!(read(&mut s, now, b"f"), Some(("remote".into(), 9, 1234)));
}

#[test]
fn flush_drops_every_item_and_supersedes_loads() {
    let now = Instant::now();
    let mut s = s();
    let mut out = Vec::new();
    set(&mut s, now, b"a", "1", 0);
    s.insert_hot(now, 0, b"b", v("2"), 0);
    s.get(now, 0, b"c", 1, || false, &mut out);
    let Some(Effect::Load { id, .. }) = out.pop() else {
        panic!()
    };
    s.flush(0);
    assert_eq!(s.cache_bytes(0), (0, 0));
    s.on_load_done(
        now,
        0,
        id,
        Ok(Some(Loaded::new(b"old".to_vec()))),
        |_| true,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(s.cache_bytes(0), (0, 0));
    let st = &s.stats.groups[0];
    assert_eq!((st.main.items.get(), st.hot.items.get()), (0, 0));
}

#[test]
fn the_byte_budget_holds_for_items_with_metadata() {
    let now = Instant::now();
    let entry = lru::item_charge(4, 10, true);
    let mut s = shard(entry * 3, false, None);
    for i in 0..10u32 {
        let r = s.store(
            now,
            0,
            &i.to_be_bytes(),
            v("0123456789"),
            w(StoreMode::Set, i, None),
        );
        assert!(matches!(r, Stored { .. }));
        assert!(s.cache_bytes(0).0 <= entry * 3);
    }
    assert_eq!(s.main_keys(0).len(), 3);
    assert_eq!(read(&mut s, now, &9u32.to_be_bytes()).unwrap().1, 9);
}
