//! Counters. Each core writes only its own block (plain relaxed stores, no locked
//! instructions on the hot path); a reader sums the blocks of every core.

mod cell;
mod counters;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use cell::{Counter, Histogram, HistogramSnapshot, LATENCY_BUCKETS};
pub use counters::{
    CacheCounters, CoreStats, GroupCounters, LoaderCounters, McCounters, NodeCounters,
};

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
                        memcache: McCounters::default(),
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
                ("gets", g(&|x| x.gets())),
                ("cache_hits", g(&|x| x.cache_hits())),
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
                    ("gets", g(&|x| pick(x).gets())),
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
    use super::cell::{BUCKET_NANOS, LATENCY_BUCKET_COUNT};
    use super::*;
    use std::time::Duration;

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
