//! The core's side of peer connections: sending queued peer actions, reading
//! answers, timeouts, failures, and following membership changes.

use std::sync::Arc;

use groupcached_protocol::{Frame, Request, RequestKind};
use mio::Token;

use super::{Core, PEER_BASE};
use crate::peer::pending::PendingOp;
use crate::peer::{PeerConn, PeerState, ReadOutcome};
use crate::topology::{Owner, Topology};

impl Core {
    /// Sends every request queued for peers during this step.
    pub(super) fn run_peer_actions(&mut self) {
        if self.ctx.peer_actions.is_empty() {
            return;
        }
        let mut actions = std::mem::take(&mut self.ctx.peer_actions);
        let topology = self.ctx.topology.clone();
        let now = self.ctx.now;
        let timeout = self.ctx.shared.peer_timeout;
        let deadline = now + timeout;
        // A forwarded write is answered only after the owner's own round of
        // INVALIDATEs, each of which may take up to the peer timeout.
        let write_deadline = now + 2 * timeout;
        let mut failed: Vec<(PendingOp, String)> = Vec::new();
        for action in actions.drain(..) {
            let member = action.member();
            let name = topology.name(member);
            let Some(addr) = topology.addrs[member] else {
                failed.push((action.into_op(), format!("peer {name} has no address")));
                continue;
            };
            let idx = self.peer_index(name, addr);
            let shared = &self.ctx.shared;
            let peer = &mut self.peers[idx];
            match peer.ensure_open(now, self.poll.registry(), Token(PEER_BASE + idx)) {
                Err(why) => {
                    if peer.health.disconnected(false) {
                        log::warn!("peer {name} is down: {why}");
                    }
                    failed.push((action.into_op(), why));
                    continue;
                }
                Ok(true) => {
                    let id = peer.pending.insert(PendingOp::Hello, deadline);
                    let hello = Request {
                        id,
                        kind: RequestKind::Hello {
                            node_id: topology.self_name().as_bytes(),
                            ring_fingerprint: topology.ring.fingerprint(),
                        },
                    };
                    peer.out.push_request(&hello, None);
                }
                Ok(false) => {}
            }
            let group_name = shared.groups[action.group()].name.as_bytes();
            let due = if action.is_forwarded_write() {
                write_deadline
            } else {
                deadline
            };
            let id = peer.pending.reserve_id();
            let op = action.send(id, group_name, &mut peer.out, now);
            peer.pending.insert_at(id, op, due);
            if !peer.dirty {
                peer.dirty = true;
                self.peer_dirty.push(idx);
            }
        }
        self.ctx.peer_actions = actions;
        for (op, why) in failed {
            self.ctx.fail_peer_op(op, &why);
        }
    }

    /// The slab index of this core's connection to `name`, created if missing.
    fn peer_index(&mut self, name: &str, addr: std::net::SocketAddr) -> usize {
        if let Some(&idx) = self.peer_by_name.get(name) {
            return idx;
        }
        let idx = self.peers.insert(PeerConn::new(
            name.to_string(),
            addr,
            self.ctx.shared.limits,
            self.ctx.now,
            self.ctx.shared.peer_health.get(name),
        ));
        self.peer_by_name.insert(name.to_string(), idx);
        idx
    }

    /// Handles readiness on a peer connection.
    pub(super) fn on_peer_event(
        &mut self,
        idx: usize,
        readable: bool,
        writable: bool,
        hangup: bool,
    ) {
        let Some(peer) = self.peers.get_mut(idx) else {
            return;
        };
        if writable || hangup {
            match peer.check_connected() {
                Ok(true) => {
                    if !peer.reported_up {
                        peer.reported_up = true;
                        if peer.health.connected() {
                            log::info!("peer {} is up", peer.name);
                        } else {
                            log::debug!("core {}: connected to peer {}", self.ctx.id, peer.name);
                        }
                    }
                    if !peer.dirty {
                        peer.dirty = true;
                        self.peer_dirty.push(idx);
                    }
                }
                Ok(false) => {}
                Err(why) => return self.fail_peer(idx, why),
            }
            self.publish_peer_count();
        }
        if !(readable || hangup) {
            return;
        }
        loop {
            let Some(peer) = self.peers.get_mut(idx) else {
                return;
            };
            match peer.read() {
                ReadOutcome::Idle => return,
                ReadOutcome::Failed(why) => return self.fail_peer(idx, why),
                ReadOutcome::Data => {}
            }
            let PeerConn {
                rbuf,
                pending,
                name,
                mismatch_logged,
                ..
            } = peer;
            loop {
                match rbuf.next_frame() {
                    Ok(None) => break,
                    Ok(Some(Frame::Response(r))) => {
                        if let Some(op) = pending.take(r.id) {
                            self.ctx.on_peer_response(op, &r, name, mismatch_logged);
                        }
                    }
                    Ok(Some(Frame::Request(_))) => {
                        let why = format!("peer {name} sent a request on our connection");
                        return self.fail_peer(idx, why);
                    }
                    Err(e) if e.error.is_fatal() => {
                        let why = format!("peer {name} sent a bad frame: {e}");
                        return self.fail_peer(idx, why);
                    }
                    Err(e) => log::debug!("peer {name}: skipped a frame: {e}"),
                }
            }
        }
    }

