//! Who an answer goes to: the part of a request its reply needs (dialect, `noreply` or
//! meta return flags, the key as sent, the opaque), borrowed as [`Target`] or owned
//! as [`OwnedTarget`].
//!
//! Answers are often produced after the request's bytes have left the read buffer: a
//! `get` miss waits for an origin load, a store travels to the key's owner and back.
//! [`OwnedTarget`] keeps what the reply needs inline (no allocation, `Copy`), so the
//! connection can park it with the pending request and encode the answer whenever the
//! outcome arrives.

use super::command::{Arith, Delete, Get, Key, MetaReply, Reply, Store, Touch, MAX_RET_FLAGS};
use super::lex::KEY_MAX;

/// Longest opaque (`O`) value: memcached allows a 32-byte token, `O` included.
pub const OPAQUE_MAX: usize = 31;

/// What an answer needs to know about its request. Get one from the parsed command
/// (`get.target(&key)`, `store.target()`, ...) and pass it to the [`super::reply`]
/// functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The key exactly as sent (echoed by `VALUE` lines and the meta `k` flag).
    pub key: &'a [u8],
    /// The key was sent base64-encoded (`b`): `k` echoes it with ` b`.
    pub base64: bool,
    /// Dialect, `noreply` / return flags.
    pub reply: Reply<'a>,
    /// A value follows a hit (classic retrievals; `mg v`; `ma v`).
    pub want_value: bool,
    /// `gets`/`gats`: the CAS goes on `VALUE` lines.
    pub want_cas: bool,
}

impl<'a> Get<'a> {
    /// The answer target for one of this retrieval's keys.
    #[inline]
    pub fn target(&self, key: &Key<'a>) -> Target<'a> {
        Target {
            key: key.wire(),
            base64: key.is_base64(),
            reply: self.reply,
            want_value: self.want_value,
            want_cas: self.want_cas,
        }
    }
}

macro_rules! keyed_target {
    ($($ty:ident),*) => {$(
        impl<'a> $ty<'a> {
            /// The answer target of this request.
            #[inline]
            pub fn target(&self) -> Target<'a> {
                Target {
                    key: self.key.wire(),
                    base64: self.key.is_base64(),
                    reply: self.reply,
                    want_value: false,
                    want_cas: false,
                }
            }
        }
    )*};
}

keyed_target!(Store, Delete, Touch);

impl<'a> Arith<'a> {
    /// The answer target of this request.
    #[inline]
    pub fn target(&self) -> Target<'a> {
        Target {
            key: self.key.wire(),
            base64: self.key.is_base64(),
            reply: self.reply,
            want_value: self.want_value,
            want_cas: false,
        }
    }
}

/// A [`Target`] that owns its bytes (about 300 bytes inline, `Copy`, no heap).
#[derive(Clone, Copy)]
pub struct OwnedTarget {
    key: [u8; KEY_MAX],
    key_len: u8,
    opaque: [u8; OPAQUE_MAX],
    /// `None`: classic; else meta with `n_ret` return flags.
    meta: Option<OwnedMeta>,
    noreply: bool,
    base64: bool,
    want_value: bool,
    want_cas: bool,
}

#[derive(Clone, Copy)]
struct OwnedMeta {
    ret: [u8; MAX_RET_FLAGS],
    n_ret: u8,
    /// Length of the opaque, or `None` if the request had no `O`.
    opaque_len: Option<u8>,
    quiet: bool,
}

impl OwnedTarget {
    /// Copies `t`. Keys are at most 250 bytes and opaques 31 (the parser enforces both);
    /// anything longer is cut, never a panic.
    pub fn new(t: &Target<'_>) -> Self {
        let mut key = [0; KEY_MAX];
        let key_len = t.key.len().min(KEY_MAX);
        key[..key_len].copy_from_slice(&t.key[..key_len]);
        let mut opaque = [0; OPAQUE_MAX];
        let (meta, noreply) = match &t.reply {
            Reply::Classic { noreply } => (None, *noreply),
            Reply::Meta(m) => {
                let opaque_len = m.opaque.map(|o| {
                    let n = o.len().min(OPAQUE_MAX);
                    opaque[..n].copy_from_slice(&o[..n]);
                    n as u8
                });
                let mut ret = [0; MAX_RET_FLAGS];
                let n_ret = m.flags().len().min(MAX_RET_FLAGS);
                ret[..n_ret].copy_from_slice(&m.flags()[..n_ret]);
                let meta = OwnedMeta {
                    ret,
                    n_ret: n_ret as u8,
                    opaque_len,
                    quiet: m.quiet,
                };
                (Some(meta), false)
            }
        };
        OwnedTarget {
            key,
            key_len: key_len as u8,
            opaque,
            meta,
            noreply,
            base64: t.base64,
            want_value: t.want_value,
            want_cas: t.want_cas,
        }
    }

    /// The borrowed view, for the [`super::reply`] functions.
    pub fn target(&self) -> Target<'_> {
        let reply = match &self.meta {
            None => Reply::Classic {
                noreply: self.noreply,
            },
            Some(m) => {
                let mut r = MetaReply::new();
                for &f in &m.ret[..usize::from(m.n_ret)] {
                    r.push(f);
                }
                r.opaque = m.opaque_len.map(|n| &self.opaque[..usize::from(n)]);
                r.quiet = m.quiet;
                Reply::Meta(r)
            }
        };
        Target {
            key: &self.key[..usize::from(self.key_len)],
            base64: self.base64,
            reply,
            want_value: self.want_value,
            want_cas: self.want_cas,
        }
    }
}

impl std::fmt::Debug for OwnedTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OwnedTarget").field(&self.target()).finish()
    }
}

impl PartialEq for OwnedTarget {
    fn eq(&self, other: &Self) -> bool {
        self.target() == other.target()
    }
}

impl Eq for OwnedTarget {}
