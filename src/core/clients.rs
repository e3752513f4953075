//! Client connections on a core: accepting them (within `--max-connections`),
//! reading and decoding them (within the buffer memory limit), handing a connection
//! to another core (SHARD) or taking one over, writing their answers, and closing.

use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;

use groupcached_protocol::{Response, Status};
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::conn::{Conn, HOP_HOLD};
use super::limits::{account, fair, release_grant};
use super::Core;
use crate::net::{read_into, Flushed, OutQueue, ReadStep};

impl Core {
    /// Accepts connections until the listener would block; past
    /// `--max-connections` each is told why and closed.
    pub(super) fn accept(&mut self, memcache: bool) {
        loop {
            let listener = if memcache {
                &self.mc_listener
            } else {
                &self.listener
            };
            let Some(listener) = listener else {
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
                refuse(stream, shared.max_connections, memcache);
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
            let conn = Conn::new(stream, shared.limits, self.next_gen, self.ctx.now);
            entry.insert(if memcache { conn.memcache() } else { conn });
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
    pub(super) fn read_conn(&mut self, token: usize, hangup: bool) {
        let now = self.ctx.now;
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        // Whole frames left buffered when backpressure stopped the decoding go first.
        if conn.input_buffered() > 0 && !conn.closing && !conn.backpressured() && !self.ctx.draining
        {
            self.decode(token, now);
        }
        loop {
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            // Past a SHARD that moves the connection, the socket is the next core's.
            if conn.closing || self.ctx.draining || conn.handoff.is_some() {
                break;
            }
            if conn.backpressured() {
                conn.read_paused = true;
                break;
            }
            if conn.read_closed {
                break;
            }
            match self.memory_gate(token) {
                Gate::Read => {}
                Gate::Again => continue,
                Gate::Paused => break,
            }
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            if conn.mc.is_none() && conn.inputs() == 0 && conn.input_buffered() == 0 {
                if let Some(hint) = self.text_on_binary_port(token) {
                    return hint;
                }
            }
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            let step = match &mut conn.mc {
                Some(mc) => read_into(&mut conn.stream, &mut mc.rbuf),
                None => read_into(&mut conn.stream, &mut conn.rbuf),
            };
            match step {
                ReadStep::Closed => conn.read_closed = true,
                ReadStep::Data { short } => {
                    self.decode(token, now);
                    let Some(conn) = self.conns.get(token) else {
                        return;
                    };
                    if conn.handoff.is_some() {
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
        let Core {
            conns,
            ctx,
            buffered,
            grant,
            grant_freed,
            dirty,
            ..
        } = self;
        let Some(conn) = conns.get_mut(token) else {
            return;
        };
        if conn.backpressured() && !conn.closing && !ctx.draining {
            // Also after a short read: frames may wait undecoded for the client to read.
            conn.read_paused = true;
        }
        release_grant(grant, grant_freed, token, conn);
        // A drained large read buffer is not kept while the connection waits.
        conn.trim_input();
        account(buffered, conn);
        if !conn.dirty {
            conn.dirty = true;
            dirty.push(token);
        }
        if let Some(core) = conn.handoff {
            self.hand_off(token, core);
        }
    }

    /// Handles the whole frames (or memcached requests) buffered on `token` and
    /// updates its timers.
    fn decode(&mut self, token: usize, now: std::time::Instant) {
        match self.conns.get(token).map(|c| c.mc.is_some()) {
            Some(true) => self.handle_mc(token),
            Some(false) => self.handle_frames(token),
            None => return,
        }
        if let Some(conn) = self.conns.get_mut(token) {
            conn.after_input(now);
        }
    }

    /// Whether connection `token` may read now under `--max-buffer-memory`. Past the
    /// limit a connection may still read into the buffer it has (that costs nothing,
    /// and lets its frame complete and free it), unless it needs a larger one or
    /// holds more than a fair share of the limit in answers (each request read
    /// would queue more). One connection per core (the grant) may grow anyway.
    fn memory_gate(&mut self, token: usize) -> Gate {
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
            return Gate::Paused;
        };
        account(buffered, conn);
        release_grant(grant, grant_freed, token, conn);
        let granted = grant.is_some_and(|(t, _)| t == token);
        if granted
            || *buffered + *others <= limits.max_buffer_memory
            || !(conn.input_needs_growth() || conn.out.mem() > fair(limits, &ctx.shared))
        {
            return Gate::Read;
        }
        if grant.is_none() && conn.input_needs_growth() && conn.out.is_empty() {
            // The core's one frame allowed to grow past the limit.
            *grant = Some((token, conn.inputs()));
            conn.mem_paused = false;
            // It is read now. Left set (a paused connection woken by a readable
            // event), release_grant would take the grant straight back and the read
            // loop would spin forever, starving the core.
            conn.read_paused = false;
            return Gate::Again;
        }
        conn.read_paused = true;
        if !conn.mem_paused {
            conn.mem_paused = true;
            mem_paused.push(token);
            ctx.stats.node.buffer_memory_pauses.inc();
        }
        Gate::Paused
    }

    /// Moves connection `token` to core `core`, which asked for it with SHARD: it
    /// leaves this core's poll, slab and memory count with its buffered bytes and
    /// unsent answers, and the other core registers it and goes on (no request on it
    /// is in flight, so no answer is addressed to it here).
    pub(super) fn hand_off(&mut self, token: usize, core: usize) {
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
        // Answers to requests that hopped from here come back here, not there.
        conn.hops = 0;
        conn.held_since = None;
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
    pub(super) fn adopt(&mut self, conn: Box<Conn>) {
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

    /// One of connection `token`'s requests that went to another core is answered
    /// (its reply came back in a `Replies` message): see `Conn::hops`.
    pub(super) fn hop_answered(&mut self, w: &crate::net::Waiter) {
        if w.opcode == crate::net::FLUSH_ACK_OPCODE || w.is_memcache() {
            return; // not a native connection's request
        }
        if let Some(conn) = self.conns.get_mut(w.token as usize) {
            if conn.gen == w.conn_gen {
                conn.hops = conn.hops.saturating_sub(1);
            }
        }
    }

    /// Puts connection `token` in the turn's write set.
    pub(super) fn mark_dirty(&mut self, token: usize) {
        if let Some(conn) = self.conns.get_mut(token) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(token);
            }
        }
    }

    /// Closes a connection whose unsent output passed `--max-conn-output`: its client
    /// stopped reading while answers kept arriving.
    pub(super) fn close_overflow(&mut self, token: usize) {
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

    /// Removes connection `token` from the core: its memory, grant and count.
    pub(super) fn close(&mut self, token: usize) {
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

    /// Writes the output of every connection in the turn's write set. A connection
    /// whose output drained and whose reading was paused by backpressure is read
    /// again at once (its answers join the set).
    pub(super) fn write_dirty(&mut self) {
        while let Some(token) = self.dirty.pop() {
            let Some(conn) = self.conns.get_mut(token) else {
                continue;
            };
            conn.dirty = false;
            let mut resume = false;
            if conn.pending == 0 {
                conn.hops = 0; // nothing can be outstanding anywhere
            }
            if conn.hops == 0 {
                conn.held_since = None;
            } else if !conn.out.is_empty()
                && !conn.closing
                && !conn.read_closed
                && !self.ctx.draining
            {
                // One wait per episode: once it has run out, answers are written as
                // they come until every hop is answered (a slow hop, e.g. a miss
                // waiting for its origin, costs the others one wait, not one per
                // write).
                let until = *conn.held_since.get_or_insert(self.ctx.now) + HOP_HOLD;
                if self.ctx.now < until {
                    self.held.push(token);
                    self.held_until = Some(self.held_until.map_or(until, |u| u.min(until)));
                    continue;
                }
            }
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
                if conn.output_len() > self.limits.max_output {
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
                // What that read asked of members leaves this turn too.
                self.flush_peers();
                continue;
            }
            if conn.finished() {
                self.close(token);
            }
        }
    }
}

impl Core {
    /// A native connection whose first byte is an ASCII letter is someone speaking a
    /// text protocol (a memcached client, `nc`, an HTTP request): no frame starts
    /// so (a frame's first byte is the top byte of its length, at most 0x40 under
    /// the 1 GiB cap of `--max-frame`). Rather than wait for a 12-byte header, say
    /// in one line what this port speaks (and where the memcached port is), and
    /// close. Returns `Some` if so. Costs one `peek` on a connection's first read.
    fn text_on_binary_port(&mut self, token: usize) -> Option<()> {
        let conn = self.conns.get_mut(token)?;
        let mut first = [0u8; 1];
        match conn.stream.peek(&mut first) {
            Ok(1) if first[0].is_ascii_alphabetic() => {}
            _ => return None,
        }
        // Take what was sent, so that closing does not reset the connection before
        // the client has read the hint.
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match conn.stream.read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let mut line = String::from(
            "this port speaks groupcached's binary protocol (docs/protocol.md); memcached clients: ",
        );
        match self.ctx.mc.addr {
            Some(a) => line.push_str(&format!("use the memcached port {a}")),
            None => line.push_str("start the server with --memcache-listen ADDR and use that port"),
        }
        line.push_str("\r\n");
        conn.out.push_with(|b| b.extend_from_slice(line.as_bytes()));
        conn.closing = true;
        conn.read_closed = true;
        self.ctx.stats.node.protocol_errors.inc();
        self.mark_dirty(token);
        Some(())
    }
}

/// What the buffer memory limit says about reading a connection now.
enum Gate {
    /// Read.
    Read,
    /// The connection was just given the grant: look at it again.
    Again,
    /// Paused until memory frees up.
    Paused,
}

/// Tells a connection over the limit why it is closed, without blocking (in
/// memcached's words on the memcached port).
fn refuse(mut stream: TcpStream, max: usize, memcache: bool) {
    let msg = format!("server is at its connection limit ({max}); try again later");
    let mut buf = Vec::new();
    if memcache {
        buf.extend_from_slice(b"ERROR Too many open connections\r\n");
    } else {
        Response::error(0, 0, Status::Unavailable, &msg).encode(&mut buf);
    }
    let _ = stream.write(&buf);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
