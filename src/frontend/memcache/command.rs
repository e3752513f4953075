//! The intermediate form: what a parsed request asks the server to do, and how its
//! answer must be shaped.
//!
//! Classic and meta commands that do the same thing share one operation type
//! (`get`/`gets`/`gat`/`gats`/`mg` are all a [`Get`]; `set`...`cas` and `ms` are a
//! [`Store`]; `delete` and `md` a [`Delete`]; `incr`/`decr` and `ma` an [`Arith`]), so
//! the server implements each operation once. Each operation carries a [`Reply`]
//! saying which dialect to answer in; the encoder in [`super::reply`] turns the
//! operation's outcome into bytes for that dialect.

use super::lex::{decode_base64_key, BinKey, Tokens};

/// A key as a request named it: the bytes on the wire, and whether they are the
/// base64 form of a binary key (meta commands with the `b` flag).
///
/// Small on purpose: a parsed command is moved a few times on its way out of the
/// parser, once per request. A decoded binary key (up to 187 bytes) is not held
/// here but made when the key is looked at ([`Key::bytes`]); the parser has
/// already checked that it decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key<'a> {
    wire: &'a [u8],
    base64: bool,
}

impl<'a> Key<'a> {
    /// A plain text key (already validated by the parser).
    #[inline]
    pub(crate) fn text(wire: &'a [u8]) -> Self {
        Key {
            wire,
            base64: false,
        }
    }

    /// A base64 key that the parser has checked decodes
    /// ([`super::lex::decode_base64_key`]).
    #[inline]
    pub(crate) fn base64(wire: &'a [u8]) -> Self {
        Key { wire, base64: true }
    }

    /// The key to look up: the decoded bytes of a base64 key, else the wire bytes.
    #[inline]
    pub fn bytes(&self) -> KeyBytes<'a> {
        if self.base64 {
            // The parser only makes a base64 key of what decodes; should that ever
            // not hold, the wire form is a key too (and no panic on input).
            if let Some(bin) = decode_base64_key(self.wire) {
                return KeyBytes::Decoded(bin);
            }
        }
        KeyBytes::Wire(self.wire)
    }

    /// The key exactly as the client sent it; replies echo this form (`VALUE <key>`,
    /// the meta `k` flag).
    #[inline]
    pub fn wire(&self) -> &'a [u8] {
        self.wire
    }

    /// True for a meta key sent base64-encoded (`b` flag); replies echo it encoded and
    /// add the `b` flag.
    #[inline]
    pub fn is_base64(&self) -> bool {
        self.base64
    }
}

/// The bytes of a [`Key`] to look up, borrowed from the request or decoded from
/// base64; derefs to `[u8]`.
#[derive(Clone, Copy, Debug)]
pub enum KeyBytes<'a> {
    /// A text key: the wire bytes.
    Wire(&'a [u8]),
    /// A binary key, decoded.
    Decoded(BinKey),
}

impl std::ops::Deref for KeyBytes<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            KeyBytes::Wire(w) => w,
            KeyBytes::Decoded(b) => b.as_bytes(),
        }
    }
}

/// The keys of a retrieval: several for a classic `get`, exactly one for `mg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyList<'a> {
    /// Space-separated, already validated text keys (`get a b c`). May be empty for
    /// `gat <exptime>` with no key, which memcached answers with a bare `END`.
    Words(Tokens<'a>),
    /// One key (`mg`).
    One(Key<'a>),
}

// The server walks `Words` and takes `One` by reference, so the iterator is for
// tests and docs.
#[cfg(any(test, doc))]
impl<'a> KeyList<'a> {
    /// The keys in request order. No allocation: walks the line again.
    #[inline]
    pub fn iter(&self) -> KeyIter<'a> {
        match *self {
            KeyList::Words(t) => KeyIter::Words(t),
            KeyList::One(k) => KeyIter::One(Some(k)),
        }
    }
}

/// Iterator over a [`KeyList`].
#[cfg(any(test, doc))]
#[derive(Clone, Debug)]
pub enum KeyIter<'a> {
    /// Walking a classic line.
    Words(Tokens<'a>),
    /// The single meta key, until taken.
    One(Option<Key<'a>>),
}

#[cfg(any(test, doc))]
impl<'a> Iterator for KeyIter<'a> {
    type Item = Key<'a>;

    #[inline]
    fn next(&mut self) -> Option<Key<'a>> {
        match self {
            KeyIter::Words(t) => t.next().map(Key::text),
            KeyIter::One(k) => k.take(),
        }
    }
}

/// An expiry converted from memcached's exptime rules to a time-to-live relative to
/// the `now_unix` the parser was given.
///
/// memcached's rule: `0` never expires; a negative value is already expired; up to 30
/// days (2 592 000 s) is seconds from now; anything larger is an absolute unix time,
/// which is expired if it is not in the future.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// No expiry.
    Never,
    /// Already expired: a store with this TTL leaves nothing readable, a touch makes
    /// the item disappear.
    Expired,
    /// Expires this many seconds from now (at least 1; absolute times beyond the
    /// 32-bit range saturate).
    Secs(u32),
}

