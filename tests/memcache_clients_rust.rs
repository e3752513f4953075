//! A third-party Rust memcached client, the `memcache` crate (dev-dependency), against
//! the real binary's `--memcache-listen` port: its classic text-protocol client
//! (`?protocol=ascii`) and its meta-protocol client (`memcache::exp`). Read-through
//! with one origin load for many concurrent gets, CAS conflicts, counters, expiry,
//! flags. The cluster cases are in memcache_clients_cluster.rs.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use common::memcache::{start, Text};
use common::{wait_until, Gate, HttpOrigin, DEADLINE};
use memcache::exp::{self, GetStatus, MetaClient, MutationStatus, Ttl};

/// The crate's classic client, text protocol, one connection.
fn classic(mc: SocketAddr) -> memcache::Client {
    memcache::Client::connect(format!("memcache://{mc}?protocol=ascii&timeout=20"))
        .expect("the memcache crate connects")
}

#[test]
fn classic_client_round_trip() {
    let (_s, mc) = start(&[]);
    let c = classic(mc);
    assert!(!c.version().unwrap().is_empty());
    assert_eq!(c.get::<String>("nothing").unwrap(), None);
    c.set("greeting", "hello", 0).unwrap();
    assert_eq!(
        c.get::<String>("greeting").unwrap().as_deref(),
        Some("hello")
    );
    // The crate hides NOT_STORED (add and replace return `()`): the values tell.
    c.add("greeting", "again", 0).unwrap();
    assert_eq!(
        c.get::<String>("greeting").unwrap().as_deref(),
        Some("hello"),
        "add of an existing key stores nothing"
    );
    c.add("fresh", "new", 0).unwrap();
    c.replace("absent", "x", 0).unwrap();
    assert_eq!(
        c.get::<String>("absent").unwrap(),
        None,
        "replace of a missing key stores nothing"
    );
    c.replace("fresh", "newer", 0).unwrap();
    c.append("greeting", ", world").unwrap();
    c.prepend("greeting", "oh, ").unwrap();
    assert_eq!(
        c.get::<String>("greeting").unwrap().as_deref(),
        Some("oh, hello, world")
    );
    // A multi-key get: hits only, misses absent.
    let many: std::collections::HashMap<String, String> =
        c.gets(&["greeting", "fresh", "absent"]).unwrap();
    assert_eq!(many.len(), 2, "{many:?}");
    assert_eq!(many["fresh"], "newer");
    // Counters.
    c.set("n", 40u64, 0).unwrap();
    assert_eq!(c.increment("n", 2).unwrap(), 42);
    assert_eq!(c.decrement("n", 50).unwrap(), 0, "decr stops at 0");
    assert_eq!(
        c.increment("n", u64::MAX).unwrap(),
        u64::MAX,
        "0 + 2^64-1 does not wrap"
    );
    assert_eq!(c.increment("n", 1).unwrap(), 0, "incr wraps at 2^64");
    assert!(c.increment("missing-counter", 1).is_err(), "NOT_FOUND");
    // Touch and delete.
    assert!(c.touch("fresh", 1000).unwrap());
    assert!(!c.touch("absent", 1000).unwrap());
    assert!(c.delete("fresh").unwrap());
    assert!(!c.delete("fresh").unwrap());
    assert_eq!(c.get::<String>("fresh").unwrap(), None);
    // flush_all empties the cache.
    c.flush().unwrap();
    assert_eq!(c.get::<String>("greeting").unwrap(), None);
}

#[test]
fn a_cas_with_a_stale_token_is_refused() {
    let (_s, mc) = start(&[]);
    let c = classic(mc);
    c.set("doc", "v1", 0).unwrap();
    let (v, _flags, cas): (String, u32, Option<u64>) = c.get("doc").unwrap().unwrap();
    assert_eq!(v, "v1");
    let stale = cas.expect("gets returns a CAS unique");
    // Another writer gets there first.
    c.set("doc", "v2", 0).unwrap();
    assert!(
        !c.cas("doc", "mine", 0, stale).unwrap(),
        "stale token refused"
    );
    assert_eq!(c.get::<String>("doc").unwrap().as_deref(), Some("v2"));
    // The crate folds EXISTS and NOT_FOUND into `false`: the wire says which.
    let mut t = Text::connect(mc);
    assert_eq!(
        t.ask(format!("cas doc 0 0 4 {stale}\r\nmine\r\n")),
        "EXISTS"
    );
    assert_eq!(t.ask("cas nobody 0 0 1 1\r\nx\r\n"), "NOT_FOUND");
    // A fresh token wins, and changes the token.
    let (_, _, fresh): (String, u32, Option<u64>) = c.get("doc").unwrap().unwrap();
    let fresh = fresh.unwrap();
    assert_ne!(fresh, stale, "every write changes the CAS unique");
    assert!(c.cas("doc", "mine", 0, fresh).unwrap());
    assert_eq!(c.get::<String>("doc").unwrap().as_deref(), Some("mine"));
    assert!(
        !c.cas("doc", "late", 0, fresh).unwrap(),
        "a token works once"
    );
}

