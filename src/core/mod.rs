//! A core: one thread running one mio event loop over its own listener, its own
//! connections (clients' and, outgoing, to peers) and its own shard of every group.
//! It is the only code that touches mio.
//!
//! Each loop turn: expire overdue loads; accept until WouldBlock; read each readable
//! connection, decoding and handling every whole frame as it arrives; drain the
//! mailbox; send what was queued for peers; then, before sleeping, write every
//! connection that has output and wake the cores that were sent messages and are
//! about to sleep (at most one wake per core per turn, however many messages).

pub mod conn;
mod dispatch;
mod peers;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::{Response, Status};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::mailbox::{Inbox, Msg, Outbox, Remote, Waiter};
use crate::origin::{LoaderHandle, OriginError};
use crate::peer::PeerConn;
use crate::shard::inflight::LoadId;
use crate::shard::{GroupSpec, Reply, Shard};
use crate::shared::Shared;
use crate::stats::CoreStats;
use crate::topology::{Owner, Topology};
use conn::{Conn, Flushed, OutQueue};
use dispatch::{write_reply, Ctx};

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
            // Expire first: an answer that arrives after its deadline must not beat
            // the timeout just because both are noticed in the same turn.
            self.expire();
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
        let deadline = [self.ctx.shard.next_deadline(), self.next_peer_deadline()]
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
            entry.insert(Conn::new(stream, shared.limits, self.next_gen));
            self.ctx.stats.node.total_connections.inc();
            self.ctx
                .stats
                .node
                .curr_connections
                .set(self.conns.len() as u64);
        }
    }

    /// Reads and handles frames until the socket is drained, the connection is
    /// backpressured, or it is closing. `hangup` says the event also reported the
    /// peer's FIN (or an error), which a short read would not reach: read to the end.
    fn read_conn(&mut self, token: usize, hangup: bool) {
        let Core { conns, ctx, .. } = self;
        let Some(conn) = conns.get_mut(token) else {
            return;
        };
        loop {
            if conn.closing || conn.read_closed {
                break;
            }
            if conn.backpressured() || ctx.draining {
                conn.read_paused = true;
                break;
            }
            let space = conn.rbuf.read_space();
            let room = space.len();
            match conn.stream.read(space) {
                Ok(0) => {
                    conn.read_closed = true;
                }
                Ok(n) => {
                    conn.rbuf.commit(n);
                    ctx.handle_frames(token, conn);
                    if n < room && !hangup {
                        // A short read emptied the socket; new data raises a new
                        // edge, so the read that would only say WouldBlock is skipped.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    // Reset by the peer: nothing more can be written either.
                    conn.read_closed = true;
                    conn.closing = true;
                    conn.pending = 0;
                    conn.out = OutQueue::default();
                }
            }
        }
        if !conn.dirty {
            conn.dirty = true;
            ctx.dirty.push(token);
        }
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
                Msg::Key {
                    group,
                    key,
                    op,
                    waiter,
                } => {
                    self.ctx.apply_key_op(group as usize, &key, op, waiter);
                    self.ctx.drain_effects(None);
                }
                Msg::Reply { waiter, reply } => self.deliver_local(waiter, &reply),
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
        if !conn.dirty {
            conn.dirty = true;
            self.ctx.dirty.push(token);
        }
    }

    /// Redis's beforeSleep: send what was queued for peers, write what is queued for
    /// clients, resume paused readers, close finished connections, and wake the
    /// sleeping cores that were sent messages.
    fn before_sleep(&mut self) {
        self.run_peer_actions();
        self.flush_peers();
        self.deliver_later();
        while let Some(token) = self.ctx.dirty.pop() {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            conn.dirty = false;
            let mut resume = false;
            if !conn.out.is_empty() {
                match conn.out.write_to(&mut conn.stream) {
                    Ok(Flushed::All) => resume = conn.read_paused,
                    Ok(Flushed::Blocked) => {}
                    Err(_) => {
                        self.close(token);
                        continue;
                    }
                }
            } else {
                resume = conn.read_paused;
            }
            if resume && !conn.backpressured() && !self.ctx.draining {
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
    }

    fn close(&mut self, token: usize) {
        if let Some(mut conn) = self.conns.try_remove(token) {
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

/// Tells a connection over the limit why it is closed, without blocking.
fn refuse(mut stream: TcpStream, max: usize) {
    let msg = format!("server is at its connection limit ({max}); try again later");
    let mut buf = Vec::new();
    Response::error(0, 0, Status::Unavailable, &msg).encode(&mut buf);
    let _ = stream.write(&buf);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
