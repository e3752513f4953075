//! One `groupcached` process driven by the real client: hit/miss/fill for every
//! origin kind, TTL, DELETE, LRU order and byte budget, item limits, cross-core
//! routing and the STATS counter names.

mod common;

use std::time::{Duration, Instant};

use common::{wait_until, TempDir, TestServer};
use groupcached_client::protocol::Status;
use groupcached_client::Error;

const G: &str = "default";

fn server_status(e: &Error) -> Option<Status> {
    match e {
        Error::Server { status, .. } => Some(*status),
        _ => None,
    }
}

#[test]
fn synthetic_origin_first_get_loads_second_get_hits() {
    let s = TestServer::start(&["--origin", "synthetic:size=32", "--threads", "2"]);
    let mut c = s.client();

    let first = c
        .get(G, "k1")
        .unwrap()
        .expect("synthetic origin has every key");
    assert_eq!(first.len(), 32);
    assert!(first.iter().all(u8::is_ascii_lowercase), "{first:?}");
    assert_eq!(first.ttl(), None, "no TTL configured");
    assert_eq!(s.stat("group.default.local_loads"), 1);
    assert_eq!(s.stat("group.default.cache_hits"), 0);

    let second = c.get(G, "k1").unwrap().expect("cached");
    assert_eq!(second.as_bytes(), first.as_bytes(), "deterministic value");
    let st = s.stats();
    assert_eq!(
        st.get("group.default.local_loads"),
        Some(1),
        "no second load"
    );
    assert_eq!(st.get("group.default.cache_hits"), Some(1));
    assert_eq!(st.get("group.default.gets"), Some(2));
    assert_eq!(st.get("group.default.main.items"), Some(1));

    // Another key is another (deterministic) value.
    let other = c.get(G, "k2").unwrap().unwrap();
    assert_eq!(other.len(), 32);
    assert_ne!(other.as_bytes(), first.as_bytes());
    assert_eq!(s.stat("group.default.local_loads"), 2);

    // A second server computes the same value for the same key.
    let s2 = TestServer::start(&["--origin", "synthetic:size=32"]);
    let again = s2.client().get(G, "k1").unwrap().unwrap();
    assert_eq!(again.as_bytes(), first.as_bytes());
}

#[test]
fn none_origin_misses_until_set() {
    let s = TestServer::start(&["--origin", "none"]);
    let mut c = s.client();
    assert_eq!(c.get(G, "absent").unwrap(), None);
    c.set(G, "present", b"hello world", None).unwrap();
    let v = c.get(G, "present").unwrap().unwrap();
    assert_eq!(v.as_bytes(), b"hello world");
    assert_eq!(v.ttl(), None);
    // Binary keys and values round-trip byte-exact.
    let key = [0u8, 255, b'/', b' ', 0xc3, 0xa9];
    let value: Vec<u8> = (0..=255u8).collect();
    c.set(G, key, &value, None).unwrap();
    assert_eq!(c.get(G, key).unwrap().unwrap().as_bytes(), &value[..]);
    // An overwrite replaces.
    c.set(G, "present", b"second", None).unwrap();
    assert_eq!(c.get(G, "present").unwrap().unwrap().as_bytes(), b"second");
    let st = s.stats();
    assert_eq!(st.get("group.default.local_loads"), Some(0));
    assert_eq!(st.get("group.default.sets"), Some(3));
}

#[test]
fn dir_origin_serves_files_and_misses_missing_ones() {
    let dir = TempDir::new("dir-origin");
    dir.write("a.txt", b"alpha\n");
    let nested: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    dir.write("sub/dir/b.bin", &nested);
    let spec = format!("dir:{}", dir.path().display());
    let s = TestServer::start(&["--origin", &spec]);
    let mut c = s.client();

    assert_eq!(c.get(G, "a.txt").unwrap().unwrap().as_bytes(), b"alpha\n");
    assert_eq!(
        c.get(G, "sub/dir/b.bin").unwrap().unwrap().as_bytes(),
        &nested[..]
    );
    assert_eq!(c.get(G, "missing.txt").unwrap(), None);
    assert_eq!(c.get(G, "sub/missing/deeper").unwrap(), None);
    // A directory is not a value.
    assert_eq!(c.get(G, "sub").unwrap(), None);
    // Served from cache the second time, even after the file is gone.
    std::fs::remove_file(dir.path().join("a.txt")).unwrap();
    assert_eq!(c.get(G, "a.txt").unwrap().unwrap().as_bytes(), b"alpha\n");
    assert!(s.stat("group.default.cache_hits") >= 1);
}

