//! Bad input: arbitrary bytes never panic the decoder or the FrameBuffer, and each
//! decode error in the "Errors" section of docs/protocol.md is reported as documented:
//! with its status, fatal or skippable, and when skippable the next frame still decodes.
//!
//! One file (about 600 lines) on purpose: every decode error of the document's
//! "Errors" section is tested here, next to the others, and the arbitrary-bytes
//! properties share the same frame builders; split, the builders would move to a
//! shared module and the errors would be spread over files.

use groupcached_protocol::{
    decode, DecodeError, Frame, FrameBuffer, FrameError, KeyRef, Limits, Request, RequestKind,
    Response, ResponseBody, Status, MAX_GROUP_LEN, MAX_KEY_LEN,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------
// Helpers

fn get(id: u32, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Request {
        id,
        kind: RequestKind::Get(KeyRef::new(b"g", key)),
    }
    .encode(&mut out);
    out
}

/// A version-1 frame with the given header fields and body; the length is correct.
fn raw_frame(opcode: u8, flags: u8, status: u8, id: u32, body: &[u8]) -> Vec<u8> {
    raw_frame_version(1, opcode, flags, status, id, body)
}

fn raw_frame_version(
    version: u8,
    opcode: u8,
    flags: u8,
    status: u8,
    id: u32,
    body: &[u8],
) -> Vec<u8> {
    let mut out = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&[version, opcode, flags, status]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A key-reference body with the given raw group and key lengths and contents.
fn key_ref_body(group: &[u8], key_len: u16, key: &[u8]) -> Vec<u8> {
    let mut out = vec![group.len() as u8];
    out.extend_from_slice(group);
    out.extend_from_slice(&key_len.to_be_bytes());
    out.extend_from_slice(key);
    out
}

fn decode_err(buf: &[u8]) -> FrameError {
    decode(buf, &Limits::default()).expect_err("expected a decode error")
}

/// Asserts a non-fatal error that skips exactly `bad`, and that the frame after it
/// decodes, both with `decode` and through a FrameBuffer fed byte by byte.
fn assert_skipped_then_next_decodes(bad: &[u8], want: DecodeError, limits: Limits) {
    let mut stream = bad.to_vec();
    stream.extend(get(99, b"after"));

    let err = decode(&stream, &limits).unwrap_err();
    assert_eq!(err.error, want);
    assert!(!err.error.is_fatal(), "{want:?} must not be fatal");
    assert_eq!(err.skip, Some(bad.len()));
    let (next, _) = decode(&stream[bad.len()..], &limits).unwrap().unwrap();
    assert_eq!(next.id(), 99);

    let mut fb = FrameBuffer::new(limits, 0);
    let (mut errors, mut ids) = (Vec::new(), Vec::new());
    for b in &stream {
        fb.extend_from_slice(std::slice::from_ref(b));
        loop {
            match fb.next_frame() {
                Ok(Some(f)) => ids.push(f.id()),
                Ok(None) => break,
                Err(e) => errors.push(e.error),
            }
        }
    }
    assert_eq!(errors, vec![want]);
    assert_eq!(ids, vec![99]);
    assert_eq!(fb.buffered(), 0);
}

fn assert_fatal(buf: &[u8], want: DecodeError) -> FrameError {
    let err = decode_err(buf);
    assert_eq!(err.error, want);
    assert!(err.error.is_fatal(), "{want:?} must be fatal");
    assert_eq!(err.skip, None);
    // A FrameBuffer reports the same error, and keeps reporting it.
    let mut fb = FrameBuffer::new(Limits::default(), 0);
    fb.extend_from_slice(buf);
    assert_eq!(fb.next_frame().unwrap_err(), err);
    assert_eq!(fb.next_frame().unwrap_err(), err);
    err
}

/// Drains a FrameBuffer fed with `data` in chunks of the given sizes, stopping at a
/// fatal error. Returns (frames, errors). Checks the invariants that must hold for
/// any input.
fn feed(data: &[u8], chunks: &[usize], limits: Limits) -> (usize, usize) {
    let mut fb = FrameBuffer::new(limits, 0);
    let (mut frames, mut errors) = (0, 0);
    let mut rest = data;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        fb.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match fb.next_frame() {
                Ok(Some(_)) => frames += 1,
                Ok(None) => break,
                Err(e) => {
                    errors += 1;
                    assert_eq!(e.skip.is_none(), e.error.is_fatal());
                    if e.error.is_fatal() {
                        return (frames, errors);
                    }
                }
            }
        }
        assert!(
            fb.capacity() <= limits.max_frame + 4 + 64 * 1024 + data.len(),
            "buffer grew to {}",
            fb.capacity()
        );
    }
    (frames, errors)
}

