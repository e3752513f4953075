//! FrameBuffer's tests: frames out equal frames in, however the bytes are cut, and
//! memory follows the bytes received, never what a header declares.

use super::*;
use crate::frame::{KeyRef, Request, RequestKind};
use crate::DecodeError;

fn get(id: u32, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Request {
        id,
        kind: RequestKind::Get(KeyRef::new(b"g", key)),
    }
    .encode(&mut out);
    out
}

#[test]
fn yields_frames_fed_one_byte_at_a_time() {
    let mut bytes = get(1, b"alpha");
    bytes.extend(get(2, b"beta"));
    let mut fb = FrameBuffer::new(Limits::default(), 0);
    let mut ids = Vec::new();
    for b in bytes {
        fb.extend_from_slice(&[b]);
        while let Some(f) = fb.next_frame().unwrap() {
            ids.push(f.id());
        }
    }
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(fb.buffered(), 0);
}

#[test]
fn oversized_frame_is_skipped_without_being_stored() {
    let limits = Limits::with_max_frame(100);
    let mut fb = FrameBuffer::new(limits, 0);
    let mut big = Vec::new();
    Request {
        id: 7,
        kind: RequestKind::Set {
            key: KeyRef::new(b"g", b"k"),
            ttl_ms: 0,
            value: &[0xaa; 10_000],
        },
    }
    .encode(&mut big);
    big.extend(get(8, b"after"));
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    for chunk in big.chunks(1000) {
        fb.extend_from_slice(chunk);
        assert!(
            fb.capacity() < 64 * 1024,
            "buffer grew to {}",
            fb.capacity()
        );
        loop {
            match fb.next_frame() {
                Ok(Some(f)) => ids.push(f.id()),
                Ok(None) => break,
                Err(e) => errors.push(e),
            }
        }
    }
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].request_id, 7);
    assert!(matches!(
        errors[0].error,
        DecodeError::FrameTooLarge { max: 100, .. }
    ));
    assert_eq!(ids, vec![8]);
}

#[test]
fn large_frame_within_limit_grows_then_shrinks() {
    let mut fb = FrameBuffer::new(Limits::default(), 4096);
    let mut bytes = Vec::new();
    let value = vec![7u8; 1 << 20];
    Request {
        id: 1,
        kind: RequestKind::Set {
            key: KeyRef::new(b"g", b"k"),
            ttl_ms: 5,
            value: &value,
        },
    }
    .encode(&mut bytes);
    fb.extend_from_slice(&bytes);
    match fb.next_frame().unwrap() {
        Some(Frame::Request(Request {
            kind: RequestKind::Set { value: v, .. },
            ..
        })) => assert_eq!(v, &value[..]),
        other => panic!("unexpected {other:?}"),
    }
    fb.read_space();
    assert!(fb.capacity() <= 4096 * 4);
}

#[test]
fn a_header_declaring_a_huge_frame_commits_no_memory() {
    let mut fb = FrameBuffer::new(Limits::default(), 16 * 1024);
    // A SET header that declares the largest allowed frame, and nothing more.
    let len = (Limits::default().max_frame as u32).to_be_bytes();
    let mut head = len.to_vec();
    head.extend_from_slice(&[1, 2, 0, 0, 0, 0, 0, 9]);
    fb.extend_from_slice(&head);
    assert_eq!(fb.next_frame().unwrap().map(|f| f.id()), None);
    fb.read_space();
    assert_eq!(fb.capacity(), 16 * 1024);
    assert!(fb.in_frame());
    assert_eq!(fb.pending_header().map(|h| h.request_id), Some(9));
    // Trickling bytes does not grow it either, until it is full.
    for _ in 0..1000 {
        fb.extend_from_slice(&[0]);
    }
    assert_eq!(fb.capacity(), 16 * 1024);
}

#[test]
fn growth_follows_the_bytes_received() {
    let limits = Limits::default();
    let mut fb = FrameBuffer::new(limits, 16 * 1024);
    let value = vec![3u8; 12 << 20];
    let mut bytes = Vec::new();
    Request {
        id: 4,
        kind: RequestKind::Set {
            key: KeyRef::new(b"g", b"k"),
            ttl_ms: 0,
            value: &value,
        },
    }
    .encode(&mut bytes);
    let mut fed = 0;
    let mut grows = 0;
    let mut last = 0;
    for chunk in bytes.chunks(64 * 1024) {
        let space = fb.read_space();
        let n = space.len().min(chunk.len());
        space[..n].copy_from_slice(&chunk[..n]);
        fb.commit(n);
        fb.extend_from_slice(&chunk[n..]);
        fed += chunk.len();
        let bound = (4 * fed + 2 * MIN_READ).max(16 * 1024);
        assert!(fb.capacity() <= bound, "{} > {bound}", fb.capacity());
        assert!(fb.capacity() <= bytes.len() + 2 * MIN_READ);
        if fb.capacity() != last {
            grows += 1;
            last = fb.capacity();
        }
        if fed < bytes.len() {
            assert!(fb.next_frame().unwrap().is_none());
        }
    }
    assert!(grows < 20, "grew {grows} times");
    assert_eq!(fb.next_frame().unwrap().map(|f| f.id()), Some(4));
    assert!(!fb.in_frame());
    fb.trim();
    assert_eq!(fb.capacity(), 0);
}

