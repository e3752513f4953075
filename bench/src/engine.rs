//! The load engine: each generator thread owns a mio event loop over its
//! non-blocking connections, keeps up to `--pipeline` requests in flight on each,
//! matches replies to requests (by id for groupcached, first-in first-out for
//! memcached) and counts what happened.
//!
//! A thread's life: connect, prefill its share of the keys (if asked), report ready,
//! wait for the common start instant, warm up, measure, and hand back its counters.
//! Lines per second travel to the main thread as [`Msg::Interval`] messages.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::{shard_of, Ring};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::args::{Config, Stop};
use crate::proto::{groupcached, Outcome, Parser, Protocol, Reply};
use crate::report::{Counters, Interval, Latencies, ThreadResult};
use crate::workload::{format_key, KeyPicker, Op, Rng};

/// How often a thread looks at timeouts, reconnects and stalled connections.
const TICK: Duration = Duration::from_millis(100);
/// Wait before reopening a connection that failed.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// Longest wait for a TCP connection to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests in flight per connection during the prefill, at least.
const PREFILL_PIPELINE: usize = 32;

/// What every generator thread shares, read-only (plus the prefill progress counter).
#[derive(Debug)]
pub struct Shared {
    /// The run's configuration.
    pub config: Config,
    /// Resolved addresses: the servers, or the ring's members in [`Ring::members`] order.
    pub addrs: Vec<SocketAddr>,
    /// The ring when routing by key owner.
    pub ring: Option<Ring>,
    /// Shard-aware runs: each server's core count, by index into `addrs` (`None`: it
    /// refused SHARD). Empty when the run is not shard-aware.
    pub server_threads: Vec<Option<usize>>,
    /// Bytes that values are cut from, at least the largest value size long.
    pub values: Vec<u8>,
    /// Keys written by the prefill so far, over all threads (for the progress bar).
    pub prefilled: AtomicU64,
}

/// A failure that stops a generator thread.
#[derive(Debug)]
pub enum EngineError {
    /// A connection could not be opened at the start.
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The event loop itself failed.
    Poll(io::Error),
    /// Some prefill SETs failed, so the run would not measure a full cache.
    Prefill(Counters),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: {source}")
            }
            EngineError::Poll(e) => write!(f, "event loop failed: {e}"),
            EngineError::Prefill(c) => {
                let kinds: Vec<String> = c.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
                write!(
                    f,
                    "{} prefill SETs failed ({})",
                    c.error_count(),
                    kinds.join(", ")
                )
            }
        }
    }
}

impl std::error::Error for EngineError {}

/// Messages from generator threads to the main thread.
#[derive(Debug)]
pub enum Msg {
    /// Connected (and prefilled); waiting for the start.
    Ready {
        /// Which thread.
        thread: usize,
        /// Whether it can run.
        result: Result<(), EngineError>,
    },
    /// One second of measurement is over.
    Interval {
        /// Which thread.
        thread: usize,
        /// What happened in it.
        interval: Interval,
    },
    /// The thread finished.
    Done {
        /// Which thread.
        thread: usize,
        /// Its results.
        result: Result<ThreadResult, EngineError>,
    },
}

/// Runs generator thread `thread` of `threads` with `connections` connections: the
/// whole life described in the module docs. `go` brings the start instant (`None`:
/// give up, another thread failed).
pub fn thread_main(
    shared: Arc<Shared>,
    thread: usize,
    threads: usize,
    connections: usize,
    tx: Sender<Msg>,
    go: Receiver<Option<Instant>>,
) {
    let mut worker = match Worker::connect(&shared, thread, connections) {
        Ok(w) => w,
        Err(e) => {
            let _ = tx.send(Msg::Ready {
                thread,
                result: Err(e),
            });
            return;
        }
    };
    if shared.config.prefill {
        let keys = shared.config.keys;
        let (from, to) = (
            keys * thread as u64 / threads as u64,
            keys * (thread as u64 + 1) / threads as u64,
        );
        if let Err(e) = worker.prefill(from, to) {
            let _ = tx.send(Msg::Ready {
                thread,
                result: Err(e),
            });
            return;
        }
    }
    if tx
        .send(Msg::Ready {
            thread,
            result: Ok(()),
        })
        .is_err()
    {
        return;
    }
    let Ok(Some(start)) = go.recv() else {
        return;
    };
    let result = worker.run(start, thread, threads, &tx);
    let _ = tx.send(Msg::Done { thread, result });
}

