//! The classic text protocol.

use super::super::{
    parse, ArithMode, Command, ErrorReply, FatalError, Limits, Parsed, Reply, StoreMode, Ttl,
};
use super::toy::Toy;
use super::{cmd, one, transcript, NOW};

#[test]
fn get_and_gets_answer_like_memcached() {
    transcript(
        b"version\r\nset a 5 0 3\r\nabc\r\nget a b\r\ngets a\r\n",
        b"VERSION 1.6.18\r\nSTORED\r\nVALUE a 5 3\r\nabc\r\nEND\r\nVALUE a 5 3 1\r\nabc\r\nEND\r\n",
    );
    // Extra spaces, a bare \n line end.
    transcript(
        b"set a 0 0 3\nabc\r\n get  a   b \nget a\n",
        b"STORED\r\nVALUE a 0 3\r\nabc\r\nEND\r\nVALUE a 0 3\r\nabc\r\nEND\r\n",
    );
}

#[test]
fn a_get_carries_its_keys_in_order() {
    let Command::Get(g) = cmd(b"gets a bb ccc\r\n") else {
        panic!()
    };
    let keys: Vec<&[u8]> = g.keys.iter().map(|k| k.wire()).collect();
    assert_eq!(keys, vec![&b"a"[..], b"bb", b"ccc"]);
    assert!(g.want_cas && g.want_value && g.touch.is_none());
    assert_eq!(g.reply, Reply::Classic { noreply: false });
    let Command::Get(g) = cmd(b"gat 100 k\r\n") else {
        panic!()
    };
    assert_eq!(g.touch, Some(Ttl::Secs(100)));
    assert!(!g.want_cas);
    // `noreply` is just a key to get.
    let Command::Get(g) = cmd(b"get a noreply\r\n") else {
        panic!()
    };
    assert_eq!(g.keys.iter().count(), 2);
}

#[test]
fn unknown_commands_and_wrong_arity_are_error() {
    for line in [
        &b"foo\r\n"[..],
        b"\r\n",
        b"GET a\r\n",
        b"get\r\n",
        b"gets\r\n",
        b"gat\r\n",
        b"set a 0 0\r\n",
        b"incr n\r\n",
        b"touch a\r\n",
        b"delete\r\n",
        b"verbosity\r\n",
        b"flush_all 1 2 3\r\n",
        b"verbosity 1 2 3\r\n",
        b"incr\r\n",
    ] {
        transcript(line, b"ERROR\r\n");
    }
    assert_eq!(
        cmd(b"bogus\r\n"),
        Command::Error {
            error: ErrorReply::UnknownCommand,
            noreply: false
        }
    );
}

