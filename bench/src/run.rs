//! Orchestration: resolve the targets, start the generator threads, show the prefill
//! progress, release every thread at one instant, print the lines per second as they
//! complete, then the summary, and judge the error rate.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcached_client::{Client, ConnectOptions, Connection, OwnedBody};
use groupcached_protocol::{RequestKind, Ring, Status, DEFAULT_VNODES, SHARD_QUERY};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{Config, Target};
use crate::engine::{self, EngineError, Msg, Shared};
use crate::proto::Protocol;
use crate::report::{Interval, ServerCache, Sharding, Summary, ThreadResult};
use crate::workload::value_pool;

/// How a finished run is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Errors within the limit.
    Pass,
    /// Errors over `--max-error-rate`.
    TooManyErrors {
        /// Errors / requests.
        rate: f64,
        /// The limit.
        max: f64,
    },
}

/// Why a run could not be completed.
#[derive(Debug)]
pub enum RunError {
    /// An address did not resolve.
    Resolve(String, io::Error),
    /// A generator thread failed.
    Thread(usize, EngineError),
    /// A generator thread panicked or vanished.
    Lost(usize),
    /// The JSON summary could not be written.
    Json(std::path::PathBuf, io::Error),
    /// A server could not be asked for its core count (SHARD).
    Shard(SocketAddr, String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Resolve(a, e) => write!(f, "cannot resolve {a}: {e}"),
            RunError::Thread(t, e) => write!(f, "generator thread {t}: {e}"),
            RunError::Lost(t) => write!(f, "generator thread {t} stopped without a result"),
            RunError::Json(p, e) => write!(f, "cannot write {}: {e}", p.display()),
            RunError::Shard(a, e) => write!(f, "cannot ask {a} for its cores (SHARD): {e}"),
        }
    }
}

impl std::error::Error for RunError {}

fn resolve(addr: &str) -> Result<SocketAddr, RunError> {
    addr.to_socket_addrs()
        .map_err(|e| RunError::Resolve(addr.into(), e))?
        .next()
        .ok_or_else(|| RunError::Resolve(addr.into(), io::Error::other("no address")))
}

