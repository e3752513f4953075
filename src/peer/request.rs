//! The requests a core sends to other members for its clients and its loads
//! (FETCH, STORE, PURGE, INVALIDATE), and how each is encoded onto a connection and
//! remembered until its answer comes.

use std::time::Instant;

use groupcached_protocol::{KeyRef, MutateMode, Request, RequestKind};

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
        /// Ask with FETCH_ITEM (the memcached front end is on here): the answer
        /// carries the item's flags and CAS, which a hot copy keeps.
        item: bool,
    },
    /// MUTATE at the owner for a memcached write (`add`, `cas`, `incr`...).
    Mutate {
        /// Member index.
        member: usize,
        /// Group index.
        group: u32,
        /// The key.
        key: Box<[u8]>,
        /// Which write.
        mode: MutateMode,
        /// Client flags.
        flags: u32,
        /// TTL in ms (0 = group default, `KEEP_TTL` = keep the item's).
        ttl_ms: u64,
        /// CAS to compare (CAS mode).
        cas: u64,
        /// INCR/DECR amount.
        delta: u64,
        /// The value, bytes to add, or initial number.
        value: ByteView,
        /// A get-and-touch: if the owner has no item, read the key through (see
        /// [`PendingOp::Mutate`]).
        reread: bool,
        /// The client request.
        waiter: Waiter,
    },
    /// FLUSH one group at another member for a memcached `flush_all`.
    Flush {
        /// Member index.
        member: usize,
        /// Group index.
        group: u32,
        /// The client request (answered once per member).
        waiter: Waiter,
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
            | PeerRequest::Mutate { member, .. }
            | PeerRequest::Flush { member, .. }
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
                item,
                ..
            } => {
                let k = KeyRef::new(group_name, &key);
                let kind = if item {
                    RequestKind::FetchItem(k)
                } else {
                    RequestKind::Fetch(k)
                };
                out.push_request(&Request { id, kind }, None);
                PendingOp::Fetch {
                    group,
                    load_id,
                    key,
                    sent: Some(now),
                    item,
                }
            }
            PeerRequest::Mutate {
                key,
                mode,
                flags,
                ttl_ms,
                cas,
                delta,
                value,
                reread,
                waiter,
                group,
                ..
            } => {
                out.push_request(
                    &Request {
                        id,
                        kind: RequestKind::Mutate {
                            key: KeyRef::new(group_name, &key),
                            mode,
                            flags,
                            ttl_ms,
                            cas,
                            delta,
                            value: &value,
                        },
                    },
                    Some(&value),
                );
                let reread = reread.then_some((group, key));
                PendingOp::Mutate {
                    waiter,
                    mode,
                    reread,
                }
            }
            PeerRequest::Flush { waiter, .. } => {
                out.push_request(
                    &Request {
                        id,
                        kind: RequestKind::Flush { group: group_name },
                    },
                    None,
                );
                PendingOp::Forward { waiter }
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
                item,
                ..
            } => PendingOp::Fetch {
                group,
                load_id,
                key,
                sent: None,
                item,
            },
            PeerRequest::Mutate { waiter, mode, .. } => PendingOp::Mutate {
                waiter,
                mode,
                reread: None,
            },
            PeerRequest::Store { waiter, .. }
            | PeerRequest::Purge { waiter, .. }
            | PeerRequest::Flush { waiter, .. } => PendingOp::Forward { waiter },
            PeerRequest::Invalidate { write, .. } => PendingOp::Invalidate { write },
        }
    }

    /// Whether it is a client's write forwarded to the owner, whose answer waits for
    /// the owner's own round of INVALIDATEs (so it gets a longer deadline).
    pub fn is_forwarded_write(&self) -> bool {
        matches!(
            self,
            PeerRequest::Store { .. } | PeerRequest::Purge { .. } | PeerRequest::Mutate { .. }
        )
    }

    /// The group index.
    pub fn group(&self) -> usize {
        match self {
            PeerRequest::Fetch { group, .. }
            | PeerRequest::Mutate { group, .. }
            | PeerRequest::Flush { group, .. }
            | PeerRequest::Store { group, .. }
            | PeerRequest::Purge { group, .. }
            | PeerRequest::Invalidate { group, .. } => *group as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use groupcached_protocol::{decode, Frame, Limits};

    use crate::net::Sink;

    fn waiter() -> Waiter {
        Waiter {
            core: 1,
            token: 2,
            conn_gen: 3,
            req_id: 4,
            opcode: 2,
        }
    }

    #[test]
    fn each_request_is_encoded_under_its_id_and_remembered_for_its_answer() {
        let now = Instant::now();
        let value = ByteView::from_vec(vec![7; 10_000]);
        let reqs = vec![
            PeerRequest::Fetch {
                member: 1,
                group: 0,
                load_id: 5,
                key: b"f".as_slice().into(),
                item: false,
            },
            PeerRequest::Store {
                member: 1,
                group: 0,
                key: b"s".as_slice().into(),
                value: value.clone(),
                ttl_ms: 1500,
                waiter: waiter(),
            },
            PeerRequest::Purge {
                member: 1,
                group: 0,
                key: b"p".as_slice().into(),
                waiter: waiter(),
            },
            PeerRequest::Invalidate {
                member: 1,
                group: 0,
                key: b"i".as_slice().into(),
                write: 8,
            },
        ];
        let mut out = OutQueue::default();
        let mut ops = Vec::new();
        for (i, r) in reqs.into_iter().enumerate() {
            assert_eq!(r.member(), 1);
            assert_eq!(r.is_forwarded_write(), i == 1 || i == 2);
            ops.push(r.encode(100 + i as u32, b"grp", &mut out, now));
        }
        assert!(matches!(
            ops[0],
            PendingOp::Fetch {
                load_id: 5,
                sent: Some(_),
                ..
            }
        ));
        assert!(matches!(ops[1], PendingOp::Forward { waiter: w } if w == waiter()));
        assert!(matches!(ops[2], PendingOp::Forward { .. }));
        assert!(matches!(ops[3], PendingOp::Invalidate { write: 8 }));

        let mut sink = Sink(Vec::new());
        out.write_to(&mut sink).unwrap();
        let mut pos = 0;
        let mut seen = Vec::new();
        while pos < sink.0.len() {
            let (frame, used) = decode(&sink.0[pos..], &Limits::default()).unwrap().unwrap();
            let Frame::Request(r) = frame else {
                panic!("{frame:?}")
            };
            let k = r.kind.key_ref().expect("a keyed request");
            assert_eq!(k.group, b"grp");
            if let RequestKind::Store {
                ttl_ms, value: v, ..
            } = r.kind
            {
                assert_eq!((ttl_ms, v), (1500, &value[..]));
            }
            seen.push((r.id, k.key.to_vec()));
            pos += used;
        }
        assert_eq!(
            seen,
            vec![
                (100, b"f".to_vec()),
                (101, b"s".to_vec()),
                (102, b"p".to_vec()),
                (103, b"i".to_vec())
            ]
        );
    }

    #[test]
    fn a_request_that_never_left_is_not_timed() {
        let r = PeerRequest::Fetch {
            member: 0,
            group: 2,
            load_id: 1,
            key: b"k".as_slice().into(),
            item: false,
        };
        assert_eq!(r.group(), 2);
        assert!(matches!(r.into_op(), PendingOp::Fetch { sent: None, .. }));
    }
}
