//! The memcached port of the real binary spoken to by hand, as `nc` or a client
//! library's socket would: pipelined mixed commands answered in order, `noreply` and
//! meta `q`, `stats` under memcached's names, and every bad input of issue 12 (unknown
//! command, malformed line, key over 250 bytes or with control characters, bad data
//! chunk, over-long line, a binary request) answered as memcached does, never with a
//! hang or a binary frame; `group:key` addressing and what `flush_all` empties. The third-party clients are in the other
//! `memcache_clients_*.rs` files.

mod common;

use std::io::Read;
use std::net::TcpStream;

use common::memcache::{mc_stats, start, Text};
use common::{encode, TempDir, DEADLINE};
use groupcached_client::protocol::{KeyRef, Request, RequestKind};

/// A `VALUE` line with its CAS unique replaced by `<cas>`, other lines unchanged.
fn mask_cas(line: String) -> String {
    let f: Vec<&str> = line.split(' ').collect();
    if f[0] == "VALUE" && f.len() == 5 {
        format!("{} {} {} {} <cas>", f[0], f[1], f[2], f[3])
    } else {
        line
    }
}

/// Reads `expected.len()` lines and compares them all at once (CAS uniques masked).
fn expect_lines(c: &mut Text, expected: &[&str]) {
    let got: Vec<String> = (0..expected.len()).map(|_| mask_cas(c.line())).collect();
    assert_eq!(got, expected, "answers, in request order");
}

#[test]
fn pipelined_mixed_commands_are_answered_in_order() {
    let (_s, mc) = start(&[]);
    let mut c = Text::connect(mc);
    // One write: every answer must come back in request order, classic and meta mixed.
    c.send(concat!(
        "set a 5 0 3\r\nabc\r\n",
        "get a\r\n",
        "incr n 1\r\n",
        "set n 0 0 2\r\n10\r\n",
        "incr n 5\r\n",
        "append a 0 0 2\r\nde\r\n",
        "prepend a 0 0 1\r\nz\r\n",
        "gets a n missing\r\n",
        "decr n 100\r\n",
        "add a 0 0 1\r\nx\r\n",
        "replace missing 0 0 1\r\nx\r\n",
        "bogus\r\n",
        "touch n 100\r\n",
        "delete a\r\n",
        "delete a\r\n",
        "ms m 2 F7 T0\r\nhi\r\n",
        "mg m v f k\r\n",
        "mg missing v\r\n",
        "mn\r\n",
        "verbosity 1\r\n",
        "get a m\r\n",
    ));
    expect_lines(
        &mut c,
        &[
            "STORED",
            "VALUE a 5 3",
            "abc",
            "END",
            "NOT_FOUND",
            "STORED",
            "15",
            "STORED",
            "STORED",
            "VALUE a 5 6 <cas>",
            "zabcde",
            "VALUE n 0 2 <cas>",
            "15",
            "END",
            "0",
            "NOT_STORED",
            "NOT_STORED",
            "ERROR",
            "TOUCHED",
            "DELETED",
            "NOT_FOUND",
            "HD",
            "VA 2 f7 km",
            "hi",
            "EN",
            "MN",
            "OK",
            "VALUE m 7 2",
            "hi",
            "END",
        ],
    );
    let v = c.ask("version\r\n");
    assert!(v.starts_with("VERSION "), "{v}");
}

