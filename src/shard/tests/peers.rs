//! Hot copies, fetches from a key's owner, fallback loads, INVALIDATE and ring
//! changes.

use super::*;

#[test]
fn hot_cache_is_evicted_first_while_over_an_eighth_of_main() {
    let now = Instant::now();
    let entry = lru::charge(2, 100);
    let mut s = shard(entry * 10, false, None);
    let val = ByteView::from_vec(vec![b'x'; 100]);
    for i in 0..8u8 {
        s.set(now, 0, &[b'm', b'0' + i], val.clone(), None);
    }
    s.insert_hot(now, 0, b"h0", val.clone(), 0);
    s.insert_hot(now, 0, b"h1", val.clone(), 0);
    // Full: 8 main + 2 hot. Hot (2 entries) > main/8 (1 entry): the next insert evicts hot.
    s.insert_hot(now, 0, b"h2", val.clone(), 0);
    let (main, hot) = s.cache_bytes(0);
    assert_eq!(main, entry * 8);
    assert_eq!(hot, entry * 2);
    assert_eq!(s.stats.groups[0].hot.evictions.get(), 1);
    let mut out = Vec::new();
    s.get(now, 0, b"h0", 1, || false, &mut out);
    assert_eq!(split(&mut out).0, vec![(1, "<not found>".into())]);
    // INVALIDATE drops a hot entry; DELETE removes from both.
    s.invalidate(0, b"h1");
    s.get(now, 0, b"h1", 2, || false, &mut out);
    assert_eq!(split(&mut out).0, vec![(2, "<not found>".into())]);
    assert!(matches!(s.delete(0, b"h2"), Reply::Deleted(true)));
}

#[test]
fn hot_copies_expire_with_the_owners_ttl() {
    let now = Instant::now();
    let mut s = shard(1 << 20, false, None);
    s.insert_hot(now, 0, b"k", v("x"), 200);
    let mut out = Vec::new();
    s.get(
        now + Duration::from_millis(199),
        0,
        b"k",
        1,
        || false,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![(1, "x".into())]);
    s.get(
        now + Duration::from_millis(200),
        0,
        b"k",
        2,
        || false,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![(2, "<not found>".into())]);
}

#[test]
fn a_miss_on_a_key_owned_elsewhere_fetches_once_and_may_fill_the_hot_cache() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    for w in 0..5 {
        s.get(now, 0, b"k", w, || true, &mut out);
    }
    assert!(matches!(out[..], [Effect::Fetch { .. }]));
    let (_, fetches) = split(&mut out);
    let value = FetchOutcome::Value {
        value: v("remote"),
        ttl_ms: 5_000,
    };
    s.on_fetch_done(now, 0, fetches[0].0, value, true, &mut out);
    let (replies, _) = split(&mut out);
    assert_eq!(replies.len(), 5);
    assert!(replies.iter().all(|(_, r)| r == "remote"));
    // Promoted into the hot cache (never the main cache), with the owner's TTL.
    assert!(s.main_keys(0).is_empty());
    s.get(
        now + Duration::from_millis(4_999),
        0,
        b"k",
        9,
        || true,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![(9, "remote".into())]);
    s.get(
        now + Duration::from_millis(5_000),
        0,
        b"k",
        10,
        || true,
        &mut out,
    );
    assert_eq!(
        split(&mut out).1.len(),
        1,
        "expired with the owner's TTL: fetched again"
    );
}

#[test]
fn owner_not_found_is_final_and_errors_pass_through() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.get(now, 0, b"a", 1, || true, &mut out);
    s.get(now, 0, b"b", 2, || true, &mut out);
    let (_, f) = split(&mut out);
    s.on_fetch_done(now, 0, f[0].0, FetchOutcome::NotFound, true, &mut out);
    let err = FetchOutcome::Error {
        status: Status::OriginError,
        message: "boom".into(),
    };
    s.on_fetch_done(now, 0, f[1].0, err, true, &mut out);
    let (replies, loads) = split(&mut out);
    assert!(loads.is_empty(), "no local retry of the owner's answer");
    assert_eq!(
        replies,
        vec![(1, "<not found>".into()), (2, "<ORIGIN_ERROR>".into())]
    );
}

#[test]
fn an_unreachable_owner_falls_back_to_one_local_load_kept_only_as_a_hot_copy() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.get(now, 0, b"k", 1, || true, &mut out);
    s.get(now, 0, b"k", 2, || true, &mut out);
    let (_, f) = split(&mut out);
    s.fallback_local(now, 0, f[0].0, &mut out);
    let (replies, loads) = split(&mut out);
    assert!(replies.is_empty());
    assert_eq!(loads.len(), 1, "both waiters share one local load");
    s.on_load_done(now, 0, loads[0].0, loaded("local"), |_| false, &mut out);
    assert_eq!(
        split(&mut out).0,
        vec![(1, "local".into()), (2, "local".into())]
    );
    // Never a main-cache entry for a key owned elsewhere: a hot copy, bounded by the
    // hot TTL (60 s here), so a later write at the owner cannot be shadowed forever.
    assert!(s.main_keys(0).is_empty());
    s.get(now + Duration::from_secs(59), 0, b"k", 3, || true, &mut out);
    assert_eq!(split(&mut out).0, vec![(3, "local".into())]);
    s.get(now + Duration::from_secs(60), 0, b"k", 4, || true, &mut out);
    assert_eq!(
        split(&mut out).1.len(),
        1,
        "expired: fetched from the owner again"
    );
}

