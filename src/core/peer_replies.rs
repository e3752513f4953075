//! What a member's answer, or its failure to answer, means for the requests that
//! waited on it: a fetched value for the shard (sampled into the hot cache), a
//! forwarded write's answer for its client, an INVALIDATE's acknowledgement for the
//! write it belongs to, or a fallback to a local load. Everything is queued as
//! effects; nothing here touches a socket.

use std::borrow::Cow;
use std::time::Instant;

use groupcached_protocol::{Response, ResponseBody, Status};

use super::effects::Effect;
use super::routing::Ctx;
use crate::core::memcache::NON_NUMERIC_MESSAGE;
use crate::peer::pending::PendingOp;
use crate::peer::NoAnswer;
use crate::shard::{arith, FetchOutcome, MetaHit, Reply, WriteOutcome};
use crate::value::ByteView;
use groupcached_protocol::MutateMode;

/// The answer to a forwarded write whose owner does not take us for a member.
const NOT_A_MEMBER_THERE: &str = "the key's owner does not take this node for a member";
/// An owner's error answer that carried no message.
const OWNER_ERROR_WITHOUT_MESSAGE: &str = "the key's owner answered an error without a message";
/// An owner's answer to INCR/DECR whose value is not a number.
const OWNER_ANSWER_NOT_A_NUMBER: &str = "the key's owner answered INCR/DECR without a number";
/// An owner's answer to FETCH with a body FETCH does not have.
const UNEXPECTED_FETCH_BODY: &str = "the key's owner answered FETCH with an unexpected body";

