//! memcached's writes, applied at the key's owner: add, replace, append, prepend,
//! cas, incr/decr, touch, get-and-touch, delete with a CAS, flush.
//!
//! The owner's core is the only writer of its shard, so each of these is atomic
//! without a lock: it reads the item, decides, and writes, all within one call. They
//! apply to the *main* cache (the owner's copy). On a node that does not own the key
//! the wiring forwards the command to the owner, as a SET is forwarded as STORE; the
//! owner's INVALIDATE round drops the other nodes' hot copies, as for a SET.
//!
//! Every write that stores an item gives it metadata: the client's flags and a new
//! CAS from the shard's [`super::CasSource`]. A successful write also supersedes a
//! running load or fetch of the key (its result still answers its waiters but is
//! not cached) and drops this shard's hot copy, exactly as [`Shard::set`] does. A
//! command that changes nothing (NOT_STORED, EXISTS, NOT_FOUND) leaves loads alone.
//!
//! # Read-through
//!
//! A `get` miss is a read-through load, but these commands only see what *this
//! node's cache* holds: a key that only the origin has counts as absent. So `add`
//! of such a key stores (and supersedes a load of it that may be running),
//! `replace`/`append`/`prepend` answer NOT_STORED, `cas`/`touch`/`gat` and
//! `incr`/`decr` answer NOT_FOUND (memcached clients expect NOT_FOUND for an absent
//! counter; `ma` with N creates it). Loading from the origin first would make a
//! write wait on a load and answer from a value the client never wrote.
//!
//! # TTLs
//!
//! `ttl` follows [`Shard::set`]: `None` is the group's default TTL, `Some(ZERO)` no
//! expiry, `Some(t)` expiry `t` after `now`. An item that has expired at `now` is
//! absent for every command here.

use std::time::{Duration, Instant};

use super::arith;
use super::lru::{Lru, Meta};
use super::types::MetaHit;
use super::{cacheable, enforce_budget, expiry, largest_item, publish, GroupShard, Shard};
use crate::value::ByteView;

/// How a storage command treats the key's current item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Store whatever is there (`set`, `cas`, `ms` mode S).
    Set,
    /// Store only if the key is absent (`add`, `ms` mode E).
    Add,
    /// Store only if the key is present (`replace`, `ms` mode R).
    Replace,
    /// Add the bytes after the present value, keeping its flags and expiry
    /// (`append`, `ms` mode A).
    Append,
    /// Add the bytes before the present value, keeping its flags and expiry
    /// (`prepend`, `ms` mode P).
    Prepend,
}

/// One storage command: `set`, `add`, `replace`, `append`, `prepend`, `cas`, `ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCommand {
    /// What to do with the current item.
    pub mode: StoreMode,
    /// The client's flags (ignored by append and prepend, which keep the item's).
    pub flags: u32,
    /// The TTL (see the module comment; ignored by append and prepend).
    pub ttl: Option<Duration>,
    /// `cas` / `ms C`: store only if the key is present (else NOT_FOUND) with this
    /// CAS (else EXISTS). An item without metadata (CAS 0) matches no value.
    pub cas: Option<u64>,
}

impl StoreCommand {
    /// A command of `mode` with `flags` and `ttl`, without a CAS to compare.
    #[cfg(test)]
    pub fn new(mode: StoreMode, flags: u32, ttl: Option<Duration>) -> StoreCommand {
        StoreCommand {
            mode,
            flags,
            ttl,
            cas: None,
        }
    }
}

/// The change `incr`/`decr` make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    /// Add, wrapping at 2^64 as memcached does.
    Incr(u64),
    /// Subtract, stopping at 0 as memcached does.
    Decr(u64),
}

/// `ma N J`: create an absent counter instead of answering NOT_FOUND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vivify {
    /// Its value (`J`, memcached's default 0); the delta is not applied to it.
    pub initial: u64,
    /// Its TTL (`N`; see the module comment).
    pub ttl: Option<Duration>,
}

/// One arithmetic command: `incr`, `decr`, `ma`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arith {
    /// The change.
    pub delta: Delta,
    /// Create the counter if absent.
    pub vivify: Option<Vivify>,
    /// `ma C`: apply only if the item has this CAS (as [`StoreCommand::cas`]).
    pub cas: Option<u64>,
}

impl Arith {
    /// A plain `incr`/`decr`.
    #[cfg(test)]
    pub fn new(delta: Delta) -> Arith {
        Arith {
            delta,
            vivify: None,
            cas: None,
        }
    }
}

