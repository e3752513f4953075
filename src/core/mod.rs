//! A core: one thread running one mio event loop over its own listener, its own
//! connections (clients' and, outgoing, to peers) and its own shard of every group.
//! It is the only code that touches mio.
//!
//! Each loop turn: expire overdue loads and peer requests; accept until WouldBlock;
//! read each readable connection, decoding and handling every whole frame as it
//! arrives; read the answers of peer connections; drain the mailbox; then, before
//! sleeping, write every connection and peer connection that has output and wake
//! the cores that were sent messages and are about to sleep (at most one wake per
//! core per turn, however many messages). Everything a step makes the core do goes
//! through one effect queue, run before the step returns (`effects.rs`, with the
//! ordering rules).
//!
//! Files: `clients.rs` (accept, read, write, hand-over, close), `limits.rs` (timeouts
//! and buffer memory), `routing.rs` (requests and the cluster's routing rules),
//! `handshake.rs` (HELLO, CHALLENGE, AUTH, SHARD, STATS), `effects.rs` (the effect
//! queue), `peers.rs` and `peer_replies.rs` (the loop's side of peer connections
//! and what their answers mean), `mailbox.rs` (messages between cores), `conn.rs`
//! (a client connection's state).
//!
//! Connection limits cost no syscall and no heap operation per request: each read
//! stamps the connection with the turn's clock, and a sweep over the core's
//! connections every [`ConnLimits::sweep_interval`] closes those past
//! `--idle-timeout` or `--frame-timeout` and frees idle connections' buffers. Buffer
//! memory is counted incrementally per connection; each core publishes its total once
//! per turn and reads the other cores' totals once per turn to enforce
//! `--max-buffer-memory` node-wide.

mod clients;
pub mod conn;
mod effects;
mod handshake;
mod limits;
pub mod mailbox;
pub mod memcache;
mod peer_replies;
mod peers;
mod routing;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::origin::{LoaderHandle, OriginError};
use crate::peer::PeerConn;
use crate::shard::inflight::LoadId;
use crate::shard::{GroupSpec, Shard};
use crate::shared::Shared;
use crate::stats::CoreStats;
use crate::topology::{Owner, Topology};
use conn::{Conn, ConnLimits};
use effects::Effect;
use mailbox::{Inbox, Msg, Outbox, Remote};
use routing::Ctx;

const LISTENER: Token = Token(usize::MAX - 1);
/// The memcached front end's listener (`--memcache-listen`).
const MC_LISTENER: Token = Token(usize::MAX - 2);
const WAKER: Token = Token(usize::MAX);
/// Tokens at and above this are peer connections (slab index + PEER_BASE).
const PEER_BASE: usize = 1 << (usize::BITS - 2);
/// Poll interval while draining at shutdown, to notice when every core is done.
const DRAIN_TICK: Duration = Duration::from_millis(10);
const EVENTS_CAPACITY: usize = 1024;
/// How far ahead in a batch of hopped requests their items are prefetched: each
/// request costs well over a memory access to handle, so a few suffice.
const HOP_PREFETCH_AHEAD: usize = 8;

/// The token a core's waker must be registered with.
pub const WAKER_TOKEN: Token = WAKER;