#[test]
fn set_with_ttl_is_served_then_expires() {
    let s = TestServer::start(&["--origin", "none"]);
    let mut c = s.client();
    let ttl = Duration::from_millis(1500);
    let before_set = Instant::now();
    c.set(G, "short", b"lived", Some(ttl)).unwrap();
    let got = c.get(G, "short").unwrap();
    let elapsed = before_set.elapsed();
    if elapsed < ttl {
        // The server set it after `before_set`, so it cannot have expired yet.
        let v = got.expect("value served before its TTL");
        assert_eq!(v.as_bytes(), b"lived");
        let left = v.ttl().expect("a value with a TTL reports one");
        assert!(left <= ttl, "remaining ttl {left:?} > set ttl {ttl:?}");
        assert!(left > Duration::ZERO);
    }
    // A value without TTL next to it stays.
    c.set(G, "forever", b"x", None).unwrap();

    let mut gone_at = None;
    wait_until("the TTL'd value to expire", || {
        let v = c.get(G, "short").unwrap();
        if v.is_none() {
            gone_at = Some(before_set.elapsed());
        }
        v.is_none()
    });
    // Never expired early (measured from before the SET was sent).
    assert!(gone_at.unwrap() >= ttl, "expired after {gone_at:?}");
    assert_eq!(c.get(G, "forever").unwrap().unwrap().as_bytes(), b"x");
}

#[test]
fn group_ttl_expires_loaded_values_and_they_load_again() {
    let s = TestServer::start(&["--origin", "synthetic:size=16", "--ttl", "1s"]);
    let mut c = s.client();
    let v = c.get(G, "k").unwrap().unwrap();
    let left = v.ttl().expect("group TTL applies to loaded values");
    assert!(left <= Duration::from_secs(1), "{left:?}");
    assert_eq!(s.stat("group.default.local_loads"), 1);
    // Once expired, a GET loads it again (the synthetic origin has every key, so
    // the value never disappears: watch the load counter instead).
    wait_until("a reload after the group TTL", || {
        let again = c.get(G, "k").unwrap().unwrap();
        assert_eq!(again.as_bytes(), v.as_bytes());
        s.stat("group.default.local_loads") >= 2
    });
    // A SET without TTL gets the group's default; with one, its own.
    c.set(G, "s", b"v", None).unwrap();
    assert!(c.get(G, "s").unwrap().unwrap().ttl().unwrap() <= Duration::from_secs(1));
    c.set(G, "t", b"v", Some(Duration::from_secs(600))).unwrap();
    let t = c.get(G, "t").unwrap().unwrap().ttl().unwrap();
    assert!(
        t > Duration::from_secs(500) && t <= Duration::from_secs(600),
        "{t:?}"
    );
}

#[test]
fn delete_removes_once() {
    let s = TestServer::start(&["--origin", "none"]);
    let mut c = s.client();
    c.set(G, "doomed", b"v", None).unwrap();
    assert!(c.delete(G, "doomed").unwrap());
    assert_eq!(c.get(G, "doomed").unwrap(), None);
    assert!(!c.delete(G, "doomed").unwrap());
    assert!(!c.delete(G, "never-set").unwrap());
    assert_eq!(s.stat("group.default.deletes"), 3);
    assert_eq!(s.stat("group.default.main.items"), 0);
    assert_eq!(s.stat("group.default.main.bytes"), 0);
}

#[test]
fn delete_of_a_loaded_value_makes_the_next_get_load_again() {
    let s = TestServer::start(&["--origin", "synthetic:size=8"]);
    let mut c = s.client();
    let v = c.get(G, "k").unwrap().unwrap();
    assert!(c.delete(G, "k").unwrap());
    assert_eq!(c.get(G, "k").unwrap().unwrap(), v);
    assert_eq!(s.stat("group.default.local_loads"), 2);
}

