//! The memcached front end (`--memcache-listen`) driven over real sockets with raw
//! memcached text: read-through gets loaded once, replies in request order across
//! loads and hits, multi-key gets across cores, flags and CAS, the commands'
//! answers, and the binary port's hint to text clients.

mod common;

use std::sync::{Arc, Barrier};

use common::{wait_until, Gate, HttpOrigin, TempDir};

use common::memcache::{start, Mc};

/// An HTTP origin where keys starting with `slow` answer `S:<key>` once `gate`
/// opens, and every other key is not found.
fn gated_origin(gate: &Gate) -> HttpOrigin {
    let gate = gate.clone();
    HttpOrigin::start(move |path| {
        let key = path.trim_start_matches('/');
        if key.starts_with("slow") {
            gate.wait();
            (200, format!("S:{key}").into_bytes())
        } else {
            (404, Vec::new())
        }
    })
}

#[test]
fn a_get_of_an_origin_only_key_is_loaded_once_for_many_concurrent_clients() {
    let gate = Gate::new();
    let origin = gated_origin(&gate);
    let spec = origin.spec("/{key}");
    let (s, addr) = start(&["--threads", "2", "--origin", &spec]);
    const CLIENTS: usize = 16;
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = Mc::connect(addr);
                barrier.wait();
                c.ask(
                    "get slowkey\r\n",
                    "VALUE slowkey 0 9\r\nS:slowkey\r\nEND\r\n",
                );
            })
        })
        .collect();
    barrier.wait();
    // Every get has joined the one load before the origin may answer it.
    s.wait_stat("group.default.gets", ">= 16", |v| v >= CLIENTS as u64);
    gate.open();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(origin.requests(), 1, "{:?}", origin.paths());
    assert_eq!(s.stat("group.default.local_loads"), 1);
    // Now a hit, from the cache.
    let mut c = Mc::connect(addr);
    c.ask("gets slowkey\r\n", "VALUE slowkey 0 9 ");
    let cas: u64 = c.line().parse().unwrap();
    assert_ne!(cas, 0, "loaded items carry a CAS");
    c.expect(b"S:slowkey\r\nEND\r\n");
    assert_eq!(origin.requests(), 1);
}

