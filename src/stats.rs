//! Counters. Each core writes only its own block (plain relaxed stores, no locked
//! instructions on the hot path); a reader sums the blocks of every core.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
const BUCKET_NANOS: [u64; LATENCY_BUCKETS.len()] = [
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

/// Counters of one cache (main or hot) on one core.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Bytes charged (key + value + overhead).
    pub bytes: Counter,
    /// Entries.
    pub items: Counter,
    /// Lookups.
    pub gets: Counter,
    /// Lookups that found a live entry.
    pub hits: Counter,
    /// Entries evicted to stay within the budget.
    pub evictions: Counter,
}

/// One group's counters on one core, named as groupcache names them.
#[derive(Debug, Default)]
pub struct GroupCounters {
    /// GET and FETCH requests.
    pub gets: Counter,
    /// Requests answered from the main or hot cache.
    pub cache_hits: Counter,
    /// Values fetched from the owning peer.
    pub peer_loads: Counter,
    /// Failed fetches from a peer (then loaded locally).
    pub peer_errors: Counter,
    /// Requests that missed the cache (`gets - cache_hits`).
    pub loads: Counter,
    /// Loads actually started after de-duplication by the in-flight table.
    pub loads_deduped: Counter,
    /// Successful origin loads (including "not found" answers).
    pub local_loads: Counter,
    /// Failed origin loads (errors, timeouts, panics).
    pub local_load_errs: Counter,
    /// FETCH requests received from peers.
    pub server_requests: Counter,
    /// SET requests.
    pub sets: Counter,
    /// DELETE requests.
    pub deletes: Counter,
    /// Main cache.
    pub main: CacheCounters,
    /// Hot cache.
    pub hot: CacheCounters,
    /// Time from handing a load to the origin loader to its result on the core.
    pub origin_load: Histogram,
    /// Time from sending a FETCH to the key's owner to its answer or failure.
    pub peer_fetch: Histogram,
}

/// One group's origin-loader counters. Unlike the per-core blocks these have many
/// writers (the group's loader threads and every core that submits a load), so they
/// use atomic adds; a load is not the hot path.
#[derive(Debug, Default)]
pub struct LoaderCounters {
    /// Loads that had to wait in the queue because every one of the group's loader
    /// threads was busy when they were submitted (approximate under races).
    pub queue_waits: AtomicU64,
    /// Loads answered TIMEOUT because they waited in the queue past their deadline;
    /// they were never started.
    pub queue_timeouts: AtomicU64,
    /// Loads refused (UNAVAILABLE) because the group's queue was full.
    pub queue_full: AtomicU64,
    /// Loads waiting in the queue now (gauge).
    pub queue_depth: AtomicU64,
    /// Loads running on the group's loader threads now (gauge).
    pub running: AtomicU64,
    /// Origin values larger than the group can cache (item limit or shard budget),
    /// answered TOO_LARGE and remembered for a while.
    pub too_large: AtomicU64,
    /// Loads answered TOO_LARGE from that memory, without asking the origin.
    pub too_large_remembered: AtomicU64,
}

impl LoaderCounters {
    /// Adds one to `c`.
    #[inline]
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one from gauge `c`, never below zero.
    #[inline]
    pub fn dec(c: &AtomicU64) {
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        });
    }
}

