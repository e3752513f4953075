//! The real client against the real binary: shard-aware by default, it keeps one
//! connection per server core and sends each key on its core's connection, so no
//! request hops between cores (`core_hops` stays put while `shard_handoffs` grows);
//! with `shard_aware(false)` it keeps one connection and requests hop as before.

mod common;

use std::time::Duration;

use common::cluster::TestCluster;
use common::TestServer;
use groupcached_client::{Client, ClusterClient, ConnectOptions, Pipeline, Reply};

const THREADS: usize = 4;
const TIMEOUT: Duration = Duration::from_secs(20);

fn client(s: &TestServer, shard_aware: bool) -> Client {
    Client::builder(s.addr())
        .timeout(TIMEOUT)
        .shard_aware(shard_aware)
        .connect()
        .expect("connect to groupcached")
}

fn keys(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i}")).collect()
}

/// SET, GET, DELETE, get_many and a pipeline over `keys`, every answer checked.
fn workload(c: &mut Client, keys: &[String]) {
    for k in keys {
        c.set("default", k, k.as_bytes(), None).expect("set");
    }
    for k in keys.iter().step_by(7) {
        let v = c.get("default", k).expect("get").expect("a value");
        assert_eq!(v.as_ref(), k.as_bytes());
    }
    let values = c.get_many("default", keys).expect("get_many");
    for (k, v) in keys.iter().zip(&values) {
        assert_eq!(v.as_ref().map(|v| v.as_ref()), Some(k.as_bytes()), "{k}");
    }
    for k in keys.iter().step_by(2) {
        assert!(c.delete("default", k).expect("delete"), "{k} was there");
    }
    let values = c.get_many("default", keys).expect("get_many after deletes");
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v.is_some(), i % 2 == 1, "{}: deleted iff even", keys[i]);
    }
    let mut p = Pipeline::new();
    for k in keys.iter().take(20) {
        p.set("default", k, "again", None).get("default", k);
    }
    for (i, r) in c.execute(&p).expect("execute").into_iter().enumerate() {
        match r.expect("each op") {
            Reply::Stored => assert_eq!(i % 2, 0),
            Reply::Value(Some(v)) => assert_eq!(v.as_ref(), b"again"),
            other => panic!("op {i}: {other:?}"),
        }
    }
    c.ping().expect("ping");
    c.stats().expect("stats");
}

#[test]
fn a_shard_aware_client_never_makes_a_request_hop() {
    let s = TestServer::start(&["--threads", "4", "--origin", "none"]);
    let (hops, handoffs) = (s.stat("core_hops"), s.stat("shard_handoffs"));
    // Several clients: a new connection that happens to land on the core it asks
    // for is not handed off, and with 4 x 3 connections asking, some will not.
    for n in 0..4 {
        let mut c = client(&s, true);
        workload(&mut c, &keys(&format!("c{n}"), 300));
        assert_eq!(c.shard_threads(), Some(THREADS));
        assert_eq!(c.open_connections(), THREADS, "one connection per core");
    }
    assert_eq!(s.stat("core_hops"), hops, "no request hopped between cores");
    assert!(
        s.stat("shard_handoffs") > handoffs,
        "connections were moved"
    );
}

#[test]
fn a_client_with_shard_awareness_off_keeps_one_connection_and_hops() {
    let s = TestServer::start(&["--threads", "4", "--origin", "none"]);
    let (hops, handoffs) = (s.stat("core_hops"), s.stat("shard_handoffs"));
    let mut c = client(&s, false);
    workload(&mut c, &keys("plain", 300));
    assert_eq!(c.shard_threads(), None);
    assert_eq!(c.open_connections(), 1);
    // About three in four keys belong to another core than the connection's.
    assert!(s.stat("core_hops") > hops + 100, "requests hopped");
    assert_eq!(s.stat("shard_handoffs"), handoffs, "nothing asked to move");
}