#[test]
fn noreply_and_quiet_mode_silence_only_what_they_should() {
    let (_s, mc) = start(&[]);
    let mut c = Text::connect(mc);
    c.send(concat!(
        "set q 0 0 1 noreply\r\nx\r\n",
        "add q 0 0 1 noreply\r\ny\r\n",
        "append q 0 0 1 noreply\r\nz\r\n",
        "set c 3 0 1 noreply\r\n5\r\n",
        "incr c 2 noreply\r\n",
        "decr c 1 noreply\r\n",
        "touch q 100 noreply\r\n",
        "delete gone noreply\r\n",
        "incr gone 1 noreply\r\n",
        // Even the error of a refused request is silenced by its noreply.
        "set bad abc 0 1 noreply\r\nx\r\n",
        "get q c bad\r\n",
    ));
    expect_lines(&mut c, &["VALUE q 0 2", "xz", "VALUE c 3 1", "6", "END"]);
    // Meta q hides the nominal answers (HD, EN) but never a value or an error.
    c.send(concat!(
        "ms mq 1 q\r\nx\r\n",
        "mg mq v q\r\n",
        "mg missing v q\r\n",
        "md missing q\r\n",
        "md mq q\r\n",
        "mg mq v q\r\n",
        "mn\r\n",
    ));
    expect_lines(&mut c, &["VA 1", "x", "NF", "MN"]);
    c.send("flush_all noreply\r\n");
    assert_eq!(
        c.get("get q c\r\n"),
        vec![],
        "flush_all noreply flushed silently"
    );
}

#[test]
fn stats_use_memcacheds_names_and_move() {
    let (_s, mc) = start(&[]);
    let stat = |name: &str| -> u64 {
        let all = mc_stats(mc);
        let (_, v) = all
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no STAT {name} in {all:?}"));
        v.parse().unwrap_or_else(|e| panic!("STAT {name} {v}: {e}"))
    };
    for name in [
        "curr_items",
        "bytes",
        "get_hits",
        "get_misses",
        "evictions",
        "curr_connections",
        "cmd_get",
        "cmd_set",
    ] {
        stat(name);
    }
    let (hits, misses, sets, gets) = (
        stat("get_hits"),
        stat("get_misses"),
        stat("cmd_set"),
        stat("cmd_get"),
    );
    let mut c = Text::connect(mc);
    assert_eq!(c.ask("set s 0 0 2\r\nhi\r\n"), "STORED");
    assert_eq!(c.get("get s nothing\r\n").len(), 1);
    assert_eq!(stat("cmd_set"), sets + 1);
    assert_eq!(stat("cmd_get"), gets + 2, "cmd_get counts keys");
    assert_eq!(stat("get_hits"), hits + 1);
    assert_eq!(stat("get_misses"), misses + 1);
    assert!(stat("curr_items") >= 1);
    assert!(stat("curr_connections") >= 2, "this one and the stats one");
}

#[test]
fn unknown_and_malformed_commands_get_memcacheds_errors_and_the_connection_goes_on() {
    let (_s, mc) = start(&[]);
    let mut c = Text::connect(mc);
    assert_eq!(c.ask("bogus\r\n"), "ERROR");
    assert_eq!(c.ask("GET a\r\n"), "ERROR", "command names are lower-case");
    assert_eq!(c.ask("\r\n"), "ERROR");
    assert_eq!(c.ask("get\r\n"), "ERROR");
    assert_eq!(
        c.ask("incr n abc\r\n"),
        "CLIENT_ERROR invalid numeric delta argument"
    );
    assert_eq!(
        c.ask("touch n abc\r\n"),
        "CLIENT_ERROR invalid exptime argument"
    );
    // A refused store skips its data block: one request, one error.
    assert_eq!(
        c.ask("set k abc 0 1\r\nx\r\n"),
        "CLIENT_ERROR bad command line format"
    );
    // A wrong token count: one ERROR, and the data block is skipped too (memcached
    // would read it as a command and answer a second ERROR).
    assert_eq!(
        c.ask("set k 0 0 1 2 3 4\r\nx\r\n"),
        "ERROR",
        "wrong token count"
    );
    assert_eq!(c.ask("mg k zz\r\n"), "CLIENT_ERROR invalid flag");
    assert_eq!(c.ask("set n 0 0 2\r\nab\r\n"), "STORED");
    assert_eq!(
        c.ask("incr n 1\r\n"),
        "CLIENT_ERROR cannot increment or decrement non-numeric value"
    );
    assert!(c.ask("version\r\n").starts_with("VERSION "));
}

