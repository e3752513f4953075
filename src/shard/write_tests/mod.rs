//! memcached's owner-side writes ([`super::write`]): every outcome and edge, with an
//! explicit clock and plain-number waiters. Storage commands here; counters, touch
//! and delete in `counters.rs`; the rules every write follows in `rules.rs`; a
//! property test against a model in `model.rs`.

mod counters;
mod model;
mod rules;

use super::*;
use crate::origin::Loaded;
use crate::stats::StatsRegistry;
use WriteOutcome::*;

fn shard(budget: usize, has_origin: bool, ttl: Option<Duration>) -> Shard<u32> {
    let reg = StatsRegistry::new(1, &[("g".into(), budget as u64)]);
    Shard::new(
        vec![GroupSpec {
            budget,
            max_item: 1000,
            ttl,
            has_origin,
            hot_ttl: Duration::from_secs(60),
        }],
        Duration::from_secs(10),
        reg.cores[0].clone(),
    )
}

fn s() -> Shard<u32> {
    shard(1 << 20, true, None)
}

fn v(s: &str) -> ByteView {
    ByteView::copy_from_slice(s.as_bytes())
}

const SECOND: Duration = Duration::from_secs(1);

/// A storage command without a CAS.
fn w(mode: StoreMode, flags: u32, ttl: Option<Duration>) -> StoreCommand {
    StoreCommand::new(mode, flags, ttl)
}

/// A `cas` command.
fn cas(flags: u32, cas: u64) -> StoreCommand {
    StoreCommand {
        cas: Some(cas),
        ..w(StoreMode::Set, flags, None)
    }
}

fn set(s: &mut Shard<u32>, now: Instant, key: &[u8], value: &str, flags: u32) -> u64 {
    match s.store(now, 0, key, v(value), w(StoreMode::Set, flags, None)) {
        Stored { cas } => cas,
        o => panic!("{o:?}"),
    }
}

/// The item as a memcached GET sees it: (value, flags, cas).
fn read(s: &mut Shard<u32>, now: Instant, key: &[u8]) -> Option<(String, u32, u64)> {
    let mut out = Vec::new();
    let hit = s.get_meta(now, 0, key, 0, || false, &mut out)?;
    Some((
        String::from_utf8_lossy(&hit.value).into_owned(),
        hit.flags,
        hit.cas,
    ))
}

fn incr(d: u64) -> Arith {
    Arith::new(Delta::Incr(d))
}

fn decr(d: u64) -> Arith {
    Arith::new(Delta::Decr(d))
}

#[test]
fn set_stores_flags_and_every_write_gets_a_new_larger_cas() {
    let now = Instant::now();
    let mut s = s();
    let c1 = set(&mut s, now, b"k", "v1", 7);
    assert_ne!(c1, 0);
    assert_eq!(read(&mut s, now, b"k"), Some(("v1".into(), 7, c1)));
    let c2 = set(&mut s, now, b"k", "v2", 8);
    assert!(c2 > c1);
    assert_eq!(read(&mut s, now, b"k"), Some(("v2".into(), 8, c2)));
    // The native GET serves the same item.
    let mut out = Vec::new();
    s.get(now, 0, b"k", 1, || false, &mut out);
    assert!(
        matches!(&out[..], [Effect::Reply(1, Reply::Value { value, .. })] if value == &v("v2"))
    );
    // A deleted key written again has a new CAS, not its old one.
    s.delete(0, b"k");
    let c3 = set(&mut s, now, b"k", "v2", 8);
    assert!(c3 > c2);
}

#[test]
fn add_stores_only_an_absent_key_and_an_expired_one_is_absent() {
    let now = Instant::now();
    let mut s = s();
    let add = |ttl| w(StoreMode::Add, 1, ttl);
    assert!(matches!(
        s.store(now, 0, b"k", v("a"), add(Some(SECOND))),
        Stored { .. }
    ));
    assert_eq!(s.store(now, 0, b"k", v("b"), add(None)), NotStored);
    assert_eq!(read(&mut s, now, b"k").unwrap().0, "a");
    let later = now + SECOND;
    assert!(matches!(
        s.store(later, 0, b"k", v("c"), add(None)),
        Stored { .. }
    ));
    assert_eq!(read(&mut s, later, b"k").unwrap().0, "c");
}

#[test]
fn add_of_a_key_only_the_origin_has_stores_and_supersedes_its_load() {
    let now = Instant::now();
    let mut s = s();
    let mut out = Vec::new();
    // A GET miss starts a load; the add lands before the load ends.
    assert_eq!(s.get_meta(now, 0, b"k", 1, || false, &mut out), None);
    let Some(Effect::Load { id, .. }) = out.pop() else {
        panic!("no load")
    };
    let added = s.store(now, 0, b"k", v("mine"), w(StoreMode::Add, 3, None));
    let Stored { cas } = added else {
        panic!("{added:?}")
    };
    s.on_load_done(
        now,
        0,
        id,
        Ok(Some(Loaded::new(b"origin".to_vec()))),
        |_| true,
        &mut out,
    );
    // The waiter gets the origin's value; the cache keeps the add's.
    assert!(
        matches!(&out[..], [Effect::Reply(1, Reply::Value { value, .. })] if value == &v("origin"))
    );
    assert_eq!(read(&mut s, now, b"k"), Some(("mine".into(), 3, cas)));
}

