//! The request parser: framing (line, data block, limits) and the classic text
//! commands. Meta commands are in [`super::meta`].
//!
//! [`parse`] looks at the start of the connection's read buffer and either returns
//! one request and how much of the buffer it used, asks for more bytes, or reports a
//! fatal error after which the connection must be answered and closed. It never
//! copies, never allocates, and never panics, whatever the bytes.

use super::command::{
    Arith, ArithMode, Command, ErrorReply, Get, Key, KeyList, Reply, Store, StoreMode, Touch, Ttl,
};
use super::lex::{
    find_newline, parse_i64, parse_len, parse_u32, parse_u64, strip_cr, valid_key, Tokens,
};
use super::meta;

/// Size limits of the codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line (including `\r\n`) of any command but the classic
    /// retrievals. memcached closes a connection whose line passes 2048 bytes without a
    /// newline; so does this codec. Values below 108 count as 108.
    pub max_line: usize,
    /// Longest `get`/`gets`/`gat`/`gats` line: multi-key gets are long (memcached lets
    /// them grow without bound; this caps the read buffer). At least `max_line`.
    pub max_get_line: usize,
    /// Largest value a store may carry; larger ones are answered `SERVER_ERROR object
    /// too large for cache` and their data block is skipped.
    pub max_item_size: usize,
}

impl Default for Limits {
    /// memcached's defaults: 2048-byte lines, 1 MiB items; multi-gets up to 1 MiB.
    fn default() -> Self {
        Limits {
            max_line: 2048,
            max_get_line: 1 << 20,
            max_item_size: 1 << 20,
        }
    }
}

/// One complete request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// What to do and how to answer.
    pub command: Command<'a>,
    /// Bytes of the buffer the request used (line and data block); drop them once the
    /// command has been handled (it borrows from them).
    pub consumed: usize,
    /// Further bytes of the stream to discard after `consumed`: the data block of a
    /// refused store (too large, bad key or numbers), which may not have arrived yet.
    /// Usually 0. The connection keeps the count and drops that many bytes as they
    /// come, before parsing again (see [`discard`]).
    pub skip: u64,
}

/// What [`parse`] found at the start of the buffer.
// A `Request` is returned once per request and moved a few times on its way out
// (128 bytes, was about 330: a base64 key is decoded when used, not held; the test
// `a_parsed_request_stays_small` keeps it so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A complete request.
    Request(Request<'a>),
    /// Not enough bytes yet. `need` is how many buffered bytes the next attempt needs
    /// at least (for a store, the whole line plus data block: reserve that much).
    Incomplete {
        /// Minimum buffer length for progress.
        need: usize,
    },
}

/// The connection cannot continue: send [`FatalError::reply`], then close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatalError {
    /// No newline within the line limit (`limit` bytes). memcached closes such a
    /// connection; resynchronising inside an unbounded line is guesswork.
    LineTooLong {
        /// The limit that applied.
        limit: usize,
    },
    /// The first byte of a request is 0x80, memcached's binary-protocol magic; only the
    /// text and meta protocols are spoken here.
    BinaryProtocol,
}

impl FatalError {
    /// The line to send before closing.
    pub fn reply(&self) -> &'static [u8] {
        match self {
            FatalError::LineTooLong { .. } => b"CLIENT_ERROR line too long\r\n",
            FatalError::BinaryProtocol => {
                b"CLIENT_ERROR binary protocol not supported, use the text or meta protocol\r\n"
            }
        }
    }
}

impl std::fmt::Display for FatalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FatalError::LineTooLong { limit } => {
                write!(f, "memcache command line longer than {limit} bytes")
            }
            FatalError::BinaryProtocol => write!(f, "memcached binary protocol request"),
        }
    }
}

impl std::error::Error for FatalError {}

/// Drops up to `*skip` bytes of `available` fresh input: returns how many to drop now
/// and lowers `*skip` by that much.
#[inline]
pub fn discard(skip: &mut u64, available: usize) -> usize {
    let n = usize::try_from(*skip).unwrap_or(usize::MAX).min(available);
    *skip -= n as u64;
    n
}

pub(crate) const BAD_FORMAT: &str = "bad command line format";
const BAD_EXPTIME: &str = "invalid exptime argument";
const BAD_DELTA: &str = "invalid numeric delta argument";
const BAD_CHUNK: &str = "bad data chunk";

