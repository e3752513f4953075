//! The in-flight table seen from outside: one origin load per key however many ask at
//! once, errors are neither cached nor poisonous, a waiter that leaves harms nobody,
//! loads time out; and the HTTP origin's URL, status and body handling.

mod common;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Gate, HttpOrigin, TempDir, TestServer};
use groupcached_client::protocol::{KeyRef, Request, RequestKind, Status};
use groupcached_client::{Client, Error, Value};

const G: &str = "default";
const CLIENTS: usize = 100;

fn server_status(e: &Error) -> Option<Status> {
    match e {
        Error::Server { status, .. } => Some(*status),
        _ => None,
    }
}

/// `CLIENTS` threads, each with its own connection, GET `key` at the same moment.
fn concurrent_gets(s: &TestServer, key: &'static str) -> Vec<std::thread::JoinHandle<Value>> {
    let barrier = Arc::new(Barrier::new(CLIENTS));
    (0..CLIENTS)
        .map(|_| {
            let mut c: Client = s.client();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                c.get(G, key).unwrap().expect("a value")
            })
        })
        .collect()
}

#[test]
fn one_synthetic_load_for_a_hundred_concurrent_misses() {
    let s = TestServer::start(&[
        "--origin",
        "synthetic:size=64,delay_ms=300",
        "--threads",
        "2",
    ]);
    let values: Vec<Value> = concurrent_gets(&s, "cold")
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(values[0].len(), 64);
    assert!(
        values.iter().all(|v| v == &values[0]),
        "all get the same value"
    );
    let st = s.stats();
    assert_eq!(st.get("group.default.gets"), Some(CLIENTS as u64));
    assert_eq!(st.get("group.default.local_loads"), Some(1));
    assert_eq!(st.get("group.default.loads_deduped"), Some(1));
    assert_eq!(st.get("group.default.local_load_errs"), Some(0));
}

#[test]
fn one_http_request_for_a_hundred_concurrent_misses() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |path| {
        g.wait();
        (200, format!("body of {path}").into_bytes())
    });
    let spec = origin.spec("/items/{key}");
    let s = TestServer::start(&["--origin", &spec, "--threads", "2", "--load-timeout", "60s"]);
    let threads = concurrent_gets(&s, "shared-key");
    // Every GET has missed and joined the one load before the origin may answer.
    s.wait_stat("group.default.loads", "== 100", |n| n == CLIENTS as u64);
    gate.open();
    for t in threads {
        assert_eq!(t.join().unwrap().as_bytes(), b"body of /items/shared-key");
    }
    assert_eq!(origin.paths(), vec!["/items/shared-key".to_string()]);
    let st = s.stats();
    assert_eq!(st.get("group.default.local_loads"), Some(1));
    assert_eq!(st.get("group.default.loads_deduped"), Some(1));
}

#[test]
fn http_origin_gets_the_key_percent_encoded_byte_exact() {
    let origin = HttpOrigin::start(|path| (200, path.as_bytes().to_vec()));
    let spec = origin.spec("/items/{key}");
    let s = TestServer::start(&["--origin", &spec]);
    let mut c = s.client();
    let want = "/items/a%20b%2Bc%25d/%C3%A9";
    let v = c.get(G, "a b+c%d/é").unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&v), want);
    assert_eq!(origin.paths(), vec![want.to_string()]);
    // Bytes that are not UTF-8 are encoded one by one too.
    let v = c
        .get(G, [0xffu8, b'~', b'-', b'.', b'_', 0x00])
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&v), "/items/%FF~-._%00");
}

#[test]
fn http_404_is_a_miss_and_500_an_uncached_origin_error() {
    let origin = HttpOrigin::start(|path| {
        if path.ends_with("/missing") {
            (404, b"no such thing".to_vec())
        } else if path.ends_with("/broken") {
            (500, b"internal".to_vec())
        } else {
            (200, b"fine".to_vec())
        }
    });
    let spec = origin.spec("/v/{key}");
    let s = TestServer::start(&["--origin", &spec]);
    let mut c = s.client();

    assert_eq!(c.get(G, "missing").unwrap(), None);
    let err = c.get(G, "broken").unwrap_err();
    assert_eq!(server_status(&err), Some(Status::OriginError), "{err}");
    assert_eq!(s.stat("group.default.local_load_errs"), 1);
    // The connection survives an origin error.
    assert_eq!(c.get(G, "ok").unwrap().unwrap().as_bytes(), b"fine");
    // The error was not cached: the next GET asks the origin again.
    let err = c.get(G, "broken").unwrap_err();
    assert_eq!(server_status(&err), Some(Status::OriginError), "{err}");
    let broken = origin.paths().iter().filter(|p| *p == "/v/broken").count();
    assert_eq!(broken, 2);
    assert_eq!(s.stat("group.default.local_load_errs"), 2);
    // A 404 is not cached either (a later value must become visible).
    assert_eq!(c.get(G, "missing").unwrap(), None);
    let missing = origin.paths().iter().filter(|p| *p == "/v/missing").count();
    assert_eq!(missing, 2);
}

