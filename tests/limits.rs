//! Connection limits (issue 10, items 3-6): what a connection may cost in memory and
//! in time, against the real server over real sockets. Memory is checked with the
//! server's own count of bytes held in connection buffers (STATS conn_buffer_bytes)
//! and, generously, with its resident set size from /proc.
//!
//! Also the wire fuzzer: random valid, mutated and truncated frames over many
//! connections for `GROUPCACHED_FUZZ_SECS` seconds (default 3; the seed is
//! `GROUPCACHED_FUZZ_SEED`), after which the server must answer correctly with
//! bounded memory.
//!
//! `cargo test --release --test limits -- --ignored --nocapture` measures the figures
//! quoted in docs/operations.md ("Limits and failure behaviour").
//!
//! One file (about 700 lines): every test here measures the same two quantities
//! (buffer bytes, RSS) with the same helpers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_until, Raw, Rng, TestServer, DEADLINE};
use groupcached_client::protocol::{
    Frame, FrameBuffer, KeyRef, Limits, Request, RequestKind, ResponseBody, Status,
};
use groupcached_client::{OwnedBody, OwnedResponse};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const SET: u8 = 0x02;

/// The 12 header bytes of a version-1 request frame whose length prefix is `len`.
fn header(len: u32, opcode: u8, id: u32) -> Vec<u8> {
    let mut h = len.to_be_bytes().to_vec();
    h.extend_from_slice(&[1, opcode, 0, 0]);
    h.extend_from_slice(&id.to_be_bytes());
    h
}

fn ping(id: u32, payload: &[u8]) -> Vec<u8> {
    common::encode(&Request {
        id,
        kind: RequestKind::Ping(payload),
    })
}

fn set(id: u32, key: &[u8], value: &[u8]) -> Vec<u8> {
    common::encode(&Request {
        id,
        kind: RequestKind::Set {
            key: KeyRef::new(b"default", key),
            ttl_ms: 0,
            value,
        },
    })
}

fn get(id: u32, key: &[u8]) -> Vec<u8> {
    common::encode(&Request {
        id,
        kind: RequestKind::Get(KeyRef::new(b"default", key)),
    })
}

/// Reads one response frame from a plain socket (that is sent no other).
fn recv_one(s: &mut TcpStream) -> OwnedResponse {
    let mut fb = FrameBuffer::new(Limits::default(), 16 * 1024);
    recv_next(s, &mut fb)
}

/// Reads the next response frame from a socket, through its read buffer `fb`.
fn recv_next(s: &mut TcpStream, fb: &mut FrameBuffer) -> OwnedResponse {
    loop {
        match fb.next_frame().expect("a valid frame") {
            Some(Frame::Response(r)) => return OwnedResponse::from_response(&r),
            Some(other) => panic!("{other:?}"),
            None => {
                let n = s.read(fb.read_space()).expect("read a response");
                assert!(n > 0, "closed before answering");
                fb.commit(n);
            }
        }
    }
}

