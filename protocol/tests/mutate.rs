//! MUTATE (0x0e), FETCH_ITEM (0x0f) and FLUSH (0x10), the peer operations of the
//! memcached front end: their bytes are exactly the layout docs/protocol.md gives,
//! and each way their frames can be bad gives the documented decode error, fatal or
//! skipped. (garbage.rs covers the errors every opcode shares; this file the ones
//! these three add: an unknown MUTATE mode, and their own fields cut short.)

use groupcached_protocol::{
    decode, DecodeError, Frame, FrameError, KeyRef, Limits, MutateMode, Opcode, Request,
    RequestKind, Response, ResponseBody, Status, KEEP_TTL, MAX_GROUP_LEN, MUTATE_VIVIFY,
};

/// A version-1 frame with the given header fields and body; the length is correct.
fn raw_frame(opcode: u8, flags: u8, status: u8, id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&[1, opcode, flags, status]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Group `g`, key `k`, as a key reference.
const KEY_REF: &[u8] = b"\x01g\x00\x01k";

/// A MUTATE body, laid out by hand from the document's table.
fn mutate_body(mode: u8, flags: u32, ttl: u64, cas: u64, delta: u64, value: &[u8]) -> Vec<u8> {
    let mut body = KEY_REF.to_vec();
    body.push(mode);
    body.extend_from_slice(&flags.to_be_bytes());
    body.extend_from_slice(&ttl.to_be_bytes());
    body.extend_from_slice(&cas.to_be_bytes());
    body.extend_from_slice(&delta.to_be_bytes());
    body.extend_from_slice(value);
    body
}

fn encoded_request(id: u32, kind: RequestKind<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    Request { id, kind }.encode(&mut out);
    out
}

fn decoded(buf: &[u8]) -> Frame<'_> {
    let (frame, used) = decode(buf, &Limits::default()).unwrap().unwrap();
    assert_eq!(used, buf.len());
    frame
}

fn decode_err(buf: &[u8]) -> FrameError {
    decode(buf, &Limits::default()).expect_err("expected a decode error")
}

/// A skippable error: the bad frame is skipped whole and a PING after it decodes.
fn assert_skipped(bad: &[u8], want: DecodeError) {
    let mut stream = bad.to_vec();
    stream.extend(encoded_request(99, RequestKind::Ping(b"after")));
    let err = decode(&stream, &Limits::default()).unwrap_err();
    assert_eq!(err.error, want);
    assert!(!err.error.is_fatal(), "{want:?} must not be fatal");
    assert_eq!(err.skip, Some(bad.len()));
    assert_eq!(decoded(&stream[bad.len()..]).id(), 99);
}

fn assert_fatal(buf: &[u8], want: DecodeError) {
    let err = decode_err(buf);
    assert_eq!(err.error, want);
    assert!(err.error.is_fatal(), "{want:?} must be fatal");
    assert_eq!(err.skip, None);
}

#[test]
fn mutate_request_is_laid_out_as_documented() {
    let kind = RequestKind::Mutate {
        key: KeyRef::new(b"g", b"k"),
        mode: MutateMode::Incr { vivify: true },
        flags: 0x0102_0304,
        ttl_ms: KEEP_TTL,
        cas: 0x1112_1314_1516_1718,
        delta: 5,
        value: b"41",
    };
    let want = raw_frame(
        0x0e,
        0,
        0,
        7,
        &mutate_body(0x46, 0x0102_0304, u64::MAX, 0x1112_1314_1516_1718, 5, b"41"),
    );
    let got = encoded_request(7, kind);
    assert_eq!(got, want);
    assert_eq!(decoded(&got), Frame::Request(Request { id: 7, kind }));
    // encode_head leaves the value for a vectored write, like SET's.
    let mut head = Vec::new();
    let tail = Request { id: 7, kind }.encode_head(&mut head);
    assert_eq!((head.len(), tail), (want.len() - 2, &b"41"[..]));
}

