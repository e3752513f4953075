//! The memcached front end in a cluster (docs/protocol.md, MUTATE, FETCH_ITEM and
//! FLUSH):
//!
//! - a node that does not own a key forwards a memcached write to the owner as
//!   MUTATE (a plain `delete` as PURGE), with the deadline and UNAVAILABLE rule of a
//!   forwarded SET; the owner applies it, runs its INVALIDATE round, and answers;
//! - the owner serves a member's MUTATE, FETCH_ITEM and FLUSH;
//! - gets of keys owned elsewhere fetch with FETCH_ITEM, so hot copies and the
//!   answers keep the owner's flags and CAS (`effects.rs`, `peer_replies.rs`);
//! - a `gat` through a non-owner is a MUTATE TOUCH; if the owner holds no item the
//!   get reads the key through (as a `gat` at the owner does): the touch applies
//!   to cached items only.
//!
//! What MUTATE cannot carry is answered `SERVER_ERROR` on a non-owner: `ma` with `C`
//! or `T`, `md C`, `ms C` in a mode other than `S`. An exptime already past travels
//! as a 1 ms TTL, and "never expires" as a TTL of [`NEVER_TTL_MS`], which owners read
//! as no expiry.

use std::time::Duration;

use groupcached_protocol::{MutateMode, Opcode, Status, KEEP_TTL};

use super::McOp;
use crate::core::effects::Effect;
use crate::core::mailbox::{KeyOp, Waiter};
use crate::core::routing::{Ctx, Current};
use crate::net::FLUSH_ACK_OPCODE;
use crate::peer::PeerRequest;
use crate::shard::lru::Meta;
use crate::shard::{self, arith, MetaHit, Reply, StoreCommand, StoreMode, Vivify, WriteOutcome};
use crate::value::ByteView;

/// The MUTATE `ttl_ms` a memcached "never expires" travels as; an owner reads any
/// `ttl_ms` from [`NEVER_TTL_FROM`] on (a thousand years) as no expiry.
pub const NEVER_TTL_MS: u64 = u64::MAX - 1;
const NEVER_TTL_FROM: u64 = 1000 * 365 * 24 * 3600 * 1000;

/// The answer of an owner when MUTATE ADD found the key present.
const NOT_STORED_MESSAGE: &str = "ADD of a key that is present: nothing was stored";
/// The answer of an owner when MUTATE CAS found another CAS.
const EXISTS_MESSAGE: &str =
    "CAS mismatch: the item changed since its CAS was read; nothing was stored";
/// INCR/DECR of a value that is not a number.
pub const NON_NUMERIC_MESSAGE: &str = "cannot increment or decrement non-numeric value";

/// A shard TTL (`None` = group default, `Some(ZERO)` = never) as MUTATE's `ttl_ms`.
fn wire_ttl(ttl: Option<Duration>, expired: bool) -> u64 {
    match ttl {
        _ if expired => 1,
        None => 0,
        Some(d) if d.is_zero() => NEVER_TTL_MS,
        Some(d) => (d.as_millis().max(1)).min(u128::from(NEVER_TTL_MS)) as u64,
    }
}

/// MUTATE's `ttl_ms` as a shard TTL.
fn shard_ttl_of(ms: u64) -> Option<Duration> {
    match ms {
        0 => None,
        ms if ms >= NEVER_TTL_FROM => Some(Duration::ZERO),
        ms => Some(Duration::from_millis(ms)),
    }
}

