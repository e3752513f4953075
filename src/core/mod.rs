//! A core: one thread running one mio event loop over its own listener, its own
//! connections and its own shard of every group. It is the only code that touches mio.
//!
//! Each loop turn: accept until WouldBlock; read each readable connection until
//! WouldBlock, decoding and dispatching every whole frame as it arrives; drain the
//! mailbox; expire overdue loads; then, before sleeping, write every connection that
//! has output and wake every core that was sent messages (one wake per core per turn).

pub mod conn;

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::{
    shard_of, Frame, HelloInfo, KeyRef, MemberList, Request, RequestKind, Response, ResponseBody,
    StatsList, Status,
};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::mailbox::{Inbox, KeyOp, Msg, Outbox, Remote, Waiter};
use crate::origin::{LoadJob, LoaderHandle};
use crate::shard::{Effect, GroupSpec, Reply, Shard};
use crate::shared::Shared;
use crate::stats::CoreStats;
use crate::value::ByteView;
use conn::{Conn, Flushed, OutQueue};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);
/// Poll interval while draining at shutdown, to notice when every core is done.
const DRAIN_TICK: Duration = Duration::from_millis(10);
const EVENTS_CAPACITY: usize = 1024;

/// Everything a core owns.
pub struct Core {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    ctx: Ctx,
    next_gen: u32,
    drain_deadline: Option<Instant>,
    reported_idle: bool,
}

/// The parts of a core that request handling needs while a connection is borrowed.
struct Ctx {
    id: usize,
    shared: Arc<Shared>,
    shard: Shard<Waiter>,
    inbox: Inbox,
    outboxes: Vec<Outbox>,
    me: Remote,
    loader: LoaderHandle,
    stats: Arc<CoreStats>,
    effects: Vec<Effect<Waiter>>,
    /// Replies for this core's connections produced while another one was borrowed.
    later: Vec<(Waiter, Reply)>,
    /// Connections with output to write before sleeping.
    dirty: Vec<usize>,
    now: Instant,
    draining: bool,
}

/// The connection whose frames are being handled: replies to it go straight to its queue.
struct Current<'a> {
    token: usize,
    gen: u32,
    out: &'a mut OutQueue,
    pending: &'a mut usize,
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
}

/// The token a core's waker must be registered with.
pub const WAKER_TOKEN: Token = WAKER;

