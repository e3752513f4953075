//! The requests that say who is on a connection and how it is served, answered by
//! the core that reads them: HELLO (membership claims), CHALLENGE and AUTH (the
//! cluster secret, receiving side), SHARD (moving a connection to another core) and
//! STATS. Also who may send peer operations at all.

use std::fmt::Write as _;
use std::sync::Arc;

use groupcached_protocol::{HelloInfo, Response, ResponseBody, StatsList, Status, SHARD_QUERY};

use super::conn::MemberClaim;
use super::routing::{Ctx, Current};
use crate::peer::auth::{fresh_nonce, Nonce, Proof};

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

/// Why a CHALLENGE or AUTH is refused. Each has a fixed status and message.
#[derive(Debug, Clone, Copy)]
enum HandshakeRefusal {
    /// This node has no cluster secret.
    NoSecret,
    /// The CHALLENGE nonce has the wrong length.
    BadNonce,
    /// No randomness for our nonce (logged where it happened).
    NoRandomness,
    /// AUTH without an unused CHALLENGE before it.
    NoChallenge,
    /// AUTH on a connection whose HELLO named no member of ours.
    NotMember,
    /// The proof is wrong.
    WrongProof,
}

impl HandshakeRefusal {
    fn status(self) -> Status {
        match self {
            HandshakeRefusal::BadNonce => Status::BadRequest,
            HandshakeRefusal::NoRandomness => Status::Error,
            _ => Status::Forbidden,
        }
    }

    fn message(self) -> &'static str {
        match self {
            HandshakeRefusal::NoSecret => NO_SECRET_MESSAGE,
            HandshakeRefusal::BadNonce => "CHALLENGE nonce is not 16 bytes",
            HandshakeRefusal::NoRandomness => "no randomness for a nonce",
            HandshakeRefusal::NoChallenge => {
                "AUTH needs a CHALLENGE answered on this connection first (each allows one AUTH)"
            }
            HandshakeRefusal::NotMember => FORBIDDEN_MESSAGE,
            HandshakeRefusal::WrongProof => "the proof of the cluster secret is wrong",
        }
    }

    fn response(self, id: u32, opcode: u8) -> Response<'static> {
        Response::error(id, opcode, self.status(), self.message())
    }
}

