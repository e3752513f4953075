//! Multi-process cluster tests: real binaries on loopback, driven by the real client.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::cluster::TestCluster;
use common::{wait_until, TestServer};
use groupcached_client::{ClusterClient, ConnectOptions};

fn synthetic(delay_ms: u64) -> String {
    format!("synthetic:size=32,delay_ms={delay_ms}")
}

/// A key owned by node `owner`, found by trying names.
fn key_owned_by(c: &TestCluster, owner: usize, tag: &str) -> String {
    (0..10_000)
        .map(|i| format!("{tag}-{i}"))
        .find(|k| c.owner_of(k.as_bytes()) == owner)
        .expect("some key lands on every node")
}

#[test]
fn concurrent_gets_of_one_cold_key_on_every_node_load_it_once() {
    let origin = synthetic(300);
    let c = TestCluster::start(3, &["--threads", "2", "--origin", &origin]);
    let barrier = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let mut client = c.node(i % 3).client();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                // Three GETs of the same key in one pipelined batch: 300 in all.
                client
                    .get_many("default", &["cold", "cold", "cold"])
                    .unwrap()
            })
        })
        .collect();
    let mut values = Vec::new();
    for t in threads {
        for v in t.join().unwrap() {
            values.push(v.expect("every GET gets the value").into_bytes());
        }
    }
    assert_eq!(values.len(), 300);
    assert!(
        values.windows(2).all(|w| w[0] == w[1]),
        "one value for everyone"
    );
    assert_eq!(
        c.sum("group.default.local_loads"),
        1,
        "exactly one origin load in the cluster"
    );
    let owner = c.owner_of(b"cold");
    assert_eq!(c.node(owner).stat("group.default.local_loads"), 1);
    // Each non-owner fetched once from the owner (its in-flight table merged its GETs).
    for i in (0..3).filter(|&i| i != owner) {
        assert_eq!(c.node(i).stat("group.default.peer_loads"), 1, "node {i}");
        assert_eq!(c.node(i).stat("group.default.loads_deduped"), 1, "node {i}");
    }
    assert_eq!(c.node(owner).stat("group.default.server_requests"), 2);
    assert_eq!(c.sum("group.default.peer_errors"), 0);
}

#[test]
fn every_key_is_loaded_once_in_the_cluster_however_many_nodes_read_it() {
    let origin = synthetic(0);
    let c = TestCluster::start(3, &["--threads", "2", "--origin", &origin]);
    let keys: Vec<String> = (0..1000).map(|i| format!("item/{i}")).collect();
    for i in 0..3 {
        let mut client = c.node(i).client();
        let got = client.get_many("default", &keys).unwrap();
        assert!(got
            .iter()
            .all(|v| v.as_ref().is_some_and(|v| v.len() == 32)));
    }
    assert_eq!(c.sum("group.default.local_loads"), 1000);
    // Owners loaded their own keys; everybody else fetched them (no hot cache
    // guaranteed at 1-in-10 promotion, so later reads may fetch again).
    let mut owned = [0u64; 3];
    for k in &keys {
        owned[c.owner_of(k.as_bytes())] += 1;
    }
    for (i, &n) in owned.iter().enumerate() {
        assert_eq!(c.node(i).stat("group.default.local_loads"), n, "node {i}");
        assert!(
            c.node(i).stat("group.default.peer_loads")
                >= 1000 - n - c.node(i).stat("group.default.hot.hits")
        );
    }
    assert_eq!(c.sum("group.default.peer_errors"), 0);
    assert_eq!(
        c.sum("group.default.gets"),
        3000 + c.sum("group.default.server_requests")
    );
}