/// What a memcached write did; the wiring turns it into the protocol's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored, with this new CAS (STORED / HD).
    Stored {
        /// The item's new CAS.
        cas: u64,
    },
    /// The mode's condition failed: `add` of a present key, `replace`, `append` or
    /// `prepend` of an absent one (NOT_STORED / NS).
    NotStored,
    /// The item's CAS is not the one given (EXISTS / EX).
    Exists,
    /// No such item (NOT_FOUND / NF).
    NotFound,
    /// `incr`/`decr` done: the counter's new value and the item's new CAS.
    Number {
        /// The new value (the item holds it in decimal, see [`arith::rewrite`]).
        value: u64,
        /// The item's new CAS.
        cas: u64,
    },
    /// `touch` done (TOUCHED / HD); a touch keeps the item's CAS, as memcached does.
    Touched {
        /// The item's CAS, unchanged.
        cas: u64,
    },
    /// `delete` done (DELETED / HD).
    Deleted,
    /// `incr`/`decr` of a value that is not a decimal u64 (CLIENT_ERROR cannot
    /// increment or decrement non-numeric value).
    NonNumeric,
    /// The value (after append/prepend) is over the item limit or the shard's
    /// budget; nothing changed, except that a plain `set` removed the old item, as
    /// memcached does (SERVER_ERROR object too large for cache).
    TooLarge {
        /// The largest value the group keeps under this key.
        max: usize,
    },
}

impl<W: Clone> Shard<W> {
    /// A storage command ([`StoreCommand`]) on group `g`'s main cache; see the module
    /// comment for read-through and TTLs. `value` is the command's data block.
    pub fn store(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        value: ByteView,
        w: StoreCommand,
    ) -> WriteOutcome {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        stats.sets.inc();
        let joins = matches!(w.mode, StoreMode::Append | StoreMode::Prepend);
        // Only append and prepend need the old value; the rest ask the metadata.
        let (old_value, old_meta) = if joins {
            match gs.main.get_meta(key, now) {
                Some((hit, meta)) => (Some(hit), Some(meta)),
                None => (None, None),
            }
        } else {
            (None, gs.main.peek_meta(key, now))
        };
        if let Some(expect) = w.cas {
            if let Err(o) = check_cas(old_meta, expect) {
                return o;
            }
        }
        let present = old_meta.is_some();
        match w.mode {
            StoreMode::Add if present => return WriteOutcome::NotStored,
            StoreMode::Replace | StoreMode::Append | StoreMode::Prepend if !present => {
                return WriteOutcome::NotStored
            }
            _ => {}
        }
        let (value, flags, expires) = match (w.mode, old_value, old_meta) {
            (StoreMode::Append, Some(old), Some(m)) => {
                (join(&old.value, &value), m.flags, old.expires)
            }
            (StoreMode::Prepend, Some(old), Some(m)) => {
                (join(&value, &old.value), m.flags, old.expires)
            }
            _ => (value, w.flags, expiry(now, w.ttl.or(gs.spec.ttl))),
        };
        if !cacheable(&gs.spec, key.len(), value.len(), true) {
            if w.mode == StoreMode::Set && w.cas.is_none() {
                forget_key(gs, key);
                publish(&stats.main, &gs.main);
                publish(&stats.hot, &gs.hot);
            }
            return WriteOutcome::TooLarge {
                max: largest_item(&gs.spec, key.len(), true),
            };
        }
        let cas = self.cas.issue();
        write_main(gs, key, value, expires, Meta { flags, cas });
        enforce_budget(gs, stats);
        WriteOutcome::Stored { cas }
    }

    /// `incr`/`decr`/`ma` on group `g`'s main cache: the item's value must be a
    /// decimal u64 ([`arith::parse`]); the result keeps the item's flags and expiry
    /// and takes a new CAS; it is written as memcached writes it ([`arith::rewrite`]:
    /// padded with spaces to the old length when shorter). An absent key is
    /// NOT_FOUND unless `a.vivify` creates it. See the module comment for
    /// read-through.
    pub fn arith(&mut self, now: Instant, g: usize, key: &[u8], a: Arith) -> WriteOutcome {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        stats.sets.inc();
        let Some((hit, meta)) = gs.main.get_meta(key, now) else {
            publish(&stats.main, &gs.main);
            return match (a.vivify, a.cas) {
                (Some(v), None) => {
                    let value = ByteView::from_vec(arith::rewrite(v.initial, 0));
                    let expires = expiry(now, v.ttl.or(gs.spec.ttl));
                    let cas = self.cas.issue();
                    write_main(gs, key, value, expires, Meta { flags: 0, cas });
                    enforce_budget(gs, stats);
                    WriteOutcome::Number {
                        value: v.initial,
                        cas,
                    }
                }
                _ => WriteOutcome::NotFound,
            };
        };
        if let Some(expect) = a.cas {
            if let Err(o) = check_cas(Some(meta), expect) {
                return o;
            }
        }
        let Some(n) = arith::parse(&hit.value) else {
            return WriteOutcome::NonNumeric;
        };
        let n = match a.delta {
            Delta::Incr(d) => n.wrapping_add(d),
            Delta::Decr(d) => n.saturating_sub(d),
        };
        let value = ByteView::from_vec(arith::rewrite(n, hit.value.len()));
        if !cacheable(&gs.spec, key.len(), value.len(), true) {
            return WriteOutcome::TooLarge {
                max: largest_item(&gs.spec, key.len(), true),
            };
        }
        let cas = self.cas.issue();
        let meta = Meta {
            flags: meta.flags,
            cas,
        };
        write_main(gs, key, value, hit.expires, meta);
        enforce_budget(gs, stats);
        WriteOutcome::Number { value: n, cas }
    }

