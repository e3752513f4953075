//! An [`McOp`] on the core whose shard holds the key, by the cluster's rules (the
//! coherence contract in docs/architecture.md, as for native requests):
//!
//! - a retrieval is a read-through GET: a hit answers with the item's flags and
//!   CAS; a miss joins or starts the key's single load (through the owner when
//!   another member owns the key);
//! - a write is applied by the key's owner only, which sends INVALIDATE to every
//!   other member before answering; a write that changed nothing (NOT_STORED,
//!   EXISTS, NOT_FOUND) is answered at once;
//! - `flush_all` empties this core's part of the group.

use super::{shard_ttl, McOp};
use crate::core::effects::Effect;
use crate::core::mailbox::Waiter;
use crate::core::routing::Ctx;
use crate::frontend::memcache::Ttl;
use crate::shard::{Reply, WriteOutcome};
use crate::topology::Owner;

impl Ctx {
    /// Performs `op` on key `key` of group `g` in this core's shard and answers `w`
    /// (now, or when its load or the owner answers).
    pub(in crate::core) fn apply_mc(&mut self, g: usize, key: &[u8], op: McOp, w: Waiter) {
        let now = self.now;
        if let McOp::Flush { all } = op {
            for group in 0..self.shared.groups.len() {
                if all || group == g {
                    self.shard.flush(group);
                }
            }
            return self.queue.push_back(Effect::Reply(w, Reply::Flushed));
        }
        if let McOp::Get { touch: None } = op {
            return self.mc_read(g, key, w);
        }
        if let Owner::Remote(member) = self.topology.owner(key) {
            // A member's MUTATE is never forwarded: its sender's ring disagrees.
            let reply = match w.is_memcache() {
                true => return self.forward_mc(g, key, op, w, member),
                false => self.not_owner(member),
            };
            return self.queue.push_back(Effect::Reply(w, reply));
        }
        let add =
            matches!(&op, McOp::Store { cmd, .. } if cmd.mode == crate::shard::StoreMode::Add);
        let outcome = match op {
            McOp::Get { touch: Some(ttl) } => {
                match self.shard.get_and_touch(now, g, key, shard_ttl(ttl)) {
                    Some(hit) => {
                        if ttl == Ttl::Expired {
                            self.shard.forget(g, key);
                        }
                        // A touch changes no value: other members' copies stay valid.
                        return self.queue.push_back(Effect::Reply(w, Reply::Item(hit)));
                    }
                    // Not in the cache: a read-through GET (without the touch).
                    None => return self.mc_read(g, key, w),
                }
            }
            McOp::Store {
                value,
                cmd,
                expired,
            } => {
                let o = self.shard.store(now, g, key, value, cmd);
                if expired && matches!(o, WriteOutcome::Stored { .. }) {
                    self.shard.forget(g, key);
                }
                o
            }
            McOp::Arith { arith, touch } => {
                let created = arith.vivify.is_some() && self.shard.peek_meta(now, g, key).is_none();
                let o = self.shard.arith(now, g, key, arith);
                if let (WriteOutcome::Number { .. }, Some(ttl)) = (o, touch) {
                    self.shard.touch(now, g, key, shard_ttl(ttl));
                    if ttl == Ttl::Expired {
                        self.shard.forget(g, key);
                    }
                }
                if created && matches!(o, WriteOutcome::Number { .. }) {
                    // Told apart from an update: `ma q` does not hide a creation.
                    if let Some(hit) =
                        self.shard
                            .get_meta(now, g, key, w, || false, &mut self.shard_out)
                    {
                        return self.invalidate_then_reply(g, key, w, Reply::Item(hit));
                    }
                    self.shard_out.clear();
                }
                o
            }
            McOp::Touch { ttl } => {
                let o = self.shard.touch(now, g, key, shard_ttl(ttl));
                if ttl == Ttl::Expired && matches!(o, WriteOutcome::Touched { .. }) {
                    self.shard.forget(g, key);
                    return self.invalidate_then_reply(g, key, w, Reply::Write(o));
                }
                return self.queue.push_back(Effect::Reply(w, Reply::Write(o)));
            }
            McOp::Delete { cas } => self.shard.delete_cas(now, g, key, cas),
            McOp::TouchItem { ttl, keep } => {
                let hit = match keep {
                    true if self.shard.peek_meta(now, g, key).is_some() => {
                        self.shard
                            .get_meta(now, g, key, w, || false, &mut self.shard_out)
                    }
                    true => None,
                    false => self.shard.get_and_touch(now, g, key, ttl),
                };
                self.shard_out.clear(); // a hit starts no load
                let reply = match hit {
                    Some(hit) => Reply::Item(hit),
                    None => Reply::Write(WriteOutcome::NotFound),
                };
                return self.queue.push_back(Effect::Reply(w, reply));
            }
            McOp::Get { touch: None } | McOp::Flush { .. } => return,
        };
        let changed = !matches!(
            outcome,
            WriteOutcome::NotStored
                | WriteOutcome::Exists
                | WriteOutcome::NotFound
                | WriteOutcome::NonNumeric
        );
        let reply = match w.is_memcache() {
            true => Reply::Write(outcome),
            false => self.owner_answer(g, key, outcome, add),
        };
        if changed {
            self.invalidate_then_reply(g, key, w, reply);
        } else {
            self.queue.push_back(Effect::Reply(w, reply));
        }
    }

    /// A read-through retrieval: a hit answers with the item's metadata, a miss
    /// joins or starts the key's load (via the owner when it is another member).
    pub(in crate::core) fn mc_read(&mut self, g: usize, key: &[u8], w: Waiter) {
        let topology = &self.topology;
        let via_peer = || matches!(topology.owner(key), Owner::Remote(_));
        match self
            .shard
            .get_meta(self.now, g, key, w, via_peer, &mut self.shard_out)
        {
            Some(hit) => self.queue.push_back(Effect::Reply(w, Reply::Item(hit))),
            None => self.take_shard_effects(),
        }
    }
}