#[test]
fn lru_evicts_least_recently_used_within_the_byte_budget() {
    const BUDGET: u64 = 64 * 1024;
    let s = TestServer::start(&[
        "--threads",
        "1",
        "--cache-size",
        "64KiB",
        "--origin",
        "none",
    ]);
    let mut c = s.client();
    let key = |i: usize| format!("key-{i:03}");
    let value = |i: usize| {
        let mut v = vec![b'a' + (i % 26) as u8; 1000];
        v[..8].copy_from_slice(&(i as u64).to_be_bytes());
        v
    };
    let check_budget = |what: &str| {
        let bytes = s.stat("group.default.main.bytes") + s.stat("group.default.hot.bytes");
        assert!(bytes <= BUDGET, "{bytes} bytes cached after {what}");
    };
    // 40 entries of ~1 KiB fit in 64 KiB whatever the per-entry overhead (up to 500 B).
    for i in 0..40 {
        c.set(G, key(i), &value(i), None).unwrap();
        check_budget(&key(i));
    }
    assert_eq!(s.stat("group.default.main.evictions"), 0);
    // Read the oldest entry: eviction will give it a second chance.
    assert_eq!(c.get(G, key(0)).unwrap().unwrap().as_bytes(), &value(0)[..]);
    // 30 more: 70 entries of >1000 bytes cannot fit in 65536, so at least 5 go; 39
    // untouched older ones go first, so key 0 survives any overhead up to ~500 B.
    for i in 40..70 {
        c.set(G, key(i), &value(i), None).unwrap();
        check_budget(&key(i));
    }
    let evictions = s.stat("group.default.main.evictions");
    let items = s.stat("group.default.main.items");
    assert!(evictions >= 5, "only {evictions} evictions");
    assert_eq!(
        items + evictions,
        70,
        "items {items} + evictions {evictions}"
    );
    assert!(items * 1000 <= BUDGET);
    // The evicted ones are exactly the oldest untouched keys, in order.
    for i in 1..=evictions as usize {
        assert_eq!(
            c.get(G, key(i)).unwrap(),
            None,
            "{} should be evicted",
            key(i)
        );
    }
    for i in evictions as usize + 1..70 {
        let v = c.get(G, key(i)).unwrap();
        assert_eq!(v.map(|v| v.into_bytes()), Some(value(i)), "{}", key(i));
    }
    assert_eq!(
        c.get(G, key(0)).unwrap().map(|v| v.into_bytes()),
        Some(value(0)),
        "the touched key was evicted"
    );
    check_budget("the reads");
}

#[test]
fn values_over_the_item_limit_are_refused_by_set() {
    let s = TestServer::start(&[
        "--threads",
        "1",
        "--origin",
        "none",
        "--max-item-size",
        "10KiB",
    ]);
    let mut c = s.client();
    let err = c.set(G, "big", &vec![1u8; 20_000], None).unwrap_err();
    assert_eq!(server_status(&err), Some(Status::TooLarge), "{err}");
    // The connection is still usable, and a value within the limit is stored.
    c.set(G, "ok", &vec![2u8; 10 * 1024], None).unwrap();
    assert_eq!(c.get(G, "ok").unwrap().unwrap().len(), 10 * 1024);
    assert_eq!(c.get(G, "big").unwrap(), None);
}

#[test]
fn values_over_the_shard_budget_are_refused_by_set() {
    let s = TestServer::start(&[
        "--threads",
        "1",
        "--origin",
        "none",
        "--cache-size",
        "64KiB",
    ]);
    let mut c = s.client();
    c.set(G, "small", b"stays", None).unwrap();
    let err = c.set(G, "huge", &vec![3u8; 100_000], None).unwrap_err();
    assert_eq!(server_status(&err), Some(Status::TooLarge), "{err}");
    assert_eq!(c.get(G, "huge").unwrap(), None);
    // Refusing it did not flush the rest of the cache.
    assert_eq!(c.get(G, "small").unwrap().unwrap().as_bytes(), b"stays");
    assert!(s.stat("group.default.main.bytes") <= 64 * 1024);
}

#[test]
fn origin_values_over_the_item_limit_are_too_large_and_not_reloaded_at_once() {
    let s = TestServer::start(&[
        "--origin",
        "synthetic:size=20000",
        "--max-item-size",
        "10KiB",
    ]);
    let mut c = s.client();
    for _ in 1..=3 {
        let err = c.get(G, "big").unwrap_err();
        assert_eq!(server_status(&err), Some(Status::TooLarge), "{err}");
        assert!(err.to_string().contains("item limit"), "{err}");
    }
    // Loaded once; the next GETs were answered from the memory of it (--too-large-ttl).
    assert_eq!(s.stat("group.default.origin_too_large"), 1);
    assert_eq!(s.stat("group.default.too_large_remembered"), 2);
    assert_eq!(s.stat("group.default.main.items"), 0);
    assert_eq!(s.stat("group.default.cache_hits"), 0);
}

