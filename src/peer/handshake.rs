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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::health::PeerHealth;
    use crate::peer::PeerRequest;
    use crate::value::ByteView;
    use groupcached_protocol::{decode, Frame, Limits};
    use std::sync::Arc;
    use std::time::Duration;

    use crate::net::Sink;

    fn conn() -> PeerConn {
        let addr = "127.0.0.1:1".parse().unwrap();
        let health = Arc::new(PeerHealth::default());
        PeerConn::new(
            "b:1".into(),
            addr,
            Limits::default(),
            Instant::now(),
            health,
        )
    }

    /// The requests queued on `out`, as (opcode, request id).
    fn requests(out: &mut crate::net::OutQueue) -> Vec<(u8, u32)> {
        let mut sink = Sink(Vec::new());
        out.write_to(&mut sink).unwrap();
        let mut seen = Vec::new();
        let mut pos = 0;
        while pos < sink.0.len() {
            let (frame, used) = decode(&sink.0[pos..], &Limits::default()).unwrap().unwrap();
            match frame {
                Frame::Request(r) => seen.push((r.kind.opcode() as u8, r.id)),
                other => panic!("{other:?}"),
            }
            pos += used;
        }
        seen
    }

    fn secret() -> ClusterSecret {
        ClusterSecret::from_bytes(b"a secret of the cluster").unwrap()
    }

    #[test]
    fn without_a_secret_only_hello_is_sent_and_requests_flow_at_once() {
        let mut c = conn();
        let now = Instant::now();
        c.start_handshake("a:1", 7, false, now).unwrap();
        assert_eq!(c.handshake, Handshake::Open);
        c.enqueue(
            PeerRequest::Purge {
                member: 1,
                group: 0,
                key: b"k".as_slice().into(),
                waiter: crate::net::Waiter {
                    core: 0,
                    token: 0,
                    conn_gen: 0,
                    req_id: 9,
                    opcode: 3,
                },
            },
            b"g",
            now,
            now + Duration::from_secs(1),
        );
        let sent = requests(&mut c.out);
        assert_eq!(sent.len(), 2, "HELLO, then the PURGE: {sent:?}");
        assert!(c.held.is_empty());
        assert!(c
            .on_handshake_answer(HandshakeAnswer::Nonce([0; 16]), None, now)
            .is_err_and(|e| matches!(e, HandshakeError::Unrequested)));
    }

    #[test]
    fn with_a_secret_requests_wait_until_the_member_proves_it() {
        let s = secret();
        let mut c = conn();
        let now = Instant::now();
        c.start_handshake("a:1", 7, true, now).unwrap();
        let Handshake::Challenged { ours } = c.handshake else {
            panic!("{:?}", c.handshake);
        };
        c.enqueue(
            PeerRequest::Store {
                member: 1,
                group: 0,
                key: b"k".as_slice().into(),
                value: ByteView::from_vec(vec![1; 5000]),
                ttl_ms: 0,
                waiter: crate::net::Waiter {
                    core: 0,
                    token: 0,
                    conn_gen: 0,
                    req_id: 9,
                    opcode: 2,
                },
            },
            b"g",
            now,
            now + Duration::from_secs(1),
        );
        assert_eq!(requests(&mut c.out).len(), 2, "HELLO and CHALLENGE only");
        assert!(!c.held.is_empty(), "the STORE waits");

        let theirs = [9u8; 16];
        let step = c.on_handshake_answer(HandshakeAnswer::Nonce(theirs), Some(&s), now);
        assert_eq!(step.unwrap(), HandshakeStep::Proving);
        assert_eq!(requests(&mut c.out).len(), 1, "AUTH");
        let wrong = c.on_handshake_answer(HandshakeAnswer::Proof([0; 32]), Some(&s), now);
        assert!(matches!(wrong, Err(HandshakeError::WrongProof { .. })));

        // The same exchange again, answered right this time.
        let mut c = conn();
        c.start_handshake("a:1", 7, true, now).unwrap();
        let Handshake::Challenged { ours: ours2 } = c.handshake else {
            panic!("{:?}", c.handshake);
        };
        assert_ne!(ours, ours2, "every connection has a fresh nonce");
        c.on_handshake_answer(HandshakeAnswer::Nonce(theirs), Some(&s), now)
            .unwrap();
        let proof = s.responder_proof(b"a:1", &ours2, &theirs);
        let step = c.on_handshake_answer(HandshakeAnswer::Proof(proof), Some(&s), now);
        assert_eq!(step.unwrap(), HandshakeStep::Proven);
        assert_eq!(c.handshake, Handshake::Open);
    }

    #[test]
    fn refusals_say_which_step_was_refused() {
        let s = secret();
        let now = Instant::now();
        let refusal = || {
            HandshakeAnswer::of(&Response::error(
                1,
                0x0b,
                Status::Forbidden,
                "no secret here",
            ))
        };
        let mut c = conn();
        c.start_handshake("a:1", 7, true, now).unwrap();
        let e = c.on_handshake_answer(refusal(), Some(&s), now).unwrap_err();
        assert!(matches!(e, HandshakeError::Refused(_)), "{e:?}");
        assert!(e
            .to_string()
            .contains("refused our cluster-secret handshake"));
        assert!(e.to_string().contains("no secret here"), "{e}");

        let mut c = conn();
        c.start_handshake("a:1", 7, true, now).unwrap();
        c.on_handshake_answer(HandshakeAnswer::Nonce([1; 16]), Some(&s), now)
            .unwrap();
        let e = c.on_handshake_answer(refusal(), Some(&s), now).unwrap_err();
        assert!(matches!(e, HandshakeError::ProofRejected(_)), "{e:?}");
    }
}