fn connect(server: &TestServer) -> TcpStream {
    let s = TcpStream::connect_timeout(&server.addr(), DEADLINE).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.set_write_timeout(Some(DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A counter read over a fresh connection (for servers that close idle ones).
fn fresh_stat(server: &TestServer, name: &str) -> u64 {
    server.forget_stats_client();
    server.stat(name)
}

fn rss_mib(server: &TestServer) -> f64 {
    server.rss_kib().expect("VmRSS of the server") as f64 / 1024.0
}

/// The server still answers: PING, and a SET then GET round trip.
fn assert_serving(server: &TestServer) {
    let mut c = server.client();
    c.ping().expect("PING after the abuse");
    c.set("default", "still-here", b"yes", None)
        .expect("SET after the abuse");
    let v = c.get("default", "still-here").expect("GET after the abuse");
    assert_eq!(v.as_deref(), Some(&b"yes"[..]));
}

/// Opens `n` connections that each send a header declaring a frame of `max_frame`
/// bytes and one byte of its body, and waits until the server holds all of them.
fn open_max_headers(server: &TestServer, n: usize, max_frame: u32) -> Vec<TcpStream> {
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = connect(server);
        let mut h = header(max_frame, SET, i as u32);
        h.push(7);
        s.write_all(&h).unwrap();
        socks.push(s);
    }
    // Every header has been read once each connection holds its 16 KiB read buffer.
    let want = n as u64 * 16 * KIB;
    server.wait_stat("conn_buffer_bytes", &format!(">= {want}"), |v| v >= want);
    socks
}

#[test]
fn headers_declaring_the_largest_frame_commit_no_memory() {
    let server = TestServer::start(&["--threads", "2"]);
    assert_serving(&server);
    let before = rss_mib(&server);
    let n = 200;
    let socks = open_max_headers(&server, n, 16 << 20);
    let held = server.stat("conn_buffer_bytes");
    // Before the fix each of these committed 16 MiB (3.2 GiB in all).
    assert!(
        held <= (n as u64 + 4) * 32 * KIB,
        "{n} stalled headers hold {held} bytes of buffers"
    );
    let grown = rss_mib(&server) - before;
    assert!(grown < 64.0, "RSS grew by {grown:.1} MiB");
    assert_serving(&server);
    drop(socks);
    server.wait_stat("curr_connections", "== 1 (the stats client)", |v| v == 1);
}

#[test]
fn slowloris_frames_are_closed_by_the_frame_timeout() {
    let server = TestServer::start(&["--threads", "2", "--frame-timeout", "1s"]);
    let before = rss_mib(&server);
    let n = 20u32;
    let mut raws: Vec<Raw> = (0..n).map(|_| server.raw()).collect();
    for (i, r) in raws.iter_mut().enumerate() {
        r.send_bytes(&header(1 << 20, SET, 100 + i as u32));
    }
    // One byte a connection every 100 ms, until the server closes them.
    let stop = Arc::new(AtomicBool::new(false));
    let mut streams: Vec<TcpStream> = raws.iter().map(|r| r.stream.try_clone().unwrap()).collect();
    let trickle = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                for s in &mut streams {
                    let _ = s.write(&[0]);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // A slow frame that does complete in time is answered.
    let mut slow = server.raw();
    let frame = ping(7, b"slow but in time");
    for part in frame.chunks(frame.len() / 3 + 1) {
        slow.send_bytes(part);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(slow.recv().status, Status::Ok);
    for (i, r) in raws.iter_mut().enumerate() {
        let resp = r.recv();
        assert_eq!(resp.status, Status::Timeout, "{resp:?}");
        assert_eq!(
            resp.id,
            100 + i as u32,
            "the TIMEOUT names the stalled request"
        );
        r.expect_closed();
    }
    stop.store(true, Ordering::Release);
    trickle.join().unwrap();
    assert_eq!(server.stat("frame_timeouts"), n as u64);
    // The well-behaved connection is still open and served.
    slow.send_bytes(&ping(8, b"again"));
    assert_eq!(slow.recv().id, 8);
    let grown = rss_mib(&server) - before;
    assert!(grown < 32.0, "RSS grew by {grown:.1} MiB");
    assert_serving(&server);
}

#[test]
fn a_connection_closing_after_an_error_is_not_kept_for_a_client_that_never_reads() {
    // An answer the client never reads, then a fatal error: the connection is closed
    // once its output is written, and anyway once the client has taken none of it
    // for --frame-timeout. A small receive buffer keeps the answer in the server.
    let server = TestServer::start(&["--threads", "1", "--frame-timeout", "1s"]);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&server.addr().into()).unwrap();
    let mut s: TcpStream = sock.into();
    let mut batch = ping(1, &vec![9u8; 3 << 20]);
    batch.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    s.write_all(&batch).unwrap();
    server.wait_stat("protocol_errors", ">= 1", |v| v >= 1);
    let held = server.stat("conn_buffer_bytes");
    assert!(
        held >= 2 * MIB,
        "the answer should be stuck in the server ({held})"
    );
    server.wait_stat("curr_connections", "== 1 (the stats client)", |v| v == 1);
    server.wait_stat("conn_buffer_bytes", "<= 64 KiB", |v| v <= 64 * KIB);
}

#[test]
fn idle_connections_are_closed_and_busy_ones_kept() {
    let server = TestServer::start(&["--threads", "2", "--idle-timeout", "1s"]);
    let mut idle = server.raw();
    let mut busy = server.raw();
    let start = Instant::now();
    let mut id = 0;
    // Busy for well over the timeout: a request every 200 ms keeps it open.
    while start.elapsed() < Duration::from_millis(2500) {
        id += 1;
        busy.send_bytes(&ping(id, b"hi"));
        assert_eq!(busy.recv().id, id);
        std::thread::sleep(Duration::from_millis(200));
    }
    idle.expect_closed();
    wait_until("idle_timeouts >= 1", || {
        fresh_stat(&server, "idle_timeouts") >= 1
    });
    busy.send_bytes(&ping(99, b"still open"));
    assert_eq!(busy.recv().id, 99);
}

#[test]
fn idle_timeout_is_off_by_default() {
    let server = TestServer::start(&["--threads", "1"]);
    let mut quiet = server.raw();
    // Longer than the 1 s after which idle buffers are freed: the connection is
    // kept, and its buffers are given back (an idle connection holds no memory).
    quiet.send_bytes(&ping(1, b"x"));
    assert_eq!(quiet.recv().id, 1);
    server.forget_stats_client();
    let mut probe = server.raw();
    wait_until("the quiet connection's buffers to be freed", || {
        probe.send_bytes(&common::encode(&Request {
            id: 5,
            kind: RequestKind::Stats,
        }));
        let r = probe.recv();
        let OwnedBody::Stats(list) = r.body else {
            panic!("{r:?}")
        };
        let held = list
            .iter()
            .find(|(n, _)| *n == "conn_buffer_bytes")
            .map(|(_, v)| v)
            .unwrap();
        // Only the probe's own buffers remain.
        held <= 40 * KIB
    });
    quiet.send_bytes(&ping(2, b"y"));
    assert_eq!(quiet.recv().id, 2);
    assert_eq!(fresh_stat(&server, "idle_timeouts"), 0);
}

#[test]
fn a_client_that_never_reads_its_pongs_costs_one_answer() {
    let server = TestServer::start(&["--threads", "2"]);
    let before = rss_mib(&server);
    let payload: Vec<u8> = (0..(16 << 20) - 8).map(|i| (i % 251) as u8).collect();
    let payload = Arc::new(payload);
    let clients = 2;
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for c in 0..clients {
        let s = connect(&server);
        readers.push(s.try_clone().unwrap());
        let payload = payload.clone();
        writers.push(std::thread::spawn(move || {
            let mut s = s;
            s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
            for i in 0..3 {
                s.write_all(&ping(c * 10 + i, &payload)).unwrap();
            }
        }));
    }
    // Each connection reads one PING, queues its 16 MiB PONG and stops reading.
    let floor = clients as u64 * 15 * MIB;
    server.wait_stat("conn_buffer_bytes", &format!(">= {floor}"), |v| v >= floor);
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(server.stat("conn_buffer_bytes"));
        std::thread::sleep(Duration::from_millis(25));
    }
    // Before: 16 MiB of input + 16 MiB of output each. Now: the answer only.
    let bound = clients as u64 * (16 * MIB + 4 * MIB);
    assert!(peak <= bound, "{peak} bytes held, bound {bound}");
    let grown = rss_mib(&server) - before;
    assert!(grown < 100.0, "RSS grew by {grown:.1} MiB");
    // Others are served meanwhile.
    assert_serving(&server);
    // Reading now yields every PONG intact.
    for (c, mut r) in readers.into_iter().enumerate() {
        r.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut fb = FrameBuffer::new(Limits::default(), 64 * 1024);
        let mut got = 0;
        while got < 3 {
            match fb.next_frame().expect("valid frames") {
                Some(Frame::Response(resp)) => {
                    assert_eq!(resp.id, c as u32 * 10 + got);
                    match resp.body {
                        ResponseBody::Pong(p) => {
                            assert!(p == &payload[..], "PONG payload differs")
                        }
                        other => panic!("{other:?}"),
                    }
                    got += 1;
                }
                Some(other) => panic!("{other:?}"),
                None => {
                    let n = r.read(fb.read_space()).unwrap();
                    assert!(n > 0, "closed early");
                    fb.commit(n);
                }
            }
        }
    }
    for w in writers {
        w.join().unwrap();
    }
}

#[test]
fn pipelined_large_answers_are_paced_not_dropped() {
    // Reading stops at 4 MiB of unsent answers, and so does decoding what was read:
    // 60 GETs of a 1 MiB value in one write are answered as the client reads, never
    // queued at once (which would pass --max-conn-output, 6 MiB here, and close it).
    let server = TestServer::start(&["--threads", "1", "--max-frame", "1MiB"]);
    let value = vec![0xab; 1000 * 1000];
    let mut c = server.client();
    c.set("default", "big", &value, None).unwrap();
    let mut s = connect(&server);
    let n = 60u32;
    let batch: Vec<u8> = (0..n).flat_map(|i| get(i, b"big")).collect();
    s.write_all(&batch).unwrap();
    // Some answers are queued (the rest of the first 4 MiB sits in socket buffers).
    let floor = MIB;
    server.wait_stat("conn_buffer_bytes", &format!(">= {floor}"), |v| v >= floor);
    let held = server.stat("conn_buffer_bytes");
    assert!(held <= 4 * MIB + 2 * MIB, "{held} bytes of answers queued");
    let mut fb = FrameBuffer::new(Limits::default(), 64 * 1024);
    for i in 0..n {
        let r = recv_next(&mut s, &mut fb);
        assert_eq!((r.id, r.status), (i, Status::Ok));
    }
    assert_eq!(server.stat("output_overflows"), 0);
}

#[test]
fn answers_past_max_conn_output_close_the_connection() {
    let server = TestServer::start(&[
        "--threads",
        "2",
        "--max-frame",
        "1MiB",
        "--max-conn-output",
        "5MiB",
        "--origin",
        "synthetic:size=900000,delay_ms=20",
    ]);
    let mut s = connect(&server);
    // 64 answers of 900 kB, each arriving when its load completes (so decoding could
    // not pace them): 57 MB owed to a client that does not read.
    let mut batch = Vec::new();
    for i in 0..64u32 {
        batch.extend(get(i, format!("k{i}").as_bytes()));
    }
    s.write_all(&batch).unwrap();
    server.wait_stat("output_overflows", ">= 1", |v| v >= 1);
    // The client finds its connection closed after some answers.
    let mut sink = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 64 * 900_000, "all {total} bytes arrived");
    assert_eq!(server.stat("output_overflows"), 1);
    assert_serving(&server);
    let held = server.stat("conn_buffer_bytes");
    assert!(held < 2 * MIB, "{held} bytes still held");
}

#[test]
fn buffer_memory_limit_holds_back_big_frames_and_serves_everyone() {
    let server = TestServer::start(&[
        "--threads",
        "1",
        "--max-frame",
        "1MiB",
        "--max-buffer-memory",
        "2MiB",
    ]);
    let n = 12u32;
    let value = vec![0x5a; 1000 * 1000];
    let release = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..n {
        let frame = set(i, format!("big{i}").as_bytes(), &value);
        let mut s = connect(&server);
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let release = release.clone();
        clients.push(std::thread::spawn(move || {
            let (most, last) = frame.split_at(frame.len() - 1);
            s.write_all(most).unwrap();
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(5));
            }
            s.write_all(last).unwrap();
            recv_one(&mut s)
        }));
    }
    server.wait_stat("buffer_memory_pauses", ">= 1", |v| v >= 1);
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        let addr = server.addr();
        std::thread::spawn(move || {
            let mut c = groupcached_client::Client::connect(addr).unwrap();
            while sampling.load(Ordering::Acquire) {
                let v = c.stats().unwrap().get("conn_buffer_bytes").unwrap();
                peak.fetch_max(v, Ordering::Relaxed);
            }
        })
    };
    // Small requests are served while the big frames wait.
    assert_serving(&server);
    release.store(true, Ordering::Release);
    for c in clients {
        let resp = c.join().unwrap();
        assert_eq!(resp.status, Status::Ok, "{resp:?}");
    }
    sampling.store(false, Ordering::Release);
    sampler.join().unwrap();
    // The limit, plus the one frame the core lets grow past it, plus one growth
    // step and the base buffers of each connection.
    let peak = peak.load(Ordering::Relaxed);
    let bound = 2 * MIB + (MIB + 16 * KIB) + MIB + (n as u64 + 4) * 32 * KIB;
    assert!(peak <= bound, "peak {peak} > bound {bound}");
    assert_eq!(server.stat("frame_timeouts"), 0);
    let mut c = server.client();
    for i in 0..n {
        let v = c.get("default", format!("big{i}")).unwrap().unwrap();
        assert_eq!(v.len(), value.len());
    }
}

