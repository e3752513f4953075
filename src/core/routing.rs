//! What a core does with a client's or a member's request: decode the frames of a
//! connection, answer what needs no shard at once, and route keyed requests by the
//! cluster's rules (the coherence contract in docs/architecture.md). Nothing here
//! touches a socket: what must happen elsewhere is queued as an
//! [`Effect`](super::effects::Effect).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::{
    shard_of, Frame, KeyRef, Request, RequestKind, Response, ResponseBody, Status,
};

use super::conn::{backpressured, Conn, MemberClaim};
use super::effects::Effect;
use super::mailbox::{Inbox, KeyOp, Outbox, Remote, Waiter};
use super::Core;
use crate::net::OutQueue;
use crate::origin::LoaderHandle;
use crate::peer::PeerRequest;
use crate::shard::inflight::LoadId;
use crate::shard::{self, Reply, Shard};
use crate::shared::Shared;
use crate::stats::CoreStats;
use crate::topology::{Owner, Topology};
use crate::value::ByteView;

/// The parts of a core that request handling needs while a connection is borrowed.
pub struct Ctx {
    /// Core index.
    pub id: usize,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// This core's shard.
    pub shard: Shard<Waiter>,
    /// This core's mailbox.
    pub inbox: Inbox,
    /// Mailboxes of every core, by index.
    pub outboxes: Vec<Outbox>,
    /// This core's own mailbox, for loader threads.
    pub me: Remote,
    /// Origin loader pool.
    pub loader: LoaderHandle,
    /// This core's counters.
    pub stats: Arc<CoreStats>,
    /// The current ring and members.
    pub topology: Arc<Topology>,
    /// The core's one effect queue, drained by `Core::run_effects` only (ordering
    /// rules: the `effects` module docs).
    pub queue: VecDeque<Effect>,
    /// What the shard's last call asked for; moved onto `queue` right after each
    /// shard call, so it is empty between calls.
    pub shard_out: Vec<shard::Effect<Waiter>>,
    /// A reused buffer for error messages that name what the request named (an
    /// unknown group): rendered without allocating once it has grown.
    pub scratch: String,
    /// The time of this loop turn.
    pub now: Instant,
    /// How memcached keys map to groups, and the codec's limits.
    pub mc: super::memcache::McSettings,
    /// Shutting down: no more reading.
    pub draining: bool,
    /// State of the hot-cache sampling generator.
    pub rng: u64,
    /// Writes this node applied as the key's owner, each waiting for every other
    /// member to acknowledge its INVALIDATE before the writer is answered.
    pub writes: slab::Slab<PendingWrite>,
    /// The key of the load being completed, kept while its waiters are answered so
    /// that memcached waiters get the cached item's flags and CAS.
    pub mc_key: Vec<u8>,
    /// Members' FLUSHes being applied on every core: the member's waiter and the
    /// cores still to report (see `core::memcache::cluster`).
    pub flushes: slab::Slab<(Waiter, usize)>,
}

/// A write applied at the owner whose answer waits for the other members.
#[derive(Debug)]
pub struct PendingWrite {
    /// Who asked for the write (a client, or the member that forwarded it).
    waiter: Waiter,
    /// The answer, sent once `awaiting` reaches 0.
    reply: Reply,
    /// INVALIDATEs neither acknowledged nor failed yet.
    awaiting: usize,
}

/// The connection whose frames are being handled: answers that need no shard go
/// straight to its output queue.
pub struct Current<'a> {
    pub(super) token: usize,
    pub(super) gen: u32,
    pub(super) out: &'a mut OutQueue,
    pub(super) pending: &'a mut usize,
    /// Its requests waiting on another core (see `Conn::hops`).
    pub(super) hops: &'a mut u32,
    /// The membership the connection claimed (see HELLO).
    pub(super) member: &'a mut MemberClaim,
    /// Set by a SHARD that moves the connection: decoding stops after it.
    pub(super) handoff: &'a mut Option<usize>,
}

impl Current<'_> {
    /// Answers the request being handled at once.
    pub(super) fn reply_now(&mut self, resp: &Response<'_>) {
        self.out.push_response(resp, None);
        *self.pending = self.pending.saturating_sub(1);
    }
}

/// The response to native GET `w` for a hit of `value` with `ttl_ms` to live.
fn hit_response<'a>(w: &Waiter, ttl_ms: u64, value: &'a [u8]) -> Response<'a> {
    Response {
        id: w.req_id,
        opcode: w.opcode,
        status: Status::Ok,
        body: ResponseBody::Value { ttl_ms, value },
    }
}

