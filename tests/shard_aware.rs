//! Shard-aware connections: SHARD moves a connection to the core that holds its keys'
//! shard, so none of its requests hops between cores. Real binary, raw frames.

mod common;

use common::{Raw, TestServer};
use groupcached_client::protocol::{shard_of, KeyRef, Request, RequestKind, Status, SHARD_QUERY};
use groupcached_client::OwnedBody;

const THREADS: usize = 4;

fn shard(raw: &mut Raw, id: u32, core: u16) -> groupcached_client::OwnedResponse {
    raw.send(&Request {
        id,
        kind: RequestKind::Shard { core },
    });
    raw.recv()
}

fn keys_of_core(core: usize, n: usize) -> Vec<String> {
    (0..100_000)
        .map(|i| format!("k{i}"))
        .filter(|k| shard_of(k.as_bytes(), THREADS) == core)
        .take(n)
        .collect()
}

fn get(id: u32, key: &str) -> Vec<u8> {
    common::encode(&Request {
        id,
        kind: RequestKind::Get(KeyRef::new(b"default", key.as_bytes())),
    })
}

#[test]
fn a_connection_moved_to_its_keys_core_never_hops() {
    let s = TestServer::start(&["--threads", "4", "--origin", "synthetic:size=8"]);
    let mut open = Vec::new();
    for core in 0..THREADS {
        let mut raw = s.raw();
        let q = shard(&mut raw, 1, SHARD_QUERY);
        assert_eq!(q.status, Status::Ok);
        let OwnedBody::Shard { threads, core: now } = q.body else {
            panic!("{q:?}")
        };
        assert_eq!(threads as usize, THREADS);
        assert!((now as usize) < THREADS);

        // The SHARD and the GETs behind it in one write: the GETs are decoded by the
        // core the connection moves to, in order.
        let hops_before = s.stat("core_hops");
        let keys = keys_of_core(core, 50);
        let mut batch = common::encode(&Request {
            id: 2,
            kind: RequestKind::Shard { core: core as u16 },
        });
        for (i, k) in keys.iter().enumerate() {
            batch.extend(get(100 + i as u32, k));
        }
        raw.send_bytes(&batch);
        let moved = raw.recv();
        assert_eq!(moved.id, 2);
        assert_eq!(
            moved.body,
            OwnedBody::Shard {
                threads: THREADS as u16,
                core: core as u16
            }
        );
        let mut ids: Vec<u32> = (0..keys.len()).map(|_| raw.recv().id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (100..100 + keys.len() as u32).collect::<Vec<_>>());
        assert_eq!(
            s.stat("core_hops"),
            hops_before,
            "core {core}: no request hopped"
        );

        // It stays usable, on that core: a query answers with it.
        let again = shard(&mut raw, 3, SHARD_QUERY);
        assert_eq!(
            again.body,
            OwnedBody::Shard {
                threads: THREADS as u16,
                core: core as u16
            }
        );
        open.push(raw);
    }
    assert!(s.stat("shard_handoffs") >= 1);
    // The four raw connections and the STATS one are all still open.
    assert_eq!(s.stat("curr_connections"), 5);
}

#[test]
fn shard_refuses_a_core_out_of_range_and_a_busy_connection_and_keeps_it() {
    let s = TestServer::start(&[
        "--threads",
        "2",
        "--origin",
        "synthetic:size=8,delay_ms=300",
    ]);
    let mut raw = s.raw();
    let r = shard(&mut raw, 1, 2);
    assert_eq!(r.status, Status::BadRequest);
    assert!(
        matches!(&r.body, OwnedBody::Message(m) if m.contains("runs 2 cores")),
        "{r:?}"
    );
    // A slow GET in flight, then SHARD: refused, since its answer is on its way here.
    let q = shard(&mut raw, 2, SHARD_QUERY);
    let OwnedBody::Shard { core: here, .. } = q.body else {
        panic!("{q:?}")
    };
    let other = 1 - here;
    let mut batch = get(3, "slow");
    batch.extend(common::encode(&Request {
        id: 4,
        kind: RequestKind::Shard { core: other },
    }));
    raw.send_bytes(&batch);
    let first = raw.recv();
    assert_eq!(first.id, 4, "the SHARD is answered before the slow GET");
    assert_eq!(first.status, Status::BadRequest);
    assert!(
        matches!(&first.body, OwnedBody::Message(m) if m.contains("only request in flight")),
        "{first:?}"
    );
    let slow = raw.recv();
    assert_eq!((slow.id, slow.status), (3, Status::Ok));
    // Quiet now: the move is allowed.
    let moved = shard(&mut raw, 5, other);
    assert_eq!(moved.status, Status::Ok);
    assert_eq!(s.stat("shard_handoffs"), 1);
}

#[test]
fn a_moved_connection_serves_what_was_written_before_without_hops() {
    let s = TestServer::start(&["--threads", "3", "--origin", "none"]);
    let mut raw = s.raw();
    // A SET from wherever the connection landed, then the move to the key's core.
    let set = common::encode(&Request {
        id: 1,
        kind: RequestKind::Set {
            key: KeyRef::new(b"default", b"moved"),
            ttl_ms: 0,
            value: b"value",
        },
    });
    raw.send_bytes(&set);
    assert_eq!(raw.recv().status, Status::Ok);
    let target = shard_of(b"moved", 3) as u16;
    let r = shard(&mut raw, 2, target);
    assert_eq!(r.status, Status::Ok);
    let hops = s.stat("core_hops");
    raw.send_bytes(&get(3, "moved"));
    let v = raw.recv();
    assert!(
        matches!(&v.body, OwnedBody::Value(val) if val.as_bytes() == b"value"),
        "{v:?}"
    );
    assert_eq!(s.stat("core_hops"), hops);
}