impl Ctx {
    /// Why a peer operation on a connection with `claim` is refused, if it is: its
    /// HELLO named no member of ours, or (with a cluster secret) it proved nothing.
    pub(super) fn peer_op_refusal(&self, claim: &mut MemberClaim) -> Option<&'static str> {
        if !self.is_member(claim) {
            Some(FORBIDDEN_MESSAGE)
        } else if self.shared.cluster_secret.is_some() && !claim.auth.proven {
            self.unproven_peer_op(claim);
            Some(UNPROVEN_MESSAGE)
        } else {
            None
        }
    }

    /// HELLO: a member's claim is remembered (and checked now and after every ring
    /// change); the answer is who we are and our member list.
    pub(super) fn hello(
        &mut self,
        id: u32,
        opcode: u8,
        node_id: &[u8],
        ring_fingerprint: u64,
        cur: &mut Current<'_>,
    ) {
        if ring_fingerprint != 0 {
            // It speaks as a member. A new claim starts over: its peer operations
            // need a new proof.
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
            if let Some(suppressed) = self.shared.hello_mismatches.check(self.now_ms()) {
                log::warn!(
                    "{} says hello with ring fingerprint {ring_fingerprint:016x}, ours is {:016x}: \
                     the member lists differ (requests still work; FETCH is never forwarded); \
                     {suppressed} more such HELLOs since the last report",
                    String::from_utf8_lossy(node_id),
                    ring.fingerprint()
                );
            }
        }
        // The member list was encoded once, with the ring.
        let resp = match self.topology.member_list() {
            Some(members) => Response {
                id,
                opcode,
                status: Status::Ok,
                body: ResponseBody::Hello(HelloInfo {
                    node_id: self.topology.self_name().as_bytes(),
                    ring_fingerprint: ring.fingerprint(),
                    vnodes: ring.vnodes(),
                    members,
                }),
            },
            None => Response::error(id, opcode, Status::Error, "member list encoding failed"),
        };
        cur.reply_now(&resp);
    }

    /// STATS: every counter, summed over cores. (A diagnostic request: it takes a
    /// snapshot, which allocates.)
    pub(super) fn stats_request(&mut self, id: u32, opcode: u8, cur: &mut Current<'_>) {
        let snapshot = self.shared.registry.snapshot();
        let body = StatsList::encode(snapshot.iter().map(|(n, v)| (n.as_str(), *v)));
        cur.reply_now(&Response {
            id,
            opcode,
            status: Status::Ok,
            body: ResponseBody::Stats(body.list()),
        });
    }

    /// Answers a CHALLENGE: a fresh nonce of ours, kept on the connection for one
    /// AUTH. Refused when this node has no cluster secret, so a member that has one
    /// learns at once that the two disagree.
    pub(super) fn challenge(&mut self, id: u32, opcode: u8, theirs: &[u8], cur: &mut Current<'_>) {
        let resp = match self.challenge_nonce(theirs, cur.member) {
            Ok(ours) => {
                return cur.reply_now(&Response {
                    id,
                    opcode,
                    status: Status::Ok,
                    body: ResponseBody::Nonce(&ours),
                })
            }
            Err(refusal) => refusal.response(id, opcode),
        };
        cur.reply_now(&resp);
    }

    fn challenge_nonce(
        &mut self,
        theirs: &[u8],
        claim: &mut MemberClaim,
    ) -> Result<Nonce, HandshakeRefusal> {
        if self.shared.cluster_secret.is_none() {
            self.no_secret_handshake(claim);
            return Err(HandshakeRefusal::NoSecret);
        }
        let theirs: Nonce = theirs.try_into().map_err(|_| HandshakeRefusal::BadNonce)?;
        let ours = fresh_nonce().map_err(|e| {
            log::error!("cannot answer a CHALLENGE: {e}");
            HandshakeRefusal::NoRandomness
        })?;
        claim.auth.challenged(theirs, ours);
        Ok(ours)
    }

    /// Checks an AUTH: the proof must be the HMAC, under our secret, of the node id
    /// of this connection's member HELLO and the nonces of its last CHALLENGE. The
    /// challenge is used up whatever the outcome, so a proof cannot be replayed or
    /// guessed twice against one nonce.
    pub(super) fn auth(&mut self, id: u32, opcode: u8, proof: &[u8], cur: &mut Current<'_>) {
        let resp = match self.check_proof(proof, cur.member) {
            Ok(ours) => {
                return cur.reply_now(&Response {
                    id,
                    opcode,
                    status: Status::Ok,
                    body: ResponseBody::Proof(&ours),
                })
            }
            Err(refusal) => refusal.response(id, opcode),
        };
        cur.reply_now(&resp);
    }

    fn check_proof(
        &mut self,
        proof: &[u8],
        claim: &mut MemberClaim,
    ) -> Result<Proof, HandshakeRefusal> {
        let shared = Arc::clone(&self.shared);
        let Some(secret) = shared.cluster_secret.as_ref() else {
            self.no_secret_handshake(claim);
            return Err(HandshakeRefusal::NoSecret);
        };
        let challenge = claim.auth.take_challenge();
        claim.auth.proven = false;
        let Some((theirs, ours)) = challenge else {
            self.stats.node.peer_auth_failures.inc();
            return Err(HandshakeRefusal::NoChallenge);
        };
        if !self.is_member(claim) {
            self.stats.node.peer_auth_failures.inc();
            return Err(HandshakeRefusal::NotMember);
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
            return Err(HandshakeRefusal::WrongProof);
        }
        claim.auth.proven = true;
        Ok(secret.responder_proof(id, &theirs, &ours))
    }

    /// SHARD: answers with the node's core count and the core that serves the
    /// connection from the next frame on, and marks the connection for hand-over if
    /// that is another core. A move needs the connection quiet (no other request in
    /// flight), since answers to in-flight requests are addressed to this core.
    pub(super) fn shard_request(&mut self, id: u32, opcode: u8, core: u16, cur: &mut Current<'_>) {
        let threads = self.shared.threads;
        let stay = core == SHARD_QUERY || core as usize == self.id;
        // A refusal names the numbers involved; it is rendered into the core's
        // reused message buffer, not a new string.
        self.scratch.clear();
        let _ = if stay {
            Ok(())
        } else if core as usize >= threads {
            write!(
                self.scratch,
                "SHARD to core {core}: this node runs {threads} cores (0 to {})",
                threads - 1
            )
        } else if *cur.pending > 1 {
            write!(
                self.scratch,
                "SHARD must be the only request in flight on its connection ({} others are)",
                *cur.pending - 1
            )
        } else {
            Ok(())
        };
        if !self.scratch.is_empty() {
            let resp = Response::error(id, opcode, Status::BadRequest, &self.scratch);
            return cur.reply_now(&resp);
        }
        let serving = if stay { self.id } else { core as usize };
        cur.reply_now(&Response {
            id,
            opcode,
            status: Status::Ok,
            body: ResponseBody::Shard {
                threads: threads as u16,
                core: serving as u16,
            },
        });
        if !stay {
            *cur.handoff = Some(serving);
        }
    }

    /// Whether a connection's HELLO named one of our current members. Checked once
    /// per ring: the answer is kept with the ring's fingerprint.
    pub(super) fn is_member(&self, claim: &mut MemberClaim) -> bool {
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

    /// A HELLO spoke as a member (it sent a ring fingerprint) but its node id is not
    /// one of our members: the connection stays a client connection.
    fn reject_member_hello(&self, node_id: &[u8]) {
        self.stats.node.hello_rejected.inc();
        if let Some(suppressed) = self.shared.hello_rejections.check(self.now_ms()) {
            log::warn!(
                "a HELLO with a ring fingerprint names {:?}, which is not one of our members: \
                 peer operations on that connection will be refused with FORBIDDEN \
                 (a member missing from our list, or a client posing as one); \
                 {suppressed} more such HELLOs since the last report",
                String::from_utf8_lossy(node_id)
            );
        }
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
}