/// memcached's `REALTIME_MAXDELTA`: exptimes above it are absolute unix times.
pub const RELATIVE_MAX: i64 = 60 * 60 * 24 * 30;

impl Ttl {
    /// Converts a client exptime given the current unix time, by memcached's rules.
    pub fn from_exptime(exptime: i64, now_unix: u64) -> Ttl {
        if exptime == 0 {
            return Ttl::Never;
        }
        if exptime < 0 {
            return Ttl::Expired;
        }
        if exptime <= RELATIVE_MAX {
            return Ttl::Secs(exptime as u32);
        }
        let abs = exptime as u64; // exptime > 0 here
        if abs <= now_unix {
            return Ttl::Expired;
        }
        Ttl::Secs(u32::try_from(abs - now_unix).unwrap_or(u32::MAX))
    }
}

/// How a store treats an existing item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// `set`, `ms` (default, `MS`): store unconditionally.
    Set,
    /// `add`, `ms ME`: store only if the key holds no item.
    Add,
    /// `replace`, `ms MR`: store only if the key holds an item.
    Replace,
    /// `append`, `ms MA`: add the value after the existing data. Flags and TTL of the
    /// request are ignored (memcached keeps the item's own).
    Append,
    /// `prepend`, `ms MP`: add the value before the existing data; flags and TTL
    /// ignored as for `Append`.
    Prepend,
}

/// A store (`set`, `add`, `replace`, `append`, `prepend`, `cas`, `ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Store<'a> {
    /// The key.
    pub key: Key<'a>,
    /// Which condition applies.
    pub mode: StoreMode,
    /// Client flags, stored and returned verbatim.
    pub flags: u32,
    /// Expiry of the stored item.
    pub ttl: Ttl,
    /// The data block, borrowed from the read buffer.
    pub value: &'a [u8],
    /// `cas <unique>` / `ms C<unique>`: store only if the item's CAS equals this
    /// (`EXISTS` if it differs, `NOT_FOUND` if there is no item).
    pub compare_cas: Option<u64>,
    /// `ms I` with `C`: a CAS older than the item's marks the item stale instead of
    /// failing. The server may refuse it (`SERVER_ERROR`) if it has no stale items.
    pub invalidate: bool,
    /// How to answer.
    pub reply: Reply<'a>,
}

/// A retrieval (`get`, `gets`, `gat`, `gats`, `mg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Get<'a> {
    /// The keys, in request order; answer each in this order.
    pub keys: KeyList<'a>,
    /// The value is sent: always for classic retrievals, with `v` for `mg`.
    pub want_value: bool,
    /// `gets`/`gats`: put the CAS on `VALUE` lines. (`mg` asks with `c`, see
    /// [`MetaReply`].)
    pub want_cas: bool,
    /// `gat`/`gats`/`mg T`: also set the item's TTL on a hit.
    pub touch: Option<Ttl>,
    /// `mg N<ttl>`: on a miss, create an empty item with this TTL and tell this client
    /// it won the right to fill it (`W`).
    pub vivify: Option<Ttl>,
    /// `mg R<ttl>`: on a hit whose remaining TTL is below this, hand out the `W` flag.
    pub recache: Option<Ttl>,
    /// `mg u`: do not bump the item in the LRU.
    pub no_bump: bool,
    /// How to answer.
    pub reply: Reply<'a>,
}

/// A delete (`delete`, `md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delete<'a> {
    /// The key.
    pub key: Key<'a>,
    /// `md C<cas>`: delete only if the item's CAS matches (`EX` otherwise).
    pub compare_cas: Option<u64>,
    /// `md I`: mark the item stale instead of removing it.
    pub invalidate: bool,
    /// `md T<ttl>` (with `I`): the stale item's new TTL.
    pub ttl: Option<Ttl>,
    /// How to answer.
    pub reply: Reply<'a>,
}

/// A classic `touch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Touch<'a> {
    /// The key.
    pub key: Key<'a>,
    /// The new TTL.
    pub ttl: Ttl,
    /// How to answer (always classic).
    pub reply: Reply<'a>,
}

/// Increment or decrement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithMode {
    /// Add, wrapping at 2^64 (memcached's rule).
    Incr,
    /// Subtract, stopping at 0 (memcached's rule).
    Decr,
}

/// An arithmetic update (`incr`, `decr`, `ma`). The item's data must be a decimal
/// u64; otherwise the answer is `CLIENT_ERROR cannot increment or decrement
/// non-numeric value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arith<'a> {
    /// The key.
    pub key: Key<'a>,
    /// Up or down.
    pub mode: ArithMode,
    /// The amount (`ma` default 1).
    pub delta: u64,
    /// `ma N<ttl>`: on a miss create the item with `initial` (`J`, default 0) and this
    /// TTL, answering with the initial value.
    pub vivify: Option<(Ttl, u64)>,
    /// `ma C<cas>`: apply only if the CAS matches.
    pub compare_cas: Option<u64>,
    /// `ma T<ttl>`: set the TTL on success.
    pub touch: Option<Ttl>,
    /// `ma v`: return the new value (classic replies always carry it).
    pub want_value: bool,
    /// How to answer.
    pub reply: Reply<'a>,
}

