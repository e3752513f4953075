//! memcached's classic text commands: `get <key>` and `set <key> 0 0 <len>`.
//! Replies come back in request order and are matched FIFO.
//!
//! Replies: `VALUE <key> <flags> <len>\r\n<data>\r\nEND\r\n` (hit), `END\r\n` (miss),
//! `STORED`, `NOT_STORED` / `EXISTS` / `NOT_FOUND`, or a generic `ERROR` /
//! `CLIENT_ERROR ...` / `SERVER_ERROR ...` line.

use super::memcache::push_decimal;
use super::memcached_reply::{next_reply, Dialect};
use super::{ByteBuf, Outcome, ProtoError, Reply};
use crate::workload::Op;

/// Appends `get <key>\r\n` or `set <key> 0 0 <len>\r\n<value>\r\n`.
pub fn encode(out: &mut Vec<u8>, op: Op, key: &[u8], value: &[u8]) {
    match op {
        Op::Get => {
            out.extend_from_slice(b"get ");
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n");
        }
        Op::Set => {
            out.extend_from_slice(b"set ");
            out.extend_from_slice(key);
            out.extend_from_slice(b" 0 0 ");
            push_decimal(out, value.len());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Classic replies: `VALUE <key> <flags> <bytes> [<cas>]`, the data, then `END`.
const DIALECT: Dialect = Dialect {
    value_prefix: b"VALUE ",
    len_field: 2,
    end_line: Some(b"END"),
    statuses: &[
        (b"END", Op::Get, Outcome::Miss),
        (b"STORED", Op::Set, Outcome::Stored),
        (b"NOT_STORED", Op::Set, Outcome::Failed("NOT_STORED")),
        (b"EXISTS", Op::Set, Outcome::Failed("EXISTS")),
        (b"NOT_FOUND", Op::Set, Outcome::Failed("NOT_FOUND")),
    ],
};

/// Incremental parser of classic text replies (single-key `get` only).
#[derive(Debug, Default)]
pub struct Parser {
    pub(crate) buf: ByteBuf,
}

impl Parser {
    /// An empty parser.
    pub fn new() -> Self {
        Parser::default()
    }

    /// The next reply, `Ok(None)` if it is not complete yet. A hit is complete only
    /// with its closing `END` line.
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
    fn encodes_classic_commands() {
        let mut out = Vec::new();
        encode(&mut out, Op::Get, b"key:1", b"");
        encode(&mut out, Op::Set, b"key:2", b"abc");
        assert_eq!(out, b"get key:1\r\nset key:2 0 0 3\r\nabc\r\n");
    }

    #[test]
    fn parses_every_reply_split_anywhere() {
        let stream = b"VALUE key:1 0 5\r\nEND\r\n\r\nEND\r\nEND\r\nSTORED\r\nVALUE k 0 0 7\r\n\r\nEND\r\nNOT_STORED\r\nSERVER_ERROR object too large for cache\r\nERROR\r\n";
        let r = |op, outcome| Reply {
            id: None,
            op,
            outcome,
        };
        let want = [
            r(Some(Op::Get), Outcome::Hit(5)),
            r(Some(Op::Get), Outcome::Miss),
            r(Some(Op::Set), Outcome::Stored),
            r(Some(Op::Get), Outcome::Hit(0)),
            r(Some(Op::Set), Outcome::Failed("NOT_STORED")),
            r(None, Outcome::Failed("SERVER_ERROR")),
            r(None, Outcome::Failed("ERROR")),
        ];
        check_every_split(Protocol::MemcacheText, stream, &want);
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        for bad in [
            &b"VALUE k 0\r\n"[..],
            b"VALUE k 0 3\r\nabcXY",
            b"VALUE k 0 3\r\nabc\r\nVALUE k 0 1\r\n",
            b"HD\r\n",
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