    /// Closes a peer connection, schedules its reconnect, fails its requests.
    pub(super) fn fail_peer(&mut self, idx: usize, why: String) {
        let Some(peer) = self.peers.get_mut(idx) else {
            return;
        };
        let was_up = std::mem::take(&mut peer.reported_up);
        if peer.health.disconnected(was_up) {
            log::warn!("peer {} is down: {why}", peer.name);
        } else {
            log::debug!("core {}: peer {}: {why}", self.ctx.id, peer.name);
        }
        let mut failed = Vec::new();
        peer.fail(self.ctx.now, self.poll.registry(), &mut failed);
        for op in failed {
            self.ctx.fail_peer_op(op, &why);
        }
        self.publish_peer_count();
    }

    /// Fails peer requests past their deadline (the connection stays: the peer may
    /// just be slow, and late answers are ignored).
    pub(super) fn expire_peer_requests(&mut self) {
        let now = self.ctx.now;
        let mut expired = Vec::new();
        for (_, peer) in self.peers.iter_mut() {
            let before = expired.len();
            peer.pending.expire(now, &mut expired);
            if expired.len() > before {
                log::debug!(
                    "peer {}: {} requests timed out",
                    peer.name,
                    expired.len() - before
                );
            }
        }
        for op in expired {
            self.ctx.fail_peer_op(op, "the peer did not answer in time");
        }
    }

    /// Writes queued requests of every peer that has some.
    pub(super) fn flush_peers(&mut self) {
        while let Some(idx) = self.peer_dirty.pop() {
            let Some(peer) = self.peers.get_mut(idx) else {
                continue;
            };
            peer.dirty = false;
            if let Err(why) = peer.flush() {
                self.fail_peer(idx, why);
            }
        }
    }

    /// The earliest peer request deadline.
    pub(super) fn next_peer_deadline(&mut self) -> Option<std::time::Instant> {
        self.peers
            .iter_mut()
            .filter_map(|(_, p)| p.pending.next_deadline())
            .min()
    }

    /// Switches to a new ring; connections to members that left are closed and
    /// their requests failed (fetches fall back to local loads).
    pub(super) fn set_topology(&mut self, topology: Arc<Topology>) {
        // Queued actions name members by index into the current ring: send them first.
        self.run_peer_actions();
        let keep: Vec<(String, Option<std::net::SocketAddr>)> = topology
            .ring
            .members()
            .iter()
            .cloned()
            .zip(topology.addrs.iter().copied())
            .collect();
        self.ctx.topology = topology;
        // The main cache holds only keys this node owns: what moved away becomes a
        // hot copy, bounded by --hot-ttl (docs/architecture.md, coherence contract).
        let ring = self.ctx.topology.clone();
        let demoted = self
            .ctx
            .shard
            .demote_unowned(self.ctx.now, |k| ring.owner(k) == Owner::Local);
        if demoted > 0 {
            self.ctx.stats.node.demoted.add(demoted as u64);
            log::debug!(
                "core {}: {demoted} cached keys moved to other members; kept as hot copies",
                self.ctx.id
            );
        }
        self.ctx
            .stats
            .node
            .members
            .set(self.ctx.topology.ring.len() as u64);
        self.ctx
            .stats
            .node
            .ring_fingerprint
            .set(self.ctx.topology.ring.fingerprint());
        let gone: Vec<usize> = self
            .peers
            .iter()
            .filter(|(_, p)| !keep.iter().any(|(n, a)| *n == p.name && *a == Some(p.addr)))
            .map(|(i, _)| i)
            .collect();
        for idx in gone {
            let mut peer = self.peers.remove(idx);
            self.peer_by_name.remove(&peer.name);
            peer.health.removed(std::mem::take(&mut peer.reported_up));
            let mut failed = Vec::new();
            peer.close(self.poll.registry(), &mut failed);
            for op in failed {
                self.ctx.fail_peer_op(op, "the member left the ring");
            }
        }
        self.publish_peer_count();
    }

    fn publish_peer_count(&self) {
        let up = self
            .peers
            .iter()
            .filter(|(_, p)| p.state == PeerState::Up)
            .count();
        self.ctx.stats.node.peer_connections.set(up as u64);
    }
}