/// `decode` on arbitrary bytes: no panic, and a success uses no more than it was given.
fn decode_any(data: &[u8], limits: &Limits) {
    match decode(data, limits) {
        Ok(Some((frame, used))) => {
            assert!(used <= data.len() && used >= 12);
            // Whatever decodes must re-encode to a frame that decodes to the same thing.
            let mut again = Vec::new();
            match frame {
                Frame::Request(r) => r.encode(&mut again),
                Frame::Response(r) => r.encode(&mut again),
            }
            let (back, _) = decode(&again, &Limits::default()).unwrap().unwrap();
            assert_eq!(back, frame);
        }
        Ok(None) => {}
        Err(e) => {
            assert_eq!(e.skip.is_none(), e.error.is_fatal());
            if let Some(n) = e.skip {
                assert!(n >= 12);
            }
            let _ = e.to_string();
        }
    }
}

/// A header with version 1 and arbitrary other fields, then arbitrary body bytes:
/// random bytes rarely get past the version check, so this reaches the body decoders.
fn plausible_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        // Every known opcode and status, and one past the last of each.
        0u8..=0x11,
        prop_oneof![Just(0u8), Just(1u8), any::<u8>()],
        0u8..=0x0f,
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(op, flags, status, id, body)| raw_frame(op, flags, status, id, &body))
}

// ---------------------------------------------------------------------------------
// Arbitrary input

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_any(&data, &Limits::default());
        decode_any(&data, &Limits::with_max_frame(64));
    }

    #[test]
    fn decode_never_panics_on_plausible_frames(frames in prop::collection::vec(plausible_frame(), 1..6)) {
        let data: Vec<u8> = frames.concat();
        decode_any(&data, &Limits::default());
        for f in &frames {
            decode_any(f, &Limits::default());
        }
    }

    #[test]
    fn frame_buffer_never_panics_on_arbitrary_bytes(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        chunks in prop::collection::vec(1usize..600, 1..8),
        max_frame in 0usize..4096,
    ) {
        feed(&data, &chunks, Limits::with_max_frame(max_frame));
    }

    #[test]
    fn frame_buffer_never_panics_on_plausible_frames(
        frames in prop::collection::vec(plausible_frame(), 1..10),
        chunks in prop::collection::vec(1usize..100, 1..8),
        max_frame in 0usize..80,
    ) {
        feed(&frames.concat(), &chunks, Limits::with_max_frame(max_frame));
    }
}

/// xorshift64*: a fixed, dependency-free generator so the large test is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Many seeded random inputs: pure noise, and valid frames with bytes flipped,
/// truncated or extended. Counts outcomes to prove every path was reached.
#[test]
fn seeded_random_inputs_never_panic() {
    let mut rng = Rng(0x6772_6f75_7063_6163);
    let mut valid = Vec::new();
    for (i, key) in [&b"k"[..], b"thumbs/cat.jpg", &[0xff; 300]]
        .iter()
        .enumerate()
    {
        valid.push(get(i as u32, key));
        let mut set = Vec::new();
        Request {
            id: 7,
            kind: RequestKind::Set {
                key: KeyRef::new(b"thumbs", key),
                ttl_ms: 1000,
                value: b"value",
            },
        }
        .encode(&mut set);
        valid.push(set);
    }
    let mut resp = Vec::new();
    Response {
        id: 3,
        opcode: 1,
        status: Status::Ok,
        body: ResponseBody::Value {
            ttl_ms: 5,
            value: b"v",
        },
    }
    .encode(&mut resp);
    valid.push(resp);

    let (mut ok, mut incomplete, mut fatal, mut skipped) = (0, 0, 0, 0);
    for round in 0..20_000 {
        let data: Vec<u8> = if round % 2 == 0 {
            let len = rng.below(300);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let mut d = valid[rng.below(valid.len())].clone();
            match rng.below(3) {
                0 => {
                    for _ in 0..=rng.below(3) {
                        let i = rng.below(d.len());
                        d[i] ^= 1 << rng.below(8);
                    }
                }
                1 => d.truncate(rng.below(d.len())),
                _ => d.extend((0..=rng.below(20)).map(|_| rng.next() as u8)),
            }
            d
        };
        match decode(&data, &Limits::with_max_frame(1024)) {
            Ok(Some(_)) => ok += 1,
            Ok(None) => incomplete += 1,
            Err(e) if e.error.is_fatal() => fatal += 1,
            Err(_) => skipped += 1,
        }
        decode_any(&data, &Limits::with_max_frame(1024));
        let chunks = [1 + rng.below(64), 1 + rng.below(64)];
        feed(&data, &chunks, Limits::with_max_frame(1024));
    }
    for (what, n) in [
        ("decoded", ok),
        ("incomplete", incomplete),
        ("fatal", fatal),
        ("skipped", skipped),
    ] {
        assert!(n > 100, "only {n} inputs were {what}");
    }
}

