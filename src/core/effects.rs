//! The core's one effect queue: everything a request, an answer, a mailbox message or
//! a timer makes the core do beyond its own state (answer a waiter, start a load,
//! fetch from an owner, send a request to a member) is queued here as an
//! [`Effect`] and carried out by [`Core::run_effects`], the only code that drains
//! the queue.
//!
//! # Ordering rules
//!
//! 1. **FIFO.** Effects are carried out in the order they were queued. What carrying
//!    one out queues (a failed peer request falling back to a load, a write whose
//!    last INVALIDATE settled answering its writer) goes behind what is already
//!    there, and is carried out in the same drain.
//! 2. **Empty at every step's end.** Each entry point runs the queue before it
//!    returns to the loop: after each request frame of a client connection, each
//!    mailbox message, each answer or failure on a peer connection, and the turn's
//!    expiry pass. The queue is therefore empty whenever the core polls, and
//!    whenever it switches rings: a [`PeerRequest`] names its member by index into
//!    the ring current when it was queued, and is encoded before any other ring is
//!    installed (`set_topology` runs the queue first, as a guard).
//! 3. **Replies land at once; writes wait for the end of the turn.** A reply to one
//!    of this core's connections goes into that connection's output queue when it
//!    is carried out (so the connection's backpressure sees it before the next
//!    frame is decoded); sockets are written before the core sleeps. A reply for
//!    another core's connection waits in that core's outbox, and a keyed request for
//!    another core's shard in its key batch, until the end of the turn, so hops are
//!    batched (one channel message, at most one wake-up per core per turn).
//! 4. **Peer requests are encoded at once; written before sleeping.** A request to a
//!    member goes onto its connection's queue (its deadline starts) when carried
//!    out, or is failed at once if the member is down or suspect; the connection
//!    is written before the core sleeps.
//! 5. **Not re-entrant.** Carrying out an effect never reads a socket or decodes a
//!    frame, so a drain never starts another. The shard's effects arrive through
//!    `Ctx::shard_out`, a scratch vector the shard's API writes into, emptied onto
//!    the queue right after each shard call (it holds nothing between calls).
//!
//! The connections with output to write (`Core::dirty`) are not an effect queue:
//! they are the turn's write set, written once before the core sleeps.

use groupcached_protocol::Status;

use super::conn::Conn;
use super::mailbox::{Msg, Waiter};
use super::Core;
use crate::origin::LoadJob;
use crate::peer::{NoAnswer, PeerError, PeerRequest};
use crate::shard::inflight::LoadId;
use crate::shard::{self, Reply};
use crate::topology::Owner;
use mio::Token;

/// Something the core must do, queued in `Ctx::queue` (see the module docs for the
/// ordering rules).
#[derive(Debug)]
pub enum Effect {
    /// Answer a request: on one of this core's connections, or through the outbox
    /// of the core that holds it.
    Reply(Waiter, Reply),
    /// Hand a load to the origin loader threads; its result comes back as a
    /// `Msg::LoadDone`.
    Load {
        /// Group index.
        group: usize,
        /// The load.
        id: LoadId,
        /// The key.
        key: Box<[u8]>,
    },
    /// Fetch a key from its owner for a load of this shard; the owner is looked up
    /// in the ring current when this is carried out (it may be us by then: the load
    /// falls back to the origin).
    Fetch {
        /// Group index.
        group: usize,
        /// The load waiting for it.
        id: LoadId,
        /// The key.
        key: Box<[u8]>,
    },
    /// Send a request to another member.
    Peer(PeerRequest),
}

impl From<shard::Effect<Waiter>> for Effect {
    fn from(e: shard::Effect<Waiter>) -> Effect {
        match e {
            shard::Effect::Reply(w, r) => Effect::Reply(w, r),
            shard::Effect::Load { group, id, key } => Effect::Load { group, id, key },
            shard::Effect::Fetch { group, id, key } => Effect::Fetch { group, id, key },
        }
    }
}

