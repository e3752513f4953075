//! docs/protocol.md against a real server: every example request (and every bad
//! frame) of the document is sent to a real `groupcached` process, and its answer
//! must be the document's example response byte for byte. Where an answer depends on
//! time or on a port, only that part is left out of the comparison, as the document
//! says. `protocol/tests/vectors.rs` checks the same examples against the encoder and
//! decoder; this test checks that the server really answers them so.

mod common;
#[path = "../protocol/tests/doc/mod.rs"]
mod doc;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Range;

use common::{HttpOrigin, TempDir, TestServer, DEADLINE};
use doc::{bad_frame, bad_frames_with_answers, block_name, fenced, frame_bytes};
use groupcached::ClusterSecret;
use groupcached_client::protocol::{
    decode, Frame, KeyRef, Limits, Opcode, Request, RequestKind, Response, ResponseBody, Status,
};

const DOC: &str = include_str!("../docs/protocol.md");

/// The members, and the member this test's peer-example server plays, of the first
/// ring-vectors set, which the HELLO and STORE examples use.
const VECTOR_MEMBERS: &str = "10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000";
const VECTOR_SELF: &str = "10.0.0.2:7000";

/// Every response example of the document, with the test here that gets it from a
/// real server. A new response example must be added here (and checked), or this
/// list and the document disagree and `every_response_example_is_checked` fails.
const CHECKED: [(&str, &str); 38] = [
    ("GET OK response", "single_node_answers_match_the_examples"),
    ("SET OK response", "single_node_answers_match_the_examples"),
    (
        "DELETE OK response",
        "single_node_answers_match_the_examples",
    ),
    (
        "STATS OK response",
        "single_node_answers_match_the_examples (header and the two names only)",
    ),
    ("PING OK response", "single_node_answers_match_the_examples"),
    (
        "GET NOT_FOUND response",
        "single_node_answers_match_the_examples",
    ),
    (
        "HELLO OK response",
        "peer_examples_on_a_member_of_the_vector_ring",
    ),
    (
        "INVALIDATE OK response",
        "peer_examples_on_a_member_of_the_vector_ring",
    ),
    (
        "STORE OK response",
        "peer_examples_on_a_member_of_the_vector_ring",
    ),
    (
        "PURGE OK response",
        "peer_examples_on_a_member_of_the_vector_ring",
    ),
    ("GET UNKNOWN_GROUP response", "unknown_group_example"),
    ("GET ORIGIN_ERROR response", "origin_error_example"),
    ("GET TIMEOUT response", "timeout_example"),
    ("SHARD OK response", "shard_example"),
    (
        "GET TIMEOUT response, to an unfinished frame",
        "frame_timeout_example",
    ),
    ("GET TOO_LARGE response", "too_large_origin_value_example"),
    (
        "FETCH FORBIDDEN response",
        "peer_operations_need_a_members_hello",
    ),
    (
        "STORE NOT_OWNER response",
        "peer_operations_need_a_members_hello",
    ),
    (
        "0x00 UNAVAILABLE response",
        "connection_limit_frame_example",
    ),
    (
        "CHALLENGE OK response",
        "cluster_secret_examples (all but the random nonce)",
    ),
    (
        "AUTH OK response",
        "cluster_secret_examples (the proof over the real nonce)",
    ),
    ("AUTH FORBIDDEN response", "cluster_secret_examples"),
    (
        "FETCH FORBIDDEN response, without the proof",
        "cluster_secret_examples",
    ),
    ("CHALLENGE FORBIDDEN response", "cluster_secret_examples"),
    (
        "GET BAD_VERSION response",
        "bad_frames_get_the_documented_answers",
    ),
    (
        "SET TOO_LARGE response",
        "bad_frames_get_the_documented_answers",
    ),
    (
        "0x7f TOO_LARGE response",
        "bad_frames_get_the_documented_answers",
    ),
    (
        "0x7f UNKNOWN_OP response",
        "bad_frames_get_the_documented_answers",
    ),
    (
        "GET BAD_REQUEST response, group length 0",
        "bad_frames_get_the_documented_answers",
    ),
    (
        "GET BAD_REQUEST response, truncated key",
        "bad_frames_get_the_documented_answers",
    ),
    (
        "0x00 BAD_REQUEST response",
        "bad_frames_get_the_documented_answers",
    ),
    (
        "MUTATE BAD_REQUEST response, unknown mode",
        "bad_frames_get_the_documented_answers",
    ),
    (
        "MUTATE OK response",
        "memcache_ops_examples (all but the owner's CAS)",
    ),
    (
        "MUTATE OK response, INCR",
        "memcache_ops_examples (all but the owner's CAS)",
    ),
    ("MUTATE NOT_STORED response", "memcache_ops_examples"),
    ("MUTATE EXISTS response", "memcache_ops_examples"),
    (
        "FETCH_ITEM OK response",
        "memcache_ops_examples (all but ttl_ms, and the CAS the SET answered)",
    ),
    ("FLUSH OK response", "memcache_ops_examples"),
];