/// Runs the whole benchmark described by `config`.
pub fn run(config: Config) -> Result<Verdict, RunError> {
    let (ring, addrs) = match &config.target {
        Target::Servers(list) => (
            None,
            list.iter()
                .map(|a| resolve(a))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Target::Ring(members) => {
            let ring = Ring::new(members, DEFAULT_VNODES);
            let addrs = ring
                .members()
                .iter()
                .map(|a| resolve(a))
                .collect::<Result<Vec<_>, _>>()?;
            (Some(ring), addrs)
        }
    };
    let threads = config.threads;
    let server_threads = if config.shard_aware {
        addrs
            .iter()
            .map(|&a| server_cores(a, config.timeout))
            .collect()
    } else {
        Vec::new()
    };
    let sharding = if config.shard_aware {
        let mut servers: Vec<(String, Option<usize>)> = Vec::new();
        for (a, t) in addrs.iter().zip(&server_threads) {
            let a = a.to_string();
            if !servers.iter().any(|(s, _)| *s == a) {
                servers.push((a, *t));
            }
        }
        Sharding::On(servers)
    } else {
        Sharding::Off
    };
    let shared = Arc::new(Shared {
        values: value_pool(config.value_size.max, config.seed),
        server_threads,
        addrs,
        ring,
        prefilled: AtomicU64::new(0),
        config,
    });
    let config = &shared.config;

    let (tx, rx) = mpsc::channel();
    let mut go = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let conns = config.connections / threads + usize::from(t < config.connections % threads);
        let (go_tx, go_rx) = mpsc::channel();
        go.push(go_tx);
        let (shared, tx) = (shared.clone(), tx.clone());
        let handle = std::thread::Builder::new()
            .name(format!("gen-{t}"))
            .spawn(move || engine::thread_main(shared, t, threads, conns, tx, go_rx))
            .map_err(|e| RunError::Thread(t, EngineError::Poll(e)))?;
        handles.push(handle);
    }
    drop(tx);

    let outcome = wait_ready(&shared, &rx, threads);
    if let Err(e) = outcome {
        for g in &go {
            let _ = g.send(None);
        }
        for h in handles {
            let _ = h.join();
        }
        return Err(e);
    }

    // The servers' cache counters at the start of the measured part: now, or after
    // the warm-up.
    let mut before = config
        .warmup
        .is_zero()
        .then(|| cache_counters(config, &shared.addrs));
    let start = Instant::now();
    let measure_start = start + config.warmup;
    for g in &go {
        let _ = g.send(Some(start));
    }
    if !config.warmup.is_zero() && !config.quiet {
        println!("warming up for {:.1} s", config.warmup.as_secs_f64());
    }

    let mut results: Vec<Option<ThreadResult>> = vec![None; threads];
    // Threads send their seconds in order; a second is complete once every thread has
    // sent it or finished.
    let mut reported: Vec<Option<u64>> = vec![None; threads];
    let mut finished = vec![false; threads];
    let mut pending: BTreeMap<u64, Interval> = BTreeMap::new();
    let mut intervals = Vec::new();
    let mut failure = None;
    while finished.iter().any(|f| !f) {
        let msg = if before.is_none() {
            let left = measure_start.saturating_duration_since(Instant::now());
            if left.is_zero() {
                before = Some(cache_counters(config, &shared.addrs));
                continue;
            }
            match rx.recv_timeout(left) {
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                other => other.map_err(|_| mpsc::RecvError),
            }
        } else {
            rx.recv()
        };
        match msg {
            Ok(Msg::Interval { thread, interval }) => {
                reported[thread] = Some(interval.index);
                pending
                    .entry(interval.index)
                    .or_insert_with(|| Interval::new(interval.index))
                    .merge(&interval);
            }
            Ok(Msg::Done { thread, result }) => {
                finished[thread] = true;
                match result {
                    Ok(r) => results[thread] = Some(r),
                    Err(e) => failure = failure.or(Some(RunError::Thread(thread, e))),
                }
            }
            Ok(Msg::Ready { .. }) => {}
            Err(_) => break,
        }
        while let Some(entry) = pending.first_entry() {
            let index = *entry.key();
            let complete =
                (0..threads).all(|t| finished[t] || reported[t].is_some_and(|r| r >= index));
            if !complete {
                break;
            }
            let iv = entry.remove();
            if !config.quiet {
                println!("{}", iv.line());
            }
            intervals.push(iv);
        }
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let results: Vec<ThreadResult> = results
        .into_iter()
        .enumerate()
        .map(|(t, r)| r.ok_or(RunError::Lost(t)))
        .collect::<Result<_, _>>()?;
    let secs = results
        .iter()
        .map(|r| r.wall.as_secs_f64())
        .fold(0.0, f64::max);
    let server_cache = match (before, cache_counters(config, &shared.addrs)) {
        (_, Ok(None)) => ServerCache::AllCached,
        (Some(Ok(Some((g0, h0, c0)))), Ok(Some((g1, h1, c1)))) => ServerCache::Measured {
            gets: g1.saturating_sub(g0),
            cache_hits: h1.saturating_sub(h0),
            core_hops: c0.zip(c1).map(|(c0, c1)| c1.saturating_sub(c0)),
        },
        (Some(Err(why)), _) | (_, Err(why)) => ServerCache::Unknown(why.to_string()),
        _ => ServerCache::Unknown("the run ended before its warm-up".into()),
    };
    let mut summary = Summary::new(&results, secs, intervals, server_cache);
    summary.sharding = sharding;
    print!("{}", summary.text(config));
    if let Some(path) = &config.json {
        let mut text = serde_json::to_string_pretty(&summary.to_json(config))
            .map_err(|e| RunError::Json(path.clone(), io::Error::other(e)))?;
        text.push('\n');
        std::fs::write(path, text).map_err(|e| RunError::Json(path.clone(), e))?;
    }
    let rate = summary.error_rate();
    Ok(if rate > config.max_error_rate {
        Verdict::TooManyErrors {
            rate,
            max: config.max_error_rate,
        }
    } else {
        Verdict::Pass
    })
}

/// Waits for every thread to connect (and prefill), drawing the prefill progress.
fn wait_ready(shared: &Shared, rx: &mpsc::Receiver<Msg>, threads: usize) -> Result<(), RunError> {
    let config = &shared.config;
    let bar = config.prefill.then(|| {
        // Drawn on stderr, and only when stderr is a terminal (indicatif's default).
        let bar = ProgressBar::new(config.keys);
        if let Ok(style) =
            ProgressStyle::with_template("prefill {bar:40} {pos}/{len} keys {per_sec} eta {eta}")
        {
            bar.set_style(style);
        }
        bar
    });
    let started = Instant::now();
    let mut ready = 0;
    while ready < threads {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Msg::Ready { thread, result }) => {
                result.map_err(|e| RunError::Thread(thread, e))?;
                ready += 1;
            }
            Ok(Msg::Done {
                thread,
                result: Err(e),
            }) => return Err(RunError::Thread(thread, e)),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(RunError::Lost(ready)),
        }
        if let Some(bar) = &bar {
            bar.set_position(shared.prefilled.load(Ordering::Relaxed));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
        eprintln!(
            "prefill: {} keys written in {:.2} s",
            shared.prefilled.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The core count of the server at `addr` (SHARD with `0xffff`), `None` if it does
/// not take SHARD (it predates it, or refuses): its connections then stay plain. A
/// server that cannot be asked (down, or not answering) is plain too, with a note on
/// stderr: the run's own connections then meet and count the same failure.
fn server_cores(addr: SocketAddr, timeout: Duration) -> Option<usize> {
    match ask_cores(addr, timeout) {
        Ok(cores) => cores,
        Err(e) => {
            eprintln!("{e}; its connections stay plain");
            None
        }
    }
}

fn ask_cores(addr: SocketAddr, timeout: Duration) -> Result<Option<usize>, RunError> {
    let opts = ConnectOptions {
        connect_timeout: Some(timeout),
        timeout: Some(timeout),
        ..ConnectOptions::default()
    };
    let answer = Connection::connect(addr, &opts)
        .and_then(|mut c| c.call(RequestKind::Shard { core: SHARD_QUERY }))
        .map_err(|e| RunError::Shard(addr, e.to_string()))?;
    match (answer.status, answer.body) {
        (Status::Ok, OwnedBody::Shard { threads, .. }) if threads > 0 => Ok(Some(threads as usize)),
        (Status::UnknownOp | Status::BadRequest, _) => Ok(None),
        (status, body) => Err(RunError::Shard(
            addr,
            format!("unexpected {status} answer {body:?}"),
        )),
    }
}

/// Why the servers' cache counters could not be read (the summary then says so
/// instead of a served-from-cache ratio).
#[derive(Debug)]
enum CountersError {
    /// Connecting to a server or its STATS call failed.
    Stats(SocketAddr, groupcached_client::Error),
    /// A server's STATS has no such counter (another group name, an older server).
    Missing(SocketAddr, String),
}

impl fmt::Display for CountersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CountersError::Stats(addr, e) => write!(f, "STATS from {addr}: {e}"),
            CountersError::Missing(addr, name) => write!(f, "{addr} has no counter {name}"),
        }
    }
}

