//! The event loop's side of peer connections: readiness, reading answers and
//! handing them on, the handshake's progress, timeouts and the circuit breaker,
//! failures, and following membership changes. Requests are put on a connection by
//! the effect queue (`effects.rs`); their encoding is the `peer` module's.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use groupcached_protocol::Frame;
use mio::Token;

use super::{Core, PEER_BASE};
use crate::peer::pending::PendingOp;
use crate::peer::{
    probe_interval, Handshake, HandshakeAnswer, HandshakeError, HandshakeStep, NoAnswer, PeerConn,
    PeerError, ReadOutcome,
};
use crate::topology::Owner;

impl Core {
    /// The slab index of this core's connection to `name`, created if missing.
    pub(super) fn peer_index(&mut self, name: &str, addr: std::net::SocketAddr) -> usize {
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

    /// Handles readiness on a peer connection: completes its connect, reads and
    /// hands on every answer (running the effect queue after each).
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
                    // With a cluster secret, a member is up once it proved it.
                    if !peer.reported_up && peer.handshake == Handshake::Open {
                        report_up(peer, self.ctx.id);
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
            while let Some(step) = self.next_peer_answer(idx) {
                if let Err(why) = step {
                    return self.fail_peer(idx, why);
                }
                self.run_effects(None);
            }
        }
    }

    /// Takes the next whole answer buffered on peer connection `idx` and hands it on:
    /// `None` when no whole frame is left, `Err` when the connection must close.
    fn next_peer_answer(&mut self, idx: usize) -> Option<Result<(), PeerError>> {
        let peer = self.peers.get_mut(idx)?;
        let r = loop {
            match peer.rbuf.next_frame() {
                Ok(None) => return None,
                Ok(Some(Frame::Response(r))) => break r,
                Ok(Some(Frame::Request(_))) => return Some(Err(PeerError::UnexpectedRequest)),
                Err(e) if e.error.is_fatal() => return Some(Err(PeerError::BadFrame(e))),
                Err(e) => log::debug!("peer {}: skipped a frame: {e}", peer.name),
            }
        };
        // Any answer, even a late one, shows the member is alive again.
        // (Fields, not a method: `r` still borrows the read buffer.)
        peer.timeouts_in_row = 0;
        if std::mem::take(&mut peer.suspect) && peer.health.clear_suspect() {
            self.ctx
                .shared
                .registry
                .peers_suspect
                .fetch_sub(1, Ordering::Relaxed);
            log::info!(
                "peer {} answers again: no longer suspect, its keys go to it again",
                peer.name
            );
        }
        let Some(op) = peer.pending.take(r.id) else {
            return Some(Ok(()));
        };
        match op {
            PendingOp::Challenge | PendingOp::Auth => {
                let answer = HandshakeAnswer::of(&r);
                return Some(
                    self.handshake_step(idx, answer)
                        .map_err(PeerError::Handshake),
                );
            }
            PendingOp::Probe => peer.probe = None,
            op => self
                .ctx
                .on_peer_response(op, &r, &peer.name, &mut peer.mismatch_logged),
        }
        Some(Ok(()))
    }

    /// Carries the cluster-secret handshake on connection `idx` one step further
    /// with the member's answer; `Err` (the connection is closed) if the member
    /// refused it or failed to prove the secret itself.
    fn handshake_step(
        &mut self,
        idx: usize,
        answer: HandshakeAnswer,
    ) -> Result<(), HandshakeError> {
        let deadline = self.ctx.now + self.ctx.shared.peer_timeout;
        let Some(peer) = self.peers.get_mut(idx) else {
            return Ok(());
        };
        let secret = self.ctx.shared.cluster_secret.as_ref();
        match peer.on_handshake_answer(answer, secret, deadline) {
            Ok(step) => {
                if step == HandshakeStep::Proven {
                    if peer.health.auth_succeeded() {
                        log::info!(
                            "peer {} proved the cluster secret: using it again",
                            peer.name
                        );
                    }
                    if !peer.reported_up {
                        report_up(peer, self.ctx.id);
                    }
                }
                if !peer.dirty {
                    peer.dirty = true;
                    self.peer_dirty.push(idx);
                }
                Ok(())
            }
            Err(why) => {
                self.ctx.stats.node.peer_auth_failures.inc();
                if peer.health.auth_failed() {
                    log::warn!(
                        "peer {} {why}; not using it: its keys load here and writes do not reach it \
                         (retried on every reconnect, logged again once it succeeds)",
                        peer.name
                    );
                }
                Err(why)
            }
        }
    }

