//! The load engine: each generator thread owns a mio event loop over its
//! non-blocking connections, keeps up to `--pipeline` requests in flight on each,
//! matches replies to requests (by id for groupcached, first-in first-out for
//! memcached) and counts what happened.
//!
//! A thread's life: connect, prefill its share of the keys (if asked), report ready,
//! wait for the common start instant, warm up, measure, and hand back its counters.
//! Lines per second travel to the main thread as [`Msg::Interval`] messages.
//!
//! Files: `worker.rs` is a thread's state and loop, `send.rs` what it writes and
//! where (closed loop, open loop, shard-aware routing), `receive.rs` what it reads
//! (replies matched to requests, failures, timeouts), `conn.rs` a connection's
//! sockets and the requests in flight on them, `cpu.rs` the thread CPU clock.

mod conn;
mod cpu;
mod receive;
mod send;
mod worker;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_protocol::Ring;

use crate::args::Config;
use crate::report::{Counters, Interval, ThreadResult};
use worker::Worker;

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
