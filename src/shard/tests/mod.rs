//! Shard rules, driven with an explicit clock and plain-number waiters. Hot copies
//! and keys owned by other nodes are in `peers.rs`.

mod peers;

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
    assert_eq!(st.gets(), 101);
    assert_eq!(st.cache_hits(), 1);
    assert_eq!(st.loads.get(), 100);
    assert_eq!(st.loads_deduped.get(), 1);
    assert_eq!(st.local_loads.get(), 1);
}

#[test]
fn get_hit_answers_hits_in_place_and_counts_as_get_does() {
    let now = Instant::now();
    let mut s = shard(1 << 20, true, Some(Duration::from_secs(10)));
    let mut out = Vec::new();
    // A miss answers nothing and starts nothing until get_missed.
    assert_eq!(s.get_hit(now, 0, b"k", |_, _| ()), None);
    assert!(out.is_empty());
    s.get_missed(now, 0, b"k", 1, || false, &mut out);
    let (replies, loads) = split(&mut out);
    assert!(replies.is_empty());
    assert_eq!(loads.len(), 1);
    // A second GET while loading joins it.
    assert_eq!(s.get_hit(now, 0, b"k", |_, _| ()), None);
    s.get_missed(now, 0, b"k", 2, || false, &mut out);
    assert!(split(&mut out).1.is_empty());
    s.on_load_done(now, 0, loads[0].0, loaded("v"), |_| true, &mut out);
    assert_eq!(split(&mut out).0.len(), 2);
    // A hit: the value where it lies and its TTL (the group's), and no effect.
    let later = now + Duration::from_secs(4);
    let hit = s.get_hit(later, 0, b"k", |value, ttl_ms| {
        (value.bytes().to_vec(), ttl_ms)
    });
    assert_eq!(hit, Some((b"v".to_vec(), 6_000)));
    assert!(out.is_empty());
    let st = &s.stats.groups[0];
    assert_eq!(st.gets(), 3);
    assert_eq!(st.cache_hits(), 1);
    assert_eq!(st.loads.get(), 2);
    assert_eq!(st.loads_deduped.get(), 1);
    assert_eq!((st.main.gets(), st.main.hits.get()), (3, 1));
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
fn byte_budget_is_never_exceeded_and_eviction_spares_read_items() {
    let now = Instant::now();
    let entry = lru::charge(2, 100);
    let mut s = shard(entry * 4, false, None);
    let mut out = Vec::new();
    let val = ByteView::from_vec(vec![b'x'; 100]);
    for k in [b"k1", b"k2", b"k3", b"k4"] {
        s.set(now, 0, k, val.clone(), None);
    }
    s.get(now, 0, b"k1", 0, || false, &mut out); // k1 is marked read
    s.set(now, 0, b"k5", val.clone(), None); // k1 gets a second chance; k2 goes
    assert!(s.cache_bytes(0).0 <= entry * 4);
    // Eviction runs after k5 is in, so k1's second chance puts it ahead of k5.
    assert_eq!(
        s.main_keys(0),
        vec![
            b"k1".to_vec(),
            b"k5".to_vec(),
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
