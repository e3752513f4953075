//! A core: one thread running one mio event loop over its own listener, its own
//! connections (clients' and, outgoing, to peers) and its own shard of every group.
//! It is the only code that touches mio.
//!
//! Each loop turn: expire overdue loads; accept until WouldBlock; read each readable
//! connection, decoding and handling every whole frame as it arrives; drain the
//! mailbox; send what was queued for peers; then, before sleeping, write every
//! connection that has output and wake the cores that were sent messages and are
//! about to sleep (at most one wake per core per turn, however many messages).
//!
//! Connection limits cost no syscall and no heap operation per request: each read
//! stamps the connection with the turn's clock, and a sweep over the core's
//! connections every [`ConnLimits::sweep_interval`] closes those past
//! `--idle-timeout` or `--frame-timeout` and frees idle connections' buffers. Buffer
//! memory is counted incrementally per connection; each core publishes its total once
//! per turn and reads the other cores' totals once per turn to enforce
//! `--max-buffer-memory` node-wide.

pub mod conn;
mod dispatch;
pub mod mailbox;
mod peers;

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::{Response, Status};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::net::{read_into, Flushed, OutQueue, ReadStep};
use crate::origin::{LoaderHandle, OriginError};
use crate::peer::PeerConn;
use crate::shard::inflight::LoadId;
use crate::shard::{GroupSpec, Reply, Shard};
use crate::shared::Shared;
use crate::stats::CoreStats;
use crate::topology::{Owner, Topology};
use conn::{Conn, ConnLimits, RELEASE_IDLE_BUFFERS_AFTER};
use dispatch::{write_reply, Ctx};
use mailbox::{Inbox, Msg, Outbox, Remote, Waiter};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);
/// Tokens at and above this are peer connections (slab index + PEER_BASE).
const PEER_BASE: usize = 1 << (usize::BITS - 2);
/// Poll interval while draining at shutdown, to notice when every core is done.
const DRAIN_TICK: Duration = Duration::from_millis(10);
const EVENTS_CAPACITY: usize = 1024;

/// The token a core's waker must be registered with.
pub const WAKER_TOKEN: Token = WAKER;

/// Everything a core owns.
pub struct Core {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    peers: Slab<PeerConn>,
    peer_by_name: HashMap<String, usize>,
    peer_dirty: Vec<usize>,
    ctx: Ctx,
    next_gen: u32,
    drain_deadline: Option<Instant>,
    reported_idle: bool,
    sleeping: Arc<AtomicBool>,
    /// Per-connection limits.
    limits: ConnLimits,
    /// Bytes this core's client connections hold in buffers (sum of `Conn::accounted`).
    buffered: usize,
    /// The other cores' totals, as last published.
    others: usize,
    /// When the connections are next swept for timeouts and idle buffers.
    next_sweep: Instant,
    /// Connections paused by `--max-buffer-memory`, to resume when memory frees.
    mem_paused: Vec<usize>,
    /// The one connection of this core allowed to grow its read buffer past the
    /// limit, and `rbuf.frames()` when it was allowed: without it, connections that
    /// each hold part of a large frame could all wait for memory none of them frees.
    grant: Option<(usize, u64)>,
    /// The grant was given back: paused connections may try again.
    grant_freed: bool,
}

/// Parts a core is built from (see `server.rs`).
pub struct CoreParts {
    /// Core index.
    pub id: usize,
    /// Its poll instance (its waker is registered with [`WAKER_TOKEN`]).
    pub poll: Poll,
    /// Its listener.
    pub listener: TcpListener,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Its shard's groups (the shard itself is core-local and built on the core's thread).
    pub groups: Vec<GroupSpec>,
    /// Limit on one origin load.
    pub load_timeout: Duration,
    /// Its mailbox.
    pub inbox: Inbox,
    /// A handle to its own mailbox, for loader threads.
    pub me: Remote,
    /// Handles to every core's mailbox, by core index.
    pub remotes: Vec<Remote>,
    /// Origin loader pool.
    pub loader: LoaderHandle,
    /// Its counters.
    pub stats: Arc<CoreStats>,
    /// The ring at start.
    pub topology: Arc<Topology>,
    /// Seed of the hot-cache sampling.
    pub seed: u64,
    /// Raised while the core is (about to be) asleep in `poll`; see [`Remote`].
    pub sleeping: Arc<AtomicBool>,
    /// Limits on each client connection's memory and time.
    pub conn_limits: ConnLimits,
}