/// Node-wide counters of one core.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// Open connections.
    pub curr_connections: Counter,
    /// Connections accepted since start.
    pub total_connections: Counter,
    /// Connections refused because of `--max-connections`.
    pub rejected_connections: Counter,
    /// Frames that could not be decoded (each answered with an error).
    pub protocol_errors: Counter,
    /// Requests of every op.
    pub requests: Counter,
    /// Peer connections currently up.
    pub peer_connections: Counter,
    /// Peers that answered HELLO with another ring fingerprint than ours.
    pub ring_mismatches: Counter,
    /// INVALIDATEs after a write that were not acknowledged (member down, hung past
    /// `--peer-timeout`, or refusing us): that member's copies are bounded by
    /// `--hot-ttl` instead of being dropped at once.
    pub invalidate_errors: Counter,
    /// HELLOs that spoke as a member (non-zero ring fingerprint) with a node id that
    /// is not one of ours: the connection stays a client connection.
    pub hello_rejected: Counter,
    /// Peer operations (FETCH, STORE, PURGE, INVALIDATE) refused with FORBIDDEN on a
    /// connection not identified as a member, or with NOT_OWNER for a key we do not own.
    pub peer_ops_refused: Counter,
    /// Main-cache entries demoted to hot copies because a ring change moved their key
    /// to another member.
    pub demoted: Counter,
    /// Connections this core handed to another core that a SHARD request asked for.
    pub shard_handoffs: Counter,
    /// Keyed requests that arrived on a core not holding the key's shard and hopped
    /// to the one that does (a shard-aware client makes none).
    pub core_hops: Counter,
    /// Failed proofs of the cluster secret, both ways: a member's AUTH we rejected,
    /// a CHALLENGE or AUTH while we have no secret, peer operations from a member that
    /// did not prove it, and handshakes of ours that a member refused or answered
    /// with a wrong proof.
    pub peer_auth_failures: Counter,
    /// Members of the current ring (gauge, the same on every core).
    pub members: Counter,
    /// Fingerprint of the current ring (gauge, the same on every core).
    pub ring_fingerprint: Counter,
    /// Bytes held in client connections' read buffers and output queues (gauge).
    pub conn_buffer_bytes: Counter,
    /// Connections closed by `--idle-timeout`.
    pub idle_timeouts: Counter,
    /// Connections closed by `--frame-timeout` (a frame that did not complete in time).
    pub frame_timeouts: Counter,
    /// Connections closed because their unsent output passed `--max-conn-output`.
    pub output_overflows: Counter,
    /// Times a connection stopped being read because connection buffers reached
    /// `--max-buffer-memory`.
    pub buffer_memory_pauses: Counter,
}

/// Everything one core counts, padded so cores do not share cache lines.
#[derive(Debug)]
#[repr(align(128))]
pub struct CoreStats {
    /// Node-wide counters.
    pub node: NodeCounters,
    /// Per-group counters, in configuration order.
    pub groups: Vec<GroupCounters>,
}

/// The counters of every core, and what is needed to report them.
#[derive(Debug)]
pub struct StatsRegistry {
    /// One block per core.
    pub cores: Vec<Arc<CoreStats>>,
    /// Group names, in configuration order.
    pub group_names: Vec<String>,
    /// Group budgets in bytes.
    pub group_capacity: Vec<u64>,
    /// Origin-loader counters, one block per group in configuration order.
    pub loaders: Vec<Arc<LoaderCounters>>,
    /// When the server started.
    pub started: Instant,
    /// Members whose circuit breaker is open (suspect: not answering), node-wide.
    /// Changed only when a member becomes suspect or answers again.
    pub peers_suspect: AtomicU64,
}

impl StatsRegistry {
    /// Counters for `threads` cores and the given groups.
    pub fn new(threads: usize, groups: &[(String, u64)]) -> StatsRegistry {
        StatsRegistry {
            cores: (0..threads)
                .map(|_| {
                    Arc::new(CoreStats {
                        node: NodeCounters::default(),
                        groups: groups.iter().map(|_| GroupCounters::default()).collect(),
                    })
                })
                .collect(),
            group_names: groups.iter().map(|g| g.0.clone()).collect(),
            group_capacity: groups.iter().map(|g| g.1).collect(),
            loaders: groups
                .iter()
                .map(|_| Arc::new(LoaderCounters::default()))
                .collect(),
            started: Instant::now(),
            peers_suspect: AtomicU64::new(0),
        }
    }

    /// A value summed over every core's block.
    pub fn sum(&self, f: impl Fn(&CoreStats) -> u64) -> u64 {
        self.cores
            .iter()
            .fold(0u64, |acc, c| acc.wrapping_add(f(c)))
    }