/// Found by scripts/soak.sh: a connection held back by the buffer memory limit that
/// received more bytes while the core's grant was free made the core loop forever
/// without reading (read_conn granted it, release_grant took the grant back because
/// the connection was still marked paused, and so on): every client of that core,
/// and the peers, got no answer. Several connections trickling large frames keep
/// pausing, waking and completing, so the grant changes hands while paused
/// connections get new bytes.
#[test]
fn memory_paused_connections_woken_by_new_bytes_do_not_stall_the_core() {
    let server = TestServer::start(&[
        "--threads",
        "1",
        "--max-frame",
        "1MiB",
        "--max-buffer-memory",
        "2MiB",
    ]);
    // Two clients that pipeline PINGs and never read keep the node over its buffer
    // memory limit with their unsent answers, as in the soak.
    let mut hogs = Vec::new();
    for i in 0..2u32 {
        let mut s = connect(&server);
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let frame = ping(i, &vec![0x70; 64 * 1024]);
        while s.write_all(&frame).is_ok() {}
        hogs.push(s);
    }
    server.wait_stat("conn_buffer_bytes", "> 2 MiB", |v| v > 2 * MIB);
    let (conns, frames) = (6u32, 3u32);
    let value = vec![0x33; 1000 * 1000];
    let mut clients = Vec::new();
    for c in 0..conns {
        let mut s = connect(&server);
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let value = value.clone();
        clients.push(std::thread::spawn(move || {
            let mut statuses = Vec::new();
            for f in 0..frames {
                let frame = set(f, format!("trickle-{c}-{f}").as_bytes(), &value);
                for chunk in frame.chunks(32 * 1024) {
                    s.write_all(chunk).unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
                statuses.push(recv_one(&mut s).status);
            }
            statuses
        }));
    }
    for c in clients {
        let statuses = c
            .join()
            .expect("every SET answered (a stalled core answers none)");
        assert!(statuses.iter().all(|s| *s == Status::Ok), "{statuses:?}");
    }
    assert!(
        server.stat("buffer_memory_pauses") >= 1,
        "the limit was never reached"
    );
    assert_serving(&server);
    drop(hogs);
}

/// One random piece of traffic: a valid frame, a mutated one, a truncated one or noise.
fn fuzz_piece(rng: &mut Rng) -> Vec<u8> {
    let id = rng.next() as u32;
    let key = format!("k{}", rng.below(64));
    let valid = match rng.below(6) {
        0 => get(id, key.as_bytes()),
        1 => set(id, key.as_bytes(), &vec![b'v'; rng.below(40_000)]),
        2 => ping(id, &vec![b'p'; rng.below(3000)]),
        3 => common::encode(&Request {
            id,
            kind: RequestKind::Delete(KeyRef::new(b"default", key.as_bytes())),
        }),
        4 => common::encode(&Request {
            id,
            kind: RequestKind::Stats,
        }),
        _ => header(rng.next() as u32 % (1 << 21), rng.below(12) as u8, id),
    };
    match rng.below(4) {
        0 => valid,
        1 => {
            let mut m = valid;
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len());
                m[i] = rng.next() as u8;
            }
            m
        }
        2 => {
            let cut = rng.below(valid.len());
            valid[..cut].to_vec()
        }
        _ => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
    }
}