#[test]
fn keys_travel_byte_exact_between_nodes() {
    let c = TestCluster::start(3, &["--origin", "none"]);
    let keys: Vec<Vec<u8>> = vec![
        b"with space".to_vec(),
        b"a+b%20c/d".to_vec(),
        vec![0xff, 0x00, 0xfe, b'k'],
        "h\u{e9}llo/\u{1f600}".as_bytes().to_vec(),
    ];
    for (i, k) in keys.iter().enumerate() {
        let mut via = c.node(i % 3).client();
        via.set("default", k, k, None).unwrap();
        for n in 0..3 {
            let got = c.node(n).client().get("default", k).unwrap();
            assert_eq!(
                got.map(|v| v.into_bytes()).as_deref(),
                Some(&k[..]),
                "key {k:?} via node {n}"
            );
        }
    }
}

#[test]
fn a_killed_owner_does_not_fail_clients_and_gets_its_keys_back_after_restart() {
    let origin = synthetic(1500);
    let mut c = TestCluster::start(
        3,
        &[
            "--threads",
            "2",
            "--origin",
            &origin,
            "--peer-timeout",
            "5s",
        ],
    );
    let owner = 2;
    let key = key_owned_by(&c, owner, "victim");
    // Clients on the other two nodes wait for the owner's slow load...
    let waiters: Vec<_> = [0, 1, 0, 1]
        .into_iter()
        .map(|i| {
            let mut client = c.node(i).client();
            let key = key.clone();
            std::thread::spawn(move || client.get("default", &key))
        })
        .collect();
    c.node(owner)
        .wait_stat("group.default.loads_deduped", ">= 1 (owner loading)", |v| {
            v >= 1
        });
    // ...and the owner dies mid-load.
    c.kill(owner);
    for w in waiters {
        let v = w
            .join()
            .unwrap()
            .expect("no client error while a peer is down");
        assert_eq!(v.expect("value from the fallback load").len(), 32);
    }
    let errors =
        c.node(0).stat("group.default.peer_errors") + c.node(1).stat("group.default.peer_errors");
    assert!(errors >= 1, "peer_errors counts the dead owner");
    assert!(
        c.node(0).stat("group.default.local_loads") + c.node(1).stat("group.default.local_loads")
            >= 1
    );

    // The owner comes back on its address: its keys route to it again.
    c.restart(owner);
    let fresh = key_owned_by(&c, owner, "after-restart");
    wait_until(
        "a GET through node 0 is served by the restarted owner",
        || {
            let before = c.node(owner).stat("group.default.server_requests");
            let got = c.node(0).client().get("default", &fresh).unwrap();
            assert!(got.is_some());
            c.node(owner).stat("group.default.server_requests") > before
        },
    );
    assert!(c.node(owner).stat("group.default.local_loads") >= 1);
}

#[test]
fn growing_from_three_to_four_nodes_moves_about_a_quarter_of_keys_without_errors() {
    let origin = synthetic(0);
    let mut c = TestCluster::start(4, &["--origin", &origin]);
    c.set_members(&[0, 1, 2]);
    let keys: Vec<String> = (0..2000).map(|i| format!("grow/{i}")).collect();
    let before = c.ring_of(&[0, 1, 2]);
    let after = c.ring_of(&[0, 1, 2, 3]);
    let moved: Vec<&String> = keys
        .iter()
        .filter(|k| before.owner(k.as_bytes()) != after.owner(k.as_bytes()))
        .collect();
    let share = moved.len() as f64 / keys.len() as f64;
    assert!((0.18..0.32).contains(&share), "{share}");
    assert!(moved
        .iter()
        .all(|k| after.owner(k.as_bytes()) == Some(c.addrs()[3].as_str())));

    let mut client = c.node(0).client();
    assert!(client
        .get_many("default", &keys)
        .unwrap()
        .iter()
        .all(Option::is_some));

    // Readers keep going while the member list changes; none may see an error.
    let stop = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let mut client = c.node(i).client();
            let (stop, errors, keys) = (stop.clone(), errors.clone(), keys.clone());
            std::thread::spawn(move || {
                let mut rounds = 0;
                while stop.load(Ordering::Relaxed) == 0 || rounds < 2 {
                    match client.get_many("default", &keys[..200]) {
                        Ok(v) if v.iter().all(Option::is_some) => {}
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    rounds += 1;
                }
            })
        })
        .collect();
    let loaded_by_new = c.node(3).stat("group.default.local_loads");
    c.set_members(&[0, 1, 2, 3]);
    stop.store(1, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "no client errors during the change"
    );
    assert!(c
        .node(0)
        .wait_log("membership changed: 3 -> 4 members")
        .contains("3 -> 4"));
    // Reading every key through the new node: it owns the moved keys and loads each
    // exactly once (some already while the readers ran); every other key it fetches
    // from its owner, which still has it. (Old owners keep serving moved keys from
    // their main cache, as groupcache does, so reads through them prove less.)
    let mut via_new = c.node(3).client();
    assert!(via_new
        .get_many("default", &keys)
        .unwrap()
        .iter()
        .all(Option::is_some));
    let loaded = c.node(3).stat("group.default.local_loads") - loaded_by_new;
    assert_eq!(
        loaded as usize,
        moved.len(),
        "the 4th node loads exactly the moved keys"
    );
}

