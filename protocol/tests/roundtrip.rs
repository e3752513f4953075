//! Property tests: any frame the encoder can write, the decoder reads back unchanged,
//! whole or split at arbitrary points and fed through a `FrameBuffer`.

use groupcached_protocol::{
    decode, Frame, FrameBuffer, HelloInfo, KeyRef, Limits, MemberList, MutateMode, Opcode, Request,
    RequestKind, Response, ResponseBody, StatsList, Status, KEEP_TTL, MAX_GROUP_LEN, MAX_KEY_LEN,
    MAX_NODE_ID_LEN, NONCE_LEN, PROOF_LEN,
};
use proptest::prelude::*;

/// An owned request, from which a borrowed [`Request`] is made.
#[derive(Debug, Clone)]
enum OwnedKind {
    Get(Vec<u8>, Vec<u8>),
    Set(Vec<u8>, Vec<u8>, u64, Vec<u8>),
    Delete(Vec<u8>, Vec<u8>),
    Stats,
    Ping(Vec<u8>),
    Hello(Vec<u8>, u64),
    Fetch(Vec<u8>, Vec<u8>),
    Invalidate(Vec<u8>, Vec<u8>),
    Store(Vec<u8>, Vec<u8>, u64, Vec<u8>),
    Purge(Vec<u8>, Vec<u8>),
    Challenge(Vec<u8>),
    Auth(Vec<u8>),
    Shard(u16),
    Mutate(OwnedMutate),
    FetchItem(Vec<u8>, Vec<u8>),
    Flush(Vec<u8>),
}

/// The fields of a MUTATE request, owned.
#[derive(Debug, Clone)]
struct OwnedMutate {
    group: Vec<u8>,
    key: Vec<u8>,
    mode: MutateMode,
    flags: u32,
    ttl_ms: u64,
    cas: u64,
    delta: u64,
    value: Vec<u8>,
}

#[derive(Debug, Clone)]
struct OwnedRequest {
    id: u32,
    kind: OwnedKind,
}

impl OwnedRequest {
    fn view(&self) -> Request<'_> {
        let kind = match &self.kind {
            OwnedKind::Get(g, key) => RequestKind::Get(KeyRef::new(g, key)),
            OwnedKind::Set(g, key, ttl_ms, value) => RequestKind::Set {
                key: KeyRef::new(g, key),
                ttl_ms: *ttl_ms,
                value,
            },
            OwnedKind::Delete(g, key) => RequestKind::Delete(KeyRef::new(g, key)),
            OwnedKind::Stats => RequestKind::Stats,
            OwnedKind::Ping(p) => RequestKind::Ping(p),
            OwnedKind::Hello(node_id, fp) => RequestKind::Hello {
                node_id,
                ring_fingerprint: *fp,
            },
            OwnedKind::Fetch(g, key) => RequestKind::Fetch(KeyRef::new(g, key)),
            OwnedKind::Invalidate(g, key) => RequestKind::Invalidate(KeyRef::new(g, key)),
            OwnedKind::Store(g, key, ttl_ms, value) => RequestKind::Store {
                key: KeyRef::new(g, key),
                ttl_ms: *ttl_ms,
                value,
            },
            OwnedKind::Purge(g, key) => RequestKind::Purge(KeyRef::new(g, key)),
            OwnedKind::Challenge(nonce) => RequestKind::Challenge { nonce },
            OwnedKind::Auth(proof) => RequestKind::Auth { proof },
            OwnedKind::Shard(core) => RequestKind::Shard { core: *core },
            OwnedKind::Mutate(m) => RequestKind::Mutate {
                key: KeyRef::new(&m.group, &m.key),
                mode: m.mode,
                flags: m.flags,
                ttl_ms: m.ttl_ms,
                cas: m.cas,
                delta: m.delta,
                value: &m.value,
            },
            OwnedKind::FetchItem(g, key) => RequestKind::FetchItem(KeyRef::new(g, key)),
            OwnedKind::Flush(g) => RequestKind::Flush { group: g },
        };
        Request { id: self.id, kind }
    }
}

