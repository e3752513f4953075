//! A generator thread's state and its event loop: connect, prefill, run (warm-up,
//! measure), and the run's bookkeeping (seconds, quota, schedule).

use std::io;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use super::conn::{open, Conn, Inflight, Sock};
use super::cpu::thread_cpu_time;
use super::{EngineError, Msg, Shared, PREFILL_PIPELINE, TICK};
use crate::args::Stop;
use crate::report::{Counters, Interval, Latencies, ThreadResult};
use crate::workload::{KeyPicker, Op, Rng};

/// What the loop is doing.
#[derive(Debug)]
pub(super) enum Mode {
    /// Writing keys `next..end`.
    Prefill { next: u64, end: u64 },
    /// The load itself.
    Run(Box<Run>),
}

/// State of the measured run.
#[derive(Debug)]
pub(super) struct Run {
    pub(super) measure_start: Instant,
    /// Duration mode: when to stop.
    pub(super) end: Option<Instant>,
    /// Requests mode: measured requests this thread sends in total.
    pub(super) quota: Option<u64>,
    pub(super) sent_measured: u64,
    pub(super) completed_measured: u64,
    /// Open loop: first due instant and nanoseconds between due instants.
    pub(super) schedule: Option<(Instant, f64)>,
    /// Open loop: requests sent (or due, counted when sent) so far.
    pub(super) scheduled: u64,
    pub(super) max_backlog: u64,
    pub(super) measuring: bool,
    pub(super) cpu_at_start: Duration,
    pub(super) interval: Interval,
    pub(super) interval_end: Instant,
    pub(super) last_completion: Instant,
}

/// A generator thread: its connections, its load model and its counters.
pub(super) struct Worker<'a> {
    pub(super) shared: &'a Shared,
    pub(super) poll: Poll,
    pub(super) conns: Vec<Conn>,
    /// Shard-aware: `routes[addr_idx][core]` lists the (connection, socket) pairs
    /// serving that core of that server; empty when the run is not shard-aware.
    pub(super) routes: Vec<Vec<Vec<(usize, usize)>>>,
    /// Round-robin positions into `routes`, same shape.
    pub(super) route_next: Vec<Vec<usize>>,
    /// Requests in flight over all connections (the shard-aware bound is
    /// `pipeline` times the connections, since a request goes to its key's core's
    /// connection rather than to the one being topped up).
    pub(super) total_outstanding: usize,
    /// Connections with unwritten requests queued by a shard-aware send.
    pub(super) dirty: Vec<usize>,
    /// Requests in flight per connection in the current loop (the run's or the
    /// prefill's).
    pub(super) pipeline: usize,
    pub(super) socks_per_conn: usize,
    pub(super) rng: Rng,
    pub(super) picker: KeyPicker,
    pub(super) key: Vec<u8>,
    pub(super) next_conn: usize,
    pub(super) counters: Counters,
    pub(super) latencies: Latencies,
}

impl<'a> Worker<'a> {
    pub(super) fn connect(
        shared: &'a Shared,
        thread: usize,
        connections: usize,
    ) -> Result<Self, EngineError> {
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
    pub(super) fn prefill(&mut self, from: u64, to: u64) -> Result<(), EngineError> {
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
    pub(super) fn run(
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

    pub(super) fn event_loop(
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
    pub(super) fn update_run_state(
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

    pub(super) fn finished(&self, mode: &Mode, now: Instant) -> bool {
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
    pub(super) fn next_request(
        &mut self,
        mode: &mut Mode,
        origin: Instant,
    ) -> Option<(Op, u64, bool)> {
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
}

pub(super) fn is_measuring(mode: &Mode) -> bool {
    matches!(mode, Mode::Run(run) if run.measuring)
}