impl Core {
    /// Carries out every queued effect, and what they queue in turn, until the queue
    /// is empty. `decoding` is the connection whose frames are being handled, if
    /// any: replies to it are not checked against `--max-conn-output` (its decoding
    /// stops at the backpressure mark instead, as the next frame is looked at).
    pub(super) fn run_effects(&mut self, decoding: Option<usize>) {
        while let Some(effect) = self.ctx.queue.pop_front() {
            match effect {
                Effect::Reply(w, _) if w.opcode == crate::net::FLUSH_ACK_OPCODE => {
                    // One core's part of a member's FLUSH (on the core that took it).
                    if w.core as usize == self.ctx.id {
                        self.ctx.flush_settled(w.token as usize);
                    } else {
                        self.ctx.outboxes[w.core as usize].push_reply(w, Reply::Flushed);
                    }
                }
                Effect::Reply(w, reply) => {
                    if w.core as usize == self.ctx.id {
                        self.deliver_local(w, &reply, decoding);
                    } else {
                        self.ctx.outboxes[w.core as usize].push_reply(w, reply);
                    }
                }
                Effect::Load { group, id, key } => self.start_load(group, id, key),
                Effect::Fetch { group, id, key } => match self.ctx.topology.owner(&key) {
                    Owner::Remote(member) => self.send_to_peer(PeerRequest::Fetch {
                        member,
                        group: group as u32,
                        load_id: id,
                        key,
                        // With the memcached front end on, hot copies keep the
                        // owner's flags and CAS.
                        item: self.ctx.mc.on(),
                    }),
                    // The ring changed since the miss: this node owns the key now.
                    Owner::Local => self.ctx.fallback_local(group, id),
                },
                Effect::Peer(req) => self.send_to_peer(req),
            }
        }
    }

    /// Queues a reply on one of this core's connections, if it is still the one
    /// that asked.
    fn deliver_local(&mut self, w: Waiter, reply: &Reply, decoding: Option<usize>) {
        let token = w.token as usize;
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if conn.gen != w.conn_gen {
            return;
        }
        match (&mut conn.mc, w.is_memcache()) {
            (Some(mc), true) => {
                let c = &self.ctx.stats.memcache;
                mc.slots.complete(w.req_id, reply, &mut conn.out, c);
                conn.pending = mc.slots.len();
            }
            (None, false) => write_reply(conn, &w, reply),
            // A waiter of the other kind: a stale slot, never this connection's.
            _ => return,
        }
        self.delivered(token, decoding);
    }

    /// Queues a response frame another core encoded (see `ReplyBatch`) on the
    /// native connection that asked, if it is still there.
    pub(super) fn deliver_frame(&mut self, w: Waiter, frame: &[u8]) {
        let token = w.token as usize;
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if conn.gen != w.conn_gen || conn.mc.is_some() || w.is_memcache() {
            return;
        }
        conn.out.push_with(|buf| buf.extend_from_slice(frame));
        conn.pending = conn.pending.saturating_sub(1);
        self.delivered(token, None);
    }