#[test]
fn keys_over_250_bytes_or_with_control_characters_are_refused() {
    let (_s, mc) = start(&[]);
    let mut c = Text::connect(mc);
    let k250 = "k".repeat(250);
    let k251 = "k".repeat(251);
    assert_eq!(c.ask(format!("set {k250} 0 0 1\r\nx\r\n")), "STORED");
    assert_eq!(c.get(format!("get {k250}\r\n")).len(), 1);
    let bad = "CLIENT_ERROR bad command line format";
    assert_eq!(c.ask(format!("get {k251}\r\n")), bad);
    assert_eq!(c.ask(format!("set {k251} 0 0 1\r\nx\r\n")), bad);
    assert_eq!(c.ask(format!("delete {k251}\r\n")), bad);
    assert_eq!(c.ask("get a\x01b\r\n"), bad);
    assert_eq!(c.ask("set a\x7fb 0 0 1\r\nx\r\n"), bad);
    assert_eq!(c.ask(format!("mg {k251} v\r\n")), bad);
    assert!(c.ask("version\r\n").starts_with("VERSION "), "still usable");
}

#[test]
fn a_data_block_of_the_wrong_length_is_a_bad_data_chunk() {
    let (_s, mc) = start(&["--max-item-size", "64KiB"]);
    let mut c = Text::connect(mc);
    // 3 bytes announced, 5 sent: exactly 3 + 2 are consumed and refused.
    assert_eq!(c.ask("set k 0 0 3\r\nabcXY"), "CLIENT_ERROR bad data chunk");
    assert_eq!(c.get("get k\r\n"), vec![], "nothing was stored");
    assert_eq!(c.ask("ms k 2\r\nabcd"), "CLIENT_ERROR bad data chunk");
    assert!(c.ask("version\r\n").starts_with("VERSION "), "still usable");
    // Too large for an item: refused, and the data block is skipped, not executed.
    let big = "get k\r\n".repeat(100_000 / 7 + 1);
    let req = format!("set big 0 0 {}\r\n{big}\r\n", big.len());
    assert_eq!(c.ask(req), "SERVER_ERROR object too large for cache");
    assert!(c.ask("version\r\n").starts_with("VERSION "));
}

#[test]
fn an_over_long_line_is_refused_and_the_connection_closed() {
    let (s, mc) = start(&[]);
    let mut c = Text::connect(mc);
    // No newline within the limit (2048 bytes): an error, then the close.
    c.send("a".repeat(8192));
    assert_eq!(c.line(), "CLIENT_ERROR line too long");
    c.expect_closed();
    // Only that connection: the server goes on.
    let mut d = Text::connect(mc);
    assert!(d.ask("version\r\n").starts_with("VERSION "));
    drop(s);
}

#[test]
fn a_binary_request_gets_a_text_error_and_a_close_never_a_binary_frame() {
    let (_s, mc) = start(&[]);
    // memcached's binary protocol: a 24-byte request header (magic 0x80, NOOP).
    let mut header = [0u8; 24];
    header[0] = 0x80;
    header[1] = 0x0a;
    let mut c = Text::connect(mc);
    c.send(header);
    let answer = c.until_closed();
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "CLIENT_ERROR binary protocol not supported, use the text or meta protocol\r\n"
    );
    // groupcached's own protocol on the memcached port: text answers only.
    let frame = encode(&Request {
        id: 1,
        kind: RequestKind::Get(KeyRef::new(b"default", b"k")),
    });
    let mut c = TcpStream::connect_timeout(&mc, DEADLINE).unwrap();
    c.set_read_timeout(Some(DEADLINE)).unwrap();
    std::io::Write::write_all(&mut c, &frame).unwrap();
    std::io::Write::write_all(&mut c, b"\r\nversion\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the server closes or a VERSION line (it went on) arrives.
    while !String::from_utf8_lossy(&got).contains("VERSION ") {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading after a native frame: {e}; got {got:?}"),
        }
    }
    assert!(!got.is_empty(), "an answer, not silence");
    let text = String::from_utf8(got.clone())
        .unwrap_or_else(|_| panic!("only text on the memcached port, got {got:?}"));
    assert!(
        text.lines().all(|l| l.starts_with("ERROR")
            || l.starts_with("CLIENT_ERROR")
            || l.starts_with("VERSION")),
        "memcached errors only: {text:?}"
    );
}