#[test]
fn a_failed_load_does_not_poison_the_key() {
    let status = Arc::new(AtomicU16::new(500));
    let st = status.clone();
    let origin = HttpOrigin::start(move |_| (st.load(Ordering::SeqCst), b"recovered".to_vec()));
    let spec = origin.spec("/{key}");
    let s = TestServer::start(&["--origin", &spec]);
    let mut c = s.client();
    let err = c.get(G, "k").unwrap_err();
    assert_eq!(server_status(&err), Some(Status::OriginError), "{err}");
    status.store(200, Ordering::SeqCst);
    assert_eq!(c.get(G, "k").unwrap().unwrap().as_bytes(), b"recovered");
    // And now it is cached.
    assert_eq!(c.get(G, "k").unwrap().unwrap().as_bytes(), b"recovered");
    assert_eq!(origin.requests(), 2);
}

#[test]
fn a_waiter_that_disconnects_does_not_fail_the_others() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |_| {
        g.wait();
        (200, b"worth the wait".to_vec())
    });
    let spec = origin.spec("/{key}");
    let s = TestServer::start(&["--origin", &spec, "--threads", "2", "--load-timeout", "60s"]);

    let mut first = s.client();
    let waiter = std::thread::spawn(move || first.get(G, "slow").unwrap());
    let mut quitter = s.raw();
    quitter.send(&Request {
        id: 1,
        kind: RequestKind::Get(KeyRef::new(G.as_bytes(), b"slow")),
    });
    s.wait_stat("group.default.gets", "== 2", |n| n == 2);
    let before = s.stat("curr_connections");
    drop(quitter);
    // (A closed socket may be a half-close, so the server rightly keeps the connection
    // until it has answered; it cannot be observed before the answer.)
    gate.open();
    let v = waiter
        .join()
        .unwrap()
        .expect("the remaining waiter gets the value");
    assert_eq!(v.as_bytes(), b"worth the wait");
    // Once the answer met the closed socket, the connection is gone.
    s.wait_stat("curr_connections", "to drop", |n| n < before);
    // A later client is served from cache; the server is fine.
    assert_eq!(
        s.client().get(G, "slow").unwrap().unwrap().as_bytes(),
        b"worth the wait"
    );
    assert_eq!(origin.requests(), 1);
}

#[test]
fn a_waiter_that_disconnects_during_a_synthetic_load_harms_nobody() {
    let s = TestServer::start(&["--origin", "synthetic:size=50,delay_ms=1500"]);
    let mut quitter = s.raw();
    quitter.send(&Request {
        id: 9,
        kind: RequestKind::Get(KeyRef::new(G.as_bytes(), b"slow")),
    });
    s.wait_stat("group.default.gets", "== 1", |n| n == 1);
    drop(quitter);
    let v = s.client().get(G, "slow").unwrap().unwrap();
    assert_eq!(v.len(), 50);
    assert_eq!(s.stat("group.default.local_loads"), 1);
    s.client().ping().unwrap();
}

fn two_group_config(dir: &TempDir, slow_origin: &str) -> String {
    let path = dir.write(
        "groupcached.toml",
        format!(
            "threads = 2\n\
             [[group]]\nname = \"slow\"\norigin = \"{slow_origin}\"\n\
             [[group]]\nname = \"fast\"\norigin = \"none\"\n"
        )
        .as_bytes(),
    );
    path.display().to_string()
}

/// Checks TIMEOUT for a GET of `slow/key`, while group `fast` keeps being served.
fn assert_load_times_out(s: &TestServer) {
    let mut fast = s.client();
    fast.set("fast", "f", b"quick", None).unwrap();
    let mut slow = s.client();
    let start = Instant::now();
    let waiting = std::thread::spawn(move || {
        let r = slow.get("slow", "key");
        (r, start.elapsed())
    });
    // Other keys are served while the load runs (and after).
    for _ in 0..20 {
        assert_eq!(fast.get("fast", "f").unwrap().unwrap().as_bytes(), b"quick");
    }
    let (r, took) = waiting.join().unwrap();
    let err = r.expect_err("a load over --load-timeout must fail");
    assert_eq!(server_status(&err), Some(Status::Timeout), "{err}");
    assert!(took < Duration::from_secs(8), "TIMEOUT took {took:?}");
    assert_eq!(fast.get("fast", "f").unwrap().unwrap().as_bytes(), b"quick");
    assert_eq!(s.stat("group.slow.local_load_errs"), 1);
    assert_eq!(s.stat("group.slow.main.items"), 0);
}