/// A request on the wire.
#[derive(Debug, Clone, Copy)]
struct Pending {
    op: Op,
    /// Latency is measured from here: when it was sent (closed loop) or due (open loop).
    origin: Instant,
    /// When it was written, for the timeout.
    sent: Instant,
    /// Whether it counts (sent after the warm-up).
    measured: bool,
}

/// Requests in flight on one socket.
#[derive(Debug)]
enum Inflight {
    /// In-order protocols: replies answer the oldest request.
    Fifo(VecDeque<Pending>),
    /// groupcached: the request id is the slot index.
    ById {
        slots: Vec<Option<Pending>>,
        free: Vec<u32>,
        len: usize,
    },
}

impl Inflight {
    fn new(protocol: Protocol) -> Self {
        if protocol.in_order() {
            Inflight::Fifo(VecDeque::new())
        } else {
            Inflight::ById {
                slots: Vec::new(),
                free: Vec::new(),
                len: 0,
            }
        }
    }

    /// Stores a request; returns its id.
    fn insert(&mut self, p: Pending) -> u32 {
        match self {
            Inflight::Fifo(q) => {
                q.push_back(p);
                0
            }
            Inflight::ById { slots, free, len } => {
                *len += 1;
                match free.pop() {
                    Some(id) => {
                        slots[id as usize] = Some(p);
                        id
                    }
                    None => {
                        slots.push(Some(p));
                        (slots.len() - 1) as u32
                    }
                }
            }
        }
    }

    /// Takes the request a reply answers, `None` if it answers nothing in flight.
    fn take(&mut self, id: Option<u32>) -> Option<Pending> {
        match self {
            Inflight::Fifo(q) => q.pop_front(),
            Inflight::ById { slots, free, len } => {
                let id = id?;
                let p = slots.get_mut(id as usize)?.take()?;
                free.push(id);
                *len -= 1;
                Some(p)
            }
        }
    }

    /// Removes every request.
    fn drain(&mut self) -> Vec<Pending> {
        match self {
            Inflight::Fifo(q) => q.drain(..).collect(),
            Inflight::ById { slots, free, len } => {
                free.clear();
                *len = 0;
                slots.drain(..).flatten().collect()
            }
        }
    }

    /// When the oldest request was sent.
    fn oldest(&self) -> Option<Instant> {
        match self {
            Inflight::Fifo(q) => q.front().map(|p| p.sent),
            Inflight::ById { slots, len, .. } if *len > 0 => {
                slots.iter().flatten().map(|p| p.sent).min()
            }
            Inflight::ById { .. } => None,
        }
    }
}

/// One TCP connection to one server.
#[derive(Debug)]
struct Sock {
    stream: Option<TcpStream>,
    addr: SocketAddr,
    /// Index of `addr` in [`Shared::addrs`].
    addr_idx: usize,
    /// Shard-aware: the server core this socket asks for (again at each reconnect).
    core: Option<u16>,
    token: Token,
    out: Vec<u8>,
    out_pos: usize,
    parser: Parser,
    inflight: Inflight,
    reconnect_at: Option<Instant>,
}

/// One logical connection: one socket, or one per ring member when routing by owner.
/// The pipeline depth bounds the requests in flight over all its sockets.
#[derive(Debug)]
struct Conn {
    socks: Vec<Sock>,
    outstanding: usize,
}

/// What the loop is doing.
#[derive(Debug)]
enum Mode {
    /// Writing keys `next..end`.
    Prefill { next: u64, end: u64 },
    /// The load itself.
    Run(Box<Run>),
}

