//! The three wire protocols the generator speaks, as pure encoders and incremental
//! response parsers (no sockets here, so every byte boundary can be tested).
//!
//! A parser is fed whatever a socket returned ([`Parser::read_space`] and
//! [`Parser::commit`]) and yields one [`Reply`] per complete response. groupcached
//! replies carry the request id; memcached answers in order, so its replies carry
//! none and the caller matches them first-in, first-out.

pub mod groupcached;
pub mod memcache;
pub mod memcache_text;
mod memcached_reply;

use std::fmt;

use crate::workload::Op;

/// Which protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// groupcached's binary protocol (docs/protocol.md).
    Groupcached,
    /// memcached's meta commands (`mg` / `ms`).
    Memcache,
    /// memcached's classic text commands (`get` / `set`).
    MemcacheText,
}

impl Protocol {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Groupcached => "groupcached",
            Protocol::Memcache => "memcache",
            Protocol::MemcacheText => "memcache-text",
        }
    }

    /// Whether replies come back in request order (and carry no request id).
    pub fn in_order(self) -> bool {
        !matches!(self, Protocol::Groupcached)
    }

    /// Appends one request. `id` is ignored by the in-order protocols; `group` by the
    /// memcached ones.
    pub fn encode(
        self,
        out: &mut Vec<u8>,
        op: Op,
        id: u32,
        group: &[u8],
        key: &[u8],
        value: &[u8],
    ) {
        match self {
            Protocol::Groupcached => groupcached::encode(out, op, id, group, key, value),
            Protocol::Memcache => memcache::encode(out, op, key, value),
            Protocol::MemcacheText => memcache_text::encode(out, op, key, value),
        }
    }

    /// A fresh parser for one connection's responses.
    pub fn parser(self) -> Parser {
        match self {
            Protocol::Groupcached => Parser::Groupcached(groupcached::Parser::new()),
            Protocol::Memcache => Parser::Memcache(memcache::Parser::new()),
            Protocol::MemcacheText => Parser::MemcacheText(memcache_text::Parser::new()),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one response said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A GET found a value of this many bytes.
    Hit(usize),
    /// A GET found nothing.
    Miss,
    /// A SET was stored.
    Stored,
    /// The server answered with an error; the name is the kind reported in the summary
    /// (a groupcached status name such as `TIMEOUT`, or memcached's `SERVER_ERROR`, ...).
    Failed(&'static str),
}

/// One complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The request id it answers (groupcached), or `None` (in-order protocols).
    pub id: Option<u32>,
    /// The operation the response is for, when the response itself says so; a reply
    /// that contradicts the request it was matched with is a protocol error.
    pub op: Option<Op>,
    /// What it said.
    pub outcome: Outcome,
}

/// A response stream that cannot be parsed any further; the connection must close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// groupcached framing failed (see the message).
    Frame(String),
    /// A groupcached request frame arrived where only responses may.
    UnexpectedRequest,
    /// A memcached response line that this client does not understand.
    BadLine(String),
    /// No line end within the longest line a response may have.
    LineTooLong(usize),
    /// A value larger than the generator accepts.
    ValueTooLarge(usize),
}