#[test]
fn wire_fuzz_keeps_serving_with_bounded_memory() {
    let secs: u64 = std::env::var("GROUPCACHED_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // GROUPCACHED_FUZZ_SEED replays a run (each failure message names its seed).
    let seed: u64 = std::env::var("GROUPCACHED_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    eprintln!("wire fuzz: {secs} s, GROUPCACHED_FUZZ_SEED={seed}");
    let server = TestServer::start(&["--threads", "2", "--frame-timeout", "500ms"]);
    assert_serving(&server);
    let before = rss_mib(&server);
    let stop_at = Instant::now() + Duration::from_secs(secs);
    let addr = server.addr();
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ (w + 1).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
                let mut conns = 0u64;
                while Instant::now() < stop_at {
                    let Ok(mut s) = TcpStream::connect_timeout(&addr, DEADLINE) else {
                        continue;
                    };
                    s.set_write_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                    conns += 1;
                    let mut sink = vec![0u8; 64 * 1024];
                    for _ in 0..1 + rng.below(30) {
                        if s.write_all(&fuzz_piece(&mut rng)).is_err() {
                            break;
                        }
                        if rng.below(4) == 0 {
                            // Read some answers, or not: either way is allowed.
                            let _ = s.read(&mut sink);
                        }
                    }
                    // Some connections are left open, half-sent, for a while.
                    if rng.below(8) == 0 {
                        std::thread::sleep(Duration::from_millis(rng.below(300) as u64));
                    }
                }
                conns
            })
        })
        .collect();
    let conns: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(conns > 20, "only {conns} fuzz connections");
    assert_serving(&server);
    server.wait_stat("curr_connections", "== 1 once the fuzzers are gone", |v| {
        v == 1
    });
    // Every buffer was given back but the stats connection's.
    server.wait_stat("conn_buffer_bytes", "<= 64 KiB", |v| v <= 64 * KIB);
    let grown = rss_mib(&server) - before;
    assert!(grown < 64.0, "RSS grew by {grown:.1} MiB");
    assert!(
        server.stat("protocol_errors") > 0,
        "the fuzzer sent no bad frames?"
    );
    assert!(
        !server.logs().iter().any(|l| l.contains("panicked")),
        "the server panicked"
    );
}