/// Parses one request at the start of `buf`. `now_unix` converts absolute exptimes
/// (more than 30 days) into TTLs; pass the connection loop's clock.
///
/// Incremental: feeding a stream in any pieces yields the same requests as feeding it
/// whole (a prefix either yields what the whole would, or `Incomplete`).
pub fn parse<'a>(buf: &'a [u8], limits: &Limits, now_unix: u64) -> Result<Parsed<'a>, FatalError> {
    let Some(&first) = buf.first() else {
        return Ok(Parsed::Incomplete { need: 1 });
    };
    if first == 0x80 {
        return Err(FatalError::BinaryProtocol);
    }
    let max_line = limits.max_line.max(MIN_LINE);
    let limit = if is_retrieval(buf) {
        limits.max_get_line.max(max_line)
    } else {
        max_line
    };
    let Some(nl) = find_newline(buf, limit) else {
        if buf.len() >= limit {
            return Err(FatalError::LineTooLong { limit });
        }
        return Ok(Parsed::Incomplete {
            need: buf.len() + 1,
        });
    };
    let line = strip_cr(&buf[..nl]);
    let line_len = nl + 1;
    let mut toks = Tokens::new(line);
    let Some(name) = toks.next() else {
        return Ok(done(error(ErrorReply::UnknownCommand, false), line_len, 0));
    };
    let cx = Cx {
        buf,
        line_len,
        limits,
        now: now_unix,
    };
    Ok(match name {
        b"get" => retrieval(toks, false, false, line_len, now_unix),
        b"gets" => retrieval(toks, true, false, line_len, now_unix),
        b"gat" => retrieval(toks, false, true, line_len, now_unix),
        b"gats" => retrieval(toks, true, true, line_len, now_unix),
        b"set" => storage(&cx, toks, StoreMode::Set, false),
        b"add" => storage(&cx, toks, StoreMode::Add, false),
        b"replace" => storage(&cx, toks, StoreMode::Replace, false),
        b"append" => storage(&cx, toks, StoreMode::Append, false),
        b"prepend" => storage(&cx, toks, StoreMode::Prepend, false),
        b"cas" => storage(&cx, toks, StoreMode::Set, true),
        b"delete" => done(delete(toks), line_len, 0),
        b"incr" => done(arith(toks, ArithMode::Incr), line_len, 0),
        b"decr" => done(arith(toks, ArithMode::Decr), line_len, 0),
        b"touch" => done(touch(toks, now_unix), line_len, 0),
        b"mg" | b"ms" | b"md" | b"ma" | b"mn" | b"me" => meta::parse(&cx, name, toks),
        _ => done(simple(name, toks, now_unix), line_len, 0),
    })
}

/// What a command parser needs besides its tokens.
pub(crate) struct Cx<'a, 'l> {
    /// The whole read buffer (a store's data block follows the line).
    pub buf: &'a [u8],
    /// Length of the command line including its newline.
    pub line_len: usize,
    /// Limits.
    pub limits: &'l Limits,
    /// Current unix time for exptimes.
    pub now: u64,
}

#[inline]
pub(crate) fn done(command: Command<'_>, consumed: usize, skip: u64) -> Parsed<'_> {
    Parsed::Request(Request {
        command,
        consumed,
        skip,
    })
}

#[inline]
pub(crate) fn error(error: ErrorReply, noreply: bool) -> Command<'static> {
    Command::Error { error, noreply }
}

