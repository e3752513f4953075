//! The memcached port of a 3-node cluster of real processes on loopback, driven by a
//! third-party client (the `memcache` crate) and by hand: a get through a node that
//! does not own the key reads through the owner (one origin load for the cluster);
//! multi-key gets span owners; writes through any node are applied at the owner
//! (with hot copies everywhere to invalidate: `--hot-promote-ratio 1`); CAS uniques
//! come from the owner; `flush_all` reaches every member.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};

use common::cluster::TestCluster;
use common::memcache::{mc_addr, Item, Text};
use common::{wait_until, Gate, HttpOrigin};

/// A cluster of 3 with the memcached port on, and each node's memcached address.
fn cluster(args: &[&str]) -> (TestCluster, Vec<SocketAddr>) {
    let mut all = vec![
        "--memcache-listen",
        "127.0.0.1:0",
        "--threads",
        "1",
        "--hot-promote-ratio",
        "1",
    ];
    all.extend_from_slice(args);
    let c = TestCluster::start(3, &all);
    let mcs = (0..3).map(|i| mc_addr(c.node(i))).collect();
    (c, mcs)
}

fn classic(mc: SocketAddr) -> memcache::Client {
    memcache::Client::connect(format!("memcache://{mc}?protocol=ascii&timeout=20"))
        .expect("the memcache crate connects")
}

/// `n` keys `{tag}-<i>`, at least `n / 3` of them owned by each node (the owners
/// depend on the nodes' random ports, so a fixed list might miss one).
fn keys_on_every_owner(c: &TestCluster, tag: &str, n: usize) -> Vec<String> {
    let mut per = [0usize; 3];
    let mut keys = Vec::new();
    for i in 0.. {
        if keys.len() == n {
            break;
        }
        let k = format!("{tag}-{i}");
        let o = c.owner_of(k.as_bytes());
        // Take a key if its owner still needs keys, or once every owner has its share.
        if per[o] < n / 3 || per.iter().all(|&p| p >= n / 3) {
            per[o] += 1;
            keys.push(k);
        }
    }
    keys
}

/// Keys and values as a get answer lists them.
fn pairs(items: &[Item]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|i| (i.key.clone(), String::from_utf8_lossy(&i.data).into_owned()))
        .collect()
}

#[test]
fn a_get_through_a_non_owner_reads_through_once_for_the_cluster() {
    const PER_NODE: usize = 6;
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |path| {
        g.wait();
        (200, format!("origin value of {path}").into_bytes())
    });
    let spec = origin.spec("/v/{key}");
    let (c, mcs) = cluster(&["--origin", &spec, "--load-timeout", "60s"]);
    let key = "shared-cold-key";
    let owner = c.owner_of(key.as_bytes());
    let others: Vec<usize> = (0..3).filter(|&i| i != owner).collect();
    let barrier = Arc::new(Barrier::new(2 * PER_NODE));
    let threads: Vec<_> = others
        .iter()
        .flat_map(|&n| std::iter::repeat_n(mcs[n], PER_NODE))
        .map(|mc| {
            let client = classic(mc);
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                client.get::<String>(key).unwrap()
            })
        })
        .collect();
    // Every get reached a non-owner, and the one load for the key has started.
    wait_until("the gets to arrive and the owner's load to start", || {
        let arrived: u64 = others
            .iter()
            .map(|&n| c.node(n).stat("group.default.gets"))
            .sum();
        arrived >= 2 * PER_NODE as u64 && origin.requests() >= 1
    });
    gate.open();
    for t in threads {
        assert_eq!(
            t.join().unwrap().as_deref(),
            Some("origin value of /v/shared-cold-key"),
            "the origin's value, through a node that does not own the key"
        );
    }
    assert_eq!(
        origin.requests(),
        1,
        "one origin load: {:?}",
        origin.paths()
    );
    assert_eq!(c.node(owner).stat("group.default.local_loads"), 1);
    assert_eq!(c.sum("group.default.local_loads"), 1);
    assert!(
        others
            .iter()
            .all(|&n| c.node(n).stat("group.default.peer_loads") >= 1),
        "the non-owners fetched from the owner"
    );
}

/// 30 keys spanning every owner, each stored through its owner's memcached port with
/// flags = its index (a write at the owner itself: no forwarding involved).
fn seed_at_owners(c: &TestCluster, mcs: &[SocketAddr]) -> Vec<String> {
    let keys = keys_on_every_owner(c, "key", 30);
    for (i, k) in keys.iter().enumerate() {
        let mut t = Text::connect(mcs[c.owner_of(k.as_bytes())]);
        let v = format!("value-{i}");
        assert_eq!(
            t.ask(format!("set {k} {i} 0 {}\r\n{v}\r\n", v.len())),
            "STORED"
        );
    }
    keys
}

#[test]
fn multi_key_gets_span_owners_from_every_node_with_flags() {
    let (c, mcs) = cluster(&[]);
    let keys = seed_at_owners(&c, &mcs);
    let request = format!("get {} absent\r\n", keys.join(" "));
    let expected: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), format!("value-{i}")))
        .collect();
    for (n, &mc) in mcs.iter().enumerate() {
        // Twice: the second read may come from hot copies (promote ratio 1).
        for _ in 0..2 {
            let items = Text::connect(mc).get(&request);
            assert_eq!(pairs(&items), expected, "node {n}, in request order");
            let flags: Vec<u32> = items.iter().map(|i| i.flags).collect();
            assert_eq!(flags, (0..30).collect::<Vec<u32>>(), "flags, node {n}");
        }
    }
}