    /// Closes a peer connection, schedules its reconnect, fails its requests.
    pub(super) fn fail_peer(&mut self, idx: usize, why: PeerError) {
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
            self.ctx.fail_peer_op(op, why.no_answer());
        }
        self.publish_peer_count();
        self.run_effects(None);
    }

    /// Fails peer requests past their deadline (the connection stays: the peer may
    /// just be slow, and late answers are ignored).
    ///
    /// This is also the circuit breaker: when `--peer-suspect-after` requests in a
    /// row timed out on this core's connection to a member (no answer at all in
    /// between), the member is marked suspect node-wide (logged once, the
    /// `peers_suspect` gauge), every core stops sending it work (its fetches load
    /// locally, INVALIDATEs and forwarded writes fail at once), and each core probes
    /// it with a PING every [`probe_interval`] until any answer arrives.
    pub(super) fn expire_peer_requests(&mut self) {
        let now = self.ctx.now;
        let threshold = self.ctx.shared.peer_suspect_after;
        let timeout = self.ctx.shared.peer_timeout;
        let mut expired = Vec::new();
        let mut broken = Vec::new();
        let mut probe = Vec::new();
        for (idx, peer) in self.peers.iter_mut() {
            let before = expired.len();
            peer.pending.expire(now, &mut expired);
            let n = expired.len() - before;
            if n > 0 {
                log::debug!("peer {}: {n} requests timed out", peer.name);
                let mut handshake = false;
                for op in &expired[before..] {
                    match op {
                        PendingOp::Probe => peer.probe = None,
                        PendingOp::Challenge | PendingOp::Auth => handshake = true,
                        _ => {}
                    }
                }
                if handshake {
                    broken.push(idx);
                }
                peer.timeouts_in_row = peer.timeouts_in_row.saturating_add(n as u32);
                if threshold > 0 && peer.timeouts_in_row >= threshold && !peer.suspect {
                    peer.suspect = true;
                    if peer.health.mark_suspect() {
                        self.ctx
                            .shared
                            .registry
                            .peers_suspect
                            .fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "peer {} is suspect: {} requests in a row got no answer within \
                             --peer-timeout ({timeout:?}); its keys load locally and writes stop \
                             waiting for it until it answers a probe (a PING every {:?})",
                            peer.name,
                            peer.timeouts_in_row,
                            probe_interval(timeout)
                        );
                    }
                }
            }
            // Follow the node-wide breaker: another core may have opened or closed it.
            let suspect = peer.health.is_suspect();
            if suspect != peer.suspect {
                peer.suspect = suspect;
                peer.timeouts_in_row = 0;
                peer.next_probe = now;
            }
            if peer.suspect && peer.probe.is_none() && now >= peer.next_probe {
                probe.push(idx);
            }
        }
        for op in expired {
            self.ctx.fail_peer_op(op, NoAnswer::TimedOut);
        }
        self.run_effects(None);
        for idx in broken {
            let why = PeerError::Handshake(HandshakeError::TimedOut);
            self.fail_peer(idx, why);
        }
        for idx in probe {
            self.send_probe(idx);
        }
    }

    /// Sends a PING to suspect member `idx` (reconnecting first if needed).
    fn send_probe(&mut self, idx: usize) {
        let now = self.ctx.now;
        let timeout = self.ctx.shared.peer_timeout;
        let topology = &self.ctx.topology;
        let with_secret = self.ctx.shared.cluster_secret.is_some();
        let Some(peer) = self.peers.get_mut(idx) else {
            return;
        };
        peer.next_probe = now + probe_interval(timeout);
        match peer.ensure_open(now, self.poll.registry(), Token(PEER_BASE + idx)) {
            Err(why) => {
                log::debug!("probe of suspect peer {}: {why}", peer.name);
                return;
            }
            Ok(true) => {
                let started = peer.start_handshake(
                    topology.self_name(),
                    topology.ring.fingerprint(),
                    with_secret,
                    now + timeout,
                );
                if let Err(e) = started {
                    log::error!("peer {}: {}", peer.name, PeerError::NoRandomness(e));
                    return;
                }
            }
            Ok(false) => {}
        }
        peer.send_probe(now + timeout);
        if !peer.dirty {
            peer.dirty = true;
            self.peer_dirty.push(idx);
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
            .filter_map(|(_, p)| {
                let probe = (p.suspect && p.probe.is_none()).then_some(p.next_probe);
                [p.pending.next_deadline(), probe]
                    .into_iter()
                    .flatten()
                    .min()
            })
            .min()
    }

    /// Switches to a new ring; connections to members that left are closed and
    /// their requests failed (fetches fall back to local loads).
    pub(super) fn set_topology(&mut self, topology: Arc<crate::topology::Topology>) {
        // Queued peer requests name members by index into the current ring: they
        // are encoded before it changes (the queue is empty here; this is the guard).
        self.run_effects(None);
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
            if peer.health.clear_suspect() {
                self.ctx
                    .shared
                    .registry
                    .peers_suspect
                    .fetch_sub(1, Ordering::Relaxed);
            }
            let mut failed = Vec::new();
            peer.close(self.poll.registry(), &mut failed);
            for op in failed {
                self.ctx.fail_peer_op(op, NoAnswer::Left);
            }
        }
        self.publish_peer_count();
        self.run_effects(None);
    }

    fn publish_peer_count(&self) {
        let up = self.peers.iter().filter(|(_, p)| p.reported_up).count();
        self.ctx.stats.node.peer_connections.set(up as u64);
    }
}

/// Announces (once node-wide) that a connection to `peer` is usable.
fn report_up(peer: &mut PeerConn, core: usize) {
    peer.reported_up = true;
    if peer.health.connected() {
        log::info!("peer {} is up", peer.name);
    } else {
        log::debug!("core {core}: connected to peer {}", peer.name);
    }
}