/// Checked by `a_response_sent_to_a_node_is_answered_and_closed`.
const RESPONSE_TO_NODE: &str = "PING BAD_REQUEST response, to a response frame";

/// The bytes of the document's `hex-frame` example `name`.
fn example(name: &str) -> Vec<u8> {
    let all = fenced(DOC);
    let block = all
        .iter()
        .find(|b| b.info == "hex-frame" && block_name(b) == name)
        .unwrap_or_else(|| panic!("docs/protocol.md has no frame {name:?}"));
    frame_bytes(block)
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_frame_eq(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: the server answered\n{}\nthe document shows\n{}",
        hex(got),
        hex(want)
    );
}

/// Like [`assert_frame_eq`], but the bytes in `skip` (a field whose value the server
/// chooses, such as a CAS or a remaining TTL) are not compared.
fn assert_frame_eq_but(got: &[u8], want: &[u8], skip: &[Range<usize>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}:\n{}", hex(got));
    let mut masked = got.to_vec();
    for r in skip {
        masked[r.clone()].copy_from_slice(&want[r.clone()]);
    }
    assert_frame_eq(&masked, want, what);
}

/// Where a MUTATE OK answer holds the owner's CAS (after the header and `flags`).
const MUTATE_OK_CAS: Range<usize> = 16..24;
/// Where a FETCH_ITEM OK answer holds `ttl_ms` and the CAS.
const ITEM_OK_TTL: Range<usize> = 12..20;
const ITEM_OK_CAS: Range<usize> = 24..32;

/// The big-endian u64 at `at` of a frame.
fn u64_at(frame: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(frame[at..at + 8].try_into().unwrap())
}

/// A connection that speaks raw bytes and returns whole answer frames as bytes.
struct Wire {
    stream: TcpStream,
}

impl Wire {
    fn connect(addr: SocketAddr) -> Wire {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Wire { stream }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// The next whole frame, `None` if the server closed the connection between
    /// frames.
    fn try_recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut prefix = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.stream.read(&mut prefix[got..])? {
                0 if got == 0 => return Ok(None),
                0 => panic!("closed inside a length prefix"),
                n => got += n,
            }
        }
        let len = u32::from_be_bytes(prefix) as usize;
        assert!(len <= 1 << 20, "answer of {len} bytes");
        let mut frame = prefix.to_vec();
        frame.resize(4 + len, 0);
        self.stream.read_exact(&mut frame[4..])?;
        Ok(Some(frame))
    }

    fn recv(&mut self) -> Vec<u8> {
        match self.try_recv() {
            Ok(Some(f)) => f,
            Ok(None) => panic!("the server closed the connection, expected an answer"),
            Err(e) => panic!("reading an answer: {e}"),
        }
    }

    fn exchange(&mut self, request: &[u8]) -> Vec<u8> {
        self.send(request);
        self.recv()
    }

    /// Sends the document's request example `request` and checks the answer is
    /// exactly the response example `response`.
    fn check(&mut self, request: &str, response: &str) {
        let got = self.exchange(&example(request));
        assert_frame_eq(
            &got,
            &example(response),
            &format!("{request} -> {response}"),
        );
    }

    /// The connection still works: the PING example gets the PING OK example.
    fn assert_kept(&mut self) {
        self.check("PING request", "PING OK response");
    }

    fn expect_closed(&mut self) {
        match self.try_recv() {
            Ok(None) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(Some(f)) => panic!("expected a close, got\n{}", hex(&f)),
            Err(e) => panic!("expected a close, got {e}"),
        }
    }
}

