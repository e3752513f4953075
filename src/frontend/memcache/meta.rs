//! The meta commands: `mg`, `ms`, `md`, `ma`, `mn`, `me`.
//!
//! Flags are parsed as memcached 1.6 does: every command accepts the union of the meta
//! flags (a flag another command uses is checked and then ignored), a flag may appear
//! once, and the first problem found is reported. `mg` and `ms` name the problem
//! (`CLIENT_ERROR invalid flag`, `duplicate flag`, `bad token in command line format`,
//! ...); `md` and `ma` answer `CLIENT_ERROR invalid or duplicate flag` for all of them,
//! like memcached. `P` and `L` (proxy hints) are accepted and ignored.

use super::command::{
    Arith, ArithMode, Command, Delete, ErrorReply, Get, Key, KeyList, MetaReply, Reply, Store,
    StoreMode, Ttl,
};
use super::lex::{
    decode_base64_key, parse_i64, parse_len, parse_u32, parse_u64, valid_key, Tokens, KEY_MAX,
};
use super::parse::{data_block, done, error, Cx, Parsed, BAD_FORMAT};

/// Most tokens on a meta line (command, key, `ms` datalen, flags), as memcached allows.
const MAX_TOKENS: usize = 19;
/// Longest `O` token, the `O` included.
const MAX_OPAQUE_TOKEN: usize = 32;

/// Which meta command is being parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Get,
    Set,
    Delete,
    Arith,
}

/// Every meta flag of a line, checked.
struct Flags<'a> {
    key: Key<'a>,
    reply: MetaReply<'a>,
    value: bool,
    ttl: Option<Ttl>,
    vivify: Option<Ttl>,
    recache: Option<Ttl>,
    no_bump: bool,
    client_flags: u32,
    cas: Option<u64>,
    mode: Option<u8>,
    initial: u64,
    delta: u64,
    invalidate: bool,
}

fn client(reason: &'static str) -> Command<'static> {
    error(ErrorReply::Client(reason), false)
}

/// Parses a meta command whose name is `name`; `toks` are the tokens after it.
pub(crate) fn parse<'a>(cx: &Cx<'a, '_>, name: &[u8], toks: Tokens<'a>) -> Parsed<'a> {
    let line = cx.line_len;
    let kind = match name {
        b"mn" => return done(Command::MetaNoop, line, 0),
        b"me" => return done(debug(toks), line, 0),
        b"mg" => Kind::Get,
        b"ms" => Kind::Set,
        b"md" => Kind::Delete,
        _ => Kind::Arith,
    };
    let mut t = toks;
    let Some(key) = t.next() else {
        return done(error(ErrorReply::UnknownCommand, false), line, 0);
    };
    let mut datalen = None;
    let mut skip = 0;
    if kind == Kind::Set {
        let Some(len) = t.next().and_then(parse_len) else {
            return done(client(BAD_FORMAT), line, 0);
        };
        datalen = Some(len);
        // A refused ms skips its data block, as memcached does.
        skip = len as u64 + 2;
    }
    if 1 + toks.count() > MAX_TOKENS {
        // memcached's wording differs between mg/md/ma and ms.
        let reason = match kind {
            Kind::Set => "options flags too long",
            _ => "options flags are too long",
        };
        return done(client(reason), line, skip);
    }
    let flags = match flags(kind, key, t, cx.now) {
        Ok(f) => f,
        Err(reason) => return done(client(reason), line, skip),
    };
    let reply = Reply::Meta(flags.reply);
    match kind {
        Kind::Get => done(
            Command::Get(Get {
                keys: KeyList::One(flags.key),
                want_value: flags.value,
                want_cas: false,
                touch: flags.ttl,
                vivify: flags.vivify,
                recache: flags.recache,
                no_bump: flags.no_bump,
                reply,
            }),
            line,
            0,
        ),
        Kind::Set => {
            let mode = match flags.mode {
                None | Some(b'S') => StoreMode::Set,
                Some(b'E') => StoreMode::Add,
                Some(b'R') => StoreMode::Replace,
                Some(b'A') => StoreMode::Append,
                Some(b'P') => StoreMode::Prepend,
                Some(_) => return done(client("invalid mode for ms M token"), line, skip),
            };
            let len = datalen.unwrap_or(0);
            if len > cx.limits.max_item_size {
                let unlink = mode == StoreMode::Set && flags.cas.is_none();
                let cmd = Command::TooLarge {
                    key: flags.key,
                    unlink,
                    reply,
                };
                return done(cmd, line, skip);
            }
            data_block(cx, len, false, |value| {
                Command::Store(Store {
                    key: flags.key,
                    mode,
                    flags: flags.client_flags,
                    ttl: flags.ttl.unwrap_or(Ttl::Never),
                    value,
                    compare_cas: flags.cas,
                    invalidate: flags.invalidate,
                    reply,
                })
            })
        }
        Kind::Delete => done(
            Command::Delete(Delete {
                key: flags.key,
                compare_cas: flags.cas,
                invalidate: flags.invalidate,
                ttl: flags.ttl,
                reply,
            }),
            line,
            0,
        ),
        Kind::Arith => {
            let mode = match flags.mode {
                None | Some(b'I' | b'+') => ArithMode::Incr,
                Some(b'D' | b'-') => ArithMode::Decr,
                Some(_) => return done(client("invalid mode for ma M token"), line, 0),
            };
            done(
                Command::Arith(Arith {
                    key: flags.key,
                    mode,
                    delta: flags.delta,
                    vivify: flags.vivify.map(|ttl| (ttl, flags.initial)),
                    compare_cas: flags.cas,
                    touch: flags.ttl,
                    want_value: flags.value,
                    reply,
                }),
                line,
                0,
            )
        }
    }
}