#[test]
fn text_on_the_native_port_gets_a_hint_naming_the_memcached_port() {
    let (s, mc) = start(&[]);
    let mut c = Text::connect(s.addr());
    c.send("get foo\r\n");
    let answer = String::from_utf8(c.until_closed()).expect("a text hint");
    assert!(
        answer.ends_with('\n') && !answer.trim().is_empty(),
        "{answer:?}"
    );
    assert!(
        answer.contains(&mc.port().to_string()),
        "the hint names the memcached port {mc}: {answer:?}"
    );
}

#[test]
fn quit_closes_after_the_earlier_answers() {
    let (_s, mc) = start(&[]);
    let mut c = Text::connect(mc);
    c.send("set k 0 0 1\r\nv\r\nget k\r\nquit\r\nversion\r\n");
    assert_eq!(c.line(), "STORED");
    assert_eq!(c.items().len(), 1);
    c.expect_closed();
}

/// Two groups; `extra` adds memcache settings to the file.
fn two_groups(dir: &TempDir, extra: &str) -> String {
    let text = format!(
        "{extra}\n[[group]]\nname = \"pages\"\norigin = \"none\"\n\n\
         [[group]]\nname = \"sessions\"\norigin = \"none\"\n"
    );
    dir.write("groupcached.toml", text.as_bytes())
        .display()
        .to_string()
}

#[test]
fn group_prefix_addressing_and_what_flush_all_empties() {
    // With the prefix: `sessions:u1` is key `u1` of group `sessions`; a key whose
    // part before the colon is not a group stays whole, in the default group.
    let dir = TempDir::new("mc-groups");
    let cfg = two_groups(&dir, "memcache_group_prefix = true");
    let (s, mc) = start(&["--config", &cfg]);
    let mut c = Text::connect(mc);
    assert_eq!(c.ask("set sessions:u1 3 0 5\r\nalice\r\n"), "STORED");
    assert_eq!(c.ask("set user:42 0 0 3\r\nbob\r\n"), "STORED");
    let mut native = s.client();
    let v = native
        .get("sessions", "u1")
        .unwrap()
        .expect("in group sessions");
    assert_eq!(v.as_bytes(), b"alice");
    let v = native
        .get("pages", "user:42")
        .unwrap()
        .expect("whole, in pages");
    assert_eq!(v.as_bytes(), b"bob");
    // Replies echo the key as sent; both spellings name the same item.
    let items = c.get("get sessions:u1 pages:user:42 user:42 u1\r\n");
    let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["sessions:u1", "pages:user:42", "user:42"]);
    assert_eq!(items[0].flags, 3);
    // flush_all empties every group memcached clients can name: all of them here.
    assert_eq!(c.ask("flush_all\r\n"), "OK");
    assert!(native.get("sessions", "u1").unwrap().is_none());
    assert!(native.get("pages", "user:42").unwrap().is_none());
    drop((c, native, s));

    // Without the prefix, every key is whole, in --memcache-group, and flush_all
    // leaves the other group alone.
    let cfg = two_groups(&dir, "memcache_group = \"sessions\"");
    let (s, mc) = start(&["--config", &cfg]);
    let mut c = Text::connect(mc);
    assert_eq!(c.ask("set pages:x 0 0 1\r\ny\r\n"), "STORED");
    let mut native = s.client();
    assert!(native.get("sessions", "pages:x").unwrap().is_some());
    native.set("pages", "kept", b"z", None).unwrap();
    assert_eq!(c.ask("flush_all\r\n"), "OK");
    assert!(native.get("sessions", "pages:x").unwrap().is_none());
    assert!(
        native.get("pages", "kept").unwrap().is_some(),
        "a group memcached clients cannot name is not flushed"
    );
}