#[test]
fn slow_synthetic_load_times_out_and_other_keys_are_served() {
    let dir = TempDir::new("timeout-synth");
    let cfg = two_group_config(&dir, "synthetic:size=10,delay_ms=3000");
    let s = TestServer::start(&["--config", &cfg, "--load-timeout", "300ms"]);
    assert_load_times_out(&s);
}

#[test]
fn slow_http_load_times_out_and_other_keys_are_served() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |_| {
        g.wait();
        (200, b"too late".to_vec())
    });
    let dir = TempDir::new("timeout-http");
    let cfg = two_group_config(&dir, &origin.spec("/{key}"));
    let s = TestServer::start(&["--config", &cfg, "--load-timeout", "300ms"]);
    assert_load_times_out(&s);
    gate.open();
    // After the timeout the key can be loaded again.
    let mut c = s.client();
    assert_eq!(
        c.get("slow", "key").unwrap().unwrap().as_bytes(),
        b"too late"
    );
}

#[test]
fn a_set_during_a_load_wins_over_the_loaded_value() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |_| {
        g.wait();
        (200, b"stale from origin".to_vec())
    });
    let spec = origin.spec("/{key}");
    let s = TestServer::start(&["--origin", &spec, "--threads", "2", "--load-timeout", "60s"]);
    let mut waiter = s.client();
    let waiting = std::thread::spawn(move || waiter.get(G, "k").unwrap());
    common::wait_until("the load to reach the origin", || origin.requests() == 1);
    let mut c = s.client();
    c.set(G, "k", b"fresh from SET", None).unwrap();
    gate.open();
    // The waiter gets what it asked the origin for...
    let got = waiting.join().unwrap().unwrap();
    assert_eq!(got.as_bytes(), b"stale from origin");
    // ...but the older load must not overwrite the newer SET in the cache.
    assert_eq!(
        c.get(G, "k").unwrap().unwrap().as_bytes(),
        b"fresh from SET"
    );
    assert_eq!(origin.requests(), 1);
}

#[test]
fn a_delete_during_a_load_keeps_the_loaded_value_out_of_the_cache() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |_| {
        g.wait();
        (200, b"loaded".to_vec())
    });
    let spec = origin.spec("/{key}");
    let s = TestServer::start(&["--origin", &spec, "--load-timeout", "60s"]);
    let mut waiter = s.client();
    let waiting = std::thread::spawn(move || waiter.get(G, "k").unwrap());
    common::wait_until("the load to reach the origin", || origin.requests() == 1);
    let mut c = s.client();
    assert!(!c.delete(G, "k").unwrap());
    gate.open();
    assert_eq!(waiting.join().unwrap().unwrap().as_bytes(), b"loaded");
    // Deleted after the load began: the next GET asks the origin again.
    assert_eq!(c.get(G, "k").unwrap().unwrap().as_bytes(), b"loaded");
    assert_eq!(origin.requests(), 2);
}

#[test]
fn more_waiters_on_one_connection_than_its_pending_limit_are_all_answered() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |_| {
        g.wait();
        (200, b"eventually".to_vec())
    });
    let spec = origin.spec("/{key}");
    let s = TestServer::start(&["--origin", &spec, "--threads", "2", "--load-timeout", "60s"]);
    let mut raw = s.raw();
    const N: u32 = 5000;
    let bytes: Vec<u8> = (1..=N)
        .flat_map(|id| {
            common::encode(&Request {
                id,
                kind: RequestKind::Get(KeyRef::new(G.as_bytes(), b"slow")),
            })
        })
        .collect();
    raw.send_bytes(&bytes);
    // The server stops reading at its pending limit; the rest wait in the socket.
    common::wait_until("the load to reach the origin", || origin.requests() == 1);
    s.wait_stat("group.default.gets", ">= 4096", |n| n >= 4096);
    gate.open();
    let mut seen = vec![false; N as usize + 1];
    for _ in 0..N {
        let r = raw.recv();
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert!(
            !std::mem::replace(&mut seen[r.id as usize], true),
            "id {} twice",
            r.id
        );
    }
    assert_eq!(origin.requests(), 1);
    assert_eq!(s.stat("group.default.gets"), N as u64);
}