impl ProtoError {
    /// A short name for error counts.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtoError::Frame(_) => "bad_frame",
            ProtoError::UnexpectedRequest => "unexpected_request",
            ProtoError::BadLine(_) => "bad_response_line",
            ProtoError::LineTooLong(_) => "response_line_too_long",
            ProtoError::ValueTooLarge(_) => "value_too_large",
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Frame(e) => write!(f, "undecodable frame: {e}"),
            ProtoError::UnexpectedRequest => f.write_str("the server sent a request frame"),
            ProtoError::BadLine(l) => write!(f, "unexpected response line {l:?}"),
            ProtoError::LineTooLong(n) => write!(f, "no line end in {n} bytes"),
            ProtoError::ValueTooLarge(n) => write!(f, "value of {n} bytes is over the limit"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// Largest value the parsers accept (memcached's own item limit is 1 MiB by default,
/// groupcached's default frame limit 16 MiB).
pub const MAX_VALUE: usize = 64 * 1024 * 1024;

/// An incremental response parser for one connection.
#[derive(Debug)]
pub enum Parser {
    /// groupcached frames.
    Groupcached(groupcached::Parser),
    /// Meta-command responses.
    Memcache(memcache::Parser),
    /// Classic text responses.
    MemcacheText(memcache_text::Parser),
}

impl Parser {
    /// Free space to read socket bytes into.
    pub fn read_space(&mut self) -> &mut [u8] {
        match self {
            Parser::Groupcached(p) => p.read_space(),
            Parser::Memcache(p) => p.buf.read_space(),
            Parser::MemcacheText(p) => p.buf.read_space(),
        }
    }

    /// Records that `n` bytes were read into [`Parser::read_space`].
    pub fn commit(&mut self, n: usize) {
        match self {
            Parser::Groupcached(p) => p.commit(n),
            Parser::Memcache(p) => p.buf.commit(n),
            Parser::MemcacheText(p) => p.buf.commit(n),
        }
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ProtoError> {
        match self {
            Parser::Groupcached(p) => p.next_reply(),
            Parser::Memcache(p) => p.next_reply(),
            Parser::MemcacheText(p) => p.next_reply(),
        }
    }

    /// Drops anything buffered (after a reconnect).
    pub fn reset(&mut self) {
        match self {
            Parser::Groupcached(p) => *p = groupcached::Parser::new(),
            Parser::Memcache(p) => *p = memcache::Parser::new(),
            Parser::MemcacheText(p) => *p = memcache_text::Parser::new(),
        }
    }
}

/// Smallest free space offered to a read.
const MIN_READ: usize = 16 * 1024;

/// A read buffer for the line-based protocols: bytes in at the end, consumed from the
/// front, compacted when the free space runs short.
#[derive(Debug, Default)]
pub struct ByteBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ByteBuf {
    /// Free space of at least [`MIN_READ`] bytes (or `want` more than is buffered).
    pub fn read_space(&mut self) -> &mut [u8] {
        self.reserve(MIN_READ);
        &mut self.buf[self.end..]
    }

    /// Makes room for `extra` more bytes after what is buffered.
    fn reserve(&mut self, extra: usize) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < extra {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < extra {
                self.buf.resize(self.end + extra.max(self.buf.len()), 0);
            }
        }
    }

    /// Records `n` bytes read into [`ByteBuf::read_space`].
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Appends bytes (for tests, which do not read from a socket).
    #[cfg(test)]
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.reserve(data.len());
        self.buf[self.end..self.end + data.len()].copy_from_slice(data);
        self.end += data.len();
    }

    /// The buffered, unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Consumes `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }
}

/// Longest response line the memcached parsers wait for before giving up.
pub const MAX_LINE: usize = 8 * 1024;

/// Splits off the first `\r\n`-terminated line of `data`: `(line without CRLF,
/// bytes including CRLF)`, `Ok(None)` if no whole line is buffered yet.
pub(crate) fn first_line(data: &[u8]) -> Result<Option<(&[u8], usize)>, ProtoError> {
    match data.iter().position(|&b| b == b'\n') {
        Some(pos) if pos > 0 && data[pos - 1] == b'\r' => Ok(Some((&data[..pos - 1], pos + 1))),
        Some(_) => Err(ProtoError::BadLine(lossy(&data[..data.len().min(64)]))),
        None if data.len() > MAX_LINE => Err(ProtoError::LineTooLong(data.len())),
        None => Ok(None),
    }
}

/// Parses an ASCII decimal length field.
pub(crate) fn parse_len(field: &[u8]) -> Option<usize> {
    if field.is_empty() || field.len() > 12 || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    field.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10)?.checked_add((d - b'0') as usize)
    })
}

/// Text for error messages.
pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The error kind of a memcached error line, if it is one (`ERROR`, `CLIENT_ERROR ...`,
/// `SERVER_ERROR ...`).
pub(crate) fn memcached_error(line: &[u8]) -> Option<&'static str> {
    if line == b"ERROR" {
        Some("ERROR")
    } else if line.starts_with(b"CLIENT_ERROR") {
        Some("CLIENT_ERROR")
    } else if line.starts_with(b"SERVER_ERROR") {
        Some("SERVER_ERROR")
    } else {
        None
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// Feeds `stream` whole, then split at every byte boundary into two pieces, and
    /// checks every feeding yields `want` and leaves nothing behind.
    pub fn check_every_split(protocol: Protocol, stream: &[u8], want: &[Reply]) {
        let whole = feed(protocol, &[stream]);
        assert_eq!(whole, want, "fed whole");
        for cut in 0..=stream.len() {
            let got = feed(protocol, &[&stream[..cut], &stream[cut..]]);
            assert_eq!(got, want, "split at byte {cut}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(feed(protocol, &bytes), want, "fed a byte at a time");
    }

    /// Feeds the pieces in order through read_space/commit, collecting replies.
    pub fn feed(protocol: Protocol, pieces: &[&[u8]]) -> Vec<Reply> {
        let mut p = protocol.parser();
        let mut out = Vec::new();
        for piece in pieces {
            let mut rest = *piece;
            while !rest.is_empty() {
                let space = p.read_space();
                let n = space.len().min(rest.len());
                space[..n].copy_from_slice(&rest[..n]);
                p.commit(n);
                rest = &rest[n..];
                while let Some(r) = p.next_reply().expect("parse") {
                    out.push(r);
                }
            }
        }
        assert_eq!(p.next_reply(), Ok(None));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_need_crlf_and_a_bound() {
        assert_eq!(first_line(b"EN\r\nrest"), Ok(Some((&b"EN"[..], 4))));
        assert_eq!(first_line(b"EN\r"), Ok(None));
        assert!(first_line(b"EN\nx").is_err());
        assert!(first_line(&vec![b'x'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn lengths_are_plain_decimals() {
        assert_eq!(parse_len(b"100"), Some(100));
        assert_eq!(parse_len(b"0"), Some(0));
        for bad in [&b""[..], b"-1", b"1a", b"9999999999999"] {
            assert_eq!(parse_len(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn byte_buf_compacts_and_grows() {
        let mut b = ByteBuf::default();
        b.extend_from_slice(b"hello");
        b.consume(2);
        assert_eq!(b.data(), b"llo");
        let big = vec![1u8; 3 * MIN_READ];
        b.extend_from_slice(&big);
        assert_eq!(b.data().len(), 3 + big.len());
        b.consume(3 + big.len());
        assert!(b.data().is_empty());
        assert!(b.read_space().len() >= MIN_READ);
    }
}
