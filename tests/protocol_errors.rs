//! Bad input over raw sockets: oversized, garbage, unknown and malformed frames,
//! clients that never read or vanish mid-response, the connection limit, and keys
//! that try to leave a `dir:` origin. Each time the server answers what it can, closes
//! what it must, and keeps serving everyone else.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use common::{encode, wait_until, Raw, TempDir, TestServer};
use groupcached_client::protocol::{
    KeyRef, Opcode, Request, RequestKind, Response, ResponseBody, Status, PROTOCOL_VERSION,
};
use groupcached_client::{Client, Error, OwnedBody};

const G: &str = "default";

fn get<'a>(id: u32, group: &'a [u8], key: &'a [u8]) -> Request<'a> {
    Request {
        id,
        kind: RequestKind::Get(KeyRef::new(group, key)),
    }
}

fn ping(id: u32) -> Request<'static> {
    Request {
        id,
        kind: RequestKind::Ping(b"still there?"),
    }
}

/// Asserts that `raw` still answers a PING (the connection survived).
fn assert_usable(raw: &mut Raw, id: u32) {
    raw.send(&ping(id));
    let r = raw.recv();
    assert_eq!((r.id, r.status), (id, Status::Ok), "{r:?}");
    assert_eq!(r.body, OwnedBody::Pong(b"still there?".to_vec()));
}

/// Asserts that a fresh client is served.
fn assert_others_served(s: &TestServer) {
    let mut c = s.client();
    c.set(G, "probe", b"alive", None).unwrap();
    assert_eq!(c.get(G, "probe").unwrap().unwrap().as_bytes(), b"alive");
}

fn status_of(e: &Error) -> Option<Status> {
    match e {
        Error::Server { status, .. } => Some(*status),
        _ => None,
    }
}

#[test]
fn oversized_frame_is_refused_from_its_header_and_skipped() {
    let s = TestServer::start(&["--max-frame", "64KiB", "--origin", "none"]);
    let mut raw = s.raw();
    let value = vec![0x5au8; 1 << 20];
    let frame = encode(&Request {
        id: 77,
        kind: RequestKind::Set {
            key: KeyRef::new(G.as_bytes(), b"huge"),
            ttl_ms: 0,
            value: &value,
        },
    });
    // Only the header and a few body bytes: the refusal must not wait for the body.
    raw.send_bytes(&frame[..100]);
    let r = raw.recv();
    assert_eq!(r.id, 77, "{r:?}");
    assert_eq!(r.opcode, Opcode::Set as u8);
    assert_eq!(r.status, Status::TooLarge, "{r:?}");
    // The rest of the body is skipped as it arrives, and the connection goes on.
    raw.send_bytes(&frame[100..]);
    assert_usable(&mut raw, 78);
    raw.send(&get(79, G.as_bytes(), b"huge"));
    let r = raw.recv();
    assert_eq!(
        (r.id, r.status),
        (79, Status::NotFound),
        "nothing was stored"
    );
    assert_eq!(s.stat("protocol_errors"), 1);
    assert_others_served(&s);
}