#[test]
fn a_pipelined_mix_of_loads_hits_and_writes_is_answered_in_request_order() {
    let gate = Gate::new();
    let origin = gated_origin(&gate);
    let spec = origin.spec("/{key}");
    let (_s, addr) = start(&["--threads", "2", "--origin", &spec]);
    let mut c = Mc::connect(addr);
    c.send(
        b"get slow1\r\n\
          set a 3 0 1\r\nx\r\n\
          get a\r\n\
          gets nothere\r\n\
          get slow2 a nothere slow1\r\n\
          mn\r\n\
          mg slow1 v f k\r\n\
          delete a\r\n\
          get a\r\n\
          version\r\n",
    );
    // Both loads are at the origin, held there; the answers ready behind them (the
    // set, the hits) must wait for them.
    wait_until("the origin to see both slow keys", || {
        let p = origin.paths();
        p.iter().any(|p| p.ends_with("slow1")) && p.iter().any(|p| p.ends_with("slow2"))
    });
    c.expect_nothing_yet();
    gate.open();
    c.expect(
        b"VALUE slow1 0 7\r\nS:slow1\r\nEND\r\n\
          STORED\r\n\
          VALUE a 3 1\r\nx\r\nEND\r\n\
          END\r\n\
          VALUE slow2 0 7\r\nS:slow2\r\nVALUE a 3 1\r\nx\r\nVALUE slow1 0 7\r\nS:slow1\r\nEND\r\n\
          MN\r\n\
          VA 7 f0 kslow1\r\nS:slow1\r\n\
          DELETED\r\n\
          END\r\n",
    );
    assert_eq!(
        c.line(),
        format!("VERSION 1.6.18-groupcached-{}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_multi_key_get_spans_cores_and_keeps_key_order() {
    let (s, addr) = start(&["--threads", "2", "--origin", "none"]);
    let mut c = Mc::connect(addr);
    let keys: Vec<String> = (0..40).map(|i| format!("key{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        c.send(format!("set {k} {i} 0 {} noreply\r\nv-{k}\r\n", k.len() + 2).as_bytes());
    }
    let hops = s.stat("core_hops");
    let line = format!(
        "get {} missing {}\r\n",
        keys[..20].join(" "),
        keys[20..].join(" ")
    );
    let mut want = String::new();
    for (i, k) in keys.iter().enumerate() {
        want.push_str(&format!("VALUE {k} {i} {}\r\nv-{k}\r\n", k.len() + 2));
    }
    want.push_str("END\r\n");
    c.ask(&line, &want);
    assert!(
        s.stat("core_hops") > hops,
        "some keys live on the other core"
    );
}

#[test]
fn flags_and_cas_round_trip_and_conditional_writes_follow_memcached() {
    let (_s, addr) = start(&["--threads", "2", "--origin", "none"]);
    let mut c = Mc::connect(addr);
    c.ask("set k 42 0 2\r\nv1\r\n", "STORED\r\n");
    c.ask("gets k\r\n", "VALUE k 42 2 ");
    let cas: u64 = c.line().parse().unwrap();
    c.expect(b"v1\r\nEND\r\n");
    c.ask(&format!("cas k 7 0 2 {cas}\r\nv2\r\n"), "STORED\r\n");
    c.ask(&format!("cas k 7 0 2 {cas}\r\nv3\r\n"), "EXISTS\r\n");
    c.ask("cas nokey 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
    c.send(b"mg k v f c s t\r\n");
    let head = c.line();
    let fields: Vec<&str> = head.split(' ').collect();
    assert_eq!(&fields[..3], &["VA", "2", "f7"], "{head}");
    let new_cas: u64 = fields[3].trim_start_matches('c').parse().unwrap();
    assert_ne!(new_cas, cas);
    assert_eq!(&fields[4..], &["s2", "t-1"], "{head}");
    c.expect(b"v2\r\n");
    c.ask(&format!("ms k 2 C{new_cas} F9 c\r\nv4\r\n"), "HD c");
    let after: u64 = c.line().parse().unwrap();
    assert!(after > new_cas);
    c.ask("add k 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    c.ask("replace nokey 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    c.ask("append k 0 0 2\r\n-a\r\n", "STORED\r\n");
    c.ask("prepend k 0 0 2\r\np-\r\n", "STORED\r\n");
    c.ask("get k\r\n", "VALUE k 9 6\r\np-v4-a\r\nEND\r\n");
    c.ask(
        "incr k 1\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    c.ask("incr n 1\r\n", "NOT_FOUND\r\n");
    c.ask("set n 5 0 2\r\n10\r\n", "STORED\r\n");
    c.ask("incr n 5\r\n", "15\r\n");
    c.ask("decr n 100\r\n", "0\r\n");
    c.ask("ma n N0 J7 v\r\n", "VA 1\r\n1\r\n");
    c.ask("ma fresh N0 J7 v\r\n", "VA 1\r\n7\r\n");
    c.ask("touch n 100\r\n", "TOUCHED\r\n");
    c.ask("touch nokey 100\r\n", "NOT_FOUND\r\n");
    // memcached pads a shorter number to the old length in place ("15" -> "1 ").
    c.ask("mg n t v\r\n", "VA 2 t100\r\n1 \r\n");
    c.ask("gat 0 n\r\n", "VALUE n 5 2\r\n1 \r\nEND\r\n");
    c.ask("mg n t\r\n", "HD t-1\r\n");
    // A negative exptime stores an item that is invisible at once.
    c.ask("set gone 0 -1 1\r\nx\r\n", "STORED\r\n");
    c.ask("get gone\r\n", "END\r\n");
    c.ask("delete k\r\n", "DELETED\r\n");
    c.ask("delete k\r\n", "NOT_FOUND\r\n");
    c.ask("md k q\r\nmn\r\n", "NF\r\nMN\r\n");
    c.ask(
        "set quiet 0 0 1 noreply\r\nq\r\nget quiet\r\n",
        "VALUE quiet 0 1\r\nq\r\nEND\r\n",
    );
}

#[test]
fn server_commands_and_what_is_not_supported() {
    let (_s, addr) = start(&["--threads", "2", "--origin", "none"]);
    let mut c = Mc::connect(addr);
    c.ask("set a 0 0 1\r\nx\r\n", "STORED\r\n");
    c.ask("get a nothere\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");
    c.send(b"stats\r\n");
    let mut stats = std::collections::HashMap::new();
    loop {
        let l = c.line();
        if l == "END" {
            break;
        }
        let mut p = l.splitn(3, ' ');
        assert_eq!(p.next(), Some("STAT"), "{l}");
        stats.insert(p.next().unwrap().to_string(), p.next().unwrap().to_string());
    }
    for (name, want) in [
        ("cmd_get", "2"),
        ("get_hits", "1"),
        ("get_misses", "1"),
        ("cmd_set", "1"),
    ] {
        assert_eq!(
            stats.get(name).map(String::as_str),
            Some(want),
            "{name}: {stats:?}"
        );
    }
    for name in [
        "pid",
        "uptime",
        "curr_connections",
        "curr_items",
        "limit_maxbytes",
        "threads",
    ] {
        assert!(stats.contains_key(name), "{name} missing: {stats:?}");
    }
    c.ask("stats nonsense\r\n", "ERROR\r\n");
    c.ask(
        "stats slabs\r\n",
        "SERVER_ERROR this stats sub-command is not supported\r\n",
    );
    c.ask("verbosity 1\r\n", "OK\r\n");
    c.ask(
        "flush_all 10\r\n",
        "SERVER_ERROR flush_all with a delay is not supported\r\n",
    );
    c.ask(
        "me a\r\n",
        "SERVER_ERROR me (meta debug) is not supported\r\n",
    );
    c.ask(
        "mg a N30 v\r\n",
        "SERVER_ERROR mg N and R (vivify, recache) are not supported\r\n",
    );
    c.ask("bogus\r\n", "ERROR\r\n");
    c.ask("flush_all\r\n", "OK\r\n");
    c.ask("get a\r\n", "END\r\n");
    c.ask("flush_all noreply\r\nmn\r\n", "MN\r\n");
    c.send(b"quit\r\n");
    assert_eq!(c.rest(), "");
    // Never a binary frame on this port: memcached's binary protocol is refused in text.
    let mut b = Mc::connect(addr);
    b.send(&[0x80, 0x00, 0x00, 0x00]);
    assert!(b
        .rest()
        .starts_with("CLIENT_ERROR binary protocol not supported"));
}

#[test]
fn the_binary_port_tells_a_text_client_where_the_memcached_port_is() {
    let (s, addr) = start(&["--origin", "none"]);
    let mut c = Mc::connect(s.addr());
    c.send(b"get foo\r\n");
    let text = c.rest();
    assert!(
        text.starts_with("this port speaks groupcached's binary protocol (docs/protocol.md)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("use the memcached port {addr}")),
        "{text}"
    );
    // The native port goes on serving native clients.
    let mut n = s.client();
    n.set("default", "k", b"v", None).unwrap();
    assert_eq!(n.get("default", "k").unwrap().unwrap().as_bytes(), b"v");
}

#[test]
fn group_prefixes_address_groups_and_flush_all_empties_every_group() {
    let dir = TempDir::new("mc-groups");
    let file = dir.write(
        "groupcached.toml",
        b"[[group]]\nname = \"pages\"\n\n[[group]]\nname = \"users\"\n",
    );
    let file = file.display().to_string();
    let prefix = ["--config", &file, "--memcache-group-prefix", "true"];
    let (s, addr) = start(&prefix);
    let mut c = Mc::connect(addr);
    c.ask("set users:42 1 0 3\r\nann\r\n", "STORED\r\n");
    c.ask("set 42 2 0 3\r\npg1\r\n", "STORED\r\n");
    // `user` is no group: the whole key, colon and all, is in the first group.
    c.ask("set user:42 3 0 3\r\nxyz\r\n", "STORED\r\n");
    c.ask(
        "get users:42 42 user:42 pages:42\r\n",
        "VALUE users:42 1 3\r\nann\r\nVALUE 42 2 3\r\npg1\r\nVALUE user:42 3 3\r\nxyz\r\n\
         VALUE pages:42 2 3\r\npg1\r\nEND\r\n",
    );
    let mut native = s.client();
    let users = native
        .get("users", "42")
        .unwrap()
        .expect("users:42 is key 42 of users");
    assert_eq!(users.as_bytes(), b"ann");
    c.ask("flush_all\r\n", "OK\r\n");
    c.ask("get users:42 42 user:42\r\n", "END\r\n");
    // Without the prefix rule, `users:42` is a key of --memcache-group.
    let (s, addr) = start(&["--config", &file, "--memcache-group", "users"]);
    Mc::connect(addr).ask("set users:42 0 0 1\r\nx\r\n", "STORED\r\n");
    let whole = s
        .client()
        .get("users", "users:42")
        .unwrap()
        .expect("whole key");
    assert_eq!(whole.as_bytes(), b"x");
}
