//! Turning an answer ([`Reply`], from this core's shard, another core's, or the key's
//! owner) into memcached's bytes for the request it answers, and counting it under
//! memcached's `stats` names.
//!
//! Anything that cannot be answered faithfully (an origin load that failed, an owner
//! that could not be reached) is `SERVER_ERROR <reason>`, never a wrong success or a
//! wrong miss.

use crate::frontend::memcache::reply::{self, ArithOutcome, DeleteOutcome, ItemInfo, StoreOutcome};
use crate::frontend::memcache::Target;
use crate::shard::arith;
use crate::shard::{Meta, Reply, WriteOutcome};
use crate::stats::McCounters;
use crate::value::ByteView;

/// Where an encoded answer goes: the output queue, or a slot that waits its turn.
pub trait Sink {
    /// Appends bytes.
    fn put(&mut self, f: impl FnOnce(&mut Vec<u8>));
    /// Appends a value (by reference where the sink can).
    fn value(&mut self, v: &ByteView);
}

/// What a slot answers, which decides how its [`Reply`] is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// One key of a retrieval (`get`, `gets`, `gat`, `gats`, `mg`).
    Get,
    /// A storage command; `cas` for `cas` / `ms C` (counted as cas_*).
    Store {
        /// A CAS was given.
        cas: bool,
    },
    /// A store whose value was too large: memcached removed the key's item, and
    /// answers `SERVER_ERROR object too large for cache` whatever the removal did.
    TooLarge,
    /// `delete` / `md`.
    Delete,
    /// Classic `touch`.
    Touch,
    /// `incr` / `decr` / `ma`.
    Arith {
        /// Increment (counted as incr_*), else decrement.
        incr: bool,
    },
    /// `flush_all`: OK once every core (and member) answered.
    Flush {
        /// `noreply`.
        noreply: bool,
        /// A core or member failed to flush.
        failed: bool,
    },
}

/// Encodes `reply` to request `t` (of kind `kind`) into `s`, counting it in `c`.
pub fn encode<S: Sink>(kind: &mut SlotKind, t: &Target<'_>, r: &Reply, s: &mut S, c: &McCounters) {
    if let Reply::Error { message, .. } = r {
        if !matches!(kind, SlotKind::TooLarge | SlotKind::Flush { .. }) {
            return s.put(|b| reply::server_error(b, &t.reply, message));
        }
    }
    match *kind {
        SlotKind::Get => get(t, r, s, c),
        SlotKind::Store { cas } => store(t, r, cas, s, c),
        SlotKind::TooLarge => s.put(|b| reply::too_large(b, &t.reply)),
        SlotKind::Delete => {
            let outcome = match r {
                Reply::Write(WriteOutcome::Deleted) | Reply::Deleted(true) => {
                    c.delete_hits.inc();
                    DeleteOutcome::Deleted
                }
                Reply::Write(WriteOutcome::Exists) => DeleteOutcome::Exists,
                Reply::Write(WriteOutcome::NotFound) | Reply::Deleted(false) => {
                    c.delete_misses.inc();
                    DeleteOutcome::NotFound
                }
                other => return unexpected(t, other, s),
            };
            s.put(|b| reply::delete(b, t, outcome));
        }
        SlotKind::Touch => {
            let found = match r {
                // The owner's MUTATE TOUCH answers with the item.
                Reply::Write(WriteOutcome::Touched { .. }) | Reply::Item(_) => true,
                Reply::Write(WriteOutcome::NotFound) => false,
                other => return unexpected(t, other, s),
            };
            if found {
                c.touch_hits.inc();
            } else {
                c.touch_misses.inc();
            }
            s.put(|b| reply::touch(b, t, found));
        }
        SlotKind::Arith { incr } => arith_reply(t, r, incr, s, c),
        SlotKind::Flush { noreply, failed } => {
            if failed {
                s.put(|b| {
                    if !noreply {
                        b.extend_from_slice(
                            b"SERVER_ERROR flush_all did not reach every core or member\r\n",
                        );
                    }
                });
            } else {
                s.put(|b| reply::ok(b, noreply));
            }
        }
    }
}

/// One retrieval key's answer.
fn get<S: Sink>(t: &Target<'_>, r: &Reply, s: &mut S, c: &McCounters) {
    match r {
        Reply::Item(hit) => {
            c.get_hits.inc();
            item(
                t,
                &hit.value,
                Some(&hit.value),
                hit.ttl_ms,
                hit.flags,
                hit.cas,
                s,
            );
        }
        // A value without metadata (a node whose front end is off answered): flags 0.
        Reply::Value { value, ttl_ms } => {
            c.get_hits.inc();
            item(t, value, Some(value), *ttl_ms, 0, 0, s);
        }
        // NOT_FOUND from the owner of a gat's MUTATE TOUCH, or a load's miss.
        Reply::NotFound | Reply::Write(WriteOutcome::NotFound) => {
            c.get_misses.inc();
            s.put(|b| reply::get_miss(b, t));
        }
        other => unexpected(t, other, s),
    }
}

/// Values up to this size are copied with their `VALUE` line; larger ones are
/// handed to the sink to be queued by reference.
const SMALL_VALUE: usize = 2048;