/// Below this many buffered bytes (about two GET frames) there is no batch to
/// prefetch for.
const PREFETCH_MIN_BYTES: usize = 64;
/// GETs of a batch prefetched at most (of at most twice as many frames looked
/// at): far enough ahead for pipeline 16 and more, and few enough that the first
/// are still in cache when handled.
const PREFETCH_AHEAD: usize = 32;

impl Core {
    /// Decodes and handles every whole frame buffered on connection `token`, running
    /// the effect queue after each, until the buffer holds no whole frame, the
    /// connection is backpressured, or a SHARD moved it.
    pub(super) fn handle_frames(&mut self, token: usize) {
        if let Some(conn) = self.conns.get(token) {
            // A pipelined batch: start every local GET's cache misses first, so they
            // overlap instead of stalling one lookup after another.
            // First the hashes, then the prefetches in a tight loop: the CPU can
            // then have several index lookups in flight at once.
            if conn.rbuf.buffered() >= PREFETCH_MIN_BYTES {
                let ctx = &self.ctx;
                let mut ahead = [(0usize, 0u64); PREFETCH_AHEAD];
                let (mut n, mut seen) = (0, 0);
                conn.rbuf.peek_frames(|f| {
                    seen += 1;
                    if let Frame::Request(Request {
                        kind: RequestKind::Get(k),
                        ..
                    }) = f
                    {
                        if let Some(hashed) = ctx.get_hash(k) {
                            ahead[n] = hashed;
                            n += 1;
                        }
                    }
                    // Never look further than this: the rest is decoded anyway, and
                    // a deep buffer of other requests would be decoded twice.
                    n < PREFETCH_AHEAD && seen < 2 * PREFETCH_AHEAD
                });
                for &(g, hash) in &ahead[..n] {
                    ctx.shard.prefetch(g, hash);
                }
            }
        }
        loop {
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            if backpressured(conn.out.len(), conn.pending) {
                return; // the rest waits in rbuf until the client reads (read_conn)
            }
            if conn.handoff.is_some() {
                return; // the rest is decoded by the core the connection moves to
            }
            let Conn {
                rbuf,
                out,
                pending,
                hops,
                gen,
                closing,
                member,
                handoff,
                ..
            } = conn;
            let mut cur = Current {
                token,
                gen: *gen,
                out,
                pending,
                hops,
                member,
                handoff,
            };
            let ctx = &mut self.ctx;
            match rbuf.next_frame() {
                Ok(None) => return,
                Ok(Some(Frame::Request(req))) => {
                    ctx.stats.node.requests.inc();
                    *cur.pending += 1;
                    ctx.handle_request(req, &mut cur);
                }
                Ok(Some(Frame::Response(r))) => {
                    ctx.stats.node.protocol_errors.inc();
                    cur.out.push_response(
                        &Response::error(
                            r.id,
                            r.opcode,
                            Status::BadRequest,
                            "expected a request frame, got a response",
                        ),
                        None,
                    );
                    *closing = true;
                    return;
                }
                Err(e) => {
                    ctx.stats.node.protocol_errors.inc();
                    ctx.scratch.clear();
                    let _ = write!(ctx.scratch, "{}", e.error);
                    cur.out.push_response(
                        &Response::error(e.request_id, e.opcode, e.error.status(), &ctx.scratch),
                        None,
                    );
                    if e.error.is_fatal() {
                        *closing = true;
                        return;
                    }
                }
            }
            if !self.ctx.queue.is_empty() {
                self.run_effects(Some(token));
            }
        }
    }
}