/// The figures in docs/operations.md. Run on purpose, in release mode:
/// `cargo test --release --test limits -- --ignored --nocapture figures`.
#[test]
#[ignore = "measures figures for the docs; takes about 70 s"]
fn figures() {
    let server = TestServer::start(&["--threads", "2"]);
    assert_serving(&server);
    let base = rss_mib(&server);
    let socks = open_max_headers(&server, 1000, 16 << 20);
    let with = rss_mib(&server);
    println!(
        "1000 connections each holding a header that declares a 16 MiB frame: \
         RSS {base:.1} -> {with:.1} MiB (+{:.1} MiB), conn_buffer_bytes {}",
        with - base,
        server.stat("conn_buffer_bytes")
    );
    drop(socks);
    server.wait_stat("curr_connections", "== 1", |v| v == 1);

    let base = rss_mib(&server);
    let n = 100;
    let mut streams: Vec<TcpStream> = (0..n)
        .map(|i| {
            let mut s = connect(&server);
            s.write_all(&header(16 << 20, SET, i)).unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    let mut peak = base;
    let mut closed_at = None;
    while start.elapsed() < Duration::from_secs(60) {
        for s in &mut streams {
            let _ = s.write(&[0]);
        }
        peak = peak.max(rss_mib(&server));
        if closed_at.is_none() && server.stat("frame_timeouts") >= n as u64 {
            closed_at = Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    println!(
        "100 slowloris connections (1 byte/s) for 60 s: RSS {base:.1} -> peak {peak:.1} MiB \
         (+{:.1} MiB), frame_timeouts {} (all closed after {:?}), RSS at the end {:.1} MiB",
        peak - base,
        server.stat("frame_timeouts"),
        closed_at,
        rss_mib(&server)
    );
    assert!(peak - base < 32.0);
    assert!(closed_at.is_some());
}