/// State of the measured run.
#[derive(Debug)]
struct Run {
    measure_start: Instant,
    /// Duration mode: when to stop.
    end: Option<Instant>,
    /// Requests mode: measured requests this thread sends in total.
    quota: Option<u64>,
    sent_measured: u64,
    completed_measured: u64,
    /// Open loop: first due instant and nanoseconds between due instants.
    schedule: Option<(Instant, f64)>,
    /// Open loop: requests sent (or due, counted when sent) so far.
    scheduled: u64,
    max_backlog: u64,
    measuring: bool,
    cpu_at_start: Duration,
    interval: Interval,
    interval_end: Instant,
    last_completion: Instant,
}

struct Worker<'a> {
    shared: &'a Shared,
    poll: Poll,
    conns: Vec<Conn>,
    /// Shard-aware: `routes[addr_idx][core]` lists the (connection, socket) pairs
    /// serving that core of that server; empty when the run is not shard-aware.
    routes: Vec<Vec<Vec<(usize, usize)>>>,
    /// Round-robin positions into `routes`, same shape.
    route_next: Vec<Vec<usize>>,
    /// Requests in flight over all connections (the shard-aware bound is
    /// `pipeline` times the connections, since a request goes to its key's core's
    /// connection rather than to the one being topped up).
    total_outstanding: usize,
    /// Connections with unwritten requests queued by a shard-aware send.
    dirty: Vec<usize>,
    /// Requests in flight per connection in the current loop (the run's or the
    /// prefill's).
    pipeline: usize,
    socks_per_conn: usize,
    rng: Rng,
    picker: KeyPicker,
    key: Vec<u8>,
    next_conn: usize,
    counters: Counters,
    latencies: Latencies,
}

impl<'a> Worker<'a> {
    fn connect(shared: &'a Shared, thread: usize, connections: usize) -> Result<Self, EngineError> {
        let config = &shared.config;
        let poll = Poll::new().map_err(EngineError::Poll)?;
        let ring = shared.ring.is_some();
        let socks_per_conn = if ring { shared.addrs.len() } else { 1 };
        let mut conns = Vec::with_capacity(connections);
        let mut routes: Vec<Vec<Vec<(usize, usize)>>> = shared
            .server_threads
            .iter()
            .map(|t| vec![Vec::new(); t.unwrap_or(0)])
            .collect();
        // Shard-aware: this thread's k-th connection to a server goes to core
        // (k + thread) mod threads, so each thread covers as many cores as it has
        // connections, and the threads together spread evenly.
        let mut per_server = vec![0usize; shared.addrs.len()];
        for c in 0..connections {
            let mut socks = Vec::with_capacity(socks_per_conn);
            for s in 0..socks_per_conn {
                let addr_idx = if ring {
                    s
                } else {
                    // Spread over servers across all threads' connections.
                    (c * config.threads + thread) % shared.addrs.len()
                };
                let addr = shared.addrs[addr_idx];
                let core = match shared.server_threads.get(addr_idx) {
                    Some(&Some(threads)) => {
                        let core = (per_server[addr_idx] + thread) % threads;
                        per_server[addr_idx] += 1;
                        routes[addr_idx][core].push((c, s));
                        u16::try_from(core).ok()
                    }
                    _ => None,
                };
                let token = Token(c * socks_per_conn + s);
                let stream = open(&poll, addr, token, core)
                    .map_err(|source| EngineError::Connect { addr, source })?;
                socks.push(Sock {
                    stream: Some(stream),
                    addr,
                    addr_idx,
                    core,
                    token,
                    out: Vec::with_capacity(4096),
                    out_pos: 0,
                    parser: config.protocol.parser(),
                    inflight: Inflight::new(config.protocol),
                    reconnect_at: None,
                });
            }
            conns.push(Conn {
                socks,
                outstanding: 0,
            });
        }
        let seed = config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (thread as u64 + 1);
        let start = config.keys * thread as u64 / config.threads as u64;
        let route_next = routes.iter().map(|r| vec![0; r.len()]).collect();
        Ok(Worker {
            shared,
            poll,
            conns,
            routes,
            route_next,
            total_outstanding: 0,
            dirty: Vec::new(),
            pipeline: config.pipeline,
            socks_per_conn,
            rng: Rng::new(seed),
            picker: KeyPicker::new(&config.key_dist, config.keys, start),
            key: Vec::with_capacity(64),
            next_conn: 0,
            counters: Counters::default(),
            latencies: Latencies::default(),
        })
    }