impl Core {
    /// Builds a core and registers its listener. Call it on the core's own thread.
    pub fn new(p: CoreParts) -> io::Result<Core> {
        let mut listener = p.listener;
        p.poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        p.stats.node.members.set(p.topology.ring.len() as u64);
        p.stats
            .node
            .ring_fingerprint
            .set(p.topology.ring.fingerprint());
        Ok(Core {
            poll: p.poll,
            listener: Some(listener),
            conns: Slab::with_capacity(1024),
            peers: Slab::new(),
            peer_by_name: HashMap::new(),
            peer_dirty: Vec::new(),
            ctx: Ctx {
                id: p.id,
                shared: p.shared,
                shard: Shard::new(p.groups, p.load_timeout, p.stats.clone()),
                inbox: p.inbox,
                outboxes: p.remotes.into_iter().map(Outbox::new).collect(),
                me: p.me,
                loader: p.loader,
                stats: p.stats,
                topology: p.topology,
                effects: Vec::with_capacity(64),
                later: Vec::new(),
                peer_actions: Vec::new(),
                dirty: Vec::with_capacity(64),
                now: Instant::now(),
                draining: false,
                rng: p.seed | 1,
                writes: Slab::new(),
            },
            sleeping: p.sleeping,
            next_gen: 0,
            drain_deadline: None,
            reported_idle: false,
            limits: p.conn_limits,
            buffered: 0,
            others: 0,
            next_sweep: Instant::now() + p.conn_limits.sweep_interval(),
            mem_paused: Vec::new(),
            grant: None,
            grant_freed: false,
        })
    }