// ---------------------------------------------------------------------------------
// One test per decode error

#[test]
fn length_below_the_header_is_fatal_from_the_first_four_bytes() {
    for len in 0u32..8 {
        let mut buf = len.to_be_bytes().to_vec();
        let err = assert_fatal(&buf, DecodeError::FrameTooShort { len: len as usize });
        assert_eq!((err.request_id, err.opcode), (0, 0));
        assert_eq!(err.error.status(), Status::BadRequest);
        // The same with a whole (but lying) header behind it.
        buf.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 5]);
        assert_fatal(&buf, DecodeError::FrameTooShort { len: len as usize });
    }
    // Three bytes cannot tell yet.
    assert_eq!(decode(&[0, 0, 0], &Limits::default()), Ok(None));
}

#[test]
fn bad_version_is_fatal_and_echoes_id_and_opcode() {
    for version in [0u8, 2, 0xff] {
        let mut buf = get(42, b"k");
        buf[4] = version;
        let err = assert_fatal(&buf, DecodeError::BadVersion(version));
        assert_eq!((err.request_id, err.opcode), (42, 1));
        assert_eq!(err.error.status(), Status::BadVersion);
        // Seen from the header alone, before the body.
        assert_eq!(
            decode_err(&buf[..12]).error,
            DecodeError::BadVersion(version)
        );
    }
}

#[test]
fn unknown_opcode_is_skipped_and_the_next_frame_decodes() {
    // 0x11 is the first opcode past the last one (FLUSH, 0x10) of version 1.
    for op in [0x00u8, 0x11, 0x7f, 0xff] {
        let bad = raw_frame(op, 0, 0, 5, b"whatever the body is");
        let err = decode_err(&bad);
        assert_eq!((err.request_id, err.opcode), (5, op));
        assert_eq!(err.error.status(), Status::UnknownOp);
        assert_skipped_then_next_decodes(&bad, DecodeError::UnknownOpcode(op), Limits::default());
    }
}

#[test]
fn group_length_zero_or_over_64_is_skipped() {
    for group in [&b""[..], &[b'g'; MAX_GROUP_LEN + 1]] {
        let bad = raw_frame(0x01, 0, 0, 6, &key_ref_body(group, 1, b"k"));
        assert_eq!(decode_err(&bad).error.status(), Status::BadRequest);
        assert_skipped_then_next_decodes(
            &bad,
            DecodeError::BadGroupLength(group.len()),
            Limits::default(),
        );
    }
    // 64 itself is fine.
    let ok = raw_frame(
        0x01,
        0,
        0,
        6,
        &key_ref_body(&[b'g'; MAX_GROUP_LEN], 1, b"k"),
    );
    assert!(decode(&ok, &Limits::default()).unwrap().is_some());
}

#[test]
fn key_length_zero_or_over_4096_is_skipped() {
    let long = vec![b'k'; MAX_KEY_LEN + 1];
    for key in [&b""[..], &long[..]] {
        for op in [0x01u8, 0x02, 0x03, 0x07, 0x08] {
            let mut body = key_ref_body(b"g", key.len() as u16, key);
            if op == 0x02 {
                body.extend_from_slice(&0u64.to_be_bytes());
            }
            let bad = raw_frame(op, 0, 0, 7, &body);
            assert_eq!(decode_err(&bad).error.status(), Status::BadRequest);
            assert_skipped_then_next_decodes(
                &bad,
                DecodeError::BadKeyLength(key.len()),
                Limits::default(),
            );
        }
    }
    // The length field is checked before the key bytes are needed.
    let claims_long = raw_frame(0x01, 0, 0, 7, &key_ref_body(b"g", 0xffff, b"short"));
    assert_eq!(
        decode_err(&claims_long).error,
        DecodeError::BadKeyLength(0xffff)
    );
}