impl Ctx {
    /// A request to a peer got no answer (peer down, timed out, connection lost).
    pub fn fail_peer_op(&mut self, op: PendingOp, why: NoAnswer) {
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
                self.fallback_local(g, load_id);
            }
            PendingOp::Forward { waiter } | PendingOp::Mutate { waiter, .. } => {
                let reply = Reply::error(Status::Unavailable, why.message());
                self.queue.push_back(Effect::Reply(waiter, reply));
            }
            PendingOp::Invalidate { write } => self.invalidate_settled(write, false),
        }
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
                item,
            } => {
                let g = group as usize;
                self.observe_fetch(g, sent);
                let mut meta = None;
                let outcome = match (r.status, r.body) {
                    (Status::Ok, ResponseBody::Value { ttl_ms, value }) => FetchOutcome::Value {
                        value: ByteView::copy_from_slice(value),
                        ttl_ms,
                    },
                    (
                        Status::Ok,
                        ResponseBody::Item {
                            ttl_ms,
                            flags,
                            cas,
                            value,
                        },
                    ) => {
                        meta = Some(crate::shard::lru::Meta { flags, cas });
                        FetchOutcome::Value {
                            value: ByteView::copy_from_slice(value),
                            ttl_ms,
                        }
                    }
                    (Status::NotFound, _) => FetchOutcome::NotFound,
                    (Status::Unavailable | Status::Forbidden, _) => {
                        // The owner is shutting down or full, or does not take us for a
                        // member (its list lacks us): as good as unreachable.
                        if r.status == Status::Forbidden {
                            self.log_refusal(peer, r);
                        }
                        // Timed above already: the answer came.
                        let unsent = PendingOp::Fetch {
                            group,
                            load_id,
                            key,
                            sent: None,
                            item,
                        };
                        return self.fail_peer_op(unsent, NoAnswer::Refused);
                    }
                    (status, body) => FetchOutcome::Error {
                        status: if status == Status::Ok {
                            Status::Error
                        } else {
                            status
                        },
                        message: match body {
                            ResponseBody::Message(m) => relayed(peer, m).into_owned(),
                            _ => UNEXPECTED_FETCH_BODY.to_string(),
                        },
                    },
                };
                if matches!(outcome, FetchOutcome::Value { .. } | FetchOutcome::NotFound) {
                    self.stats.groups[g].peer_loads.inc();
                }
                let promote = self.sample_promote();
                self.shard.on_fetch_done_meta(
                    self.now,
                    g,
                    load_id,
                    outcome,
                    meta,
                    promote,
                    &mut self.shard_out,
                );
                self.mc_attach(meta);
                self.take_shard_effects();
            }
            PendingOp::Forward { waiter } => {
                let reply = match (r.status, r.body) {
                    (Status::Forbidden, _) => {
                        self.log_refusal(peer, r);
                        Reply::error(Status::Unavailable, NOT_A_MEMBER_THERE)
                    }
                    (Status::Ok, ResponseBody::Deleted(removed)) => Reply::Deleted(removed),
                    (Status::Ok, _) => Reply::Stored,
                    (Status::NotFound, _) => Reply::NotFound,
                    (status, ResponseBody::Message(m)) => Reply::error(status, relayed(peer, m)),
                    (status, _) => Reply::error(status, OWNER_ERROR_WITHOUT_MESSAGE),
                };
                self.queue.push_back(Effect::Reply(waiter, reply));
            }
            PendingOp::Mutate {
                waiter,
                mode,
                reread,
            } => {
                if r.status == Status::Forbidden {
                    self.log_refusal(peer, r);
                }
                if let (Status::NotFound, Some((g, key))) = (r.status, reread) {
                    // A gat of a key the owner does not hold: a read-through get.
                    return self.mc_read(g as usize, &key, waiter);
                }
                let reply = self.mutate_answer(mode, r, peer);
                self.queue.push_back(Effect::Reply(waiter, reply));
            }
            // Handled by core/peers.rs before they get here.
            PendingOp::Challenge | PendingOp::Auth | PendingOp::Probe => {}
            PendingOp::Invalidate { write } => {
                if r.status == Status::Forbidden {
                    self.log_refusal(peer, r);
                }
                self.invalidate_settled(write, r.status == Status::Ok);
            }
        }
    }

    /// The owner's answer `r` to a memcached write forwarded as MUTATE `mode`, as the
    /// write's outcome for the client (memcached's NOT_STORED for a REPLACE, APPEND
    /// or PREPEND of an absent key, which MUTATE calls NOT_FOUND).
    fn mutate_answer(&self, mode: MutateMode, r: &Response<'_>, peer: &str) -> Reply {
        let write = Reply::Write;
        match (r.status, r.body) {
            (Status::Ok, ResponseBody::Mutated { flags, cas, value }) => match mode {
                MutateMode::Incr { .. } | MutateMode::Decr { .. } => match arith::parse(value) {
                    Some(value) => write(WriteOutcome::Number { value, cas }),
                    None => Reply::error(Status::Error, OWNER_ANSWER_NOT_A_NUMBER),
                },
                MutateMode::Touch => Reply::Item(MetaHit {
                    value: ByteView::copy_from_slice(value),
                    ttl_ms: 0,
                    flags,
                    cas,
                }),
                _ => write(WriteOutcome::Stored { cas }),
            },
            (Status::NotStored, _) => write(WriteOutcome::NotStored),
            (Status::Exists, _) => write(WriteOutcome::Exists),
            (Status::NotFound, _) => match mode {
                MutateMode::Replace | MutateMode::Append | MutateMode::Prepend => {
                    write(WriteOutcome::NotStored)
                }
                _ => write(WriteOutcome::NotFound),
            },
            (Status::BadRequest, ResponseBody::Message(m))
                if m == NON_NUMERIC_MESSAGE.as_bytes() =>
            {
                write(WriteOutcome::NonNumeric)
            }
            (Status::TooLarge, _) => write(WriteOutcome::TooLarge { max: 0 }),
            (Status::Forbidden, _) => Reply::error(Status::Unavailable, NOT_A_MEMBER_THERE),
            (status, ResponseBody::Message(m)) => Reply::error(status, relayed(peer, m)),
            (status, _) => Reply::error(status, OWNER_ERROR_WITHOUT_MESSAGE),
        }
    }

    /// Logs (rate-limited) that `peer` refused one of our peer operations.
    fn log_refusal(&self, peer: &str, r: &Response<'_>) {
        if let Some(suppressed) = self.shared.peer_refusals.check(self.now_ms()) {
            let why = r.message().map(String::from_utf8_lossy).unwrap_or_default();
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

/// An owner's error message passed on to our client, naming the owner. The owner's
/// text has to be copied out of the read buffer anyway: this is the one allocation
/// on the path, and only when an owner answers an error.
fn relayed(peer: &str, message: &[u8]) -> Cow<'static, str> {
    let text = String::from_utf8_lossy(message);
    let mut s = String::with_capacity("owner : ".len() + peer.len() + text.len());
    s.push_str("owner ");
    s.push_str(peer);
    s.push_str(": ");
    s.push_str(&text);
    Cow::Owned(s)
}