/// An owned response body; list bodies hold their wire bytes.
#[derive(Debug, Clone)]
enum OwnedBody {
    Empty,
    Value(u64, Vec<u8>),
    Deleted(bool),
    Stats(Vec<u8>),
    Pong(Vec<u8>),
    Hello(Vec<u8>, u64, u32, Vec<u8>),
    Nonce(Vec<u8>),
    Proof(Vec<u8>),
    Shard(u16, u16),
    Mutated(u32, u64, Vec<u8>),
    Item(u64, u32, u64, Vec<u8>),
    Message(Vec<u8>),
}

#[derive(Debug, Clone)]
struct OwnedResponse {
    id: u32,
    opcode: u8,
    status: Status,
    body: OwnedBody,
}

impl OwnedResponse {
    fn view(&self) -> Response<'_> {
        let body = match &self.body {
            OwnedBody::Empty => ResponseBody::Empty,
            OwnedBody::Value(ttl_ms, value) => ResponseBody::Value {
                ttl_ms: *ttl_ms,
                value,
            },
            OwnedBody::Deleted(b) => ResponseBody::Deleted(*b),
            OwnedBody::Stats(raw) => ResponseBody::Stats(StatsList::parse(raw).unwrap()),
            OwnedBody::Pong(p) => ResponseBody::Pong(p),
            OwnedBody::Hello(node_id, fp, vnodes, members) => ResponseBody::Hello(HelloInfo {
                node_id,
                ring_fingerprint: *fp,
                vnodes: *vnodes,
                members: MemberList::parse_prefix(members).unwrap().0,
            }),
            OwnedBody::Nonce(n) => ResponseBody::Nonce(n),
            OwnedBody::Proof(p) => ResponseBody::Proof(p),
            OwnedBody::Shard(threads, core) => ResponseBody::Shard {
                threads: *threads,
                core: *core,
            },
            OwnedBody::Mutated(flags, cas, value) => ResponseBody::Mutated {
                flags: *flags,
                cas: *cas,
                value,
            },
            OwnedBody::Item(ttl_ms, flags, cas, value) => ResponseBody::Item {
                ttl_ms: *ttl_ms,
                flags: *flags,
                cas: *cas,
                value,
            },
            OwnedBody::Message(m) => ResponseBody::Message(m),
        };
        Response {
            id: self.id,
            opcode: self.opcode,
            status: self.status,
            body,
        }
    }
}

#[derive(Debug, Clone)]
enum OwnedFrame {
    Request(OwnedRequest),
    Response(OwnedResponse),
}

impl OwnedFrame {
    fn view(&self) -> Frame<'_> {
        match self {
            OwnedFrame::Request(r) => Frame::Request(r.view()),
            OwnedFrame::Response(r) => Frame::Response(r.view()),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            OwnedFrame::Request(r) => r.view().encode(out),
            OwnedFrame::Response(r) => r.view().encode(out),
        }
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn fixed(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), len..=len)
}

fn group() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..=MAX_GROUP_LEN)
}

/// Mostly short keys, sometimes up to the limit.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..=32),
        1 => prop::collection::vec(any::<u8>(), 1..=MAX_KEY_LEN),
        1 => prop::collection::vec(any::<u8>(), MAX_KEY_LEN..=MAX_KEY_LEN),
    ]
}

/// Values and payloads: often empty or small, sometimes a few KiB.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        4 => bytes(64),
        1 => bytes(8192),
    ]
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]
}

/// Every MUTATE mode, VIVIFY on and off for INCR and DECR.
fn mutate_mode() -> impl Strategy<Value = MutateMode> {
    let mut modes = MutateMode::ALL.to_vec();
    modes.push(MutateMode::Incr { vivify: true });
    modes.push(MutateMode::Decr { vivify: true });
    prop::sample::select(modes)
}

fn mutate() -> impl Strategy<Value = OwnedMutate> {
    (
        (group(), key(), mutate_mode()),
        (any::<u32>(), prop_oneof![ttl(), Just(KEEP_TTL)]),
        (any::<u64>(), any::<u64>(), value()),
    )
        .prop_map(
            |((group, key, mode), (flags, ttl_ms), (cas, delta, value))| OwnedMutate {
                group,
                key,
                mode,
                flags,
                ttl_ms,
                cas,
                delta,
                value,
            },
        )
}

