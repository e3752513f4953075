//! The client against a fake server: typed calls, pipelining, errors, reconnects.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    error_response, not_found, value_response, FakeServer, Peer, Req, Store, MEMBERS, NODE_ID,
    VNODES,
};
use groupcached_client::protocol::{KeyRef, Opcode, Request, RequestKind, Status};
use groupcached_client::{
    Client, ConnectOptions, Connection, Error, OwnedBody, Pipeline, Reply, MAX_IN_FLIGHT,
    VECTORED_WRITE_MIN,
};

/// Generous: only the timeout tests wait for it, and only by design.
const TEST_TIMEOUT: Duration = Duration::from_secs(5);

fn client(addr: std::net::SocketAddr) -> Client {
    Client::builder(addr)
        .timeout(TEST_TIMEOUT)
        .connect()
        .expect("connect to fake server")
}

#[test]
fn get_set_delete_round_trip() {
    let (tx, rx) = mpsc::channel();
    let server = FakeServer::store(1, Some(tx));
    let mut c = client(server.addr);

    assert_eq!(c.get("g", "k").expect("get"), None);
    let binary_key = [0u8, 0xff, b'\n', 7];
    c.set(
        "g",
        binary_key,
        b"v\x00\xff",
        Some(Duration::from_millis(1500)),
    )
    .expect("set");
    let v = c.get("g", binary_key).expect("get").expect("a value");
    assert_eq!(&v[..], b"v\x00\xff");
    assert_eq!(v.ttl(), Some(Duration::from_millis(1500)));
    assert!(c.delete("g", binary_key).expect("delete"));
    assert!(!c.delete("g", binary_key).expect("delete again"));
    assert_eq!(c.get("g", binary_key).expect("get"), None);

    drop(c);
    server.join();
    let seen: Vec<Req> = rx.iter().collect();
    let ops: Vec<Opcode> = seen.iter().map(|r| r.op).collect();
    use Opcode::*;
    assert_eq!(ops, vec![Get, Set, Get, Delete, Delete, Get]);
    assert_eq!(seen[1].key, binary_key);
    assert_eq!(seen[1].ttl_ms, 1500);
}

#[test]
fn ttl_is_sent_in_milliseconds_with_zero_meaning_the_group_default() {
    let (tx, rx) = mpsc::channel();
    let server = FakeServer::store(1, Some(tx));
    let mut c = client(server.addr);
    c.set("g", "a", b"1", None).expect("set");
    c.set("g", "b", b"1", Some(Duration::from_secs(30)))
        .expect("set");
    c.set("g", "c", b"1", Some(Duration::from_micros(10)))
        .expect("set");
    drop(c);
    server.join();
    let ttls: Vec<u64> = rx.iter().map(|r| r.ttl_ms).collect();
    assert_eq!(ttls, vec![0, 30_000, 1]);
}

#[test]
fn stats_ping_and_hello() {
    let server = FakeServer::store(1, None);
    let mut c = client(server.addr);
    let stats = c.stats().expect("stats");
    assert_eq!(stats.get("server_requests"), Some(42));
    assert_eq!(stats.get("group.default.main.bytes"), Some(1234));
    assert_eq!(stats.len(), common::STATS.len());

    let rtt = c.ping().expect("ping");
    assert!(rtt < TEST_TIMEOUT);

    let h = c.hello().expect("hello");
    assert_eq!(h.node_id, NODE_ID);
    assert_eq!(h.vnodes, VNODES);
    assert_eq!(h.members, MEMBERS);
    assert_eq!(h.ring().fingerprint(), h.ring_fingerprint);
    drop(c);
    server.join();
}

