//! The reply encoder: appends answers to a connection's output buffer.
//!
//! Each function takes the request's [`Target`] (its dialect, `noreply` or meta return
//! flags, the key as sent; borrowed from the parsed command or kept as an
//! [`super::OwnedTarget`] while the outcome is pending) and the outcome the server
//! computed, and appends the exact bytes memcached would send, or nothing where
//! `noreply` / `q` suppress them. Nothing here allocates beyond growing `out`.
//!
//! Values are never copied by the encoder: [`get_hit`] writes the header and returns
//! whether a value must follow; the caller then appends the value however it likes (a
//! copy, or a separate zero-copy chunk in its output queue) and [`value_end`].
//!
//! Quiet mode (`q`) hides the nominal answer, as memcached 1.6.18 does (checked
//! against it): `mg` hides `EN`; `ms` hides `HD`; `md` hides `HD`; `ma` hides its
//! success (`HD`, or `VA` with `v`) unless `N` just created the item. `NS`, `EX`, `NF` and every error are always sent.
//! Classic `noreply` hides everything, errors included, as memcached does once it has
//! read the `noreply` token.

use super::command::{ErrorReply, Key, MetaReply, Reply};
use super::target::Target;

/// What the server knows about an item, for `VALUE` lines and meta return flags.
/// Fields a request did not ask for are not read, so the server may leave them at
/// their defaults when they are costly to compute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ItemInfo {
    /// Client flags (`f`, `VALUE` lines).
    pub flags: u32,
    /// CAS unique (`c`, `gets`).
    pub cas: u64,
    /// Seconds to expiry; `None` for an item that never expires (`t-1`).
    pub ttl: Option<u32>,
    /// Fetched before this request (`h`).
    pub hit_before: bool,
    /// Seconds since last access before this request (`l`).
    pub last_access: u32,
    /// `mg N`/`R`: this client won the right to refill the item (`W`).
    pub won: bool,
    /// The item is stale (`X`, after `md I`).
    pub stale: bool,
    /// Another client already holds the refill win (`Z`).
    pub win_taken: bool,
}

/// The result of a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// `STORED` / `HD`.
    Stored,
    /// `NOT_STORED` / `NS`: the mode's condition failed (add on a present key, replace,
    /// append or prepend on a missing one).
    NotStored,
    /// `EXISTS` / `EX`: CAS mismatch.
    Exists,
    /// `NOT_FOUND` / `NF`: CAS given, no item.
    NotFound,
}

/// The result of a [`Delete`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// `DELETED` / `HD`.
    Deleted,
    /// `NOT_FOUND` / `NF`.
    NotFound,
    /// `EXISTS` / `EX`: CAS mismatch (`md C`).
    Exists,
}

/// The result of an [`Arith`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The new value.
    Value(u64),
    /// `ma N`: the key was missing and was created holding this initial value.
    /// Answered like `Value`, except that `q` does not hide it (memcached 1.6.18).
    Created(u64),
    /// `NOT_FOUND` / `NF`.
    NotFound,
    /// `NS`: vivify on miss failed.
    NotStored,
    /// `EX`: CAS mismatch.
    Exists,
    /// The item's data is not a decimal u64.
    NonNumeric,
}

/// Appends `n` in decimal.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `END\r\n`: the end of a classic retrieval or of `stats`.
#[inline]
pub fn end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"END\r\n");
}

/// The `\r\n` after a value the caller appended.
#[inline]
pub fn value_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
}