    /// After an answer was queued on connection `token`: the output bound (not for
    /// the connection being decoded, `decoding`), the buffer accounting, and the
    /// turn's write set.
    fn delivered(&mut self, token: usize, decoding: Option<usize>) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if decoding != Some(token) && conn.output_len() > self.limits.max_output {
            self.close_overflow(token);
            return;
        }
        super::limits::account(&mut self.buffered, conn);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(token);
        }
    }

    /// Hands a load to the loader pool; its result comes back through our mailbox.
    fn start_load(&mut self, group: usize, id: LoadId, key: Box<[u8]>) {
        let ctx = &self.ctx;
        let me = ctx.me.clone();
        let started = ctx.now;
        let done = Box::new(move |result| {
            me.send(Msg::LoadDone {
                group: group as u32,
                id,
                result,
                started,
            })
        });
        match &ctx.shared.groups[group].origin {
            Some(origin) => ctx.loader.submit(LoadJob {
                group,
                origin: origin.clone(),
                key,
                ctx: ctx.shared.load_ctx,
                done,
            }),
            None => done(Ok(None)),
        }
    }

    /// Encodes `req` onto this core's connection to its member (opening it, HELLO
    /// first, if needed), or fails it at once when the member cannot be reached or
    /// is suspect.
    fn send_to_peer(&mut self, req: PeerRequest) {
        let now = self.ctx.now;
        let timeout = self.ctx.shared.peer_timeout;
        let topology = self.ctx.topology.clone();
        let member = req.member();
        let name = topology.name(member);
        let Some(addr) = topology.addrs[member] else {
            return self.ctx.fail_peer_op(req.into_op(), NoAnswer::NoAddress);
        };
        let idx = self.peer_index(name, addr);
        let shared = &self.ctx.shared;
        let peer = &mut self.peers[idx];
        if peer.suspect {
            // The breaker is open: do not wait a peer timeout for a member that
            // stopped answering; a probe tells when it is back.
            return self.ctx.fail_peer_op(req.into_op(), NoAnswer::Suspect);
        }
        match peer.ensure_open(now, self.poll.registry(), Token(super::PEER_BASE + idx)) {
            Err(why) => {
                if peer.health.disconnected(false) {
                    log::warn!("peer {name} is down: {why}");
                }
                return self.ctx.fail_peer_op(req.into_op(), why.no_answer());
            }
            Ok(true) => {
                let started = peer.start_handshake(
                    topology.self_name(),
                    topology.ring.fingerprint(),
                    shared.cluster_secret.is_some(),
                    now + timeout,
                );
                if let Err(e) = started {
                    let why = PeerError::NoRandomness(e);
                    log::error!("peer {name}: {why}");
                    let mut ops = Vec::new();
                    peer.fail(now, self.poll.registry(), &mut ops);
                    for op in ops {
                        self.ctx.fail_peer_op(op, why.no_answer());
                    }
                    return self.ctx.fail_peer_op(req.into_op(), why.no_answer());
                }
            }
            Ok(false) => {}
        }
        // A forwarded write is answered only after the owner's own round of
        // INVALIDATEs, each of which may take up to the peer timeout.
        let due = if req.is_forwarded_write() {
            now + 2 * timeout
        } else {
            now + timeout
        };
        let group_name = shared.groups[req.group()].name.as_bytes();
        peer.enqueue(req, group_name, now, due);
        if !peer.dirty {
            peer.dirty = true;
            self.peer_dirty.push(idx);
        }
    }
}

/// Encodes `reply` for waiter `w` onto `conn`'s output and counts the request
/// answered.
pub(super) fn write_reply(conn: &mut Conn, w: &Waiter, reply: &Reply) {
    use groupcached_protocol::{Response, ResponseBody};
    let fetch_item = w.opcode == groupcached_protocol::Opcode::FetchItem as u8;
    let mutate = w.opcode == groupcached_protocol::Opcode::Mutate as u8;
    let (status, body, value) = match reply {
        Reply::Item(hit) if fetch_item => (
            Status::Ok,
            ResponseBody::Item {
                ttl_ms: hit.ttl_ms,
                flags: hit.flags,
                cas: hit.cas,
                value: &hit.value,
            },
            Some(&hit.value),
        ),
        Reply::Value { value, ttl_ms } if fetch_item => (
            Status::Ok,
            ResponseBody::Item {
                ttl_ms: *ttl_ms,
                flags: 0,
                cas: 0,
                value,
            },
            Some(value),
        ),
        Reply::Item(hit) if mutate => (
            Status::Ok,
            ResponseBody::Mutated {
                flags: hit.flags,
                cas: hit.cas,
                value: &hit.value,
            },
            Some(&hit.value),
        ),
        Reply::Write(o) => match super::memcache::mutate_failure(o) {
            (status, Some(m)) => (status, ResponseBody::Message(m.as_bytes()), None),
            (status, None) => (status, ResponseBody::Empty, None),
        },
        Reply::Value { value, ttl_ms } => (
            Status::Ok,
            ResponseBody::Value {
                ttl_ms: *ttl_ms,
                value,
            },
            Some(value),
        ),
        Reply::NotFound => (Status::NotFound, ResponseBody::Empty, None),
        Reply::Item(hit) => (
            Status::Ok,
            ResponseBody::Value {
                ttl_ms: hit.ttl_ms,
                value: &hit.value,
            },
            Some(&hit.value),
        ),
        Reply::Stored | Reply::Invalidated | Reply::Flushed => {
            (Status::Ok, ResponseBody::Empty, None)
        }
        Reply::Deleted(removed) => (Status::Ok, ResponseBody::Deleted(*removed), None),
        Reply::Error { status, message } => {
            (*status, ResponseBody::Message(message.as_bytes()), None)
        }
    };
    conn.out.push_response(
        &Response {
            id: w.req_id,
            opcode: w.opcode,
            status,
            body,
        },
        value,
    );
    conn.pending = conn.pending.saturating_sub(1);
}
