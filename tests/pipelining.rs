//! Pipelining on one connection, with the client's low-level `Connection`: answers
//! leave out of order (a hit overtakes a miss waiting for its origin) and every
//! response carries the id of its request.

mod common;

use std::collections::HashMap;

use common::{Gate, HttpOrigin, TempDir, TestServer};
use groupcached_client::protocol::{shard_of, KeyRef, Opcode, Request, RequestKind, Status};
use groupcached_client::{ConnectOptions, Connection, OwnedBody, OwnedResponse};

fn fast_value(i: usize) -> Vec<u8> {
    format!("fast value number {i}").into_bytes()
}

fn value_of(r: &OwnedResponse) -> &[u8] {
    match &r.body {
        OwnedBody::Value(v) => v.as_bytes(),
        other => panic!("not a value: {other:?} in {r:?}"),
    }
}

/// Also the bound on how long answers wait for requests that went to the other
/// core (`Conn::hops`): there is a slow miss of each core's, so whichever core the
/// connection lands on, one of its requests hopped and is not answered until the
/// gate opens, and the answers it already has must leave without it.
#[test]
fn cached_gets_overtake_a_slow_miss_on_one_connection() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |path| {
        g.wait();
        (200, format!("slow {path}").into_bytes())
    });
    let dir = TempDir::new("pipelining");
    let cfg = dir.write(
        "groupcached.toml",
        format!(
            "threads = 2\nload_timeout = \"60s\"\n\
             [[group]]\nname = \"slow\"\norigin = \"{}\"\n\
             [[group]]\nname = \"fast\"\norigin = \"none\"\n",
            origin.spec("/{key}")
        )
        .as_bytes(),
    );
    let s = TestServer::start(&["--config", &cfg.display().to_string()]);
    let mut setter = s.client();
    for i in 0..50 {
        setter
            .set("fast", format!("f{i}"), &fast_value(i), None)
            .unwrap();
    }

    let opts = ConnectOptions {
        timeout: Some(common::DEADLINE),
        ..ConnectOptions::default()
    };
    let mut conn = Connection::connect(s.addr(), &opts).unwrap();
    // A cold key of each of the server's two cores.
    let cold: Vec<String> = (0..2)
        .map(|core| {
            (0..)
                .map(|i| format!("cold{i}"))
                .find(|k| shard_of(k.as_bytes(), 2) == core)
                .unwrap()
        })
        .collect();
    let mut slow_ids = HashMap::new();
    for key in &cold {
        let id = conn.next_id();
        slow_ids.insert(id, key.clone());
        conn.send(&Request {
            id,
            kind: RequestKind::Get(KeyRef::new(b"slow", key.as_bytes())),
        })
        .unwrap();
    }
    let mut fast_ids = HashMap::new();
    let keys: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let id = conn.next_id();
        fast_ids.insert(id, i);
        conn.send(&Request {
            id,
            kind: RequestKind::Get(KeyRef::new(b"fast", key.as_bytes())),
        })
        .unwrap();
    }
    conn.flush().unwrap();

    // The origin cannot answer until the gate opens, so in-order processing would
    // never deliver these 50: they must all come first.
    let mut seen = HashMap::new();
    for n in 0..50 {
        let r = conn.recv().unwrap();
        assert!(
            !slow_ids.contains_key(&r.id),
            "a slow miss came back as response {n}"
        );
        let i = *fast_ids
            .get(&r.id)
            .unwrap_or_else(|| panic!("unknown id {}", r.id));
        assert_eq!((r.status, r.op()), (Status::Ok, Some(Opcode::Get)), "{r:?}");
        assert_eq!(value_of(&r), &fast_value(i)[..], "id {} (key f{i})", r.id);
        assert!(seen.insert(r.id, n).is_none(), "id {} answered twice", r.id);
    }
    assert_eq!(seen.len(), 50);
    common::wait_until("both slow loads to reach the origin", || {
        origin.requests() == 2
    });
    assert_eq!(s.stat("group.slow.loads_deduped"), 2);
    gate.open();
    for _ in 0..2 {
        let r = conn.recv().unwrap();
        assert_eq!(r.status, Status::Ok, "{r:?}");
        let key = slow_ids.remove(&r.id).expect("a slow miss's id, once");
        assert_eq!(value_of(&r), format!("slow /{key}").as_bytes());
    }
}