/// Answers a hit for one key of a retrieval (`get.target(&key)`) whose value is
/// `value_len` bytes: `VALUE <key> <flags> <bytes> [<cas>]` for classic retrievals,
/// `VA <bytes> <flags>*` or `HD <flags>*` for `mg`. Returns true if the value must
/// follow: append it (a copy or a separate zero-copy chunk), then [`value_end`].
#[inline]
pub fn get_hit(out: &mut Vec<u8>, t: &Target<'_>, item: &ItemInfo, value_len: usize) -> bool {
    match &t.reply {
        Reply::Classic { .. } => {
            out.extend_from_slice(b"VALUE ");
            out.extend_from_slice(t.key);
            out.push(b' ');
            push_u64(out, u64::from(item.flags));
            out.push(b' ');
            push_u64(out, value_len as u64);
            if t.want_cas {
                out.push(b' ');
                push_u64(out, item.cas);
            }
            out.extend_from_slice(b"\r\n");
            true
        }
        Reply::Meta(m) => {
            if t.want_value {
                out.extend_from_slice(b"VA ");
                push_u64(out, value_len as u64);
            } else {
                out.extend_from_slice(b"HD");
            }
            meta_flags(out, m, t, item, value_len);
            if item.win_taken {
                out.extend_from_slice(b" Z");
            }
            if item.stale {
                out.extend_from_slice(b" X");
            }
            if item.won {
                out.extend_from_slice(b" W");
            }
            out.extend_from_slice(b"\r\n");
            t.want_value
        }
    }
}

/// Answers a miss for one key of a retrieval: nothing for classic retrievals (the key
/// is just absent before `END`), `EN` for `mg` unless `q`.
#[inline]
pub fn get_miss(out: &mut Vec<u8>, t: &Target<'_>) {
    if let Reply::Meta(m) = &t.reply {
        if !m.quiet {
            meta_line(out, b"EN", m, t);
        }
    }
}

/// Closes a retrieval after its keys (`get.reply`): `END` for classic ones, nothing
/// for `mg`.
#[inline]
pub fn get_end(out: &mut Vec<u8>, reply: &Reply<'_>) {
    if matches!(reply, Reply::Classic { .. }) {
        end(out);
    }
}