#[test]
fn delete_invalidates_hot_copies_and_a_set_anywhere_is_seen_everywhere() {
    let c = TestCluster::start(
        3,
        &[
            "--origin",
            "none",
            "--hot-promote-ratio",
            "1",
            "--threads",
            "2",
        ],
    );
    let owner = 0;
    let key = key_owned_by(&c, owner, "hot");
    c.node(1)
        .client()
        .set("default", &key, b"v1", None)
        .unwrap();
    // Node 2 reads it through the owner and, with promotion at 1.0, keeps a hot copy.
    assert_eq!(
        c.node(2)
            .client()
            .get("default", &key)
            .unwrap()
            .unwrap()
            .as_bytes(),
        b"v1"
    );
    c.node(2)
        .wait_stat("group.default.hot.items", ">= 1", |v| v >= 1);
    let hits = c.node(2).stat("group.default.hot.hits");
    assert_eq!(
        c.node(2)
            .client()
            .get("default", &key)
            .unwrap()
            .unwrap()
            .as_bytes(),
        b"v1"
    );
    assert_eq!(
        c.node(2).stat("group.default.hot.hits"),
        hits + 1,
        "served from the hot copy"
    );

    // DELETE through node 1: the owner's copy goes, and node 2's hot copy is invalidated.
    assert!(c.node(1).client().delete("default", &key).unwrap());
    c.node(2)
        .wait_stat("group.default.hot.items", "== 0", |v| v == 0);
    for n in 0..3 {
        assert_eq!(
            c.node(n).client().get("default", &key).unwrap(),
            None,
            "node {n}"
        );
    }
    assert_eq!(c.sum("invalidate_errors"), 0);

    // SET through one node, GET through another: the new value.
    c.node(2)
        .client()
        .set("default", &key, b"v2", None)
        .unwrap();
    for n in 0..3 {
        let v = c.node(n).client().get("default", &key).unwrap().unwrap();
        assert_eq!(v.as_bytes(), b"v2", "node {n}");
    }
    // A SET invalidates other nodes' hot copies too: node 2 had v2 in its hot cache.
    c.node(1)
        .client()
        .set("default", &key, b"v2b", None)
        .unwrap();
    let v = c.node(2).client().get("default", &key).unwrap().unwrap();
    assert_eq!(v.as_bytes(), b"v2b");
    // A TTL set through a non-owner travels with the value and bounds hot copies.
    c.node(1)
        .client()
        .set("default", &key, b"v3", Some(Duration::from_millis(400)))
        .unwrap();
    let v = c.node(2).client().get("default", &key).unwrap().unwrap();
    assert!(v.ttl().is_some_and(|t| t <= Duration::from_millis(400)));
    wait_until("the value expires on every node", || {
        (0..3).all(|n| c.node(n).client().get("default", &key).unwrap().is_none())
    });
}