#[inline]
fn client(reason: &'static str, noreply: bool) -> Command<'static> {
    error(ErrorReply::Client(reason), noreply)
}

/// Leading spaces a line may have and still count as a retrieval (memcached's 100).
const LEAD_MAX: usize = 100;

/// Shortest line limit honoured: the retrieval test must be decidable within the
/// limit (up to 100 spaces and `gats `), or feeding a line byte by byte could fail
/// where feeding it whole succeeds.
const MIN_LINE: usize = LEAD_MAX + 8;

/// True if the buffer starts (after up to 100 spaces) with a classic retrieval command
/// name, whose lines may be long.
fn is_retrieval(buf: &[u8]) -> bool {
    let spaces = buf
        .iter()
        .take(LEAD_MAX + 1)
        .take_while(|&&b| b == b' ')
        .count();
    if spaces > LEAD_MAX {
        return false;
    }
    let b = &buf[spaces..];
    b.starts_with(b"get ")
        || b.starts_with(b"gets ")
        || b.starts_with(b"gat ")
        || b.starts_with(b"gats ")
}

/// memcached's `set_noreply_maybe`: the last token is `noreply`.
#[inline]
fn ends_noreply(toks: Tokens<'_>) -> bool {
    toks.last() == Some(b"noreply")
}

fn retrieval(
    mut toks: Tokens<'_>,
    cas: bool,
    touch: bool,
    line_len: usize,
    now: u64,
) -> Parsed<'_> {
    let ttl = if touch {
        let Some(exp) = toks.next() else {
            return done(error(ErrorReply::UnknownCommand, false), line_len, 0);
        };
        match parse_i64(exp) {
            Some(e) => Some(Ttl::from_exptime(e, now)),
            None => return done(client(BAD_EXPTIME, false), line_len, 0),
        }
    } else {
        if toks.is_empty() {
            return done(error(ErrorReply::UnknownCommand, false), line_len, 0);
        }
        None
    };
    if !{ toks }.all(valid_key) {
        return done(client(BAD_FORMAT, false), line_len, 0);
    }
    let get = Get {
        keys: KeyList::Words(toks),
        want_value: true,
        want_cas: cas,
        touch: ttl,
        vivify: None,
        recache: None,
        no_bump: false,
        reply: Reply::Classic { noreply: false },
    };
    done(Command::Get(get), line_len, 0)
}

/// `<cmd> <key> <flags> <exptime> <bytes> [<cas>] [noreply]` and its data block.
fn storage<'a>(cx: &Cx<'a, '_>, toks: Tokens<'a>, mode: StoreMode, is_cas: bool) -> Parsed<'a> {
    let fixed = if is_cas { 5 } else { 4 };
    let n = toks.count();
    let noreply = ends_noreply(toks);
    let mut t = toks;
    let (key, flags, exptime, bytes) = (t.next(), t.next(), t.next(), t.next());
    let cas_tok = if is_cas { t.next() } else { None };
    // If the line says how long its data block is, a refused store skips that block
    // instead of reading it as commands (memcached would answer each of its lines).
    let skip = bytes.and_then(parse_len).map_or(0, |len| len as u64 + 2);
    if n < fixed || n > fixed + 1 {
        return done(error(ErrorReply::UnknownCommand, false), cx.line_len, skip);
    }
    let (Some(key), Some(flags), Some(exptime), Some(bytes)) = (key, flags, exptime, bytes) else {
        return done(error(ErrorReply::UnknownCommand, false), cx.line_len, skip);
    };
    let parsed = (
        valid_key(key),
        parse_u32(flags),
        parse_i64(exptime),
        parse_len(bytes),
        cas_tok.map(parse_u64),
    );
    let (true, Some(flags), Some(exptime), Some(len), cas) = parsed else {
        return done(client(BAD_FORMAT, noreply), cx.line_len, skip);
    };
    let compare_cas = match cas {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => return done(client(BAD_FORMAT, noreply), cx.line_len, skip),
    };
    let key = Key::text(key);
    let reply = Reply::Classic { noreply };
    if len > cx.limits.max_item_size {
        let unlink = mode == StoreMode::Set && !is_cas;
        return done(Command::TooLarge { key, unlink, reply }, cx.line_len, skip);
    }
    data_block(cx, len, noreply, |value| {
        Command::Store(Store {
            key,
            mode,
            flags,
            ttl: Ttl::from_exptime(exptime, cx.now),
            value,
            compare_cas,
            invalidate: false,
            reply,
        })
    })
}

/// Waits for a `len`-byte data block and its `\r\n` after the line, then builds the
/// command from it. A block whose last two bytes are not `\r\n` is answered `CLIENT_ERROR
/// bad data chunk` after consuming exactly `len + 2` bytes, as memcached does; what
/// follows is parsed as the next command.
pub(crate) fn data_block<'a>(
    cx: &Cx<'a, '_>,
    len: usize,
    silent: bool,
    build: impl FnOnce(&'a [u8]) -> Command<'a>,
) -> Parsed<'a> {
    let total = cx.line_len + len + 2;
    let Some(block) = cx.buf.get(cx.line_len..total) else {
        return Parsed::Incomplete { need: total };
    };
    let (value, trailer) = block.split_at(len);
    if trailer != b"\r\n" {
        return done(client(BAD_CHUNK, silent), total, 0);
    }
    done(build(value), total, 0)
}