#[test]
fn replace_stores_only_a_present_key_with_new_flags_and_ttl() {
    let now = Instant::now();
    let mut s = s();
    let rep = |flags, ttl| w(StoreMode::Replace, flags, ttl);
    assert_eq!(s.store(now, 0, b"k", v("x"), rep(1, None)), NotStored);
    assert_eq!(read(&mut s, now, b"k"), None);
    let old = set(&mut s, now, b"k", "a", 1);
    let Stored { cas } = s.store(now, 0, b"k", v("b"), rep(2, Some(SECOND))) else {
        panic!()
    };
    assert!(cas > old);
    assert_eq!(read(&mut s, now, b"k"), Some(("b".into(), 2, cas)));
    // Expired: absent for replace.
    assert_eq!(
        s.store(now + SECOND, 0, b"k", v("c"), rep(3, None)),
        NotStored
    );
}

#[test]
fn append_and_prepend_keep_flags_and_expiry_and_give_a_new_cas() {
    let now = Instant::now();
    let mut s = s();
    assert_eq!(
        s.store(now, 0, b"k", v("x"), w(StoreMode::Append, 0, None)),
        NotStored
    );
    assert_eq!(
        s.store(now, 0, b"k", v("x"), w(StoreMode::Prepend, 0, None)),
        NotStored
    );
    let c0 = match s.store(
        now,
        0,
        b"k",
        v("mid"),
        w(StoreMode::Set, 42, Some(10 * SECOND)),
    ) {
        Stored { cas } => cas,
        o => panic!("{o:?}"),
    };
    // The flags and TTL given with append/prepend are ignored, as in memcached.
    let Stored { cas: c1 } = s.store(now, 0, b"k", v(">"), w(StoreMode::Append, 9, None)) else {
        panic!()
    };
    let Stored { cas: c2 } = s.store(now, 0, b"k", v("<"), w(StoreMode::Prepend, 9, None)) else {
        panic!()
    };
    assert!(c0 < c1 && c1 < c2);
    assert_eq!(read(&mut s, now, b"k"), Some(("<mid>".into(), 42, c2)));
    let mut out = Vec::new();
    let hit = s.get_meta(now, 0, b"k", 0, || false, &mut out).unwrap();
    assert!(hit.ttl_ms > 9_000 && hit.ttl_ms <= 10_000, "{}", hit.ttl_ms);
    // Still expires when the first set said.
    assert_eq!(read(&mut s, now + 10 * SECOND, b"k"), None);
}

#[test]
fn cas_stores_on_a_match_and_answers_exists_after_a_concurrent_set() {
    let now = Instant::now();
    let mut s = s();
    assert_eq!(s.store(now, 0, b"k", v("x"), cas(0, 1)), NotFound);
    let c1 = set(&mut s, now, b"k", "a", 1);
    // Client A and client B both read c1; B's set lands first.
    let c2 = set(&mut s, now, b"k", "b", 1);
    assert_eq!(s.store(now, 0, b"k", v("from A"), cas(5, c1)), Exists);
    assert_eq!(read(&mut s, now, b"k"), Some(("b".into(), 1, c2)));
    let Stored { cas: c3 } = s.store(now, 0, b"k", v("c"), cas(5, c2)) else {
        panic!()
    };
    assert!(c3 > c2);
    assert_eq!(read(&mut s, now, b"k"), Some(("c".into(), 5, c3)));
    // The same CAS does not match twice.
    assert_eq!(s.store(now, 0, b"k", v("d"), cas(5, c2)), Exists);
    // An expired item is absent.
    s.store(now, 0, b"t", v("x"), w(StoreMode::Set, 0, Some(SECOND)));
    let ct = read(&mut s, now, b"t").unwrap().2;
    assert_eq!(s.store(now + SECOND, 0, b"t", v("y"), cas(0, ct)), NotFound);
}

#[test]
fn an_item_without_metadata_matches_no_cas() {
    let now = Instant::now();
    let mut s = s();
    // A native SET on a shard without enable_meta stores no CAS.
    s.set(now, 0, b"k", v("native"), None);
    assert_eq!(read(&mut s, now, b"k"), Some(("native".into(), 0, 0)));
    assert_eq!(s.store(now, 0, b"k", v("x"), cas(0, 0)), Exists);
    assert_eq!(s.delete_cas(now, 0, b"k", Some(0)), Exists);
    // Other commands work on it, and give it metadata.
    let Stored { cas } = s.store(now, 0, b"k", v("+"), w(StoreMode::Append, 0, None)) else {
        panic!()
    };
    assert_eq!(read(&mut s, now, b"k"), Some(("native+".into(), 0, cas)));
}

#[test]
fn enable_meta_gives_native_sets_and_loads_a_cas_unique_per_core() {
    let now = Instant::now();
    let mut a = s();
    let mut b = s();
    a.enable_meta(0, 0);
    b.enable_meta(1, 0);
    a.set(now, 0, b"k", v("x"), None);
    b.set(now, 0, b"k", v("x"), None);
    let (ca, cb) = (
        read(&mut a, now, b"k").unwrap().2,
        read(&mut b, now, b"k").unwrap().2,
    );
    assert!(ca != 0 && cb != 0 && ca != cb);
    // A loaded value gets flags 0 and a CAS; peek_meta finds them for the waiters.
    let mut out = Vec::new();
    assert_eq!(a.get_meta(now, 0, b"l", 1, || false, &mut out), None);
    let Some(Effect::Load { id, .. }) = out.pop() else {
        panic!()
    };
    a.on_load_done(
        now,
        0,
        id,
        Ok(Some(Loaded::new(b"o".to_vec()))),
        |_| true,
        &mut out,
    );
    let m = a.peek_meta(now, 0, b"l").unwrap();
    assert_eq!(m.flags, 0);
    assert!(m.cas > ca);
    assert_eq!(read(&mut a, now, b"l"), Some(("o".into(), 0, m.cas)));
}
