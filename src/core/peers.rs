//! The core's side of peer connections: sending queued peer actions, reading
//! answers, timeouts, failures, and following membership changes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use groupcached_protocol::{
    Frame, Request, RequestKind, Response, ResponseBody, Status, NONCE_LEN, PROOF_LEN,
};
use mio::Token;

use super::{Core, PEER_BASE};
use crate::peer::auth::{fresh_nonce, Nonce};
use crate::peer::pending::PendingOp;
use crate::peer::{probe_interval, Handshake, PeerConn, ReadOutcome};
use crate::shared::Shared;
use crate::topology::{Owner, Topology};

/// A handshake answer, copied out of the read buffer.
enum HandshakeAnswer {
    Nonce(Nonce),
    Proof([u8; PROOF_LEN]),
    Refused(String),
}

impl HandshakeAnswer {
    fn of(r: &Response<'_>) -> HandshakeAnswer {
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
            (status, ResponseBody::Message(m)) => {
                HandshakeAnswer::Refused(format!("{status}: {}", String::from_utf8_lossy(m)))
            }
            (status, _) => HandshakeAnswer::Refused(format!("{status} with an unexpected body")),
        }
    }
}

/// Queues what opens a new connection to a member: HELLO with our own member entry
/// and, with a cluster secret, the CHALLENGE that starts the handshake (peer
/// requests then wait in [`PeerConn::held`] until it succeeds).
fn open_connection(
    peer: &mut PeerConn,
    topology: &Topology,
    shared: &Shared,
    deadline: Instant,
) -> Result<(), String> {
    peer.hello_id = topology.self_name().as_bytes().into();
    let id = peer.pending.insert(PendingOp::Hello, deadline);
    let hello = Request {
        id,
        kind: RequestKind::Hello {
            node_id: &peer.hello_id,
            ring_fingerprint: topology.ring.fingerprint(),
        },
    };
    peer.out.push_request(&hello, None);
    if shared.cluster_secret.is_some() {
        let ours = fresh_nonce()?;
        let id = peer.pending.insert(PendingOp::Challenge, deadline);
        peer.out.push_request(
            &Request {
                id,
                kind: RequestKind::Challenge { nonce: &ours },
            },
            None,
        );
        peer.handshake = Handshake::Challenged { ours };
    }
    Ok(())
}

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
            if peer.suspect {
                // The breaker is open: do not wait a peer timeout for a member that
                // stopped answering; a probe tells when it is back.
                let why = format!("peer {name} is suspect (not answering); not waiting for it");
                failed.push((action.into_op(), why));
                continue;
            }
            match peer.ensure_open(now, self.poll.registry(), Token(PEER_BASE + idx)) {
                Err(why) => {
                    if peer.health.disconnected(false) {
                        log::warn!("peer {name} is down: {why}");
                    }
                    failed.push((action.into_op(), why));
                    continue;
                }
                Ok(true) => {
                    if let Err(why) = open_connection(peer, &topology, shared, deadline) {
                        log::error!("peer {name}: cannot start the handshake: {why}");
                        let mut ops = Vec::new();
                        peer.fail(now, self.poll.registry(), &mut ops);
                        failed.extend(ops.into_iter().map(|op| (op, why.clone())));
                        failed.push((action.into_op(), why));
                        continue;
                    }
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
            // Until the member proved the cluster secret, peer requests wait.
            let out = if peer.handshake == Handshake::Open {
                &mut peer.out
            } else {
                &mut peer.held
            };
            let op = action.send(id, group_name, out, now);
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
            loop {
                let Some(peer) = self.peers.get_mut(idx) else {
                    return;
                };
                let r = match peer.rbuf.next_frame() {
                    Ok(None) => break,
                    Ok(Some(Frame::Response(r))) => r,
                    Ok(Some(Frame::Request(_))) => {
                        let why = format!("peer {} sent a request on our connection", peer.name);
                        return self.fail_peer(idx, why);
                    }
                    Err(e) if e.error.is_fatal() => {
                        let why = format!("peer {} sent a bad frame: {e}", peer.name);
                        return self.fail_peer(idx, why);
                    }
                    Err(e) => {
                        log::debug!("peer {}: skipped a frame: {e}", peer.name);
                        continue;
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
                    continue;
                };
                match op {
                    PendingOp::Challenge | PendingOp::Auth => {
                        let answer = HandshakeAnswer::of(&r);
                        if let Err(why) = self.handshake_step(idx, answer) {
                            return self.fail_peer(idx, why);
                        }
                    }
                    PendingOp::Probe => peer.probe = None,
                    op => self
                        .ctx
                        .on_peer_response(op, &r, &peer.name, &mut peer.mismatch_logged),
                }
            }
        }
    }

    /// Carries the cluster-secret handshake on connection `idx` one step further
    /// with the member's answer; `Err` (the connection is closed) if the member
    /// refused it or failed to prove the secret itself.
    fn handshake_step(&mut self, idx: usize, answer: HandshakeAnswer) -> Result<(), String> {
        let now = self.ctx.now;
        let deadline = now + self.ctx.shared.peer_timeout;
        let Some(peer) = self.peers.get_mut(idx) else {
            return Ok(());
        };
        let Some(secret) = &self.ctx.shared.cluster_secret else {
            return Err(format!(
                "peer {} answered a handshake we did not start",
                peer.name
            ));
        };
        let failure = match (peer.handshake, answer) {
            (Handshake::Challenged { ours }, HandshakeAnswer::Nonce(theirs)) => {
                let proof = secret.initiator_proof(&peer.hello_id, &ours, &theirs);
                let id = peer.pending.insert(PendingOp::Auth, deadline);
                peer.out.push_request(
                    &Request {
                        id,
                        kind: RequestKind::Auth { proof: &proof },
                    },
                    None,
                );
                peer.handshake = Handshake::Proving { ours, theirs };
                None
            }
            (Handshake::Proving { ours, theirs }, HandshakeAnswer::Proof(p)) => {
                if secret.verify_responder(&peer.hello_id, &ours, &theirs, &p) {
                    peer.handshake = Handshake::Open;
                    if peer.health.auth_succeeded() {
                        log::info!(
                            "peer {} proved the cluster secret: using it again",
                            peer.name
                        );
                    }
                    if !peer.reported_up {
                        report_up(peer, self.ctx.id);
                    }
                    None
                } else {
                    Some(format!(
                        "peer {} accepted our proof but its own proof of the cluster secret is \
                         wrong (is something else listening at {}?)",
                        peer.name, peer.addr
                    ))
                }
            }
            (Handshake::Challenged { .. }, HandshakeAnswer::Refused(why)) => Some(format!(
                "peer {} refused our cluster-secret handshake ({why}): it has no \
                 --cluster-secret-file, or runs a version without one",
                peer.name
            )),
            (Handshake::Proving { .. }, HandshakeAnswer::Refused(why)) => Some(format!(
                "peer {} rejected our proof of the cluster secret ({why}): its \
                 --cluster-secret-file differs from ours",
                peer.name
            )),
            _ => Some(format!(
                "peer {} answered the handshake out of order",
                peer.name
            )),
        };
        match failure {
            None => {
                if !peer.dirty {
                    peer.dirty = true;
                    self.peer_dirty.push(idx);
                }
                Ok(())
            }
            Some(why) => {
                self.ctx.stats.node.peer_auth_failures.inc();
                if peer.health.auth_failed() {
                    log::warn!(
                        "{why}; not using it: its keys load here and writes do not reach it \
                         (retried on every reconnect, logged again once it succeeds)"
                    );
                }
                Err(why)
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
            self.ctx.fail_peer_op(op, "the peer did not answer in time");
        }
        for idx in broken {
            let why = match self.peers.get(idx) {
                Some(p) => format!(
                    "peer {} did not answer the cluster-secret handshake in time",
                    p.name
                ),
                None => continue,
            };
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
        let topology = self.ctx.topology.clone();
        let shared = &self.ctx.shared;
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
                if let Err(why) = open_connection(peer, &topology, shared, now + timeout) {
                    log::error!("peer {}: cannot start the handshake: {why}", peer.name);
                    return;
                }
            }
            Ok(false) => {}
        }
        let id = peer.pending.insert(PendingOp::Probe, now + timeout);
        peer.out.push_request(
            &Request {
                id,
                kind: RequestKind::Ping(b"probe"),
            },
            None,
        );
        peer.probe = Some(id);
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
                self.ctx.fail_peer_op(op, "the member left the ring");
            }
        }
        self.publish_peer_count();
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