fn request() -> impl Strategy<Value = OwnedRequest> {
    let kind = prop_oneof![
        (group(), key()).prop_map(|(g, k)| OwnedKind::Get(g, k)),
        (group(), key(), ttl(), value()).prop_map(|(g, k, t, v)| OwnedKind::Set(g, k, t, v)),
        (group(), key()).prop_map(|(g, k)| OwnedKind::Delete(g, k)),
        Just(OwnedKind::Stats),
        value().prop_map(OwnedKind::Ping),
        (bytes(MAX_NODE_ID_LEN), any::<u64>()).prop_map(|(n, f)| OwnedKind::Hello(n, f)),
        (group(), key()).prop_map(|(g, k)| OwnedKind::Fetch(g, k)),
        (group(), key()).prop_map(|(g, k)| OwnedKind::Invalidate(g, k)),
        (group(), key(), ttl(), value()).prop_map(|(g, k, t, v)| OwnedKind::Store(g, k, t, v)),
        (group(), key()).prop_map(|(g, k)| OwnedKind::Purge(g, k)),
        fixed(NONCE_LEN).prop_map(OwnedKind::Challenge),
        fixed(PROOF_LEN).prop_map(OwnedKind::Auth),
        any::<u16>().prop_map(OwnedKind::Shard),
        mutate().prop_map(OwnedKind::Mutate),
        (group(), key()).prop_map(|(g, k)| OwnedKind::FetchItem(g, k)),
        group().prop_map(OwnedKind::Flush),
    ];
    (any::<u32>(), kind).prop_map(|(id, kind)| OwnedRequest { id, kind })
}

fn stats_list() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(("[a-z_.]{0,40}", any::<u64>()), 0..20)
        .prop_map(|entries| StatsList::build(entries.iter().map(|(n, v)| (n.as_str(), *v))))
}

fn member_list() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<String>(), 0..12).prop_map(|m| MemberList::build(&m))
}

/// An OK body that matches `op`.
fn ok_body(op: Opcode) -> BoxedStrategy<OwnedBody> {
    match op {
        Opcode::Get | Opcode::Fetch => (ttl(), value())
            .prop_map(|(t, v)| OwnedBody::Value(t, v))
            .boxed(),
        Opcode::Set | Opcode::Store | Opcode::Invalidate | Opcode::Flush => {
            Just(OwnedBody::Empty).boxed()
        }
        Opcode::Mutate => (any::<u32>(), any::<u64>(), value())
            .prop_map(|(f, c, v)| OwnedBody::Mutated(f, c, v))
            .boxed(),
        Opcode::FetchItem => (ttl(), any::<u32>(), any::<u64>(), value())
            .prop_map(|(t, f, c, v)| OwnedBody::Item(t, f, c, v))
            .boxed(),
        Opcode::Delete | Opcode::Purge => any::<bool>().prop_map(OwnedBody::Deleted).boxed(),
        Opcode::Stats => stats_list().prop_map(OwnedBody::Stats).boxed(),
        Opcode::Ping => value().prop_map(OwnedBody::Pong).boxed(),
        Opcode::Hello => (
            bytes(MAX_NODE_ID_LEN),
            any::<u64>(),
            any::<u32>(),
            member_list(),
        )
            .prop_map(|(n, f, v, m)| OwnedBody::Hello(n, f, v, m))
            .boxed(),
        Opcode::Challenge => fixed(NONCE_LEN).prop_map(OwnedBody::Nonce).boxed(),
        Opcode::Auth => fixed(PROOF_LEN).prop_map(OwnedBody::Proof).boxed(),
        Opcode::Shard => (any::<u16>(), any::<u16>())
            .prop_map(|(t, c)| OwnedBody::Shard(t, c))
            .boxed(),
    }
}

