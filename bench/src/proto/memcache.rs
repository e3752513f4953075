//! memcached's meta commands, its fastest text form: `mg <key> v` and
//! `ms <key> <len>`. Replies come back in request order and are matched FIFO.
//!
//! Replies: `VA <len> [flags]\r\n<data>\r\n` (hit), `EN\r\n` (miss), `HD\r\n`
//! (stored), `NS` / `EX` / `NF` (not stored), or a generic `ERROR` /
//! `CLIENT_ERROR ...` / `SERVER_ERROR ...` line.

use super::memcached_reply::{next_reply, Dialect};
use super::{ByteBuf, Outcome, ProtoError, Reply};
use crate::workload::Op;

/// Appends `mg <key> v\r\n` or `ms <key> <len>\r\n<value>\r\n`.
pub fn encode(out: &mut Vec<u8>, op: Op, key: &[u8], value: &[u8]) {
    match op {
        Op::Get => {
            out.extend_from_slice(b"mg ");
            out.extend_from_slice(key);
            out.extend_from_slice(b" v\r\n");
        }
        Op::Set => {
            out.extend_from_slice(b"ms ");
            out.extend_from_slice(key);
            out.push(b' ');
            push_decimal(out, value.len());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Meta-command replies: `VA <len> [flags]`, then the data.
const DIALECT: Dialect = Dialect {
    value_prefix: b"VA ",
    len_field: 0,
    end_line: None,
    statuses: &[
        (b"EN", Op::Get, Outcome::Miss),
        (b"HD", Op::Set, Outcome::Stored),
        (b"NS", Op::Set, Outcome::Failed("NOT_STORED")),
        (b"EX", Op::Set, Outcome::Failed("EXISTS")),
        (b"NF", Op::Set, Outcome::Failed("NOT_FOUND")),
    ],
};

/// Incremental parser of meta-command replies.
#[derive(Debug, Default)]
pub struct Parser {
    pub(crate) buf: ByteBuf,
}

impl Parser {
    /// An empty parser.
    pub fn new() -> Self {
        Parser::default()
    }

    /// The next reply, `Ok(None)` if it is not complete yet.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtoError> {
        next_reply(&mut self.buf, &DIALECT)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::check_every_split;
    use super::super::Protocol;
    use super::*;

    #[test]
    fn encodes_meta_commands() {
        let mut out = Vec::new();
        encode(&mut out, Op::Get, b"key:1", b"");
        encode(&mut out, Op::Set, b"key:2", b"abc");
        assert_eq!(out, b"mg key:1 v\r\nms key:2 3\r\nabc\r\n");
    }

    #[test]
    fn parses_every_reply_split_anywhere() {
        // A value that contains CRLF and the letters of other replies must not confuse it.
        let stream = b"VA 6 f0\r\nEN\r\nHD\r\nVA 0\r\n\r\nEN\r\nNS\r\nSERVER_ERROR out of memory\r\nHD\r\nCLIENT_ERROR bad\r\nERROR\r\n";
        let stream = [&b"VA 10\r\nHD\r\nEN\r\nxx\r\n"[..], &stream[..]].concat();
        let r = |op, outcome| Reply {
            id: None,
            op,
            outcome,
        };
        let want = [
            r(Some(Op::Get), Outcome::Hit(10)),
            r(Some(Op::Get), Outcome::Hit(6)),
            r(Some(Op::Get), Outcome::Hit(0)),
            r(Some(Op::Get), Outcome::Miss),
            r(Some(Op::Set), Outcome::Failed("NOT_STORED")),
            r(None, Outcome::Failed("SERVER_ERROR")),
            r(Some(Op::Set), Outcome::Stored),
            r(None, Outcome::Failed("CLIENT_ERROR")),
            r(None, Outcome::Failed("ERROR")),
        ];
        check_every_split(Protocol::Memcache, &stream, &want);
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        for bad in [
            &b"VA x\r\n"[..],
            b"VA 3\r\nabcXY",
            b"WHAT\r\n",
            b"EN\n",
            b"VA 99999999999\r\n",
        ] {
            let mut p = Parser::new();
            p.buf.extend_from_slice(bad);
            assert!(
                p.next_reply().is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