impl Core {
    /// Builds a core and registers its listener. Call it on the core's own thread.
    pub fn new(p: CoreParts) -> io::Result<Core> {
        let mut listener = p.listener;
        p.poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Core {
            poll: p.poll,
            listener: Some(listener),
            conns: Slab::with_capacity(1024),
            ctx: Ctx {
                id: p.id,
                shared: p.shared,
                shard: Shard::new(p.groups, p.load_timeout, p.stats.clone()),
                inbox: p.inbox,
                outboxes: p.remotes.into_iter().map(Outbox::new).collect(),
                me: p.me,
                loader: p.loader,
                stats: p.stats,
                effects: Vec::with_capacity(64),
                later: Vec::new(),
                dirty: Vec::with_capacity(64),
                now: Instant::now(),
                draining: false,
            },
            next_gen: 0,
            drain_deadline: None,
            reported_idle: false,
        })
    }

    /// Runs the event loop until shutdown has drained every core (or timed out).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("core {}: poll failed, stopping: {e}", self.ctx.id);
                break;
            }
            self.ctx.now = Instant::now();
            // Expire first: a load that finished after its deadline must not beat
            // the timeout just because both were noticed in the same turn.
            self.expire_loads();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => self.drain_inbox(),
                    Token(t) => {
                        let hangup = ev.is_read_closed() || ev.is_error();
                        if ev.is_readable() || hangup {
                            self.read_conn(t, hangup);
                        }
                        if ev.is_writable() {
                            self.mark_dirty(t);
                        }
                    }
                }
            }
            self.expire_loads();
            self.before_sleep();
            if self.shutdown_step() {
                break;
            }
        }
        log::debug!("core {} stopped", self.ctx.id);
    }

    /// Answers the waiters of overdue loads with TIMEOUT.
    fn expire_loads(&mut self) {
        let mut effects = std::mem::take(&mut self.ctx.effects);
        self.ctx.shard.expire(self.ctx.now, &mut effects);
        self.ctx.effects = effects;
        self.ctx.drain_effects(None);
    }

    fn poll_timeout(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let deadline = self
            .ctx
            .shard
            .next_deadline()
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
                Msg::LoadDone { group, id, result } => {
                    let mut effects = std::mem::take(&mut self.ctx.effects);
                    self.ctx.shard.on_load_done(
                        self.ctx.now,
                        group as usize,
                        id,
                        result,
                        &mut effects,
                    );
                    self.ctx.effects = effects;
                    self.ctx.drain_effects(None);
                }
            }
            self.deliver_later();
        }
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

    /// Redis's beforeSleep: write what is queued, resume paused readers, close
    /// finished connections, and wake the cores that were sent messages.
    fn before_sleep(&mut self) {
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

impl Ctx {
    /// Decodes and handles every whole frame buffered on `conn`.
    fn handle_frames(&mut self, token: usize, conn: &mut Conn) {
        let Conn {
            rbuf,
            out,
            pending,
            gen,
            closing,
            ..
        } = conn;
        let mut cur = Current {
            token,
            gen: *gen,
            out,
            pending,
        };
        loop {
            match rbuf.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Request(req))) => {
                    self.stats.node.requests.inc();
                    *cur.pending += 1;
                    self.handle_request(req, &mut cur);
                }
                Ok(Some(Frame::Response(r))) => {
                    self.stats.node.protocol_errors.inc();
                    cur.out.push_response(
                        &Response::error(
                            r.id,
                            r.opcode,
                            Status::BadRequest,
                            "expected a request frame, got a response",
                        ),
                        None,
                    );
                    *closing = true;
                    break;
                }
                Err(e) => {
                    self.stats.node.protocol_errors.inc();
                    let msg = e.error.to_string();
                    cur.out.push_response(
                        &Response::error(e.request_id, e.opcode, e.error.status(), &msg),
                        None,
                    );
                    if e.error.is_fatal() {
                        *closing = true;
                        break;
                    }
                }
            }
        }
    }

    fn handle_request(&mut self, req: Request<'_>, cur: &mut Current<'_>) {
        let w = Waiter {
            core: self.id as u16,
            token: cur.token as u32,
            conn_gen: cur.gen,
            req_id: req.id,
            opcode: req.kind.opcode() as u8,
        };
        match req.kind {
            RequestKind::Get(k) => self.key_request(k, KeyOp::Get, w, cur),
            RequestKind::Fetch(k) => self.key_request(k, KeyOp::Fetch, w, cur),
            RequestKind::Set { key, ttl_ms, value } => {
                let op = KeyOp::Set {
                    value: ByteView::copy_from_slice(value),
                    ttl: (ttl_ms > 0).then(|| Duration::from_millis(ttl_ms)),
                };
                self.key_request(key, op, w, cur)
            }
            RequestKind::Delete(k) => self.key_request(k, KeyOp::Delete, w, cur),
            RequestKind::Invalidate(k) => self.key_request(k, KeyOp::Invalidate, w, cur),
            RequestKind::Ping(payload) => {
                reply_now(
                    cur,
                    &Response {
                        id: req.id,
                        opcode: w.opcode,
                        status: Status::Ok,
                        body: ResponseBody::Pong(payload),
                    },
                );
            }
            RequestKind::Stats => {
                let snapshot = self.shared.registry.snapshot();
                let body = StatsList::build(snapshot.iter().map(|(n, v)| (n.as_str(), *v)));
                let resp = match StatsList::parse(&body) {
                    Some(list) => Response {
                        id: req.id,
                        opcode: w.opcode,
                        status: Status::Ok,
                        body: ResponseBody::Stats(list),
                    },
                    None => {
                        Response::error(req.id, w.opcode, Status::Error, "stats encoding failed")
                    }
                };
                reply_now(cur, &resp);
            }
            RequestKind::Hello { .. } => {
                let ring = &self.shared.ring;
                let members = MemberList::build(ring.members());
                let resp = match MemberList::parse_prefix(&members) {
                    Some((list, _)) => Response {
                        id: req.id,
                        opcode: w.opcode,
                        status: Status::Ok,
                        body: ResponseBody::Hello(HelloInfo {
                            node_id: self.shared.node_id.as_bytes(),
                            ring_fingerprint: ring.fingerprint(),
                            vnodes: ring.vnodes(),
                            members: list,
                        }),
                    },
                    None => Response::error(
                        req.id,
                        w.opcode,
                        Status::Error,
                        "member list encoding failed",
                    ),
                };
                reply_now(cur, &resp);
            }
        }
    }

    /// Routes a keyed request to the core whose shard holds the key.
    fn key_request(&mut self, k: KeyRef<'_>, op: KeyOp, w: Waiter, cur: &mut Current<'_>) {
        let Some(g) = self.shared.group(k.group) else {
            let msg = format!(
                "no group named `{}` on this server",
                String::from_utf8_lossy(k.group)
            );
            reply_now(
                cur,
                &Response::error(w.req_id, w.opcode, Status::UnknownGroup, &msg),
            );
            return;
        };
        let shard = shard_of(k.key, self.shared.threads);
        if shard == self.id {
            self.apply_key_op(g, k.key, op, w);
            self.drain_effects(Some(cur));
        } else {
            self.outboxes[shard].push(Msg::Key {
                group: g as u32,
                key: k.key.into(),
                op,
                waiter: w,
            });
        }
    }

    /// Performs a keyed operation on this core's shard.
    fn apply_key_op(&mut self, g: usize, key: &[u8], op: KeyOp, w: Waiter) {
        let now = self.now;
        let reply = match op {
            KeyOp::Get => {
                self.shard.get(now, g, key, w, &mut self.effects);
                return;
            }
            KeyOp::Fetch => {
                self.stats.groups[g].server_requests.inc();
                self.shard.get(now, g, key, w, &mut self.effects);
                return;
            }
            KeyOp::Set { value, ttl } => self.shard.set(now, g, key, value, ttl),
            KeyOp::Delete => self.shard.delete(g, key),
            KeyOp::Invalidate => self.shard.invalidate(g, key),
        };
        self.effects.push(Effect::Reply(w, reply));
    }

    /// Carries out what the shard asked for.
    fn drain_effects(&mut self, mut cur: Option<&mut Current<'_>>) {
        let mut effects = std::mem::take(&mut self.effects);
        for e in effects.drain(..) {
            match e {
                Effect::Reply(w, reply) => self.deliver(w, reply, cur.as_deref_mut()),
                Effect::Load { group, id, key } => self.start_load(group, id, key),
            }
        }
        self.effects = effects;
    }

    fn deliver(&mut self, w: Waiter, reply: Reply, cur: Option<&mut Current<'_>>) {
        if w.core as usize != self.id {
            self.outboxes[w.core as usize].push(Msg::Reply { waiter: w, reply });
            return;
        }
        match cur {
            Some(c) if c.token == w.token as usize && c.gen == w.conn_gen => {
                write_reply(c.out, &w, &reply);
                *c.pending = c.pending.saturating_sub(1);
            }
            _ => self.later.push((w, reply)),
        }
    }

    fn start_load(&mut self, group: usize, id: u64, key: Box<[u8]>) {
        let me = self.me.clone();
        let done = Box::new(move |result| {
            me.send(Msg::LoadDone {
                group: group as u32,
                id,
                result,
            })
        });
        match &self.shared.groups[group].origin {
            Some(origin) => self.loader.submit(LoadJob {
                origin: origin.clone(),
                key,
                ctx: self.shared.load_ctx,
                done,
            }),
            None => done(Ok(None)),
        }
    }
}