#[test]
fn fetch_item_and_flush_requests_are_laid_out_as_documented() {
    let fetch = encoded_request(8, RequestKind::FetchItem(KeyRef::new(b"g", b"k")));
    assert_eq!(fetch, raw_frame(0x0f, 0, 0, 8, KEY_REF));
    let flush = encoded_request(9, RequestKind::Flush { group: b"thumbs" });
    assert_eq!(flush, raw_frame(0x10, 0, 0, 9, b"\x06thumbs"));
    for buf in [&fetch, &flush] {
        let Frame::Request(r) = decoded(buf) else {
            panic!("not a request")
        };
        assert!(r.kind.opcode().is_peer_only());
    }
    let Frame::Request(r) = decoded(&flush) else {
        panic!()
    };
    assert_eq!(r.kind.key_ref(), None, "FLUSH addresses a group, not a key");
    let Frame::Request(r) = decoded(&fetch) else {
        panic!()
    };
    assert_eq!(r.kind.key_ref(), Some(KeyRef::new(b"g", b"k")));
}

#[test]
fn ok_responses_are_laid_out_as_documented() {
    let mut mutated = Vec::new();
    Response {
        id: 3,
        opcode: Opcode::Mutate as u8,
        status: Status::Ok,
        body: ResponseBody::Mutated {
            flags: 42,
            cas: 7,
            value: b"42",
        },
    }
    .encode(&mut mutated);
    let mut body = 42u32.to_be_bytes().to_vec();
    body.extend_from_slice(&7u64.to_be_bytes());
    body.extend_from_slice(b"42");
    assert_eq!(mutated, raw_frame(0x0e, 1, 0, 3, &body));

    let mut item = Vec::new();
    Response {
        id: 4,
        opcode: Opcode::FetchItem as u8,
        status: Status::Ok,
        body: ResponseBody::Item {
            ttl_ms: 59_000,
            flags: 42,
            cas: 7,
            value: b"meow",
        },
    }
    .encode(&mut item);
    let mut body = 59_000u64.to_be_bytes().to_vec();
    body.extend_from_slice(&42u32.to_be_bytes());
    body.extend_from_slice(&7u64.to_be_bytes());
    body.extend_from_slice(b"meow");
    assert_eq!(item, raw_frame(0x0f, 1, 0, 4, &body));

    // FLUSH OK is empty; NOT_STORED and EXISTS carry a message, whatever the opcode.
    let flush_ok = raw_frame(0x10, 1, 0, 5, b"");
    let Frame::Response(r) = decoded(&flush_ok) else {
        panic!()
    };
    assert_eq!(r.body, ResponseBody::Empty);
    for status in [Status::NotStored, Status::Exists] {
        let buf = raw_frame(0x0e, 1, status as u8, 6, b"why");
        let Frame::Response(r) = decoded(&buf) else {
            panic!()
        };
        assert_eq!((r.status, r.message()), (status, Some(&b"why"[..])));
    }
    assert_eq!(Status::NotStored as u8, 0x0d);
    assert_eq!(Status::Exists as u8, 0x0e);
}