/// Everything a core owns.
pub struct Core {
    poll: Poll,
    listener: Option<TcpListener>,
    /// The memcached front end's listener, if `--memcache-listen` is set.
    mc_listener: Option<TcpListener>,
    conns: Slab<Conn>,
    peers: Slab<PeerConn>,
    peer_by_name: HashMap<String, usize>,
    peer_dirty: Vec<usize>,
    /// Client connections with output to write before sleeping: the turn's write
    /// set (not an effect queue; see `effects.rs`).
    dirty: Vec<usize>,
    /// Connections whose output waits for answers from other cores (`Conn::hops`),
    /// back in the write set next turn; and the earliest end of their waits.
    held: Vec<usize>,
    held_until: Option<Instant>,
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
    /// Its memcached front-end listener (`--memcache-listen`): its connections
    /// speak memcached's protocols, and every write carries item metadata.
    pub mc_listener: Option<TcpListener>,
    /// How memcached keys map to groups.
    pub mc: memcache::McSettings,
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
        let mut mc_listener = p.mc_listener;
        if let Some(l) = &mut mc_listener {
            p.poll
                .registry()
                .register(l, MC_LISTENER, Interest::READABLE)?;
        }
        let mut shard = Shard::new(p.groups, p.load_timeout, p.stats.clone());
        if mc_listener.is_some() {
            // Every write carries flags and a CAS, so `gets` has one for every key.
            shard.enable_meta(p.id as u16, p.seed);
        }
        p.stats.node.members.set(p.topology.ring.len() as u64);
        p.stats
            .node
            .ring_fingerprint
            .set(p.topology.ring.fingerprint());
        Ok(Core {
            poll: p.poll,
            listener: Some(listener),
            mc_listener,
            conns: Slab::with_capacity(1024),
            peers: Slab::new(),
            peer_by_name: HashMap::new(),
            peer_dirty: Vec::new(),
            dirty: Vec::with_capacity(64),
            held: Vec::new(),
            held_until: None,
            ctx: Ctx {
                id: p.id,
                shared: p.shared,
                shard,
                inbox: p.inbox,
                outboxes: p.remotes.into_iter().map(Outbox::new).collect(),
                me: p.me,
                loader: p.loader,
                stats: p.stats,
                topology: p.topology,
                queue: VecDeque::with_capacity(64),
                shard_out: Vec::with_capacity(64),
                scratch: String::new(),
                now: Instant::now(),
                mc: p.mc,
                draining: false,
                rng: p.seed | 1,
                writes: Slab::new(),
                mc_key: Vec::new(),
                flushes: Slab::new(),
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
                    LISTENER => self.accept(false),
                    MC_LISTENER => self.accept(true),
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
        self.ctx.shard.expire(self.ctx.now, &mut self.ctx.shard_out);
        self.ctx.take_shard_effects();
        self.run_effects(None);
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
            self.held_until,
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

    /// Handles every message in the mailbox, running the effect queue after each.
    fn drain_inbox(&mut self) {
        while let Ok(msg) = self.ctx.inbox.try_recv() {
            match msg {
                Msg::Keys(batch) => {
                    // As a connection's pipelined batch (`handle_frames`): start the
                    // lookups' cache misses ahead of the lookups.
                    let ctx = &mut self.ctx;
                    batch.peek_reads(HOP_PREFETCH_AHEAD, |g, key| {
                        ctx.prefetch_key(g as usize, key);
                    });
                    batch.for_each(HOP_PREFETCH_AHEAD, |group, key, op, waiter, ahead| {
                        if let Some((g, key)) = ahead {
                            ctx.prefetch_key(g as usize, key);
                        }
                        ctx.apply_key_op(group as usize, key, op, waiter);
                    });
                }
                Msg::Replies(batch) => {
                    let replies = batch.split(|w, frame| {
                        self.hop_answered(&w);
                        self.deliver_frame(w, frame);
                    });
                    for (w, _) in &replies {
                        self.hop_answered(w);
                    }
                    let queue = &mut self.ctx.queue;
                    queue.extend(replies.into_iter().map(|(w, r)| Effect::Reply(w, r)));
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
                    let ctx = &mut self.ctx;
                    ctx.mc_key_before_load_done(g, id);
                    let topology = &ctx.topology;
                    ctx.shard.on_load_done(
                        ctx.now,
                        g,
                        id,
                        result,
                        |key| topology.owner(key) == Owner::Local,
                        &mut ctx.shard_out,
                    );
                    ctx.mc_attach_meta(g);
                    ctx.take_shard_effects();
                }
                Msg::Topology(t) => self.set_topology(t),
                Msg::Adopt(conn) => self.adopt(conn),
            }
            self.run_effects(None);
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

    /// Redis's beforeSleep: resume readers paused for memory, write what is queued
    /// for members and clients (resuming readers paused by backpressure), close
    /// finished connections, and send the turn's batched messages to other cores,
    /// waking those that sleep.
    fn before_sleep(&mut self) {
        // Empty by the effect queue's rules; run here as a guard.
        self.run_effects(None);
        self.resume_mem_paused();
        self.flush_peers();
        for t in std::mem::take(&mut self.held) {
            self.mark_dirty(t);
        }
        self.held_until = None;
        self.write_dirty();
        for ob in &mut self.ctx.outboxes {
            ob.flush();
        }
        let gauge = &self.ctx.stats.node.conn_buffer_bytes;
        if gauge.get() != self.buffered as u64 {
            gauge.set(self.buffered as u64);
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
            if let Some(mut l) = self.mc_listener.take() {
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