impl Ctx {
    fn handle_request(&mut self, req: Request<'_>, cur: &mut Current<'_>) {
        let w = Waiter {
            core: self.id as u16,
            token: cur.token as u32,
            conn_gen: cur.gen,
            req_id: req.id,
            opcode: req.kind.opcode() as u8,
        };
        let ttl = |ms: u64| (ms > 0).then(|| Duration::from_millis(ms));
        if req.kind.opcode().is_peer_only() {
            if let Some(refusal) = self.peer_op_refusal(cur.member) {
                self.stats.node.peer_ops_refused.inc();
                let resp = Response::error(req.id, w.opcode, Status::Forbidden, refusal);
                return cur.reply_now(&resp);
            }
        }
        match req.kind {
            RequestKind::Get(k) => self.key_request(k, KeyOp::Get, w, cur),
            RequestKind::Fetch(k) => self.key_request(k, KeyOp::Fetch, w, cur),
            RequestKind::Set { key, ttl_ms, value } => {
                let op = KeyOp::Set {
                    value: ByteView::copy_from_slice(value),
                    ttl: ttl(ttl_ms),
                };
                self.key_request(key, op, w, cur)
            }
            RequestKind::Store { key, ttl_ms, value } => {
                let op = KeyOp::Store {
                    value: ByteView::copy_from_slice(value),
                    ttl: ttl(ttl_ms),
                };
                self.key_request(key, op, w, cur)
            }
            RequestKind::Delete(k) => self.key_request(k, KeyOp::Delete, w, cur),
            RequestKind::Purge(k) => self.key_request(k, KeyOp::Purge, w, cur),
            RequestKind::Invalidate(k) => self.key_request(k, KeyOp::Invalidate, w, cur),
            RequestKind::Ping(payload) => cur.reply_now(&Response {
                id: req.id,
                opcode: w.opcode,
                status: Status::Ok,
                body: ResponseBody::Pong(payload),
            }),
            RequestKind::Shard { core } => self.shard_request(req.id, w.opcode, core, cur),
            RequestKind::Stats => self.stats_request(req.id, w.opcode, cur),
            RequestKind::Hello {
                node_id,
                ring_fingerprint,
            } => self.hello(req.id, w.opcode, node_id, ring_fingerprint, cur),
            RequestKind::Challenge { nonce } => self.challenge(req.id, w.opcode, nonce, cur),
            RequestKind::Auth { proof } => self.auth(req.id, w.opcode, proof, cur),
            // The memcached front end's peer operations (core::memcache::cluster).
            RequestKind::Mutate {
                key,
                mode,
                flags,
                ttl_ms,
                cas,
                delta,
                value,
            } => match Ctx::mutate_op(mode, flags, ttl_ms, cas, delta, value) {
                Ok(op) => self.key_request(key, KeyOp::Mc(op), w, cur),
                Err(why) => {
                    cur.reply_now(&Response::error(req.id, w.opcode, Status::BadRequest, why))
                }
            },
            RequestKind::FetchItem(k) => self.key_request(k, KeyOp::FetchItem, w, cur),
            RequestKind::Flush { group } => self.flush_request(group, w, cur),
        }
    }

    /// The group and main-cache hash of a GET of `k`, if this core serves it (to
    /// prefetch it).
    #[inline]
    fn get_hash(&self, k: &KeyRef<'_>) -> Option<(usize, u64)> {
        if self.core_of(k.key) != self.id {
            return None;
        }
        let g = self.shared.group(k.group)?;
        Some((g, self.shard.main_hash(g, k.key)))
    }

    /// The core whose shard holds `key` (the shard rule of docs/protocol.md); with
    /// one core, every key's, without hashing it.
    #[inline]
    pub(super) fn core_of(&self, key: &[u8]) -> usize {
        match self.shared.threads {
            1 => 0,
            threads => shard_of(key, threads),
        }
    }

    /// Starts bringing what a lookup of `key` in group `g`'s main cache reads into
    /// the CPU cache (see [`Shard::prefetch`]); a key of this core's shard.
    pub(super) fn prefetch_key(&self, g: usize, key: &[u8]) {
        self.shard.prefetch(g, self.shard.main_hash(g, key));
    }

    /// Routes a keyed request to the core whose shard holds the key.
    fn key_request(&mut self, k: KeyRef<'_>, op: KeyOp, w: Waiter, cur: &mut Current<'_>) {
        let Some(g) = self.shared.group(k.group) else {
            self.scratch.clear();
            let _ = write!(
                self.scratch,
                "no group named `{}` on this server",
                String::from_utf8_lossy(k.group)
            );
            let resp = Response::error(w.req_id, w.opcode, Status::UnknownGroup, &self.scratch);
            return cur.reply_now(&resp);
        };
        let shard = self.core_of(k.key);
        if shard == self.id {
            match op {
                KeyOp::Get => self.get_local(g, k.key, w, cur),
                op => self.apply_key_op(g, k.key, op, w),
            }
        } else {
            self.stats.node.core_hops.inc();
            *cur.hops += 1;
            self.outboxes[shard].push_key(g as u32, k.key, op, w);
        }
    }

