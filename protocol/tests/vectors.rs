//! docs/protocol.md is the single source of the example frames and ring vectors:
//! this test parses every `hex-frame` and `ring-vectors` block in it and checks them
//! against the real decoder, encoder, ring and shard rule. If the document and the
//! code drift apart, or a block goes missing, this test fails.
//!
//! One file (about 600 lines) on purpose: it is one walk through one document, and
//! the block counts below are checked against the whole of it; the block parser is
//! already apart, in `doc/`.

use groupcached_protocol::{
    decode, key_hash, shard_hash, shard_of, Frame, Limits, Opcode, Request, RequestKind, Response,
    ResponseBody, Ring, Status,
};

mod doc;
use doc::{block_name, blocks, fenced, frame_bytes, Block};

const DOC: &str = include_str!("../../docs/protocol.md");

/// How many `hex-frame` blocks the document holds. Update together with the document.
const HEX_FRAME_BLOCKS: usize = 60;
/// How many `hex-bytes` blocks (bad frames) the document holds.
const HEX_BYTES_BLOCKS: usize = 8;
/// How many `ring-vectors` blocks the document holds.
const RING_VECTOR_BLOCKS: usize = 2;

/// Frames the document must show, whatever else it shows.
const REQUIRED_FRAMES: [&str; 28] = [
    "GET request",
    "SET request",
    "GET OK response",
    "GET NOT_FOUND response",
    "GET UNKNOWN_GROUP response",
    "HELLO request",
    "HELLO request, from a client",
    "STORE request",
    "PURGE request",
    "STORE OK response",
    "PURGE OK response",
    "0x00 UNAVAILABLE response",
    "CHALLENGE request",
    "AUTH request",
    "CHALLENGE OK response",
    "AUTH OK response",
    "MUTATE request",
    "MUTATE request, ADD",
    "MUTATE request, CAS",
    "MUTATE request, INCR",
    "FETCH_ITEM request",
    "FLUSH request",
    "MUTATE OK response",
    "MUTATE OK response, INCR",
    "MUTATE NOT_STORED response",
    "MUTATE EXISTS response",
    "FETCH_ITEM OK response",
    "FLUSH OK response",
];

fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    match frame {
        Frame::Request(r) => r.encode(&mut out),
        Frame::Response(r) => r.encode(&mut out),
    }
    out
}

/// Parses `GET`, `0x09` into an opcode byte.
fn opcode_byte(token: &str) -> u8 {
    if let Some(hex) = token.strip_prefix("0x") {
        return u8::from_str_radix(hex, 16).unwrap();
    }
    Opcode::ALL
        .into_iter()
        .find(|op| op.name() == token)
        .unwrap_or_else(|| panic!("unknown opcode name {token:?}")) as u8
}

fn status_named(token: &str) -> Status {
    Status::ALL
        .into_iter()
        .find(|s| s.name() == token)
        .unwrap_or_else(|| panic!("unknown status name {token:?}"))
}

/// Checks that `frame` is what `name` (`OP request` / `OP STATUS response`, either
/// optionally followed by `, qualifier`) says.
fn check_name(name: &str, frame: &Frame) {
    let kind = name.split_once(',').map_or(name, |(kind, _)| kind);
    let tokens: Vec<&str> = kind.split_whitespace().collect();
    match (tokens.as_slice(), frame) {
        ([op, "request"], Frame::Request(r)) => {
            assert_eq!(r.kind.opcode() as u8, opcode_byte(op), "{name}");
        }
        ([op, status, "response"], Frame::Response(r)) => {
            assert_eq!(r.opcode, opcode_byte(op), "{name}");
            assert_eq!(r.status, status_named(status), "{name}");
        }
        _ => panic!("frame named {name:?} decodes to {frame:?}"),
    }
}

/// The comments on the length and request id lines agree with the bytes.
fn check_comments(block: &Block, frame: &Frame, bytes: &[u8]) {
    let comments: Vec<&str> = block
        .body
        .iter()
        .filter_map(|l| Some(l.split_once('#')?.1.trim()))
        .collect();
    let number_after = |prefix: &str| -> u64 {
        let c = comments
            .iter()
            .find_map(|c| c.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("line {}: no {prefix:?} comment", block.line));
        let digits: String = c.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().unwrap()
    };
    assert_eq!(
        number_after("length: ") as usize,
        bytes.len() - 4,
        "line {}",
        block.line
    );
    assert_eq!(
        number_after("request id "),
        frame.id() as u64,
        "line {}",
        block.line
    );
}