fn reply_now(cur: &mut Current<'_>, resp: &Response<'_>) {
    cur.out.push_response(resp, None);
    *cur.pending = cur.pending.saturating_sub(1);
}

/// Encodes `reply` for waiter `w` onto a connection's output.
fn write_reply(out: &mut OutQueue, w: &Waiter, reply: &Reply) {
    let (status, body, value) = match reply {
        Reply::Value { value, ttl_ms } => (
            Status::Ok,
            ResponseBody::Value {
                ttl_ms: *ttl_ms,
                value,
            },
            Some(value),
        ),
        Reply::NotFound => (Status::NotFound, ResponseBody::Empty, None),
        Reply::Stored | Reply::Invalidated => (Status::Ok, ResponseBody::Empty, None),
        Reply::Deleted(removed) => (Status::Ok, ResponseBody::Deleted(*removed), None),
        Reply::Error { status, message } => {
            (*status, ResponseBody::Message(message.as_bytes()), None)
        }
    };
    out.push_response(
        &Response {
            id: w.req_id,
            opcode: w.opcode,
            status,
            body,
        },
        value,
    );
}

/// Tells a connection over the limit why it is closed, without blocking.
fn refuse(mut stream: TcpStream, max: usize) {
    let msg = format!("server is at its connection limit ({max}); try again later");
    let mut buf = Vec::new();
    Response::error(0, 0, Status::Unavailable, &msg).encode(&mut buf);
    let _ = stream.write(&buf);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
