//! What a generator thread writes, and on which connection: the closed loop's
//! top-up, the open loop's schedule, and shard-aware routing of each key to a
//! connection of its core.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use groupcached_protocol::shard_of;

use super::conn::Pending;
use super::worker::{is_measuring, Mode, Worker};
use crate::workload::{format_key, Op};

impl Worker<'_> {
    /// Whether requests are routed to their keys' cores (some server took SHARD).
    pub(super) fn shard_aware(&self) -> bool {
        self.routes.iter().any(|r| !r.is_empty())
    }

    /// Closed loop: tops connection `c` up to `pipeline` requests in flight; when
    /// shard-aware, tops the thread up to `pipeline` per connection in total, each
    /// request on a connection of its key's core (queued ones are written here).
    pub(super) fn fill(&mut self, c: usize, mode: &mut Mode, pipeline: usize, now: Instant) {
        if self.shard_aware() {
            while self.total_outstanding < pipeline * self.conns.len() {
                let Some((op, k, measured)) = self.next_request(mode, now) else {
                    break;
                };
                if !self.send(c, op, k, now, now, measured, mode) {
                    break;
                }
            }
            self.flush_dirty(mode, now);
            return;
        }
        while self.conns[c].outstanding < pipeline {
            if self.conns[c].socks.iter().all(|s| s.stream.is_none()) {
                return;
            }
            let Some((op, k, measured)) = self.next_request(mode, now) else {
                return;
            };
            if !self.send(c, op, k, now, now, measured, mode) {
                return;
            }
        }
    }

    /// Open loop: sends every request that is due, on connections with room, in turn.
    pub(super) fn dispatch_open_loop(&mut self, mode: &mut Mode, pipeline: usize, now: Instant) {
        let Mode::Run(run) = mode else { return };
        let Some((t0, gap)) = run.schedule else {
            return;
        };
        let due = ((now.saturating_duration_since(t0).as_nanos() as f64) / gap) as u64 + 1;
        if run.measuring {
            run.max_backlog = run.max_backlog.max(due.saturating_sub(run.scheduled));
        }
        let n = self.conns.len();
        let mut dirty = vec![false; n];
        let mut full = 0;
        while let Mode::Run(run) = mode {
            if run.scheduled >= due || full >= n {
                break;
            }
            let c = self.next_conn;
            self.next_conn = (self.next_conn + 1) % n;
            let conn = &self.conns[c];
            let busy = if self.shard_aware() {
                // Requests go to their keys' cores: the bound is the thread's.
                self.total_outstanding >= pipeline * n
            } else {
                conn.outstanding >= pipeline
            };
            if busy || conn.socks.iter().all(|s| s.stream.is_none()) {
                full += 1;
                continue;
            }
            full = 0;
            let origin = t0 + Duration::from_nanos((run.scheduled as f64 * gap) as u64);
            let Some((op, k, measured)) = self.next_request(mode, origin) else {
                break;
            };
            if let Mode::Run(run) = mode {
                run.scheduled += 1;
            }
            self.send(c, op, k, origin, now, measured, mode);
            dirty[c] = true;
        }
        for (c, d) in dirty.into_iter().enumerate() {
            if d {
                self.flush_conn(c, mode, now);
            }
        }
        self.flush_dirty(mode, now);
    }

    /// Writes the connections a shard-aware send queued requests on.
    pub(super) fn flush_dirty(&mut self, mode: &mut Mode, now: Instant) {
        while let Some(c) = self.dirty.pop() {
            self.flush_conn(c, mode, now);
        }
    }

    /// Shard-aware: the (connection, socket) for the key in `self.key` on the server
    /// that socket `s` of connection `c` would reach: one serving the key's core.
    /// Requests stick to one connection of a core while it has fewer than `pipeline`
    /// in flight (`c` itself first, if it serves that core), so that a burst of sends
    /// makes a few full writes rather than one small write per request; then the next
    /// with room, or the least loaded. `(c, s)` itself when no live socket serves the
    /// core (the request then hops inside the server).
    pub(super) fn route(&mut self, c: usize, s: usize, pipeline: usize) -> (usize, usize) {
        let addr_idx = self.conns[c].socks[s].addr_idx;
        let Some(Some(threads)) = self.shared.server_threads.get(addr_idx).copied() else {
            return (c, s);
        };
        let core = shard_of(&self.key, threads);
        let own = &self.conns[c];
        if own.socks[s].core == u16::try_from(core).ok()
            && own.socks[s].stream.is_some()
            && own.outstanding < pipeline
        {
            return (c, s);
        }
        let candidates = &self.routes[addr_idx][core];
        let n = candidates.len();
        let mut least: Option<(usize, usize)> = None;
        for step in 0..n {
            let at = (self.route_next[addr_idx][core] + step) % n;
            let (c2, s2) = candidates[at];
            if self.conns[c2].socks[s2].stream.is_none() {
                continue;
            }
            let load = self.conns[c2].outstanding;
            if load < pipeline {
                self.route_next[addr_idx][core] = at;
                return (c2, s2);
            }
            if least.is_none_or(|(_, l)| load < l) {
                least = Some((at, load));
            }
        }
        match least {
            Some((at, _)) => candidates[at],
            None => (c, s),
        }
    }

    /// Encodes one request onto the socket that should get it. Returns false when that
    /// socket is down (the request then counts as an error).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send(
        &mut self,
        c: usize,
        op: Op,
        k: u64,
        origin: Instant,
        now: Instant,
        measured: bool,
        mode: &mut Mode,
    ) -> bool {
        let shared = self.shared;
        let config = &shared.config;
        format_key(config.key_prefix.as_bytes(), k, &mut self.key);
        let s = match &shared.ring {
            Some(ring) => ring.owner_index(&self.key).unwrap_or(0),
            None => 0,
        };
        let shard_aware = self.shard_aware();
        let (c, s) = if shard_aware {
            self.route(c, s, self.pipeline)
        } else {
            (c, s)
        };
        let conn = &mut self.conns[c];
        let sock = &mut conn.socks[s];
        if sock.stream.is_none() {
            if measured {
                self.counters.error("not_connected", 1);
                if let Mode::Run(run) = mode {
                    run.completed_measured += 1;
                    run.interval.counters.error("not_connected", 1);
                }
            } else if matches!(mode, Mode::Prefill { .. }) {
                self.counters.error("not_connected", 1);
            }
            return false;
        }
        let value: &[u8] = match op {
            Op::Get => &[],
            Op::Set => &shared.values[..config.value_size.pick(&mut self.rng)],
        };
        let id = sock.inflight.insert(Pending {
            op,
            origin,
            sent: now,
            measured,
        });
        if sock.out.len() == sock.out_pos && shard_aware {
            self.dirty.push(c);
        }
        config.protocol.encode(
            &mut sock.out,
            op,
            id,
            config.group.as_bytes(),
            &self.key,
            value,
        );
        conn.outstanding += 1;
        self.total_outstanding += 1;
        true
    }

    pub(super) fn flush_conn(&mut self, c: usize, mode: &mut Mode, now: Instant) {
        for s in 0..self.conns[c].socks.len() {
            let sock = &mut self.conns[c].socks[s];
            if sock.out_pos >= sock.out.len() {
                continue;
            }
            let Some(stream) = sock.stream.as_mut() else {
                sock.out.clear();
                sock.out_pos = 0;
                continue;
            };
            let mut failure = None;
            while sock.out_pos < sock.out.len() {
                match stream.write(&sock.out[sock.out_pos..]) {
                    Ok(0) => {
                        failure = Some("connection_lost");
                        break;
                    }
                    Ok(n) => {
                        sock.out_pos += n;
                        if is_measuring(mode) {
                            self.counters.bytes_out += n as u64;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failure = Some("connection_lost");
                        break;
                    }
                }
            }
            if sock.out_pos >= sock.out.len() {
                sock.out.clear();
                sock.out_pos = 0;
            }
            if let Some(kind) = failure {
                self.fail_sock(c, s, kind, mode, now);
            }
        }
    }
}
