//! The encoder, byte for byte, against memcached's documented formats.

use super::super::reply::{self, push_u64};
use super::super::{
    ArithOutcome, Command, DeleteOutcome, ErrorReply, ItemInfo, OwnedTarget, StoreOutcome,
};
use super::cmd;

fn out(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut v = Vec::new();
    f(&mut v);
    String::from_utf8(v).unwrap()
}

#[test]
fn numbers() {
    for n in [0, 7, 10, 99, 1234567890, u64::MAX] {
        assert_eq!(out(|o| push_u64(o, n)), n.to_string());
    }
}

#[test]
fn value_lines_leave_the_value_to_the_caller() {
    let Command::Get(g) = cmd(b"gets k\r\n") else {
        panic!()
    };
    let key = g.keys.iter().next().unwrap();
    let item = ItemInfo {
        flags: 5,
        cas: 77,
        ..ItemInfo::default()
    };
    let mut o = Vec::new();
    assert!(reply::get_hit(&mut o, &g.target(&key), &item, 1_000_000));
    assert_eq!(
        o, b"VALUE k 5 1000000 77\r\n",
        "only the header: the value is the caller's chunk"
    );
    reply::value_end(&mut o);
    reply::get_end(&mut o, &g.reply);
    assert_eq!(o, b"VALUE k 5 1000000 77\r\n\r\nEND\r\n");
    let Command::Get(g) = cmd(b"get k\r\n") else {
        panic!()
    };
    assert_eq!(
        out(|o| {
            reply::get_hit(o, &g.target(&key), &item, 3);
        }),
        "VALUE k 5 3\r\n"
    );
    assert_eq!(
        out(|o| reply::get_miss(o, &g.target(&key))),
        "",
        "classic misses are silent"
    );
}

#[test]
fn meta_get_lines() {
    let item = ItemInfo {
        flags: 9,
        cas: 12,
        ttl: Some(30),
        hit_before: true,
        last_access: 4,
        ..ItemInfo::default()
    };
    let Command::Get(g) = cmd(b"mg kk s v t c f h l k Oop\r\n") else {
        panic!()
    };
    let key = g.keys.iter().next().unwrap();
    let mut o = Vec::new();
    assert!(reply::get_hit(&mut o, &g.target(&key), &item, 5));
    assert_eq!(o, b"VA 5 s5 t30 c12 f9 h1 l4 kkk Oop\r\n");
    let Command::Get(g) = cmd(b"mg kk k c\r\n") else {
        panic!()
    };
    let mut o = Vec::new();
    assert!(
        !reply::get_hit(&mut o, &g.target(&key), &item, 5),
        "no v: no value follows"
    );
    assert_eq!(o, b"HD kkk c12\r\n");
    let extra = ItemInfo {
        won: true,
        stale: true,
        ..ItemInfo::default()
    };
    assert_eq!(
        out(|o| {
            reply::get_hit(o, &g.target(&key), &extra, 0);
        }),
        "HD kkk c0 X W\r\n"
    );
    let extra = ItemInfo {
        win_taken: true,
        stale: true,
        ..ItemInfo::default()
    };
    assert_eq!(
        out(|o| {
            reply::get_hit(o, &g.target(&key), &extra, 0);
        }),
        "HD kkk c0 Z X\r\n"
    );
    assert_eq!(out(|o| reply::get_miss(o, &g.target(&key))), "EN kkk\r\n");
    assert_eq!(out(|o| reply::get_end(o, &g.reply)), "", "mg has no END");
}