#[test]
fn error_statuses_are_server_errors_and_keep_the_connection() {
    // One connection only: if the client reconnected, its next call would never be
    // answered and would time out.
    let server = FakeServer::store(1, None);
    let mut c = client(server.addr);
    match c.get("nogroup", "k") {
        Err(Error::Server { status, message }) => {
            assert_eq!(status, Status::UnknownGroup);
            assert!(message.contains("nogroup"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    for status in [
        Status::Error,
        Status::TooLarge,
        Status::BadRequest,
        Status::OriginError,
        Status::Timeout,
        Status::Unavailable,
    ] {
        let key = format!("status:{}", status.name());
        match c.get("g", &key) {
            Err(e @ Error::Server { .. }) => {
                assert_eq!(e.status(), Some(status));
                assert!(!e.breaks_connection());
                assert!(e.to_string().contains(status.name()), "{e}");
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    c.set("g", "k", b"still here", None).expect("set");
    assert_eq!(
        c.get("g", "k").expect("get").map(|v| v.into_bytes()),
        Some(b"still here".to_vec())
    );
    drop(c);
    server.join();
}

#[test]
fn get_many_matches_out_of_order_responses_by_id() {
    const N: usize = 10;
    let server = FakeServer::start(|l| {
        let mut peer = Peer::accept(&l);
        let reqs: Vec<Req> = (0..N)
            .map(|_| peer.read_request().expect("a request"))
            .collect();
        // Answer the whole batch backwards, key "k3" as NOT_FOUND.
        for r in reqs.iter().rev() {
            assert_eq!(r.op, Opcode::Get);
            assert_eq!(r.group, b"grp");
            let reply = if r.key == b"k3" {
                not_found(r.id, Opcode::Get)
            } else {
                let mut v = b"v-".to_vec();
                v.extend_from_slice(&r.key);
                value_response(r.id, &v, 0)
            };
            peer.send(&reply);
        }
        assert!(peer.read_request().is_none());
    });
    let mut c = client(server.addr);
    let keys: Vec<String> = (0..N).map(|i| format!("k{i}")).collect();
    let values = c.get_many("grp", &keys).expect("get_many");
    assert_eq!(values.len(), N);
    for (i, v) in values.iter().enumerate() {
        if i == 3 {
            assert!(v.is_none());
        } else {
            let v = v.as_ref().expect("a value");
            assert_eq!(&v[..], format!("v-k{i}").as_bytes());
            assert_eq!(v.ttl(), None);
        }
    }
    drop(c);
    server.join();
}

#[test]
fn get_many_larger_than_the_window_with_swapped_pairs() {
    // More than two windows, odd, answered with each pair of requests swapped: the
    // server holds the reply to every even-numbered request until the next request
    // arrives (or it is the last one), so answers are never in request order.
    const N: usize = 2 * MAX_IN_FLIGHT + 953;
    let server = FakeServer::start(|l| {
        let mut peer = Peer::accept(&l);
        let mut held: Option<Vec<u8>> = None;
        for i in 0..N {
            let r = peer.read_request().expect("a request");
            let mut v = b"value-of-".to_vec();
            v.extend_from_slice(&r.key);
            let reply = value_response(r.id, &v, 0);
            match held.take() {
                Some(first) => {
                    peer.send(&reply);
                    peer.send(&first);
                }
                None if i + 1 == N => peer.send(&reply),
                None => held = Some(reply),
            }
        }
        assert!(peer.read_request().is_none());
    });
    let mut c = client(server.addr);
    let keys: Vec<Vec<u8>> = (0..N).map(|i| format!("key-{i}").into_bytes()).collect();
    let values = c.get_many("g", &keys).expect("get_many");
    assert_eq!(values.len(), N);
    for (k, v) in keys.iter().zip(&values) {
        let v = v.as_ref().expect("a value");
        assert_eq!(v.as_bytes(), [&b"value-of-"[..], k].concat());
    }
    drop(c);
    server.join();
}

#[test]
fn get_many_reports_a_server_error_and_keeps_the_connection() {
    let server = FakeServer::store(1, None);
    let mut c = client(server.addr);
    let keys = ["gen:a", "status:ORIGIN_ERROR", "gen:b", "status:TIMEOUT"];
    match c.get_many("g", &keys) {
        Err(Error::Server { status, .. }) => assert_eq!(status, Status::OriginError),
        other => panic!("{other:?}"),
    }
    // Every response of the batch was read: the next call lines up.
    let v = c.get("g", "gen:c").expect("get").expect("value");
    assert_eq!(&v[..], b"value-of-c");
    assert_eq!(
        c.get_many("g", &[] as &[&str]).expect("empty batch"),
        vec![]
    );
    drop(c);
    server.join();
}

#[test]
fn pipeline_runs_mixed_operations_with_per_operation_errors() {
    let server = FakeServer::store(1, None);
    let mut c = client(server.addr);
    let mut p = Pipeline::new();
    p.set("g", "a", b"1".to_vec(), None)
        .get("g", "a")
        .get("g", "status:UNAVAILABLE")
        .delete("g", "a")
        .get("g", "a");
    assert_eq!(p.len(), 5);
    let replies = c.execute(&p).expect("execute");
    assert_eq!(replies.len(), 5);
    assert!(matches!(replies[0], Ok(Reply::Stored)));
    match &replies[1] {
        Ok(Reply::Value(Some(v))) => assert_eq!(&v[..], b"1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        replies[2].as_ref().err().and_then(Error::status),
        Some(Status::Unavailable)
    );
    assert!(matches!(replies[3], Ok(Reply::Deleted(true))));
    assert!(matches!(replies[4], Ok(Reply::Value(None))));
    drop(c);
    server.join();
}

#[test]
fn invalid_arguments_are_refused_before_anything_is_sent() {
    let (tx, rx) = mpsc::channel();
    let server = FakeServer::store(1, Some(tx));
    let mut c = Client::builder(server.addr)
        .timeout(TEST_TIMEOUT)
        .max_frame(1024)
        .connect()
        .expect("connect");
    let long_key = vec![b'k'; groupcached_client::protocol::MAX_KEY_LEN + 1];
    let long_group = "g".repeat(groupcached_client::protocol::MAX_GROUP_LEN + 1);
    let attempts: Vec<Result<(), Error>> = vec![
        c.get("g", "").map(drop),
        c.get("", "k").map(drop),
        c.get("g", &long_key).map(drop),
        c.delete(&long_group, "k").map(drop),
        c.set("g", "k", &[0u8; 2000], None),
        c.get_many("g", &["ok", ""]).map(drop),
        c.execute(
            Pipeline::new()
                .get("g", "ok")
                .set("g", "k", vec![0u8; 2000], None),
        )
        .map(drop),
    ];
    for (i, a) in attempts.into_iter().enumerate() {
        match a {
            Err(e @ Error::InvalidArgument(_)) => assert!(!e.breaks_connection()),
            other => panic!("attempt {i}: {other:?}"),
        }
    }
    c.ping().expect("ping after refusals");
    drop(c);
    server.join();
    let ops: Vec<Opcode> = rx.iter().map(|r| r.op).collect();
    assert_eq!(ops, vec![Opcode::Ping], "only the ping reached the server");
}

#[test]
fn server_closing_mid_frame_is_an_io_error_then_the_client_reconnects() {
    let server = FakeServer::start(|l| {
        let mut first = Peer::accept(&l);
        let r = first.read_request().expect("a request");
        let reply = value_response(r.id, b"this value is cut short", 0);
        first.send(&reply[..reply.len() / 2]);
        drop(first);
        let mut store = Store::default();
        let mut second = Peer::accept(&l);
        common::serve_store(&mut second, &mut store, None);
    });
    let mut c = client(server.addr);
    match c.get("g", "gen:x") {
        Err(e @ Error::Io(_)) => {
            assert!(e.breaks_connection());
            assert!(e.to_string().contains("middle of a frame"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let v = c.get("g", "gen:x").expect("get after reconnect");
    assert_eq!(v.map(|v| v.into_bytes()), Some(b"value-of-x".to_vec()));
    drop(c);
    server.join();
}

#[test]
fn a_server_that_never_answers_times_out_then_the_client_reconnects() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let server = FakeServer::start(move |l| {
        let mut silent = Peer::accept(&l);
        silent.read_request().expect("a request");
        // Hold the connection open, unanswered, until the test has seen its timeout.
        let _ = release_rx.recv();
        drop(silent);
        let mut store = Store::default();
        let mut second = Peer::accept(&l);
        common::serve_store(&mut second, &mut store, None);
    });
    let timeout = Duration::from_millis(200);
    let mut c = Client::builder(server.addr)
        .timeout(timeout)
        .connect()
        .expect("connect");
    let start = Instant::now();
    let result = c.get("g", "k");
    let waited = start.elapsed();
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    // Generous margins: the bound is the timeout, not a scheduling race.
    assert!(waited >= timeout / 2, "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    release_tx.send(()).expect("release the server");
    c.ping().expect("ping on a new connection");
    drop(c);
    server.join();
}

#[test]
fn garbage_from_the_server_is_a_decode_error_and_a_wrong_id_a_protocol_error() {
    let server = FakeServer::start(|l| {
        let mut p = Peer::accept(&l);
        p.read_request().expect("a request");
        p.send(b"\x00\x00\x00\x08\x63\x01\x01\x00\x00\x00\x00\x01"); // version 0x63
        let mut p = Peer::accept(&l);
        let r = p.read_request().expect("a request");
        p.send(&value_response(r.id + 100, b"x", 0));
        let mut p = Peer::accept(&l);
        let r = p.read_request().expect("a request");
        // A DELETE response to a GET.
        p.send(&common::encode(&groupcached_client::protocol::Response {
            id: r.id,
            opcode: Opcode::Delete as u8,
            status: Status::Ok,
            body: groupcached_client::protocol::ResponseBody::Deleted(true),
        }));
        let mut p = Peer::accept(&l);
        p.read_request().expect("a request");
        // A connection-level error (id 0) before closing.
        p.send(&error_response(0, Opcode::Get, Status::BadVersion, "bye"));
        drop(p);
        let mut store = Store::default();
        let mut p = Peer::accept(&l);
        common::serve_store(&mut p, &mut store, None);
    });
    let mut c = client(server.addr);
    assert!(matches!(c.get("g", "k"), Err(Error::Decode(_))));
    assert!(matches!(c.get("g", "k"), Err(Error::Protocol(_))));
    assert!(matches!(c.get("g", "k"), Err(Error::Protocol(_))));
    match c.get("g", "k") {
        Err(Error::Server { status, message }) => {
            assert_eq!(status, Status::BadVersion);
            assert_eq!(message, "bye");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.get("g", "gen:ok")
            .expect("reconnected")
            .map(|v| v.into_bytes()),
        Some(b"value-of-ok".to_vec())
    );
    drop(c);
    server.join();
}

#[test]
fn connection_refused_is_an_io_error() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    match Client::connect(addr) {
        Err(Error::Io(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn low_level_connection_pipelines_and_writes_large_values_vectored() {
    let big: Vec<u8> = (0..VECTORED_WRITE_MIN * 64)
        .map(|i| (i % 251) as u8)
        .collect();
    let expected = big.clone();
    let server = FakeServer::start(move |l| {
        let mut p = Peer::accept(&l);
        let mut store = Store::default();
        let reqs: Vec<Req> = (0..4).map(|_| p.read_request().expect("request")).collect();
        assert_eq!(reqs[1].value, expected, "large value arrived intact");
        // Answer in reverse order.
        for r in reqs.iter().rev() {
            let reply = common::answer(&mut store, r);
            p.send(&reply);
        }
        assert!(p.read_request().is_none());
    });
    let opts = ConnectOptions {
        timeout: Some(TEST_TIMEOUT),
        ..ConnectOptions::default()
    };
    let mut conn = Connection::connect(server.addr, &opts).expect("connect");
    let kinds = [
        RequestKind::Ping(b"hi"),
        RequestKind::Set {
            key: KeyRef::new(b"g", b"big"),
            ttl_ms: 0,
            value: &big,
        },
        RequestKind::Get(KeyRef::new(b"g", b"gen:q")),
        RequestKind::Stats,
    ];
    let mut ids = Vec::new();
    for kind in kinds {
        let id = conn.next_id();
        conn.send(&Request { id, kind }).expect("send");
        ids.push(id);
    }
    conn.flush().expect("flush");
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(conn.recv().expect("recv"));
    }
    let order: Vec<u32> = got.iter().map(|r| r.id).collect();
    assert_eq!(order, ids.iter().rev().copied().collect::<Vec<_>>());
    assert!(matches!(&got[3].body, OwnedBody::Pong(p) if p == b"hi"));
    assert_eq!(got[2].status, Status::Ok);
    assert_eq!(got[2].op(), Some(Opcode::Set));
    assert!(matches!(&got[1].body, OwnedBody::Value(v) if &v[..] == b"value-of-q"));
    assert!(matches!(&got[0].body, OwnedBody::Stats(s) if s.get("connections") == Some(1)));
    assert!(!conn.is_broken());
    drop(conn);
    server.join();
}

#[test]
fn large_set_through_the_client_arrives_intact() {
    let (tx, rx) = mpsc::channel();
    let server = FakeServer::store(1, Some(tx));
    let mut c = client(server.addr);
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    c.set("g", "big", &big, None).expect("set");
    let v = c.get("g", "big").expect("get").expect("value");
    assert!(v.as_bytes() == &big[..]);
    drop(c);
    server.join();
    let seen: Vec<Req> = rx.iter().collect();
    assert!(seen[0].value == big);
}