/// `me <key> [b]`.
fn debug(toks: Tokens<'_>) -> Command<'_> {
    let mut t = toks;
    let Some(key) = t.next() else {
        return client(BAD_FORMAT);
    };
    let key = match t.next() {
        None if valid_key(key) => Key::text(key),
        Some(b"b") if t.next().is_none() && decode_base64_key(key).is_some() => Key::base64(key),
        _ => return client(BAD_FORMAT),
    };
    Command::MetaDebug { key }
}

/// True if command `kind` returns flag `f` in its reply line.
fn returns(kind: Kind, f: u8) -> bool {
    match kind {
        Kind::Get => matches!(f, b'k' | b'c' | b'f' | b's' | b't' | b'h' | b'l' | b'O'),
        Kind::Set => matches!(f, b'k' | b'c' | b'O'),
        Kind::Delete => matches!(f, b'k' | b'O'),
        Kind::Arith => matches!(f, b'k' | b'c' | b't' | b'O'),
    }
}

/// Checks the key and every flag token; the error is the `CLIENT_ERROR` reason.
fn flags<'a>(
    kind: Kind,
    key: &'a [u8],
    toks: Tokens<'a>,
    now: u64,
) -> Result<Flags<'a>, &'static str> {
    let detailed = matches!(kind, Kind::Get | Kind::Set);
    let generic = "invalid or duplicate flag";
    let pick = |specific: &'static str| if detailed { specific } else { generic };
    if key.len() > KEY_MAX {
        return Err(BAD_FORMAT);
    }
    let mut f = Flags {
        key: Key::text(key),
        reply: MetaReply::new(),
        value: false,
        ttl: None,
        vivify: None,
        recache: None,
        no_bump: false,
        client_flags: 0,
        cas: None,
        mode: None,
        initial: 0,
        delta: 1,
        invalidate: false,
    };
    let mut seen = [false; 128];
    let mut base64 = false;
    for tok in toks {
        let (&o, arg) = tok.split_first().ok_or(BAD_FORMAT)?;
        let Some(slot) = seen.get_mut(usize::from(o)).filter(|_| o < 127) else {
            return Err(pick("duplicate flag"));
        };
        if *slot {
            return Err(pick("duplicate flag"));
        }
        *slot = true;
        let ttl = |arg: &[u8]| {
            parse_i64(arg)
                .map(|e| Ttl::from_exptime(e, now))
                .ok_or(pick("bad token in command line format"))
        };
        match o {
            b'b' => base64 = true,
            b'N' => f.vivify = Some(ttl(arg)?),
            b'T' => f.ttl = Some(ttl(arg)?),
            b'R' => f.recache = Some(ttl(arg)?),
            b'O' => {
                if tok.len() > MAX_OPAQUE_TOKEN {
                    return Err(pick("opaque token too long"));
                }
                f.reply.opaque = Some(arg);
            }
            b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'h' | b'l' => {}
            b'v' => f.value = true,
            b'u' => f.no_bump = true,
            b'q' => f.reply.quiet = true,
            b'I' => f.invalidate = true,
            b'F' => f.client_flags = parse_u32(arg).ok_or(pick(BAD_FORMAT))?,
            b'C' => f.cas = Some(parse_u64(arg).ok_or(pick("bad token in command line format"))?),
            b'M' => {
                let [m] = arg else {
                    return Err(pick("incorrect length for M token"));
                };
                f.mode = Some(*m);
            }
            b'J' => f.initial = parse_u64(arg).ok_or(pick("invalid numeric initial value"))?,
            b'D' => f.delta = parse_u64(arg).ok_or(pick("invalid numeric delta value"))?,
            _ => return Err(pick("invalid flag")),
        }
        if returns(kind, o) {
            f.reply.push(o);
        }
    }
    if base64 {
        decode_base64_key(key).ok_or(pick("error decoding key"))?;
        f.key = Key::base64(key);
    } else if !valid_key(key) {
        return Err(BAD_FORMAT);
    }
    Ok(f)
}