#[test]
fn classic_status_lines_and_noreply() {
    let Command::Store(s) = cmd(b"set k 0 0 1\r\nx\r\n") else {
        panic!()
    };
    for (outcome, line) in [
        (StoreOutcome::Stored, "STORED\r\n"),
        (StoreOutcome::NotStored, "NOT_STORED\r\n"),
        (StoreOutcome::Exists, "EXISTS\r\n"),
        (StoreOutcome::NotFound, "NOT_FOUND\r\n"),
    ] {
        assert_eq!(out(|o| reply::store(o, &s.target(), outcome, 1)), line);
    }
    let Command::Store(s) = cmd(b"set k 0 0 1 noreply\r\nx\r\n") else {
        panic!()
    };
    assert_eq!(
        out(|o| reply::store(o, &s.target(), StoreOutcome::NotStored, 1)),
        ""
    );
    assert_eq!(
        out(|o| reply::server_error(o, &s.reply, "out of memory")),
        ""
    );
    let Command::Delete(d) = cmd(b"delete k\r\n") else {
        panic!()
    };
    assert_eq!(
        out(|o| reply::delete(o, &d.target(), DeleteOutcome::Deleted)),
        "DELETED\r\n"
    );
    assert_eq!(
        out(|o| reply::delete(o, &d.target(), DeleteOutcome::NotFound)),
        "NOT_FOUND\r\n"
    );
    let Command::Touch(t) = cmd(b"touch k 1\r\n") else {
        panic!()
    };
    assert_eq!(out(|o| reply::touch(o, &t.target(), true)), "TOUCHED\r\n");
    assert_eq!(
        out(|o| reply::touch(o, &t.target(), false)),
        "NOT_FOUND\r\n"
    );
    let Command::Arith(a) = cmd(b"incr k 1\r\n") else {
        panic!()
    };
    let none = ItemInfo::default();
    assert_eq!(
        out(|o| reply::arith(
            o,
            &a.target(),
            ArithOutcome::Value(18446744073709551615),
            &none
        )),
        "18446744073709551615\r\n"
    );
    assert_eq!(
        out(|o| reply::arith(o, &a.target(), ArithOutcome::NotFound, &none)),
        "NOT_FOUND\r\n"
    );
    assert_eq!(
        out(|o| reply::arith(o, &a.target(), ArithOutcome::NonNumeric, &none)),
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
}

#[test]
fn meta_status_lines_and_quiet() {
    let Command::Store(s) = cmd(b"ms k 1 c k Ox q\r\nx\r\n") else {
        panic!()
    };
    assert_eq!(
        out(|o| reply::store(o, &s.target(), StoreOutcome::Stored, 5)),
        "",
        "q hides HD"
    );
    assert_eq!(
        out(|o| reply::store(o, &s.target(), StoreOutcome::NotStored, 0)),
        "NS c0 kk Ox\r\n"
    );
    assert_eq!(
        out(|o| reply::store(o, &s.target(), StoreOutcome::Exists, 0)),
        "EX c0 kk Ox\r\n"
    );
    assert_eq!(
        out(|o| reply::too_large(o, &s.reply)),
        "SERVER_ERROR object too large for cache\r\n"
    );
    let Command::Delete(d) = cmd(b"md k q Oz\r\n") else {
        panic!()
    };
    assert_eq!(
        out(|o| reply::delete(o, &d.target(), DeleteOutcome::Deleted)),
        ""
    );
    assert_eq!(
        out(|o| reply::delete(o, &d.target(), DeleteOutcome::NotFound)),
        "NF Oz\r\n"
    );
    assert_eq!(
        out(|o| reply::delete(o, &d.target(), DeleteOutcome::Exists)),
        "EX Oz\r\n"
    );
    let Command::Arith(a) = cmd(b"ma k v c t\r\n") else {
        panic!()
    };
    let item = ItemInfo {
        cas: 3,
        ttl: None,
        ..ItemInfo::default()
    };
    assert_eq!(
        out(|o| reply::arith(o, &a.target(), ArithOutcome::Value(100), &item)),
        "VA 3 c3 t-1\r\n100\r\n"
    );
    assert_eq!(
        out(|o| reply::arith(o, &a.target(), ArithOutcome::NotStored, &item)),
        "NS c3 t-1\r\n"
    );
    let Command::Arith(a) = cmd(b"ma k q v\r\n") else {
        panic!()
    };
    assert_eq!(
        out(|o| reply::arith(o, &a.target(), ArithOutcome::Value(1), &item)),
        "",
        "q hides the success"
    );
    assert_eq!(
        out(|o| reply::arith(o, &a.target(), ArithOutcome::Created(3), &item)),
        "VA 1\r\n3\r\n",
        "but not a creation by N (memcached 1.6.18)"
    );
    assert_eq!(
        out(|o| reply::arith(o, &a.target(), ArithOutcome::NotFound, &item)),
        "NF\r\n"
    );
    assert_eq!(
        out(|o| reply::arith(o, &a.target(), ArithOutcome::Exists, &item)),
        "EX\r\n"
    );
}

#[test]
fn other_lines() {
    assert_eq!(
        out(|o| reply::error(o, &ErrorReply::UnknownCommand, false)),
        "ERROR\r\n"
    );
    assert_eq!(
        out(|o| reply::error(o, &ErrorReply::Client("bad data chunk"), false)),
        "CLIENT_ERROR bad data chunk\r\n"
    );
    assert_eq!(
        out(|o| reply::error(o, &ErrorReply::Server("out of memory"), false)),
        "SERVER_ERROR out of memory\r\n"
    );
    assert_eq!(out(|o| reply::error(o, &ErrorReply::Client("x"), true)), "");
    assert_eq!(out(|o| reply::ok(o, false)), "OK\r\n");
    assert_eq!(out(|o| reply::ok(o, true)), "");
    assert_eq!(
        out(|o| reply::version(o, "1.6.18-groupcached")),
        "VERSION 1.6.18-groupcached\r\n"
    );
    assert_eq!(
        out(|o| {
            reply::stat(o, "curr_items", 3);
            reply::stat_str(o, "rusage_user", "0.1:2");
            reply::end(o);
        }),
        "STAT curr_items 3\r\nSTAT rusage_user 0.1:2\r\nEND\r\n"
    );
    assert_eq!(out(reply::meta_noop), "MN\r\n");
    let Command::MetaDebug { key } = cmd(b"me k\r\n") else {
        panic!()
    };
    assert_eq!(
        out(|o| reply::meta_debug(o, &key, &[("exp", -1), ("la", 2)])),
        "ME k exp=-1 la=2\r\n"
    );
    assert_eq!(out(reply::meta_debug_miss), "EN\r\n");
}

#[test]
fn owned_targets_answer_after_the_buffer_is_gone() {
    let item = ItemInfo {
        flags: 2,
        cas: 8,
        ttl: Some(5),
        ..ItemInfo::default()
    };
    let cases: [&[u8]; 5] = [
        b"gets kk\r\n",
        b"mg kk v k c t f s Oabc q\r\n",
        b"mg dGVzdA== b k v\r\n",
        b"ms kk 1 c k Oz q\r\nx\r\n",
        b"ma kk v t k O1\r\n",
    ];
    for input in cases {
        let mut buf = input.to_vec();
        let (borrowed, owned) = {
            let (t, owned) = match cmd(&buf) {
                Command::Get(g) => {
                    let key = g.keys.iter().next().unwrap();
                    (g.target(&key), OwnedTarget::new(&g.target(&key)))
                }
                Command::Store(s) => (s.target(), OwnedTarget::new(&s.target())),
                Command::Arith(a) => (a.target(), OwnedTarget::new(&a.target())),
                other => panic!("{other:?}"),
            };
            assert_eq!(owned.target(), t);
            let mut o = Vec::new();
            reply::get_hit(&mut o, &t, &item, 1);
            reply::get_miss(&mut o, &t);
            reply::store(&mut o, &t, StoreOutcome::NotStored, 8);
            reply::arith(&mut o, &t, ArithOutcome::Value(12), &item);
            (o, owned)
        };
        buf.fill(b'#'); // the read buffer moves on
        let mut o = Vec::new();
        let t = owned.target();
        reply::get_hit(&mut o, &t, &item, 1);
        reply::get_miss(&mut o, &t);
        reply::store(&mut o, &t, StoreOutcome::NotStored, 8);
        reply::arith(&mut o, &t, ArithOutcome::Value(12), &item);
        assert_eq!(
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(&borrowed)
        );
        assert!(!o.contains(&b'#'));
    }
    assert!(std::mem::size_of::<OwnedTarget>() < 320);
}