/// A hit: the `VALUE`/`VA`/`HD` line, the value, `\r\n`.
/// A retrieval key's hit seen where the store keeps it (`value`, and the shared
/// buffer behind it if it is stored out of line), counted and encoded as
/// [`encode`] would a [`Reply::Item`] of it, without copying it into one.
pub fn hit<S: Sink>(
    t: &Target<'_>,
    value: &[u8],
    shared: Option<&ByteView>,
    ttl_ms: u64,
    meta: Meta,
    s: &mut S,
    c: &McCounters,
) {
    c.get_hits.inc();
    item(t, value, shared, ttl_ms, meta.flags, meta.cas, s);
}

/// A hit's line, value and end. `view` is the buffer behind `value` if there is
/// one, so a large value can be queued by reference; else it is copied.
fn item<S: Sink>(
    t: &Target<'_>,
    value: &[u8],
    view: Option<&ByteView>,
    ttl_ms: u64,
    flags: u32,
    cas: u64,
    s: &mut S,
) {
    let info = ItemInfo {
        flags,
        cas,
        ttl: ttl_secs(ttl_ms),
        ..ItemInfo::default()
    };
    if value.len() <= SMALL_VALUE {
        // One append for the line, the value and its end (the output queue copies
        // a small value anyway).
        return s.put(|b| {
            if reply::get_hit(b, t, &info, value.len()) {
                b.extend_from_slice(value);
                reply::value_end(b);
            }
        });
    }
    let mut with_value = false;
    s.put(|b| with_value = reply::get_hit(b, t, &info, value.len()));
    if with_value {
        match view {
            Some(v) => s.value(v),
            None => s.put(|b| b.extend_from_slice(value)),
        }
        s.put(reply::value_end);
    }
}

/// Remaining seconds (rounded up) of a TTL in ms; `None` for no expiry.
fn ttl_secs(ttl_ms: u64) -> Option<u32> {
    (ttl_ms > 0).then(|| u32::try_from(ttl_ms.div_ceil(1000)).unwrap_or(u32::MAX))
}

fn store<S: Sink>(t: &Target<'_>, r: &Reply, with_cas: bool, s: &mut S, c: &McCounters) {
    let (outcome, cas) = match r {
        Reply::Write(WriteOutcome::Stored { cas }) => (StoreOutcome::Stored, *cas),
        Reply::Stored => (StoreOutcome::Stored, 0),
        Reply::Write(WriteOutcome::NotStored) => (StoreOutcome::NotStored, 0),
        Reply::Write(WriteOutcome::Exists) => (StoreOutcome::Exists, 0),
        Reply::Write(WriteOutcome::NotFound) => (StoreOutcome::NotFound, 0),
        Reply::Write(WriteOutcome::TooLarge { .. }) => {
            return s.put(|b| reply::too_large(b, &t.reply))
        }
        other => return unexpected(t, other, s),
    };
    if with_cas {
        match outcome {
            StoreOutcome::Stored => c.cas_hits.inc(),
            StoreOutcome::Exists => c.cas_badval.inc(),
            _ => c.cas_misses.inc(),
        }
    }
    s.put(|b| reply::store(b, t, outcome, cas));
}

fn arith_reply<S: Sink>(t: &Target<'_>, r: &Reply, incr: bool, s: &mut S, c: &McCounters) {
    let (hits, misses) = if incr {
        (&c.incr_hits, &c.incr_misses)
    } else {
        (&c.decr_hits, &c.decr_misses)
    };
    let mut info = ItemInfo::default();
    let outcome = match r {
        Reply::Write(WriteOutcome::Number { value, cas }) => {
            hits.inc();
            info.cas = *cas;
            ArithOutcome::Value(*value)
        }
        // `ma N` created the counter (see `apply`): its initial value, as an item.
        Reply::Item(hit) => {
            misses.inc();
            info.cas = hit.cas;
            info.ttl = ttl_secs(hit.ttl_ms);
            ArithOutcome::Created(arith::parse(&hit.value).unwrap_or(0))
        }
        Reply::Write(WriteOutcome::NotFound) => {
            misses.inc();
            ArithOutcome::NotFound
        }
        Reply::Write(WriteOutcome::NotStored) => ArithOutcome::NotStored,
        Reply::Write(WriteOutcome::Exists) => ArithOutcome::Exists,
        Reply::Write(WriteOutcome::NonNumeric) => ArithOutcome::NonNumeric,
        Reply::Write(WriteOutcome::TooLarge { .. }) => {
            return s.put(|b| reply::too_large(b, &t.reply))
        }
        other => return unexpected(t, other, s),
    };
    s.put(|b| reply::arith(b, t, outcome, &info));
}

/// An answer that does not fit the request (a member on another version answered
/// something else): never guessed at.
fn unexpected<S: Sink>(t: &Target<'_>, r: &Reply, s: &mut S) {
    let reason = match r {
        Reply::Error { message, .. } => message.as_ref(),
        _ => "unexpected answer from the key's owner",
    };
    s.put(|b| reply::server_error(b, &t.reply, reason));
}