    /// Runs the event loop until shutdown has drained every core (or timed out).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let mut timeout = self.poll_timeout();
            // Announce the sleep, then look at the mailbox once more: a sender either
            // sees the flag and wakes us, or its message is seen here (see Remote).
            self.sleeping.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if !self.ctx.inbox.is_empty() {
                timeout = Some(Duration::ZERO);
            }
            let polled = self.poll.poll(&mut events, timeout);
            self.sleeping.store(false, Ordering::SeqCst);
            if let Err(e) = polled {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("core {}: poll failed, stopping: {e}", self.ctx.id);
                break;
            }
            self.ctx.now = Instant::now();
            self.others = self.others_buffered();
            // Expire first: an answer that arrives after its deadline must not beat
            // the timeout just because both are noticed in the same turn.
            self.expire();
            if self.ctx.now >= self.next_sweep {
                self.sweep();
            }
            for ev in events.iter() {
                let hangup = ev.is_read_closed() || ev.is_error();
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {} // the mailbox is drained below, every turn
                    Token(t) if t >= PEER_BASE => self.on_peer_event(
                        t - PEER_BASE,
                        ev.is_readable(),
                        ev.is_writable(),
                        hangup,
                    ),
                    Token(t) => {
                        if ev.is_readable() || hangup {
                            self.read_conn(t, hangup);
                        }
                        if ev.is_writable() {
                            self.mark_dirty(t);
                        }
                    }
                }
            }
            self.drain_inbox();
            self.before_sleep();
            if self.shutdown_step() {
                break;
            }
        }
        log::debug!("core {} stopped", self.ctx.id);
    }

    /// Answers the waiters of overdue loads and peer requests.
    fn expire(&mut self) {
        let mut effects = std::mem::take(&mut self.ctx.effects);
        self.ctx.shard.expire(self.ctx.now, &mut effects);
        self.ctx.effects = effects;
        self.ctx.drain_effects(None);
        self.expire_peer_requests();
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if self.grant_freed && !self.mem_paused.is_empty() {
            return Some(Duration::ZERO);
        }
        let sweep = (!self.conns.is_empty()).then_some(self.next_sweep);
        let deadline = [
            self.ctx.shard.next_deadline(),
            self.next_peer_deadline(),
            sweep,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|d| d.saturating_duration_since(now));
        if self.ctx.draining {
            Some(deadline.map_or(DRAIN_TICK, |d| d.min(DRAIN_TICK)))
        } else {
            deadline
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut stream, _) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog for later.
                    log::warn!("core {}: accept failed: {e}", self.ctx.id);
                    return;
                }
            };
            let shared = &self.ctx.shared;
            if shared.connections.fetch_add(1, Ordering::Relaxed) >= shared.max_connections {
                shared.connections.fetch_sub(1, Ordering::Relaxed);
                self.ctx.stats.node.rejected_connections.inc();
                refuse(stream, shared.max_connections);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let token = entry.key();
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("core {}: cannot register connection: {e}", self.ctx.id);
                shared.connections.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            self.next_gen = self.next_gen.wrapping_add(1);
            entry.insert(Conn::new(
                stream,
                shared.limits,
                self.next_gen,
                self.ctx.now,
            ));
            self.ctx.stats.node.total_connections.inc();
            self.ctx
                .stats
                .node
                .curr_connections
                .set(self.conns.len() as u64);
        }
    }

    /// Reads and handles frames until the socket is drained, the connection is
    /// backpressured or held back by the buffer memory limit, or it is closing.
    /// `hangup` says the event also reported the peer's FIN (or an error), which a
    /// short read would not reach: read to the end.
    fn read_conn(&mut self, token: usize, hangup: bool) {
        let Core {
            conns,
            ctx,
            limits,
            buffered,
            others,
            mem_paused,
            grant,
            grant_freed,
            ..
        } = self;
        let Some(conn) = conns.get_mut(token) else {
            return;
        };
        let now = ctx.now;
        // Whole frames left buffered when backpressure stopped the decoding go first.
        if conn.rbuf.buffered() > 0 && !conn.closing && !conn.backpressured() && !ctx.draining {
            ctx.handle_frames(token, conn);
            conn.after_input(now);
        }
        // Past a SHARD that moves the connection, the socket is the next core's to read.
        let mut handoff = conn.handoff;
        // Past the limit a connection may still read into the buffer it has (that
        // costs nothing, and lets its frame complete and free it), unless it needs a
        // larger one or holds more than a fair share of the limit in answers (each
        // request read would queue more).
        loop {
            if conn.closing || ctx.draining || handoff.is_some() {
                break;
            }
            if conn.backpressured() {
                conn.read_paused = true;
                break;
            }
            if conn.read_closed {
                break;
            }
            account(buffered, conn);
            release_grant(grant, grant_freed, token, conn);
            let granted = grant.is_some_and(|(t, _)| t == token);
            if !granted
                && *buffered + *others > limits.max_buffer_memory
                && (conn.rbuf.needs_growth() || conn.out.mem() > fair(limits, &ctx.shared))
            {
                if grant.is_none() && conn.rbuf.needs_growth() && conn.out.is_empty() {
                    // The core's one frame allowed to grow past the limit.
                    *grant = Some((token, conn.rbuf.frames()));
                    conn.mem_paused = false;
                    // It is read now. Left set (a paused connection woken by a
                    // readable event), release_grant would take the grant straight
                    // back and this loop would spin forever, starving the core.
                    conn.read_paused = false;
                    continue;
                }
                conn.read_paused = true;
                if !conn.mem_paused {
                    conn.mem_paused = true;
                    mem_paused.push(token);
                    ctx.stats.node.buffer_memory_pauses.inc();
                }
                break;
            }
            match read_into(&mut conn.stream, &mut conn.rbuf) {
                ReadStep::Closed => {
                    conn.read_closed = true;
                }
                ReadStep::Data { short, .. } => {
                    ctx.handle_frames(token, conn);
                    conn.after_input(now);
                    handoff = conn.handoff;
                    if handoff.is_some() {
                        break;
                    }
                    if short && !hangup {
                        // A short read emptied the socket; new data raises a new
                        // edge, so the read that would only say WouldBlock is skipped.
                        break;
                    }
                }
                ReadStep::WouldBlock => break,
                ReadStep::Failed(_) => {
                    // Reset by the peer: nothing more can be written either.
                    conn.read_closed = true;
                    conn.closing = true;
                    conn.pending = 0;
                    conn.out = OutQueue::default();
                }
            }
        }
        if conn.backpressured() && !conn.closing && !ctx.draining {
            // Also after a short read: frames may wait undecoded for the client to read.
            conn.read_paused = true;
        }
        release_grant(grant, grant_freed, token, conn);
        // A drained large read buffer is not kept while the connection waits.
        conn.rbuf.trim();
        account(buffered, conn);
        if !conn.dirty {
            conn.dirty = true;
            ctx.dirty.push(token);
        }
        if let Some(core) = handoff {
            self.hand_off(token, core);
        }
    }

    /// Moves connection `token` to core `core`, which asked for it with SHARD: it
    /// leaves this core's poll, slab and memory count with its buffered bytes and
    /// unsent answers, and the other core registers it and goes on (no request on it
    /// is in flight, so no answer is addressed to it here).
    fn hand_off(&mut self, token: usize, core: usize) {
        let Some(mut conn) = self.conns.try_remove(token) else {
            return;
        };
        self.buffered -= conn.accounted;
        conn.accounted = 0;
        if self.grant.is_some_and(|(t, _)| t == token) {
            self.grant = None;
            self.grant_freed = true;
        }
        let _ = self.poll.registry().deregister(&mut conn.stream);
        conn.handoff = None;
        conn.dirty = false;
        conn.read_paused = false;
        conn.mem_paused = false;
        self.ctx.stats.node.shard_handoffs.inc();
        self.ctx
            .stats
            .node
            .curr_connections
            .set(self.conns.len() as u64);
        self.ctx.outboxes[core].push_conn(Box::new(conn));
    }

    /// Takes over a connection another core handed to this one (see `hand_off`).
    fn adopt(&mut self, conn: Box<Conn>) {
        let mut conn = *conn;
        let entry = self.conns.vacant_entry();
        let token = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut conn.stream,
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("core {}: cannot take over a connection: {e}", self.ctx.id);
            self.ctx.shared.connections.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.next_gen = self.next_gen.wrapping_add(1);
        conn.gen = self.next_gen;
        entry.insert(conn);
        self.ctx
            .stats
            .node
            .curr_connections
            .set(self.conns.len() as u64);
        // Frames that came behind the SHARD, then whatever the socket holds.
        self.read_conn(token, false);
        self.mark_dirty(token);
    }

    /// The other cores' published connection buffer totals.
    fn others_buffered(&self) -> usize {
        let me = self.ctx.id;
        self.ctx
            .shared
            .registry
            .cores
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .map(|(_, c)| c.node.conn_buffer_bytes.get() as usize)
            .sum()
    }

    /// Resumes the connections the buffer memory limit paused once usage is back
    /// under 7/8 of the limit (the gap keeps them from flapping).
    fn resume_mem_paused(&mut self) {
        if self.mem_paused.is_empty() || self.ctx.draining {
            return;
        }
        let low = self.limits.max_buffer_memory / 8 * 7;
        let freed = std::mem::take(&mut self.grant_freed);
        if self.buffered + self.others > low && !(freed && self.grant.is_none()) {
            return;
        }
        for token in std::mem::take(&mut self.mem_paused) {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            if !conn.mem_paused {
                continue;
            }
            conn.mem_paused = false;
            conn.read_paused = false;
            // Its frame waited for memory, not for its client.
            if conn.frame_started.is_some() {
                conn.frame_started = Some(self.ctx.now);
            }
            self.read_conn(token, false);
        }
    }

    /// Once per [`ConnLimits::sweep_interval`]: closes connections past their idle
    /// or frame timeout, and frees the empty buffers of connections that went quiet.
    fn sweep(&mut self) {
        let now = self.ctx.now;
        self.next_sweep = now + self.limits.sweep_interval();
        let mut expired: Vec<(usize, Expiry)> = Vec::new();
        for (token, conn) in self.conns.iter_mut() {
            if conn.closing {
                // Closing after a fatal error, once its error frame is written: a
                // client that does not take it is not waited for forever.
                let linger = self.limits.frame_timeout.unwrap_or(CLOSING_LINGER);
                if now.saturating_duration_since(conn.last_active) >= linger {
                    expired.push((token, Expiry::Linger));
                }
                continue;
            }
            if let (Some(limit), Some(since)) = (self.limits.frame_timeout, conn.frame_started) {
                if conn.read_paused && !conn.mem_paused {
                    // Paused because its client does not read its answers: the
                    // frame's clock waits with it.
                    conn.frame_started = Some(now);
                } else if now.saturating_duration_since(since) >= limit {
                    expired.push((token, Expiry::Frame));
                    continue;
                }
            }
            let quiet = now.saturating_duration_since(conn.last_active);
            if let Some(limit) = self.limits.idle_timeout {
                if conn.pending == 0 && quiet >= limit {
                    expired.push((token, Expiry::Idle));
                    continue;
                }
            }
            if quiet >= RELEASE_IDLE_BUFFERS_AFTER && conn.out.is_empty() {
                conn.rbuf.release_if_empty();
                conn.out.release_spare();
                account(&mut self.buffered, conn);
            }
        }
        for (token, why) in expired {
            match why {
                Expiry::Frame => {
                    self.ctx.stats.node.frame_timeouts.inc();
                    self.close_frame_timeout(token);
                }
                Expiry::Idle => {
                    self.ctx.stats.node.idle_timeouts.inc();
                    log::debug!(
                        "core {}: closing a connection idle for --idle-timeout",
                        self.ctx.id
                    );
                    self.close(token);
                }
                Expiry::Linger => self.close(token),
            }
        }
    }

    /// Tells a connection whose frame did not arrive in time why it is closed (one
    /// non-blocking write of a TIMEOUT frame with that frame's request id), then
    /// closes it.
    fn close_frame_timeout(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let limit = self.limits.frame_timeout.unwrap_or_default();
        let (id, opcode) = conn
            .rbuf
            .pending_header()
            .map_or((0, 0), |h| (h.request_id, h.opcode));
        let msg = format!(
            "frame not received whole within --frame-timeout ({}ms); closing",
            limit.as_millis()
        );
        log::debug!("core {}: {msg}", self.ctx.id);
        conn.out
            .push_response(&Response::error(id, opcode, Status::Timeout, &msg), None);
        let _ = conn.out.write_to(&mut conn.stream);
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        self.close(token);
    }

    fn mark_dirty(&mut self, token: usize) {
        if let Some(conn) = self.conns.get_mut(token) {
            if !conn.dirty {
                conn.dirty = true;
                self.ctx.dirty.push(token);
            }
        }
    }

    fn drain_inbox(&mut self) {
        while let Ok(msg) = self.ctx.inbox.try_recv() {
            match msg {
                Msg::Keys(batch) => {
                    let ctx = &mut self.ctx;
                    batch.for_each(|group, key, op, waiter| {
                        ctx.apply_key_op(group as usize, key, op, waiter);
                    });
                    ctx.drain_effects(None);
                }
                Msg::Replies(replies) => {
                    for (waiter, reply) in replies {
                        self.deliver_local(waiter, &reply);
                    }
                }
                Msg::LoadDone {
                    group,
                    id,
                    result,
                    started,
                } => {
                    let g = group as usize;
                    self.ctx.stats.groups[g]
                        .origin_load
                        .observe(self.ctx.now.saturating_duration_since(started));
                    if let Err(e) = &result {
                        self.log_origin_error(g, id, e);
                    }
                    let mut effects = std::mem::take(&mut self.ctx.effects);
                    let topology = &self.ctx.topology;
                    self.ctx.shard.on_load_done(
                        self.ctx.now,
                        group as usize,
                        id,
                        result,
                        |key| topology.owner(key) == Owner::Local,
                        &mut effects,
                    );
                    self.ctx.effects = effects;
                    self.ctx.drain_effects(None);
                }
                Msg::Topology(t) => self.set_topology(t),
                Msg::Adopt(conn) => self.adopt(conn),
            }
            self.deliver_later();
        }
    }

    /// Logs a failed origin load, at most once per group per
    /// [`crate::shared::ORIGIN_ERROR_LOG_INTERVAL`] across the node, saying how many were left out.
    fn log_origin_error(&self, g: usize, id: LoadId, e: &OriginError) {
        let shared = &self.ctx.shared;
        let now_ms = self
            .ctx
            .now
            .saturating_duration_since(shared.registry.started)
            .as_millis() as u64;
        let Some(suppressed) = shared.groups[g].origin_errors.check(now_ms) else {
            return;
        };
        let key = self.ctx.shard.loading_key(g, id).unwrap_or(b"?");
        let shown = &key[..key.len().min(128)];
        let more = if suppressed > 0 {
            format!(" ({suppressed} more origin errors in this group since the last report)")
        } else {
            String::new()
        };
        log::warn!(
            "group {}: origin load of key `{}` failed: {e}{more}",
            shared.groups[g].name,
            String::from_utf8_lossy(shown).escape_debug()
        );
    }

    fn deliver_later(&mut self) {
        while let Some((w, reply)) = self.ctx.later.pop() {
            self.deliver_local(w, &reply);
        }
    }

    /// Queues a reply on one of this core's connections, if it is still the one that asked.
    fn deliver_local(&mut self, w: Waiter, reply: &Reply) {
        let token = w.token as usize;
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if conn.gen != w.conn_gen {
            return;
        }
        write_reply(&mut conn.out, &w, reply);
        conn.pending = conn.pending.saturating_sub(1);
        if conn.out.len() > self.limits.max_output {
            self.close_overflow(token);
            return;
        }
        account(&mut self.buffered, conn);
        if !conn.dirty {
            conn.dirty = true;
            self.ctx.dirty.push(token);
        }
    }

    /// Closes a connection whose unsent output passed `--max-conn-output`: its client
    /// stopped reading while answers kept arriving.
    fn close_overflow(&mut self, token: usize) {
        self.ctx.stats.node.output_overflows.inc();
        log::debug!(
            "core {}: closing a connection with more than {} bytes of unsent output",
            self.ctx.id,
            self.limits.max_output
        );
        if let Some(conn) = self.conns.get_mut(token) {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
        self.close(token);
    }

    /// Redis's beforeSleep: send what was queued for peers, write what is queued for
    /// clients, resume paused readers, close finished connections, and wake the
    /// sleeping cores that were sent messages.
    fn before_sleep(&mut self) {
        self.run_peer_actions();
        self.flush_peers();
        self.deliver_later();
        self.resume_mem_paused();
        while let Some(token) = self.ctx.dirty.pop() {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            conn.dirty = false;
            let mut resume = false;
            if !conn.out.is_empty() {
                let queued = conn.out.len();
                let flushed = conn.out.write_to(&mut conn.stream);
                if conn.out.len() < queued {
                    conn.last_active = self.ctx.now;
                }
                match flushed {
                    Ok(Flushed::All) => resume = conn.read_paused,
                    Ok(Flushed::Blocked) => {}
                    Err(_) => {
                        self.close(token);
                        continue;
                    }
                }
                if conn.out.len() > self.limits.max_output {
                    self.close_overflow(token);
                    continue;
                }
                account(&mut self.buffered, conn);
            } else {
                resume = conn.read_paused;
            }
            if resume && !conn.backpressured() && !conn.mem_paused && !self.ctx.draining {
                conn.read_paused = false;
                self.read_conn(token, false);
                self.run_peer_actions();
                self.flush_peers();
                self.deliver_later();
                continue;
            }
            if conn.finished() {
                self.close(token);
            }
        }
        for ob in &mut self.ctx.outboxes {
            ob.flush();
        }
        let gauge = &self.ctx.stats.node.conn_buffer_bytes;
        if gauge.get() != self.buffered as u64 {
            gauge.set(self.buffered as u64);
        }
    }

    fn close(&mut self, token: usize) {
        if let Some(mut conn) = self.conns.try_remove(token) {
            self.buffered -= conn.accounted;
            if self.grant.is_some_and(|(t, _)| t == token) {
                self.grant = None;
                self.grant_freed = true;
            }
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.ctx.shared.connections.fetch_sub(1, Ordering::Relaxed);
            self.ctx
                .stats
                .node
                .curr_connections
                .set(self.conns.len() as u64);
        }
    }

    /// Handles shutdown; returns true when the loop should exit.
    fn shutdown_step(&mut self) -> bool {
        let shared = self.ctx.shared.clone();
        if !shared.shutdown.load(Ordering::Relaxed) {
            return false;
        }
        let now = self.ctx.now;
        if !self.ctx.draining {
            self.ctx.draining = true;
            self.drain_deadline = Some(now + shared.drain_timeout);
            if let Some(mut l) = self.listener.take() {
                let _ = self.poll.registry().deregister(&mut l);
            }
            // Stop reading; answer what was already read, then close.
            let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
            for t in tokens {
                if let Some(c) = self.conns.get_mut(t) {
                    c.read_closed = true;
                }
                self.mark_dirty(t);
            }
            self.before_sleep();
        }
        if self.conns.is_empty() && !self.reported_idle {
            self.reported_idle = true;
            shared.idle_cores.fetch_add(1, Ordering::AcqRel);
        }
        let all_idle = shared.idle_cores.load(Ordering::Acquire) >= shared.threads;
        let overdue = self.drain_deadline.is_some_and(|d| now >= d);
        all_idle || overdue
    }
}