/// The answer dialect of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Classic text replies (`STORED`, `VALUE`...); `noreply` suppresses the reply,
    /// errors included (memcached's behaviour once it has read `noreply`).
    Classic {
        /// The request ended in `noreply`.
        noreply: bool,
    },
    /// Meta replies (`HD`, `VA`, `EN`...) with the requested return flags.
    Meta(MetaReply<'a>),
}

impl Reply<'_> {
    /// True for a classic request with `noreply`: send nothing back, not even an
    /// error.
    #[inline]
    pub fn silent(&self) -> bool {
        matches!(self, Reply::Classic { noreply: true })
    }
}

/// Most return flags a meta request can ask for (`k c f s t h l O`).
pub const MAX_RET_FLAGS: usize = 8;

/// What a meta reply echoes and returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaReply<'a> {
    ret: [u8; MAX_RET_FLAGS],
    n_ret: u8,
    /// `O<token>`: echoed back verbatim (at most 31 bytes).
    pub opaque: Option<&'a [u8]>,
    /// `q`: suppress the nominal reply (which one depends on the command, see
    /// [`super::reply`]).
    pub quiet: bool,
}

impl<'a> MetaReply<'a> {
    /// No return flags, not quiet.
    pub(crate) fn new() -> Self {
        MetaReply {
            ret: [0; MAX_RET_FLAGS],
            n_ret: 0,
            opaque: None,
            quiet: false,
        }
    }

    /// Records a return flag in request order. Duplicates are rejected by the parser
    /// before this, so there are at most [`MAX_RET_FLAGS`].
    pub(crate) fn push(&mut self, flag: u8) {
        if let Some(slot) = self.ret.get_mut(usize::from(self.n_ret)) {
            *slot = flag;
            self.n_ret += 1;
        }
    }

    /// The return flags (`k`, `c`, `f`, `s`, `t`, `h`, `l`, `O`) in request order.
    #[inline]
    pub fn flags(&self) -> &[u8] {
        &self.ret[..usize::from(self.n_ret)]
    }

    /// True if the request asked for return flag `flag` (e.g. `b'c'` to know whether
    /// the CAS must be computed).
    #[inline]
    pub fn wants(&self, flag: u8) -> bool {
        self.flags().contains(&flag)
    }
}

/// An error answer the codec decided on by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorReply {
    /// `ERROR`: unknown command or wrong number of tokens.
    UnknownCommand,
    /// `CLIENT_ERROR <reason>`: the request is malformed.
    Client(&'static str),
    /// `SERVER_ERROR <reason>`.
    Server(&'static str),
}

/// One parsed request: the operation the server performs and answers, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Retrieval; answer each key, then the end marker.
    Get(Get<'a>),
    /// Store.
    Store(Store<'a>),
    /// Delete.
    Delete(Delete<'a>),
    /// Touch.
    Touch(Touch<'a>),
    /// Increment / decrement.
    Arith(Arith<'a>),
    /// `flush_all [delay] [noreply]`: invalidate every item now or `delay` seconds from
    /// now (memcached's exptime rules; a past or negative time means now).
    FlushAll {
        /// Seconds until the flush takes effect; 0 is now.
        delay: u32,
        /// Answer nothing.
        noreply: bool,
    },
    /// `version`: answer `VERSION <x>`.
    Version,
    /// `verbosity <level> [noreply]`: answer `OK` (the level may be ignored).
    Verbosity {
        /// The requested level.
        level: u32,
        /// Answer nothing.
        noreply: bool,
    },
    /// `stats [args]`: `STAT` lines and `END`; memcached answers `ERROR` to a sub-command
    /// it does not know.
    Stats {
        /// The arguments after `stats` (empty for general statistics).
        args: Tokens<'a>,
    },
    /// `quit`: close the connection after flushing earlier replies; no answer.
    Quit,
    /// `mn`: answer `MN` (marks the end of a quiet pipeline).
    MetaNoop,
    /// `me <key>`: meta debug; answer an `ME` line or `EN`, or `SERVER_ERROR` if not
    /// supported.
    MetaDebug {
        /// The key.
        key: Key<'a>,
    },
    /// A store whose value exceeds the maximum item size. Answer `SERVER_ERROR object
    /// too large for cache` (unless classic `noreply`); memcached also deletes the
    /// key's current item when the store was a plain set (`unlink`), so a failed set
    /// never leaves stale data behind.
    TooLarge {
        /// The key.
        key: Key<'a>,
        /// The request was a plain set: remove the existing item.
        unlink: bool,
        /// How to answer.
        reply: Reply<'a>,
    },
    /// A request the codec answers itself with an error; nothing to perform.
    Error {
        /// What to answer.
        error: ErrorReply,
        /// A classic request ending in `noreply`: answer nothing (memcached's rule).
        noreply: bool,
    },
}