    /// A GET of a key of this core's shard from the connection being decoded: a hit
    /// is encoded straight from where the store keeps it into the connection's
    /// output (no copy into a `ByteView`, no trip through the effect queue); a miss
    /// goes on as [`Ctx::apply_key_op`]'s GET does.
    fn get_local(&mut self, g: usize, key: &[u8], w: Waiter, cur: &mut Current<'_>) {
        let out = &mut *cur.out;
        let hit = self.shard.get_hit(self.now, g, key, |value, ttl_ms| {
            out.push_response(&hit_response(&w, ttl_ms, value.bytes()), value.shared());
        });
        match hit {
            Some(()) => *cur.pending = cur.pending.saturating_sub(1),
            None => self.get_missed(g, key, w),
        }
    }

    /// A GET of a key of this core's shard that hopped here from core `w.core`: a
    /// small hit goes back as its encoded frame in the reply batch (no allocation
    /// of its own), a large one by reference, as a local hit would be queued.
    fn get_hopped(&mut self, g: usize, key: &[u8], w: Waiter) {
        let outbox = &mut self.outboxes[w.core as usize];
        let hit = self
            .shard
            .get_hit(self.now, g, key, |value, ttl_ms| match value.shared() {
                Some(view) => {
                    let value = view.clone();
                    outbox.push_reply(w, Reply::Value { value, ttl_ms });
                }
                None => outbox.push_frame(w, |out| {
                    hit_response(&w, ttl_ms, value.bytes()).encode(out);
                }),
            });
        if hit.is_none() {
            self.get_missed(g, key, w);
        }
    }

    /// The rest of a GET that missed: join or start the key's load, from its owner
    /// if that is another node (the ring is asked only now: a hit never pays for
    /// it).
    fn get_missed(&mut self, g: usize, key: &[u8], w: Waiter) {
        let topology = &self.topology;
        let via_peer = || matches!(topology.owner(key), Owner::Remote(_));
        self.shard
            .get_missed(self.now, g, key, w, via_peer, &mut self.shard_out);
        self.take_shard_effects();
    }

    /// Performs a keyed operation on this core's shard, following the cluster rules
    /// (the coherence contract in docs/architecture.md):
    /// - reads of keys owned elsewhere go through the owner;
    /// - a write is applied by the key's owner only; any other node forwards it
    ///   (STORE / PURGE) and answers with the owner's answer;
    /// - the owner answers a write only after every other member acknowledged an
    ///   INVALIDATE of the key (or failed to within `--peer-timeout`);
    /// - requests from peers (FETCH, STORE, PURGE, INVALIDATE) are served here and
    ///   never forwarded; STORE and PURGE of a key we do not own are refused.
    pub fn apply_key_op(&mut self, g: usize, key: &[u8], op: KeyOp, w: Waiter) {
        let now = self.now;
        let reply = match op {
            // Only native GETs that hopped here arrive so (a local one is answered
            // by `get_local`, memcached reads are `KeyOp::Mc`); any other is
            // answered through the effect queue.
            KeyOp::Get if w.core as usize != self.id && !w.is_memcache() => {
                return self.get_hopped(g, key, w);
            }
            KeyOp::Get => {
                // The owner matters only on a miss: a hit costs no ring lookup.
                let topology = &self.topology;
                let via_peer = || matches!(topology.owner(key), Owner::Remote(_));
                self.shard
                    .get(now, g, key, w, via_peer, &mut self.shard_out);
                return self.take_shard_effects();
            }
            KeyOp::FetchItem => {
                // FETCH with the item's flags and CAS (a load's answer gets them in
                // `mc_attach_meta`).
                self.stats.groups[g].server_requests.inc();
                let hit = self
                    .shard
                    .get_meta(now, g, key, w, || false, &mut self.shard_out);
                if let Some(hit) = hit {
                    self.queue.push_back(Effect::Reply(w, Reply::Item(hit)));
                }
                return self.take_shard_effects();
            }
            KeyOp::Fetch => {
                // Never forwarded. If we do not own the key, a load's result becomes a
                // hot copy only (decided when it completes).
                self.stats.groups[g].server_requests.inc();
                self.shard
                    .get(now, g, key, w, || false, &mut self.shard_out);
                return self.take_shard_effects();
            }
            KeyOp::Set { value, ttl } => match self.topology.owner(key) {
                Owner::Local => {
                    let reply = self.shard.set(now, g, key, value, ttl);
                    return self.invalidate_then_reply(g, key, w, reply);
                }
                Owner::Remote(member) => {
                    self.stats.groups[g].sets.inc();
                    self.shard.forget(g, key);
                    self.queue.push_back(Effect::Peer(PeerRequest::Store {
                        member,
                        group: g as u32,
                        key: key.into(),
                        value,
                        ttl_ms: ttl.map_or(0, |t| t.as_millis().max(1) as u64),
                        waiter: w,
                    }));
                    return;
                }
            },
            KeyOp::Delete => match self.topology.owner(key) {
                Owner::Local => {
                    let reply = self.shard.delete(g, key);
                    return self.invalidate_then_reply(g, key, w, reply);
                }
                Owner::Remote(member) => {
                    self.shard.delete(g, key);
                    self.queue.push_back(Effect::Peer(PeerRequest::Purge {
                        member,
                        group: g as u32,
                        key: key.into(),
                        waiter: w,
                    }));
                    return;
                }
            },
            KeyOp::Store { value, ttl } => match self.topology.owner(key) {
                Owner::Local => {
                    let reply = self.shard.set(now, g, key, value, ttl);
                    return self.invalidate_then_reply(g, key, w, reply);
                }
                Owner::Remote(owner) => self.not_owner(owner),
            },
            KeyOp::Purge => match self.topology.owner(key) {
                Owner::Local => {
                    let reply = self.shard.delete(g, key);
                    return self.invalidate_then_reply(g, key, w, reply);
                }
                Owner::Remote(owner) => self.not_owner(owner),
            },
            KeyOp::Invalidate => self.shard.invalidate(g, key),
            KeyOp::Mc(op) => return self.apply_mc(g, key, op, w),
        };
        self.queue.push_back(Effect::Reply(w, reply));
    }