#[test]
fn an_owned_key_loaded_with_a_short_ttl_keeps_it_and_an_unowned_one_takes_the_shorter() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, Some(Duration::from_secs(5)));
    let mut out = Vec::new();
    s.get(now, 0, b"mine", 1, || false, &mut out);
    s.get(now, 0, b"theirs", 2, || false, &mut out);
    let (_, loads) = split(&mut out);
    s.on_load_done(now, 0, loads[0].0, loaded("m"), |_| true, &mut out);
    s.on_load_done(now, 0, loads[1].0, loaded("t"), |_| false, &mut out);
    out.clear();
    assert_eq!(s.main_keys(0), vec![b"mine".to_vec()]);
    // Both expire with the group TTL (5 s < hot TTL 60 s).
    s.get(
        now + Duration::from_secs(5),
        0,
        b"mine",
        3,
        || false,
        &mut out,
    );
    s.get(
        now + Duration::from_secs(5),
        0,
        b"theirs",
        4,
        || true,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![]);
}

#[test]
fn invalidate_supersedes_a_fetch_in_flight_so_its_answer_is_not_kept() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.get(now, 0, b"k", 1, || true, &mut out);
    let (_, fetches) = split(&mut out);
    // The owner applied a write and told us before its answer to our FETCH arrived.
    assert!(matches!(s.invalidate(0, b"k"), Reply::Invalidated));
    // A GET after the INVALIDATE must not join the old fetch.
    s.get(now, 0, b"k", 2, || true, &mut out);
    let (_, second) = split(&mut out);
    assert_eq!(second.len(), 1, "a fresh fetch, not the superseded one");
    assert_ne!(second[0].0, fetches[0].0);
    // The old answer reaches its own waiter only, and is never promoted.
    s.on_fetch_done(
        now,
        0,
        fetches[0].0,
        FetchOutcome::Value {
            value: v("old"),
            ttl_ms: 0,
        },
        true,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![(1, "old".into())]);
    s.on_fetch_done(
        now,
        0,
        second[0].0,
        FetchOutcome::Value {
            value: v("new"),
            ttl_ms: 0,
        },
        true,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![(2, "new".into())]);
    s.get(now, 0, b"k", 3, || true, &mut out);
    assert_eq!(split(&mut out).0, vec![(3, "new".into())]);
}

#[test]
fn invalidate_supersedes_a_fallback_load_and_drops_every_copy() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.set(now, 0, b"m", v("main copy"), None);
    s.insert_hot(now, 0, b"h", v("hot copy"), 0);
    s.get(now, 0, b"k", 1, || true, &mut out);
    let (_, f) = split(&mut out);
    s.fallback_local(now, 0, f[0].0, &mut out);
    let (_, loads) = split(&mut out);
    s.invalidate(0, b"m");
    s.invalidate(0, b"h");
    s.invalidate(0, b"k");
    s.on_load_done(now, 0, loads[0].0, loaded("old"), |_| false, &mut out);
    assert_eq!(split(&mut out).0, vec![(1, "old".into())]);
    for (i, key) in [&b"m"[..], b"h", b"k"].into_iter().enumerate() {
        s.get(now, 0, key, 10 + i as u32, || true, &mut out);
    }
    let (hits, fetches) = split(&mut out);
    assert!(hits.is_empty(), "{hits:?}");
    assert_eq!(fetches.len(), 3);
}

#[test]
fn a_ring_change_demotes_keys_we_no_longer_own_to_hot_copies() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.set(now, 0, b"stay", v("s"), None);
    s.set(now, 0, b"moves", v("m"), None);
    s.set(now, 0, b"moves-soon", v("x"), Some(Duration::from_secs(1)));
    let later = now + Duration::from_secs(10);
    assert_eq!(s.demote_unowned(later, |k| k == b"stay"), 2);
    assert_eq!(s.main_keys(0), vec![b"stay".to_vec()]);
    // "moves-soon" had expired; "moves" is served as a hot copy for at most the hot TTL.
    s.get(later, 0, b"moves", 1, || true, &mut out);
    s.get(later, 0, b"moves-soon", 2, || true, &mut out);
    let (hits, fetches) = split(&mut out);
    assert_eq!(hits, vec![(1, "m".into())]);
    assert_eq!(fetches.len(), 1);
    s.get(
        later + Duration::from_secs(60),
        0,
        b"moves",
        3,
        || true,
        &mut out,
    );
    assert_eq!(split(&mut out).1.len(), 1);
}

#[test]
fn a_peers_fetch_never_waits_on_a_fetch_of_ours() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    // Our client's GET went to the (believed) owner...
    s.get(now, 0, b"k", 1, || true, &mut out);
    // ...while that node, believing we own it, FETCHes it from us: a local load.
    s.get(now, 0, b"k", 2, || false, &mut out);
    assert!(matches!(
        out[..],
        [Effect::Fetch { .. }, Effect::Load { .. }]
    ));
}

#[test]
fn hot_copies_never_outlive_the_hot_ttl() {
    let now = Instant::now();
    let mut s = shard(1 << 20, false, None);
    s.insert_hot(now, 0, b"forever", v("x"), 0);
    let mut out = Vec::new();
    s.get(
        now + Duration::from_secs(59),
        0,
        b"forever",
        1,
        || true,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![(1, "x".into())]);
    s.get(
        now + Duration::from_secs(60),
        0,
        b"forever",
        2,
        || true,
        &mut out,
    );
    assert_eq!(split(&mut out).1.len(), 1);
}
