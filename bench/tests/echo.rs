//! `groupcached-echo`, the loopback echo server `bench/compare.sh` measures as the
//! ceiling: the generator counts every answer of a pipelined GET/SET run as an op
//! (no error, every GET found), and a bad frame closes its own connection and no
//! other. The echo binds `127.0.0.1:0` and prints the port it got; every wait
//! polls with a deadline.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{assert_clean, bench, text, Proc, DEADLINE};
use groupcached_protocol::{
    Frame, FrameBuffer, KeyRef, Limits, Opcode, Request, RequestKind, ResponseBody, Status,
};

/// The run compare.sh makes against the echo (a plain client, prefill first), small.
#[test]
fn generator_counts_every_answer_of_a_pipelined_get_set_run() {
    let echo = Proc::echo(&["--value-size", "300"]);
    let addr = echo.addr.to_string();
    let (out, j) = bench(
        "echo-get-set",
        &[
            "--server",
            &addr,
            "--shard-aware",
            "off",
            "--prefill",
            "--keys",
            "1000",
            "--requests",
            "20000",
            "--ratio",
            "9:1",
            "--connections",
            "4",
            "--pipeline",
            "16",
        ],
    );
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_clean(&out, &j);
    assert_eq!(j["ops"], 20000, "{j}");
    assert_eq!(j["errors"], 0, "{j}");
    assert_eq!(
        j["found_ratio"], 1.0,
        "every GET answered with a value: {j}"
    );
    let gets = j["per_op"]["get"]["ops"].as_u64().unwrap();
    let sets = j["per_op"]["set"]["ops"].as_u64().unwrap();
    assert_eq!(gets + sets, 20000);
    assert!(gets > 0 && sets > 0, "{gets} GETs, {sets} SETs");
    assert_eq!(j["found"].as_u64(), Some(gets));
    assert!(
        j["bytes_in"].as_u64().unwrap() >= gets * 300,
        "GET answers carry the 300-byte value: {j}"
    );
}

/// Several echo threads and a shard-aware generator: SHARD to a core other than the
/// one a connection landed on is refused, the connection stays where it is, and
/// that costs the run nothing.
#[test]
fn shard_aware_generator_runs_clean_against_several_threads() {
    let echo = Proc::echo(&["--threads", "2"]);
    let addr = echo.addr.to_string();
    let (out, j) = bench(
        "echo-shard-aware",
        &[
            "--server",
            &addr,
            "--requests",
            "10000",
            "--ratio",
            "9:1",
            "--threads",
            "2",
            "--connections",
            "8",
            "--pipeline",
            "16",
        ],
    );
    let j = j.unwrap_or_else(|| panic!("no JSON: {}", text(&out)));
    assert_clean(&out, &j);
    assert_eq!(j["ops"], 10000, "{j}");
    assert_eq!(j["found_ratio"], 1.0, "{j}");
    assert_eq!(j["shard_aware"], true, "{j}");
    assert_eq!(j["server_cores"][&addr], 2, "SHARD 0xffff told 2: {j}");
}

/// A frame over the 1 MiB limit, and one whose length cannot be trusted, are
/// answered and close their connection; a connection that sent an opcode the echo
/// does not answer stays open; and another connection is served before, between
/// and after.
#[test]
fn bad_frames_close_their_connection_and_no_other() {
    let mut echo = Proc::echo(&[]);
    let mut good = connect(&echo);
    assert_get_answered(&mut good, 1);

    // A GET header that declares 2 MiB (only the header is sent: nothing the echo
    // leaves unread, so the close is a clean FIN after the answer).
    let mut big = connect(&echo);
    let mut header = (2u32 << 20).to_be_bytes().to_vec();
    header.extend_from_slice(&[1, Opcode::Get as u8, 0, 0, 0, 0, 0, 7]);
    big.write_all(&header).unwrap();
    let (answers, closed) = read_answers(&mut big, 1);
    assert_eq!(answers, [(7, Opcode::Get as u8, Status::TooLarge, None)]);
    assert!(
        closed || read_until_closed(&mut big),
        "oversized frame: still open"
    );
    assert_get_answered(&mut good, 2);

    // A length below the 8 header bytes: framing is lost.
    let mut short = connect(&echo);
    short.write_all(&[0, 0, 0, 4]).unwrap();
    let (answers, closed) = read_answers(&mut short, 1);
    assert_eq!(answers, [(0, 0, Status::BadRequest, None)]);
    assert!(
        closed || read_until_closed(&mut short),
        "short frame: still open"
    );
    assert_get_answered(&mut good, 3);

    // An unknown opcode is skipped and the connection goes on.
    let mut odd = connect(&echo);
    let mut frame = 8u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[1, 0x7f, 0, 0, 0, 0, 0, 9]);
    odd.write_all(&frame).unwrap();
    let (answers, _) = read_answers(&mut odd, 1);
    assert_eq!(answers, [(9, 0x7f, Status::UnknownOp, None)]);
    assert_get_answered(&mut odd, 10);

    assert_get_answered(&mut good, 4);
    assert!(echo.running(), "the echo is still up");
}