#[test]
fn keys_route_across_four_cores() {
    let s = TestServer::start(&["--threads", "4", "--origin", "none"]);
    let value = |i: usize| format!("value-of-key-{i}-").repeat(1 + i % 7).into_bytes();
    let mut writer = s.client();
    for i in 0..500 {
        writer.set(G, format!("k{i}"), &value(i), None).unwrap();
    }
    // Read back on several connections (which the kernel spreads over the cores).
    let readers: Vec<_> = (0..4)
        .map(|r| {
            let mut c = s.client();
            std::thread::spawn(move || {
                for i in (r..500).step_by(4) {
                    let v = c.get(G, format!("k{i}")).unwrap();
                    assert_eq!(v.map(|v| v.into_bytes()), Some(value(i)), "k{i}");
                }
                // And every key through a pipelined batch too.
                let keys: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
                let got = c.get_many(G, &keys).unwrap();
                assert_eq!(got.len(), 500);
                for (i, v) in got.into_iter().enumerate() {
                    assert_eq!(v.map(|v| v.into_bytes()), Some(value(i)), "batch k{i}");
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    let st = s.stats();
    assert_eq!(st.get("threads"), Some(4));
    assert_eq!(st.get("group.default.main.items"), Some(500));
    assert_eq!(st.get("group.default.cache_hits"), Some(4 * 500 + 500));
}

#[test]
fn stats_report_every_groupcache_counter_and_node_counters() {
    let s = TestServer::start(&["--origin", "synthetic:size=10", "--threads", "2"]);
    let mut c = s.client();
    c.get(G, "a").unwrap();
    c.get(G, "a").unwrap();
    c.set(G, "b", b"v", None).unwrap();
    let st = s.stats();
    let mut names = vec![
        "curr_connections".to_string(),
        "total_connections".to_string(),
        "uptime_secs".to_string(),
        "threads".to_string(),
    ];
    for n in [
        "gets",
        "cache_hits",
        "peer_loads",
        "peer_errors",
        "loads",
        "loads_deduped",
        "local_loads",
        "local_load_errs",
        "server_requests",
    ] {
        names.push(format!("group.default.{n}"));
    }
    for cache in ["main", "hot"] {
        for n in ["bytes", "items", "gets", "hits", "evictions"] {
            names.push(format!("group.default.{cache}.{n}"));
        }
    }
    for n in &names {
        assert!(st.get(n).is_some(), "STATS lacks {n}: {st:?}");
    }
    assert_eq!(st.get("threads"), Some(2));
    // The client is shard-aware: one connection per core its keys needed.
    assert_eq!(
        st.get("curr_connections"),
        Some(c.open_connections() as u64 + 1),
        "client connections + stats connection"
    );
    assert!(st.get("total_connections").unwrap() >= 2);
    assert_eq!(st.get("group.default.gets"), Some(2));
    assert_eq!(st.get("group.default.cache_hits"), Some(1));
    assert_eq!(st.get("group.default.loads"), Some(1));
    assert_eq!(st.get("group.default.loads_deduped"), Some(1));
    assert_eq!(st.get("group.default.local_loads"), Some(1));
    assert_eq!(st.get("group.default.local_load_errs"), Some(0));
    assert_eq!(st.get("group.default.peer_loads"), Some(0));
    assert_eq!(st.get("group.default.server_requests"), Some(0));
    assert_eq!(st.get("group.default.main.items"), Some(2));
    // Keys "a" and "b", values of 10 and 1 bytes: at least their own bytes are charged.
    let payload = (1 + 10) + (1 + 1);
    assert!(st.get("group.default.main.bytes").unwrap() >= payload);
}

#[test]
fn origin_values_over_the_shard_budget_are_too_large() {
    let s = TestServer::start(&[
        "--threads",
        "1",
        "--cache-size",
        "64KiB",
        "--origin",
        "synthetic:size=100000",
    ]);
    let mut c = s.client();
    for _ in 0..2 {
        let err = c.get(G, "big").unwrap_err();
        assert_eq!(server_status(&err), Some(Status::TooLarge), "{err}");
    }
    assert_eq!(s.stat("group.default.origin_too_large"), 1);
    assert!(s.stat("group.default.main.bytes") <= 64 * 1024);
}

#[test]
fn origin_values_over_the_frame_limit_are_too_large_errors() {
    let s = TestServer::start(&["--max-frame", "64KiB", "--origin", "synthetic:size=100000"]);
    let mut c = s.client();
    for _ in 0..2 {
        let err = c.get(G, "huge").unwrap_err();
        assert_eq!(server_status(&err), Some(Status::TooLarge), "{err}");
    }
    // Neither cached nor poisoning: each GET tried again, and the connection works.
    assert_eq!(s.stat("group.default.local_load_errs"), 2);
    c.ping().unwrap();
}
