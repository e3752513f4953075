//! What a core does with a request or an answer: the routing rules of the cluster.
//! Everything here works on the core's state without touching sockets; what must
//! go to a peer is queued as a [`PeerAction`] for the core to send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::{
    shard_of, Frame, HelloInfo, KeyRef, MemberList, Request, RequestKind, Response, ResponseBody,
    StatsList, Status, SHARD_QUERY,
};

use super::conn::{Conn, MemberClaim};
use super::mailbox::{Inbox, KeyOp, Msg, Outbox, Remote, Waiter};
use crate::net::OutQueue;
use crate::origin::{LoadJob, LoaderHandle};
use crate::peer::auth::{fresh_nonce, Nonce, Proof};
use crate::peer::pending::PendingOp;
use crate::shard::inflight::LoadId;
use crate::shard::{Effect, FetchOutcome, Reply, Shard};
use crate::shared::Shared;
use crate::stats::CoreStats;
use crate::topology::{Owner, Topology};
use crate::value::ByteView;

/// A request this core must send to another member. `member` indexes the topology
/// current when the action was made: the core sends every queued action before it
/// switches to another topology, so the index always names the intended member.
#[derive(Debug)]
pub enum PeerAction {
    /// FETCH a key for a load of ours.
    Fetch {
        /// Member index in the current topology.
        member: usize,
        /// Group index.
        group: u32,
        /// The waiting load.
        load_id: LoadId,
        /// The key.
        key: Box<[u8]>,
    },
    /// STORE at the owner for a client's SET.
    Store {
        /// Member index.
        member: usize,
        /// Group index.
        group: u32,
        /// The key.
        key: Box<[u8]>,
        /// The value.
        value: ByteView,
        /// TTL in ms (0 = group default).
        ttl_ms: u64,
        /// The client request.
        waiter: Waiter,
    },
    /// PURGE at the owner for a client's DELETE.
    Purge {
        /// Member index.
        member: usize,
        /// Group index.
        group: u32,
        /// The key.
        key: Box<[u8]>,
        /// The client request.
        waiter: Waiter,
    },
    /// INVALIDATE every copy of a key at another member after the owner (this node)
    /// applied a write.
    Invalidate {
        /// Member index.
        member: usize,
        /// Group index.
        group: u32,
        /// The key.
        key: Box<[u8]>,
        /// The write waiting for this acknowledgement (a key of [`Ctx::writes`]).
        write: usize,
    },
}

impl PeerAction {
    /// The member it goes to.
    pub fn member(&self) -> usize {
        match self {
            PeerAction::Fetch { member, .. }
            | PeerAction::Store { member, .. }
            | PeerAction::Purge { member, .. }
            | PeerAction::Invalidate { member, .. } => *member,
        }
    }

    /// Encodes the request under `id` onto `out` at `now` and returns what to
    /// remember about it.
    pub fn send(self, id: u32, group_name: &[u8], out: &mut OutQueue, now: Instant) -> PendingOp {
        match self {
            PeerAction::Fetch {
                group,
                load_id,
                key,
                ..
            } => {
                out.push_request(
                    &Request {
                        id,
                        kind: RequestKind::Fetch(KeyRef::new(group_name, &key)),
                    },
                    None,
                );
                PendingOp::Fetch {
                    group,
                    load_id,
                    key,
                    sent: Some(now),
                }
            }
            PeerAction::Store {
                key,
                value,
                ttl_ms,
                waiter,
                ..
            } => {
                out.push_request(
                    &Request {
                        id,
                        kind: RequestKind::Store {
                            key: KeyRef::new(group_name, &key),
                            ttl_ms,
                            value: &value,
                        },
                    },
                    Some(&value),
                );
                PendingOp::Forward { waiter }
            }
            PeerAction::Purge { key, waiter, .. } => {
                out.push_request(
                    &Request {
                        id,
                        kind: RequestKind::Purge(KeyRef::new(group_name, &key)),
                    },
                    None,
                );
                PendingOp::Forward { waiter }
            }
            PeerAction::Invalidate { key, write, .. } => {
                out.push_request(
                    &Request {
                        id,
                        kind: RequestKind::Invalidate(KeyRef::new(group_name, &key)),
                    },
                    None,
                );
                PendingOp::Invalidate { write }
            }
        }
    }