    /// `touch`: gives the key in group `g`'s main cache a new TTL, keeping its value,
    /// flags and CAS (memcached keeps the CAS on a touch). NOT_FOUND if absent or
    /// expired.
    pub fn touch(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        ttl: Option<Duration>,
    ) -> WriteOutcome {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        let expires = expiry(now, ttl.or(gs.spec.ttl));
        let touched = gs.main.touch(key, expires, now);
        // A far expiry may have moved the item out of line, at a higher charge.
        enforce_budget(gs, stats);
        match touched {
            Some(m) => WriteOutcome::Touched { cas: m.cas },
            None => WriteOutcome::NotFound,
        }
    }

    /// `gat`/`gats`/`mg T`: [`Shard::touch`], then the item as a GET returns it, with
    /// its new TTL, flags and CAS; counted as a GET. `None` if the main cache does
    /// not hold the key: no load is started (see the module comment); a wiring that
    /// wants read-through can follow a miss with [`Shard::get_meta`].
    pub fn get_and_touch(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        ttl: Option<Duration>,
    ) -> Option<MetaHit> {
        let touched = self.touch(now, g, key, ttl);
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        let found = match touched {
            WriteOutcome::Touched { .. } => gs.main.get_meta(key, now),
            _ => None,
        };
        let Some((hit, meta)) = found else {
            stats.main.misses.inc();
            return None;
        };
        stats.main.hits.inc();
        Some(MetaHit::new(hit, meta, now))
    }

    /// `delete` / `md` of group `g`'s key, optionally only if it has CAS `cas`
    /// (`md C`). As [`Shard::delete`], drops the main and hot copy and supersedes
    /// running loads; DELETED if a live item was there, NOT_FOUND if none (an
    /// expired item is absent), EXISTS if the CAS differs (nothing is removed then).
    pub fn delete_cas(
        &mut self,
        now: Instant,
        g: usize,
        key: &[u8],
        cas: Option<u64>,
    ) -> WriteOutcome {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        stats.deletes.inc();
        let meta = gs.main.peek_meta(key, now);
        if let Some(expect) = cas {
            if let Err(o) = check_cas(meta, expect) {
                return o;
            }
        }
        let live = meta.is_some() || gs.hot.peek_meta(key, now).is_some();
        forget_key(gs, key);
        publish(&stats.main, &gs.main);
        publish(&stats.hot, &gs.hot);
        if live {
            WriteOutcome::Deleted
        } else {
            WriteOutcome::NotFound
        }
    }

    /// `flush_all` on this shard's part of group `g`: drops every item of its main
    /// and hot cache and supersedes every running load and fetch (their results
    /// answer their waiters but are not kept). The wiring applies it on every core
    /// of every node for the groups it names.
    pub fn flush(&mut self, g: usize) {
        let stats = &self.stats.groups[g];
        let gs = &mut self.groups[g];
        gs.local.supersede_all();
        gs.remote.supersede_all();
        gs.main = Lru::new();
        gs.hot = Lru::new();
        publish(&stats.main, &gs.main);
        publish(&stats.hot, &gs.hot);
    }
}

/// Whether an item with metadata `meta` (`None`: absent) passes a CAS comparison
/// with `expect`: NOT_FOUND if absent, EXISTS if its CAS differs or it has none.
fn check_cas(meta: Option<Meta>, expect: u64) -> Result<(), WriteOutcome> {
    match meta {
        None => Err(WriteOutcome::NotFound),
        Some(m) if m.cas == 0 || m.cas != expect => Err(WriteOutcome::Exists),
        Some(_) => Ok(()),
    }
}

/// `a` then `b`, in one new value.
fn join(a: &[u8], b: &[u8]) -> ByteView {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    ByteView::from_vec(v)
}

/// A write of `key` at its owner, as [`Shard::set`] makes it: supersedes running
/// loads and fetches, drops the hot copy, and stores the item with `meta`.
fn write_main<W>(
    gs: &mut GroupShard<W>,
    key: &[u8],
    value: ByteView,
    expires: Option<Instant>,
    meta: Meta,
) {
    gs.local.supersede(key);
    gs.remote.supersede(key);
    gs.hot.remove(key);
    gs.main.insert_meta(key, value, expires, meta);
}

/// Drops the key from main and hot cache and supersedes its loads and fetches.
fn forget_key<W>(gs: &mut GroupShard<W>, key: &[u8]) {
    gs.local.supersede(key);
    gs.remote.supersede(key);
    gs.main.remove(key);
    gs.hot.remove(key);
}