#[test]
fn writes_through_any_node_are_applied_at_the_owner_and_seen_everywhere() {
    let (c, mcs) = cluster(&[]);
    let keys = seed_at_owners(&c, &mcs);
    // Pipelined sets through node 0: most are forwarded to their owner.
    let mut t0 = Text::connect(mcs[0]);
    let sets: String = keys
        .iter()
        .map(|k| format!("set {k} 5 0 3\r\nnew\r\n"))
        .collect();
    t0.send(sets);
    for k in &keys {
        assert_eq!(t0.line(), "STORED", "set {k} through node 0");
    }
    let request = format!("get {}\r\n", keys.join(" "));
    for (n, &mc) in mcs.iter().enumerate() {
        let items = Text::connect(mc).get(&request);
        assert!(
            items.iter().all(|i| i.data == b"new" && i.flags == 5) && items.len() == 30,
            "node {n}: {items:?}"
        );
    }
    // A write through node 1 and a delete through node 2, with hot copies of both
    // keys on every node: every node reads the new state at once.
    let (a, b) = (&keys[3], &keys[4]);
    let mut t1 = Text::connect(mcs[1]);
    assert_eq!(t1.ask(format!("set {a} 9 0 3\r\nupd\r\n")), "STORED");
    assert_eq!(
        Text::connect(mcs[2]).ask(format!("delete {b}\r\n")),
        "DELETED"
    );
    for (n, &mc) in mcs.iter().enumerate() {
        let items = Text::connect(mc).get(format!("get {a} {b}\r\n"));
        assert_eq!(pairs(&items), [(a.clone(), "upd".to_string())], "node {n}");
        assert_eq!(items[0].flags, 9);
    }
    // Counters and append at the owner, through a non-owner.
    let k = "counter";
    let non_owner = (c.owner_of(k.as_bytes()) + 1) % 3;
    let mut t = Text::connect(mcs[non_owner]);
    assert_eq!(t.ask("set counter 0 0 1\r\n1\r\n"), "STORED");
    assert_eq!(t.ask("incr counter 41\r\n"), "42");
    assert_eq!(t.ask("add counter 0 0 1\r\nx\r\n"), "NOT_STORED");
    assert_eq!(t.ask("append counter 0 0 1\r\n0\r\n"), "STORED");
    for &mc in &mcs {
        let items = Text::connect(mc).get("get counter\r\n");
        assert_eq!(pairs(&items), [("counter".to_string(), "420".to_string())]);
    }
}

#[test]
fn cas_uniques_come_from_the_owner_and_conflicts_are_caught_across_nodes() {
    let (c, mcs) = cluster(&[]);
    let key = "cas-key";
    let owner = c.owner_of(key.as_bytes());
    let (a, b) = ((owner + 1) % 3, (owner + 2) % 3);
    assert_eq!(
        Text::connect(mcs[a]).ask("set cas-key 0 0 2\r\nv1\r\n"),
        "STORED"
    );
    // Every node reports the same unique: the owner's.
    let uniques: Vec<u64> = mcs
        .iter()
        .map(|&mc| {
            let items = Text::connect(mc).get("gets cas-key\r\n");
            assert_eq!(items.len(), 1);
            items[0].cas.expect("gets returns a CAS unique")
        })
        .collect();
    assert!(uniques.iter().all(|&u| u == uniques[0]), "{uniques:?}");
    let token = uniques[0];
    // Two clients on two non-owners race with the same token: one wins.
    let mut ta = Text::connect(mcs[a]);
    let mut tb = Text::connect(mcs[b]);
    assert_eq!(
        ta.ask(format!("cas cas-key 0 0 2 {token}\r\nva\r\n")),
        "STORED"
    );
    assert_eq!(
        tb.ask(format!("cas cas-key 0 0 2 {token}\r\nvb\r\n")),
        "EXISTS"
    );
    for &mc in &mcs {
        let items = Text::connect(mc).get("gets cas-key\r\n");
        assert_eq!(items[0].data, b"va");
        assert_ne!(items[0].cas, Some(token), "the write changed the unique");
    }
    assert_eq!(tb.ask("cas nothing-here 0 0 1 1\r\nx\r\n"), "NOT_FOUND");
}

#[test]
fn flush_all_reaches_every_member() {
    let (c, mcs) = cluster(&[]);
    let keys = keys_on_every_owner(&c, "f", 12);
    let client = classic(mcs[0]);
    for k in &keys {
        client.set(k, "x", 0).unwrap();
    }
    let request = format!("get {}\r\n", keys.join(" "));
    // Hot copies on every node too.
    for &mc in &mcs {
        assert_eq!(Text::connect(mc).get(&request).len(), keys.len());
    }
    assert_eq!(Text::connect(mcs[1]).ask("flush_all\r\n"), "OK");
    for (n, &mc) in mcs.iter().enumerate() {
        wait_until(&format!("node {n} to have flushed"), || {
            Text::connect(mc).get(&request).is_empty()
        });
    }
    // The cluster still works after the flush.
    client.set("after", "y", 0).unwrap();
    for &mc in &mcs {
        assert_eq!(pairs(&Text::connect(mc).get("get after\r\n")).len(), 1);
    }
}