    /// What to remember about it when it could not even be sent.
    pub fn into_op(self) -> PendingOp {
        match self {
            PeerAction::Fetch {
                group,
                load_id,
                key,
                ..
            } => PendingOp::Fetch {
                group,
                load_id,
                key,
                sent: None,
            },
            PeerAction::Store { waiter, .. } | PeerAction::Purge { waiter, .. } => {
                PendingOp::Forward { waiter }
            }
            PeerAction::Invalidate { write, .. } => PendingOp::Invalidate { write },
        }
    }

    /// Whether it is a client's write forwarded to the owner, whose answer waits for
    /// the owner's own round of INVALIDATEs (so it gets a longer deadline).
    pub fn is_forwarded_write(&self) -> bool {
        matches!(self, PeerAction::Store { .. } | PeerAction::Purge { .. })
    }

    /// The group index.
    pub fn group(&self) -> usize {
        match self {
            PeerAction::Fetch { group, .. }
            | PeerAction::Store { group, .. }
            | PeerAction::Purge { group, .. }
            | PeerAction::Invalidate { group, .. } => *group as usize,
        }
    }
}

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
    /// Shard effects waiting to be carried out.
    pub effects: Vec<Effect<Waiter>>,
    /// Replies for this core's connections produced while another one was borrowed.
    pub later: Vec<(Waiter, Reply)>,
    /// Requests for peers, sent by the core at the end of the step.
    pub peer_actions: Vec<PeerAction>,
    /// Connections with output to write before sleeping.
    pub dirty: Vec<usize>,
    /// The time of this loop turn.
    pub now: Instant,
    /// Shutting down: no more reading.
    pub draining: bool,
    /// State of the hot-cache sampling generator.
    pub rng: u64,
    /// Writes this node applied as the key's owner, each waiting for every other
    /// member to acknowledge its INVALIDATE before the writer is answered.
    pub writes: slab::Slab<PendingWrite>,
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

/// The connection whose frames are being handled: replies to it go straight to its queue.
pub struct Current<'a> {
    token: usize,
    gen: u32,
    out: &'a mut OutQueue,
    pending: &'a mut usize,
    /// The membership the connection claimed (see HELLO).
    member: &'a mut MemberClaim,
    /// Set by a SHARD that moves the connection: decoding stops after it.
    handoff: &'a mut Option<usize>,
}