#[test]
fn needs_growth_predicts_read_space() {
    let mut fb = FrameBuffer::new(Limits::default(), 8192);
    assert!(!fb.needs_growth(), "the first allocation is the base size");
    let mut head = (1_000_000u32).to_be_bytes().to_vec();
    head.extend_from_slice(&[1, 2, 0, 0, 0, 0, 0, 1]);
    fb.extend_from_slice(&head);
    while !fb.needs_growth() {
        let before = fb.capacity();
        let space = fb.read_space();
        let n = space.len();
        fb.commit(n);
        assert_eq!(fb.capacity(), before, "grew although needs_growth said no");
    }
    let before = fb.capacity();
    fb.read_space();
    assert!(fb.capacity() > before);
}

/// A frame the property test generates: (id, kind, payload length).
fn frame_bytes(id: u32, kind: u8, len: usize) -> Vec<u8> {
    let payload = vec![kind; len.max(1)];
    let mut out = Vec::new();
    let kind = match kind % 3 {
        0 => RequestKind::Get(KeyRef::new(b"g", &payload[..len.clamp(1, 4096)])),
        1 => RequestKind::Ping(&payload),
        _ => RequestKind::Set {
            key: KeyRef::new(b"g", b"k"),
            ttl_ms: 0,
            value: &payload,
        },
    };
    Request { id, kind }.encode(&mut out);
    out
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Bytes in, frames out: whatever the frame sizes and however the stream is
    /// cut, every frame comes out once, in order, and the buffer never holds more
    /// than its bound for the bytes it holds.
    #[test]
    fn frames_out_equal_frames_in_and_memory_follows_bytes(
        frames in proptest::collection::vec(
            (0u8..3, proptest::prop_oneof![0usize..64, 0usize..5000, 0usize..300_000]),
            1..24,
        ),
        cuts in proptest::collection::vec(1usize..70_000, 1..16),
        max_frame in proptest::prop_oneof![
            proptest::strategy::Just(DEFAULT_MAX_FRAME_FOR_TEST),
            100_000usize..200_000
        ],
    ) {
        let limits = Limits::with_max_frame(max_frame);
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (i, (kind, len)) in frames.iter().enumerate() {
            let f = frame_bytes(i as u32, *kind, *len);
            // Oversized frames come out as TOO_LARGE errors with their id.
            want.push((i as u32, f.len() - 4 <= max_frame));
            stream.extend(f);
        }
        let initial = 16 * 1024;
        let mut fb = FrameBuffer::new(limits, initial);
        let mut got = Vec::new();
        let mut pos = 0;
        let mut cut = 0;
        while pos < stream.len() {
            let held = fb.buffered();
            let space = fb.read_space();
            let cap_bound = (4 * held + 2 * MIN_READ).max(initial);
            let n = space.len().min(cuts[cut % cuts.len()]).min(stream.len() - pos);
            cut += 1;
            space[..n].copy_from_slice(&stream[pos..pos + n]);
            fb.commit(n);
            pos += n;
            proptest::prop_assert!(fb.capacity() <= cap_bound,
                "capacity {} > {} holding {}", fb.capacity(), cap_bound, held);
            proptest::prop_assert!(fb.capacity() <= max_frame + 4 + 2 * MIN_READ);
            loop {
                match fb.next_frame() {
                    Ok(Some(f)) => got.push((f.id(), true)),
                    Ok(None) => break,
                    Err(e) => {
                        proptest::prop_assert!(e.skip.is_some(), "fatal error {e}");
                        got.push((e.request_id, false));
                    }
                }
            }
        }
        proptest::prop_assert_eq!(got, want);
        proptest::prop_assert!(!fb.in_frame());
    }
}

const DEFAULT_MAX_FRAME_FOR_TEST: usize = crate::limits::DEFAULT_MAX_FRAME;

#[test]
fn peek_frames_sees_the_whole_frames_ahead_without_taking_them() {
    let mut bytes = get(1, b"alpha");
    bytes.extend(get(2, b"beta"));
    let third = get(3, b"gamma");
    bytes.extend(&third[..third.len() - 1]); // incomplete
    let mut fb = FrameBuffer::new(Limits::default(), 0);
    fb.extend_from_slice(&bytes);
    let mut seen = Vec::new();
    fb.peek_frames(|f| {
        seen.push(f.id());
        true
    });
    assert_eq!(seen, vec![1, 2]);
    // Nothing was taken: next_frame yields the same frames.
    assert_eq!(fb.next_frame().unwrap().map(|f| f.id()), Some(1));
    seen.clear();
    fb.peek_frames(|f| {
        seen.push(f.id());
        true
    });
    assert_eq!(seen, vec![2]);
    fb.extend_from_slice(&third[third.len() - 1..]);
    seen.clear();
    fb.peek_frames(|f| {
        seen.push(f.id());
        true
    });
    assert_eq!(seen, vec![2, 3]);
    // A bad frame ends the look-ahead; next_frame reports it in turn.
    let mut bad = get(4, b"delta");
    bad[4] = 0x7f; // unsupported version
    fb.extend_from_slice(&bad);
    fb.extend_from_slice(&get(5, b"epsilon"));
    seen.clear();
    fb.peek_frames(|f| {
        seen.push(f.id());
        true
    });
    assert_eq!(seen, vec![2, 3]);
    // `f` stops it when it says so.
    seen.clear();
    fb.peek_frames(|f| {
        seen.push(f.id());
        false
    });
    assert_eq!(seen, vec![2]);
}