    /// Moves what the shard's last call asked for onto the effect queue.
    pub(super) fn take_shard_effects(&mut self) {
        self.queue
            .extend(self.shard_out.drain(..).map(Effect::from));
    }

    /// Load `id` waited for a peer that cannot answer (or the key is ours now):
    /// its waiters move to a local load.
    pub(super) fn fallback_local(&mut self, group: usize, id: LoadId) {
        self.shard
            .fallback_local(self.now, group, id, &mut self.shard_out);
        self.take_shard_effects();
    }

    /// The answer to a STORE or PURGE of a key that `owner`, not we, owns. It names
    /// the owner (docs/protocol.md), so it is rendered here: this happens only while
    /// two members' rings disagree, never on a request the ring routes right.
    pub(in crate::core) fn not_owner(&self, owner: usize) -> Reply {
        self.stats.node.peer_ops_refused.inc();
        let owner = self.topology.name(owner);
        let mut message = String::with_capacity(NOT_OWNER_MESSAGE.len() + 16 + owner.len());
        message.push_str(NOT_OWNER_MESSAGE);
        message.push_str("; its owner is ");
        message.push_str(owner);
        Reply::error(Status::NotOwner, message)
    }

    /// A write of `key` was applied here, as its owner: tell every other member to
    /// drop its copies, and answer `w` with `reply` once all of them acknowledged
    /// (or failed to). Until then a GET through a member that has not yet dropped
    /// its copy may still see the old value, which is fine: the write is not
    /// acknowledged yet.
    pub(in crate::core) fn invalidate_then_reply(
        &mut self,
        g: usize,
        key: &[u8],
        w: Waiter,
        reply: Reply,
    ) {
        let others = self.topology.ring.len().saturating_sub(1);
        if others == 0 {
            self.queue.push_back(Effect::Reply(w, reply));
            return;
        }
        let write = self.writes.insert(PendingWrite {
            waiter: w,
            reply,
            awaiting: others,
        });
        for member in self.topology.others() {
            self.queue.push_back(Effect::Peer(PeerRequest::Invalidate {
                member,
                group: g as u32,
                key: key.into(),
                write,
            }));
        }
    }

    /// One member acknowledged (or failed to acknowledge) write `write`'s INVALIDATE.
    pub(super) fn invalidate_settled(&mut self, write: usize, acknowledged: bool) {
        if !acknowledged {
            self.stats.node.invalidate_errors.inc();
        }
        let Some(pending) = self.writes.get_mut(write) else {
            return;
        };
        pending.awaiting = pending.awaiting.saturating_sub(1);
        if pending.awaiting == 0 {
            let done = self.writes.remove(write);
            self.queue.push_back(Effect::Reply(done.waiter, done.reply));
        }
    }

    /// Milliseconds since the node started, for the log limiters.
    pub(super) fn now_ms(&self) -> u64 {
        self.now
            .saturating_duration_since(self.shared.registry.started)
            .as_millis() as u64
    }
}

/// The message of a NOT_OWNER answer to a STORE or PURGE.
pub const NOT_OWNER_MESSAGE: &str = "this node does not own the key under its ring";