#[test]
fn trailing_bytes_are_malformed_and_fatal() {
    let mut buf = get(8, b"k");
    buf.push(0);
    buf[3] += 1; // the length covers the extra byte
    let err = assert_fatal(
        &buf,
        DecodeError::Malformed("trailing bytes after the last field"),
    );
    assert_eq!((err.request_id, err.opcode), (8, 1));
    assert_eq!(err.error.status(), Status::BadRequest);

    // Ops without a body must have none.
    assert_fatal(
        &raw_frame(0x04, 0, 0, 1, b"x"),
        DecodeError::Malformed("trailing bytes after the last field"),
    );
    // Bodies that cannot have trailing bytes in responses, too.
    assert_fatal(
        &raw_frame(0x02, 1, 0, 1, b"x"),
        DecodeError::Malformed("trailing bytes after the last field"),
    );
    assert_fatal(
        &raw_frame(0x01, 1, 1, 1, b"x"),
        DecodeError::Malformed("trailing bytes after the last field"),
    );
}

#[test]
fn truncated_fields_are_malformed_and_fatal() {
    let cases: [(Vec<u8>, &str); 9] = [
        (raw_frame(0x01, 0, 0, 1, b""), "group length"),
        (raw_frame(0x01, 0, 0, 1, b"\x06thu"), "group is truncated"),
        (raw_frame(0x01, 0, 0, 1, b"\x01g\x00"), "key length"),
        (
            raw_frame(0x01, 0, 0, 1, b"\x01g\x00\x05ke"),
            "key is truncated",
        ),
        (
            raw_frame(0x02, 0, 0, 1, b"\x01g\x00\x01k\x00\x00"),
            "SET ttl",
        ),
        (raw_frame(0x06, 0, 0, 1, b"\x05ab"), "HELLO node id"),
        (
            raw_frame(0x06, 0, 0, 1, b"\x00\x01\x02"),
            "HELLO ring fingerprint",
        ),
        (raw_frame(0x01, 1, 0, 1, b"\x00\x00\x00"), "value ttl"),
        (raw_frame(0x03, 1, 0, 1, b""), "DELETE result"),
    ];
    for (buf, what) in cases {
        assert_fatal(&buf, DecodeError::Malformed(what));
    }
}

#[test]
fn inconsistent_response_bodies_are_malformed() {
    assert_fatal(
        &raw_frame(0x03, 1, 0, 1, &[2]),
        DecodeError::Malformed("DELETE result is not 0 or 1"),
    );
    // STATS: count says 2, one entry present.
    let mut stats = 2u32.to_be_bytes().to_vec();
    stats.extend_from_slice(b"\x04gets");
    stats.extend_from_slice(&1u64.to_be_bytes());
    assert_fatal(
        &raw_frame(0x04, 1, 0, 1, &stats),
        DecodeError::Malformed("STATS list does not match its count"),
    );
    // STATS: shorter than the count field.
    assert_fatal(
        &raw_frame(0x04, 1, 0, 1, &[0, 0]),
        DecodeError::Malformed("STATS list does not match its count"),
    );
    // HELLO: member list says 2 members, holds 1.
    let mut hello = vec![1, b'n'];
    hello.extend_from_slice(&7u64.to_be_bytes());
    hello.extend_from_slice(&512u32.to_be_bytes());
    hello.extend_from_slice(&[0, 2, 0, 3, b'a', b':', b'1']);
    assert_fatal(
        &raw_frame(0x06, 1, 0, 1, &hello),
        DecodeError::Malformed("HELLO member list is truncated"),
    );
    // HELLO: vnodes missing.
    assert_fatal(
        &raw_frame(0x06, 1, 0, 1, &hello[..10]),
        DecodeError::Malformed("HELLO vnodes"),
    );
}

#[test]
fn unknown_status_is_skipped() {
    // 0x0f is the first status past the last one (EXISTS, 0x0e) of version 1.
    for status in [0x0fu8, 0xff] {
        let bad = raw_frame(0x01, 1, status, 3, b"body");
        assert_eq!(decode_err(&bad).error.status(), Status::BadRequest);
        assert_skipped_then_next_decodes(
            &bad,
            DecodeError::UnknownStatus(status),
            Limits::default(),
        );
    }
    // An OK response to an opcode this side does not know cannot be laid out either.
    let bad = raw_frame(0x7f, 1, 0, 3, b"");
    assert_skipped_then_next_decodes(&bad, DecodeError::UnknownOpcode(0x7f), Limits::default());
    // ... but an error or NOT_FOUND response to it can.
    let ok = raw_frame(0x7f, 1, Status::UnknownOp as u8, 3, b"no such op");
    assert!(decode(&ok, &Limits::default()).unwrap().is_some());
}