/// Every status; OK bodies match the opcode, NOT_FOUND is empty, the rest carry a
/// message and may echo any opcode byte (UNKNOWN_OP echoes unknown ones).
fn response() -> impl Strategy<Value = OwnedResponse> {
    let ok = prop::sample::select(Opcode::ALL.to_vec())
        .prop_flat_map(|op| (Just(op as u8), Just(Status::Ok), ok_body(op)));
    let not_found = any::<u8>().prop_map(|op| (op, Status::NotFound, OwnedBody::Empty));
    let errors: Vec<Status> = Status::ALL
        .into_iter()
        .filter(|s| s.carries_message())
        .collect();
    let message = (any::<u8>(), prop::sample::select(errors), bytes(200))
        .prop_map(|(op, st, m)| (op, st, OwnedBody::Message(m)));
    (
        any::<u32>(),
        prop_oneof![3 => ok, 1 => not_found, 2 => message],
    )
        .prop_map(|(id, (opcode, status, body))| OwnedResponse {
            id,
            opcode,
            status,
            body,
        })
}

fn frame() -> impl Strategy<Value = OwnedFrame> {
    prop_oneof![
        request().prop_map(OwnedFrame::Request),
        response().prop_map(OwnedFrame::Response),
    ]
}

fn encoded(frame: &OwnedFrame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out);
    out
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn request_encode_decode_is_identity(req in request()) {
        let mut buf = Vec::new();
        req.view().encode(&mut buf);
        let (frame, used) = decode(&buf, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(used, buf.len());
        prop_assert_eq!(frame, Frame::Request(req.view()));
    }

    #[test]
    fn response_encode_decode_is_identity(resp in response()) {
        let mut buf = Vec::new();
        resp.view().encode(&mut buf);
        let (frame, used) = decode(&buf, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(used, buf.len());
        prop_assert_eq!(frame, Frame::Response(resp.view()));
    }

    /// Encoding appends: what was in the buffer before stays, and a frame decodes
    /// from the middle of a buffer as well as from the start.
    #[test]
    fn encode_appends_after_existing_bytes(f in frame(), prefix in bytes(32)) {
        let mut buf = prefix.clone();
        f.encode(&mut buf);
        prop_assert_eq!(&buf[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&buf[prefix.len()..], &encoded(&f)[..]);
    }

    #[test]
    fn encode_head_plus_tail_is_encode(f in frame(), prefix in bytes(16)) {
        let whole = encoded(&f);
        let mut head = prefix.clone();
        let tail = match &f {
            OwnedFrame::Request(r) => r.view().encode_head(&mut head),
            OwnedFrame::Response(r) => r.view().encode_head(&mut head),
        };
        prop_assert_eq!(&head[..prefix.len()], &prefix[..]);
        let mut joined = head[prefix.len()..].to_vec();
        joined.extend_from_slice(tail);
        prop_assert_eq!(joined, whole);
    }

    /// Every strict prefix of a frame is "need more bytes", never an error.
    #[test]
    fn every_prefix_is_incomplete(f in frame()) {
        let buf = encoded(&f);
        // Checking every cut of an 8 KiB frame is slow in debug; sample the long ones.
        let step = (buf.len() / 256).max(1);
        for cut in (0..buf.len()).step_by(step).chain(buf.len().saturating_sub(16)..buf.len()) {
            prop_assert_eq!(decode(&buf[..cut], &Limits::default()), Ok(None));
        }
    }

    /// Several frames back to back, split at arbitrary points, come out of a
    /// FrameBuffer whole and in order, whether fed by `extend_from_slice` or by
    /// `read_space` + `commit` (as a socket read would).
    #[test]
    fn split_stream_through_frame_buffer_yields_exactly_the_frames(
        frames in prop::collection::vec(frame(), 1..8),
        cuts in prop::collection::vec(0usize..4000, 0..24),
        initial in 0usize..20_000,
        use_read_space in any::<bool>(),
    ) {
        let mut stream = Vec::new();
        for f in &frames {
            f.encode(&mut stream);
        }
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();

        let mut fb = FrameBuffer::new(Limits::default(), initial);
        let mut got = 0;
        for w in cuts.windows(2) {
            let mut chunk = &stream[w[0]..w[1]];
            if use_read_space {
                while !chunk.is_empty() {
                    let space = fb.read_space();
                    prop_assert!(!space.is_empty());
                    let n = space.len().min(chunk.len());
                    space[..n].copy_from_slice(&chunk[..n]);
                    fb.commit(n);
                    chunk = &chunk[n..];
                }
            } else {
                fb.extend_from_slice(chunk);
            }
            while let Some(f) = fb.next_frame().unwrap() {
                prop_assert!(got < frames.len(), "more frames than were sent");
                prop_assert_eq!(f, frames[got].view());
                got += 1;
            }
        }
        prop_assert_eq!(got, frames.len());
        prop_assert_eq!(fb.buffered(), 0);
    }

    #[test]
    fn stats_list_keeps_names_values_and_order(
        entries in prop::collection::vec(("[a-z_.]{0,300}", any::<u64>()), 0..20),
    ) {
        let raw = StatsList::build(entries.iter().map(|(n, v)| (n.as_str(), *v)));
        let list = StatsList::parse(&raw).unwrap();
        prop_assert_eq!(list.len(), entries.len());
        let got: Vec<(Vec<u8>, u64)> = list.iter().map(|(n, v)| (n.to_vec(), v)).collect();
        // Names over 255 bytes are cut to 255 (ASCII here, so the cut is clean).
        let want: Vec<(Vec<u8>, u64)> = entries
            .iter()
            .map(|(n, v)| (n.as_bytes()[..n.len().min(255)].to_vec(), *v))
            .collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn member_list_keeps_members_and_order(members in prop::collection::vec(any::<String>(), 0..16)) {
        let raw = MemberList::build(&members);
        let (list, used) = MemberList::parse_prefix(&raw).unwrap();
        prop_assert_eq!(used, raw.len());
        let got: Vec<&[u8]> = list.iter().collect();
        let want: Vec<&[u8]> = members.iter().map(|m| m.as_bytes()).collect();
        prop_assert_eq!(got, want);
    }
}

/// The boundaries of every length limit encode and decode.
#[test]
fn fields_at_their_limits_round_trip() {
    let group = vec![b'g'; MAX_GROUP_LEN];
    let key = vec![0xffu8; MAX_KEY_LEN];
    let node_id = vec![b'n'; MAX_NODE_ID_LEN];
    let reqs = [
        Request {
            id: u32::MAX,
            kind: RequestKind::Get(KeyRef::new(&group, &key)),
        },
        Request {
            id: 0,
            kind: RequestKind::Set {
                key: KeyRef::new(b"g", b"k"),
                ttl_ms: u64::MAX,
                value: &[],
            },
        },
        Request {
            id: 1,
            kind: RequestKind::Hello {
                node_id: &node_id,
                ring_fingerprint: u64::MAX,
            },
        },
        Request {
            id: 2,
            kind: RequestKind::Ping(&[]),
        },
        Request {
            id: 3,
            kind: RequestKind::Mutate {
                key: KeyRef::new(&group, &key),
                mode: MutateMode::Decr { vivify: true },
                flags: u32::MAX,
                ttl_ms: KEEP_TTL,
                cas: u64::MAX,
                delta: u64::MAX,
                value: b"18446744073709551615",
            },
        },
        Request {
            id: 4,
            kind: RequestKind::FetchItem(KeyRef::new(&group, &key)),
        },
        Request {
            id: 5,
            kind: RequestKind::Flush { group: &group },
        },
        Request {
            id: 6,
            kind: RequestKind::Flush { group: b"g" },
        },
    ];
    for req in reqs {
        let mut buf = Vec::new();
        req.encode(&mut buf);
        let (frame, used) = decode(&buf, &Limits::default()).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(frame, Frame::Request(req));
    }
}

/// A frame exactly at the configured limit is accepted; one byte more is refused.
#[test]
fn frame_exactly_at_the_limit_is_accepted() {
    let req = Request {
        id: 9,
        kind: RequestKind::Set {
            key: KeyRef::new(b"g", b"k"),
            ttl_ms: 0,
            value: &[7; 1000],
        },
    };
    let mut buf = Vec::new();
    req.encode(&mut buf);
    let len = buf.len() - 4;
    assert!(decode(&buf, &Limits::with_max_frame(len))
        .unwrap()
        .is_some());
    let err = decode(&buf, &Limits::with_max_frame(len - 1)).unwrap_err();
    assert_eq!(err.skip, Some(buf.len()));
}