#[test]
fn malformed_storage_lines() {
    transcript(
        b"set a 0 0 x\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    transcript(
        b"set a 0 0 -1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    transcript(
        b"set a -1 0 3\r\nabc\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    transcript(
        b"cas a 0 0 3 x\r\nabc\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    transcript(
        b"cas a 0 0 1 -1\r\nx\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    // Flags must fit 32 bits (memcached 1.6.18 truncates; refusing is safer).
    transcript(
        b"set a 4294967296 0 3\r\nabc\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    transcript(
        b"set a 4294967295 0 3\r\nabc\r\nget a\r\n",
        b"STORED\r\nVALUE a 4294967295 3\r\nabc\r\nEND\r\n",
    );
    // memcached then reads "abc" as a command (one more ERROR); the codec skips the
    // data block of a refused store whose length it could read.
    let r = one(b"set a x 0 3\r\nabc\r\n");
    assert_eq!((r.consumed, r.skip), (13, 5));
    // Unreadable length: nothing to skip, the next line is a command (as memcached).
    transcript(
        b"set a 0 0 x\r\nabc\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    transcript(
        b"set a 0 0 3 noreply extra\r\nabc\r\nmn\r\n",
        b"ERROR\r\nMN\r\n",
    );
    transcript(b"cas a 0 0 3\r\nabc\r\nmn\r\n", b"ERROR\r\nMN\r\n");
    // A sixth token that is not `noreply` is ignored.
    transcript(b"set a 0 0 3 junk\r\nabc\r\n", b"STORED\r\n");
    // Numbers as strtoull reads them.
    transcript(
        b"set a +1 00 +1\r\nx\r\nget a\r\n",
        b"STORED\r\nVALUE a 1 1\r\nx\r\nEND\r\n",
    );
}

#[test]
fn bad_data_chunk_consumes_exactly_the_declared_block() {
    // 3 bytes declared, "abcd\r\n" sent: "abcd\r" is consumed, "\n" is an empty line.
    transcript(
        b"set a 0 0 3\r\nabcd\r\nget a\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n",
    );
    transcript(
        b"set a 0 0 3\r\nab\r\n\r\nget a\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n",
    );
    transcript(b"set a 0 0 3 noreply\r\nabcd\r\nmn\r\n", b"ERROR\r\nMN\r\n");
    transcript(
        b"set a 0 0 1\r\nx\r\nappend a 0 0 1\r\nyy\r\n",
        b"STORED\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
}

#[test]
fn keys_are_checked() {
    let k250 = [b'k'; 250];
    let k251 = [b'k'; 251];
    let line = |k: &[u8]| [&b"set "[..], k, b" 0 0 3\r\nabc\r\n"].concat();
    transcript(&line(&k250), b"STORED\r\n");
    transcript(&line(&k251), b"CLIENT_ERROR bad command line format\r\n");
    transcript(
        &[&b"get a "[..], &k251, b"\r\n"].concat(),
        b"CLIENT_ERROR bad command line format\r\n",
    );
    // Control characters: memcached accepts them, groupcached refuses (issue 12).
    transcript(
        b"set a\x01b 0 0 3\r\nabc\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    transcript(
        b"get a\x7fb\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    transcript(b"get a\r\r\n", b"CLIENT_ERROR bad command line format\r\n");
    transcript(
        b"delete a\tb\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    // noreply silences the error, as in memcached.
    transcript(
        &[&b"set "[..], &k251, b" 0 0 3 noreply\r\nabc\r\nmn\r\n"].concat(),
        b"MN\r\n",
    );
}

#[test]
fn storage_commands() {
    transcript(
        b"set a 0 0 1\r\na\r\nappend a 0 0 1\r\nb\r\nprepend a 5 5 1\r\nc\r\ngets a\r\nappend zz 0 0 1\r\nb\r\nadd a 0 0 1\r\nx\r\nreplace zz 0 0 1\r\nx\r\n",
        b"STORED\r\nSTORED\r\nSTORED\r\nVALUE a 0 3 3\r\ncab\r\nEND\r\nNOT_STORED\r\nNOT_STORED\r\nNOT_STORED\r\n",
    );
    transcript(
        b"cas zz 0 0 3 1\r\nabc\r\nset a 0 0 1\r\nx\r\ncas a 0 0 1 99\r\ny\r\ncas a 0 0 1 1\r\nz\r\ncas a 0 0 1 99 noreply\r\nx\r\nget a\r\n",
        b"NOT_FOUND\r\nSTORED\r\nEXISTS\r\nSTORED\r\nVALUE a 0 1\r\nz\r\nEND\r\n",
    );
    let Command::Store(s) = cmd(b"cas k 7 100 2 42 noreply\r\nhi\r\n") else {
        panic!()
    };
    assert_eq!(
        (
            s.key.wire(),
            s.mode,
            s.flags,
            s.ttl,
            s.value,
            s.compare_cas,
            s.reply
        ),
        (
            &b"k"[..],
            StoreMode::Set,
            7,
            Ttl::Secs(100),
            &b"hi"[..],
            Some(42),
            Reply::Classic { noreply: true }
        )
    );
    let r = one(b"append k 0 0 0\r\n\r\nrest");
    assert_eq!((r.consumed, r.skip), (18, 0));
}

#[test]
fn a_store_waits_for_its_data_block() {
    let l = Limits::default();
    let full = b"set k 0 0 5\r\nhello\r\n";
    for cut in 0..full.len() {
        match parse(&full[..cut], &l, NOW) {
            Ok(Parsed::Incomplete { need }) => {
                assert!(need > cut);
                if cut >= 13 {
                    assert_eq!(need, full.len(), "a store asks for its whole block");
                }
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
    assert_eq!(one(full).consumed, full.len());
}

#[test]
fn exptimes_follow_memcached() {
    assert_eq!(Ttl::from_exptime(0, NOW), Ttl::Never);
    assert_eq!(Ttl::from_exptime(-1, NOW), Ttl::Expired);
    assert_eq!(Ttl::from_exptime(1, NOW), Ttl::Secs(1));
    assert_eq!(Ttl::from_exptime(2_592_000, NOW), Ttl::Secs(2_592_000));
    assert_eq!(
        Ttl::from_exptime(2_592_001, NOW),
        Ttl::Expired,
        "an absolute time in 1970"
    );
    assert_eq!(Ttl::from_exptime(NOW as i64, NOW), Ttl::Expired);
    assert_eq!(Ttl::from_exptime(NOW as i64 + 60, NOW), Ttl::Secs(60));
    assert_eq!(Ttl::from_exptime(i64::MAX, NOW), Ttl::Secs(u32::MAX));
    let Command::Store(s) = cmd(b"set k 0 1700000100 1\r\nx\r\n") else {
        panic!()
    };
    assert_eq!(s.ttl, Ttl::Secs(100));
    transcript(
        b"set f 0 2592000 3\r\nabc\r\nget f\r\n",
        b"STORED\r\nVALUE f 0 3\r\nabc\r\nEND\r\n",
    );
    transcript(
        b"set f 0 2592001 3\r\nabc\r\nget f\r\n",
        b"STORED\r\nEND\r\n",
    );
    transcript(b"set f 0 -1 3\r\nabc\r\nget f\r\n", b"STORED\r\nEND\r\n");
    let mut toy = Toy::new();
    let at = format!("set f 0 {} 1\r\nx\r\nget f\r\n", toy.now + 10);
    assert_eq!(
        toy.feed(at.as_bytes()),
        b"STORED\r\nVALUE f 0 1\r\nx\r\nEND\r\n"
    );
    toy.now += 10;
    assert_eq!(toy.feed(b"get f\r\n"), b"END\r\n");
}

#[test]
fn delete_forms() {
    transcript(
        b"set a 0 0 1\r\nx\r\ndelete a\r\ndelete a 0\r\n",
        b"STORED\r\nDELETED\r\nNOT_FOUND\r\n",
    );
    transcript(
        b"delete a 1\r\n",
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
    );
    transcript(
        b"delete a noreply\r\ndelete a 0 noreply\r\ndelete a 1 noreply\r\nmn\r\n",
        b"MN\r\n",
    );
    // `noreply` only counts after the key.
    transcript(
        b"set noreply 0 0 1\r\nx\r\ndelete noreply\r\n",
        b"STORED\r\nDELETED\r\n",
    );
}

#[test]
fn incr_and_decr() {
    transcript(
        b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr n x\r\nincr n -1\r\nincr n 18446744073709551615\r\nincr n 18446744073709551616\r\nincr nn 1\r\nincr n +5\r\nincr n 0x5\r\n",
        b"STORED\r\n15\r\n0\r\nCLIENT_ERROR invalid numeric delta argument\r\nCLIENT_ERROR invalid numeric delta argument\r\n18446744073709551615\r\nCLIENT_ERROR invalid numeric delta argument\r\nNOT_FOUND\r\n4\r\nCLIENT_ERROR invalid numeric delta argument\r\n",
    );
    transcript(
        b"set s 0 0 3\r\nabc\r\nincr s 1\r\nincr s 1 noreply\r\nincr n x noreply\r\nmn\r\n",
        b"STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nMN\r\n",
    );
    let Command::Arith(a) = cmd(b"decr k 7\r\n") else {
        panic!()
    };
    assert_eq!(
        (a.mode, a.delta, a.vivify, a.want_value),
        (ArithMode::Decr, 7, None, true)
    );
}

#[test]
fn touch_and_gat() {
    transcript(
        b"set n 0 0 1\r\n5\r\ntouch n 10\r\ntouch nn 10\r\ntouch n x\r\ntouch n x noreply\r\nmn\r\n",
        b"STORED\r\nTOUCHED\r\nNOT_FOUND\r\nCLIENT_ERROR invalid exptime argument\r\nMN\r\n",
    );
    transcript(
        b"set n 0 0 1\r\n5\r\ngat 10 n a\r\ngats 10 n\r\ngat x n\r\ngat 10\r\n",
        b"STORED\r\nVALUE n 0 1\r\n5\r\nEND\r\nVALUE n 0 1 1\r\n5\r\nEND\r\nCLIENT_ERROR invalid exptime argument\r\nEND\r\n",
    );
    transcript(
        b"set a 0 0 1\r\nx\r\ntouch a -1\r\nget a\r\n",
        b"STORED\r\nTOUCHED\r\nEND\r\n",
    );
}

#[test]
fn flush_all_verbosity_version_stats_quit() {
    transcript(
        b"flush_all\r\nflush_all 10\r\nflush_all noreply\r\nflush_all x\r\nflush_all -1\r\nflush_all 0 noreply\r\nflush_all 1 2\r\nflush_all noreply x\r\nmn\r\n",
        b"OK\r\nOK\r\nCLIENT_ERROR invalid exptime argument\r\nOK\r\nOK\r\nCLIENT_ERROR invalid exptime argument\r\nMN\r\n",
    );
    assert_eq!(
        cmd(b"flush_all 30\r\n"),
        Command::FlushAll {
            delay: 30,
            noreply: false
        }
    );
    assert_eq!(
        cmd(b"flush_all 1700000100 noreply\r\n"),
        Command::FlushAll {
            delay: 100,
            noreply: true
        }
    );
    assert_eq!(
        cmd(b"flush_all -5\r\n"),
        Command::FlushAll {
            delay: 0,
            noreply: false
        }
    );
    transcript(
        b"verbosity 1\r\nverbosity x\r\nverbosity 1 noreply\r\nverbosity x noreply\r\nmn\r\n",
        b"OK\r\nCLIENT_ERROR bad command line format\r\nMN\r\n",
    );
    transcript(b"version x\r\n", b"VERSION 1.6.18\r\n");
    transcript(
        b"stats\r\n",
        b"STAT curr_items 0\r\nSTAT version 1.6.18\r\nEND\r\n",
    );
    let Command::Stats { args } = cmd(b"stats detail on\r\n") else {
        panic!()
    };
    assert_eq!(args.collect::<Vec<_>>(), vec![&b"detail"[..], b"on"]);
    let mut toy = Toy::new();
    assert_eq!(toy.feed(b"quit\r\nversion\r\n"), b"");
    assert!(toy.closed);
}

#[test]
fn too_large_values_are_refused_and_skipped() {
    let big = vec![b'x'; 2_000_000];
    let input = [&b"set f 0 0 2000000\r\n"[..], &big, b"\r\nget f\r\n"].concat();
    transcript(
        &input,
        b"SERVER_ERROR object too large for cache\r\nEND\r\n",
    );
    let input = [
        &b"set f 0 0 2000000 noreply\r\n"[..],
        &big,
        b"\r\nget f\r\n",
    ]
    .concat();
    transcript(&input, b"END\r\n");
    // A failed plain set removes the old item, as memcached does.
    let input = [
        &b"set f 0 0 1\r\nx\r\nset f 0 0 2000000\r\n"[..],
        &big,
        b"\r\nget f\r\n",
    ]
    .concat();
    transcript(
        &input,
        b"STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n",
    );
    // The skip works when the block arrives later, in pieces.
    let mut toy = Toy::new();
    assert_eq!(
        toy.feed(b"add f 0 0 2000000\r\n"),
        b"SERVER_ERROR object too large for cache\r\n"
    );
    assert_eq!(toy.feed(&big[..1000]), b"");
    assert_eq!(
        toy.feed(&[&big[1000..], &b"\r\nmn\r\n"[..]].concat()),
        b"MN\r\n"
    );
    let r = one(b"set f 0 0 2000000\r\n");
    assert_eq!((r.consumed, r.skip), (19, 2_000_002));
    assert!(matches!(r.command, Command::TooLarge { unlink: true, .. }));
}

#[test]
fn long_lines_close_the_connection() {
    let l = Limits::default();
    let junk = vec![b'x'; 3000];
    assert_eq!(
        parse(&junk, &l, NOW),
        Err(FatalError::LineTooLong { limit: 2048 })
    );
    assert_eq!(
        parse(&junk[..2047], &l, NOW),
        Ok(Parsed::Incomplete { need: 2048 })
    );
    let mut toy = Toy::new();
    assert_eq!(toy.feed(&junk), b"CLIENT_ERROR line too long\r\n");
    assert!(toy.closed);
    // A long multi-get keeps going (memcached's exception for get/gets).
    let get = [&b"get "[..], &junk].concat();
    assert!(matches!(
        parse(&get, &l, NOW),
        Ok(Parsed::Incomplete { .. })
    ));
    let mut many = b"get".to_vec();
    for i in 0..1000 {
        many.extend_from_slice(format!(" key{i}").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let Command::Get(g) = cmd(&many) else {
        panic!()
    };
    assert_eq!(g.keys.iter().count(), 1000);
    // Even with its newline, an over-long line is refused, so the outcome does not
    // depend on how the bytes arrived.
    let line = [&junk[..], b"\r\n"].concat();
    assert_eq!(
        parse(&line, &l, NOW),
        Err(FatalError::LineTooLong { limit: 2048 })
    );
}

#[test]
fn binary_protocol_is_refused() {
    let l = Limits::default();
    assert_eq!(
        parse(&[0x80, 0x00, 0x00, 0x03], &l, NOW),
        Err(FatalError::BinaryProtocol)
    );
    assert!(FatalError::BinaryProtocol
        .reply()
        .starts_with(b"CLIENT_ERROR "));
}

#[test]
fn pipelined_mixed_commands_in_one_buffer() {
    transcript(
        b"set a 0 0 1\r\n1\r\nget a\r\nmg a v\r\nms b 2 T0\r\nhi\r\nincr a 41\r\nmg b s v\r\ndelete a\r\nmd b q\r\nmg b v q\r\nget a b\r\nmn\r\n",
        b"STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\nVA 1\r\n1\r\nHD\r\n42\r\nVA 2 s2\r\nhi\r\nDELETED\r\nEND\r\nMN\r\n",
    );
}
