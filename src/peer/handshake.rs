//! The initiator's side of a peer connection's opening: HELLO with our member entry
//! and, with a cluster secret, CHALLENGE then AUTH (docs/protocol.md, "Proving the
//! cluster secret"). Peer requests queued meanwhile wait in [`PeerConn::held`].

use groupcached_protocol::{Request, RequestKind, Response, ResponseBody, Status};
use groupcached_protocol::{NONCE_LEN, PROOF_LEN};
use std::time::Instant;

use super::auth::{fresh_nonce, ClusterSecret, Nonce, Proof};
use super::error::{HandshakeError, NonceError, Refusal};
use super::pending::PendingOp;
use super::PeerConn;

/// Where the initiator's side of the cluster-secret handshake stands on one
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// Nothing to prove (no cluster secret), or proved: peer operations flow.
    Open,
    /// CHALLENGE sent with our nonce; waiting for the member's nonce.
    Challenged {
        /// Our nonce.
        ours: Nonce,
    },
    /// AUTH sent; waiting for the member's own proof.
    Proving {
        /// Our nonce.
        ours: Nonce,
        /// The member's nonce.
        theirs: Nonce,
    },
}

/// A member's answer to CHALLENGE or AUTH, copied out of the read buffer.
#[derive(Debug)]
pub enum HandshakeAnswer {
    /// Its nonce (CHALLENGE answered).
    Nonce(Nonce),
    /// Its proof (AUTH answered).
    Proof(Proof),
    /// Anything else: a refusal.
    Refused(Refusal),
}

impl HandshakeAnswer {
    /// Reads a handshake answer.
    pub fn of(r: &Response<'_>) -> HandshakeAnswer {
        match (r.status, r.body) {
            (Status::Ok, ResponseBody::Nonce(n)) if n.len() == NONCE_LEN => {
                let mut a = [0u8; NONCE_LEN];
                a.copy_from_slice(n);
                HandshakeAnswer::Nonce(a)
            }
            (Status::Ok, ResponseBody::Proof(p)) if p.len() == PROOF_LEN => {
                let mut a = [0u8; PROOF_LEN];
                a.copy_from_slice(p);
                HandshakeAnswer::Proof(a)
            }
            (status, body) => HandshakeAnswer::Refused(Refusal {
                status,
                message: match body {
                    ResponseBody::Message(m) => Some(String::from_utf8_lossy(m).into()),
                    _ => None,
                },
            }),
        }
    }
}

/// What an accepted handshake answer led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeStep {
    /// AUTH was queued; the member's proof is awaited.
    Proving,
    /// The member proved the secret: held requests may flow.
    Proven,
}

impl PeerConn {
    /// Queues what opens a new connection: HELLO naming us (`self_name`, with our
    /// ring's `fingerprint`) and, with a cluster secret, the CHALLENGE that starts
    /// the handshake. Each is due by `deadline`.
    pub fn start_handshake(
        &mut self,
        self_name: &str,
        fingerprint: u64,
        with_secret: bool,
        deadline: Instant,
    ) -> Result<(), NonceError> {
        self.hello_id = self_name.as_bytes().into();
        let id = self.pending.insert(PendingOp::Hello, deadline);
        let hello = Request {
            id,
            kind: RequestKind::Hello {
                node_id: &self.hello_id,
                ring_fingerprint: fingerprint,
            },
        };
        self.out.push_request(&hello, None);
        if with_secret {
            let ours = fresh_nonce()?;
            let id = self.pending.insert(PendingOp::Challenge, deadline);
            self.out.push_request(
                &Request {
                    id,
                    kind: RequestKind::Challenge { nonce: &ours },
                },
                None,
            );
            self.handshake = Handshake::Challenged { ours };
        }
        Ok(())
    }

    /// Carries the handshake one step further with the member's `answer`: sends
    /// AUTH (due by `deadline`) after its nonce, or checks its proof. `secret` is
    /// ours; without one we never start a handshake, so any answer is an error.
    pub fn on_handshake_answer(
        &mut self,
        answer: HandshakeAnswer,
        secret: Option<&ClusterSecret>,
        deadline: Instant,
    ) -> Result<HandshakeStep, HandshakeError> {
        let Some(secret) = secret else {
            return Err(HandshakeError::Unrequested);
        };
        match (self.handshake, answer) {
            (Handshake::Challenged { ours }, HandshakeAnswer::Nonce(theirs)) => {
                let proof = secret.initiator_proof(&self.hello_id, &ours, &theirs);
                let id = self.pending.insert(PendingOp::Auth, deadline);
                self.out.push_request(
                    &Request {
                        id,
                        kind: RequestKind::Auth { proof: &proof },
                    },
                    None,
                );
                self.handshake = Handshake::Proving { ours, theirs };
                Ok(HandshakeStep::Proving)
            }
            (Handshake::Proving { ours, theirs }, HandshakeAnswer::Proof(p)) => {
                if secret.verify_responder(&self.hello_id, &ours, &theirs, &p) {
                    self.handshake = Handshake::Open;
                    Ok(HandshakeStep::Proven)
                } else {
                    Err(HandshakeError::WrongProof { addr: self.addr })
                }
            }
            (Handshake::Challenged { .. }, HandshakeAnswer::Refused(r)) => {
                Err(HandshakeError::Refused(r))
            }
            (Handshake::Proving { .. }, HandshakeAnswer::Refused(r)) => {
                Err(HandshakeError::ProofRejected(r))
            }
            _ => Err(HandshakeError::OutOfOrder),
        }
    }
}