#[test]
fn a_broken_per_core_connection_fails_its_request_and_is_reopened() {
    let s = TestServer::start(&["--threads", "2", "--origin", "none"]);
    let mut c = client(&s, true);
    let ks = keys("re", 40);
    for k in &ks {
        c.set("default", k, b"v", None).expect("set");
    }
    assert_eq!(c.open_connections(), 2);
    // Break one per-core connection from the client side: its next request fails,
    // the connection is dropped, and the request after that reconnects it.
    let conn = c.connection().expect("a connection");
    let id = conn.next_id();
    conn.send(&groupcached_client::protocol::Request {
        id,
        kind: groupcached_client::protocol::RequestKind::Stats,
    })
    .expect("queue a stray STATS");
    conn.flush().expect("flush it");
    assert!(c.stats().is_err(), "the stray answer does not match");
    assert_eq!(c.open_connections(), 1, "the broken connection was dropped");
    let hops = s.stat("core_hops");
    let values = c.get_many("default", &ks).expect("get_many reconnects");
    assert!(values.iter().all(|v| v.is_some()));
    assert_eq!(c.open_connections(), 2);
    assert_eq!(
        s.stat("core_hops"),
        hops,
        "the new connection was moved too"
    );
}

#[test]
fn a_server_restarted_with_fewer_cores_is_relearnt() {
    let s = TestServer::start(&["--threads", "4", "--origin", "none"]);
    let addr = s.addr().to_string();
    let ks = keys("restart", 100);
    let mut c = client(&s, true);
    for k in &ks {
        c.set("default", k, b"v", None).expect("set");
    }
    assert_eq!(c.shard_threads(), Some(4));
    drop(s);
    let s = TestServer::start_on(&addr, &["--threads", "2", "--origin", "none"]);
    // The old connections are dead: calls fail until each one that is needed was
    // found broken and reopened; a new connection's SHARD to core 2 or 3 is refused
    // by a 2-core node, and the client asks again and re-learns its layout.
    let mut attempts = 0;
    let values = loop {
        attempts += 1;
        match c.get_many("default", &ks) {
            Ok(v) => break v,
            Err(e) if e.breaks_connection() && attempts < 10 => continue,
            Err(e) => panic!("attempt {attempts}: {e}"),
        }
    };
    assert!(
        values.iter().all(Option::is_none),
        "the restarted node is empty"
    );
    assert_eq!(c.shard_threads(), Some(2));
    assert!(c.open_connections() <= 2);
    let hops = s.stat("core_hops");
    for k in &ks {
        c.set("default", k, b"again", None)
            .expect("set after restart");
    }
    assert_eq!(s.stat("core_hops"), hops, "routed by the new layout");
}

#[test]
fn a_cluster_client_routes_to_the_owner_and_its_core() {
    let cluster = TestCluster::start(2, &["--threads", "4", "--origin", "none"]);
    let sum = |name: &str| cluster.sum(name);
    let build = |shard_aware: bool| {
        ClusterClient::builder()
            .options(ConnectOptions {
                timeout: Some(TIMEOUT),
                ..ConnectOptions::default()
            })
            .shard_aware(shard_aware)
            .with_members(cluster.addrs())
            .expect("cluster client")
    };
    let ks = keys("cl", 400);
    let mut aware = build(true);
    for k in &ks {
        aware.set("default", k, k.as_bytes(), None).expect("set");
    }
    // Reads at the owners: no peer traffic, so every hop would be the client's.
    let (hops, handoffs) = (sum("core_hops"), sum("shard_handoffs"));
    for k in ks.iter().step_by(3) {
        let v = aware.get("default", k).expect("get").expect("a value");
        assert_eq!(v.as_ref(), k.as_bytes());
    }
    let values = aware.get_many("default", &ks).expect("get_many");
    assert!(values.iter().all(|v| v.is_some()));
    // More clients, so that some new connection surely lands off its core and must
    // be moved (one that lands on it is not handed off).
    for _ in 0..3 {
        let values = build(true).get_many("default", &ks).expect("get_many");
        assert!(values.iter().all(|v| v.is_some()));
    }
    assert_eq!(sum("core_hops"), hops, "no read hopped between cores");
    assert!(
        sum("shard_handoffs") > handoffs,
        "the per-core connections were moved"
    );

    let mut plain = build(false);
    let hops = sum("core_hops");
    let values = plain.get_many("default", &ks).expect("get_many");
    assert!(values.iter().all(|v| v.is_some()));
    assert!(sum("core_hops") > hops + 100, "plain reads hop");
    assert!(aware.delete("default", &ks[0]).expect("delete"));
}