/// Answers a store (`store.target()`). `cas` is the stored item's new CAS for the meta
/// `c` flag (memcached sends `c0` when nothing was stored).
pub fn store(out: &mut Vec<u8>, t: &Target<'_>, outcome: StoreOutcome, cas: u64) {
    match &t.reply {
        Reply::Classic { noreply: true } => {}
        Reply::Classic { noreply: false } => out.extend_from_slice(match outcome {
            StoreOutcome::Stored => b"STORED\r\n",
            StoreOutcome::NotStored => b"NOT_STORED\r\n",
            StoreOutcome::Exists => b"EXISTS\r\n",
            StoreOutcome::NotFound => b"NOT_FOUND\r\n",
        }),
        Reply::Meta(m) => {
            if m.quiet && outcome == StoreOutcome::Stored {
                return;
            }
            let code: &[u8] = match outcome {
                StoreOutcome::Stored => b"HD",
                StoreOutcome::NotStored => b"NS",
                StoreOutcome::Exists => b"EX",
                StoreOutcome::NotFound => b"NF",
            };
            let item = ItemInfo {
                cas,
                ..ItemInfo::default()
            };
            out.extend_from_slice(code);
            meta_flags(out, m, t, &item, 0);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Answers a delete (`delete.target()`).
pub fn delete(out: &mut Vec<u8>, t: &Target<'_>, outcome: DeleteOutcome) {
    match &t.reply {
        Reply::Classic { noreply: true } => {}
        Reply::Classic { noreply: false } => out.extend_from_slice(match outcome {
            DeleteOutcome::Deleted => b"DELETED\r\n",
            DeleteOutcome::NotFound => b"NOT_FOUND\r\n",
            DeleteOutcome::Exists => b"EXISTS\r\n",
        }),
        Reply::Meta(m) => {
            if m.quiet && outcome == DeleteOutcome::Deleted {
                return;
            }
            let code: &[u8] = match outcome {
                DeleteOutcome::Deleted => b"HD",
                DeleteOutcome::NotFound => b"NF",
                DeleteOutcome::Exists => b"EX",
            };
            meta_line(out, code, m, t);
        }
    }
}

/// Answers a touch (`touch.target()`): `TOUCHED` or `NOT_FOUND`.
pub fn touch(out: &mut Vec<u8>, t: &Target<'_>, found: bool) {
    if t.reply.silent() {
        return;
    }
    out.extend_from_slice(if found {
        b"TOUCHED\r\n"
    } else {
        b"NOT_FOUND\r\n"
    });
}

const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";

/// Answers an arithmetic update (`arith.target()`). `item` supplies the `t` and `c`
/// meta return flags after the update.
pub fn arith(out: &mut Vec<u8>, t: &Target<'_>, outcome: ArithOutcome, item: &ItemInfo) {
    let m = match &t.reply {
        Reply::Classic { noreply: true } => return,
        Reply::Classic { noreply: false } => {
            match outcome {
                ArithOutcome::Value(n) | ArithOutcome::Created(n) => {
                    push_u64(out, n);
                    out.extend_from_slice(b"\r\n");
                }
                ArithOutcome::NotFound => out.extend_from_slice(b"NOT_FOUND\r\n"),
                ArithOutcome::NotStored => out.extend_from_slice(b"NOT_STORED\r\n"),
                ArithOutcome::Exists => out.extend_from_slice(b"EXISTS\r\n"),
                ArithOutcome::NonNumeric => out.extend_from_slice(NON_NUMERIC),
            }
            return;
        }
        Reply::Meta(m) => m,
    };
    let code: &[u8] = match outcome {
        ArithOutcome::Value(_) if m.quiet => return,
        ArithOutcome::Value(_) | ArithOutcome::Created(_) => b"HD",
        ArithOutcome::NotFound => b"NF",
        ArithOutcome::NotStored => b"NS",
        ArithOutcome::Exists => b"EX",
        ArithOutcome::NonNumeric => return out.extend_from_slice(NON_NUMERIC),
    };
    match outcome {
        ArithOutcome::Value(n) | ArithOutcome::Created(n) if t.want_value => {
            let len = decimal_len(n);
            out.extend_from_slice(b"VA ");
            push_u64(out, len as u64);
            meta_flags(out, m, t, item, len);
            out.extend_from_slice(b"\r\n");
            push_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        _ => {
            out.extend_from_slice(code);
            meta_flags(out, m, t, item, 0);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Number of decimal digits of `n`.
fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Answers [`Command::TooLarge`](super::Command::TooLarge): `SERVER_ERROR object too
/// large for cache`, unless classic `noreply`.
pub fn too_large(out: &mut Vec<u8>, reply: &Reply<'_>) {
    server_error(out, reply, "object too large for cache");
}

/// `SERVER_ERROR <reason>` for a request the server cannot carry out faithfully
/// (an unsupported flag, no memory...). Suppressed by classic `noreply`, like every
/// memcached reply to such a request.
pub fn server_error(out: &mut Vec<u8>, reply: &Reply<'_>, reason: &str) {
    if reply.silent() {
        return;
    }
    out.extend_from_slice(b"SERVER_ERROR ");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Answers [`Command::Error`](super::Command::Error): `ERROR`, `CLIENT_ERROR <reason>`
/// or `SERVER_ERROR <reason>`, or nothing if `noreply`.
pub fn error(out: &mut Vec<u8>, error: &ErrorReply, noreply: bool) {
    if noreply {
        return;
    }
    let (head, reason): (&[u8], &str) = match error {
        ErrorReply::UnknownCommand => return out.extend_from_slice(b"ERROR\r\n"),
        ErrorReply::Client(r) => (b"CLIENT_ERROR ", r),
        ErrorReply::Server(r) => (b"SERVER_ERROR ", r),
    };
    out.extend_from_slice(head);
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `OK` (for `flush_all`, `verbosity`), unless `noreply`.
#[inline]
pub fn ok(out: &mut Vec<u8>, noreply: bool) {
    if !noreply {
        out.extend_from_slice(b"OK\r\n");
    }
}

/// `VERSION <version>`.
pub fn version(out: &mut Vec<u8>, version: &str) {
    out.extend_from_slice(b"VERSION ");
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One `STAT <name> <value>` line with a number; finish the list with [`end`].
pub fn stat(out: &mut Vec<u8>, name: &str, value: u64) {
    out.extend_from_slice(b"STAT ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    push_u64(out, value);
    out.extend_from_slice(b"\r\n");
}

/// One `STAT <name> <value>` line with a text value (`version`, `rusage_user`...).
pub fn stat_str(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(b"STAT ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `MN`: the answer to `mn`.
#[inline]
pub fn meta_noop(out: &mut Vec<u8>) {
    out.extend_from_slice(b"MN\r\n");
}

/// `ME <key> <name>=<value>...` for `me`; `fields` are the server's own choice
/// (memcached sends `exp`, `la`, `cas`, `fetch`, `cls`, `size`). A miss is `EN`:
/// use [`meta_debug_miss`].
#[allow(dead_code)] // `me` is answered SERVER_ERROR for now (core::memcache::handle)
pub fn meta_debug(out: &mut Vec<u8>, key: &Key<'_>, fields: &[(&str, i64)]) {
    out.extend_from_slice(b"ME ");
    out.extend_from_slice(key.wire());
    for (name, value) in fields {
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        if *value < 0 {
            out.push(b'-');
        }
        push_u64(out, value.unsigned_abs());
    }
    out.extend_from_slice(b"\r\n");
}

/// `EN`: `me` found nothing.
#[inline]
#[allow(dead_code)] // as meta_debug
pub fn meta_debug_miss(out: &mut Vec<u8>) {
    out.extend_from_slice(b"EN\r\n");
}

/// `<code>` followed by the flags a reply without item data echoes (`k`, `O`, `b`),
/// then `\r\n`.
fn meta_line(out: &mut Vec<u8>, code: &[u8], m: &MetaReply<'_>, t: &Target<'_>) {
    out.extend_from_slice(code);
    for &f in m.flags() {
        match f {
            b'k' => push_key(out, t),
            b'O' => push_opaque(out, m),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The requested return flags, in request order, with their values.
fn meta_flags(out: &mut Vec<u8>, m: &MetaReply<'_>, t: &Target<'_>, item: &ItemInfo, size: usize) {
    for &f in m.flags() {
        match f {
            b'k' => push_key(out, t),
            b'O' => push_opaque(out, m),
            b'c' => {
                out.extend_from_slice(b" c");
                push_u64(out, item.cas);
            }
            b'f' => {
                out.extend_from_slice(b" f");
                push_u64(out, u64::from(item.flags));
            }
            b's' => {
                out.extend_from_slice(b" s");
                push_u64(out, size as u64);
            }
            b't' => match item.ttl {
                Some(t) => {
                    out.extend_from_slice(b" t");
                    push_u64(out, u64::from(t));
                }
                None => out.extend_from_slice(b" t-1"),
            },
            b'h' => out.extend_from_slice(if item.hit_before { b" h1" } else { b" h0" }),
            b'l' => {
                out.extend_from_slice(b" l");
                push_u64(out, u64::from(item.last_access));
            }
            _ => {}
        }
    }
}

/// ` k<key>`, and ` b` after a base64 key (memcached's order).
fn push_key(out: &mut Vec<u8>, t: &Target<'_>) {
    out.extend_from_slice(b" k");
    out.extend_from_slice(t.key);
    if t.base64 {
        out.extend_from_slice(b" b");
    }
}

fn push_opaque(out: &mut Vec<u8>, m: &MetaReply<'_>) {
    out.extend_from_slice(b" O");
    out.extend_from_slice(m.opaque.unwrap_or_default());
}
