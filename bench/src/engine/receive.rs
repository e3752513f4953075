//! What a generator thread reads: replies parsed and matched to their requests and
//! counted, sockets that fail or time out closed and reopened later.

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::conn::open;
use super::worker::{is_measuring, Mode, Worker};
use super::RECONNECT_DELAY;
use crate::proto::{Outcome, Reply};
use crate::workload::Op;

impl Worker<'_> {
    /// Reads until the socket is drained (edge-triggered readiness must be), parsing
    /// after every read so the buffer holds at most about a read's worth. A read that
    /// did not fill the buffer emptied the socket, and later data raises a new event,
    /// so it ends the loop without the extra read that would only say "would block";
    /// after a hangup, reads go on to the end to see the close.
    pub(super) fn read_sock(&mut self, c: usize, s: usize, mode: &mut Mode, hangup: bool) {
        let measuring = is_measuring(mode);
        let failure = loop {
            let sock = &mut self.conns[c].socks[s];
            let Some(stream) = sock.stream.as_mut() else {
                return;
            };
            let space = sock.parser.read_space();
            let room = space.len();
            let drained = match stream.read(space) {
                Ok(0) => break Some("connection_lost"),
                Ok(n) => {
                    sock.parser.commit(n);
                    if measuring {
                        self.counters.bytes_in += n as u64;
                    }
                    n < room && !hangup
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break Some("connection_lost"),
            };
            // Replies complete when the read that brought their last byte returned.
            let now = Instant::now();
            if let Some(kind) = self.parse_replies(c, s, mode, now) {
                break Some(kind);
            }
            if drained {
                break None;
            }
        };
        if let Some(kind) = failure {
            self.fail_sock(c, s, kind, mode, Instant::now());
        }
    }

    /// Completes every whole reply buffered on a socket; `Some(kind)` on a protocol error.
    pub(super) fn parse_replies(
        &mut self,
        c: usize,
        s: usize,
        mode: &mut Mode,
        now: Instant,
    ) -> Option<&'static str> {
        loop {
            match self.conns[c].socks[s].parser.next_reply() {
                Ok(Some(reply)) => {
                    if let Err(kind) = self.complete(c, s, reply, mode, now) {
                        return Some(kind);
                    }
                }
                Ok(None) => return None,
                Err(e) => return Some(e.kind()),
            }
        }
    }

    /// Matches a reply with its request and counts it; `Err(kind)` if it matches none.
    pub(super) fn complete(
        &mut self,
        c: usize,
        s: usize,
        reply: Reply,
        mode: &mut Mode,
        now: Instant,
    ) -> Result<(), &'static str> {
        let conn = &mut self.conns[c];
        let Some(p) = conn.socks[s].inflight.take(reply.id) else {
            return Err("unexpected_reply");
        };
        conn.outstanding -= 1;
        self.total_outstanding -= 1;
        if reply.op.is_some_and(|op| op != p.op) {
            return Err("mismatched_reply");
        }
        if let Mode::Prefill { .. } = mode {
            self.shared.prefilled.fetch_add(1, Ordering::Relaxed);
            if let Outcome::Failed(kind) = reply.outcome {
                self.counters.error(kind, 1);
            }
            return Ok(());
        }
        let Mode::Run(run) = mode else { return Ok(()) };
        if !p.measured {
            return Ok(());
        }
        run.completed_measured += 1;
        run.last_completion = now;
        let nanos = now
            .saturating_duration_since(p.origin)
            .as_nanos()
            .min(u64::MAX as u128) as u64;
        let iv = &mut run.interval;
        match reply.outcome {
            Outcome::Failed(kind) => {
                self.counters.error(kind, 1);
                iv.counters.error(kind, 1);
            }
            outcome => {
                let (hit, miss) = match outcome {
                    Outcome::Hit(_) => (1, 0),
                    Outcome::Miss => (0, 1),
                    _ => (0, 0),
                };
                for counters in [&mut self.counters, &mut iv.counters] {
                    match p.op {
                        Op::Get => counters.gets += 1,
                        Op::Set => counters.sets += 1,
                    }
                    counters.found += hit;
                    counters.not_found += miss;
                }
            }
        }
        self.latencies.record(p.op, nanos);
        iv.hist.saturating_record(nanos.max(1));
        Ok(())
    }

    /// Closes a socket after a failure: its requests count as errors of `kind`, and it
    /// is reopened after [`RECONNECT_DELAY`].
    pub(super) fn fail_sock(
        &mut self,
        c: usize,
        s: usize,
        kind: &'static str,
        mode: &mut Mode,
        now: Instant,
    ) {
        let conn = &mut self.conns[c];
        let sock = &mut conn.socks[s];
        if let Some(mut stream) = sock.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        sock.out.clear();
        sock.out_pos = 0;
        sock.parser.reset();
        sock.reconnect_at = Some(now + RECONNECT_DELAY);
        let lost = sock.inflight.drain();
        conn.outstanding -= lost.len();
        self.total_outstanding -= lost.len();
        for p in lost {
            match mode {
                Mode::Prefill { .. } => self.counters.error(kind, 1),
                Mode::Run(run) if p.measured => {
                    run.completed_measured += 1;
                    run.last_completion = now;
                    self.counters.error(kind, 1);
                    run.interval.counters.error(kind, 1);
                }
                Mode::Run(_) => {}
            }
        }
    }

    /// Timeouts and reconnects.
    pub(super) fn tick(&mut self, mode: &mut Mode, now: Instant) {
        let timeout = self.shared.config.timeout;
        for c in 0..self.conns.len() {
            for s in 0..self.conns[c].socks.len() {
                let sock = &mut self.conns[c].socks[s];
                if sock.stream.is_some() {
                    if sock
                        .inflight
                        .oldest()
                        .is_some_and(|t| now.saturating_duration_since(t) > timeout)
                    {
                        self.fail_sock(c, s, "timeout", mode, now);
                    }
                } else if sock.reconnect_at.is_some_and(|t| now >= t) {
                    match open(&self.poll, sock.addr, sock.token, sock.core) {
                        Ok(stream) => {
                            sock.stream = Some(stream);
                            sock.reconnect_at = None;
                        }
                        Err(_) => sock.reconnect_at = Some(now + RECONNECT_DELAY),
                    }
                }
            }
        }
    }
}
