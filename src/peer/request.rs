//! The requests a core sends to other members for its clients and its loads
//! (FETCH, STORE, PURGE, INVALIDATE), and how each is encoded onto a connection and
//! remembered until its answer comes.

use std::time::Instant;

use groupcached_protocol::{KeyRef, Request, RequestKind};

use super::pending::PendingOp;
use crate::net::{OutQueue, Waiter};
use crate::shard::inflight::LoadId;
use crate::value::ByteView;

/// A request this core must send to another member. `member` indexes the topology
/// current when the action was made: the core sends every queued action before it
/// switches to another topology, so the index always names the intended member.
#[derive(Debug)]
pub enum PeerRequest {
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
        /// The write waiting for this acknowledgement (a key of the core's pending writes).
        write: usize,
    },
}

impl PeerRequest {
    /// The member it goes to.
    pub fn member(&self) -> usize {
        match self {
            PeerRequest::Fetch { member, .. }
            | PeerRequest::Store { member, .. }
            | PeerRequest::Purge { member, .. }
            | PeerRequest::Invalidate { member, .. } => *member,
        }
    }

    /// Encodes the request under `id` onto `out` at `now` and returns what to
    /// remember about it.
    pub fn encode(self, id: u32, group_name: &[u8], out: &mut OutQueue, now: Instant) -> PendingOp {
        match self {
            PeerRequest::Fetch {
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
            PeerRequest::Store {
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
            PeerRequest::Purge { key, waiter, .. } => {
                out.push_request(
                    &Request {
                        id,
                        kind: RequestKind::Purge(KeyRef::new(group_name, &key)),
                    },
                    None,
                );
                PendingOp::Forward { waiter }
            }
            PeerRequest::Invalidate { key, write, .. } => {
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
            PeerRequest::Fetch {
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
            PeerRequest::Store { waiter, .. } | PeerRequest::Purge { waiter, .. } => {
                PendingOp::Forward { waiter }
            }
            PeerRequest::Invalidate { write, .. } => PendingOp::Invalidate { write },
        }
    }

    /// Whether it is a client's write forwarded to the owner, whose answer waits for
    /// the owner's own round of INVALIDATEs (so it gets a longer deadline).
    pub fn is_forwarded_write(&self) -> bool {
        matches!(self, PeerRequest::Store { .. } | PeerRequest::Purge { .. })
    }

    /// The group index.
    pub fn group(&self) -> usize {
        match self {
            PeerRequest::Fetch { group, .. }
            | PeerRequest::Store { group, .. }
            | PeerRequest::Purge { group, .. }
            | PeerRequest::Invalidate { group, .. } => *group as usize,
        }
    }
}