#[test]
fn a_set_fails_cleanly_when_the_owner_is_down() {
    let mut c = TestCluster::start(2, &["--origin", "none", "--peer-timeout", "1s"]);
    let key = key_owned_by(&c, 1, "orphan");
    c.kill(1);
    let err = c
        .node(0)
        .client()
        .set("default", &key, b"x", None)
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(groupcached_client::protocol::Status::Unavailable),
        "{err}"
    );
    // Reads of a pure cache's keys whose owner is down say so instead of NOT_FOUND.
    let err = c.node(0).client().get("default", &key).unwrap_err();
    assert_eq!(
        err.status(),
        Some(groupcached_client::protocol::Status::Unavailable),
        "{err}"
    );
    // Keys it owns itself keep working.
    let mine = key_owned_by(&c, 0, "mine");
    c.node(0)
        .client()
        .set("default", &mine, b"ok", None)
        .unwrap();
    assert!(c.node(0).client().get("default", &mine).unwrap().is_some());
}

#[test]
fn nodes_with_different_member_lists_log_count_and_never_loop() {
    let origin = synthetic(0);
    // A lists itself and B; B lists A, itself, and a member that does not exist.
    let dir = common::TempDir::new("split-ring");
    let a_peers = dir.write("peers", b"");
    let a_file = a_peers.display().to_string();
    let a = TestServer::start(&["--origin", &origin, "--peers-file", &a_file]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let b = TestServer::start(&[
        "--origin",
        &origin,
        "--peer-timeout",
        "1s",
        "--peers",
        &format!("{},{dead}", a.addr()),
    ]);
    std::fs::write(&a_peers, format!("{}\n{}\n", a.addr(), b.addr())).unwrap();
    a.signal("HUP");
    a.wait_stat("members", "== 2", |m| m == 2);
    assert_eq!(b.stat("members"), 3);

    let keys: Vec<String> = (0..300).map(|i| format!("split/{i}")).collect();
    for node in [&a, &b] {
        let got = node.client().get_many("default", &keys).unwrap();
        assert!(got.iter().all(Option::is_some));
    }
    // Both sides notice on HELLO, count it and say so in the log; requests still
    // complete and nothing bounces: every FETCH a node serves was caused by one of
    // the other node's 300 GETs.
    wait_until("a ring mismatch is counted", || {
        a.stat("ring_mismatches") + b.stat("ring_mismatches") >= 1
    });
    wait_until("a ring mismatch is logged", || {
        [&a, &b]
            .iter()
            .any(|n| n.logs().iter().any(|l| l.contains("member lists differ")))
    });
    assert!(a.stat("group.default.server_requests") <= 300);
    assert!(b.stat("group.default.server_requests") <= 300);
}

#[test]
fn the_ring_aware_client_goes_straight_to_owners() {
    let origin = synthetic(0);
    let c = TestCluster::start(3, &["--origin", &origin]);
    let mut client = ClusterClient::with_members(c.addrs(), ConnectOptions::default()).unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("direct/{i}")).collect();
    for k in &keys {
        assert!(client.get("default", k).unwrap().is_some());
    }
    let mut owned: HashMap<usize, u64> = HashMap::new();
    for k in &keys {
        *owned.entry(c.owner_of(k.as_bytes())).or_default() += 1;
    }
    for i in 0..3 {
        let n = c.node(i);
        assert_eq!(
            n.stat("group.default.gets"),
            owned[&i],
            "node {i} saw only its own keys"
        );
        assert_eq!(n.stat("group.default.peer_loads"), 0);
        assert_eq!(n.stat("group.default.server_requests"), 0);
    }
    assert_eq!(client.owner("direct/0"), c.addrs()[c.owner_of(b"direct/0")]);
}