#[test]
fn a_mode_that_does_not_take_a_value_still_decodes_one() {
    // Senders send it empty; a receiver ignores it rather than refusing the frame.
    let buf = raw_frame(0x0e, 0, 0, 1, &mutate_body(8, 0, 0, 0, 0, b"ignored"));
    match decoded(&buf) {
        Frame::Request(Request {
            kind: RequestKind::Mutate { mode, value, .. },
            ..
        }) => {
            assert_eq!(mode, MutateMode::Touch);
            assert!(!mode.takes_value());
            assert_eq!(value, b"ignored");
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Decode errors

#[test]
fn unknown_mutate_mode_is_skipped_and_answered_bad_request() {
    // Past the last mode, VIVIFY on a mode that cannot create, a stray bit.
    for mode in [9u8, 0x0f, MUTATE_VIVIFY, 0x41, 0x48, 0x80, 0x86, 0x16, 0xff] {
        let bad = raw_frame(0x0e, 0, 0, 12, &mutate_body(mode, 0, 0, 0, 0, b"v"));
        let err = decode_err(&bad);
        assert_eq!((err.request_id, err.opcode), (12, 0x0e));
        assert_eq!(err.error.status(), Status::BadRequest);
        assert_eq!(
            err.error.to_string(),
            format!("unknown MUTATE mode 0x{mode:02x}")
        );
        assert_skipped(&bad, DecodeError::UnknownMutateMode(mode));
    }
}

#[test]
fn the_mode_is_checked_as_soon_as_it_is_read() {
    // A bad mode followed by nothing: the mode's error, not the missing flags'.
    let mut body = KEY_REF.to_vec();
    body.push(0x09);
    assert_skipped(
        &raw_frame(0x0e, 0, 0, 1, &body),
        DecodeError::UnknownMutateMode(0x09),
    );
    // ... but the key reference before it is checked first.
    let mut body = b"\x01g\x00\x00".to_vec();
    body.push(0x09);
    assert_skipped(
        &raw_frame(0x0e, 0, 0, 1, &body),
        DecodeError::BadKeyLength(0),
    );
}

#[test]
fn group_and_key_lengths_of_the_new_ops_are_checked() {
    let long_group = vec![b'g'; MAX_GROUP_LEN + 1];
    for group in [&b""[..], &long_group] {
        let mut body = vec![group.len() as u8];
        body.extend_from_slice(group);
        let flush = raw_frame(0x10, 0, 0, 2, &body);
        assert_skipped(&flush, DecodeError::BadGroupLength(group.len()));
        body.extend_from_slice(b"\x00\x01k");
        for op in [0x0eu8, 0x0f] {
            let mut body = body.clone();
            if op == 0x0e {
                body.extend_from_slice(&mutate_body(0, 0, 0, 0, 0, b"")[KEY_REF.len()..]);
            }
            assert_skipped(
                &raw_frame(op, 0, 0, 2, &body),
                DecodeError::BadGroupLength(group.len()),
            );
        }
    }
    for op in [0x0eu8, 0x0f] {
        assert_skipped(
            &raw_frame(op, 0, 0, 2, b"\x01g\x00\x00"),
            DecodeError::BadKeyLength(0),
        );
    }
    // A group of exactly 64 bytes is a valid FLUSH.
    let mut body = vec![MAX_GROUP_LEN as u8];
    body.extend_from_slice(&[b'g'; MAX_GROUP_LEN]);
    decoded(&raw_frame(0x10, 0, 0, 2, &body));
}

#[test]
fn truncated_fields_of_the_new_ops_are_malformed_and_fatal() {
    let full = mutate_body(0, 1, 2, 3, 4, b"");
    let k = KEY_REF.len();
    let requests = [
        (k, "MUTATE mode"),
        (k + 1, "MUTATE flags"),
        (k + 1 + 3, "MUTATE flags"),
        (k + 5, "MUTATE ttl"),
        (k + 13, "MUTATE cas"),
        (k + 21, "MUTATE delta"),
        (k + 28, "MUTATE delta"),
    ];
    for (cut, what) in requests {
        assert_fatal(
            &raw_frame(0x0e, 0, 0, 1, &full[..cut]),
            DecodeError::Malformed(what),
        );
    }
    assert_fatal(
        &raw_frame(0x0f, 0, 0, 1, b"\x01g\x00"),
        DecodeError::Malformed("key length"),
    );
    assert_fatal(
        &raw_frame(0x10, 0, 0, 1, b""),
        DecodeError::Malformed("group length"),
    );
    assert_fatal(
        &raw_frame(0x10, 0, 0, 1, b"\x06thu"),
        DecodeError::Malformed("group is truncated"),
    );
    // OK responses cut inside their fixed fields.
    let responses: [(u8, &[u8], &str); 5] = [
        (0x0e, &[0, 0, 0], "MUTATE flags"),
        (0x0e, &[0, 0, 0, 0, 1, 2], "MUTATE cas"),
        (0x0f, &[0; 7], "value ttl"),
        (0x0f, &[0; 10], "FETCH_ITEM flags"),
        (0x0f, &[0; 19], "FETCH_ITEM cas"),
    ];
    for (op, body, what) in responses {
        assert_fatal(&raw_frame(op, 1, 0, 1, body), DecodeError::Malformed(what));
    }
}

#[test]
fn bodies_without_a_trailing_value_have_no_trailing_bytes() {
    let trailing = DecodeError::Malformed("trailing bytes after the last field");
    // FLUSH request (group only), FETCH_ITEM request (key only), FLUSH OK (empty).
    assert_fatal(&raw_frame(0x10, 0, 0, 1, b"\x01gx"), trailing);
    let mut body = KEY_REF.to_vec();
    body.push(0);
    assert_fatal(&raw_frame(0x0f, 0, 0, 1, &body), trailing);
    assert_fatal(&raw_frame(0x10, 1, 0, 1, b"x"), trailing);
}