impl Ctx {
    /// Sends memcached write `op` of key `key` (group `g`) to its owner `member`, as
    /// MUTATE (or PURGE), dropping this node's copies first as a forwarded SET does.
    pub(in crate::core) fn forward_mc(
        &mut self,
        g: usize,
        key: &[u8],
        op: McOp,
        w: Waiter,
        member: usize,
    ) {
        let refuse = |reason: &'static str| Reply::error(Status::Error, reason);
        let empty = ByteView::from_vec(Vec::new());
        let reread = matches!(op, McOp::Get { .. });
        let (mode, flags, ttl_ms, cas, delta, value) = match op {
            McOp::Store {
                value,
                cmd,
                expired,
            } => {
                let mode = match (cmd.mode, cmd.cas) {
                    (StoreMode::Set, None) => MutateMode::Set,
                    (StoreMode::Set, Some(_)) => MutateMode::Cas,
                    (StoreMode::Add, None) => MutateMode::Add,
                    (StoreMode::Replace, None) => MutateMode::Replace,
                    (StoreMode::Append, None) => MutateMode::Append,
                    (StoreMode::Prepend, None) => MutateMode::Prepend,
                    (_, Some(_)) => {
                        let r = refuse("ms C with a mode other than S is not supported through a node that does not own the key");
                        return self.queue.push_back(Effect::Reply(w, r));
                    }
                };
                let ttl = match mode {
                    MutateMode::Append | MutateMode::Prepend => KEEP_TTL,
                    _ => wire_ttl(cmd.ttl, expired),
                };
                (mode, cmd.flags, ttl, cmd.cas.unwrap_or(0), 0, value)
            }
            McOp::Arith { arith, touch } => {
                if touch.is_some() || arith.cas.is_some() {
                    let r = refuse(
                        "ma with C or T is not supported through a node that does not own the key",
                    );
                    return self.queue.push_back(Effect::Reply(w, r));
                }
                let vivify = arith.vivify.is_some();
                let (delta, mode) = match arith.delta {
                    shard::Delta::Incr(d) => (d, MutateMode::Incr { vivify }),
                    shard::Delta::Decr(d) => (d, MutateMode::Decr { vivify }),
                };
                let (ttl, value) = match arith.vivify {
                    Some(v) => (
                        wire_ttl(v.ttl, false),
                        ByteView::from_vec(v.initial.to_string().into_bytes()),
                    ),
                    None => (KEEP_TTL, empty),
                };
                (mode, 0, ttl, 0, delta, value)
            }
            McOp::Touch { ttl } | McOp::Get { touch: Some(ttl) } => {
                let expired = ttl == crate::frontend::memcache::Ttl::Expired;
                let ttl = wire_ttl(super::shard_ttl(ttl), expired);
                (MutateMode::Touch, 0, ttl, 0, 0, empty)
            }
            McOp::Delete { cas: None } => {
                self.shard.forget(g, key);
                return self.queue.push_back(Effect::Peer(PeerRequest::Purge {
                    member,
                    group: g as u32,
                    key: key.into(),
                    waiter: w,
                }));
            }
            McOp::Delete { cas: Some(_) } => {
                let r = refuse("md C is not supported through a node that does not own the key");
                return self.queue.push_back(Effect::Reply(w, r));
            }
            McOp::Get { touch: None } | McOp::TouchItem { .. } | McOp::Flush { .. } => return,
        };
        self.shard.forget(g, key);
        self.queue.push_back(Effect::Peer(PeerRequest::Mutate {
            member,
            group: g as u32,
            key: key.into(),
            mode,
            flags,
            ttl_ms,
            cas,
            delta,
            value,
            reread,
            waiter: w,
        }));
    }