#[test]
fn a_get_miss_reads_through_once_for_many_concurrent_gets() {
    const CLIENTS: usize = 16;
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |path| {
        if path.ends_with("/absent") {
            return (404, Vec::new());
        }
        g.wait();
        (200, format!("origin value of {path}").into_bytes())
    });
    let spec = origin.spec("/items/{key}");
    let (s, mc) = start(&["--origin", &spec, "--threads", "2", "--load-timeout", "60s"]);
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let c = classic(mc);
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                c.get::<Vec<u8>>("cold").unwrap()
            })
        })
        .collect();
    // Every get has missed and joined the one load before the origin may answer.
    s.wait_stat("group.default.loads", &format!("== {CLIENTS}"), |n| {
        n == CLIENTS as u64
    });
    // The load's request reaches the origin a moment after the loader thread takes
    // it: wait for it, then check no second one was made while all 16 waited.
    wait_until("the load to reach the origin", || origin.requests() >= 1);
    assert_eq!(origin.requests(), 1, "one origin request so far");
    gate.open();
    for t in threads {
        assert_eq!(
            t.join().unwrap().as_deref(),
            Some(&b"origin value of /items/cold"[..]),
            "each get returns the origin's value"
        );
    }
    assert_eq!(origin.requests(), 1, "loaded once: {:?}", origin.paths());
    assert_eq!(s.stat("group.default.local_loads"), 1);
    assert_eq!(s.stat("group.default.loads_deduped"), 1);
    // Now cached: a hit, no origin request.
    let c = classic(mc);
    assert_eq!(
        c.get::<String>("cold").unwrap().as_deref(),
        Some("origin value of /items/cold")
    );
    assert_eq!(origin.requests(), 1);
    // A key the origin does not have is a plain miss.
    assert_eq!(c.get::<String>("absent").unwrap(), None);
}

#[test]
fn meta_client_flags_modes_and_cas_updates() {
    let (_s, mc) = start(&[]);
    let m = MetaClient::connect(mc.to_string()).expect("MetaClient connects");
    m.noop().unwrap();
    assert_eq!(m.get("k").send().unwrap().status, GetStatus::Miss);
    assert!(m.set("k", "bar").client_flags(42).send().unwrap().applied());
    let got = m.get("k").send().unwrap();
    assert_eq!(got.status, GetStatus::Hit);
    assert_eq!(got.value.as_deref(), Some(&b"bar"[..]));
    assert_eq!(got.client_flags, Some(42), "flags round trip");
    assert_eq!(
        m.set("k", "x").add().send().unwrap().status,
        MutationStatus::AlreadyExists
    );
    assert_eq!(
        m.set("absent", "x").replace().send().unwrap().status,
        MutationStatus::NotFound
    );
    assert!(m.set("k", "!").append().send().unwrap().applied());
    assert!(m.set("k", "?").prepend().send().unwrap().applied());
    assert_eq!(
        m.get("k").send().unwrap().value.as_deref(),
        Some(&b"?bar!"[..])
    );
    assert!(m.delete("k").send().unwrap().applied());
    assert_eq!(
        m.delete("k").send().unwrap().status,
        MutationStatus::NotFound
    );

    // The high-level client: typed values (flags tag the type), counters, and a
    // CAS retry loop from two threads at once: no update may be lost.
    let cache = exp::Memcache::builder()
        .timeout(DEADLINE)
        .connect([mc.to_string()])
        .expect("Memcache connects");
    cache.set("name", "groupcached", Ttl::NEVER).unwrap();
    assert_eq!(
        cache.get::<String>("name").unwrap().as_deref(),
        Some("groupcached")
    );
    assert_eq!(cache.incr("hits", 5, Ttl::NEVER).unwrap(), 5);
    assert_eq!(cache.incr("hits", 2, Ttl::NEVER).unwrap(), 7);
    assert_eq!(cache.decr("hits", 10, Ttl::NEVER).unwrap(), 0);
    const PER_THREAD: u64 = 25;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let mut done = 0;
                while done < PER_THREAD {
                    match cache.update("total", Ttl::NEVER, |v: Option<u64>| v.unwrap_or(0) + 1) {
                        Ok(_) => done += 1,
                        Err(exp::Error::Conflict) => {}
                        Err(e) => panic!("update: {e}"),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(cache.get::<u64>("total").unwrap(), Some(2 * PER_THREAD));
}

#[test]
fn items_expire_by_exptime_and_zero_never_expires() {
    let (_s, mc) = start(&[]);
    let c = classic(mc);
    c.set("forever", "stays", 0).unwrap();
    c.set("brief", "goes", 1).unwrap();
    // A negative exptime, or an absolute time in the past, is already expired.
    let mut t = Text::connect(mc);
    assert_eq!(t.ask("set past 0 -1 1\r\nx\r\n"), "STORED");
    assert_eq!(t.ask("set abs 0 1000000000 1\r\nx\r\n"), "STORED");
    assert_eq!(t.get("get past abs\r\n"), vec![]);
    // Poll, never sleep for a fixed time: `brief` is gone within the deadline.
    let start = Instant::now();
    wait_until("the 1 s item to expire", || {
        c.get::<String>("brief").unwrap().is_none()
    });
    assert!(start.elapsed() < DEADLINE);
    assert_eq!(
        c.get::<String>("forever").unwrap().as_deref(),
        Some("stays"),
        "exptime 0 never expires"
    );
    // touch gives an item a new exptime; gat reads and touches.
    c.set("touched", "t", 1).unwrap();
    let items = t.get("gat 0 touched\r\n");
    if let Some(item) = items.first() {
        assert_eq!(item.data, b"t");
        // Made permanent before it expired: it must outlive the 1 s.
        c.set("brief2", "goes", 1).unwrap();
        wait_until("the second 1 s item to expire", || {
            c.get::<String>("brief2").unwrap().is_none()
        });
        assert_eq!(c.get::<String>("touched").unwrap().as_deref(), Some("t"));
    }
}