/// Why the sweep closes a connection.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    /// A frame did not arrive whole within `--frame-timeout`.
    Frame,
    /// Nothing happened for `--idle-timeout`.
    Idle,
    /// Closing after a fatal error, its client took none of its remaining output
    /// for `--frame-timeout` (or [`CLOSING_LINGER`] with that off).
    Linger,
}

/// How long a connection closing after a fatal error waits, when `--frame-timeout`
/// is off, for its client to take its remaining output before it is closed anyway.
const CLOSING_LINGER: Duration = Duration::from_secs(30);

/// A connection's share of `--max-buffer-memory`: the limit over the node's open
/// connections.
fn fair(limits: &ConnLimits, shared: &Shared) -> usize {
    limits.max_buffer_memory / shared.connections.load(Ordering::Relaxed).max(1)
}

/// Takes the grow-past-the-limit grant back from `conn` once the frame it was given
/// for is complete (or nothing is in progress any more), or once the connection is
/// paused because its client does not read (it must not hold the grant meanwhile).
fn release_grant(grant: &mut Option<(usize, u64)>, freed: &mut bool, token: usize, conn: &Conn) {
    if let Some((t, frames)) = *grant {
        let done = conn.rbuf.frames() != frames || !conn.rbuf.in_frame();
        if t == token && (done || conn.read_paused) {
            *grant = None;
            *freed = true;
        }
    }
}

/// Brings a core's total of connection buffer memory up to date with `conn`'s.
fn account(total: &mut usize, conn: &mut Conn) {
    let now = conn.mem();
    *total = *total + now - conn.accounted;
    conn.accounted = now;
}

/// Tells a connection over the limit why it is closed, without blocking.
fn refuse(mut stream: TcpStream, max: usize) {
    let msg = format!("server is at its connection limit ({max}); try again later");
    let mut buf = Vec::new();
    Response::error(0, 0, Status::Unavailable, &msg).encode(&mut buf);
    let _ = stream.write(&buf);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
