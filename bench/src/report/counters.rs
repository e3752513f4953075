//! What each generator thread counts: requests by outcome, latency histograms, the
//! line per second ([`Interval`]), and what a thread hands back ([`ThreadResult`]).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::summary::us;

use crate::workload::Op;

/// A histogram of latencies in nanoseconds, from 1 ns to 100 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("constant, valid histogram bounds")
}

/// Counters of one thread or of a whole run.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Successful GETs (hits + misses).
    pub gets: u64,
    /// Successful SETs.
    pub sets: u64,
    /// GETs answered with a value (from the server's cache or its origin).
    pub found: u64,
    /// GETs answered "not found".
    pub not_found: u64,
    /// Errors by kind (server status names, `timeout`, `connection_lost`, ...).
    pub errors: BTreeMap<&'static str, u64>,
    /// Bytes read from sockets while measuring.
    pub bytes_in: u64,
    /// Bytes written to sockets while measuring.
    pub bytes_out: u64,
}

impl Counters {
    /// Successful requests.
    pub fn ops(&self) -> u64 {
        self.gets + self.sets
    }

    /// Errors of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Counts `n` errors of `kind`.
    pub fn error(&mut self, kind: &'static str, n: u64) {
        if n > 0 {
            *self.errors.entry(kind).or_default() += n;
        }
    }

    /// Adds another set of counters.
    pub fn merge(&mut self, other: &Counters) {
        self.gets += other.gets;
        self.sets += other.sets;
        self.found += other.found;
        self.not_found += other.not_found;
        for (k, v) in &other.errors {
            self.error(k, *v);
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }

    /// GETs answered with a value over GETs, `None` without GETs. Not a cache hit
    /// ratio: a value loaded from the origin counts as found.
    pub fn found_ratio(&self) -> Option<f64> {
        (self.gets > 0).then(|| self.found as f64 / self.gets as f64)
    }
}

/// Latencies by operation.
#[derive(Debug, Clone)]
pub struct Latencies {
    /// GET latencies (ns).
    pub get: Histogram<u64>,
    /// SET latencies (ns).
    pub set: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            get: new_histogram(),
            set: new_histogram(),
        }
    }
}

impl Latencies {
    /// Records one latency.
    #[inline]
    pub fn record(&mut self, op: Op, nanos: u64) {
        match op {
            Op::Get => self.get.saturating_record(nanos.max(1)),
            Op::Set => self.set.saturating_record(nanos.max(1)),
        }
    }

    /// Adds another set of latencies.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.get.add(&other.get);
        let _ = self.set.add(&other.set);
    }

    /// Every operation together.
    pub fn all(&self) -> Histogram<u64> {
        let mut h = self.get.clone();
        let _ = h.add(&self.set);
        h
    }
}

/// One second of one thread (or, merged, of the run).
#[derive(Debug, Clone)]
pub struct Interval {
    /// Seconds since measurement began (0 = the first second).
    pub index: u64,
    /// Length in seconds (shorter than 1 for a run's last, partial second).
    pub secs: f64,
    /// What happened in it.
    pub counters: Counters,
    /// Latencies of every operation in it.
    pub hist: Histogram<u64>,
}

impl Interval {
    /// An empty interval.
    pub fn new(index: u64) -> Self {
        Interval {
            index,
            secs: 0.0,
            counters: Counters::default(),
            hist: new_histogram(),
        }
    }

    /// Adds another thread's interval with the same index.
    pub fn merge(&mut self, other: &Interval) {
        self.secs = self.secs.max(other.secs);
        self.counters.merge(&other.counters);
        let _ = self.hist.add(&other.hist);
    }

    /// The line printed for it.
    pub fn line(&self) -> String {
        let c = &self.counters;
        let rate = if self.secs > 0.0 {
            c.ops() as f64 / self.secs
        } else {
            0.0
        };
        let found = c
            .found_ratio()
            .map_or_else(|| "  -  ".to_string(), |h| format!("{h:.3}"));
        format!(
            "{:>4}s  {:>10.0} ops/s  found {found}  p50 {:>7.1} µs  p99 {:>8.1} µs  errors {}",
            self.index + 1,
            rate,
            us(self.hist.value_at_quantile(0.50)),
            us(self.hist.value_at_quantile(0.99)),
            c.error_count(),
        )
    }

    /// The interval as JSON.
    pub fn to_json(&self) -> Value {
        let c = &self.counters;
        json!({
            "second": self.index + 1,
            "secs": self.secs,
            "ops": c.ops(),
            "ops_per_sec": if self.secs > 0.0 { c.ops() as f64 / self.secs } else { 0.0 },
            "found_ratio": c.found_ratio(),
            "p50_us": us(self.hist.value_at_quantile(0.50)),
            "p99_us": us(self.hist.value_at_quantile(0.99)),
            "errors": c.error_count(),
        })
    }
}

/// What one generator thread hands back at the end.
#[derive(Debug, Clone, Default)]
pub struct ThreadResult {
    /// Its counters over the measured part.
    pub counters: Counters,
    /// Its latencies over the measured part.
    pub latencies: Latencies,
    /// CPU time the thread used while measuring.
    pub cpu: Duration,
    /// Wall time the thread spent measuring.
    pub wall: Duration,
    /// Open loop: the most requests that were due but not yet sent at once.
    pub max_backlog: u64,
}