#[test]
fn text_first_gets_a_one_line_hint_and_is_closed_while_others_are_served() {
    // A connection that opens with text (HTTP, a memcached client, nc) is told in one
    // line what this port speaks, instead of waiting for a 12-byte header.
    let s = TestServer::start(&["--origin", "none"]);
    let mut other = s.client();
    other.set(G, "k", b"v", None).unwrap();
    let mut raw = s.raw();
    raw.send_bytes(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut text = String::new();
    raw.stream.read_to_string(&mut text).unwrap();
    assert!(
        text.starts_with("this port speaks groupcached's binary protocol"),
        "{text}"
    );
    assert!(
        text.contains("--memcache-listen") && text.ends_with("\r\n"),
        "{text}"
    );
    assert_eq!(other.get(G, "k").unwrap().unwrap().as_bytes(), b"v");
    assert_others_served(&s);
}

#[test]
fn http_garbage_after_a_frame_gets_bad_version_and_is_closed() {
    let s = TestServer::start(&["--origin", "none"]);
    let mut raw = s.raw();
    assert_usable(&mut raw, 1);
    raw.send_bytes(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let r = raw.recv();
    assert_eq!(r.status, Status::BadVersion, "{r:?}");
    raw.expect_closed();
    assert_others_served(&s);
}

#[test]
fn other_protocol_version_gets_bad_version_and_is_closed() {
    let s = TestServer::start(&[]);
    let mut raw = s.raw();
    let mut frame = encode(&ping(3));
    frame[4] = PROTOCOL_VERSION + 1;
    raw.send_bytes(&frame);
    let r = raw.recv();
    assert_eq!((r.id, r.status), (3, Status::BadVersion), "{r:?}");
    raw.expect_closed();
    assert_others_served(&s);
}

#[test]
fn unknown_opcode_is_answered_and_the_connection_stays_usable() {
    let s = TestServer::start(&[]);
    let mut raw = s.raw();
    // Header only: len 8, version, opcode 0x7f, flags 0, status 0, id 5.
    let mut frame = vec![0, 0, 0, 8, PROTOCOL_VERSION, 0x7f, 0, 0, 0, 0, 0, 5];
    raw.send_bytes(&frame);
    let r = raw.recv();
    assert_eq!(
        (r.id, r.opcode, r.status),
        (5, 0x7f, Status::UnknownOp),
        "{r:?}"
    );
    assert_usable(&mut raw, 6);
    // With a body, which is skipped.
    frame[3] = 8 + 10;
    frame[11] = 7;
    frame.extend_from_slice(&[0xee; 10]);
    raw.send_bytes(&frame);
    let r = raw.recv();
    assert_eq!((r.id, r.status), (7, Status::UnknownOp), "{r:?}");
    assert_usable(&mut raw, 8);
}

#[test]
fn bad_key_and_group_lengths_are_bad_requests_on_a_usable_connection() {
    let s = TestServer::start(&["--origin", "synthetic:size=4"]);
    let mut raw = s.raw();
    let long_key = vec![b'k'; 4097];
    let long_group = vec![b'g'; 65];
    let cases: [(u32, &[u8], &[u8]); 3] = [
        (10, G.as_bytes(), &long_key),
        (11, &long_group, b"key"),
        (12, G.as_bytes(), b""),
    ];
    for (id, group, key) in cases {
        raw.send(&get(id, group, key));
        let r = raw.recv();
        assert_eq!((r.id, r.status), (id, Status::BadRequest), "{r:?}");
        assert_usable(&mut raw, id + 100);
    }
    // The longest legal key works.
    let max_key = vec![b'k'; 4096];
    raw.send(&get(20, G.as_bytes(), &max_key));
    let r = raw.recv();
    assert_eq!((r.id, r.status), (20, Status::Ok), "{r:?}");
    assert_eq!(
        s.stat("group.default.gets"),
        1,
        "refused requests reach no group"
    );
}

#[test]
fn unknown_group_is_refused_and_the_connection_stays_usable() {
    let s = TestServer::start(&["--origin", "synthetic:size=4"]);
    let mut c = s.client();
    let err = c.get("nosuchgroup", "k").unwrap_err();
    assert_eq!(status_of(&err), Some(Status::UnknownGroup), "{err}");
    let err = c.set("nosuchgroup", "k", b"v", None).unwrap_err();
    assert_eq!(status_of(&err), Some(Status::UnknownGroup), "{err}");
    let err = c.delete("nosuchgroup", "k").unwrap_err();
    assert_eq!(status_of(&err), Some(Status::UnknownGroup), "{err}");
    assert_eq!(c.get(G, "k").unwrap().unwrap().len(), 4);
}

#[test]
fn malformed_and_truncated_frames_get_an_error_then_close() {
    let s = TestServer::start(&[]);
    // Trailing bytes after the last field: framing can no longer be trusted.
    let mut raw = s.raw();
    let mut frame = encode(&get(31, G.as_bytes(), b"k"));
    frame[3] += 3;
    frame.extend_from_slice(b"xyz");
    raw.send_bytes(&frame);
    let r = raw.recv();
    assert_eq!((r.id, r.status), (31, Status::BadRequest), "{r:?}");
    raw.expect_closed();
    // A length prefix shorter than the header.
    let mut raw = s.raw();
    raw.send_bytes(&[0, 0, 0, 3, 1, 1, 0, 0, 0, 0, 0, 1]);
    let r = raw.recv();
    assert_eq!(r.status, Status::BadRequest, "{r:?}");
    raw.expect_closed();
    assert_others_served(&s);
}

#[test]
fn a_response_frame_sent_to_the_server_gets_an_error_then_close() {
    let s = TestServer::start(&[]);
    let mut raw = s.raw();
    let mut frame = Vec::new();
    Response {
        id: 42,
        opcode: Opcode::Ping as u8,
        status: Status::Ok,
        body: ResponseBody::Pong(b"pong"),
    }
    .encode(&mut frame);
    raw.send_bytes(&frame);
    let r = raw.recv();
    assert_eq!((r.id, r.status), (42, Status::BadRequest), "{r:?}");
    raw.expect_closed();
    assert_others_served(&s);
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory_and_blocks_nobody() {
    let s = TestServer::start(&["--origin", "none", "--threads", "2"]);
    let big = vec![0xabu8; 1 << 20];
    let mut setter = s.client();
    setter.set(G, "big", &big, None).unwrap();
    setter.set(G, "small", b"tiny", None).unwrap();
    let rss_before = s.rss_kib();

    // Pipeline GETs of the 1 MiB value and never read a byte of the answers.
    let mut hog = s.raw();
    hog.stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let batch: Vec<u8> = (0..1000)
        .flat_map(|i| encode(&get(i + 1, G.as_bytes(), b"big")))
        .collect();
    let mut sent = 0usize;
    // Either the server stops reading (the requests it took are answered from the
    // key's core by reference to one cached value), or, when those answers come back
    // from another core faster than backpressure can see them, it closes the hog for
    // passing --max-conn-output. Both bound what the hog costs.
    let mut closed = false;
    let blocked = loop {
        match hog.stream.write_all(&batch) {
            Ok(()) => sent += batch.len(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break true
            }
            Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {
                closed = true;
                break true;
            }
            Err(e) => panic!("writing to the server: {e}"),
        }
        // Kernel buffers hold a few MiB; a server still reading after this much is not
        // bounding what it takes in for a client that never reads.
        if sent > 64 << 20 {
            break false;
        }
    };
    assert!(blocked, "the server kept reading {sent} bytes of requests");

    // Meanwhile another client is served promptly.
    let mut other = s.client_with_timeout(Duration::from_secs(10));
    for i in 0..100 {
        let v = other.get(G, "small").unwrap();
        assert_eq!(v.unwrap().as_bytes(), b"tiny", "GET {i}");
    }
    assert_eq!(other.get(G, "big").unwrap().unwrap().len(), big.len());
    if closed {
        assert!(s.stat("output_overflows") >= 1);
    } else {
        // hog, the STATS connection, and setter's and other's (shard-aware
        // clients: one connection per core their keys needed).
        let clients = setter.open_connections() + other.open_connections();
        assert_eq!(s.stat("curr_connections"), 2 + clients as u64);
    }
    if let (Some(before), Some(after)) = (rss_before, s.rss_kib()) {
        assert!(
            after < before + 256 * 1024,
            "server RSS grew from {before} KiB to {after} KiB"
        );
    }
    drop(hog);
    drop(setter);
    drop(other);
    s.wait_stat("curr_connections", "back to 1", |n| n == 1);
    assert_others_served(&s);
}

#[test]
fn clients_that_vanish_mid_response_do_not_hurt_the_server() {
    let s = TestServer::start(&["--origin", "none", "--threads", "2"]);
    let value: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut c = s.client();
    c.set(G, "4mib", &value, None).unwrap();
    for round in 0..20u32 {
        let mut raw = s.raw();
        raw.send(&get(round + 1, G.as_bytes(), b"4mib"));
        if round % 2 == 1 {
            // Read part of the answer first, then vanish with the rest unread.
            let mut some = [0u8; 1000];
            raw.stream.read_exact(&mut some).unwrap();
        } else if round % 4 == 0 {
            let _ = raw.stream.shutdown(Shutdown::Both);
        }
        drop(raw);
    }
    // Still serving, and the full value is intact.
    let mut fresh = s.client();
    assert_eq!(
        fresh.get(G, "4mib").unwrap().unwrap().as_bytes(),
        &value[..]
    );
    drop(fresh);
    drop(c);
    // Every abandoned connection is cleaned up (only STATS' own remains).
    s.wait_stat("curr_connections", "back to 1", |n| n == 1);
    assert!(s.stat("total_connections") >= 22);
}

#[test]
fn connections_over_the_limit_are_refused_with_unavailable() {
    let s = TestServer::start(&["--max-connections", "3", "--threads", "2"]);
    let mut held: Vec<Client> = (0..3).map(|_| s.client()).collect();
    for c in &mut held {
        c.ping().unwrap(); // accepted and counted
    }
    let mut fourth = s.raw();
    let r = fourth.recv();
    assert_eq!((r.id, r.status), (0, Status::Unavailable), "{r:?}");
    fourth.expect_closed();

    // Closing one frees a slot (once the server noticed the close).
    held.pop();
    let mut replacement = None;
    let mut refused_meanwhile = 0;
    wait_until("a new connection to be accepted after one closed", || {
        let mut c = s.client();
        match c.ping() {
            Ok(_) => {
                replacement = Some(c);
                true
            }
            Err(e) => {
                assert!(
                    status_of(&e) == Some(Status::Unavailable) || e.breaks_connection(),
                    "{e}"
                );
                refused_meanwhile += 1;
                false
            }
        }
    });
    held.push(replacement.unwrap());
    // Full again.
    let mut fifth = s.raw();
    let r = fifth.recv();
    assert_eq!(r.status, Status::Unavailable, "{r:?}");
    fifth.expect_closed();
    for c in &mut held {
        c.ping().unwrap();
    }
    let stats = held[0].stats().unwrap();
    assert_eq!(
        stats.get("rejected_connections"),
        Some(2 + refused_meanwhile),
        "the fourth, the fifth and any refused while the slot was being freed"
    );
}

#[test]
fn keys_cannot_escape_a_dir_origin() {
    let tmp = TempDir::new("traversal");
    let secret = tmp.write("secret.txt", b"TOP-SECRET-CONTENT");
    tmp.write("public/ok.txt", b"public content");
    tmp.write("public/a/inner.txt", b"inner");
    std::os::unix::fs::symlink(&secret, tmp.path().join("public/link")).unwrap();
    let spec = format!("dir:{}", tmp.path().join("public").display());
    let s = TestServer::start(&["--origin", &spec]);
    let mut c = s.client();
    assert_eq!(
        c.get(G, "ok.txt").unwrap().unwrap().as_bytes(),
        b"public content"
    );
    assert_eq!(
        c.get(G, "a/inner.txt").unwrap().unwrap().as_bytes(),
        b"inner"
    );

    let secret_abs = secret.display().to_string();
    let bad = [
        "../secret.txt",
        "/etc/passwd",
        "a/../../x",
        "a/../../secret.txt",
        "./../secret.txt",
        "..",
        secret_abs.as_str(),
        "link",
    ];
    for key in bad {
        match c.get(G, key) {
            Err(e) => assert_eq!(status_of(&e), Some(Status::BadRequest), "{key}: {e}"),
            Ok(v) => panic!("{key} was answered with {v:?}"),
        }
    }
    // A NUL byte cannot cut a path short either.
    let err = c.get(G, b"ok.txt\0../../secret.txt").unwrap_err();
    assert_eq!(status_of(&err), Some(Status::BadRequest), "{err}");
    assert_eq!(
        s.stat("group.default.main.items"),
        2,
        "nothing else was cached"
    );
}