impl Ctx {
    /// Decodes and handles every whole frame buffered on `conn`.
    pub fn handle_frames(&mut self, token: usize, conn: &mut Conn) {
        let Conn {
            rbuf,
            out,
            pending,
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
            member,
            handoff,
        };
        loop {
            if super::conn::backpressured(cur.out.len(), *cur.pending) {
                break; // the rest waits in rbuf until the client reads (core::read_conn)
            }
            if cur.handoff.is_some() {
                break; // the rest is decoded by the core the connection moves to
            }
            match rbuf.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Request(req))) => {
                    self.stats.node.requests.inc();
                    *cur.pending += 1;
                    self.handle_request(req, &mut cur);
                }
                Ok(Some(Frame::Response(r))) => {
                    self.stats.node.protocol_errors.inc();
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
                    break;
                }
                Err(e) => {
                    self.stats.node.protocol_errors.inc();
                    let msg = e.error.to_string();
                    cur.out.push_response(
                        &Response::error(e.request_id, e.opcode, e.error.status(), &msg),
                        None,
                    );
                    if e.error.is_fatal() {
                        *closing = true;
                        break;
                    }
                }
            }
        }
    }

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
            let refusal = if !self.is_member(cur.member) {
                Some(FORBIDDEN_MESSAGE)
            } else if self.shared.cluster_secret.is_some() && !cur.member.auth.proven {
                self.unproven_peer_op(cur.member);
                Some(UNPROVEN_MESSAGE)
            } else {
                None
            };
            if let Some(message) = refusal {
                self.stats.node.peer_ops_refused.inc();
                let resp = Response::error(req.id, w.opcode, Status::Forbidden, message);
                reply_now(cur, &resp);
                return;
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
            RequestKind::Ping(payload) => reply_now(
                cur,
                &Response {
                    id: req.id,
                    opcode: w.opcode,
                    status: Status::Ok,
                    body: ResponseBody::Pong(payload),
                },
            ),
            RequestKind::Shard { core } => self.shard_request(req.id, w.opcode, core, cur),
            RequestKind::Stats => {
                let snapshot = self.shared.registry.snapshot();
                let body = StatsList::build(snapshot.iter().map(|(n, v)| (n.as_str(), *v)));
                let resp = match StatsList::parse(&body) {
                    Some(list) => Response {
                        id: req.id,
                        opcode: w.opcode,
                        status: Status::Ok,
                        body: ResponseBody::Stats(list),
                    },
                    None => {
                        Response::error(req.id, w.opcode, Status::Error, "stats encoding failed")
                    }
                };
                reply_now(cur, &resp);
            }
            RequestKind::Hello {
                node_id,
                ring_fingerprint,
            } => {
                if ring_fingerprint != 0 {
                    // It speaks as a member: remember the claim, check it now and
                    // again whenever our ring changes.
                    // A new claim starts over: its peer operations need a new proof.
                    *cur.member = MemberClaim {
                        id: Some(node_id.into()),
                        confirmed_under: 0,
                        auth: Default::default(),
                    };
                    if !self.is_member(cur.member) {
                        self.reject_member_hello(node_id);
                    }
                }
                let ring = &self.topology.ring;
                if ring_fingerprint != 0 && ring_fingerprint != ring.fingerprint() {
                    self.stats.node.ring_mismatches.inc();
                    let now_ms = self
                        .now
                        .saturating_duration_since(self.shared.registry.started)
                        .as_millis() as u64;
                    if let Some(suppressed) = self.shared.hello_mismatches.check(now_ms) {
                        log::warn!(
                            "{} says hello with ring fingerprint {ring_fingerprint:016x}, ours is {:016x}: \
                             the member lists differ (requests still work; FETCH is never forwarded); \
                             {suppressed} more such HELLOs since the last report",
                            String::from_utf8_lossy(node_id),
                            ring.fingerprint()
                        );
                    }
                }
                let members = MemberList::build(ring.members());
                let resp = match MemberList::parse_prefix(&members) {
                    Some((list, _)) => Response {
                        id: req.id,
                        opcode: w.opcode,
                        status: Status::Ok,
                        body: ResponseBody::Hello(HelloInfo {
                            node_id: self.topology.self_name().as_bytes(),
                            ring_fingerprint: ring.fingerprint(),
                            vnodes: ring.vnodes(),
                            members: list,
                        }),
                    },
                    None => Response::error(
                        req.id,
                        w.opcode,
                        Status::Error,
                        "member list encoding failed",
                    ),
                };
                reply_now(cur, &resp);
            }
            RequestKind::Challenge { nonce } => {
                let resp = self.challenge(nonce, cur.member);
                let resp = match &resp {
                    Ok(ours) => Response {
                        id: req.id,
                        opcode: w.opcode,
                        status: Status::Ok,
                        body: ResponseBody::Nonce(ours),
                    },
                    Err((status, message)) => Response::error(req.id, w.opcode, *status, message),
                };
                reply_now(cur, &resp);
            }
            RequestKind::Auth { proof } => {
                let resp = self.auth(proof, cur.member);
                let resp = match &resp {
                    Ok(ours) => Response {
                        id: req.id,
                        opcode: w.opcode,
                        status: Status::Ok,
                        body: ResponseBody::Proof(ours),
                    },
                    Err((status, message)) => Response::error(req.id, w.opcode, *status, message),
                };
                reply_now(cur, &resp);
            }
        }
    }

    /// Answers a CHALLENGE: a fresh nonce of ours, kept on the connection for one
    /// AUTH. Refused when this node has no cluster secret, so a member that has one
    /// learns at once that the two disagree.
    fn challenge(
        &mut self,
        theirs: &[u8],
        claim: &mut MemberClaim,
    ) -> Result<Nonce, (Status, String)> {
        if self.shared.cluster_secret.is_none() {
            self.no_secret_handshake(claim);
            return Err((Status::Forbidden, NO_SECRET_MESSAGE.into()));
        }
        let theirs: Nonce = theirs.try_into().map_err(|_| {
            (
                Status::BadRequest,
                "CHALLENGE nonce is not 16 bytes".to_string(),
            )
        })?;
        let ours = fresh_nonce().map_err(|e| (Status::Error, e))?;
        claim.auth.challenged(theirs, ours);
        Ok(ours)
    }

    /// Checks an AUTH: the proof must be the HMAC, under our secret, of the node id
    /// of this connection's member HELLO and the nonces of its last CHALLENGE. The
    /// challenge is used up whatever the outcome, so a proof cannot be replayed or
    /// guessed twice against one nonce.
    fn auth(&mut self, proof: &[u8], claim: &mut MemberClaim) -> Result<Proof, (Status, String)> {
        let shared = Arc::clone(&self.shared);
        let Some(secret) = shared.cluster_secret.as_ref() else {
            self.no_secret_handshake(claim);
            return Err((Status::Forbidden, NO_SECRET_MESSAGE.into()));
        };
        let challenge = claim.auth.take_challenge();
        claim.auth.proven = false;
        let Some((theirs, ours)) = challenge else {
            self.stats.node.peer_auth_failures.inc();
            return Err((
                Status::Forbidden,
                "AUTH needs a CHALLENGE answered on this connection first (each allows one AUTH)"
                    .into(),
            ));
        };
        if !self.is_member(claim) {
            self.stats.node.peer_auth_failures.inc();
            return Err((Status::Forbidden, FORBIDDEN_MESSAGE.into()));
        }
        let id: &[u8] = claim.id.as_deref().unwrap_or_default();
        if !secret.verify_initiator(id, &theirs, &ours, proof) {
            self.stats.node.peer_auth_failures.inc();
            if let Some(suppressed) = self.shared.peer_auth_wrong.check(self.now_ms()) {
                log::warn!(
                    "{:?} claims to be a member but its proof of the cluster secret is wrong: \
                     its --cluster-secret-file differs from ours (or it is not one of ours); \
                     its peer operations are refused; {suppressed} more such failures since the last report",
                    String::from_utf8_lossy(id)
                );
            }
            return Err((
                Status::Forbidden,
                "the proof of the cluster secret is wrong".into(),
            ));
        }
        claim.auth.proven = true;
        Ok(secret.responder_proof(id, &theirs, &ours))
    }

    /// A member sent a peer operation without proving the cluster secret.
    fn unproven_peer_op(&self, claim: &MemberClaim) {
        self.stats.node.peer_auth_failures.inc();
        if let Some(suppressed) = self.shared.peer_auth_failures.check(self.now_ms()) {
            log::warn!(
                "member {:?} sent peer operations without proving the cluster secret: it has no \
                 --cluster-secret-file (or runs an older version); they are refused with FORBIDDEN; \
                 {suppressed} more such failures since the last report",
                String::from_utf8_lossy(claim.id.as_deref().unwrap_or_default())
            );
        }
    }

    /// A CHALLENGE or AUTH reached us, but we have no secret.
    fn no_secret_handshake(&self, claim: &MemberClaim) {
        self.stats.node.peer_auth_failures.inc();
        if let Some(suppressed) = self.shared.peer_auth_failures.check(self.now_ms()) {
            log::warn!(
                "{:?} offers to prove a cluster secret, but this node has no --cluster-secret-file: \
                 refused, so that member will not use this node; configure the same secret on \
                 every member; {suppressed} more such handshakes since the last report",
                String::from_utf8_lossy(claim.id.as_deref().unwrap_or_default())
            );
        }
    }

    fn now_ms(&self) -> u64 {
        self.now
            .saturating_duration_since(self.shared.registry.started)
            .as_millis() as u64
    }

    /// SHARD: answers with the node's core count and the core that serves the
    /// connection from the next frame on, and marks the connection for hand-over if
    /// that is another core. A move needs the connection quiet (no other request in
    /// flight), since answers to in-flight requests are addressed to this core.
    fn shard_request(&mut self, id: u32, opcode: u8, core: u16, cur: &mut Current<'_>) {
        let threads = self.shared.threads;
        let stay = core == SHARD_QUERY || core as usize == self.id;
        let refusal = if stay {
            None
        } else if core as usize >= threads {
            Some(format!(
                "SHARD to core {core}: this node runs {threads} cores (0 to {})",
                threads - 1
            ))
        } else if *cur.pending > 1 {
            Some(format!(
                "SHARD must be the only request in flight on its connection ({} others are)",
                *cur.pending - 1
            ))
        } else {
            None
        };
        if let Some(why) = refusal {
            let resp = Response::error(id, opcode, Status::BadRequest, &why);
            return reply_now(cur, &resp);
        }
        let serving = if stay { self.id } else { core as usize };
        let ok = Response {
            id,
            opcode,
            status: Status::Ok,
            body: ResponseBody::Shard {
                threads: threads as u16,
                core: serving as u16,
            },
        };
        reply_now(cur, &ok);
        if !stay {
            *cur.handoff = Some(serving);
        }
    }

    /// Routes a keyed request to the core whose shard holds the key.
    fn key_request(&mut self, k: KeyRef<'_>, op: KeyOp, w: Waiter, cur: &mut Current<'_>) {
        let Some(g) = self.shared.group(k.group) else {
            let msg = format!(
                "no group named `{}` on this server",
                String::from_utf8_lossy(k.group)
            );
            reply_now(
                cur,
                &Response::error(w.req_id, w.opcode, Status::UnknownGroup, &msg),
            );
            return;
        };
        let shard = shard_of(k.key, self.shared.threads);
        if shard == self.id {
            self.apply_key_op(g, k.key, op, w);
            self.drain_effects(Some(cur));
        } else {
            self.stats.node.core_hops.inc();
            self.outboxes[shard].push_key(g as u32, k.key, op, w);
        }
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
            KeyOp::Get => {
                // The owner matters only on a miss: a hit costs no ring lookup.
                let topology = &self.topology;
                let via_peer = || matches!(topology.owner(key), Owner::Remote(_));
                self.shard.get(now, g, key, w, via_peer, &mut self.effects);
                return;
            }
            KeyOp::Fetch => {
                // Never forwarded. If we do not own the key, a load's result becomes a
                // hot copy only (decided when it completes).
                self.stats.groups[g].server_requests.inc();
                self.shard.get(now, g, key, w, || false, &mut self.effects);
                return;
            }
            KeyOp::Set { value, ttl } => match self.topology.owner(key) {
                Owner::Local => {
                    let reply = self.shard.set(now, g, key, value, ttl);
                    return self.invalidate_then_reply(g, key, w, reply);
                }
                Owner::Remote(member) => {
                    self.stats.groups[g].sets.inc();
                    self.shard.forget(g, key);
                    self.peer_actions.push(PeerAction::Store {
                        member,
                        group: g as u32,
                        key: key.into(),
                        value,
                        ttl_ms: ttl.map_or(0, |t| t.as_millis().max(1) as u64),
                        waiter: w,
                    });
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
                    self.peer_actions.push(PeerAction::Purge {
                        member,
                        group: g as u32,
                        key: key.into(),
                        waiter: w,
                    });
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
        };
        self.effects.push(Effect::Reply(w, reply));
    }

    /// Whether a connection's HELLO named one of our current members. Checked once
    /// per ring: the answer is kept with the ring's fingerprint.
    fn is_member(&self, claim: &mut MemberClaim) -> bool {
        let fingerprint = self.topology.ring.fingerprint();
        if claim.confirmed_under == fingerprint {
            return true;
        }
        match &claim.id {
            Some(id) if self.topology.is_other_member(id) => {
                claim.confirmed_under = fingerprint;
                true
            }
            _ => false,
        }
    }

    /// The answer to a STORE or PURGE of a key that `owner`, not we, owns.
    fn not_owner(&self, owner: usize) -> Reply {
        self.stats.node.peer_ops_refused.inc();
        Reply::error(
            Status::NotOwner,
            format!(
                "this node does not own the key under its ring; its owner is {}",
                self.topology.name(owner)
            ),
        )
    }

    /// A write of `key` was applied here, as its owner: tell every other member to
    /// drop its copies, and answer `w` with `reply` once all of them acknowledged
    /// (or failed to). Until then a GET through a member that has not yet dropped
    /// its copy may still see the old value, which is fine: the write is not
    /// acknowledged yet.
    fn invalidate_then_reply(&mut self, g: usize, key: &[u8], w: Waiter, reply: Reply) {
        let others = self.topology.ring.len().saturating_sub(1);
        if others == 0 {
            self.effects.push(Effect::Reply(w, reply));
            return;
        }
        let write = self.writes.insert(PendingWrite {
            waiter: w,
            reply,
            awaiting: others,
        });
        let topology = self.topology.clone();
        for member in topology.others() {
            self.peer_actions.push(PeerAction::Invalidate {
                member,
                group: g as u32,
                key: key.into(),
                write,
            });
        }
    }

    /// One member acknowledged (or failed to acknowledge) write `write`'s INVALIDATE.
    fn invalidate_settled(&mut self, write: usize, acknowledged: bool) {
        if !acknowledged {
            self.stats.node.invalidate_errors.inc();
        }
        let Some(pending) = self.writes.get_mut(write) else {
            return;
        };
        pending.awaiting = pending.awaiting.saturating_sub(1);
        if pending.awaiting == 0 {
            let done = self.writes.remove(write);
            self.effects.push(Effect::Reply(done.waiter, done.reply));
        }
    }

    /// A HELLO spoke as a member (it sent a ring fingerprint) but its node id is not
    /// one of our members: the connection stays a client connection.
    fn reject_member_hello(&self, node_id: &[u8]) {
        self.stats.node.hello_rejected.inc();
        let now_ms = self
            .now
            .saturating_duration_since(self.shared.registry.started)
            .as_millis() as u64;
        if let Some(suppressed) = self.shared.hello_rejections.check(now_ms) {
            log::warn!(
                "a HELLO with a ring fingerprint names {:?}, which is not one of our members: \
                 peer operations on that connection will be refused with FORBIDDEN \
                 (a member missing from our list, or a client posing as one); \
                 {suppressed} more such HELLOs since the last report",
                String::from_utf8_lossy(node_id)
            );
        }
    }

    /// Carries out what the shard asked for (which may ask for more).
    pub fn drain_effects(&mut self, mut cur: Option<&mut Current<'_>>) {
        let mut batch = std::mem::take(&mut self.effects);
        while !batch.is_empty() {
            for e in batch.drain(..) {
                match e {
                    Effect::Reply(w, reply) => self.deliver(w, reply, cur.as_deref_mut()),
                    Effect::Load { group, id, key } => self.start_load(group, id, key),
                    Effect::Fetch { group, id, key } => match self.topology.owner(&key) {
                        Owner::Remote(member) => self.peer_actions.push(PeerAction::Fetch {
                            member,
                            group: group as u32,
                            load_id: id,
                            key,
                        }),
                        // The ring changed since the miss: this node owns the key now.
                        Owner::Local => {
                            self.shard
                                .fallback_local(self.now, group, id, &mut self.effects)
                        }
                    },
                }
            }
            std::mem::swap(&mut batch, &mut self.effects);
        }
        self.effects = batch;
    }

    fn deliver(&mut self, w: Waiter, reply: Reply, cur: Option<&mut Current<'_>>) {
        if w.core as usize != self.id {
            self.outboxes[w.core as usize].push_reply(w, reply);
            return;
        }
        match cur {
            Some(c) if c.token == w.token as usize && c.gen == w.conn_gen => {
                write_reply(c.out, &w, &reply);
                *c.pending = c.pending.saturating_sub(1);
            }
            _ => self.later.push((w, reply)),
        }
    }

    fn start_load(&mut self, group: usize, id: LoadId, key: Box<[u8]>) {
        let me = self.me.clone();
        let started = self.now;
        let done = Box::new(move |result| {
            me.send(Msg::LoadDone {
                group: group as u32,
                id,
                result,
                started,
            })
        });
        match &self.shared.groups[group].origin {
            Some(origin) => self.loader.submit(LoadJob {
                group,
                origin: origin.clone(),
                key,
                ctx: self.shared.load_ctx,
                done,
            }),
            None => done(Ok(None)),
        }
    }

    /// A request to a peer got no answer (peer down, timed out, connection lost).
    pub fn fail_peer_op(&mut self, op: PendingOp, why: &str) {
        match op {
            // The handshake and probes are the connection's business (core/peers.rs).
            PendingOp::Hello | PendingOp::Challenge | PendingOp::Auth | PendingOp::Probe => {}
            PendingOp::Fetch {
                group,
                load_id,
                sent,
                ..
            } => {
                let g = group as usize;
                self.observe_fetch(g, sent);
                self.stats.groups[g].peer_errors.inc();
                log::debug!("peer fetch failed ({why}); loading locally");
                self.shard
                    .fallback_local(self.now, g, load_id, &mut self.effects);
            }
            PendingOp::Forward { waiter } => {
                let msg = format!("the key's owner did not answer: {why}");
                self.effects.push(Effect::Reply(
                    waiter,
                    Reply::error(Status::Unavailable, msg),
                ));
            }
            PendingOp::Invalidate { write } => self.invalidate_settled(write, false),
        }
        self.drain_effects(None);
    }

    /// A peer answered request `op` with `r`.
    pub fn on_peer_response(
        &mut self,
        op: PendingOp,
        r: &Response<'_>,
        peer: &str,
        mismatch_logged: &mut bool,
    ) {
        match op {
            PendingOp::Hello => {
                if let ResponseBody::Hello(info) = r.body {
                    let ours = self.topology.ring.fingerprint();
                    if info.ring_fingerprint != ours {
                        self.stats.node.ring_mismatches.inc();
                        if !*mismatch_logged {
                            log::warn!(
                                "peer {peer} has ring fingerprint {:016x} ({} members), ours is {ours:016x} ({} members): \
                                 member lists differ",
                                info.ring_fingerprint,
                                info.members.len(),
                                self.topology.ring.len()
                            );
                            *mismatch_logged = true;
                        }
                    } else {
                        *mismatch_logged = false;
                    }
                }
            }
            PendingOp::Fetch {
                group,
                load_id,
                key,
                sent,
            } => {
                let g = group as usize;
                self.observe_fetch(g, sent);
                let outcome = match (r.status, r.body) {
                    (Status::Ok, ResponseBody::Value { ttl_ms, value }) => FetchOutcome::Value {
                        value: ByteView::copy_from_slice(value),
                        ttl_ms,
                    },
                    (Status::NotFound, _) => FetchOutcome::NotFound,
                    (Status::Unavailable | Status::Forbidden, _) => {
                        // The owner is shutting down or full, or does not take us for a
                        // member (its list lacks us): as good as unreachable.
                        if r.status == Status::Forbidden {
                            self.log_refusal(peer, r);
                        }
                        let why = format!("peer {peer} is unavailable");
                        // Timed above already: the answer came.
                        self.fail_peer_op(
                            PendingOp::Fetch {
                                group,
                                load_id,
                                key,
                                sent: None,
                            },
                            &why,
                        );
                        return;
                    }
                    (status, body) => FetchOutcome::Error {
                        status: if status == Status::Ok {
                            Status::Error
                        } else {
                            status
                        },
                        message: match body {
                            ResponseBody::Message(m) => {
                                format!("owner {peer}: {}", String::from_utf8_lossy(m))
                            }
                            _ => format!("owner {peer} answered FETCH with an unexpected body"),
                        },
                    },
                };
                if matches!(outcome, FetchOutcome::Value { .. } | FetchOutcome::NotFound) {
                    self.stats.groups[g].peer_loads.inc();
                }
                let promote = self.sample_promote();
                self.shard
                    .on_fetch_done(self.now, g, load_id, outcome, promote, &mut self.effects);
                self.drain_effects(None);
            }
            PendingOp::Forward { waiter } => {
                let reply = match (r.status, r.body) {
                    (Status::Forbidden, _) => {
                        self.log_refusal(peer, r);
                        Reply::error(
                            Status::Unavailable,
                            format!("the key's owner {peer} does not take this node for a member"),
                        )
                    }
                    (Status::Ok, ResponseBody::Deleted(removed)) => Reply::Deleted(removed),
                    (Status::Ok, _) => Reply::Stored,
                    (Status::NotFound, _) => Reply::NotFound,
                    (status, ResponseBody::Message(m)) => Reply::error(
                        status,
                        format!("owner {peer}: {}", String::from_utf8_lossy(m)),
                    ),
                    (status, _) => Reply::error(status, format!("owner {peer} answered {status}")),
                };
                self.effects.push(Effect::Reply(waiter, reply));
                self.drain_effects(None);
            }
            // Handled by core/peers.rs before they get here.
            PendingOp::Challenge | PendingOp::Auth | PendingOp::Probe => {}
            PendingOp::Invalidate { write } => {
                if r.status == Status::Forbidden {
                    self.log_refusal(peer, r);
                }
                self.invalidate_settled(write, r.status == Status::Ok);
                self.drain_effects(None);
            }
        }
    }

    /// Logs (rate-limited) that `peer` refused one of our peer operations.
    fn log_refusal(&self, peer: &str, r: &Response<'_>) {
        let now_ms = self
            .now
            .saturating_duration_since(self.shared.registry.started)
            .as_millis() as u64;
        if let Some(suppressed) = self.shared.peer_refusals.check(now_ms) {
            let why = match r.body {
                ResponseBody::Message(m) => String::from_utf8_lossy(m).into_owned(),
                _ => String::new(),
            };
            log::warn!(
                "peer {peer} refused a peer operation ({}: {why}): is this node in its member list, \
                 with the same --cluster-secret-file? \
                 {suppressed} more refusals since the last report",
                r.status
            );
        }
    }

    /// Records how long a FETCH that was sent at `sent` took (nothing if it never left).
    fn observe_fetch(&self, g: usize, sent: Option<Instant>) {
        if let Some(sent) = sent {
            self.stats.groups[g]
                .peer_fetch
                .observe(self.now.saturating_duration_since(sent));
        }
    }

    /// Whether a value fetched from a peer goes into the hot cache (xorshift64*).
    fn sample_promote(&mut self) -> bool {
        let ratio = self.shared.hot_promote_ratio;
        if ratio <= 0.0 {
            return false;
        }
        if ratio >= 1.0 {
            return true;
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 11) as f64 / (1u64 << 53) as f64) < ratio
    }
}