#[test]
fn a_deep_pipeline_of_mixed_ops_answers_every_id_once() {
    let s = TestServer::start(&["--threads", "2", "--origin", "none"]);
    let opts = ConnectOptions {
        timeout: Some(common::DEADLINE),
        ..ConnectOptions::default()
    };
    let mut conn = Connection::connect(s.addr(), &opts).unwrap();
    const N: usize = 2000;
    let key = |i: usize| format!("key-{i}");
    // Mostly small values (inline in the store; a hop's hit travels back encoded),
    // some out of line (copied when stored, or kept as sent: a hop's hit travels
    // back by reference). With two cores about half of each kind hops.
    let val = |i: usize| match i % 97 {
        0 => vec![b'L'; 3000 + i],
        1 => vec![b'H'; 200 * 1024 + i],
        _ => format!("v{i}-").repeat(1 + i % 50).into_bytes(),
    };

    // Phase 1: N SETs in flight at once.
    let mut expect = HashMap::new();
    let keys: Vec<String> = (0..N).map(key).collect();
    let vals: Vec<Vec<u8>> = (0..N).map(val).collect();
    for i in 0..N {
        let id = conn.next_id();
        expect.insert(id, i);
        conn.send(&Request {
            id,
            kind: RequestKind::Set {
                key: KeyRef::new(b"default", keys[i].as_bytes()),
                ttl_ms: 0,
                value: &vals[i],
            },
        })
        .unwrap();
    }
    conn.flush().unwrap();
    for _ in 0..N {
        let r = conn.recv().unwrap();
        assert!(expect.remove(&r.id).is_some(), "unexpected id {}", r.id);
        assert_eq!((r.status, r.op()), (Status::Ok, Some(Opcode::Set)), "{r:?}");
    }

    // Phase 2: GETs, DELETEs of other keys, PINGs, misses and STATS, interleaved.
    #[derive(Debug)]
    enum Want {
        Value(usize),
        Deleted,
        Missing,
        Pong(Vec<u8>),
        Stats,
    }
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| i.to_be_bytes().to_vec()).collect();
    let absent: Vec<String> = (0..N).map(|i| format!("absent-{i}")).collect();
    let mut want = HashMap::new();
    for i in 0..N {
        let id = conn.next_id();
        let (kind, w) = match i % 5 {
            0 | 1 => (
                RequestKind::Get(KeyRef::new(b"default", keys[i].as_bytes())),
                Want::Value(i),
            ),
            2 => (
                RequestKind::Delete(KeyRef::new(b"default", keys[i].as_bytes())),
                Want::Deleted,
            ),
            3 => (
                RequestKind::Ping(&payloads[i]),
                Want::Pong(payloads[i].clone()),
            ),
            _ if i % 10 == 4 => (RequestKind::Stats, Want::Stats),
            _ => (
                RequestKind::Get(KeyRef::new(b"default", absent[i].as_bytes())),
                Want::Missing,
            ),
        };
        want.insert(id, w);
        conn.send(&Request { id, kind }).unwrap();
    }
    conn.flush().unwrap();
    for _ in 0..N {
        let r = conn.recv().unwrap();
        let w = want
            .remove(&r.id)
            .unwrap_or_else(|| panic!("unexpected or repeated id {}", r.id));
        match (&w, &r.status, &r.body) {
            (Want::Value(i), Status::Ok, OwnedBody::Value(v)) => {
                assert_eq!(v.as_bytes(), &val(*i)[..])
            }
            (Want::Deleted, Status::Ok, OwnedBody::Deleted(true)) => {}
            (Want::Missing, Status::NotFound, _) => {}
            (Want::Pong(p), Status::Ok, OwnedBody::Pong(got)) => assert_eq!(got, p),
            (Want::Stats, Status::Ok, OwnedBody::Stats(st)) => assert!(st.get("threads").is_some()),
            _ => panic!("wanted {w:?}, got {r:?}"),
        }
    }
    assert!(want.is_empty());
    let st = s.stats();
    assert_eq!(st.get("group.default.main.items"), Some((N - N / 5) as u64));
}

#[test]
fn a_half_closed_client_still_gets_every_answer_then_a_close() {
    let gate = Gate::new();
    let g = gate.clone();
    let origin = HttpOrigin::start(move |_| {
        g.wait();
        (200, b"late".to_vec())
    });
    let spec = origin.spec("/{key}");
    let s = TestServer::start(&["--origin", &spec, "--threads", "2", "--load-timeout", "60s"]);
    let mut raw = s.raw();
    let mut bytes = Vec::new();
    for (id, key) in [(1u32, &b"slow"[..]), (2, b"other")] {
        Request {
            id,
            kind: RequestKind::Get(KeyRef::new(b"default", key)),
        }
        .encode(&mut bytes);
    }
    Request {
        id: 3,
        kind: RequestKind::Ping(b"p"),
    }
    .encode(&mut bytes);
    raw.send_bytes(&bytes);
    // Like `printf ... | nc`: done sending, still listening.
    raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let r = raw.recv();
    assert_eq!(
        (r.id, r.status),
        (3, Status::Ok),
        "the PING needs no origin: {r:?}"
    );
    common::wait_until("both loads to reach the origin", || origin.requests() == 2);
    gate.open();
    let mut ids: Vec<u32> = (0..2).map(|_| raw.recv().id).collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2]);
    raw.expect_closed();
}