    /// Writes keys `from..to` once each.
    fn prefill(&mut self, from: u64, to: u64) -> Result<(), EngineError> {
        let mut mode = Mode::Prefill {
            next: from,
            end: to,
        };
        let pipeline = self.shared.config.pipeline.max(PREFILL_PIPELINE);
        self.event_loop(&mut mode, pipeline, None)?;
        let failed = std::mem::take(&mut self.counters);
        if failed.error_count() > 0 {
            return Err(EngineError::Prefill(failed));
        }
        Ok(())
    }

    /// The measured run, starting (warm-up first) at `start`.
    fn run(
        mut self,
        start: Instant,
        thread: usize,
        threads: usize,
        tx: &Sender<Msg>,
    ) -> Result<ThreadResult, EngineError> {
        let config = &self.shared.config;
        let measure_start = start + config.warmup;
        let (end, quota) = match config.stop {
            Stop::Duration(d) => (Some(measure_start + d), None),
            Stop::Requests(n) => {
                let t = thread as u64;
                let tn = threads as u64;
                (None, Some(n * (t + 1) / tn - n * t / tn))
            }
        };
        let schedule = config.rate.map(|r| (start, 1e9 / (r / threads as f64)));
        let mut mode = Mode::Run(Box::new(Run {
            measure_start,
            end,
            quota,
            sent_measured: 0,
            completed_measured: 0,
            schedule,
            scheduled: 0,
            max_backlog: 0,
            measuring: false,
            cpu_at_start: Duration::ZERO,
            interval: Interval::new(0),
            interval_end: measure_start + Duration::from_secs(1),
            last_completion: measure_start,
        }));
        self.counters = Counters::default();
        self.latencies = Latencies::default();
        if quota == Some(0) {
            // More threads than requests: nothing for this one to do.
            return Ok(ThreadResult::default());
        }
        self.event_loop(&mut mode, config.pipeline, Some((thread, tx)))?;
        let Mode::Run(run) = mode else {
            unreachable!("the mode of a run stays Run");
        };
        let finish = match run.end {
            Some(end) => end,
            None => run.last_completion,
        };
        Ok(ThreadResult {
            counters: self.counters,
            latencies: self.latencies,
            cpu: thread_cpu_time().saturating_sub(run.cpu_at_start),
            wall: finish.saturating_duration_since(run.measure_start),
            max_backlog: run.max_backlog,
        })
    }

