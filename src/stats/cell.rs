//! The two kinds of cell a core writes: a single-writer [`Counter`] and a latency
//! [`Histogram`] with fixed buckets, each readable from any thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A counter or gauge with a single writer (its core) and any number of readers.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one. Only the owning core may call this.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`. Only the owning core may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a load and a store suffice, and avoid a locked add.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Sets a gauge. Only the owning core may call this.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Reads the value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds, in seconds, of the latency histograms' buckets (Prometheus `le`);
/// a last `+Inf` bucket catches everything slower.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Number of buckets including `+Inf`.
pub const LATENCY_BUCKET_COUNT: usize = LATENCY_BUCKETS.len() + 1;

/// [`LATENCY_BUCKETS`] in nanoseconds, so an observation needs no float arithmetic.
pub(super) const BUCKET_NANOS: [u64; LATENCY_BUCKETS.len()] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A latency histogram with fixed buckets and a single writer (its core), like
/// [`Counter`]: an observation is two relaxed load/store pairs, no locked
/// instruction, no allocation. Buckets hold plain (not cumulative) counts; readers
/// sum the cores' histograms with [`HistogramSnapshot::add`] and cumulate.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [Counter; LATENCY_BUCKET_COUNT],
    sum_nanos: Counter,
}

impl Histogram {
    /// Records one duration. Only the owning core may call this.
    #[inline]
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // The first bound >= ns: Prometheus buckets are "less than or equal".
        let i = BUCKET_NANOS.partition_point(|&b| b < ns);
        self.buckets[i].inc();
        self.sum_nanos.add(ns);
    }
}

/// Histograms summed over cores, as a reader sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Observations per bucket (not cumulative), the last one being `+Inf`.
    pub buckets: [u64; LATENCY_BUCKET_COUNT],
    /// Sum of the observations in nanoseconds.
    pub sum_nanos: u64,
}

impl HistogramSnapshot {
    /// Adds one core's histogram.
    pub fn add(&mut self, h: &Histogram) {
        for (acc, b) in self.buckets.iter_mut().zip(&h.buckets) {
            *acc = acc.wrapping_add(b.get());
        }
        self.sum_nanos = self.sum_nanos.wrapping_add(h.sum_nanos.get());
    }

    /// Cumulative counts per bucket (`le` semantics); the last equals [`Self::count`].
    pub fn cumulative(&self) -> [u64; LATENCY_BUCKET_COUNT] {
        let mut out = self.buckets;
        for i in 1..out.len() {
            out[i] = out[i].wrapping_add(out[i - 1]);
        }
        out
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, b| a.wrapping_add(*b))
    }

    /// Sum of the observations in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos as f64 / 1e9
    }
}