#[test]
fn every_hex_frame_decodes_and_reencodes_to_the_same_bytes() {
    let blocks = blocks(DOC, "hex-frame");
    assert_eq!(blocks.len(), HEX_FRAME_BLOCKS, "number of hex-frame blocks");
    let mut names = Vec::new();
    for block in &blocks {
        let name = block_name(block);
        let bytes = frame_bytes(block);
        let (frame, used) = decode(&bytes, &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: incomplete frame"));
        assert_eq!(used, bytes.len(), "{name}: bytes after the frame");
        assert_eq!(encode(&frame), bytes, "{name}: re-encoding differs");
        check_name(name, &frame);
        check_comments(block, &frame, &bytes);
        // Every proper prefix is an incomplete frame, never an error.
        for cut in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..cut], &Limits::default()),
                Ok(None),
                "{name}"
            );
        }
        names.push(name);
    }
    for want in REQUIRED_FRAMES {
        assert!(names.contains(&want), "docs/protocol.md lacks {want:?}");
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate frame names: {names:?}"
    );
}

/// The required examples show what their description promises.
#[test]
fn required_examples_have_the_interesting_fields() {
    let blocks = blocks(DOC, "hex-frame");
    let frame_of = |name: &str| {
        let block = blocks
            .iter()
            .find(|b| b.title == format!("Frame: {name}"))
            .unwrap_or_else(|| panic!("no {name}"));
        frame_bytes(block)
    };
    let set = frame_of("SET request");
    match decode(&set, &Limits::default()).unwrap().unwrap().0 {
        Frame::Request(Request {
            kind: RequestKind::Set { ttl_ms, value, .. },
            ..
        }) => {
            assert_ne!(ttl_ms, 0, "the SET example should carry a TTL");
            assert!(!value.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let get_ok = frame_of("GET OK response");
    match decode(&get_ok, &Limits::default()).unwrap().unwrap().0 {
        Frame::Response(Response {
            body: ResponseBody::Value { value, .. },
            ..
        }) => assert!(!value.is_empty(), "the GET OK example should carry a value"),
        other => panic!("{other:?}"),
    }
    let err = frame_of("GET UNKNOWN_GROUP response");
    match decode(&err, &Limits::default()).unwrap().unwrap().0 {
        Frame::Response(r) => assert!(!r.message().unwrap().is_empty()),
        other => panic!("{other:?}"),
    }
}

/// One parsed `ring-vectors` block.
#[derive(Default)]
struct RingVectors {
    line: usize,
    vnodes: Option<u32>,
    shards: Option<usize>,
    members: Vec<String>,
    fingerprint: Option<u64>,
    /// (member, index, name bytes, hash)
    points: Vec<(String, u32, Vec<u8>, u64)>,
    /// (key, hash, owner, shard hash, shard)
    keys: Vec<(Vec<u8>, u64, String, u64, usize)>,
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex64(s: &str) -> u64 {
    assert_eq!(s.len(), 16, "{s:?} is not 16 hex digits");
    u64::from_str_radix(s, 16).unwrap()
}

fn parse_ring_vectors(block: &Block) -> RingVectors {
    let mut v = RingVectors {
        line: block.line,
        ..Default::default()
    };
    for line in &block.body {
        let fields: Vec<&str> = line
            .split_whitespace()
            .take_while(|f| !f.starts_with('#'))
            .collect();
        let Some((&kind, rest)) = fields.split_first() else {
            continue;
        };
        let named = |name: &str| -> &str {
            rest.iter()
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("{line:?} lacks {name}="))
        };
        match kind {
            "vnodes" => v.vnodes = Some(rest[0].parse().unwrap()),
            "shards" => v.shards = Some(rest[0].parse().unwrap()),
            "member" => v.members.push(rest[0].to_owned()),
            "fingerprint" => v.fingerprint = Some(hex64(rest[0])),
            "point" => v.points.push((
                named("member").to_owned(),
                named("index").parse().unwrap(),
                unhex(named("name")),
                hex64(named("hash")),
            )),
            "key" => v.keys.push((
                unhex(named("hex")),
                hex64(named("hash")),
                named("owner").to_owned(),
                hex64(named("shard_hash")),
                named("shard").parse().unwrap(),
            )),
            other => panic!("line {}: unknown ring-vectors line {other:?}", block.line),
        }
    }
    v
}

/// The ring exactly as docs/protocol.md describes it, written naively, so that the
/// prose is checked as well as the vectors.
fn reference_owner(members: &[String], vnodes: u32, key: &[u8]) -> String {
    let mut sorted = members.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut points = Vec::new();
    for (mi, m) in sorted.iter().enumerate() {
        for i in 0..vnodes {
            let mut name = m.as_bytes().to_vec();
            name.push(0);
            name.extend_from_slice(&i.to_be_bytes());
            points.push((key_hash(&name), mi));
        }
    }
    points.sort();
    points.dedup_by_key(|p| p.0);
    let h = key_hash(key);
    let point = points.iter().find(|p| p.0 >= h).unwrap_or(&points[0]);
    sorted[point.1].clone()
}

/// The fingerprint exactly as docs/protocol.md describes it.
fn reference_fingerprint(members: &[String], vnodes: u32) -> u64 {
    let mut sorted = members.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut buf = b"groupcached-ring-v1\0".to_vec();
    buf.extend_from_slice(&vnodes.to_be_bytes());
    for m in &sorted {
        buf.extend_from_slice(&(m.len() as u16).to_be_bytes());
        buf.extend_from_slice(m.as_bytes());
    }
    key_hash(&buf)
}

fn all_ring_vectors() -> Vec<RingVectors> {
    let blocks = blocks(DOC, "ring-vectors");
    assert_eq!(
        blocks.len(),
        RING_VECTOR_BLOCKS,
        "number of ring-vectors blocks"
    );
    blocks.iter().map(parse_ring_vectors).collect()
}

#[test]
fn ring_vectors_match_the_ring_and_the_shard_rule() {
    for v in all_ring_vectors() {
        let at = v.line;
        let vnodes = v.vnodes.unwrap_or_else(|| panic!("line {at}: no vnodes"));
        let shards = v.shards.unwrap_or_else(|| panic!("line {at}: no shards"));
        let fingerprint = v.fingerprint.unwrap_or_else(|| panic!("line {at}: none"));
        assert!(v.members.len() >= 2, "line {at}: too few members");
        assert!(v.keys.len() >= 12, "line {at}: fewer than 12 keys");
        assert!(!v.points.is_empty(), "line {at}: no points");

        let ring = Ring::new(&v.members, vnodes);
        assert_eq!(ring.fingerprint(), fingerprint, "line {at}: fingerprint");
        assert_eq!(
            reference_fingerprint(&v.members, vnodes),
            fingerprint,
            "line {at}"
        );

        for (member, index, name, hash) in &v.points {
            let mut want = member.as_bytes().to_vec();
            want.push(0);
            want.extend_from_slice(&index.to_be_bytes());
            assert_eq!(name, &want, "line {at}: point name of {member} #{index}");
            assert_eq!(key_hash(name), *hash, "line {at}: point {member} #{index}");
        }
        let mut point_hashes: Vec<u64> = v.points.iter().map(|p| p.3).collect();
        point_hashes.sort_unstable();
        point_hashes.dedup();
        assert_eq!(
            point_hashes.len(),
            v.points.len(),
            "line {at}: equal points"
        );

        for (key, hash, owner, s_hash, shard) in &v.keys {
            let shown = String::from_utf8_lossy(key);
            assert_eq!(key_hash(key), *hash, "line {at}: hash of {shown:?}");
            assert_eq!(ring.owner(key), Some(owner.as_str()), "{shown:?}");
            assert_eq!(
                &reference_owner(&v.members, vnodes, key),
                owner,
                "{shown:?}"
            );
            assert_eq!(shard_hash(key), *s_hash, "line {at}: shard hash {shown:?}");
            assert_eq!(shard_of(key, shards), *shard, "line {at}: shard {shown:?}");
        }
        // The vectors exercise every member.
        for m in &v.members {
            assert!(
                v.keys.iter().any(|k| &k.2 == m),
                "line {at}: no key owned by {m}"
            );
        }
    }
}

/// The first vector set covers the edge cases the document promises.
#[test]
fn ring_vectors_cover_awkward_keys() {
    let v = &all_ring_vectors()[0];
    let keys: Vec<&[u8]> = v.keys.iter().map(|k| k.0.as_slice()).collect();
    let has = |pred: &dyn Fn(&[u8]) -> bool| keys.iter().any(|k| pred(k));
    assert!(has(&|k| std::str::from_utf8(k).is_ok_and(|s| !s.is_ascii())));
    assert!(has(&|k| std::str::from_utf8(k).is_err()));
    for c in [b' ', b'+', b'%', b'/'] {
        assert!(has(&|k| k.contains(&c)), "no key with {:?}", c as char);
    }
    // The groupcache-ambiguity set really holds the two members.
    let second = &all_ring_vectors()[1];
    for m in ["1.2.3.4:7000", "11.2.3.4:7000"] {
        assert!(second.members.iter().any(|x| x == m), "{m}");
    }
}

/// The HELLO examples carry the first vector set's ring, and the member list in the
/// HELLO answer rebuilds exactly that ring.
#[test]
fn hello_examples_carry_the_vector_ring() {
    let want = all_ring_vectors()[0].fingerprint.unwrap();
    let mut seen = 0;
    for block in blocks(DOC, "hex-frame") {
        let bytes = frame_bytes(&block);
        match decode(&bytes, &Limits::default()).unwrap().unwrap().0 {
            Frame::Request(Request {
                kind:
                    RequestKind::Hello {
                        node_id,
                        ring_fingerprint,
                    },
                ..
            }) => {
                // A client claims nothing and has no ring; a node has the vector ring.
                if node_id.is_empty() {
                    assert_eq!(ring_fingerprint, 0, "line {}", block.line);
                } else {
                    assert_eq!(ring_fingerprint, want, "line {}", block.line);
                }
                seen += 1;
            }
            Frame::Response(Response {
                body: ResponseBody::Hello(info),
                ..
            }) => {
                assert_eq!(info.ring_fingerprint, want);
                let members: Vec<String> = info
                    .members
                    .iter()
                    .map(|m| String::from_utf8(m.to_vec()).unwrap())
                    .collect();
                assert_eq!(Ring::new(&members, info.vnodes).fingerprint(), want);
                // Sent sorted and de-duplicated, the answering node among them.
                let mut sorted = members.clone();
                sorted.sort();
                sorted.dedup();
                assert_eq!(members, sorted, "line {}: members as sent", block.line);
                let node_id = String::from_utf8(info.node_id.to_vec()).unwrap();
                assert!(members.contains(&node_id), "{node_id} is not a member");
                seen += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        seen, 3,
        "two HELLO requests (node, client) and one HELLO response"
    );
}

/// The decoded frame of the example named `name`.
fn example<'d>(all: &[Block<'d>], name: &str) -> Vec<u8> {
    let block = all
        .iter()
        .find(|b| b.info == "hex-frame" && block_name(b) == name)
        .unwrap_or_else(|| panic!("docs/protocol.md has no frame {name:?}"));
    frame_bytes(block)
}

fn decoded(bytes: &[u8]) -> Frame<'_> {
    decode(bytes, &Limits::default()).unwrap().unwrap().0
}

/// Each bad frame gives the decode error its `Bytes:` line names, that error closes
/// the connection or not as the line says, and the answer after it is exactly what
/// a node sends for that error (the server answers every decode error this way).
#[test]
fn bad_frames_give_the_documented_error_and_answer() {
    let all = fenced(DOC);
    let pairs = doc::bad_frames_with_answers(&all);
    assert_eq!(pairs.len(), HEX_BYTES_BLOCKS, "number of hex-bytes blocks");
    assert_eq!(blocks(DOC, "hex-bytes").len(), HEX_BYTES_BLOCKS);
    for (bytes_block, answer) in pairs {
        let at = bytes_block.line;
        let want = doc::bad_frame(bytes_block);
        let bytes = frame_bytes(bytes_block);
        let err = match decode(&bytes, &Limits::default()) {
            Err(e) => e,
            other => panic!("line {at}: {:?} decodes to {other:?}", want.description),
        };
        let variant = format!("{:?}", err.error);
        let variant = variant
            .split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap();
        assert_eq!(variant, want.error, "line {at}: {:?}", want.description);
        assert_eq!(
            err.error.is_fatal(),
            want.closes,
            "line {at}: kept or closed"
        );
        // The comment on the length line gives the declared length.
        let declared = u32::from_be_bytes(bytes[..4].try_into().unwrap());
        let comment = bytes_block.body[0].split_once("# length: ").unwrap().1;
        let digits: String = comment.chars().take_while(char::is_ascii_digit).collect();
        assert_eq!(digits.parse::<u32>().unwrap(), declared, "line {at}");

        let message = err.error.to_string();
        let mut expected = Vec::new();
        Response::error(err.request_id, err.opcode, err.error.status(), &message)
            .encode(&mut expected);
        assert_eq!(
            frame_bytes(answer),
            expected,
            "line {}: the answer to {:?}",
            answer.line,
            want.description
        );
    }
}

/// Every opcode has a request example and every status a response example, except
/// ERROR, whose cause is the server's own failure and which looks like any other
/// error response.
#[test]
fn every_opcode_and_status_has_an_example() {
    let all = fenced(DOC);
    let frames: Vec<Vec<u8>> = all
        .iter()
        .filter(|b| b.info == "hex-frame")
        .map(frame_bytes)
        .collect();
    for op in Opcode::ALL {
        assert!(
            frames.iter().any(|f| matches!(decoded(f),
                Frame::Request(r) if r.kind.opcode() == op)),
            "no {} request example",
            op.name()
        );
    }
    for st in Status::ALL {
        if st == Status::Error {
            continue;
        }
        assert!(
            frames
                .iter()
                .any(|f| matches!(decoded(f), Frame::Response(r) if r.status == st)),
            "no {} response example",
            st.name()
        );
    }
}

/// The peer examples agree with the first ring-vectors set: `10.0.0.2:7000` answers
/// HELLO and owns `cat.jpg` (so the STORE and PURGE of it succeed there), while
/// `dog.jpg` belongs to `10.0.0.3:7000`, whom the NOT_OWNER answer names.
#[test]
fn peer_examples_agree_with_the_vector_ring() {
    let v = &all_ring_vectors()[0];
    let ring = Ring::new(&v.members, v.vnodes.unwrap());
    let all = fenced(DOC);
    let key_of = |name: &str| -> Vec<u8> {
        match decoded(&example(&all, name)) {
            Frame::Request(Request {
                kind: RequestKind::Store { key, .. } | RequestKind::Purge(key),
                ..
            }) => key.key.to_vec(),
            other => panic!("{name}: {other:?}"),
        }
    };
    let hello = example(&all, "HELLO OK response");
    let node_id = match decoded(&hello) {
        Frame::Response(Response {
            body: ResponseBody::Hello(info),
            ..
        }) => String::from_utf8(info.node_id.to_vec()).unwrap(),
        other => panic!("{other:?}"),
    };
    for name in ["STORE request", "PURGE request"] {
        assert_eq!(ring.owner(&key_of(name)), Some(node_id.as_str()), "{name}");
    }
    let elsewhere = key_of("STORE request, key owned elsewhere");
    let owner = ring.owner(&elsewhere).unwrap();
    assert_ne!(owner, node_id);
    let not_owner = example(&all, "STORE NOT_OWNER response");
    let message = match decoded(&not_owner) {
        Frame::Response(r) => String::from_utf8(r.message().unwrap().to_vec()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        message,
        format!("this node does not own the key under its ring; its owner is {owner}")
    );
    // The claim in the node's HELLO names a member of the same ring.
    match decoded(&example(&all, "HELLO request")) {
        Frame::Request(Request {
            kind: RequestKind::Hello { node_id, .. },
            ..
        }) => {
            let id = String::from_utf8(node_id.to_vec()).unwrap();
            assert!(v.members.contains(&id) && id != node_id_of(&hello), "{id}");
        }
        other => panic!("{other:?}"),
    }
}

fn node_id_of(hello_response: &[u8]) -> String {
    match decoded(hello_response) {
        Frame::Response(Response {
            body: ResponseBody::Hello(info),
            ..
        }) => String::from_utf8(info.node_id.to_vec()).unwrap(),
        other => panic!("{other:?}"),
    }
}
