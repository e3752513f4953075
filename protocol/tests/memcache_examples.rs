//! The examples of MUTATE, FETCH_ITEM and FLUSH in docs/protocol.md (the memcached
//! front end's peer operations) say what their text says: vectors.rs checks that
//! every example decodes and re-encodes to its bytes; this checks their fields, and
//! that they tell one consistent story (the answers match their requests, FETCH_ITEM
//! shows the CAS the SET answered, the keys belong to the node that answers).

use groupcached_protocol::{
    decode, Frame, Limits, MutateMode, Request, RequestKind, ResponseBody, Ring, Status, KEEP_TTL,
};

mod doc;
use doc::{block_name, fenced, frame_bytes, Block};

const DOC: &str = include_str!("../../docs/protocol.md");

/// The bytes of the example named `name`.
fn example(all: &[Block<'_>], name: &str) -> Vec<u8> {
    let block = all
        .iter()
        .find(|b| b.info == "hex-frame" && block_name(b) == name)
        .unwrap_or_else(|| panic!("docs/protocol.md has no frame {name:?}"));
    frame_bytes(block)
}

fn decoded(bytes: &[u8]) -> Frame<'_> {
    decode(bytes, &Limits::default()).unwrap().unwrap().0
}

/// The memcached front end's examples show what their text says: each MUTATE request
/// its mode and fields, each answer the request it answers, and the CAS and flags of
/// FETCH_ITEM those the SET gave the item. Their keys are owned by the node that
/// answers them, `10.0.0.2:7000` of the first ring-vectors set.
#[test]
fn memcache_examples_show_their_modes_and_answers() {
    let all = fenced(DOC);
    let mutate = |name: &str| -> (u32, MutateMode, u32, u64, u64, u64, Vec<u8>, Vec<u8>) {
        match decoded(&example(&all, name)) {
            Frame::Request(Request {
                id,
                kind:
                    RequestKind::Mutate {
                        key,
                        mode,
                        flags,
                        ttl_ms,
                        cas,
                        delta,
                        value,
                    },
            }) => {
                assert_eq!(key.group, b"thumbs", "{name}");
                let (k, v) = (key.key.to_vec(), value.to_vec());
                (id, mode, flags, ttl_ms, cas, delta, k, v)
            }
            other => panic!("{name}: {other:?}"),
        }
    };
    // Every example's bytes, so that decoded responses can borrow from them.
    let frames: Vec<(&str, Vec<u8>)> = all
        .iter()
        .filter(|b| b.info == "hex-frame")
        .map(|b| (block_name(b), frame_bytes(b)))
        .collect();
    let response = |name: &str| -> (u32, Status, ResponseBody<'_>) {
        let (_, bytes) = frames
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("docs/protocol.md has no frame {name:?}"));
        match decoded(bytes) {
            Frame::Response(r) => (r.id, r.status, r.body),
            other => panic!("{name}: {other:?}"),
        }
    };

    let (set_id, mode, flags, ttl, _, _, key, value) = mutate("MUTATE request");
    assert_eq!((mode, flags, ttl), (MutateMode::Set, 42, 60_000));
    assert_eq!(
        (key.as_slice(), value.as_slice()),
        (&b"cat.jpg"[..], &b"meow"[..])
    );
    let (add_id, mode, _, _, _, _, key, _) = mutate("MUTATE request, ADD");
    assert_eq!((mode, key.as_slice()), (MutateMode::Add, &b"cat.jpg"[..]));
    let (cas_id, mode, _, _, cas, _, key, _) = mutate("MUTATE request, CAS");
    assert_eq!((mode, key.as_slice()), (MutateMode::Cas, &b"cat.jpg"[..]));
    let (incr_id, mode, _, ttl, _, delta, counter, initial) = mutate("MUTATE request, INCR");
    assert_eq!(mode, MutateMode::Incr { vivify: true });
    assert_eq!((ttl, delta, initial.as_slice()), (KEEP_TTL, 1, &b"41"[..]));

    let (id, status, body) = response("MUTATE OK response");
    assert_eq!((id, status), (set_id, Status::Ok));
    let ResponseBody::Mutated {
        flags: 42,
        cas: set_cas,
        value: b"",
    } = body
    else {
        panic!("{body:?}")
    };
    assert_ne!(set_cas, 0, "a CAS is never 0");
    assert_ne!(set_cas, cas, "the CAS request must not match the SET's CAS");
    let (id, status, body) = response("MUTATE OK response, INCR");
    assert_eq!((id, status), (incr_id, Status::Ok));
    assert!(
        matches!(body, ResponseBody::Mutated { value: b"42", .. }),
        "{body:?}"
    );
    for (name, id, status) in [
        ("MUTATE NOT_STORED response", add_id, Status::NotStored),
        ("MUTATE EXISTS response", cas_id, Status::Exists),
    ] {
        let (got_id, got, body) = response(name);
        assert_eq!((got_id, got), (id, status), "{name}");
        assert!(
            matches!(body, ResponseBody::Message(m) if !m.is_empty()),
            "{name}"
        );
    }

    let fetch_id = match decoded(&example(&all, "FETCH_ITEM request")) {
        Frame::Request(Request {
            id,
            kind: RequestKind::FetchItem(k),
        }) => {
            assert_eq!((k.group, k.key), (&b"thumbs"[..], &b"cat.jpg"[..]));
            id
        }
        other => panic!("{other:?}"),
    };
    let (id, status, body) = response("FETCH_ITEM OK response");
    assert_eq!((id, status), (fetch_id, Status::Ok));
    let ResponseBody::Item {
        ttl_ms,
        flags: 42,
        cas,
        value: b"meow",
    } = body
    else {
        panic!("{body:?}")
    };
    assert_eq!(cas, set_cas, "FETCH_ITEM shows the CAS the SET answered");
    assert!((1..=60_000).contains(&ttl_ms));

    let flush_id = match decoded(&example(&all, "FLUSH request")) {
        Frame::Request(Request {
            id,
            kind: RequestKind::Flush { group },
        }) => {
            assert_eq!(group, b"thumbs");
            id
        }
        other => panic!("{other:?}"),
    };
    let (id, status, body) = response("FLUSH OK response");
    assert_eq!(
        (id, status, body),
        (flush_id, Status::Ok, ResponseBody::Empty)
    );

    // The keys belong to the node that answers them, in the ring its HELLO OK shows
    // (vectors.rs checks that this is the first ring-vectors set's).
    let (_, _, hello) = response("HELLO OK response");
    let ResponseBody::Hello(info) = hello else {
        panic!("{hello:?}")
    };
    let members: Vec<String> = info
        .members
        .iter()
        .map(|m| String::from_utf8(m.to_vec()).unwrap())
        .collect();
    let ring = Ring::new(&members, info.vnodes);
    let node = std::str::from_utf8(info.node_id).unwrap();
    for key in [&b"cat.jpg"[..], &counter] {
        assert_eq!(ring.owner(key), Some(node));
    }
}