    /// The operation a member's MUTATE asks of this node, the key's owner.
    pub(in crate::core) fn mutate_op(
        mode: MutateMode,
        flags: u32,
        ttl_ms: u64,
        cas: u64,
        delta: u64,
        value: &[u8],
    ) -> Result<McOp, &'static str> {
        let ttl = shard_ttl_of(ttl_ms);
        let store = |mode, cas| McOp::Store {
            value: ByteView::copy_from_slice(value),
            cmd: StoreCommand {
                mode,
                flags,
                ttl,
                cas,
            },
            expired: false,
        };
        let arith = |delta: shard::Delta, vivify: bool| -> Result<McOp, &'static str> {
            let vivify = match vivify {
                false => None,
                true => Some(Vivify {
                    initial: arith::parse(value).ok_or("VIVIFY needs a decimal initial value")?,
                    ttl,
                }),
            };
            Ok(McOp::Arith {
                arith: shard::Arith {
                    delta,
                    vivify,
                    cas: None,
                },
                touch: None,
            })
        };
        Ok(match mode {
            MutateMode::Set => store(StoreMode::Set, None),
            MutateMode::Add => store(StoreMode::Add, None),
            MutateMode::Replace => store(StoreMode::Replace, None),
            MutateMode::Append => store(StoreMode::Append, None),
            MutateMode::Prepend => store(StoreMode::Prepend, None),
            MutateMode::Cas => store(StoreMode::Set, Some(cas)),
            MutateMode::Incr { vivify } => arith(shard::Delta::Incr(delta), vivify)?,
            MutateMode::Decr { vivify } => arith(shard::Delta::Decr(delta), vivify)?,
            MutateMode::Touch => McOp::TouchItem {
                ttl,
                keep: ttl_ms == KEEP_TTL,
            },
        })
    }

    /// The answer to a member's MUTATE for what the write did here: a success with
    /// the item's flags and CAS (and the number for INCR/DECR), or its failure.
    /// memcached's NOT_STORED of a REPLACE/APPEND/PREPEND is MUTATE's NOT_FOUND.
    pub(in crate::core) fn owner_answer(
        &self,
        g: usize,
        key: &[u8],
        o: WriteOutcome,
        add: bool,
    ) -> Reply {
        let item = |cas: u64, value: ByteView| {
            let flags = self
                .shard
                .peek_meta(self.now, g, key)
                .map_or(0, |m| m.flags);
            Reply::Item(MetaHit {
                value,
                ttl_ms: 0,
                flags,
                cas,
            })
        };
        match o {
            WriteOutcome::Stored { cas } | WriteOutcome::Touched { cas } => {
                item(cas, ByteView::from_vec(Vec::new()))
            }
            WriteOutcome::Number { value, cas } => {
                item(cas, ByteView::from_vec(value.to_string().into_bytes()))
            }
            WriteOutcome::NotStored if !add => Reply::Write(WriteOutcome::NotFound),
            other => Reply::Write(other),
        }
    }

    /// A member's FLUSH of group `name`: every core empties its part of the group,
    /// then the member is answered (see [`Ctx::flush_settled`]).
    pub(in crate::core) fn flush_request(&mut self, name: &[u8], w: Waiter, cur: &mut Current<'_>) {
        let Some(g) = self.shared.group(name) else {
            let resp = groupcached_protocol::Response::error(
                w.req_id,
                w.opcode,
                Status::UnknownGroup,
                "no such group on this server",
            );
            return cur.reply_now(&resp);
        };
        let threads = self.shared.threads;
        let flush = self.flushes.insert((w, threads));
        let ack = Waiter {
            core: self.id as u16,
            token: flush as u32,
            conn_gen: 0,
            req_id: 0,
            opcode: FLUSH_ACK_OPCODE,
        };
        let op = || KeyOp::Mc(McOp::Flush { all: false });
        for core in 0..threads {
            if core == self.id {
                if let KeyOp::Mc(op) = op() {
                    self.apply_mc(g, b"", op, ack);
                }
            } else {
                self.outboxes[core].push_key(g as u32, b"", op(), ack);
            }
        }
    }

    /// One core emptied its part for flush `flush`; the last one answers the member.
    pub(in crate::core) fn flush_settled(&mut self, flush: usize) {
        let Some((_, left)) = self.flushes.get_mut(flush) else {
            return;
        };
        *left = left.saturating_sub(1);
        if *left == 0 {
            let (w, _) = self.flushes.remove(flush);
            self.queue.push_back(Effect::Reply(w, Reply::Flushed));
        }
    }

    /// Remembers the key of load `id` of group `g` before the load completes: its
    /// memcached and FETCH_ITEM waiters need the cached item's metadata.
    pub(in crate::core) fn mc_key_before_load_done(
        &mut self,
        g: usize,
        id: crate::shard::inflight::LoadId,
    ) {
        self.mc_key.clear();
        if let Some(k) = self.shard.loading_key(g, id) {
            self.mc_key.extend_from_slice(k);
        }
    }

    /// Gives the memcached (and FETCH_ITEM) waiters among the answers of the load
    /// just completed the flags and CAS of the item it cached (0 and 0 if none).
    pub(in crate::core) fn mc_attach_meta(&mut self, g: usize) {
        if !self.shard_out.iter().any(wants_meta) {
            return;
        }
        let meta = self.shard.peek_meta(self.now, g, &self.mc_key);
        self.mc_attach(meta);
    }

    /// Turns the value answers to memcached and FETCH_ITEM waiters among the shard's
    /// last effects into items with `meta` (the owner's flags and CAS).
    pub(in crate::core) fn mc_attach(&mut self, meta: Option<Meta>) {
        for e in &mut self.shard_out {
            if !wants_meta(e) {
                continue;
            }
            if let shard::Effect::Reply(_, r) = e {
                if let Reply::Value { value, ttl_ms } = &*r {
                    *r = Reply::Item(MetaHit {
                        value: value.clone(),
                        ttl_ms: *ttl_ms,
                        flags: meta.map_or(0, |m| m.flags),
                        cas: meta.map_or(0, |m| m.cas),
                    });
                }
            }
        }
    }
}

/// A value answer to a waiter that wants the item's metadata with it.
fn wants_meta(e: &shard::Effect<Waiter>) -> bool {
    matches!(e, shard::Effect::Reply(w, Reply::Value { .. })
        if w.is_memcache() || w.opcode == Opcode::FetchItem as u8)
}

/// A write's failure as a MUTATE answer (status and message), for `write_reply`.
pub fn mutate_failure(o: &WriteOutcome) -> (Status, Option<&'static str>) {
    match o {
        WriteOutcome::NotStored => (Status::NotStored, Some(NOT_STORED_MESSAGE)),
        WriteOutcome::Exists => (Status::Exists, Some(EXISTS_MESSAGE)),
        WriteOutcome::NotFound => (Status::NotFound, None),
        WriteOutcome::NonNumeric => (Status::BadRequest, Some(NON_NUMERIC_MESSAGE)),
        WriteOutcome::TooLarge { .. } => (
            Status::TooLarge,
            Some("the value is over this server's item limit"),
        ),
        _ => (Status::Ok, None),
    }
}
