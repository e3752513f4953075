//! The keys that a buffer's complete requests will read, found without parsing them:
//! the look-ahead of the connection's prefetch.
//!
//! [`super::parse`] builds a whole [`super::Command`] per request (about 300 bytes,
//! with room for a decoded base64 key), and the look-ahead used to call it for every
//! request it looked at, before the same requests were parsed again to be
//! performed: under pipelined `mg` load the copies of those commands took about a
//! sixth of the server's cycles. A prefetch is only a hint, so this walk is allowed
//! to be loose: it reads the key tokens of `get`, `gets`, `gat`, `gats` and `mg`
//! lines as they stand on the wire (a base64 `mg` key is named in its encoded form,
//! which prefetches nothing useful and harms nothing), steps over the data block of
//! a storage command when it is buffered, and skips everything else by its line.

use super::lex::{find_newline, parse_len, strip_cr, Tokens};

/// Calls `key` with each key that the first `max_requests` complete requests in
/// `buf` will read, in order, and returns how many requests it looked at. Stops
/// early at an incomplete line, at a storage command whose data block is not
/// buffered or whose length does not parse, and at a line longer than `max_line`.
pub fn read_keys<'a>(
    buf: &'a [u8],
    max_requests: usize,
    max_line: usize,
    mut key: impl FnMut(&'a [u8]),
) -> usize {
    let mut at = 0;
    for seen in 0..max_requests {
        let rest = &buf[at..];
        let Some(nl) = find_newline(rest, max_line) else {
            return seen;
        };
        let mut toks = Tokens::new(strip_cr(&rest[..nl]));
        let mut next = at + nl + 1;
        match toks.next() {
            Some(b"get" | b"gets") => toks.for_each(&mut key),
            Some(b"gat" | b"gats") => toks.skip(1).for_each(&mut key),
            Some(b"mg") => toks.take(1).for_each(&mut key),
            Some(name) => {
                // A storage command's data block follows its line: its length is
                // `<cmd> <key> <flags> <exptime> <bytes>` or `ms <key> <datalen>`.
                let len_token = match name {
                    b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => Some(3),
                    b"ms" => Some(1),
                    _ => None,
                };
                if let Some(i) = len_token {
                    let Some(len) = toks.nth(i).and_then(parse_len) else {
                        return seen;
                    };
                    next = next.saturating_add(len).saturating_add(2);
                    if next > buf.len() {
                        return seen;
                    }
                }
            }
            None => {}
        }
        at = next;
    }
    max_requests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(buf: &[u8], max: usize) -> (Vec<String>, usize) {
        let mut out = Vec::new();
        let seen = read_keys(buf, max, 2048, |k| {
            out.push(String::from_utf8_lossy(k).into_owned())
        });
        (out, seen)
    }

    #[test]
    fn the_reads_of_every_retrieval_in_order() {
        let buf = b"mg a v\r\nget b c\r\ngets d\r\ngat 10 e f\r\ngats 0 g\r\nmg h\n";
        let (k, seen) = keys(buf, 64);
        assert_eq!(k, ["a", "b", "c", "d", "e", "f", "g", "h"]);
        assert_eq!(seen, 6);
    }

    #[test]
    fn stores_are_stepped_over_with_their_data_blocks_and_other_commands_by_their_line() {
        // The data blocks hold request-like bytes that must not be read as requests.
        let buf = b"set x 0 0 5\r\nget y\r\nmg z\r\nms w 4 T0\r\nmg q\r\ndelete y\r\nversion\r\n\r\nmg r v\r\n";
        let (k, seen) = keys(buf, 64);
        assert_eq!(k, ["z", "r"]);
        assert_eq!(seen, 7);
        let buf = b"cas x 0 0 2 99 noreply\r\nhi\r\nappend y 0 0 0\r\n\r\nget a\r\n";
        assert_eq!(keys(buf, 64), (vec!["a".to_string()], 3));
    }

    #[test]
    fn stops_at_an_incomplete_line_or_data_block_and_at_the_limit() {
        assert_eq!(keys(b"mg a\r\nmg b", 64), (vec!["a".to_string()], 1));
        assert_eq!(keys(b"mg a\r\nset x 0 0 20\r\nshort\r\nmg b\r\n", 64).1, 1);
        assert_eq!(keys(b"mg a\r\nms x nope\r\nmg b\r\n", 64).1, 1);
        assert_eq!(
            keys(b"mg a\r\nmg b\r\nmg c\r\n", 2),
            (vec!["a".into(), "b".into()], 2)
        );
        let long = [b"get ".as_slice(), &[b'k'; 3000], b"\r\n"].concat();
        assert_eq!(keys(&long, 64).1, 0, "a line over max_line is not walked");
        assert_eq!(keys(b"", 64).1, 0);
    }

    #[test]
    fn garbage_never_panics() {
        let bufs: [&[u8]; 6] = [
            b"\n\n\n",
            b"set\r\n",
            b"set x 0 0 18446744073709551615\r\n",
            b"gat\r\n",
            b"ms\r\nmg\r\n",
            b"   \r\nget    \r\n",
        ];
        for b in bufs {
            let _ = keys(b, 64);
        }
    }
}