    fn event_loop(
        &mut self,
        mode: &mut Mode,
        pipeline: usize,
        report: Option<(usize, &Sender<Msg>)>,
    ) -> Result<(), EngineError> {
        self.pipeline = pipeline;
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        let open_loop = matches!(mode, Mode::Run(run) if run.schedule.is_some());
        if !open_loop {
            let now = Instant::now();
            self.update_run_state(mode, now, report);
            for c in 0..self.conns.len() {
                self.fill(c, mode, pipeline, now);
                // Written now, not at the next tick: a socket that was busy before
                // (the prefill) reports no new writable edge, so without this the
                // first requests waited up to TICK and the first measured latencies
                // of a run after --prefill were ~100 ms.
                self.flush_conn(c, mode, now);
            }
        }
        let mut ready: Vec<(Token, bool)> = Vec::with_capacity(1024);
        loop {
            let now = Instant::now();
            self.update_run_state(mode, now, report);
            if self.finished(mode, now) {
                break;
            }
            let mut wake = next_tick;
            if let Mode::Run(run) = mode {
                if let Some(end) = run.end {
                    wake = wake.min(end);
                }
                if !run.measuring {
                    wake = wake.min(run.measure_start);
                }
                wake = wake.min(run.interval_end);
                if let Some((t0, gap)) = run.schedule {
                    let due = t0 + Duration::from_nanos((run.scheduled as f64 * gap) as u64);
                    wake = wake.min(due);
                }
            }
            let timeout = wake.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(EngineError::Poll(e));
                }
            }
            ready.clear();
            ready.extend(
                events
                    .iter()
                    .map(|e| (e.token(), e.is_read_closed() || e.is_error())),
            );
            let now = Instant::now();
            // Shard-aware, the refill waits until every ready socket was read: its
            // requests go to their keys' cores' connections, and one refill for the
            // whole turn writes each of those once, not once per socket read.
            let refill_after = self.shard_aware() && !open_loop;
            let mut refill = None;
            for &(token, hangup) in &ready {
                let c = token.0 / self.socks_per_conn;
                let s = token.0 % self.socks_per_conn;
                if c >= self.conns.len() {
                    continue;
                }
                self.read_sock(c, s, mode, hangup);
                // Latency counts from here: the refill is written right after.
                let now = Instant::now();
                if refill_after {
                    refill.get_or_insert(c);
                } else if !open_loop {
                    self.fill(c, mode, pipeline, now);
                }
                self.flush_conn(c, mode, now);
            }
            if let Some(c) = refill {
                self.fill(c, mode, pipeline, Instant::now());
            }
            if open_loop {
                self.dispatch_open_loop(mode, pipeline, now);
            }
            if now >= next_tick {
                next_tick = now + TICK;
                self.tick(mode, now);
                if !open_loop {
                    for c in 0..self.conns.len() {
                        self.fill(c, mode, pipeline, now);
                        self.flush_conn(c, mode, now);
                    }
                }
            }
        }
        if let (Mode::Run(run), Some((thread, tx))) = (mode, report) {
            let finish = run.end.unwrap_or(run.last_completion);
            let start = run.interval_end - Duration::from_secs(1);
            let mut interval = std::mem::replace(&mut run.interval, Interval::new(0));
            interval.secs = finish
                .min(run.interval_end)
                .saturating_duration_since(start)
                .as_secs_f64();
            if interval.secs > 0.001
                || interval.counters.ops() + interval.counters.error_count() > 0
            {
                let _ = tx.send(Msg::Interval { thread, interval });
            }
        }
        Ok(())
    }

    /// Starts measuring at the measure start and closes finished seconds.
    fn update_run_state(
        &mut self,
        mode: &mut Mode,
        now: Instant,
        report: Option<(usize, &Sender<Msg>)>,
    ) {
        let Mode::Run(run) = mode else { return };
        if !run.measuring && now >= run.measure_start {
            run.measuring = true;
            run.cpu_at_start = thread_cpu_time();
        }
        if run.measuring && now >= run.interval_end && run.end.is_none_or(|e| run.interval_end < e)
        {
            let next = Interval::new(run.interval.index + 1);
            let mut done = std::mem::replace(&mut run.interval, next);
            done.secs = 1.0;
            run.interval_end += Duration::from_secs(1);
            if let Some((thread, tx)) = report {
                let _ = tx.send(Msg::Interval {
                    thread,
                    interval: done,
                });
            }
        }
    }

    fn finished(&self, mode: &Mode, now: Instant) -> bool {
        match mode {
            Mode::Prefill { next, end } => {
                *next >= *end && self.conns.iter().all(|c| c.outstanding == 0)
            }
            Mode::Run(run) => match (run.end, run.quota) {
                (Some(end), _) => now >= end,
                (None, Some(q)) => run.completed_measured >= q,
                (None, None) => true,
            },
        }
    }

    /// The next request to send, if any may be sent now: (op, key index, measured).
    fn next_request(&mut self, mode: &mut Mode, origin: Instant) -> Option<(Op, u64, bool)> {
        match mode {
            Mode::Prefill { next, end } => {
                if *next >= *end {
                    return None;
                }
                *next += 1;
                Some((Op::Set, *next - 1, false))
            }
            Mode::Run(run) => {
                if run.end.is_some_and(|e| origin >= e) {
                    return None;
                }
                let measured = origin >= run.measure_start;
                if measured {
                    if let Some(q) = run.quota {
                        if run.sent_measured >= q {
                            return None;
                        }
                    }
                    run.sent_measured += 1;
                }
                let op = self.shared.config.ratio.pick(&mut self.rng);
                let k = self.picker.next(&mut self.rng);
                Some((op, k, measured))
            }
        }
    }

    /// Whether requests are routed to their keys' cores (some server took SHARD).
    fn shard_aware(&self) -> bool {
        self.routes.iter().any(|r| !r.is_empty())
    }

    /// Closed loop: tops connection `c` up to `pipeline` requests in flight; when
    /// shard-aware, tops the thread up to `pipeline` per connection in total, each
    /// request on a connection of its key's core (queued ones are written here).
    fn fill(&mut self, c: usize, mode: &mut Mode, pipeline: usize, now: Instant) {
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
    fn dispatch_open_loop(&mut self, mode: &mut Mode, pipeline: usize, now: Instant) {
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
    fn flush_dirty(&mut self, mode: &mut Mode, now: Instant) {
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
    fn route(&mut self, c: usize, s: usize, pipeline: usize) -> (usize, usize) {
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
    fn send(
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

    fn flush_conn(&mut self, c: usize, mode: &mut Mode, now: Instant) {
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

    /// Reads until the socket is drained (edge-triggered readiness must be), parsing
    /// after every read so the buffer holds at most about a read's worth. A read that
    /// did not fill the buffer emptied the socket, and later data raises a new event,
    /// so it ends the loop without the extra read that would only say "would block";
    /// after a hangup, reads go on to the end to see the close.
    fn read_sock(&mut self, c: usize, s: usize, mode: &mut Mode, hangup: bool) {
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
    fn parse_replies(
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
    fn complete(
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
    fn fail_sock(&mut self, c: usize, s: usize, kind: &'static str, mode: &mut Mode, now: Instant) {
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
    fn tick(&mut self, mode: &mut Mode, now: Instant) {
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

fn is_measuring(mode: &Mode) -> bool {
    matches!(mode, Mode::Run(run) if run.measuring)
}

/// Opens a connection (blocking, bounded by [`CONNECT_TIMEOUT`]), moves it to server
/// core `core` with SHARD if given (a refusal leaves it where it landed), then makes
/// it non-blocking and registers it.
fn open(poll: &Poll, addr: SocketAddr, token: Token, core: Option<u16>) -> io::Result<TcpStream> {
    let mut std_stream = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    std_stream.set_nodelay(true)?;
    if let Some(core) = core {
        std_stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        std_stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        groupcached::shard_handshake(&mut std_stream, core)?;
    }
    std_stream.set_nonblocking(true)?;
    let mut stream = TcpStream::from_std(std_stream);
    poll.registry()
        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
    Ok(stream)
}

/// CPU time used by the calling thread so far.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass, which outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(t: Instant) -> Pending {
        Pending {
            op: Op::Get,
            origin: t,
            sent: t,
            measured: true,
        }
    }

    #[test]
    fn ids_are_reused_and_unknown_ids_match_nothing() {
        let t = Instant::now();
        let mut f = Inflight::new(Protocol::Groupcached);
        let a = f.insert(pending(t));
        let b = f.insert(pending(t + Duration::from_millis(1)));
        assert_ne!(a, b);
        assert!(f.take(Some(a)).is_some());
        assert!(f.take(Some(a)).is_none(), "answered twice");
        assert!(f.take(Some(99)).is_none());
        assert!(f.take(None).is_none());
        let c = f.insert(pending(t));
        assert_eq!(c, a, "slot reused");
        assert_eq!(f.oldest(), Some(t));
        assert_eq!(f.drain().len(), 2);
        assert_eq!(f.oldest(), None);
    }

    #[test]
    fn in_order_protocols_match_the_oldest() {
        let t = Instant::now();
        let mut f = Inflight::new(Protocol::Memcache);
        f.insert(pending(t));
        f.insert(pending(t + Duration::from_millis(1)));
        assert_eq!(f.take(None).map(|p| p.sent), Some(t));
        assert_eq!(f.oldest(), Some(t + Duration::from_millis(1)));
    }

    #[test]
    fn thread_cpu_time_advances_with_work() {
        let a = thread_cpu_time();
        let mut x = 0u64;
        let until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(thread_cpu_time() > a);
    }
}
