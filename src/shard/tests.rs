//! Shard rules, driven with an explicit clock and plain-number waiters.

use super::inflight::LoadId;
use super::*;
use crate::origin::LoadResult;
use crate::origin::Loaded;
use crate::stats::StatsRegistry;

fn shard(budget: usize, has_origin: bool, ttl: Option<Duration>) -> Shard<u32> {
    let reg = StatsRegistry::new(1, &[("g".into(), budget as u64)]);
    Shard::new(
        vec![GroupSpec {
            budget,
            max_item: 1 << 20,
            ttl,
            has_origin,
            hot_ttl: Duration::from_secs(60),
        }],
        Duration::from_secs(10),
        reg.cores[0].clone(),
    )
}

fn v(s: &str) -> ByteView {
    ByteView::copy_from_slice(s.as_bytes())
}

fn loaded(s: &str) -> LoadResult {
    Ok(Some(Loaded::new(s.as_bytes().to_vec())))
}

/// Replies as (waiter, value or `<STATUS>`), and started loads as (id, key).
type Split = (Vec<(u32, String)>, Vec<(LoadId, Vec<u8>)>);

/// Splits effects into replies and started loads.
fn split(out: &mut Vec<Effect<u32>>) -> Split {
    let mut replies = Vec::new();
    let mut loads = Vec::new();
    for e in out.drain(..) {
        match e {
            Effect::Reply(w, Reply::Value { value, .. }) => {
                replies.push((w, String::from_utf8_lossy(&value).into_owned()))
            }
            Effect::Reply(w, Reply::NotFound) => replies.push((w, "<not found>".into())),
            Effect::Reply(w, Reply::Error { status, .. }) => {
                replies.push((w, format!("<{status}>")))
            }
            Effect::Reply(w, other) => replies.push((w, format!("{other:?}"))),
            Effect::Load { id, key, .. } | Effect::Fetch { id, key, .. } => {
                loads.push((id, key.to_vec()))
            }
        }
    }
    (replies, loads)
}

#[test]
fn concurrent_misses_start_one_load_and_all_waiters_get_the_value() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    for w in 0..100 {
        s.get(now, 0, b"k", w, || false, &mut out);
    }
    let (replies, loads) = split(&mut out);
    assert!(replies.is_empty());
    assert_eq!(loads.len(), 1);
    s.on_load_done(now, 0, loads[0].0, loaded("v"), |_| true, &mut out);
    let (replies, _) = split(&mut out);
    assert_eq!(replies.len(), 100);
    assert!(replies.iter().all(|(_, r)| r == "v"));
    // Now cached.
    s.get(now, 0, b"k", 7, || false, &mut out);
    assert_eq!(split(&mut out).0, vec![(7, "v".to_string())]);
    let st = &s.stats.groups[0];
    assert_eq!(st.gets.get(), 101);
    assert_eq!(st.cache_hits.get(), 1);
    assert_eq!(st.loads.get(), 100);
    assert_eq!(st.loads_deduped.get(), 1);
    assert_eq!(st.local_loads.get(), 1);
}

#[test]
fn a_failed_load_answers_everyone_and_does_not_poison_the_key() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.get(now, 0, b"k", 1, || false, &mut out);
    s.get(now, 0, b"k", 2, || false, &mut out);
    let (_, loads) = split(&mut out);
    s.on_load_done(
        now,
        0,
        loads[0].0,
        Err(OriginError::Failed("boom".into())),
        |_| true,
        &mut out,
    );
    let (replies, _) = split(&mut out);
    assert_eq!(
        replies,
        vec![(1, "<ORIGIN_ERROR>".into()), (2, "<ORIGIN_ERROR>".into())]
    );
    // Not cached: the next GET starts a new load.
    s.get(now, 0, b"k", 3, || false, &mut out);
    let (replies, loads) = split(&mut out);
    assert!(replies.is_empty());
    assert_eq!(loads.len(), 1);
    assert_eq!(s.stats.groups[0].local_load_errs.get(), 1);
}

#[test]
fn origin_not_found_is_not_cached() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.get(now, 0, b"k", 1, || false, &mut out);
    let (_, loads) = split(&mut out);
    s.on_load_done(now, 0, loads[0].0, Ok(None), |_| true, &mut out);
    assert_eq!(split(&mut out).0, vec![(1, "<not found>".into())]);
    s.get(now, 0, b"k", 2, || false, &mut out);
    assert_eq!(split(&mut out).1.len(), 1);
}

#[test]
fn a_set_during_a_load_wins_over_the_loaded_value() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.get(now, 0, b"k", 1, || false, &mut out);
    let (_, loads) = split(&mut out);
    assert!(matches!(s.set(now, 0, b"k", v("new"), None), Reply::Stored));
    // The old load finishes with an older value: its waiter gets it, the cache does not.
    s.on_load_done(now, 0, loads[0].0, loaded("old"), |_| true, &mut out);
    assert_eq!(split(&mut out).0, vec![(1, "old".into())]);
    s.get(now, 0, b"k", 2, || false, &mut out);
    assert_eq!(split(&mut out).0, vec![(2, "new".into())]);
}