/// A burst whose answers (200 x 64 KiB, about 13 MB) are far more than the echo's
/// 1 MiB output cap and the sockets' buffers: the echo stops reading while its
/// answers wait and takes up the rest once the client has read them, all in order.
#[test]
fn a_burst_larger_than_the_output_cap_is_answered_in_order() {
    let echo = Proc::echo(&["--value-size", "64KiB"]);
    let mut s = connect(&echo);
    let mut out = Vec::new();
    for id in 0..200 {
        Request {
            id,
            kind: RequestKind::Get(KeyRef::new(b"default", b"key:00000001")),
        }
        .encode(&mut out);
    }
    s.write_all(&out).expect("send the burst");
    let (answers, closed) = read_answers(&mut s, 200);
    assert!(!closed);
    let want: Vec<Answer> = (0..200)
        .map(|id| (id, Opcode::Get as u8, Status::Ok, Some(64 * 1024)))
        .collect();
    assert_eq!(answers, want);
}

type Answer = (u32, u8, Status, Option<usize>);

fn connect(echo: &Proc) -> TcpStream {
    let s = TcpStream::connect(echo.addr).expect("connect to the echo");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    s
}

/// Sends a GET with request id `id` and checks its answer: OK, the request's id and
/// opcode, the default 100-byte value.
fn assert_get_answered(s: &mut TcpStream, id: u32) {
    let mut out = Vec::new();
    Request {
        id,
        kind: RequestKind::Get(KeyRef::new(b"default", b"key:00000001")),
    }
    .encode(&mut out);
    s.write_all(&out).expect("send a GET");
    let (answers, closed) = read_answers(s, 1);
    assert_eq!(answers, [(id, Opcode::Get as u8, Status::Ok, Some(100))]);
    assert!(!closed, "the connection stays open");
}

/// Reads until `n` answers arrived, the connection closed, or the deadline passed;
/// returns the answers (id, opcode, status, value length of a GET's OK) and whether
/// the connection was closed (EOF or reset) after them.
fn read_answers(s: &mut TcpStream, n: usize) -> (Vec<Answer>, bool) {
    let mut frames = FrameBuffer::new(Limits::default(), 0);
    let mut got = Vec::new();
    let start = Instant::now();
    loop {
        while let Some(frame) = frames.next_frame().expect("a well-formed answer") {
            let Frame::Response(r) = frame else {
                panic!("the echo sent a request: {frame:?}");
            };
            let value = match r.body {
                ResponseBody::Value { value, .. } => Some(value.len()),
                _ => None,
            };
            got.push((r.id, r.opcode, r.status, value));
        }
        if got.len() >= n {
            return (got, false);
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {n} answers, got {got:?}"
        );
        match s.read(frames.read_space()) {
            Ok(0) => return (got, true),
            Ok(k) => frames.commit(k),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, true),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Whether the echo closes `s` (EOF or reset) before the deadline, with no more bytes.
fn read_until_closed(s: &mut TcpStream) -> bool {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    while start.elapsed() < DEADLINE {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(k) => panic!("unexpected bytes after the last answer: {:?}", &buf[..k]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    false
}
