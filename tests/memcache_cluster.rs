//! The memcached front end in a 3-node cluster, over raw sockets: read-through of an
//! origin-only key through non-owners loaded once, writes through a non-owner
//! applied at the owner (MUTATE) with the owner's flags and CAS seen everywhere,
//! multi-key gets across owners, and `flush_all` reaching every member.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};

use common::cluster::TestCluster;
use common::memcache::{mc_addr, Mc};
use common::{Gate, HttpOrigin};

/// A key (`<prefix><n>`) that node `owner` owns.
fn key_of(c: &TestCluster, owner: usize, prefix: &str) -> String {
    (0..)
        .map(|n| format!("{prefix}{n}"))
        .find(|k| c.owner_of(k.as_bytes()) == owner)
        .unwrap()
}

#[test]
fn an_origin_only_key_is_loaded_once_through_non_owners() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |path| {
        g.wait();
        (
            200,
            format!("O:{}", path.trim_start_matches('/')).into_bytes(),
        )
    });
    let spec = origin.spec("/{key}");
    let args = [
        "--memcache-listen",
        "127.0.0.1:0",
        "--origin",
        &spec,
        "--threads",
        "2",
    ];
    let c = TestCluster::start(3, &args);
    let key = key_of(&c, 0, "slow");
    const CLIENTS: usize = 12;
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let addrs: Vec<SocketAddr> = (1..3).map(|i| mc_addr(c.node(i))).collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (barrier, key, addr) = (barrier.clone(), key.clone(), addrs[i % 2]);
            std::thread::spawn(move || {
                let mut m = Mc::connect(addr);
                barrier.wait();
                let want = format!("VALUE {key} 0 {}\r\nO:{key}\r\nEND\r\n", key.len() + 2);
                m.ask(&format!("get {key}\r\n"), &want);
            })
        })
        .collect();
    barrier.wait();
    // The non-owners' fetches have reached the owner before its origin answers.
    c.node(0)
        .wait_stat("group.default.server_requests", ">= 2", |v| v >= 2);
    gate.open();
    for t in clients {
        t.join().unwrap();
    }
    assert_eq!(origin.requests(), 1, "{:?}", origin.paths());
    // A gat through a non-owner of a key only the origin has reads it through too.
    let other = key_of(&c, 0, "gat");
    let want = format!(
        "VALUE {other} 0 {}\r\nO:{other}\r\nEND\r\n",
        other.len() + 2
    );
    Mc::to(c.node(1)).ask(&format!("gat 100 {other}\r\n"), &want);
}

#[test]
fn writes_through_non_owners_apply_at_the_owner_with_its_flags_and_cas() {
    let args = [
        "--memcache-listen",
        "127.0.0.1:0",
        "--origin",
        "none",
        "--threads",
        "2",
    ];
    let c = TestCluster::start(3, &args);
    let key = key_of(&c, 0, "k");
    let (mut owner, mut one, mut two) = (Mc::to(c.node(0)), Mc::to(c.node(1)), Mc::to(c.node(2)));

    one.ask(&format!("set {key} 5 0 2\r\nv1\r\n"), "STORED\r\n");
    let (flags, cas, value) = two.gets(&key).expect("set through node 1");
    assert_eq!((flags, value.as_str()), (5, "v1"));
    assert_eq!(
        owner.gets(&key),
        Some((5, cas, "v1".to_string())),
        "the owner's CAS"
    );
    two.ask(&format!("cas {key} 6 0 2 {cas}\r\nv2\r\n"), "STORED\r\n");
    one.ask(&format!("cas {key} 6 0 2 {cas}\r\nv3\r\n"), "EXISTS\r\n");
    // The write's INVALIDATE dropped node 1's copy before the write was answered.
    let (flags, new_cas, value) = one.gets(&key).unwrap();
    assert_eq!((flags, value.as_str()), (6, "v2"));
    assert_ne!(new_cas, cas);
    one.ask(&format!("add {key} 0 0 1\r\nx\r\n"), "NOT_STORED\r\n");
    one.ask(&format!("append {key} 0 0 2\r\n-a\r\n"), "STORED\r\n");
    two.ask(
        &format!("get {key}\r\n"),
        &format!("VALUE {key} 6 4\r\nv2-a\r\nEND\r\n"),
    );
    let missing = key_of(&c, 0, "absent");
    one.ask(
        &format!("replace {missing} 0 0 1\r\nx\r\n"),
        "NOT_STORED\r\n",
    );
    one.ask(&format!("incr {missing} 1\r\n"), "NOT_FOUND\r\n");
    one.ask(&format!("touch {missing} 10\r\n"), "NOT_FOUND\r\n");
    let counter = key_of(&c, 0, "n");
    one.ask(&format!("set {counter} 0 0 1\r\n9\r\n"), "STORED\r\n");
    two.ask(&format!("incr {counter} 3\r\n"), "12\r\n");
    one.ask(&format!("ma {counter} MD D2 v\r\n"), "VA 2\r\n10\r\n");
    one.ask(&format!("touch {counter} 100\r\n"), "TOUCHED\r\n");
    owner.ask(&format!("mg {counter} t v\r\n"), "VA 2 t100\r\n10\r\n");
    two.ask(
        &format!("gat 0 {counter}\r\n"),
        &format!("VALUE {counter} 0 2\r\n10\r\nEND\r\n"),
    );
    two.ask(&format!("delete {key}\r\n"), "DELETED\r\n");
    one.ask(&format!("get {key}\r\n"), "END\r\n");
    owner.ask(&format!("get {key}\r\n"), "END\r\n");
    one.ask(
        &format!("md {counter} C1\r\n"),
        "SERVER_ERROR md C is not supported through a node that does not own the key\r\n",
    );
}

#[test]
fn multi_key_gets_span_owners_and_flush_all_reaches_every_member() {
    let args = [
        "--memcache-listen",
        "127.0.0.1:0",
        "--origin",
        "none",
        "--threads",
        "2",
    ];
    let c = TestCluster::start(3, &args);
    let keys: Vec<String> = (0..3).map(|o| key_of(&c, o, &format!("m{o}-"))).collect();
    let mut via = Mc::to(c.node(1));
    for (i, k) in keys.iter().enumerate() {
        via.ask(&format!("set {k} {i} 0 1\r\n{i}\r\n"), "STORED\r\n");
    }
    let mut want = String::new();
    for (i, k) in keys.iter().enumerate() {
        want.push_str(&format!("VALUE {k} {i} 1\r\n{i}\r\n"));
    }
    want.push_str("END\r\n");
    let line = format!("get {} nothere {} {}\r\n", keys[0], keys[1], keys[2]);
    Mc::to(c.node(2)).ask(&line, &want);
    via.ask("flush_all\r\n", "OK\r\n");
    for i in 0..3 {
        Mc::to(c.node(i)).ask(&line, "END\r\n");
    }
}
