//! A shard-aware client against servers that do not take SHARD: one that predates it
//! (UNKNOWN_OP) and one that refuses it (BAD_REQUEST). Both must get one plain
//! connection that serves every call, not an error. And a client with
//! `shard_aware(false)` never sends SHARD at all.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use common::{error_response, serve_store, FakeServer, Peer, Req, Store};
use groupcached_client::protocol::{Opcode, Status, SHARD_QUERY};
use groupcached_client::{Client, Pipeline, Reply};

const TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests [`exercise`] sends: 64 SETs, 64 GETs in `get_many`, DELETE, GET, three
/// in the pipeline, STATS, PING.
const CALLS: usize = 64 + 64 + 1 + 1 + 3 + 1 + 1;

/// Every kind of call, checked, on `c`.
fn exercise(c: &mut Client) {
    let keys: Vec<String> = (0..64).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        c.set("g", k, k.as_bytes(), None).expect("set");
    }
    let values = c.get_many("g", &keys).expect("get_many");
    for (k, v) in keys.iter().zip(values) {
        assert_eq!(v.expect("a value").as_ref(), k.as_bytes());
    }
    assert!(c.delete("g", "key-0").expect("delete"));
    assert_eq!(c.get("g", "key-0").expect("get"), None);
    let mut p = Pipeline::new();
    p.set("g", "p", "v", None).get("g", "p").delete("g", "p");
    let replies: Vec<Reply> = c
        .execute(&p)
        .expect("execute")
        .into_iter()
        .map(|r| r.expect("each op"))
        .collect();
    assert_eq!(replies[0], Reply::Stored);
    assert!(matches!(&replies[1], Reply::Value(Some(v)) if v.as_ref() == b"v"));
    assert_eq!(replies[2], Reply::Deleted(true));
    c.stats().expect("stats");
    c.ping().expect("ping");
    assert_eq!(c.shard_threads(), None, "plain: no per-core routing");
    assert_eq!(c.open_connections(), 1);
}

/// Serves one connection from a store (SHARD handled as `peer` is set up), then
/// checks that the client opened no other connection.
fn serve_one(l: TcpListener, mut peer: Peer, seen: mpsc::Sender<Req>) -> usize {
    let mut store = Store::default();
    serve_store(&mut peer, &mut store, Some(&seen));
    l.set_nonblocking(true).expect("nonblocking listener");
    match l.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the client opened a second connection: {other:?}"),
    }
    peer.shards_refused
}

#[test]
fn a_server_without_shard_gets_one_plain_connection() {
    let (tx, rx) = mpsc::channel();
    let (refused_tx, refused_rx) = mpsc::channel();
    let server = FakeServer::start(move |l| {
        // The peer answers SHARD with UNKNOWN_OP by itself, as an older server does.
        let peer = Peer::accept(&l);
        refused_tx.send(serve_one(l, peer, tx)).expect("report");
    });
    let mut c = Client::builder(server.addr)
        .timeout(TEST_TIMEOUT)
        .connect()
        .expect("connect");
    exercise(&mut c);
    drop(c);
    server.join();
    assert_eq!(
        refused_rx.recv().expect("count"),
        1,
        "asked once, then plain"
    );
    let ops: Vec<Opcode> = rx.iter().map(|r| r.op).collect();
    assert!(!ops.contains(&Opcode::Shard));
    assert_eq!(ops.len(), CALLS);
}

#[test]
fn a_server_that_refuses_shard_with_bad_request_gets_one_plain_connection() {
    let (tx, rx) = mpsc::channel();
    let server = FakeServer::start(move |l| {
        let mut peer = Peer::accept(&l);
        peer.pass_shard();
        let first = peer.read_request().expect("a first request");
        assert_eq!(first.op, Opcode::Shard);
        assert_eq!(first.value, SHARD_QUERY.to_be_bytes(), "asks before moving");
        peer.send(&error_response(
            first.id,
            Opcode::Shard,
            Status::BadRequest,
            "SHARD is not for this connection",
        ));
        assert_eq!(serve_one(l, peer, tx), 0);
    });
    let mut c = Client::builder(server.addr)
        .timeout(TEST_TIMEOUT)
        .connect()
        .expect("connect");
    exercise(&mut c);
    drop(c);
    server.join();
    assert!(rx.iter().all(|r| r.op != Opcode::Shard), "asked only once");
}

#[test]
fn shard_aware_false_never_sends_shard() {
    let (tx, rx) = mpsc::channel();
    let server = FakeServer::start(move |l| {
        let mut peer = Peer::accept(&l);
        // A SHARD would reach the store, be answered UNKNOWN_OP and be recorded.
        peer.pass_shard();
        assert_eq!(serve_one(l, peer, tx), 0);
    });
    let mut c = Client::builder(server.addr)
        .timeout(TEST_TIMEOUT)
        .shard_aware(false)
        .connect()
        .expect("connect");
    exercise(&mut c);
    drop(c);
    server.join();
    let seen: Vec<Req> = rx.iter().collect();
    assert_eq!(seen.len(), CALLS);
    assert!(seen.iter().all(|r| r.op != Opcode::Shard), "{seen:?}");
}