/// The message of a FORBIDDEN answer (docs/protocol.md quotes it).
pub const FORBIDDEN_MESSAGE: &str =
    "peer operations need a HELLO from a cluster member on this connection";

/// The FORBIDDEN answer to a member's peer operation on a node with a cluster secret,
/// before the member proved it (docs/protocol.md quotes it).
pub const UNPROVEN_MESSAGE: &str =
    "peer operations need a proof of the cluster secret (CHALLENGE, AUTH) on this connection";

/// The FORBIDDEN answer to CHALLENGE or AUTH on a node without a cluster secret.
pub const NO_SECRET_MESSAGE: &str =
    "this node has no cluster secret: its peer operations are unauthenticated";

fn reply_now(cur: &mut Current<'_>, resp: &Response<'_>) {
    cur.out.push_response(resp, None);
    *cur.pending = cur.pending.saturating_sub(1);
}

/// Encodes `reply` for waiter `w` onto a connection's output.
pub fn write_reply(out: &mut OutQueue, w: &Waiter, reply: &Reply) {
    let (status, body, value) = match reply {
        Reply::Value { value, ttl_ms } => (
            Status::Ok,
            ResponseBody::Value {
                ttl_ms: *ttl_ms,
                value,
            },
            Some(value),
        ),
        Reply::NotFound => (Status::NotFound, ResponseBody::Empty, None),
        Reply::Stored | Reply::Invalidated => (Status::Ok, ResponseBody::Empty, None),
        Reply::Deleted(removed) => (Status::Ok, ResponseBody::Deleted(*removed), None),
        Reply::Error { status, message } => {
            (*status, ResponseBody::Message(message.as_bytes()), None)
        }
    };
    out.push_response(
        &Response {
            id: w.req_id,
            opcode: w.opcode,
            status,
            body,
        },
        value,
    );
}