#[test]
fn a_delete_during_a_load_makes_the_next_get_load_afresh() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.get(now, 0, b"k", 1, || false, &mut out);
    let (_, first) = split(&mut out);
    assert!(matches!(s.delete(0, b"k"), Reply::Deleted(false)));
    // A GET after the DELETE must not join the load that began before it.
    s.get(now, 0, b"k", 2, || false, &mut out);
    let (_, second) = split(&mut out);
    assert_eq!(second.len(), 1);
    assert_ne!(first[0].0, second[0].0);
    s.on_load_done(now, 0, first[0].0, loaded("stale"), |_| true, &mut out);
    s.on_load_done(now, 0, second[0].0, loaded("fresh"), |_| true, &mut out);
    assert_eq!(
        split(&mut out).0,
        vec![(1, "stale".into()), (2, "fresh".into())]
    );
    s.get(now, 0, b"k", 3, || false, &mut out);
    assert_eq!(split(&mut out).0, vec![(3, "fresh".into())]);
}

#[test]
fn loads_past_their_deadline_answer_timeout_and_late_results_are_dropped() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, None);
    let mut out = Vec::new();
    s.get(now, 0, b"k", 1, || false, &mut out);
    let (_, loads) = split(&mut out);
    assert_eq!(s.next_deadline(), Some(now + Duration::from_secs(10)));
    s.expire(now + Duration::from_secs(9), &mut out);
    assert!(out.is_empty());
    s.expire(now + Duration::from_secs(10), &mut out);
    assert_eq!(split(&mut out).0, vec![(1, "<TIMEOUT>".into())]);
    s.on_load_done(now, 0, loads[0].0, loaded("late"), |_| true, &mut out);
    assert!(out.is_empty());
    assert_eq!(s.loads_in_flight(), 0);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn ttl_expiry_and_remaining_ttl_in_replies() {
    let now = Instant::now();
    let mut s = shard(1 << 20, false, Some(Duration::from_secs(60)));
    let mut out = Vec::new();
    s.set(now, 0, b"short", v("x"), Some(Duration::from_millis(1500)));
    s.set(now, 0, b"default", v("y"), None);
    s.get(
        now + Duration::from_millis(500),
        0,
        b"short",
        1,
        || false,
        &mut out,
    );
    match &out[0] {
        Effect::Reply(1, Reply::Value { ttl_ms, .. }) => assert_eq!(*ttl_ms, 1000),
        other => panic!("{other:?}"),
    }
    out.clear();
    s.get(
        now + Duration::from_millis(1500),
        0,
        b"short",
        2,
        || false,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![(2, "<not found>".into())]);
    s.get(
        now + Duration::from_secs(59),
        0,
        b"default",
        3,
        || false,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![(3, "y".into())]);
    s.get(
        now + Duration::from_secs(60),
        0,
        b"default",
        4,
        || false,
        &mut out,
    );
    assert_eq!(split(&mut out).0, vec![(4, "<not found>".into())]);
}

#[test]
fn byte_budget_is_never_exceeded_and_eviction_is_lru() {
    let now = Instant::now();
    let entry = lru::charge(2, 100);
    let mut s = shard(entry * 4, false, None);
    let mut out = Vec::new();
    let val = ByteView::from_vec(vec![b'x'; 100]);
    for k in [b"k1", b"k2", b"k3", b"k4"] {
        s.set(now, 0, k, val.clone(), None);
    }
    s.get(now, 0, b"k1", 0, || false, &mut out); // k1 becomes most recent
    s.set(now, 0, b"k5", val.clone(), None); // evicts k2, the oldest
    assert!(s.cache_bytes(0).0 <= entry * 4);
    assert_eq!(
        s.main_keys(0),
        vec![
            b"k5".to_vec(),
            b"k1".to_vec(),
            b"k4".to_vec(),
            b"k3".to_vec()
        ]
    );
    assert_eq!(s.stats.groups[0].main.evictions.get(), 1);
    assert_eq!(s.stats.groups[0].main.bytes.get(), (entry * 4) as u64);
}

#[test]
fn a_value_over_the_budget_is_served_but_not_cached() {
    let now = Instant::now();
    let mut s = shard(1000, true, None);
    let mut out = Vec::new();
    s.set(now, 0, b"small", v("s"), None);
    s.get(now, 0, b"big", 1, || false, &mut out);
    let (_, loads) = split(&mut out);
    s.on_load_done(
        now,
        0,
        loads[0].0,
        Ok(Some(Loaded::new(vec![b'b'; 5000]))),
        |_| true,
        &mut out,
    );
    let (replies, _) = split(&mut out);
    assert_eq!(replies[0].1.len(), 5000);
    // Not cached, and the small entry survived.
    assert_eq!(s.main_keys(0), vec![b"small".to_vec()]);
    assert!(matches!(
        s.set(now, 0, b"big", ByteView::from_vec(vec![0; 5000]), None),
        Reply::Error {
            status: Status::TooLarge,
            ..
        }
    ));
}

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

#[test]
fn a_hit_never_asks_for_the_route() {
    let now = Instant::now();
    let mut s = shard(1 << 20, false, None);
    let mut out = Vec::new();
    s.set(now, 0, b"k", v("x"), None);
    s.get(now, 0, b"k", 1, || panic!("ring lookup on a hit"), &mut out);
    assert_eq!(split(&mut out).0, vec![(1, "x".into())]);
    let mut asked = 0;
    s.get(
        now,
        0,
        b"missing",
        2,
        || {
            asked += 1;
            false
        },
        &mut out,
    );
    assert_eq!(asked, 1, "a miss asks once");
}
