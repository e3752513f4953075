//! Requests sent to a peer and not yet answered, with their deadlines. Pure: the
//! caller passes `now` and decides what a timeout means for each kind of request.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use crate::net::Waiter;
use crate::shard::inflight::LoadId;

/// What a request to a peer was for.
#[derive(Debug)]
pub enum PendingOp {
    /// The HELLO that opens every peer connection.
    Hello,
    /// The CHALLENGE that starts the cluster-secret handshake.
    Challenge,
    /// The AUTH that proves the cluster secret.
    Auth,
    /// A PING probing a suspect member.
    Probe,
    /// A FETCH for a load of this node's in-flight table.
    Fetch {
        /// Group index.
        group: u32,
        /// The load waiting for the answer.
        load_id: LoadId,
        /// The key (to fall back to a local load).
        key: Box<[u8]>,
        /// When it was written to the peer's queue (loop-turn time); `None` if it
        /// never was (the peer was down), so it stays out of the latency histogram.
        sent: Option<Instant>,
        /// Sent as FETCH_ITEM: the answer carries the item's flags and CAS.
        item: bool,
    },
    /// A memcached write forwarded to the owner as MUTATE for a client.
    Mutate {
        /// The client request to answer with the owner's answer.
        waiter: Waiter,
        /// Which write, to read the owner's answer.
        mode: groupcached_protocol::MutateMode,
        /// A get-and-touch (`gat`) of this group and key: if the owner holds no item,
        /// the get reads the key through (a load at the owner) instead of missing.
        reread: Option<(u32, Box<[u8]>)>,
    },
    /// A SET or DELETE forwarded to the owner (as STORE / PURGE) for a client, or a
    /// memcached `flush_all`'s FLUSH of another member.
    Forward {
        /// The client request to answer with the owner's answer.
        waiter: Waiter,
    },
    /// An INVALIDATE after a write this node applied as the key's owner.
    Invalidate {
        /// The write waiting for it (a key of the core's pending writes).
        write: usize,
    },
}

/// Outstanding requests on one peer connection, by request id.
#[derive(Debug, Default)]
pub struct Pending {
    ops: HashMap<u32, PendingOp, ahash::RandomState>,
    deadlines: BinaryHeap<Reverse<(Instant, u32)>>,
    next_id: u32,
}

impl Pending {
    /// A request id not in use, for a request about to be recorded with
    /// [`Pending::insert_at`] (so it can be encoded while the op still borrows).
    pub fn reserve_id(&mut self) -> u32 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if !self.ops.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }

    /// Records `op` under `id`, due by `deadline`.
    pub fn insert_at(&mut self, id: u32, op: PendingOp, deadline: Instant) {
        self.ops.insert(id, op);
        self.deadlines.push(Reverse((deadline, id)));
    }

    /// Records `op`, due by `deadline`; returns the request id to send it under.
    pub fn insert(&mut self, op: PendingOp, deadline: Instant) -> u32 {
        let id = self.reserve_id();
        self.insert_at(id, op, deadline);
        id
    }

    /// Takes the request answered by a response with `id`.
    pub fn take(&mut self, id: u32) -> Option<PendingOp> {
        self.ops.remove(&id)
    }

    /// Takes every request due at or before `now`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<PendingOp>) {
        while let Some(Reverse((deadline, id))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if let Some(op) = self.ops.remove(&id) {
                out.push(op);
            }
        }
    }

    /// Takes every request (the connection failed).
    pub fn drain(&mut self, out: &mut Vec<PendingOp>) {
        self.deadlines.clear();
        out.extend(self.ops.drain().map(|(_, op)| op));
    }

    /// The earliest deadline of an outstanding request.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, id))) = self.deadlines.peek().copied() {
            if self.ops.contains_key(&id) {
                return Some(deadline);
            }
            self.deadlines.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answered_requests_do_not_expire_and_late_answers_find_nothing() {
        let now = Instant::now();
        let mut p = Pending::default();
        let a = p.insert(
            PendingOp::Invalidate { write: 0 },
            now + Duration::from_secs(1),
        );
        let b = p.insert(PendingOp::Hello, now + Duration::from_secs(2));
        assert_ne!(a, b);
        assert!(matches!(p.take(a), Some(PendingOp::Invalidate { .. })));
        assert_eq!(p.next_deadline(), Some(now + Duration::from_secs(2)));
        let mut out = Vec::new();
        p.expire(now + Duration::from_secs(5), &mut out);
        assert_eq!(out.len(), 1);
        assert!(p.take(b).is_none());
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn drain_hands_back_everything() {
        let now = Instant::now();
        let mut p = Pending::default();
        for _ in 0..3 {
            p.insert(PendingOp::Invalidate { write: 0 }, now);
        }
        let mut out = Vec::new();
        p.drain(&mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(p.next_deadline(), None);
    }
}