    /// A histogram of group `g` summed over cores.
    pub fn histogram(&self, g: usize, pick: fn(&GroupCounters) -> &Histogram) -> HistogramSnapshot {
        let mut snap = HistogramSnapshot::default();
        for c in &self.cores {
            if let Some(gc) = c.groups.get(g) {
                snap.add(pick(gc));
            }
        }
        snap
    }

    /// Every counter summed over cores, with its STATS name: node counters plain
    /// (`curr_connections`), group counters as `group.<name>.<counter>` and cache
    /// counters as `group.<name>.main.<counter>` / `group.<name>.hot.<counter>`.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let sum = |f: &dyn Fn(&CoreStats) -> u64| self.cores.iter().map(|c| f(c)).sum::<u64>();
        let mut out = vec![
            ("uptime_secs".to_string(), self.started.elapsed().as_secs()),
            ("threads".to_string(), self.cores.len() as u64),
            (
                "curr_connections".to_string(),
                sum(&|c| c.node.curr_connections.get()),
            ),
            (
                "total_connections".to_string(),
                sum(&|c| c.node.total_connections.get()),
            ),
            (
                "rejected_connections".to_string(),
                sum(&|c| c.node.rejected_connections.get()),
            ),
            (
                "protocol_errors".to_string(),
                sum(&|c| c.node.protocol_errors.get()),
            ),
            ("requests".to_string(), sum(&|c| c.node.requests.get())),
            (
                "members".to_string(),
                self.cores.first().map_or(0, |c| c.node.members.get()),
            ),
            (
                "peer_connections".to_string(),
                sum(&|c| c.node.peer_connections.get()),
            ),
            (
                "ring_mismatches".to_string(),
                sum(&|c| c.node.ring_mismatches.get()),
            ),
            (
                "invalidate_errors".to_string(),
                sum(&|c| c.node.invalidate_errors.get()),
            ),
            (
                "hello_rejected".to_string(),
                sum(&|c| c.node.hello_rejected.get()),
            ),
            (
                "peer_ops_refused".to_string(),
                sum(&|c| c.node.peer_ops_refused.get()),
            ),
            ("demoted".to_string(), sum(&|c| c.node.demoted.get())),
            (
                "shard_handoffs".to_string(),
                sum(&|c| c.node.shard_handoffs.get()),
            ),
            ("core_hops".to_string(), sum(&|c| c.node.core_hops.get())),
            (
                "conn_buffer_bytes".to_string(),
                sum(&|c| c.node.conn_buffer_bytes.get()),
            ),
            (
                "idle_timeouts".to_string(),
                sum(&|c| c.node.idle_timeouts.get()),
            ),
            (
                "frame_timeouts".to_string(),
                sum(&|c| c.node.frame_timeouts.get()),
            ),
            (
                "output_overflows".to_string(),
                sum(&|c| c.node.output_overflows.get()),
            ),
            (
                "buffer_memory_pauses".to_string(),
                sum(&|c| c.node.buffer_memory_pauses.get()),
            ),
            (
                "peers_suspect".to_string(),
                self.peers_suspect.load(Ordering::Relaxed),
            ),
            (
                "peer_auth_failures".to_string(),
                sum(&|c| c.node.peer_auth_failures.get()),
            ),
        ];
        for (gi, name) in self.group_names.iter().enumerate() {
            let g = |f: &dyn Fn(&GroupCounters) -> u64| sum(&|c| f(&c.groups[gi]));
            let p = format!("group.{name}.");
            out.push((format!("{p}capacity_bytes"), self.group_capacity[gi]));
            for (n, v) in [
                ("gets", g(&|x| x.gets.get())),
                ("cache_hits", g(&|x| x.cache_hits.get())),
                ("peer_loads", g(&|x| x.peer_loads.get())),
                ("peer_errors", g(&|x| x.peer_errors.get())),
                ("loads", g(&|x| x.loads.get())),
                ("loads_deduped", g(&|x| x.loads_deduped.get())),
                ("local_loads", g(&|x| x.local_loads.get())),
                ("local_load_errs", g(&|x| x.local_load_errs.get())),
                ("server_requests", g(&|x| x.server_requests.get())),
                ("sets", g(&|x| x.sets.get())),
                ("deletes", g(&|x| x.deletes.get())),
            ] {
                out.push((format!("{p}{n}"), v));
            }
            if let Some(l) = self.loaders.get(gi) {
                for (n, v) in [
                    ("load_queue_waits", &l.queue_waits),
                    ("load_queue_timeouts", &l.queue_timeouts),
                    ("load_queue_full", &l.queue_full),
                    ("load_queue_depth", &l.queue_depth),
                    ("loads_running", &l.running),
                    ("origin_too_large", &l.too_large),
                    ("too_large_remembered", &l.too_large_remembered),
                ] {
                    out.push((format!("{p}{n}"), v.load(Ordering::Relaxed)));
                }
            }
            for (cache, pick) in [
                (
                    "main",
                    (|x: &GroupCounters| &x.main) as fn(&GroupCounters) -> &CacheCounters,
                ),
                ("hot", |x: &GroupCounters| &x.hot),
            ] {
                for (n, v) in [
                    ("bytes", g(&|x| pick(x).bytes.get())),
                    ("items", g(&|x| pick(x).items.get())),
                    ("gets", g(&|x| pick(x).gets.get())),
                    ("hits", g(&|x| pick(x).hits.get())),
                    ("evictions", g(&|x| pick(x).evictions.get())),
                ] {
                    out.push((format!("{p}{cache}.{n}"), v));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_match_their_float_form() {
        for (ns, s) in BUCKET_NANOS.iter().zip(LATENCY_BUCKETS) {
            assert_eq!(*ns, (s * 1e9).round() as u64);
        }
        assert!(BUCKET_NANOS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn observations_land_in_le_buckets_and_sum_over_cores() {
        let a = Histogram::default();
        let b = Histogram::default();
        a.observe(Duration::from_micros(100)); // <= 0.0005
        a.observe(Duration::from_micros(500)); // == 0.0005: same bucket (le)
        a.observe(Duration::from_micros(501)); // <= 0.001
        b.observe(Duration::from_millis(20)); // <= 0.025
        b.observe(Duration::from_secs(60)); // +Inf
        let mut snap = HistogramSnapshot::default();
        snap.add(&a);
        snap.add(&b);
        assert_eq!(snap.buckets[0], 2);
        assert_eq!(snap.buckets[1], 1);
        assert_eq!(snap.buckets[5], 1);
        assert_eq!(snap.buckets[LATENCY_BUCKET_COUNT - 1], 1);
        assert_eq!(snap.count(), 5);
        let cum = snap.cumulative();
        assert!(cum.windows(2).all(|w| w[0] <= w[1]), "{cum:?}");
        assert_eq!(cum[LATENCY_BUCKET_COUNT - 1], snap.count());
        assert_eq!(cum[0], 2);
        assert_eq!(cum[4], 3);
        assert_eq!(cum[5], 4);
        let want = 100e-6 + 500e-6 + 501e-6 + 0.020 + 60.0;
        assert!(
            (snap.sum_seconds() - want).abs() < 1e-9,
            "{}",
            snap.sum_seconds()
        );
    }

    #[test]
    fn registry_sums_histograms_of_one_group() {
        let reg = StatsRegistry::new(2, &[("a".into(), 1 << 20), ("b".into(), 1 << 20)]);
        reg.cores[0].groups[1]
            .origin_load
            .observe(Duration::from_millis(3));
        reg.cores[1].groups[1]
            .origin_load
            .observe(Duration::from_millis(3));
        reg.cores[1].groups[0]
            .peer_fetch
            .observe(Duration::from_millis(3));
        assert_eq!(reg.histogram(1, |g| &g.origin_load).count(), 2);
        assert_eq!(reg.histogram(0, |g| &g.origin_load).count(), 0);
        assert_eq!(reg.histogram(0, |g| &g.peer_fetch).count(), 1);
        assert_eq!(reg.histogram(1, |g| &g.origin_load).buckets[3], 2);
    }
}
