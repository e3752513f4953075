//! The memcached front end's limits over real sockets: an unfinished line, the
//! connection limit, a client that does not read, long multi-key gets, and a text
//! fuzzer.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;

use common::wait_until;

use common::memcache::{start, Mc};

/// Random memcached-ish text and noise over many connections: the server answers
/// what it can, closes what it must, never hangs or panics, and gives every buffer
/// back.
#[test]
fn memcache_wire_fuzz_keeps_serving() {
    let (s, addr) = start(&["--threads", "2", "--origin", "synthetic:size=20"]);
    let pieces: [&[u8]; 14] = [
        b"get a b c\r\n",
        b"gets a\r\n",
        b"set a 1 0 3\r\nabc\r\n",
        b"set a 1 0 3\r\nabcdef\r\n",
        b"cas a 0 0 1 99\r\nx\r\n",
        b"incr a 1\r\n",
        b"mg a v f c k O123 q\r\n",
        b"ms b 2 T10\r\nhi\r\n",
        b"ma c N0 J5 v\r\n",
        b"md a q\r\nmn\r\n",
        b"delete\r\n",
        b"flush_all\r\n",
        b"stats\r\n",
        b"\x80\x01\x00",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // GROUPCACHED_MC_FUZZ_CONNS runs it longer.
    let conns: usize = std::env::var("GROUPCACHED_MC_FUZZ_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    for _ in 0..conns {
        let mut c = Mc::connect(addr);
        c.0.set_read_timeout(Some(std::time::Duration::from_millis(20)))
            .unwrap();
        for _ in 0..1 + next() % 20 {
            let mut piece = pieces[(next() % pieces.len() as u64) as usize].to_vec();
            match next() % 4 {
                0 => {
                    let i = (next() % piece.len() as u64) as usize;
                    piece[i] = next() as u8;
                }
                1 => piece.truncate((next() % piece.len() as u64) as usize),
                _ => {}
            }
            if c.0.write_all(&piece).is_err() {
                break;
            }
        }
        let mut sink = [0u8; 4096];
        let _ = c.0.read(&mut sink);
    }
    // Every fuzz connection was closed by its client: only the stats one is left.
    wait_until("the fuzz connections to close", || {
        s.stat("curr_connections") == 1
    });
    s.wait_stat("conn_buffer_bytes", "<= 64 KiB", |v| v <= 64 * 1024);
    let mut c = Mc::connect(addr);
    c.ask("set ok 0 0 2\r\nok\r\n", "STORED\r\n");
    c.ask("get ok\r\n", "VALUE ok 0 2\r\nok\r\nEND\r\n");
    assert!(
        !s.logs().iter().any(|l| l.contains("panicked")),
        "the server panicked"
    );
}

#[test]
fn an_unfinished_line_times_out_and_the_connection_limit_is_told_in_text() {
    let (s, addr) = start(&["--frame-timeout", "200ms", "--max-connections", "2"]);
    let _stats = s.stat("curr_connections"); // the stats connection is one of the two
    let mut c = Mc::connect(addr);
    c.ask("set a 0 0 1\r\nx\r\n", "STORED\r\n");
    let mut refused = Mc::connect(addr);
    assert_eq!(refused.rest(), "ERROR Too many open connections\r\n");
    c.send(b"get a");
    assert_eq!(
        c.rest(),
        "SERVER_ERROR request not received whole within --frame-timeout (200ms)\r\n"
    );
    s.wait_stat("frame_timeouts", "== 1", |v| v == 1);
}

/// One counter of the memcached `stats` command.
fn mc_stat(addr: SocketAddr, name: &str) -> u64 {
    let mut c = Mc::connect(addr);
    c.send(b"stats\r\n");
    loop {
        let l = c.line();
        assert_ne!(l, "END", "no {name}");
        if let Some(v) = l.strip_prefix(&format!("STAT {name} ")) {
            return v.parse().unwrap();
        }
    }
}

#[test]
fn a_client_that_does_not_read_is_paced_not_buffered_without_bound() {
    let (s, addr) = start(&["--threads", "1", "--origin", "none"]);
    let mut c = Mc::connect(addr);
    let value = "v".repeat(20_000);
    c.ask(
        &format!("set big 0 0 {}\r\n{value}\r\n", value.len()),
        "STORED\r\n",
    );
    // 40 MB of answers: far more than the 4 MiB mark and the sockets can hold.
    c.send("get big\r\n".repeat(2000).as_bytes());
    wait_until("some gets served", || mc_stat(addr, "cmd_get") >= 100);
    let held = s.stat("conn_buffer_bytes");
    assert!(held < 16 << 20, "{held} bytes buffered for one connection");
    assert!(
        mc_stat(addr, "cmd_get") < 2000,
        "reading should have paused"
    );
    let one = format!("VALUE big 0 {}\r\n{value}\r\nEND\r\n", value.len());
    for _ in 0..2000 {
        c.expect(one.as_bytes());
    }
}

#[test]
fn a_get_of_thousands_of_keys_is_served_and_one_of_too_many_is_refused() {
    let (_s, addr) = start(&["--threads", "2", "--origin", "none"]);
    let mut c = Mc::connect(addr);
    c.ask("set k-0000000000000000001 3 0 1\r\nx\r\n", "STORED\r\n");
    // 4000 keys of 21 bytes: an 88 KB line, as pymemcache's get_many sends.
    let keys: Vec<String> = (0..4000).map(|i| format!("k-{i:019}")).collect();
    c.ask(
        &format!("get {}\r\n", keys.join(" ")),
        "VALUE k-0000000000000000001 3 1\r\nx\r\nEND\r\n",
    );
    let many = vec!["a"; 16_385].join(" ");
    c.ask(
        &format!("get {many}\r\n"),
        "SERVER_ERROR a get of more than 16384 keys is not supported\r\n",
    );
    c.ask("mn\r\n", "MN\r\n");
}