#[test]
fn frame_over_the_limit_is_refused_from_its_header_and_skipped() {
    let limits = Limits::with_max_frame(64);
    let mut bad = Vec::new();
    Request {
        id: 11,
        kind: RequestKind::Set {
            key: KeyRef::new(b"g", b"k"),
            ttl_ms: 0,
            value: &[0xab; 1000],
        },
    }
    .encode(&mut bad);
    let want = DecodeError::FrameTooLarge {
        len: bad.len() - 4,
        max: 64,
    };
    // Refused with only the 12 header bytes present.
    let err = decode(&bad[..12], &limits).unwrap_err();
    assert_eq!(err.error, want);
    assert_eq!((err.request_id, err.opcode), (11, 2));
    assert_eq!(err.skip, Some(bad.len()));
    assert_eq!(err.error.status(), Status::TooLarge);
    assert_skipped_then_next_decodes(&bad, want, limits);
}

/// Fed the way a socket loop feeds it (read into the offered space, then drain frames),
/// a FrameBuffer skips a 4 MiB oversized frame without ever holding much of it.
#[test]
fn oversized_frame_is_skipped_without_buffering_it() {
    let limits = Limits::with_max_frame(1024);
    let value = vec![0x5a; 4 << 20];
    let mut stream = Vec::new();
    Request {
        id: 1,
        kind: RequestKind::Set {
            key: KeyRef::new(b"g", b"k"),
            ttl_ms: 0,
            value: &value,
        },
    }
    .encode(&mut stream);
    stream.extend(get(2, b"after"));

    let mut fb = FrameBuffer::new(limits, 8192);
    let (mut errors, mut ids, mut max_cap) = (Vec::new(), Vec::new(), 0);
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let space = fb.read_space();
        let n = space.len().min(rest.len());
        space[..n].copy_from_slice(&rest[..n]);
        fb.commit(n);
        rest = &rest[n..];
        max_cap = max_cap.max(fb.capacity());
        loop {
            match fb.next_frame() {
                Ok(Some(f)) => ids.push(f.id()),
                Ok(None) => break,
                Err(e) => errors.push(e.error),
            }
        }
    }
    assert_eq!(errors.len(), 1);
    assert!(matches!(
        errors[0],
        DecodeError::FrameTooLarge { max: 1024, .. }
    ));
    assert_eq!(ids, vec![2]);
    assert!(max_cap <= 64 * 1024, "buffer grew to {max_cap} bytes");
}

#[test]
fn a_truncated_frame_is_incomplete_not_an_error() {
    let buf = get(1, b"key");
    for cut in 0..buf.len() {
        assert_eq!(decode(&buf[..cut], &Limits::default()), Ok(None));
    }
    let mut fb = FrameBuffer::new(Limits::default(), 0);
    fb.extend_from_slice(&buf[..buf.len() - 1]);
    assert_eq!(fb.next_frame(), Ok(None));
    fb.extend_from_slice(&buf[buf.len() - 1..]);
    assert_eq!(fb.next_frame().unwrap().unwrap().id(), 1);
}

#[test]
fn statuses_of_decode_errors_match_the_document() {
    use DecodeError::*;
    let table = [
        (FrameTooShort { len: 0 }, Status::BadRequest, true),
        (BadVersion(2), Status::BadVersion, true),
        (Malformed("x"), Status::BadRequest, true),
        (FrameTooLarge { len: 2, max: 1 }, Status::TooLarge, false),
        (UnknownOpcode(9), Status::UnknownOp, false),
        (BadGroupLength(0), Status::BadRequest, false),
        (BadKeyLength(0), Status::BadRequest, false),
        (UnknownStatus(11), Status::BadRequest, false),
        (UnknownMutateMode(9), Status::BadRequest, false),
    ];
    for (err, status, fatal) in table {
        assert_eq!(err.status(), status, "{err:?}");
        assert_eq!(err.is_fatal(), fatal, "{err:?}");
        assert!(!err.to_string().is_empty());
    }
}