impl std::error::Error for CountersError {}

/// Counters read from the servers' STATS: gets, cache hits and (if counted) core
/// hops.
type ServerCounters = (u64, u64, Option<u64>);

/// The servers' `group.<group>.gets`, `.cache_hits` and `core_hops` STATS counters,
/// summed over the distinct addresses of the run; `None` for memcached, which has no
/// origin (every value it returns is cached). An error says why they could not be
/// read.
fn cache_counters(
    config: &Config,
    addrs: &[SocketAddr],
) -> Result<Option<ServerCounters>, CountersError> {
    if config.protocol != Protocol::Groupcached {
        return Ok(None);
    }
    let mut seen = Vec::new();
    let (mut gets, mut hits, mut hops) = (0, 0, Some(0));
    for &addr in addrs {
        if seen.contains(&addr) {
            continue;
        }
        seen.push(addr);
        let stats = Client::builder(addr)
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .shard_aware(false)
            .connect()
            .and_then(|mut c| c.stats())
            .map_err(|e| CountersError::Stats(addr, e))?;
        let counter = |name: &str| {
            let name = format!("group.{}.{name}", config.group);
            stats.get(&name).ok_or(CountersError::Missing(addr, name))
        };
        gets += counter("gets")?;
        hits += counter("cache_hits")?;
        hops = hops.zip(stats.get("core_hops")).map(|(a, b)| a + b);
    }
    Ok(Some((gets, hits, hops)))
}