fn decoded(bytes: &[u8]) -> Frame<'_> {
    decode(bytes, &Limits::default())
        .expect("decodable")
        .expect("whole")
        .0
}

/// The document's message of error example `name`.
fn message_of(name: &str) -> String {
    match decoded(&example(name)) {
        Frame::Response(r) => String::from_utf8(r.message().expect("a message").to_vec()).unwrap(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn every_response_example_is_checked() {
    let all = fenced(DOC);
    let mut in_doc: Vec<&str> = all
        .iter()
        .filter(|b| b.info == "hex-frame")
        .map(block_name)
        .filter(|n| n.contains(" response"))
        .collect();
    in_doc.sort_unstable();
    let mut here: Vec<&str> = CHECKED.iter().map(|(n, _)| *n).collect();
    here.push(RESPONSE_TO_NODE);
    here.sort_unstable();
    assert_eq!(
        in_doc, here,
        "response examples in docs/protocol.md vs. CHECKED"
    );
}

#[test]
fn single_node_answers_match_the_examples() {
    let s = TestServer::start(&["--group", "thumbs", "--origin", "none"]);
    let mut w = Wire::connect(s.addr());
    w.check("GET request", "GET NOT_FOUND response");
    w.check("SET request", "SET OK response");

    // GET OK: every byte but `ttl_ms` (bytes 12..20), which depends on the time
    // since the SET.
    let got = w.exchange(&example("GET request"));
    let want = example("GET OK response");
    assert_eq!(got.len(), want.len(), "GET OK:\n{}", hex(&got));
    assert_frame_eq(&got[..12], &want[..12], "GET OK header");
    assert_frame_eq(&got[20..], &want[20..], "GET OK value");
    let ttl = u64::from_be_bytes(got[12..20].try_into().unwrap());
    assert!((1..=60_000).contains(&ttl), "ttl_ms {ttl}");

    w.check("DELETE request", "DELETE OK response");

    // STATS: the real list is longer than the example's and its values vary; the
    // header and the example's counter names must be there.
    let got = w.exchange(&example("STATS request"));
    let want = example("STATS OK response");
    assert_eq!(got[4..12], want[4..12], "STATS header");
    let names = |bytes: &[u8]| -> Vec<String> {
        match decoded(bytes) {
            Frame::Response(Response {
                body: ResponseBody::Stats(list),
                ..
            }) => list
                .iter()
                .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    let real = names(&got);
    for name in names(&want) {
        assert!(real.contains(&name), "no counter {name} in {real:?}");
    }

    w.check("PING request", "PING OK response");
}

/// Each bad frame on a connection of its own: the answer shown after it in the
/// document, then the connection closed or still usable as its `Bytes:` line says.
#[test]
fn bad_frames_get_the_documented_answers() {
    let s = TestServer::start(&["--group", "thumbs", "--origin", "none"]);
    let all = fenced(DOC);
    let pairs = bad_frames_with_answers(&all);
    assert!(pairs.len() >= 8, "{} bad frames", pairs.len());
    let count = pairs.len() as u64;
    for (bytes_block, answer) in pairs {
        let bad = bad_frame(bytes_block);
        let bytes = frame_bytes(bytes_block);
        let mut w = Wire::connect(s.addr());
        let got = w.exchange(&bytes);
        assert_frame_eq(&got, &frame_bytes(answer), bad.description);
        if bad.closes {
            w.expect_closed();
            continue;
        }
        // An oversized frame's body is discarded as it arrives: send it, then the
        // connection must go on as if nothing had happened.
        let declared = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        let rest = (declared + 4).saturating_sub(bytes.len());
        if rest > 0 {
            let zeros = vec![0u8; 1 << 20];
            let mut left = rest;
            while left > 0 {
                let n = left.min(zeros.len());
                w.send(&zeros[..n]);
                left -= n;
            }
        }
        w.assert_kept();
    }
    assert_eq!(
        s.stat("protocol_errors"),
        count,
        "each bad frame counts once in protocol_errors"
    );
}

#[test]
fn a_response_sent_to_a_node_is_answered_and_closed() {
    let s = TestServer::start(&["--group", "thumbs", "--origin", "none"]);
    let mut w = Wire::connect(s.addr());
    w.check("PING OK response", RESPONSE_TO_NODE);
    w.expect_closed();
}

#[test]
fn ttl_of_2_pow_64_minus_1_reads_back_counting_down_from_it() {
    let s = TestServer::start(&["--group", "thumbs", "--origin", "none"]);
    let mut w = Wire::connect(s.addr());
    let mut set = Vec::new();
    Request {
        id: 1,
        kind: RequestKind::Set {
            key: KeyRef::new(b"thumbs", b"forever"),
            ttl_ms: u64::MAX,
            value: b"v",
        },
    }
    .encode(&mut set);
    let ok = w.exchange(&set);
    assert_eq!(ok[7], Status::Ok as u8, "SET:\n{}", hex(&ok));
    let mut get = Vec::new();
    Request {
        id: 2,
        kind: RequestKind::Get(KeyRef::new(b"thumbs", b"forever")),
    }
    .encode(&mut get);
    let got = w.exchange(&get);
    match decoded(&got) {
        Frame::Response(Response {
            status: Status::Ok,
            body: ResponseBody::Value { ttl_ms, value },
            ..
        }) => {
            assert_eq!(value, b"v");
            assert!(ttl_ms > u64::MAX - 60_000, "ttl_ms {ttl_ms}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_group_example() {
    // Only the group `default`.
    let s = TestServer::start(&["--origin", "none"]);
    Wire::connect(s.addr()).check("GET request", "GET UNKNOWN_GROUP response");
}

#[test]
fn origin_error_example() {
    let origin = HttpOrigin::start(|_| (500, b"broken".to_vec()));
    let spec = origin.spec("/{key}");
    let s = TestServer::start(&["--group", "thumbs", "--origin", &spec]);
    let got = Wire::connect(s.addr()).exchange(&example("GET request"));
    // The message names the origin's URL: the document's port is 8080, ours is not.
    let real_host = spec
        .strip_prefix("http://")
        .and_then(|r| r.strip_suffix("/{key}"))
        .unwrap();
    let name = "GET ORIGIN_ERROR response";
    let message = message_of(name);
    assert!(message.contains("127.0.0.1:8080"), "{message}");
    let message = message.replace("127.0.0.1:8080", real_host);
    let mut want = Vec::new();
    Response::error(1, Opcode::Get as u8, Status::OriginError, &message).encode(&mut want);
    assert_frame_eq(&got, &want, name);
}

#[test]
fn timeout_example() {
    // An origin slower than the load timeout: the server's load timeout answers.
    let s = TestServer::start(&[
        "--group",
        "thumbs",
        "--origin",
        "synthetic:size=16,delay_ms=5000",
        "--load-timeout",
        "300ms",
    ]);
    Wire::connect(s.addr()).check("GET request", "GET TIMEOUT response");
}

#[test]
fn too_large_origin_value_example() {
    let s = TestServer::start(&[
        "--group",
        "thumbs",
        "--max-frame",
        "64KiB",
        "--origin",
        "synthetic:size=70000",
    ]);
    let mut w = Wire::connect(s.addr());
    w.check("GET request", "GET TOO_LARGE response");
    w.assert_kept();
}

#[test]
fn connection_limit_frame_example() {
    let s = TestServer::start(&["--max-connections", "1", "--threads", "1"]);
    let mut first = Wire::connect(s.addr());
    first.assert_kept();
    let mut second = Wire::connect(s.addr());
    let got = second.recv();
    assert_frame_eq(&got, &example("0x00 UNAVAILABLE response"), "refusal");
    second.expect_closed();
    first.assert_kept();
}

#[test]
fn shard_example() {
    let s = TestServer::start(&["--threads", "2"]);
    let mut w = Wire::connect(s.addr());
    w.check("SHARD request", "SHARD OK response");
    w.assert_kept();
}

#[test]
fn frame_timeout_example() {
    let s = TestServer::start(&["--frame-timeout", "200ms", "--threads", "1"]);
    let mut w = Wire::connect(s.addr());
    let get = example("GET request");
    let got = w.exchange(&get[..12]);
    assert_frame_eq(
        &got,
        &example("GET TIMEOUT response, to an unfinished frame"),
        "frame timeout",
    );
    w.expect_closed();
}

/// A node that is `10.0.0.2:7000` of the first ring-vectors set (the other members
/// are never contacted: none of these operations goes to a peer).
fn vector_member() -> TestServer {
    TestServer::start(&[
        "--group",
        "thumbs",
        "--origin",
        "none",
        "--advertise",
        VECTOR_SELF,
        "--peers",
        VECTOR_MEMBERS,
    ])
}

#[test]
fn peer_examples_on_a_member_of_the_vector_ring() {
    let s = vector_member();
    Wire::connect(s.addr()).check("HELLO request, from a client", "HELLO OK response");
    let mut w = Wire::connect(s.addr());
    w.check("HELLO request", "HELLO OK response");
    w.check("INVALIDATE request", "INVALIDATE OK response");
    w.check("STORE request", "STORE OK response");
    w.check("PURGE request", "PURGE OK response");
}

/// The memcached front end's peer operations, on the owner of their keys after a
/// member's HELLO, in the document's order: MUTATE SET, ADD (NOT_STORED), CAS
/// (EXISTS), INCR with VIVIFY twice, FETCH_ITEM, FLUSH; then the flushed key is gone.
#[test]
fn memcache_ops_examples() {
    let s = vector_member();
    let mut w = Wire::connect(s.addr());
    w.check("HELLO request", "HELLO OK response");

    // MUTATE OK: flags at 12..16, then the owner's CAS at 16..24, not compared.
    let got = w.exchange(&example("MUTATE request"));
    let want = example("MUTATE OK response");
    assert_frame_eq_but(&got, &want, &[MUTATE_OK_CAS], "MUTATE SET -> OK");
    let set_cas = u64_at(&got, MUTATE_OK_CAS.start);
    assert_ne!(set_cas, 0, "a CAS is never 0");

    w.check("MUTATE request, ADD", "MUTATE NOT_STORED response");
    // The CAS example's `cas` must not be the one the owner happened to choose.
    match decoded(&example("MUTATE request, CAS")) {
        Frame::Request(Request {
            kind: RequestKind::Mutate { cas, .. },
            ..
        }) => assert_ne!(cas, set_cas, "the server chose the example's stale CAS"),
        other => panic!("{other:?}"),
    }
    w.check("MUTATE request, CAS", "MUTATE EXISTS response");

    // INCR with VIVIFY: the first creates `views` with 41 and answers 41, the second
    // answers 42 (the example).
    let first = w.exchange(&example("MUTATE request, INCR"));
    match decoded(&first) {
        Frame::Response(Response {
            status: Status::Ok,
            body: ResponseBody::Mutated { value: b"41", .. },
            ..
        }) => {}
        other => panic!("first INCR of an absent key: {other:?}"),
    }
    let got = w.exchange(&example("MUTATE request, INCR"));
    let want = example("MUTATE OK response, INCR");
    assert_frame_eq_but(&got, &want, &[MUTATE_OK_CAS], "MUTATE INCR -> OK");
    assert_ne!(
        u64_at(&got, MUTATE_OK_CAS.start),
        u64_at(&first, MUTATE_OK_CAS.start),
        "INCR changes the CAS"
    );

    // FETCH_ITEM OK: ttl_ms at 12..20 depends on the time since the SET; flags at
    // 20..24; the CAS at 24..32 must be the one the SET answered.
    let got = w.exchange(&example("FETCH_ITEM request"));
    let want = example("FETCH_ITEM OK response");
    assert_frame_eq_but(&got, &want, &[ITEM_OK_TTL, ITEM_OK_CAS], "FETCH_ITEM -> OK");
    let ttl = u64_at(&got, ITEM_OK_TTL.start);
    assert!((1..=60_000).contains(&ttl), "ttl_ms {ttl}");
    assert_eq!(
        u64_at(&got, ITEM_OK_CAS.start),
        set_cas,
        "FETCH_ITEM's CAS is the SET's"
    );

    w.check("FLUSH request", "FLUSH OK response");
    // Flushed: the key is gone (origin `none`), and the connection goes on.
    let got = w.exchange(&example("FETCH_ITEM request"));
    let mut want = Vec::new();
    Response {
        id: 27,
        opcode: Opcode::FetchItem as u8,
        status: Status::NotFound,
        body: ResponseBody::Empty,
    }
    .encode(&mut want);
    assert_frame_eq(&got, &want, "FETCH_ITEM after FLUSH");
    w.assert_kept();
}

#[test]
fn peer_operations_need_a_members_hello() {
    let s = vector_member();
    let forbidden = message_of("FETCH FORBIDDEN response");
    let refused = |w: &mut Wire, request: &str, id: u32, op: Opcode| {
        let got = w.exchange(&example(request));
        let mut want = Vec::new();
        Response::error(id, op as u8, Status::Forbidden, &forbidden).encode(&mut want);
        assert_frame_eq(&got, &want, &format!("{request} without a member's HELLO"));
    };

    // No HELLO at all.
    let mut w = Wire::connect(s.addr());
    w.check("FETCH request", "FETCH FORBIDDEN response");
    refused(&mut w, "STORE request", 14, Opcode::Store);
    refused(&mut w, "PURGE request", 15, Opcode::Purge);
    refused(&mut w, "INVALIDATE request", 10, Opcode::Invalidate);
    refused(&mut w, "MUTATE request", 23, Opcode::Mutate);
    refused(&mut w, "FETCH_ITEM request", 27, Opcode::FetchItem);
    refused(&mut w, "FLUSH request", 28, Opcode::Flush);
    w.assert_kept();

    // A client's HELLO claims nothing and is not counted.
    w.check("HELLO request, from a client", "HELLO OK response");
    w.check("FETCH request", "FETCH FORBIDDEN response");
    assert_eq!(s.stat("hello_rejected"), 0);

    // A claim (a non-zero fingerprint) by a name that is not a member: answered OK,
    // counted, no rights.
    let mut hello = Vec::new();
    Request {
        id: 8,
        kind: RequestKind::Hello {
            node_id: b"10.0.0.9:7000",
            ring_fingerprint: 1,
        },
    }
    .encode(&mut hello);
    let got = w.exchange(&hello);
    assert_frame_eq(&got, &example("HELLO OK response"), "rejected claim");
    w.check("FETCH request", "FETCH FORBIDDEN response");
    assert_eq!(s.stat("hello_rejected"), 1);

    // A member's claim: STORE of a key it does not own is NOT_OWNER.
    let mut member = Wire::connect(s.addr());
    member.check("HELLO request", "HELLO OK response");
    member.check(
        "STORE request, key owned elsewhere",
        "STORE NOT_OWNER response",
    );
    member.check("STORE request", "STORE OK response");
    assert_eq!(s.stat("hello_rejected"), 1);
}

#[test]
fn hello_node_id_is_the_own_member_entry() {
    // A free port to listen on, named through `localhost` in the member list.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let other = if port == 65_535 { port - 1 } else { port + 1 };
    let peers = format!(" localhost:{other} , localhost:{port},localhost:{port}");
    let s = TestServer::start_on(&format!("127.0.0.1:{port}"), &["--peers", &peers]);
    let mut w = Wire::connect(s.addr());
    let got = w.exchange(&example("HELLO request, from a client"));
    match decoded(&got) {
        Frame::Response(Response {
            body: ResponseBody::Hello(info),
            ..
        }) => {
            let members: Vec<String> = info
                .members
                .iter()
                .map(|m| String::from_utf8(m.to_vec()).unwrap())
                .collect();
            let mut want = vec![format!("localhost:{port}"), format!("localhost:{other}")];
            want.sort();
            assert_eq!(members, want, "trimmed, sorted, de-duplicated");
            assert_eq!(
                String::from_utf8_lossy(info.node_id),
                format!("localhost:{port}"),
                "node id"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The worked example of "Proving the cluster secret".
const EXAMPLE_SECRET: &[u8] = b"example-cluster-secret-0123456789";
const EXAMPLE_NI: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const EXAMPLE_NR: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];

/// The body bytes (after the 12-byte header) of example `name`.
fn body_of(name: &str) -> Vec<u8> {
    example(name)[12..].to_vec()
}

fn auth_request(id: u32, proof: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Request {
        id,
        kind: RequestKind::Auth { proof },
    }
    .encode(&mut out);
    out
}

#[test]
fn cluster_secret_examples() {
    // The document's nonces and proofs are the worked example's HMACs.
    let secret = ClusterSecret::from_bytes(EXAMPLE_SECRET).unwrap();
    let id = VECTOR_MEMBERS.split(',').next().unwrap().as_bytes();
    assert_eq!(body_of("CHALLENGE request"), EXAMPLE_NI);
    assert_eq!(body_of("CHALLENGE OK response"), EXAMPLE_NR);
    assert_eq!(
        body_of("AUTH request"),
        secret.initiator_proof(id, &EXAMPLE_NI, &EXAMPLE_NR)
    );
    assert_eq!(
        body_of("AUTH OK response"),
        secret.responder_proof(id, &EXAMPLE_NI, &EXAMPLE_NR)
    );

    let dir = TempDir::new("secret");
    let mut text = EXAMPLE_SECRET.to_vec();
    text.push(b'\n');
    let path = dir.write("cluster.secret", &text);
    let path = path.to_str().unwrap();
    let s = TestServer::start(&[
        "--group",
        "thumbs",
        "--origin",
        "none",
        "--advertise",
        VECTOR_SELF,
        "--peers",
        VECTOR_MEMBERS,
        "--cluster-secret-file",
        path,
    ]);
    let mut w = Wire::connect(s.addr());
    w.check("HELLO request", "HELLO OK response");
    // A member's HELLO alone no longer gives peer rights.
    w.check(
        "FETCH request",
        "FETCH FORBIDDEN response, without the proof",
    );
    let unproven = message_of("FETCH FORBIDDEN response, without the proof");
    let got = w.exchange(&example("STORE request"));
    let mut want = Vec::new();
    Response::error(14, Opcode::Store as u8, Status::Forbidden, &unproven).encode(&mut want);
    assert_frame_eq(&got, &want, "STORE without the proof");
    let challenge = |w: &mut Wire| -> [u8; 16] {
        let got = w.exchange(&example("CHALLENGE request"));
        let want = example("CHALLENGE OK response");
        assert_eq!(got.len(), want.len(), "CHALLENGE answer:\n{}", hex(&got));
        assert_frame_eq(&got[..12], &want[..12], "CHALLENGE OK header");
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&got[12..]);
        assert_ne!(nonce, EXAMPLE_NR, "a fresh random nonce");
        nonce
    };
    // The document's AUTH, replayed against a fresh nonce, is refused, and uses the
    // challenge up: the right proof for it is refused afterwards too.
    let nonce = challenge(&mut w);
    w.check("AUTH request", "AUTH FORBIDDEN response");
    let late = w.exchange(&auth_request(
        21,
        &secret.initiator_proof(id, &EXAMPLE_NI, &nonce),
    ));
    assert_eq!(late[7], Status::Forbidden as u8, "{}", hex(&late));
    // A proof made with another secret is refused.
    let nonce = challenge(&mut w);
    let wrong = ClusterSecret::from_bytes(b"some other cluster's secret").unwrap();
    let got = w.exchange(&auth_request(
        21,
        &wrong.initiator_proof(id, &EXAMPLE_NI, &nonce),
    ));
    assert_frame_eq(&got, &example("AUTH FORBIDDEN response"), "wrong secret");
    w.check(
        "FETCH request",
        "FETCH FORBIDDEN response, without the proof",
    );
    // The right proof over the real nonce: OK with the responder's proof over it.
    let nonce = challenge(&mut w);
    let got = w.exchange(&auth_request(
        21,
        &secret.initiator_proof(id, &EXAMPLE_NI, &nonce),
    ));
    let mut want = example("AUTH OK response");
    want.truncate(12);
    want.extend_from_slice(&secret.responder_proof(id, &EXAMPLE_NI, &nonce));
    assert_frame_eq(&got, &want, "AUTH with the right proof");
    w.check("INVALIDATE request", "INVALIDATE OK response");
    w.check("STORE request", "STORE OK response");
    w.check("PURGE request", "PURGE OK response");
    assert!(s.stat("peer_auth_failures") >= 4);

    // A node without a secret refuses the handshake.
    let plain = vector_member();
    Wire::connect(plain.addr()).check("CHALLENGE request", "CHALLENGE FORBIDDEN response");
}