fn delete(toks: Tokens<'_>) -> Command<'_> {
    let n = toks.count();
    if !(1..=3).contains(&n) {
        return error(ErrorReply::UnknownCommand, false);
    }
    // memcached only looks for `noreply` after the key: `delete noreply` deletes the
    // key "noreply" and answers.
    let noreply = n > 1 && ends_noreply(toks);
    let mut t = toks;
    let key = t.next().unwrap_or_default();
    if n > 1 {
        let hold_is_zero = t.next() == Some(b"0");
        let ok = (n == 2 && (hold_is_zero || noreply)) || (n == 3 && hold_is_zero && noreply);
        if !ok {
            return client(
                "bad command line format.  Usage: delete <key> [noreply]",
                noreply,
            );
        }
    }
    if !valid_key(key) {
        return client(BAD_FORMAT, noreply);
    }
    Command::Delete(super::command::Delete {
        key: Key::text(key),
        compare_cas: None,
        invalidate: false,
        ttl: None,
        reply: Reply::Classic { noreply },
    })
}

fn arith(toks: Tokens<'_>, mode: ArithMode) -> Command<'_> {
    let n = toks.count();
    if !(2..=3).contains(&n) {
        return error(ErrorReply::UnknownCommand, false);
    }
    let noreply = ends_noreply(toks);
    let mut t = toks;
    let (key, delta) = (t.next().unwrap_or_default(), t.next().unwrap_or_default());
    if !valid_key(key) {
        return client(BAD_FORMAT, noreply);
    }
    let Some(delta) = parse_u64(delta) else {
        return client(BAD_DELTA, noreply);
    };
    Command::Arith(Arith {
        key: Key::text(key),
        mode,
        delta,
        vivify: None,
        compare_cas: None,
        touch: None,
        want_value: true,
        reply: Reply::Classic { noreply },
    })
}

fn touch(toks: Tokens<'_>, now: u64) -> Command<'_> {
    let n = toks.count();
    if !(2..=3).contains(&n) {
        return error(ErrorReply::UnknownCommand, false);
    }
    let noreply = ends_noreply(toks);
    let mut t = toks;
    let (key, exp) = (t.next().unwrap_or_default(), t.next().unwrap_or_default());
    if !valid_key(key) {
        return client(BAD_FORMAT, noreply);
    }
    let Some(exp) = parse_i64(exp) else {
        return client(BAD_EXPTIME, noreply);
    };
    Command::Touch(Touch {
        key: Key::text(key),
        ttl: Ttl::from_exptime(exp, now),
        reply: Reply::Classic { noreply },
    })
}

/// Commands without a key: `flush_all`, `version`, `verbosity`, `stats`, `quit`.
fn simple<'a>(name: &[u8], toks: Tokens<'a>, now: u64) -> Command<'a> {
    let n = toks.count();
    let noreply = ends_noreply(toks);
    match name {
        b"version" => Command::Version,
        b"quit" => Command::Quit,
        b"stats" => Command::Stats { args: toks },
        b"flush_all" if n <= 2 => {
            let args = if noreply { n - 1 } else { n };
            let delay = match (args, { toks }.next()) {
                (1.., Some(tok)) => match parse_i64(tok) {
                    Some(e) => flush_delay(e, now),
                    None => return client(BAD_EXPTIME, noreply),
                },
                _ => 0,
            };
            Command::FlushAll { delay, noreply }
        }
        b"verbosity" if (1..=2).contains(&n) => match { toks }.next().and_then(parse_u32) {
            Some(level) => Command::Verbosity { level, noreply },
            None => client(BAD_FORMAT, noreply),
        },
        _ => error(ErrorReply::UnknownCommand, false),
    }
}

/// `flush_all`'s delay in seconds from now: exptime rules, with "already past" and
/// "never" both meaning now.
fn flush_delay(exptime: i64, now: u64) -> u32 {
    match Ttl::from_exptime(exptime, now) {
        Ttl::Secs(s) => s,
        Ttl::Never | Ttl::Expired => 0,
    }
}
